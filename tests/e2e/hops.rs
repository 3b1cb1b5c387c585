//! S4 and S5 in real Envoys: gateway -> order-service -> payment-service ->
//! saga-tracker, every pod of a calling service with a sidecar Envoy of its own.

use c4mesh_filter_core::config::SIDECAR_CONFIG_JSON;
use c4mesh_mesh::istio::{generated, Resources};
use c4mesh_mesh::mesh::MeshOptions;
use c4mesh_mesh::{LocalMesh, Topology, Wasm};
use serde_json::{json, Value};
use std::thread;
use std::time::{Duration, Instant};

fn chain() -> Topology {
    Topology::parse("order-service=payment-service,payment-service=saga-tracker").expect("topology")
}

/// The sidecars' configuration with `extra` fields over it.
fn sidecar(extra: Value) -> String {
    let mut config: Value = serde_json::from_str(SIDECAR_CONFIG_JSON).expect("sidecar config");
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            config.insert(k.clone(), v.clone());
        }
    }
    config.to_string()
}

/// The local mesh with `istio` laid over the generated resources.
fn mesh_with(gateway: Wasm, sidecars: Wasm, istio: Resources) -> LocalMesh {
    LocalMesh::start(MeshOptions {
        topology: chain(),
        sidecar_wasm: sidecars,
        istio,
        ..MeshOptions::gateway(gateway)
    })
    .expect("the local mesh with sidecars")
}

/// VirtualServices bound to `mesh` retrying 5xx 3 times for the callees.
fn mesh_retries() -> Resources {
    generated::mesh_retries(&["payment-service", "saga-tracker"], 3, "5xx")
}

/// Attempts at orders, payments and saga per user request with saga down, Istio alone.
fn istio_alone(istio: Resources) -> [u64; 3] {
    const N: usize = 4;
    let alone = mesh_with(Wasm::None, Wasm::None, istio);
    alone.set_status("saga", 503);
    let (statuses, _) = alone.client().storm("/api/v1/orders/1", N, 2);
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    ["orders", "payments", "saga"].map(|route| alone.attempts(route) / N as u64)
}

#[test]
fn s4_what_multiplies_depends_on_the_retry_configuration_as_istio_builds_it() {
    // Istio 1.28's defaults in-mesh retry no 503: the gateway's 4 attempts reach each
    // hop once.
    assert_eq!(istio_alone(Resources::default()), [4, 4, 4]);
    // VirtualServices bound to mesh retrying 5xx: 4 x 4 x 4.
    assert_eq!(istio_alone(mesh_retries()), [4, 16, 64]);
}

#[test]
fn s4_with_the_filter_at_every_hop_attempts_stay_within_the_bound_whatever_the_retries() {
    const N: usize = 200;
    let off = json!({"outlier": {"consecutive_5xx": 0}});
    for (istio, sidecar_attempts) in [(Resources::default(), 2.0), (mesh_retries(), 3.0)] {
        let sidecar_config = sidecar(json!({
            "outlier": {"consecutive_5xx": 0},
            "retry": {"attempts": sidecar_attempts as u32, "retry_on": "5xx"}
        }));
        let every_hop = mesh_with(
            Wasm::filter(&off.to_string()).expect("filter"),
            Wasm::filter(&sidecar_config).expect("filter"),
            istio,
        );
        every_hop.set_status("saga", 503);
        let (statuses, t) = every_hop.client().storm("/api/v1/orders/1", N, 8);
        assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
        let (a1, a2, a3) = (
            every_hop.attempts("orders") as f64,
            every_hop.attempts("payments") as f64,
            every_hop.attempts("saga") as f64,
        );
        // S4: A(h) <= A(h-1) x 1.2 + P(h) x (10 x (T + 10) + attempts(h)).
        let reserve = |attempts: f64| 10.0 * (t + 10.0) + attempts;
        let b1 = N as f64 * 1.2 + reserve(3.0);
        let b2 = a1 * 1.2 + 2.0 * reserve(sidecar_attempts);
        let b3 = a2 * 1.2 + 2.0 * reserve(sidecar_attempts);
        println!(
            "filter at every hop (sidecar retries {sidecar_attempts}), {N} user requests over {t:.1} s: \
             attempts at orders {a1} (bound {b1:.0}), payments {a2} (bound {b2:.0}), saga {a3} \
             (bound {b3:.0}): {:.2} at saga per user request",
            a3 / N as f64
        );
        assert!(a1 <= b1 && a2 <= b2 && a3 <= b3);
    }
}

#[test]
fn s5_circuits_open_deepest_first_and_every_hop_serves_again_within_the_bound() {
    const MAX_EJECTION: Duration = Duration::from_secs(2);
    let outlier =
        json!({"outlier": {"consecutive_5xx": 5, "base_ejection": "500ms", "max_ejection": "2s"}});
    // VirtualServices bound to mesh retrying 5xx 3 times, the sidecars' plugin granting
    // as many: one user request then reaches saga up to 64 times.
    let mut sidecars: Value = serde_json::from_str(&sidecar(outlier.clone())).expect("json");
    sidecars["retry"] = json!({"attempts": 3, "retry_on": "5xx"});
    // Clusters without Envoy's outlier detection: an order pod it ejected would get no
    // traffic, so its sidecar's circuit could not be probed closed before it returns.
    let mut istio = mesh_retries();
    let mut rules = String::new();
    for service in ["order-service", "payment-service", "saga-tracker"] {
        rules.push_str(&format!(
            "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {service}, namespace: ecommerce}}\nspec: {{host: {service}.ecommerce.svc.cluster.local, trafficPolicy: {{loadBalancer: {{simple: ROUND_ROBIN}}}}}}\n"
        ));
    }
    istio.overlay(Resources::parse("rules", &rules, "ecommerce").expect("rules"));
    let mesh = mesh_with(
        Wasm::filter(&outlier.to_string()).expect("filter"),
        Wasm::filter(&sidecars.to_string()).expect("filter"),
        istio,
    );
    let client = mesh.client();
    mesh.set_status("saga", 503);

    // One user request: the deepest hop's circuit opens, the upper ones stay closed.
    assert_eq!(
        client.get("/api/v1/orders/1", &[]).map(|r| r.status).ok(),
        Some(503)
    );
    let opened = |proxy: &str, route: &str| {
        mesh.stat_at(
            proxy,
            &format!("wasmcustom.c4mesh.route.{route}.circuit_opened_total"),
        )
        .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    while opened("payment-service", "saga") == 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_millis(1200));
    assert!(
        opened("payment-service", "saga") >= 1,
        "the deepest circuit opened"
    );
    assert_eq!(opened("order-service", "payments"), 0);
    assert_eq!(opened("gateway", "orders"), 0);

    // More traffic: the outage reaches the gateway, which fails fast.
    for _ in 0..20 {
        let _ = client.get("/api/v1/orders/1", &[]);
        thread::sleep(Duration::from_millis(50));
    }
    let failing_fast = client.get("/api/v1/orders/1", &[]).expect("response");
    assert_eq!(failing_fast.header("x-c4-reason"), Some("circuit_open"));

    // saga recovers: full service returns and every hop closes within H x max_ejection
    // (H = 3 hops with circuits). The gateway's retries can serve a user through the
    // other order pod while one pod's circuit is still open, so the circuits are
    // watched under traffic until they have all closed.
    mesh.set_status("saga", 200);
    let recovered = Instant::now();
    let bound = MAX_EJECTION * 3;
    let took = mesh
        .time_to_full_service("/api/v1/orders/1", 10, Duration::from_millis(50), bound * 2)
        .expect("full service returns");
    let still_open = || -> Vec<String> {
        [
            ("gateway", "orders"),
            ("order-service", "payments"),
            ("payment-service", "saga"),
        ]
        .into_iter()
        .filter(|(proxy, route)| {
            mesh.stat_at(
                proxy,
                &format!("wasmcustom.c4mesh.route.{route}.circuit_open"),
            )
            .expect("stats")
                > 0
        })
        .map(|(proxy, route)| format!("{proxy}: {route}"))
        .collect()
    };
    // Metrics lag the circuits by up to a flush (1 s).
    let deadline = recovered + bound + Duration::from_millis(1100);
    let mut open = still_open();
    while !open.is_empty() && Instant::now() < deadline {
        let _ = client.get("/api/v1/orders/1", &[]);
        thread::sleep(Duration::from_millis(50));
        open = still_open();
    }
    let closed = recovered.elapsed();
    println!(
        "S5: full service {:.2} s and every circuit closed {:.2} s after saga-tracker recovered (bound {:.0} s)",
        took.as_secs_f64(),
        closed.as_secs_f64(),
        bound.as_secs_f64()
    );
    assert!(took <= bound, "{took:?} exceeds {bound:?}");
    assert!(
        open.is_empty(),
        "still open {closed:?} after recovery: {open:?}"
    );
}
