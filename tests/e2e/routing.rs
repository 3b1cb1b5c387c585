//! R1-R7 through real HTTP.

use crate::local_reply;
use c4mesh_mesh::istio::Resources;
use c4mesh_mesh::{services, Behaviour, LocalMesh, MeshOptions, Wasm};
use std::time::Duration;

#[test]
fn routes_all_six_prefixes_to_their_service() {
    let mesh = LocalMesh::with_filter(r#"{"route_header": true}"#).unwrap();
    let client = mesh.client();
    for s in services() {
        let (route, prefix, service) = (s.route.as_str(), s.prefix.as_str(), s.name.as_str());
        let response = client.get(&format!("{prefix}/42?view=full"), &[]).unwrap();
        assert_eq!(response.status, 200, "{route}: {response:?}");
        let body = response.json().unwrap();
        assert_eq!(body["service"], service, "{route}");
        let seen = mesh
            .service(route)
            .iter()
            .flat_map(|h| h.seen())
            .collect::<Vec<_>>();
        assert_eq!(seen.len(), 1, "{route}: one attempt");
        assert_eq!(seen[0].header("x-c4-route"), Some(route));
        assert_eq!(seen[0].path, format!("{prefix}/42?view=full"));
    }
}

#[test]
fn local_replies_for_unknown_host_no_route_bad_path_and_method() {
    let config = r#"{"hosts": ["api.c4ang.com"], "routes": [
        {"name": "orders", "prefix": "/api/v1/orders", "service": "order-service", "methods": ["GET", "POST"]},
        {"name": "payments", "prefix": "/api/v1/payments", "service": "payment-service"}]}"#;
    let mesh = LocalMesh::with_filter(config).unwrap();
    let client = mesh.client();

    let r = client
        .request("GET", "/api/v1/orders", Some("evil.example"), &[])
        .unwrap();
    local_reply(&r, 404, "unknown_host");
    let r = client
        .request("GET", "/api/v1/orders/1", Some("API.C4ANG.COM:80"), &[])
        .unwrap();
    assert_eq!(r.status, 200, "case and port do not matter");

    local_reply(
        &client.get("/api/v1/nothing", &[]).unwrap(),
        404,
        "no_route",
    );
    local_reply(
        &client.get("/api/v1/ordersX", &[]).unwrap(),
        404,
        "no_route",
    );

    // Istio's connection manager resolves dot segments before any filter
    // (meshConfig.pathNormalization BASE): they reach the route they resolve to.
    for resolved in [
        "/api/v1/orders/../payments",
        "/api/v1/orders/%2e%2e/payments",
        "/api/v1/orders/..;/payments",
    ] {
        let r = client.get(resolved, &[]).unwrap();
        assert_eq!(r.status, 200, "{resolved}: {r:?}");
        assert!(
            String::from_utf8_lossy(&r.body).contains(r#""path":"/api/v1/payments""#),
            "{resolved}: {r:?}"
        );
    }
    // Escaped separators and empty segments pass Envoy unchanged: the filter refuses them.
    for bad in [
        "/api/v1/orders%2f..%2fpayments",
        "/api/v1/orders/%5c..",
        "/api/v1//orders/1",
    ] {
        local_reply(&client.get(bad, &[]).unwrap(), 400, "bad_path");
    }

    let r = client
        .request("DELETE", "/api/v1/orders/1", Some("api.c4ang.com"), &[])
        .unwrap();
    local_reply(&r, 405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, POST"));
    assert_eq!(r.json().unwrap()["route"], "orders");

    assert_eq!(
        mesh.attempts("orders"),
        1,
        "no local reply reached a service"
    );
    assert_eq!(mesh.attempts("payments"), 3, "the three resolved paths");
    mesh.envoy
        .wait_stat(
            "wasmcustom.c4mesh.bad_path_total",
            Duration::from_secs(3),
            |v| v == 3,
        )
        .unwrap();
    mesh.envoy
        .wait_stat(
            "wasmcustom.c4mesh.unknown_host_total",
            Duration::from_secs(3),
            |v| v == 1,
        )
        .unwrap();
    mesh.envoy
        .wait_stat(
            "wasmcustom.c4mesh.no_route_total",
            Duration::from_secs(3),
            |v| v == 2,
        )
        .unwrap();
}

#[test]
fn client_retry_and_timeout_headers_have_no_effect() {
    let mesh = LocalMesh::with_filter(r#"{"route_header": true}"#).unwrap();
    let client = mesh.client();
    // A failing service: the client asks for 10 retries and gets at most the route's 3.
    mesh.set_status("orders", 503);
    let r = client
        .get(
            "/api/v1/orders/1",
            &[
                ("x-envoy-max-retries", "10"),
                ("x-envoy-retry-on", "5xx"),
                ("x-c4-route", "payments"),
            ],
        )
        .unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(mesh.attempts("orders"), 4, "1 attempt + 3 retries, not 11");
    for attempt in mesh.service("orders").iter().flat_map(|h| h.seen()) {
        assert_eq!(
            attempt.header("x-c4-route"),
            Some("orders"),
            "client x-c4-* is stripped"
        );
    }
    // A slow service: the client's 1 ms timeout does not cut the request short.
    mesh.set(
        "products",
        Behaviour {
            status: 200,
            delay: Duration::from_millis(300),
        },
    );
    let r = client
        .get(
            "/api/v1/products/1",
            &[
                ("x-envoy-upstream-rq-timeout-ms", "1"),
                ("x-envoy-upstream-rq-per-try-timeout-ms", "1"),
            ],
        )
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let seen = mesh
        .service("products")
        .iter()
        .flat_map(|h| h.seen())
        .collect::<Vec<_>>();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("x-envoy-expected-rq-timeout-ms"),
        Some("10000")
    );
}

#[test]
fn unmatched_pass_forwards_untouched_but_still_strips_controls() {
    let config = r#"{"unmatched": "pass", "route_header": true, "routes": [{"name": "orders", "prefix": "/api/v1/orders/v2", "service": "order-service"}]}"#;
    // Envoy routes only what a VirtualService routes, and the one generated for this
    // configuration has v2 alone: the operator's own sends all of orders to the
    // service, so a request the filter does not match still has somewhere to go.
    let operator = Resources::parse(
        "order-service.yaml",
        "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: order-service
  namespace: ecommerce
spec:
  hosts: [api.c4ang.com, '*']
  gateways: [ecommerce-gateway]
  http:
  - name: orders
    match:
    - uri: {prefix: /api/v1/orders}
    route:
    - destination:
        host: order-service.ecommerce.svc.cluster.local
        port: {number: 8080}
",
        "ecommerce",
    )
    .unwrap();
    let mesh = LocalMesh::start(MeshOptions {
        istio: operator,
        ..MeshOptions::gateway(Wasm::filter(config).unwrap())
    })
    .unwrap();
    let r = mesh
        .client()
        .get("/api/v1/orders/1", &[("x-c4-route", "forged")])
        .unwrap();
    assert_eq!(r.status, 200);
    let seen = mesh
        .service("orders")
        .iter()
        .flat_map(|h| h.seen())
        .collect::<Vec<_>>();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-c4-route"), None);
}
