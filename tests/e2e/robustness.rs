//! 2.1 rejection, 2.5 debug headers, 2.7 robustness.

use c4mesh_mesh::envoy::{EnvoyConfig, ServiceRoute};
use c4mesh_mesh::{Envoy, LocalMesh, Wasm};

#[test]
fn envoy_refuses_an_invalid_configuration_naming_the_field() {
    let config = EnvoyConfig::gateway(
        2,
        Wasm::filter(r#"{"retry_budget": {"ratio": 1.5}}"#).unwrap(),
        vec![ServiceRoute {
            name: "order-service".into(),
            prefix: "/api/v1/orders".into(),
            hosts: vec!["127.0.0.1:9".parse().unwrap()],
        }],
    )
    .unwrap();
    let log = Envoy::start_refused(&config).unwrap();
    assert!(
        log.contains("invalid configuration: retry_budget.ratio: must be within [0, 1], got 1.5"),
        "{log}"
    );
}

#[test]
fn odd_requests_never_trap_the_filter() {
    let mesh = LocalMesh::with_filter("").unwrap();
    let client = mesh.client();
    // Non-UTF-8 header bytes.
    let mut raw =
        b"GET /api/v1/orders/1 HTTP/1.1\r\nhost: api.c4ang.com\r\nx-bin: \xff\xfe\x80caf\xe9\r\n"
            .to_vec();
    raw.extend_from_slice(b"x-c4-\xff: 1\r\nconnection: close\r\n\r\n");
    let r = client.send_raw(&raw).unwrap();
    assert!(r.status < 500, "{r:?}");
    // A 50 KB header.
    let big = "a".repeat(50 * 1024);
    let r = client.get("/api/v1/orders/1", &[("x-big", &big)]).unwrap();
    assert_eq!(r.status, 200);
    // No Host at all (HTTP/1.0).
    let r = client
        .send_raw(b"GET /api/v1/orders/1 HTTP/1.0\r\n\r\n")
        .unwrap();
    assert!(r.status < 500, "{r:?}");
    // Non-UTF-8 path bytes and a path without a slash.
    let _ = client.send_raw(
        b"GET /api/v1/orders/\xff HTTP/1.1\r\nhost: api.c4ang.com\r\nconnection: close\r\n\r\n",
    );
    // Every worker still serves.
    for _ in 0..20 {
        assert_eq!(client.get("/api/v1/orders/1", &[]).unwrap().status, 200);
    }
    let log = mesh.envoy.log();
    for sign in [
        "panicked",
        "RuntimeError",
        "unreachable",
        "Wasm VM failed",
        "failed to",
    ] {
        assert!(!log.contains(sign), "`{sign}` in the log:\n{log}");
    }
}

#[test]
fn debug_headers_only_when_asked() {
    let mesh = LocalMesh::with_filter(r#"{"debug_headers": true}"#).unwrap();
    let r = mesh.client().get("/api/v1/products/1", &[]).unwrap();
    assert_eq!(r.header("x-c4-route"), Some("products"));
    assert_eq!(r.header("x-c4-retries-granted"), Some("3"));
    assert_eq!(r.header("x-c4-attempts"), Some("1"));
    assert_eq!(r.header("x-c4-circuit"), Some("closed"));
    let r = mesh.client().get("/nope", &[]).unwrap();
    assert_eq!(r.header("x-c4-route"), Some("none"));
    assert_eq!(r.header("x-c4-reason"), Some("no_route"));

    let quiet = LocalMesh::with_filter("").unwrap();
    let r = quiet.client().get("/api/v1/products/1", &[]).unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.headers.iter().all(|(n, _)| !n.starts_with("x-c4-")),
        "{r:?}"
    );
}
