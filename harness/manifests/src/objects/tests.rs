//! The plugin configurations the generator builds, and the pod label the sidecars'
//! plugin selects. (The WasmPlugins as written are tested on `manifests/` itself.)

use super::*;
use c4mesh_filter_core::config::ProxyApplies;
use serde_json::json;

fn parse(config: &Value) -> Config {
    Config::parse(&serde_json::to_vec(config).unwrap()).unwrap()
}

#[test]
fn overlay_merges_objects_and_replaces_everything_else() {
    let mut base = json!({"a": {"x": 1, "y": 2}, "list": [1, 2], "keep": true});
    overlay(
        &mut base,
        &json!({"a": {"y": 3, "z": 4}, "list": [9], "new": null}),
    );
    assert_eq!(
        base,
        json!({"a": {"x": 1, "y": 3, "z": 4}, "list": [9], "keep": true, "new": null})
    );
}

#[test]
fn the_gateway_config_is_the_defaults_in_gateway_mode() {
    let document = gateway_plugin_config().unwrap();
    assert_eq!(document["mode"], "gateway");
    let config = parse(&document);
    assert_eq!(
        config.proxy_applies,
        ProxyApplies {
            retries: true,
            timeout: true
        },
        "the generated VirtualServices apply the filter's retries and timeout"
    );
    assert_eq!(
        Config {
            proxy_applies: ProxyApplies::default(),
            ..config
        },
        Config::defaults()
    );
}

#[test]
fn the_sidecar_config_means_what_the_sidecar_settings_mean() {
    let document = sidecar_plugin_config(DEFAULT_NAMESPACE).unwrap();
    let config = parse(&document);
    assert_eq!(
        config,
        Config::parse(SIDECAR_CONFIG_JSON.as_bytes()).unwrap(),
        "the full document and the partial one are the same configuration"
    );
    assert_eq!(config.mode, Mode::Sidecar);
    assert!(
        document.get("namespace").is_none(),
        "the default namespace stays implicit"
    );
    let defaults = Config::defaults();
    assert_eq!(config.routes.len(), defaults.routes.len());
    for (route, default) in config.routes.iter().zip(&defaults.routes) {
        assert_eq!(route.retry.attempts, 2, "{}", route.name);
        assert_eq!(route.retry.timeout_ms, default.retry.timeout_ms);
        assert_eq!(route.budget, default.budget);
        assert_eq!(route.outlier, default.outlier);
    }

    let elsewhere = parse(&sidecar_plugin_config("shop").unwrap());
    assert_eq!(elsewhere.namespace, "shop");
}

#[test]
fn every_service_pod_carries_the_label_the_sidecar_plugin_selects() {
    let config = Config::defaults();
    let options = MeshOptions::for_module(b"module");
    for route in &config.routes {
        let pod_labels = deployment(&options, route)
            .unwrap()
            .spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.labels)
            .unwrap();
        assert_eq!(
            pod_labels.get(PART_OF.0).map(String::as_str),
            Some(PART_OF.1),
            "{}",
            route.service
        );
    }
}
