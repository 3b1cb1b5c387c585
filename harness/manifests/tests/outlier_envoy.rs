//! The generated DestinationRule's outlier detection, as Istio gives it to Envoy, in a
//! real Envoy: one bad host of two is ejected (`failed_outlier_check`). With Envoy's
//! default `maxEjectionPercent` (10%) the same host is never ejected, which is why the
//! generated rule sets 50.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use c4mesh_filter_core::Config;
use c4mesh_manifests::{envoy_outlier_detection, outlier_detection};
use c4mesh_mesh::mesh::MeshOptions;
use c4mesh_mesh::{LocalMesh, Wasm};
use std::time::{Duration, Instant};

/// Sends traffic to orders with one host answering 503; true once Envoy ejects it.
fn bad_host_ejected(max_ejection_percent: Option<u32>) -> bool {
    let route = Config::defaults()
        .routes
        .into_iter()
        .find(|r| r.name == "orders")
        .unwrap();
    let mut outlier = outlier_detection(&route);
    if let Some(percent) = max_ejection_percent {
        outlier.max_ejection_percent = percent;
    }
    let mesh = LocalMesh::start(MeshOptions {
        outlier_detection: Some(envoy_outlier_detection(&outlier)),
        ..MeshOptions::gateway(Wasm::filter("").unwrap())
    })
    .unwrap();
    let [bad, _good] = mesh.service("orders");
    bad.set_status(503);
    let flag = format!("{}::health_flags::/failed_outlier_check", bad.addr());
    let deadline = Instant::now() + Duration::from_secs(10);
    for _ in 0..40 {
        let r = mesh.client().get("/api/v1/orders/1", &[]).unwrap();
        assert_eq!(r.status, 200, "retries reach the good host: {r:?}");
    }
    while Instant::now() < deadline {
        if mesh.envoy.admin_get("/clusters").unwrap().contains(&flag) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn generated_outlier_detection_ejects_one_host_of_two() {
    assert!(
        bad_host_ejected(None),
        "no failed_outlier_check with the generated settings"
    );
}

#[test]
fn envoy_default_max_ejection_percent_never_ejects_one_of_two() {
    assert!(
        !bad_host_ejected(Some(10)),
        "ejected with maxEjectionPercent 10"
    );
}
