//! Envoy binds port 0 for its listener and its admin interface, and what the launcher
//! reads back is where it serves; an Envoy that exits before serving is a variant, not
//! a message to search.
//!
//! These tests start a real Envoy (`ENVOY_BIN`, the project's `.venv`, or `PATH`).

use c4mesh_mesh::envoy::{Envoy, EnvoyConfig, EnvoyError, ServiceRoute};
use c4mesh_mesh::upstream::Behaviour;
use c4mesh_mesh::{Client, Upstream, Wasm};

fn gateway(upstream: &Upstream) -> EnvoyConfig {
    let services = c4mesh_mesh::services()
        .into_iter()
        .map(|s| ServiceRoute {
            name: s.name,
            prefix: s.prefix,
            hosts: vec![upstream.addr()],
        })
        .collect();
    EnvoyConfig::gateway(1, Wasm::None, services).expect("the gateway's configuration")
}

#[test]
fn the_ports_read_back_are_where_envoy_serves() {
    let upstream = Upstream::start("order-service", Behaviour::status(200)).expect("an upstream");
    let envoy = Envoy::start(&gateway(&upstream)).expect("Envoy starts");
    assert_ne!(envoy.listener.port(), 0);
    assert_ne!(envoy.admin.port(), 0);
    assert_ne!(envoy.listener, envoy.admin);
    let ready = envoy
        .admin_get("/ready")
        .expect("the admin interface answers");
    assert_eq!(ready.trim(), "LIVE");
    let response = Client::new(envoy.listener)
        .get("/api/v1/orders/1", &[])
        .expect("the listener answers");
    assert_eq!(response.status, 200, "{}", envoy.log());
    let listeners = envoy
        .admin_get("/listeners?format=json")
        .expect("the admin /listeners");
    assert!(
        listeners.contains(&format!("\"port_value\": {}", envoy.listener.port())),
        "{listeners}"
    );
}

#[test]
fn an_envoy_that_exits_is_the_exited_variant() {
    let upstream = Upstream::start("order-service", Behaviour::status(200)).expect("an upstream");
    let error = Envoy::start_patched(&gateway(&upstream), |document| {
        document["static_resources"]["clusters"] = serde_json::json!("not a list");
    })
    .err()
    .expect("Envoy refuses a bootstrap it cannot read");
    assert!(matches!(error, EnvoyError::Exited { .. }), "{error}");
}
