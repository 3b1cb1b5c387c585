//! The scenario format has two descriptions: the loader
//! (`c4mesh_conformance::scenario`) and the JSON Schema editors and validators use
//! (`harness/conformance/suite/scenario.schema.json`). These tests hold them together: every
//! scenario file passes both, and broken scenarios fail both, the loader naming the
//! file, the line and the field.

use crate::support::workspace_root;
use c4mesh_conformance::scenario;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn schema_path() -> PathBuf {
    workspace_root().join("harness/conformance/suite/scenario.schema.json")
}

fn schema() -> Value {
    let path = schema_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema())
        .unwrap_or_else(|e| panic!("{}: not a valid schema: {e}", schema_path().display()))
}

/// The schema's complaints about scenario text (YAML read as JSON); empty if it is valid.
fn schema_errors(validator: &jsonschema::Validator, text: &str) -> Vec<String> {
    let document: Value = match serde_saphyr::from_str(text) {
        Ok(document) => document,
        Err(e) => return vec![format!("not YAML: {e}")],
    };
    validator
        .iter_errors(&document)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Every scenario file under `dir`, recursively.
fn scenario_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            scenario_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
}

/// Whether `message` names `file` with a line: `file:LINE:`.
fn names_file_and_line(message: &str, file: &str) -> bool {
    message
        .match_indices(&format!("{file}:"))
        .any(|(at, found)| {
            let rest = &message[at + found.len()..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            digits > 0 && rest[digits..].starts_with(':')
        })
}

#[test]
fn the_schema_is_draft_2020_12_and_describes_every_property() {
    let schema = schema();
    assert_eq!(
        schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "the schema must declare draft 2020-12"
    );
    assert!(schema["$id"].is_string(), "the schema needs an $id");
    assert!(schema["title"].is_string(), "the schema needs a title");

    /// Properties of object schemas and definitions without a description. (The
    /// `properties` of a schema without `type`, only narrowing an alternative, need
    /// none.)
    fn undescribed(node: &Value, at: &str, missing: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                let object = map.get("type").is_some_and(|t| {
                    t == "object" || t.as_array().is_some_and(|ts| ts.contains(&"object".into()))
                });
                for (key, value) in map {
                    let here = format!("{at}/{key}");
                    if (key == "properties" && object) || key == "$defs" {
                        for (name, property) in value.as_object().into_iter().flatten() {
                            if property.get("description").is_none() {
                                missing.push(format!("{here}/{name}"));
                            }
                        }
                    }
                    undescribed(value, &here, missing);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    undescribed(item, &format!("{at}/{i}"), missing);
                }
            }
            _ => {}
        }
    }
    let mut missing = Vec::new();
    undescribed(&schema, "#", &mut missing);
    assert!(missing.is_empty(), "without a description: {missing:?}");
}

#[test]
fn every_scenario_file_validates_against_the_schema_and_loads() {
    let validator = validator();
    let mut files = Vec::new();
    scenario_files(
        &workspace_root().join("harness/conformance/suite"),
        &mut files,
    );
    files.sort();
    assert!(
        !files.is_empty(),
        "no scenario files under harness/conformance/suite"
    );
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let errors = schema_errors(&validator, &text);
        if !errors.is_empty() {
            failures.push(format!(
                "{}: against the schema: {}",
                file.display(),
                errors.join("; ")
            ));
        }
        if let Err(e) = scenario::load(file) {
            failures.push(format!("{}: the loader: {e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Scenarios using the forms the format allows, each valid for the schema and the
/// loader alike.
const VALID: &[(&str, &str)] = &[
    (
        "minimal",
        "name: minimal\nrules: [R1]\nsteps:\n  - request: {path: /api/v1/orders}\n",
    ),
    (
        "every field",
        r#"name: every field
rules: [R1, "2.1", 2.5]
description: all of it
targets: [wasm, envoy]
config: {}
seed: 7
mesh:
  workers: 4
  hosts: 3
  per_try_timeout: 1.5s
  outlier_detection: {consecutive_5xx: 5, interval: 10s, base_ejection: 30s, max_ejection_percent: 50}
upstreams:
  - {service: order-service, host: 1, status: 503}
  - {at: 2s, service: order-service, statuses: [503, 200]}
  - {service: order-service, error_rate: 0.5, error_status: 502, latency: 20ms}
  - {service: order-service, latency: {min: 5ms, max: 50ms}, reset: true}
  - {service: order-service, hang: true, host: null}
steps:
  - name: one
    at: 250ms
    request:
      method: POST
      path: /api/v1/orders/42
      host: null
      headers: {x-request-id: abc, x-count: 3}
      body: '{"a": 1}'
    expect:
      status: [200, 503]
      headers: {x-c4-route: orders}
      headers_present: [x-c4-reason]
      headers_absent: [x-envoy-max-retries]
      body: {service: order-service, count: 1}
      service: order-service
      attempts: {min: 1, max: 3}
      upstream_headers: {x-envoy-expected-rq-timeout-ms: 10000}
      upstream_headers_absent: [x-envoy-upstream-rq-timeout-ms]
  - request: {path: /api/v1/orders}
    repeat: {count: 100, concurrency: 8}
    aggregate:
      statuses: {200: {min: 90}, 503: {max: 10}}
      reasons: {budget: 0}
      attempts: 100
      attempts_per_request: {max: 1.5}
      hosts: {order-service/0: {min: 1}, order-service/2: {min: 1}}
  - request: {path: /api/v1/orders, host: api.c4ang.com}
    repeat: {duration: 5s, rate: 20}
    expect: {service: none, status: 404}
  - request: {path: /api/v1/orders/1, abort_after: 200ms}
    expect: {aborted: true, attempts: 1, service: order-service}
finally:
  metrics: {c4mesh.route.orders.requests_total: {min: 100}}
  attempts: {order-service: {min: 100}, order-service/1: 0}
  logs: [started]
  logs_absent: [panicked]
"#,
    ),
    (
        "rejected configuration",
        "name: rejected\nrules: ['2.1']\ntargets: [wasm]\nconfig_text: '{not json'\nrejected: {log: config}\n",
    ),
    (
        "empty optional values",
        "name: empty\nrules: [R1]\ndescription:\nconfig:\nfinally:\nsteps:\n  - request: {path: /}\n    repeat:\n    expect:\n    aggregate:\n",
    ),
];

#[test]
fn valid_scenarios_pass_the_schema_and_the_loader() {
    let validator = validator();
    for (what, text) in VALID {
        let errors = schema_errors(&validator, text);
        assert!(errors.is_empty(), "{what}: against the schema: {errors:?}");
        if let Err(e) = scenario::parse(text, Path::new("valid.yaml")) {
            panic!("{what}: the loader: {e}");
        }
    }
}

/// A broken scenario: what is wrong, the text, and the field path the loader's error
/// must name (if any).
struct Broken {
    what: &'static str,
    text: &'static str,
    field: Option<&'static str>,
}

const BROKEN: &[Broken] = &[
    Broken {
        what: "an unknown field at the top level",
        text: "name: x\nrules: [R1]\ncolour: red\nsteps:\n  - request: {path: /}\n",
        field: None,
    },
    Broken {
        what: "an unknown field in a step's expect",
        text: "name: x\nrules: [R1]\nsteps:\n  - request: {path: /}\n    expect:\n      status: 200\n      stauts: 200\n",
        field: Some("steps[0].expect"),
    },
    Broken {
        what: "no name",
        text: "rules: [R1]\nsteps:\n  - request: {path: /}\n",
        field: None,
    },
    Broken {
        what: "a status that is not a number",
        text: "name: x\nrules: [R1]\nsteps:\n  - request: {path: /}\n    expect: {status: ok}\n",
        field: Some("steps[0].expect.status"),
    },
    Broken {
        what: "a duration without a unit the filter knows",
        text: "name: x\nrules: [R1]\nsteps:\n  - request: {path: /}\n    at: 5 seconds\n",
        field: Some("steps[0].at"),
    },
    Broken {
        what: "a bound without bounds",
        text: "name: x\nrules: [R1]\nsteps:\n  - request: {path: /}\n    expect: {attempts: {}}\n",
        field: Some("steps[0].expect.attempts"),
    },
    Broken {
        what: "no rules",
        text: "name: x\nsteps:\n  - request: {path: /}\n",
        field: None,
    },
    Broken {
        what: "a step without a request",
        text: "name: x\nrules: [R1]\nsteps:\n  - expect: {status: 200}\n",
        field: Some("steps[0]"),
    },
    Broken {
        what: "a request without a path",
        text: "name: x\nrules: [R1]\nsteps:\n  - request: {method: GET}\n",
        field: Some("steps[0].request"),
    },
    Broken {
        what: "an unknown target",
        text: "name: x\nrules: [R1]\ntargets: [wasm, istio]\nsteps:\n  - request: {path: /}\n",
        field: Some("targets[1]"),
    },
    Broken {
        what: "outlier detection without an interval",
        text: "name: x\nrules: [R1]\nmesh:\n  outlier_detection: {consecutive_5xx: 5, base_ejection: 30s, max_ejection_percent: 50}\nsteps:\n  - request: {path: /}\n",
        field: Some("mesh.outlier_detection"),
    },
    Broken {
        what: "a rejection without a log",
        text: "name: x\nrules: [R1]\nconfig_text: '{'\nrejected: {}\n",
        field: Some("rejected"),
    },
    Broken {
        what: "an unknown field in an upstream change",
        text: "name: x\nrules: [R1]\nupstreams:\n  - {service: order-service, status: 503, delay: 1s}\nsteps:\n  - request: {path: /}\n",
        field: Some("upstreams[0]"),
    },
    Broken {
        what: "a latency range without max",
        text: "name: x\nrules: [R1]\nupstreams:\n  - {service: order-service, latency: {min: 5ms}}\nsteps:\n  - request: {path: /}\n",
        field: Some("upstreams[0]"),
    },
    Broken {
        what: "a status code key that is not a number",
        text: "name: x\nrules: [R1]\nsteps:\n  - request: {path: /}\n    aggregate: {statuses: {ok: 3}}\n",
        field: Some("steps[0].aggregate.statuses"),
    },
    Broken {
        what: "a list where a mapping belongs",
        text: "name: x\nrules: [R1]\nmesh: [2, 2]\nsteps:\n  - request: {path: /}\n",
        field: Some("mesh"),
    },
    Broken {
        what: "an abort after no time",
        text: "name: x\nrules: [O3]\nsteps:\n  - request: {path: /, abort_after: 0ms}\n",
        field: Some("steps[0].request.abort_after"),
    },
    Broken {
        what: "an aborted request whose client never gives up",
        text: "name: x\nrules: [O3]\nsteps:\n  - request: {path: /}\n    expect: {aborted: true}\n",
        field: Some("steps[0].expect.aborted"),
    },
    Broken {
        what: "a status expected of an aborted request",
        text: "name: x\nrules: [O3]\nsteps:\n  - request: {path: /, abort_after: 1s}\n    expect: {aborted: true, status: 503}\n",
        field: Some("steps[0].expect.status"),
    },
    Broken {
        what: "workers out of range",
        text: "name: x\nrules: [R1]\nmesh: {workers: 0}\nsteps:\n  - request: {path: /}\n",
        field: Some("mesh.workers"),
    },
];

#[test]
fn broken_scenarios_fail_the_schema_and_the_loader_which_names_file_line_and_field() {
    let validator = validator();
    for broken in BROKEN {
        let what = broken.what;
        assert!(
            !schema_errors(&validator, broken.text).is_empty(),
            "{what}: the schema accepts it"
        );
        let message = match scenario::parse(broken.text, Path::new("broken.yaml")) {
            Ok(_) => panic!("{what}: the loader accepts it"),
            Err(e) => e.to_string(),
        };
        assert!(
            names_file_and_line(&message, "broken.yaml"),
            "{what}: the loader's error does not name file and line (`broken.yaml:LINE:`): {message}"
        );
        if let Some(field) = broken.field {
            assert!(
                message.contains(field),
                "{what}: the loader's error does not name {field}: {message}"
            );
        }
    }
}

#[test]
fn names_file_and_line_wants_a_line_number() {
    assert!(names_file_and_line(
        "broken.yaml:12: steps[0]: bad",
        "broken.yaml"
    ));
    assert!(!names_file_and_line(
        "broken.yaml: steps: bad",
        "broken.yaml"
    ));
    assert!(!names_file_and_line("broken.yaml:12 bad", "broken.yaml"));
    assert!(!names_file_and_line("other.yaml:12: bad", "broken.yaml"));
}
