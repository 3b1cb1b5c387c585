//! Plugin configuration updates in a running Envoy (SPEC 2.7): the filter's
//! configuration is discovered from a file (ECDS over a path config source, as Istio
//! delivers WasmPlugin changes over xDS). An invalid update is refused with the field
//! path in Envoy's log and the configuration in force stays; a valid one takes effect
//! without failing the requests in flight.

use c4mesh_mesh::{Behaviour, Client, Envoy, EnvoyConfig, ServiceRoute, Upstream, Wasm};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// The filter's HTTP filter entry for `config` (the plugin configuration JSON).
fn filter_entry(wasm: &Path, config: &str) -> Value {
    json!({
        "@type": WASM_TYPE,
        "config": {
            "name": "c4mesh",
            "root_id": "",
            "vm_config": {
                "vm_id": "c4mesh",
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": wasm}}
            },
            "configuration": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": config
            }
        }
    })
}

/// Publishes `config` as version `version` of the discovered filter: written aside,
/// then renamed over the watched file, as Envoy's file watch expects.
fn publish(file: &Path, wasm: &Path, version: u32, config: &str) {
    let response = json!({
        "version_info": version.to_string(),
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": "c4mesh",
            "typed_config": filter_entry(wasm, config)
        }]
    });
    let aside = file.with_extension(format!("{version}.tmp"));
    std::fs::write(&aside, response.to_string()).expect("writing the update");
    std::fs::rename(&aside, file).expect("publishing the update");
}

/// Replaces the Wasm HTTP filter of the bootstrap with one discovered from `file`.
fn discover_filter_from(value: &mut Value, file: &Path) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(filters)) = map.get_mut("http_filters") {
                for filter in filters.iter_mut() {
                    // The Wasm filters are named after their WasmPlugin; found by type.
                    if filter["typed_config"]["@type"] == WASM_TYPE {
                        *filter = json!({
                            "name": "c4mesh",
                            "config_discovery": {
                                "config_source": {
                                    "path_config_source": {"path": file},
                                    "resource_api_version": "V3"
                                },
                                "type_urls": [WASM_TYPE]
                            }
                        });
                    }
                }
            }
            map.values_mut().for_each(|v| discover_filter_from(v, file));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| discover_filter_from(v, file)),
        _ => {}
    }
}

/// Whether the configuration in force has `debug_headers` on, by a request.
fn debug_headers_on(client: &Client) -> bool {
    let response = client
        .get("/api/v1/orders/1", &[])
        .expect("an answer from Envoy");
    assert_eq!(response.status, 200, "{response:?}");
    response.header("x-c4-route").is_some()
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_invalid_update_is_refused_naming_the_field_and_a_valid_one_applies_without_failing_requests()
{
    let scratch = tempfile::Builder::new()
        .prefix("c4mesh-ecds-")
        .tempdir()
        .expect("a temporary directory");
    let file = scratch.path().join("c4mesh-filter.json");
    let wasm = c4mesh_guests::FILTER.file().unwrap();
    publish(&file, &wasm, 1, "");

    let upstream = Upstream::start(
        "order-service",
        Behaviour {
            status: 200,
            delay: Duration::from_millis(20),
        },
    )
    .unwrap();
    let config = EnvoyConfig::gateway(
        2,
        Wasm::filter("").unwrap(),
        vec![ServiceRoute {
            name: "order-service".into(),
            prefix: "/api/v1/orders".into(),
            hosts: vec![upstream.addr()],
        }],
    )
    .unwrap();
    let envoy = Envoy::start_patched(&config, |bootstrap| {
        discover_filter_from(bootstrap, &file);
        // Dynamic configuration needs the node to say who it is.
        bootstrap["node"] = json!({"id": "gateway", "cluster": "istio-ingressgateway"});
    })
    .unwrap();
    let client = Client::new(envoy.listener);
    assert!(!debug_headers_on(&client), "version 1: the defaults");

    // A valid update, published while requests are in flight: none of them fails.
    let load = {
        let client = Client::new(envoy.listener);
        std::thread::spawn(move || {
            (0..60)
                .map(|_| client.get("/api/v1/orders/2", &[]).map(|r| r.status))
                .collect::<Vec<_>>()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    publish(&file, &wasm, 2, r#"{"debug_headers": true}"#);
    wait_for("version 2 in force", || debug_headers_on(&client));
    let statuses = load.join().unwrap();
    assert!(
        statuses.iter().all(|s| matches!(s, Ok(200))),
        "requests during the update: {statuses:?}"
    );

    // An invalid update: refused, the field named in the log, version 2 still in force.
    publish(&file, &wasm, 3, r#"{"debug_headers": "yes"}"#);
    wait_for("the refusal in Envoy's log", || {
        envoy.log().contains("debug_headers")
    });
    let log = envoy.log();
    let refusal = log
        .lines()
        .find(|l| l.contains("debug_headers"))
        .unwrap_or_default();
    assert!(
        refusal.contains("c4mesh"),
        "the refusal names the plugin: {refusal}"
    );
    for _ in 0..20 {
        assert!(debug_headers_on(&client), "version 2 stays in force");
    }
    let fails = envoy
        .admin_get("/stats?format=json&filter=extension_config_discovery")
        .unwrap();
    let stats: Value = serde_json::from_str(&fails).unwrap();
    let stat = |name: &str| {
        stats["stats"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["name"] == name))
            .map(|s| s["value"].clone())
    };
    for (name, value) in [
        (
            "extension_config_discovery.http_filter.c4mesh.update_rejected",
            json!(1),
        ),
        (
            "extension_config_discovery.http_filter.c4mesh.version_text",
            json!("2"),
        ),
    ] {
        assert_eq!(
            stat(name),
            Some(value),
            "Envoy refused version 3 and keeps 2 ({name}):\n{fails}"
        );
    }
}
