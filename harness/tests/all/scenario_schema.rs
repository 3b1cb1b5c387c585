use crate::support::workspace_root;
use serde_json::Value;
use std::path::Path;

fn validator() -> jsonschema::Validator {
    let path = workspace_root().join("tests/conformance/scenario.schema.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::draft202012::new(&schema).unwrap()
}

#[test]
fn scenario_schema_explore() {
    let v = validator();
    let head = "name: x\nrules: [R1]\n";
    let cases: &[&str] = &[
        "name: 42\nrules: [2.1]\nsteps: [{request: {path: /}}]",
        "name: true\nrules: [R1]\nsteps: [{request: {path: /}}]",
        "name:\nrules: [R1]\nsteps: [{request: {path: /}}]",
        "name: null\nrules: [R1]\nsteps: [{request: {path: /}}]",
        "STEP: {path: /, host: null}",
        "STEP: {path: /, host: }",
        "STEP: {path: 5}",
        "STEP: {path: ~}",
        "STEP: {path: /, headers: {x-a: 10000}}",
        "STEP: {path: /}\n    expect: {attempts: {min: 1, mx: 3}}",
        "STEP: {path: /}\n    expect: {attempts: [1, 3]}",
        "STEP: {path: /}\n    expect: {attempts: [1]}",
        "STEP: {path: /}\n    expect: {attempts: [null, 3]}",
        "STEP: {path: /}\n    expect: {attempts: [1, 2, 3]}",
        "STEP: {path: /}\n    expect: {attempts: []}",
        "STEP: {path: /}\n    expect: {attempts: {min: null, max: 2}}",
        "STEP: {path: /}\n    expect: {attempts: {}}",
        "STEP: {path: /}\n    expect: {attempts: null}",
        "STEP: {path: /}\n    expect: {attempts: \"3\"}",
        "STEP: {path: /}\n    expect: {status: [200, 503]}",
        "STEP: {path: /}\n    expect: {status: []}",
        "STEP: {path: /}\n    expect: {status: \"200\"}",
        "STEP: {path: /}\n    expect: {status: 200.0}",
        "STEP: {path: /}\n    expect: {status: null}",
        "STEP: {path: /}\n    expect: {status: ok}",
        "STEP: {path: /}\n    expect: {stauts: 200}",
        "STEP: {path: /}\n    aggregate: {statuses: {503: 3, 200: {min: 1}}}",
        "STEP: {path: /}\n    aggregate: {statuses: {\"503\": 3}}",
        "STEP: {path: /}\n    aggregate: {statuses: {+503: 3}}",
        "STEP: {path: /}\n    aggregate: {statuses: {0503: 3}}",
        "STEP: {path: /}\n    aggregate: {statuses: {70000: 3}}",
        "STEP: {path: /}\n    aggregate: {hosts: {order-service/+1: 3}}",
        "STEP: {path: /}\n    aggregate: {hosts: {order-service/1: 3, order-service: 2}}",
        "STEP: {path: /}\n    at: 5 seconds",
        "STEP: {path: /}\n    at: 1.5ms",
        "STEP: {path: /}\n    at: null",
        "STEP: {path: /}\n    repeat: {count: 3, concurrency: 2.0}",
        "STEP: {path: /}\n    repeat: {count: null, duration: 1s, rate: 10}",
        "STEP: {path: /}\n    repeat: {count: 0x10}",
        "STEP: {path: /}\n    expect:\n    aggregate:\n    repeat:",
        "STEP: {path: /}\nupstreams:\n  - {service: order-service, latency: [5ms, 50ms]}",
        "STEP: {path: /}\nupstreams:\n  - {service: order-service, latency: {min: 5ms, max: 50ms, foo: 1}}",
        "STEP: {path: /}\nupstreams:\n  - {service: order-service, latency: [5ms]}",
        "STEP: {path: /}\nupstreams:\n  - {service: order-service, latency: {min: 5ms}}",
        "STEP: {path: /}\nupstreams:\n  - {service: order-service, bogus: 1}",
        "STEP: {path: /}\nupstreams:\n  - {service: order-service, status: null, reset: true, host: null}",
        "STEP: {path: /}\nupstreams:\n  - {service: order-service, reset: null}",
        "STEP: {path: /}\nupstreams:\n  - {service: order-service, status: \"503\"}",
        "STEP: {path: /}\nupstreams:\n  - {service: order-service, error_rate: 1}",
        "STEP: {path: /}\nupstreams:\n  - {service: order-service, at: null}",
        "STEP: {path: /}\nupstreams:\n  - service: order-service\n    reset: true\n    at:",
        "STEP: {path: /}\nupstreams:",
        "STEP: {path: /}\nupstreams: null",
        "STEP: {path: /}\nmesh:",
        "STEP: {path: /}\nmesh: null",
        "STEP: {path: /}\nmesh: {workers: 2.0}",
        "STEP: {path: /}\nmesh: {per_try_timeout: null}",
        "STEP: {path: /}\nfinally: null\nconfig: null\ndescription: null",
        "STEP: {path: /}\nfinally: {logs: [1, true]}",
        "STEP: {path: /}\nfile: x",
        "STEP: {path: /}\ntargets: [wasm, \"envoy\"]",
        "STEP: {path: /}\nseed: 18446744073709551615",
        "STEP: {path: /}\nconfig: [1]",
        "rejected: {log: routes}",
        "rejected: null\nSTEP: {path: /}",
    ];
    for case in cases {
        let text = if case.starts_with("STEP: ") {
            format!("{head}steps:\n  - request: {}", &case[6..])
        } else if case.contains("\nSTEP: ") {
            let (a, b) = case.split_once("\nSTEP: ").unwrap();
            format!("{head}{a}\nsteps:\n  - request: {b}")
        } else if case.starts_with("name") {
            case.to_string()
        } else {
            format!("{head}{case}")
        };
        let json: Result<Value, _> = serde_yaml::from_str(&text);
        let schema = match &json {
            Ok(j) => {
                let errors: Vec<String> = v.iter_errors(j).map(|e| format!("{}: {e}", e.instance_path())).collect();
                if errors.is_empty() { "ok".to_string() } else { errors.join("; ") }
            }
            Err(e) => format!("yaml->json error {e}"),
        };
        let loader = match c4mesh::conformance::scenario::parse(&text, Path::new("broken.yaml")) {
            Ok(_) => "ok".to_string(),
            Err(e) => e.to_string(),
        };
        let agree = (schema == "ok") == (loader == "ok");
        println!("=== {} {:?}\n  json: {}\n  schema: {}\n  loader: {}", if agree {"AGREE"} else {"DIFFER"}, case, json.map(|j| j.to_string()).unwrap_or_default(), schema, loader);
    }
}
