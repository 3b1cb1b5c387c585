//! `c4mesh demo`: the c4mesh filter in a local Envoy in front of the six simulated
//! services.
//!
//! It builds the filter, starts the local mesh, and shows routing, the filter's local
//! replies, an outage of one service with and without the retry budget, and the route
//! circuit opening, failing fast and closing again.

use anyhow::{ensure, Context, Result};
use c4mesh_filter_core::config::SIDECAR_CONFIG_JSON;
use c4mesh_mesh::mesh::MeshOptions;
use c4mesh_mesh::{services, LocalMesh, Topology, Wasm};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct DemoArgs {}

pub fn command(_args: DemoArgs) -> Result<ExitCode> {
    println!("c4mesh demo: Envoy 1.40 with the c4mesh filter, six services with two hosts each, on 127.0.0.1\n");
    let mesh = LocalMesh::with_filter(r#"{"outlier": {"base_ejection": "3s"}}"#)?;
    println!(
        "gateway: {}  (admin: http://{})\n",
        mesh.envoy.url(),
        mesh.envoy.admin
    );
    let client = mesh.client();

    println!("1. Routing (Host: api.c4ang.com)");
    for s in services() {
        let (route, prefix, service) = (s.route.as_str(), s.prefix.as_str(), s.name.as_str());
        let r = client.get(&format!("{prefix}/1"), &[])?;
        println!(
            "   GET {prefix}/1 -> {} from {}  (route {route})",
            r.status,
            r.json()?["service"].as_str().unwrap_or(service)
        );
    }

    println!("\n2. Local replies (dot segments never reach the filter: Istio's connection manager resolves them first)");
    for (method, path, host) in [
        ("GET", "/api/v1/orders/../payments", "api.c4ang.com"),
        ("GET", "/api/v1/orders%2f..%2fpayments", "api.c4ang.com"),
        ("GET", "/api/v1//orders/1", "api.c4ang.com"),
        ("GET", "/api/v2/orders", "api.c4ang.com"),
    ] {
        let r = client.request(method, path, Some(host), &[])?;
        println!(
            "   {method} {path} -> {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    let r = client.get("/api/v1/orders/1", &[("x-envoy-max-retries", "10")])?;
    println!("   GET /api/v1/orders/1 with x-envoy-max-retries: 10 -> {} (the client's retry header is stripped)", r.status);

    println!("\n3. payment-service outage: every attempt answers 503, 400 requests, 8 at a time");
    let budget = LocalMesh::with_filter(r#"{"outlier": {"consecutive_5xx": 0}}"#)?;
    let no_budget =
        LocalMesh::with_filter(r#"{"outlier": {"consecutive_5xx": 0}, "retry_budget": null}"#)?;
    for (name, m) in [
        ("without the budget (Istio retries alone)", &no_budget),
        ("with the retry budget", &budget),
    ] {
        m.set_status("payments", 503);
        let (_, seconds) = m.client().storm("/api/v1/payments/charge", 400, 8);
        let attempts = m.attempts("payments");
        println!(
            "   {name}: {attempts} upstream attempts, {:.2} per request, in {seconds:.1} s",
            attempts as f64 / 400.0
        );
    }
    println!("   bound with the budget (SPEC B5): N x 1.2 + 10 x (T + 10) + 3");

    println!("\n4. The route circuit: saga-tracker fails");
    mesh.set_status("saga", 503);
    for i in 1..=7 {
        let before = mesh.attempts("saga");
        let r = client.get("/api/v1/saga/1", &[])?;
        let reason = r.header("x-c4-reason").unwrap_or("from the service");
        let retry_after = r
            .header("retry-after")
            .map(|s| format!(", retry-after {s}"))
            .unwrap_or_default();
        println!(
            "   request {i}: {} ({reason}{retry_after}), upstream attempts {}",
            r.status,
            mesh.attempts("saga") - before
        );
    }
    mesh.set_status("saga", 200);
    println!("   saga-tracker recovers; after the open period one probe goes through and closes the circuit");
    thread::sleep(Duration::from_millis(3_100));
    for i in 1..=2 {
        let r = client.get("/api/v1/saga/1", &[])?;
        println!("   request {i}: {}", r.status);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while mesh
        .envoy
        .stat("wasmcustom.c4mesh.route.saga.circuit_opened_total")?
        != Some(1)
    {
        ensure!(
            Instant::now() < deadline,
            "the circuit metric did not appear"
        );
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_millis(600));

    println!("\n5. Metrics in Envoy's /stats");
    for line in mesh
        .envoy
        .admin_get("/stats?filter=wasmcustom.c4mesh.route.saga")?
        .lines()
    {
        println!("   {line}");
    }
    println!("\n6. The filter's log lines");
    // `wasm log <plugin>: <message>`, the plugin named `<namespace>.<name>` as on Istio.
    for line in mesh.envoy.log().lines() {
        let Some((_, rest)) = line.split_once("wasm log ") else {
            continue;
        };
        if let Some((_, message)) = rest.split_once(": ") {
            println!("   {message}");
        }
    }
    hops()?;
    Ok(ExitCode::SUCCESS)
}

/// The hop story: saga-tracker down behind gateway -> orders -> payments -> saga, with
/// Istio alone, the filter at the gateway only, and the filter at every hop; then saga
/// recovers and every hop's circuit has to close again.
fn hops() -> Result<()> {
    const N: usize = 50;
    let chain = Topology::parse("order-service=payment-service,payment-service=saga-tracker")
        .map_err(anyhow::Error::msg)?;
    println!(
        "\n7. Retries across hops: gateway -> order-service -> payment-service -> saga-tracker,"
    );
    println!("   every pod of orders and payments with its own sidecar Envoy; saga-tracker answers 503 to everything");
    // Istio 1.28 retries no 503 in-mesh by default; operators who add VirtualServices
    // bound to `mesh` retrying 5xx make every hop retry the same failure.
    let mesh_retries = || {
        c4mesh_mesh::istio::generated::mesh_retries(&["payment-service", "saga-tracker"], 3, "5xx")
    };
    let mut sidecar_3: serde_json::Value =
        serde_json::from_str(SIDECAR_CONFIG_JSON).context("the sidecar configuration")?;
    sidecar_3["retry"] = serde_json::json!({"attempts": 3, "retry_on": "5xx"});
    let setups = [
        (
            "generated mesh, Istio alone",
            Wasm::None,
            Wasm::None,
            Default::default(),
        ),
        (
            "generated mesh, filter everywhere",
            Wasm::filter("")?,
            Wasm::filter(SIDECAR_CONFIG_JSON)?,
            Default::default(),
        ),
        (
            "mesh 5xx retries, Istio alone",
            Wasm::None,
            Wasm::None,
            mesh_retries(),
        ),
        (
            "mesh 5xx retries, filter everywhere",
            Wasm::filter("")?,
            Wasm::filter(&sidecar_3.to_string())?,
            mesh_retries(),
        ),
    ];
    for (name, gateway, sidecars, istio) in setups {
        let mesh = LocalMesh::start(MeshOptions {
            topology: chain.clone(),
            sidecar_wasm: sidecars,
            istio,
            ..MeshOptions::gateway(gateway)
        })?;
        mesh.set_status("saga", 503);
        const CLIENTS: usize = 4;
        let (_, seconds) = mesh.client().storm("/api/v1/orders/1", N, CLIENTS);
        let per = |route: &str| mesh.attempts(route) as f64 / N as f64;
        // Each of the clients waits for one answer at a time.
        let latency_ms = seconds * 1000.0 * CLIENTS as f64 / N as f64;
        println!(
            "   {name:<36} attempts per user request: orders {:>5.2}, payments {:>5.2}, saga {:>5.2}; {latency_ms:>5.0} ms per user request ({N} requests, {CLIENTS} clients)",
            per("orders"),
            per("payments"),
            per("saga")
        );
    }
    println!("   (Istio alone: the gateway's 4 attempts reach each hop once, 4 x 1 x 1; with VirtualServices bound to mesh retrying 5xx 3 times, 4 x 4 x 4 = 64 at saga; the filter at every hop bounds each hop by its budget whatever the retry configuration, and its circuits fail fast)");

    let outlier = r#"{"consecutive_5xx": 5, "base_ejection": "1s", "max_ejection": "4s"}"#;
    let gateway = format!(r#"{{"outlier": {outlier}}}"#);
    let mut sidecar: serde_json::Value =
        serde_json::from_str(SIDECAR_CONFIG_JSON).context("the sidecar configuration")?;
    sidecar["outlier"] = serde_json::from_str(outlier).context("the outlier settings")?;
    let mesh = LocalMesh::start(MeshOptions {
        topology: chain,
        sidecar_wasm: Wasm::filter(&sidecar.to_string())?,
        ..MeshOptions::gateway(Wasm::filter(&gateway)?)
    })?;
    mesh.set_status("saga", 503);
    let client = mesh.client();
    // Traffic for 4 s: the circuits open, and their probes keep failing until the end.
    for _ in 0..80 {
        let _ = client.get("/api/v1/orders/1", &[]);
        thread::sleep(Duration::from_millis(50));
    }
    let opened = |proxy: &str, route: &str| {
        mesh.stat_at(
            proxy,
            &format!("wasmcustom.c4mesh.route.{route}.circuit_opened_total"),
        )
        .unwrap_or(0)
    };
    println!(
        "\n8. Recovery (outlier base_ejection 1s, max_ejection 4s at every hop): after 80 requests in 4 s the circuits opened"
    );
    println!(
        "   payment pods (route saga) {} times, order pods (route payments) {} times, gateway (route orders) {} times: deepest first",
        opened("payment-service", "saga"),
        opened("order-service", "payments"),
        opened("gateway", "orders")
    );
    mesh.set_status("saga", 200);
    let bound = Duration::from_secs(3 * 4);
    match mesh.time_to_full_service("/api/v1/orders/1", 20, Duration::from_millis(50), bound * 2) {
        Some(took) => println!(
            "   saga-tracker recovers: every hop serves again {:.2} s later (20 requests in a row answered 200; design bound 3 hops x max_ejection = {} s)",
            took.as_secs_f64(),
            bound.as_secs()
        ),
        None => println!(
            "   saga-tracker recovers: full service did not return within {} s",
            (bound * 2).as_secs()
        ),
    }
    Ok(())
}
