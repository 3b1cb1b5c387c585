//! S4 and S5 in real Envoys: gateway -> order-service -> payment-service ->
//! saga-tracker, every pod of a calling service with a sidecar Envoy of its own.

use c4mesh_filter_core::config::SIDECAR_CONFIG_JSON;
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

fn mesh(gateway: Wasm, sidecars: Wasm) -> LocalMesh {
    LocalMesh::start(MeshOptions {
        topology: chain(),
        sidecar_wasm: sidecars,
        ..MeshOptions::gateway(gateway)
    })
    .expect("the local mesh with sidecars")
}

#[test]
fn s4_retries_multiply_per_hop_without_the_filter_and_stay_bounded_with_it() {
    const ALONE: usize = 10;
    let alone = mesh(Wasm::None, Wasm::None);
    alone.set_status("saga", 503);
    let (statuses, _) = alone.client().storm("/api/v1/orders/1", ALONE, 2);
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    let per_request =
        |route: &str, mesh: &LocalMesh, n: usize| mesh.attempts(route) as f64 / n as f64;
    println!(
        "Istio alone: attempts per user request at orders {}, payments {}, saga {}",
        per_request("orders", &alone, ALONE),
        per_request("payments", &alone, ALONE),
        per_request("saga", &alone, ALONE)
    );
    assert_eq!(alone.attempts("orders"), 4 * ALONE as u64);
    assert_eq!(alone.attempts("payments"), 12 * ALONE as u64);
    assert_eq!(
        alone.attempts("saga"),
        36 * ALONE as u64,
        "4 x 3 x 3 per user request"
    );
    drop(alone);

    // The budget alone at every hop (circuits off), the defaults otherwise.
    const N: usize = 200;
    let off = json!({"outlier": {"consecutive_5xx": 0}});
    let every_hop = mesh(
        Wasm::filter(&off.to_string()).expect("filter"),
        Wasm::filter(&sidecar(off)).expect("filter"),
    );
    every_hop.set_status("saga", 503);
    let (statuses, t) = every_hop.client().storm("/api/v1/orders/1", N, 8);
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    let (a1, a2, a3) = (
        every_hop.attempts("orders") as f64,
        every_hop.attempts("payments") as f64,
        every_hop.attempts("saga") as f64,
    );
    // S4: A(h) <= A(h-1) x 1.2 + P(h) x (10 x (T + 10) + attempts).
    let reserve = |attempts: f64| 10.0 * (t + 10.0) + attempts;
    let b1 = N as f64 * 1.2 + reserve(3.0);
    let b2 = a1 * 1.2 + 2.0 * reserve(2.0);
    let b3 = a2 * 1.2 + 2.0 * reserve(2.0);
    println!(
        "filter at every hop, {N} user requests over {t:.1} s: attempts at orders {a1} (bound {b1:.0}), \
         payments {a2} (bound {b2:.0}), saga {a3} (bound {b3:.0}): {:.2} at saga per user request",
        a3 / N as f64
    );
    assert!(a1 <= b1 && a2 <= b2 && a3 <= b3);
    assert!(
        a3 < 10.0 * N as f64,
        "far below Istio's 36 per user request"
    );
}

#[test]
fn s5_circuits_open_deepest_first_and_every_hop_serves_again_within_the_bound() {
    const MAX_EJECTION: Duration = Duration::from_secs(2);
    let outlier =
        json!({"outlier": {"consecutive_5xx": 5, "base_ejection": "500ms", "max_ejection": "2s"}});
    let mesh = mesh(
        Wasm::filter(&outlier.to_string()).expect("filter"),
        Wasm::filter(&sidecar(outlier)).expect("filter"),
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

    // saga recovers: every hop closes within H x max_ejection (H = 3 hops with circuits).
    mesh.set_status("saga", 200);
    let bound = MAX_EJECTION * 3;
    let took = mesh
        .time_to_full_service("/api/v1/orders/1", 10, Duration::from_millis(50), bound * 2)
        .expect("full service returns");
    println!(
        "S5: full service {:.2} s after saga-tracker recovered (bound {:.0} s)",
        took.as_secs_f64(),
        bound.as_secs_f64()
    );
    assert!(took <= bound, "{took:?} exceeds {bound:?}");
    thread::sleep(Duration::from_millis(1200));
    for (proxy, route) in [
        ("gateway", "orders"),
        ("order-service", "payments"),
        ("payment-service", "saga"),
    ] {
        let open = mesh
            .stat_at(
                proxy,
                &format!("wasmcustom.c4mesh.route.{route}.circuit_open"),
            )
            .expect("stats");
        assert_eq!(open, 0, "{proxy}: the {route} circuit is closed again");
    }
}
