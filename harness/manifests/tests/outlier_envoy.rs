//! The generated DestinationRule's outlier detection, as Istio gives it to Envoy, in a
//! real Envoy: one bad host of two is ejected (`failed_outlier_check`). With Envoy's
//! default `maxEjectionPercent` (10%), which an operator's rule without the field gets,
//! the same host is never ejected, which is why the generated rule sets 50.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use c4mesh_mesh::istio::Resources;
use c4mesh_mesh::mesh::MeshOptions;
use c4mesh_mesh::{LocalMesh, Wasm};
use std::time::{Duration, Instant};

/// order-service's DestinationRule as an operator's guide writes it: the generated
/// rule's outlier detection without `maxEjectionPercent`.
const OPERATOR_RULE: &str = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: order-service
  namespace: ecommerce
spec:
  host: order-service.ecommerce.svc.cluster.local
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 5
      interval: 10s
      baseEjectionTime: 30s
";

/// Sends traffic to orders with one host answering 503, under the generated
/// resources with `istio` laid over them; true once Envoy ejects the host.
fn bad_host_ejected(istio: Resources) -> bool {
    let mesh = LocalMesh::start(MeshOptions {
        istio,
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
        bad_host_ejected(Resources::default()),
        "no failed_outlier_check with the generated DestinationRules (maxEjectionPercent 50)"
    );
}

#[test]
fn envoy_default_max_ejection_percent_never_ejects_one_of_two() {
    let rule = Resources::parse("order-service.yaml", OPERATOR_RULE, "ecommerce").unwrap();
    assert!(
        !bad_host_ejected(rule),
        "ejected under a DestinationRule without maxEjectionPercent (Envoy's 10%)"
    );
}
