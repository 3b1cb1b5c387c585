//! The replay Job as an operator applies it: valid against the Kubernetes 1.33 schema
//! of `batch/v1` Job and `v1` ConfigMap, its shard argument turned into each pod's
//! index by the kubelet, aimed at the ingress gateway the manifests deploy.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod support;

use c4mesh_manifests::replay_job::{in_cluster_gateway, COMPLETION_INDEX_ENV};
use c4mesh_manifests::{replay_job, ReplayJobOptions};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use support::{schemas, validate};

/// Eight shards with a traffic file and gates: every part of the Job present.
fn options() -> ReplayJobOptions {
    ReplayJobOptions {
        image: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/c4mesh@sha256:0b1c".into(),
        extra_args: vec![
            "--slo".into(),
            "p99<50ms".into(),
            "--slo".into(),
            "errors<0.1%".into(),
            "--abort-on".into(),
            "errors>5%/10s".into(),
        ],
        traffic: Some(
            "{\"method\": \"GET\", \"path\": \"/api/v1/products/1\"}\n\
             {\"method\": \"POST\", \"path\": \"/api/v1/orders\", \"body\": \"{}\"}\n"
                .into(),
        ),
        ..ReplayJobOptions::new(8, 40_000.0, "10m")
    }
}

/// The YAML stream's documents, as the API server would read them.
fn documents(options: &ReplayJobOptions) -> Vec<Value> {
    let text = replay_job(options).unwrap().yaml().unwrap();
    serde_saphyr::from_multiple(&text).unwrap()
}

fn job(options: &ReplayJobOptions) -> Value {
    documents(options)
        .into_iter()
        .find(|d| d["kind"] == "Job")
        .unwrap()
}

#[test]
fn the_replay_job_validates_against_the_kubernetes_schema() {
    let schemas = schemas();
    let closed = ReplayJobOptions {
        extra_args: vec!["--concurrency".into(), "64".into()],
        ..ReplayJobOptions::new(8, None, "10m")
    };
    for options in [options(), ReplayJobOptions::new(1, 10.0, "30s"), closed] {
        let docs = documents(&options);
        assert_eq!(docs.len(), 1 + usize::from(options.traffic.is_some()));
        for doc in &docs {
            if let Err(e) = validate(doc, &schemas) {
                panic!("{e}\n{doc:#}");
            }
        }
    }
    // And it reads back as the objects it was written from.
    let generated = replay_job(&options()).unwrap();
    let job: k8s_openapi::api::batch::v1::Job = serde_json::from_value(job(&options())).unwrap();
    assert_eq!(job, generated.job);
}

#[test]
fn broken_replay_jobs_fail_validation() {
    let schemas = schemas();
    let good = job(&options());
    validate(&good, &schemas).unwrap();

    let mut job = good.clone();
    job["spec"]["completionMode"] = Value::from(1);
    assert!(
        validate(&job, &schemas).is_err(),
        "completionMode is a string"
    );
    let mut job = good.clone();
    job["spec"]["template"]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("containers");
    assert!(validate(&job, &schemas).is_err(), "a pod needs containers");
    let mut job = good.clone();
    job["spec"]["parallelism"] = Value::from("eight");
    assert!(
        validate(&job, &schemas).is_err(),
        "parallelism is an integer"
    );
    let mut job = good.clone();
    job["spec"]["shards"] = Value::from(8);
    assert!(validate(&job, &schemas).is_err(), "no such field");
    let mut job = good.clone();
    job["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("name");
    assert!(
        validate(&job, &schemas).is_err(),
        "a container needs a name"
    );
    let mut job = good.clone();
    job["spec"]["podFailurePolicy"]["rules"][0]
        .as_object_mut()
        .unwrap()
        .remove("action");
    assert!(validate(&job, &schemas).is_err(), "a rule needs an action");

    let mut config_map = documents(&options())
        .into_iter()
        .find(|d| d["kind"] == "ConfigMap")
        .unwrap();
    validate(&config_map, &schemas).unwrap();
    config_map["data"]["traffic.jsonl"] = Value::from(42);
    assert!(
        validate(&config_map, &schemas).is_err(),
        "data holds strings"
    );
}

/// What the kubelet makes of a container argument: `$(NAME)` of a variable the
/// container declares becomes its value, `$$` becomes `$`, anything else stays.
fn expand(arg: &str, env: &BTreeMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some((name, tail)) = after
            .strip_prefix('(')
            .and_then(|inner| inner.split_once(')'))
        {
            match env.get(name) {
                Some(value) => out.push_str(value),
                None => out.push_str(&format!("$({name})")),
            }
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn the_kubelet_turns_the_shard_argument_into_the_pods_index() {
    let mut options = options();
    options
        .extra_args
        .extend(["--slo".into(), "$(HOME)".into()]);
    let job = job(&options);
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let declared: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(declared.contains(&COMPLETION_INDEX_ENV));
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for index in ["0", "3", "7"] {
        let env = BTreeMap::from([(COMPLETION_INDEX_ENV, index), ("HOME", "/root")]);
        let expanded: Vec<String> = args.iter().map(|a| expand(a, &env)).collect();
        let at = expanded.iter().position(|a| a == "--shard").unwrap();
        assert_eq!(expanded[at + 1], format!("{index}/8"));
        // Operator text arrives as written.
        assert_eq!(
            expanded[expanded.len() - 8..],
            [
                "--slo",
                "p99<50ms",
                "--slo",
                "errors<0.1%",
                "--abort-on",
                "errors>5%/10s",
                "--slo",
                "$(HOME)"
            ]
        );
    }
}

#[test]
fn the_default_target_is_the_ingress_gateway_the_manifests_deploy() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../manifests/istio-system/ingress-gateway-service.yaml");
    let service: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let host = format!(
        "{}.{}.svc.cluster.local",
        service["metadata"]["name"].as_str().unwrap(),
        service["metadata"]["namespace"].as_str().unwrap()
    );
    assert_eq!(in_cluster_gateway(), format!("http://{host}"));
    let ports = service["spec"]["ports"].as_array().unwrap();
    assert!(
        ports.iter().any(|p| p["port"] == 80),
        "http:// without a port is port 80: {ports:?}"
    );
    assert_eq!(
        ReplayJobOptions::new(1, 1.0, "1s").target,
        in_cluster_gateway()
    );
}
