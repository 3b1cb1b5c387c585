//! The manifests: up to date, valid against the real CRD schemas and `k8s-openapi`,
//! carrying the filter's own configuration and module digest.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod support;

use c4mesh_filter_core::{Config, Mode};
use c4mesh_manifests::{generate, oci, sha256_hex, MeshOptions};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::{schemas, validate};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn module() -> Vec<u8> {
    c4mesh_guests::FILTER.bytes().to_vec()
}

/// Every YAML document under `manifests/`, with the file it came from (patches of
/// objects the manifests do not create, `*.patch.yaml`, aside: see
/// `patches_land_where_istio_reads_them`).
fn documents() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut dirs = vec![repo().join("manifests")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("manifests/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml")
                && !path.to_string_lossy().ends_with(".patch.yaml")
            {
                let text = std::fs::read_to_string(&path).expect("yaml");
                let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("yaml documents");
                for value in docs {
                    if !value.is_null() {
                        out.push((path.display().to_string(), value));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn checked_in_manifests_are_what_the_generator_writes() {
    let manifests = generate(&MeshOptions::for_module(&module())).unwrap();
    let differ = manifests.differences(&repo().join("manifests"));
    assert!(
        differ.is_empty(),
        "manifests/ differs from a fresh generation in {differ:?}: run `cargo run --release -p c4mesh -- manifests`"
    );
}

#[test]
fn every_object_validates_against_its_schema() {
    let schemas = schemas();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for (file, doc) in documents() {
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        if kind == "Kustomization" {
            continue;
        }
        if let Err(e) = validate(&doc, &schemas) {
            panic!("{file}: {e}");
        }
        *kinds
            .entry(format!(
                "{} {kind}",
                doc["apiVersion"].as_str().unwrap_or_default()
            ))
            .or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = [
        ("v1 Namespace", 1),
        ("v1 Service", 7),
        ("apps/v1 Deployment", 6),
        ("networking.istio.io/v1 VirtualService", 6),
        ("networking.istio.io/v1 DestinationRule", 6),
        ("networking.istio.io/v1 Gateway", 1),
        ("extensions.istio.io/v1alpha1 WasmPlugin", 3),
        ("security.istio.io/v1 PeerAuthentication", 1),
        ("gateway.networking.k8s.io/v1 Gateway", 1),
        ("gateway.networking.k8s.io/v1 HTTPRoute", 6),
        ("monitoring.coreos.com/v1 PrometheusRule", 1),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_owned(), n))
    .collect();
    assert_eq!(kinds, expected);
}

#[test]
fn broken_objects_fail_validation() {
    let schemas = schemas();
    let docs = documents();
    let find = |kind: &str| {
        docs.iter()
            .find(|(_, d)| d["kind"] == kind)
            .map(|(_, d)| d.clone())
            .expect(kind)
    };

    let mut rule = find("DestinationRule");
    validate(&rule, &schemas).unwrap();
    rule["spec"]["trafficPolicy"]["outlierDetection"]["consecutive5xxErrors"] = Value::from("five");
    assert!(
        validate(&rule, &schemas).is_err(),
        "a string where the CRD wants an integer"
    );
    let mut rule = find("DestinationRule");
    rule["spec"]["trafficPolicy"]["loadBalancer"]["simple"] = Value::from("RANDOMLY");
    assert!(
        validate(&rule, &schemas).is_err(),
        "a value outside the CRD's enum"
    );
    let mut plugin = find("WasmPlugin");
    plugin["spec"]["failStrategy"] = Value::from("FAIL_SOMETIMES");
    assert!(validate(&plugin, &schemas).is_err());
    let mut plugin = find("WasmPlugin");
    plugin["spec"]["match"] = serde_json::json!([{"mode": "OUTBOUND"}]);
    assert!(
        validate(&plugin, &schemas).is_err(),
        "a traffic direction that is no WorkloadMode"
    );
    let mut plugin = find("WasmPlugin");
    plugin["spec"]["targetRefs"] = serde_json::json!([{"group": "gateway.networking.k8s.io"}]);
    assert!(
        validate(&plugin, &schemas).is_err(),
        "a target without kind and name"
    );
    let mut rule = find("PrometheusRule");
    rule["spec"]["groups"][0]["rules"][0]["for"] = Value::from("two minutes");
    assert!(
        validate(&rule, &schemas).is_err(),
        "a duration Prometheus does not read"
    );
    let mut deployment = find("Deployment");
    deployment["spec"]["replicas"] = Value::from("two");
    assert!(
        validate(&deployment, &schemas).is_err(),
        "k8s-openapi refuses it"
    );
}

/// Every WasmPlugin under `manifests/`, by `namespace/name`.
fn wasm_plugins() -> BTreeMap<String, Value> {
    documents()
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == "WasmPlugin")
        .map(|d| {
            let meta = &d["metadata"];
            (
                format!(
                    "{}/{}",
                    meta["namespace"].as_str().unwrap(),
                    meta["name"].as_str().unwrap()
                ),
                d["spec"].clone(),
            )
        })
        .collect()
}

fn plugin_config(spec: &Value) -> Config {
    Config::parse(&serde_json::to_vec(&spec["pluginConfig"]).unwrap()).unwrap()
}

#[test]
fn wasm_plugins_carry_the_filter_module_and_its_digest() {
    let sha256 = sha256_hex(&module());
    let plugins = wasm_plugins();
    assert_eq!(
        plugins.keys().collect::<Vec<_>>(),
        [
            "ecommerce/c4mesh-gateway",
            "ecommerce/c4mesh-sidecars",
            "istio-system/c4mesh-gateway"
        ]
    );
    for spec in plugins.values() {
        assert_eq!(spec["sha256"], sha256.as_str());
        assert!(spec["url"]
            .as_str()
            .unwrap()
            .ends_with("c4mesh_filter.wasm"));
        assert_eq!(spec["phase"], "STATS");
        assert!(spec["failStrategy"].is_string());
    }
}

#[test]
fn the_gateway_plugins_run_the_defaults_in_gateway_mode() {
    let plugins = wasm_plugins();
    let ingress = &plugins["istio-system/c4mesh-gateway"];
    assert_eq!(
        ingress["selector"]["matchLabels"]["istio"],
        "ingressgateway"
    );
    assert_eq!(ingress["pluginConfig"]["mode"], "gateway", "said out loud");
    let config = plugin_config(ingress);
    assert_eq!(config.mode, Mode::Gateway);
    assert_eq!(
        ingress["pluginConfig"]["proxy_applies"],
        serde_json::json!(["retries", "timeout"]),
        "the generated VirtualServices apply the filter's retries and timeout (R6)"
    );
    assert_eq!(
        Config {
            proxy_applies: Default::default(),
            ..config
        },
        Config::defaults(),
        "apart from the statement, the filter's parser takes it as the defaults"
    );
    assert_eq!(ingress["failStrategy"], "FAIL_RELOAD");

    // The Gateway API alternative: the same plugin, attached to the generated Gateway,
    // granting the 2 retries of Istio's default policy, which an HTTPRoute without
    // `retry` gets, so it never raises what Istio would retry.
    let gateway_api = &plugins["ecommerce/c4mesh-gateway"];
    let mut expected = ingress["pluginConfig"].clone();
    expected["retry"]["attempts"] = 2.into();
    expected["retry"]["retry_on"] =
        "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes".into();
    assert_eq!(gateway_api["pluginConfig"], expected);
    assert_eq!(gateway_api["failStrategy"], "FAIL_RELOAD");
    assert!(gateway_api.get("selector").is_none(), "targetRefs instead");
    let gateways: Vec<Value> = documents()
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| d["apiVersion"] == "gateway.networking.k8s.io/v1" && d["kind"] == "Gateway")
        .collect();
    assert_eq!(gateways.len(), 1);
    assert_eq!(
        gateways[0]["metadata"]["namespace"], "ecommerce",
        "a WasmPlugin targets a Gateway of its own namespace"
    );
    assert_eq!(
        gateway_api["targetRefs"],
        serde_json::json!([{
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": gateways[0]["metadata"]["name"],
        }])
    );
}

#[test]
fn the_sidecar_plugin_runs_outbound_with_istios_in_mesh_retries() {
    let plugins = wasm_plugins();
    let sidecars = &plugins["ecommerce/c4mesh-sidecars"];
    assert_eq!(
        sidecars["match"],
        serde_json::json!([{"mode": "CLIENT"}]),
        "outbound only"
    );
    assert_eq!(sidecars["failStrategy"], "FAIL_OPEN");
    let selector = sidecars["selector"]["matchLabels"].as_object().unwrap();
    assert!(
        !selector.contains_key("istio"),
        "not the ingress gateway: {selector:?}"
    );
    let config = plugin_config(sidecars);
    assert_eq!(config.mode, Mode::Sidecar);
    assert_eq!(config.namespace, "ecommerce");
    assert_eq!(config.routes.len(), Config::defaults().routes.len());
    for route in &config.routes {
        assert_eq!(route.retry.attempts, 2, "{}", route.name);
        assert_eq!(
            route.retry.retry_on,
            "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
            "{}",
            route.name
        );
    }

    // Every service pod carries the selected labels.
    let deployments = of_kind("Deployment");
    assert_eq!(deployments.len(), 6);
    for deployment in &deployments {
        let labels = &deployment["spec"]["template"]["metadata"]["labels"];
        for (key, value) in selector {
            assert_eq!(&labels[key], value, "{}", deployment["metadata"]["name"]);
        }
    }
}

#[test]
fn the_package_is_an_oci_layout_istio_can_pull() {
    let module = module();
    let dir_dir = tempfile::Builder::new()
        .prefix("c4mesh-oci-")
        .tempdir()
        .expect("a temporary directory");
    let dir = dir_dir.path().join("c4mesh-oci");
    let package = oci::package(&module, "test", &dir).unwrap();
    let blob = |digest: &str| {
        std::fs::read(
            dir.join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], package.digest.as_str());
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "test"
    );
    let manifest_bytes = blob(&package.digest);
    assert_eq!(
        format!("sha256:{}", sha256_hex(&manifest_bytes)),
        package.digest,
        "content-addressed"
    );
    let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(manifest["config"]["mediaType"], oci::CONFIG_MEDIA_TYPE);
    // Istio 1.28 takes the oci variant with exactly two layers, the runtime config
    // and the module (pkg/wasm/imagefetcher.go, extractOCIArtifactImage).
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 2);
    assert_eq!(manifest["layers"][0]["mediaType"], oci::CONFIG_MEDIA_TYPE);
    assert_eq!(
        manifest["layers"][0]["digest"],
        manifest["config"]["digest"]
    );
    assert_eq!(manifest["layers"][1]["mediaType"], oci::LAYER_MEDIA_TYPE);
    assert_eq!(
        blob(manifest["layers"][1]["digest"].as_str().unwrap()),
        module
    );
    assert_eq!(
        package.module_digest,
        format!("sha256:{}", sha256_hex(&module))
    );
    let again = oci::package(&module, "test", &dir).unwrap();
    assert_eq!(again, package, "the same module gives the same digest");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every object of a kind under `manifests/`.
fn of_kind(kind: &str) -> Vec<Value> {
    documents()
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == kind)
        .collect()
}

/// The `proxy.istio.io/config` annotation of a pod template, typed as Istio's
/// `ProxyConfig` (unknown fields refused).
fn proxy_config(template: &Value) -> c4mesh_manifests::observability::ProxyConfig {
    let annotation = template["metadata"]["annotations"]["proxy.istio.io/config"]
        .as_str()
        .unwrap_or_else(|| panic!("no proxy.istio.io/config in {template}"));
    serde_saphyr::from_str(annotation).unwrap()
}

#[test]
fn every_proxy_keeps_the_filter_stats() {
    let deployments = of_kind("Deployment");
    assert_eq!(deployments.len(), 6);
    for deployment in &deployments {
        let config = proxy_config(&deployment["spec"]["template"]);
        assert_eq!(
            config.proxy_stats_matcher.inclusion_prefixes,
            ["wasmcustom.c4mesh"],
            "{}",
            deployment["metadata"]["name"]
        );
    }
}

#[test]
fn the_gateway_api_gateway_keeps_the_filter_stats() {
    // Istio copies a Gateway's infrastructure annotations onto the Deployment it
    // creates for the Gateway, pod template included.
    let gateways: Vec<Value> = of_kind("Gateway")
        .into_iter()
        .filter(|g| g["apiVersion"] == "gateway.networking.k8s.io/v1")
        .collect();
    assert_eq!(gateways.len(), 1);
    let config = proxy_config(&serde_json::json!({
        "metadata": {"annotations": gateways[0]["spec"]["infrastructure"]["annotations"]}
    }));
    assert_eq!(
        config.proxy_stats_matcher.inclusion_prefixes,
        ["wasmcustom.c4mesh"]
    );
}

#[test]
fn patches_land_where_istio_reads_them() {
    // The ingress gateway's: a strategic merge patch of the Deployment `istioctl
    // install` made. Laid over such a Deployment (here one of ours, renamed), the result
    // is still a valid Deployment and its pods carry the annotation.
    let path = repo().join("manifests/istio-system/ingress-gateway-stats.patch.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("kubectl -n istio-system patch deployment istio-ingressgateway"));
    let patch: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(
        patch.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["spec"],
        "only the pod template's annotations"
    );
    let mut gateway = of_kind("Deployment").remove(0);
    gateway["metadata"]["name"] = Value::from("istio-ingressgateway");
    gateway["spec"]["template"]["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    c4mesh_manifests::overlay(&mut gateway, &patch);
    serde_json::from_value::<k8s_openapi::api::apps::v1::Deployment>(gateway.clone()).unwrap();
    assert_eq!(
        proxy_config(&gateway["spec"]["template"])
            .proxy_stats_matcher
            .inclusion_prefixes,
        ["wasmcustom.c4mesh"]
    );

    // Istio's sample Prometheus: the rules as a key of its `prometheus` ConfigMap.
    let path = repo().join("manifests/observability/istio-addon-prometheus.patch.yaml");
    let patch: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let config_map = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "prometheus", "namespace": "istio-system"},
        "data": patch["data"],
    });
    serde_json::from_value::<k8s_openapi::api::core::v1::ConfigMap>(config_map).unwrap();
}
