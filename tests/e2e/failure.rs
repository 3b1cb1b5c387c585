//! What clients get when the module fails (SPEC 2.7), in real Envoy: a module that
//! traps on some requests, under each failure policy a WasmPlugin can choose (the
//! gateway's generated `FAIL_RELOAD`, the sidecars' `FAIL_OPEN`, and `FAIL_CLOSE`),
//! which Istio turns into Envoy's `failure_policy`.

use c4mesh_mesh::{Behaviour, Client, Envoy, EnvoyConfig, ServiceRoute, Upstream, Wasm};
use serde_json::Value;
use std::time::{Duration, Instant};

/// One Envoy worker (one VM: a trap fails every later request of that VM) with the
/// trapping module in front of one upstream, under `policy`.
fn envoy_with_trapping_module(policy: &str, upstream: &Upstream) -> Envoy {
    // The upstream always answers 200 and a trap is a local reply, which the router
    // never retries: the gateway's retry policy plays no part.
    let config = EnvoyConfig::gateway(
        1,
        Wasm::Module {
            path: c4mesh_guests::TRAP.file().expect("the trapping module"),
            config: String::new(),
        },
        vec![ServiceRoute {
            name: "order-service".into(),
            prefix: "/api/v1/orders".into(),
            hosts: vec![upstream.addr()],
        }],
    )
    .expect("the gateway's plan");
    Envoy::start_patched(&config, |bootstrap| set_failure_policy(bootstrap, policy))
        .expect("Envoy with the trapping module")
}

/// The `@type` of a Wasm HTTP filter's configuration (the filters themselves are
/// named after their WasmPlugin, `extensions.istio.io/wasmplugin/<name>`).
const WASM_FILTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// Sets `failure_policy` on every Wasm HTTP filter of the bootstrap.
fn set_failure_policy(value: &mut Value, policy: &str) {
    match value {
        Value::Object(map) => {
            let typed_config = map.get_mut("typed_config");
            if let Some(typed_config) = typed_config
                .filter(|t| t.get("@type").and_then(Value::as_str) == Some(WASM_FILTER_TYPE))
            {
                if let Some(Value::Object(plugin)) = typed_config.get_mut("config") {
                    plugin.insert("failure_policy".into(), Value::from(policy));
                }
            }
            map.values_mut().for_each(|v| set_failure_policy(v, policy));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| set_failure_policy(v, policy)),
        _ => {}
    }
}

/// Sends `path`; the status, and whether the upstream saw it and with the module's mark.
fn send(client: &Client, upstream: &Upstream, path: &str) -> (u16, Option<bool>) {
    let before = upstream.seen().len();
    let response = client.get(path, &[]).expect("an answer from Envoy");
    let seen = upstream.seen();
    let marked = seen
        .get(before)
        .map(|attempt| attempt.header("x-trap-module") == Some("passed"));
    (response.status, marked)
}

#[test]
fn a_trap_fails_its_request_then_fail_closed_refuses_everything_fail_open_bypasses_and_fail_reload_recovers(
) {
    for policy in ["FAIL_CLOSED", "FAIL_OPEN", "FAIL_RELOAD"] {
        let upstream = Upstream::start("order-service", Behaviour::status(200)).unwrap();
        let envoy = envoy_with_trapping_module(policy, &upstream);
        let client = Client::new(envoy.listener);

        assert_eq!(
            send(&client, &upstream, "/api/v1/orders/1"),
            (200, Some(true)),
            "{policy}: before the trap the module handles requests"
        );
        // The request that traps gets Envoy's 503 under every policy, never the service.
        assert_eq!(
            send(&client, &upstream, "/api/v1/orders/trap"),
            (503, None),
            "{policy}: the trapping request"
        );
        assert!(
            envoy.log().contains("RuntimeError: unreachable"),
            "{policy}: Envoy logs the trap"
        );
        match policy {
            // The VM is dead: every later request is refused, none reaches the service.
            "FAIL_CLOSED" => {
                for n in 2..6 {
                    assert_eq!(
                        send(&client, &upstream, &format!("/api/v1/orders/{n}")),
                        (503, None),
                        "{policy}: after the trap"
                    );
                }
            }
            // Later requests go to the service without the module.
            "FAIL_OPEN" => {
                for n in 2..6 {
                    assert_eq!(
                        send(&client, &upstream, &format!("/api/v1/orders/{n}")),
                        (200, Some(false)),
                        "{policy}: after the trap"
                    );
                }
            }
            // Envoy starts a new VM (back-off from 1 s): the module handles requests again.
            _ => {
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let outcome = send(&client, &upstream, "/api/v1/orders/2");
                    if outcome == (200, Some(true)) {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{policy}: the module was not back within 10 s (last {outcome:?})"
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}
