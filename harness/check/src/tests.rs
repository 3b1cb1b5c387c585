//! The checks on the generated manifests plus the state a healthy cluster adds (pods
//! with their sidecar, the NLB's hostname), and on that state broken the known ways.

use super::*;
use serde_json::json;

/// Every object of the manifests the generator writes (the checked-in `manifests/`, a
/// test elsewhere makes sure of that); the module's digest does not matter here.
fn manifests() -> Vec<Value> {
    let generated = c4mesh_manifests::generate(&c4mesh_manifests::MeshOptions::for_module(&[]))
        .expect("generating the manifests");
    let mut docs = Vec::new();
    for text in generated.files.values() {
        let values: Vec<Value> = serde_saphyr::from_multiple(text).expect("yaml");
        for value in values {
            if !value.is_null() {
                docs.push(value);
            }
        }
    }
    objects(docs)
}

/// A service pod made from its Deployment's template (the annotations included).
fn pod(name: &str, ready: [bool; 2]) -> Value {
    let annotations =
        c4mesh_manifests::observability::pod_annotations().expect("the pod annotations");
    json!({
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ecommerce", "annotations": annotations},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "app", "ready": ready[0]},
            {"name": "istio-proxy", "ready": ready[1]}
        ]}
    })
}

/// The ingress gateway's pod made by `istioctl install`, patched with the generated
/// `istio-system/ingress-gateway-stats.patch.yaml`.
fn ingress_pod() -> Value {
    let generated = c4mesh_manifests::generate(&c4mesh_manifests::MeshOptions::for_module(&[]))
        .expect("generating the manifests");
    let patch: Value =
        serde_saphyr::from_str(&generated.files["istio-system/ingress-gateway-stats.patch.yaml"])
            .expect("the patch");
    json!({
        "kind": "Pod",
        "metadata": {
            "name": "istio-ingressgateway-5c9f7d-x2x7q",
            "namespace": "istio-system",
            "labels": {"app": "istio-ingressgateway", "istio": "ingressgateway"},
            "annotations": patch["spec"]["template"]["metadata"]["annotations"],
        },
        "status": {"phase": "Running", "containerStatuses": [{"name": "istio-proxy", "ready": true}]}
    })
}

/// The generated manifests as a healthy cluster shows them.
fn healthy() -> Vec<Value> {
    let mut objects = manifests();
    objects.push(ingress_pod());
    for service in ["customer", "order", "product", "payment", "recommendation"] {
        for i in 0..2 {
            objects.push(pod(&format!("{service}-service-{i}"), [true, true]));
        }
    }
    for service in objects
        .iter_mut()
        .filter(|o| o["kind"] == "Service" && o["metadata"]["name"] == "istio-ingressgateway")
    {
        service["status"] = json!({"loadBalancer": {"ingress": [{"hostname": "k8s-istio-abc.elb.us-east-1.amazonaws.com"}]}});
    }
    objects
}

fn failed(objects: &[Value]) -> Vec<&'static str> {
    run(objects, "api.c4ang.com")
        .into_iter()
        .filter(|f| !f.pass)
        .map(|f| f.check)
        .collect()
}

#[test]
fn the_generated_mesh_in_a_healthy_cluster_passes_every_check() {
    let objects = healthy();
    let findings = run(&objects, "api.c4ang.com");
    assert!(findings.iter().all(|f| f.pass), "{findings:#?}");
    assert_eq!(
        load_balancer(&objects).1.as_deref(),
        Some("k8s-istio-abc.elb.us-east-1.amazonaws.com")
    );
}

#[test]
fn a_pod_without_its_sidecar_fails_with_the_webhook_fix() {
    let mut objects = healthy();
    objects.push(json!({
        "kind": "Pod",
        "metadata": {"name": "saga-tracker-0", "namespace": "ecommerce"},
        "status": {"phase": "Running", "containerStatuses": [{"name": "app", "ready": true}]}
    }));
    objects.push(pod("saga-tracker-1", [true, false]));
    let finding = pods(&objects);
    assert!(!finding.pass);
    assert!(
        finding.detail.contains("saga-tracker-0 Running 1/1"),
        "{}",
        finding.detail
    );
    assert!(
        finding.detail.contains("saga-tracker-1 Running 1/2"),
        "{}",
        finding.detail
    );
    assert!(finding.fix.contains("15017"));
}

#[test]
fn each_known_misconfiguration_fails_its_check_only() {
    let mut unbound = healthy();
    for vs in unbound
        .iter_mut()
        .filter(|o| o["kind"] == "VirtualService")
        .take(1)
    {
        vs["spec"]["gateways"] = json!(["mesh"]);
    }
    assert_eq!(
        failed(&unbound),
        ["VirtualServices bound to ecommerce-gateway with the API host"]
    );

    let mut never_ejects = healthy();
    for dr in never_ejects
        .iter_mut()
        .filter(|o| o["kind"] == "DestinationRule")
        .take(1)
    {
        dr["spec"]["trafficPolicy"]["outlierDetection"]["maxEjectionPercent"] = json!(10);
    }
    assert_eq!(
        failed(&never_ejects),
        ["DestinationRules eject one host of two"]
    );

    let mut permissive = healthy();
    permissive.retain(|o| o["kind"] != "PeerAuthentication");
    assert_eq!(failed(&permissive), ["mTLS STRICT"]);

    let mut no_nlb = healthy();
    for service in no_nlb.iter_mut().filter(|o| o["kind"] == "Service") {
        service.as_object_mut().map(|s| s.remove("status"));
    }
    assert_eq!(failed(&no_nlb), ["ingress gateway has its NLB"]);

    let mut unpinned = healthy();
    for plugin in unpinned
        .iter_mut()
        .filter(|o| o["kind"] == "WasmPlugin")
        .take(1)
    {
        plugin["spec"].as_object_mut().map(|s| s.remove("sha256"));
    }
    assert_eq!(failed(&unpinned), [WASM_CHECK]);

    let mut wrong_selector = healthy();
    for gw in wrong_selector
        .iter_mut()
        .filter(|o| o["kind"] == "Gateway" && o["spec"]["servers"].is_array())
    {
        gw["spec"]["selector"] = json!({"istio": "egressgateway"});
    }
    assert_eq!(
        failed(&wrong_selector),
        ["Gateway selects istio: ingressgateway and serves the host"]
    );

    let mut unannotated = healthy();
    for pod in unannotated
        .iter_mut()
        .filter(|o| o["kind"] == "Pod" && o["metadata"]["namespace"] == "ecommerce")
        .take(1)
    {
        pod["metadata"]
            .as_object_mut()
            .map(|m| m.remove("annotations"));
    }
    assert_eq!(failed(&unannotated), [STATS_CHECK]);

    assert_eq!(failed(&healthy()).len(), 0);
}

const STATS_CHECK: &str = "proxies keep the filter's stats for Prometheus (wasmcustom.c4mesh)";

#[test]
fn proxies_without_the_stats_inclusion_fail_with_the_patch_as_fix() {
    let mut objects = healthy();
    for pod in objects.iter_mut().filter(|o| o["kind"] == "Pod") {
        if pod["metadata"]["namespace"] == "istio-system" {
            pod["metadata"]["annotations"]["proxy.istio.io/config"] =
                json!("proxyStatsMatcher:\n  inclusionPrefixes: [cluster.outbound]\n");
        }
        if pod["metadata"]["name"] == "order-service-1" {
            pod["metadata"]["annotations"]["proxy.istio.io/config"] = json!("[not, a, config]");
        }
    }
    let finding = stats_inclusion(&objects);
    assert!(!finding.pass);
    assert!(
        finding.detail.contains(
            "istio-system/istio-ingressgateway-5c9f7d-x2x7q (wasmcustom.c4mesh not in \
             proxyStatsMatcher.inclusionPrefixes)"
        ),
        "{}",
        finding.detail
    );
    assert!(
        finding.detail.contains(
            "ecommerce/order-service-1 (proxy.istio.io/config: not a ProxyConfig object)"
        ),
        "{}",
        finding.detail
    );
    assert!(finding.fix.contains("ingress-gateway-stats.patch.yaml"));

    let mut no_gateway = healthy();
    no_gateway.retain(|o| o["metadata"]["namespace"] != "istio-system" || o["kind"] != "Pod");
    let finding = stats_inclusion(&no_gateway);
    assert!(!finding.pass);
    assert!(
        finding.detail.contains("no ingress gateway pods"),
        "{}",
        finding.detail
    );

    // Istio's own required prefix `wasm` covers the filter's stats as well.
    let mut wide = healthy();
    for pod in wide.iter_mut().filter(|o| o["kind"] == "Pod") {
        pod["metadata"]["annotations"]["proxy.istio.io/config"] =
            json!("{proxyStatsMatcher: {inclusionPrefixes: [wasm]}}");
    }
    assert!(stats_inclusion(&wide).pass);
}

const WASM_CHECK: &str =
    "WasmPlugins on the gateway and the sidecars, each in its mode, pinned by sha256";

/// The healthy cluster with one WasmPlugin (`namespace/name`) edited.
fn with_plugin(plugin: &str, edit: impl FnOnce(&mut Value)) -> Vec<Value> {
    let mut objects = healthy();
    let found = objects
        .iter_mut()
        .find(|o| o["kind"] == "WasmPlugin" && name(o) == plugin)
        .expect(plugin);
    edit(found);
    objects
}

/// The WasmPlugin check fails, alone, saying `seen` and printing a fix that says `fix`.
fn wasm_fails(objects: &[Value], seen: &str, fix: &str) -> Finding {
    assert_eq!(failed(objects), [WASM_CHECK]);
    let finding = wasm_plugins(objects);
    assert!(finding.detail.contains(seen), "{}", finding.detail);
    assert!(finding.fix.contains(fix), "{}", finding.fix);
    finding
}

#[test]
fn the_plugins_of_the_generated_mesh_are_in_their_modes() {
    let finding = wasm_plugins(&healthy());
    assert!(finding.pass, "{finding:#?}");
    for seen in [
        "gateway mode on istio-system/c4mesh-gateway",
        "sidecar mode, outbound only on ecommerce/c4mesh-sidecars",
        "Gateway API gateways by ecommerce/c4mesh-gateway",
    ] {
        assert!(finding.detail.contains(seen), "{}", finding.detail);
    }

    // Without a mode the filter runs as a gateway.
    let implicit = with_plugin("istio-system/c4mesh-gateway", |p| {
        p["spec"]["pluginConfig"]
            .as_object_mut()
            .map(|c| c.remove("mode"));
    });
    assert!(wasm_plugins(&implicit).pass);
    let empty = with_plugin("istio-system/c4mesh-gateway", |p| {
        p["spec"].as_object_mut().map(|s| s.remove("pluginConfig"));
    });
    assert!(wasm_plugins(&empty).pass, "no pluginConfig is the defaults");
}

#[test]
fn a_sidecar_plugin_without_match_fails_with_the_match_fix() {
    let everywhere = with_plugin("ecommerce/c4mesh-sidecars", |p| {
        p["spec"].as_object_mut().map(|s| s.remove("match"));
    });
    wasm_fails(&everywhere, "has no match", "[{mode: CLIENT}]");
}

#[test]
fn each_plugin_setting_out_of_place_fails_with_its_fix() {
    let sidecars = "ecommerce/c4mesh-sidecars";
    // (plugin, field of its spec, value, what the check says, what the fix says)
    let cases = [
        (
            sidecars,
            "/match",
            json!([{"mode": "CLIENT_AND_SERVER"}]),
            "not outbound only (match modes [\"CLIENT_AND_SERVER\"])",
            "[{mode: CLIENT}]",
        ),
        (
            sidecars,
            "/pluginConfig/mode",
            json!("gateway"),
            "ecommerce/c4mesh-sidecars runs in gateway mode",
            "mode to \"sidecar\"",
        ),
        (
            "istio-system/c4mesh-gateway",
            "/pluginConfig/mode",
            json!("sidecar"),
            "istio-system/c4mesh-gateway runs in sidecar mode",
            "mode to \"gateway\"",
        ),
        (
            sidecars,
            "/pluginConfig/retry_budget/ratio",
            json!(1.5),
            "retry_budget.ratio: must be within [0, 1]",
            "Envoy refuses the plugin",
        ),
    ];
    for (plugin, field, value, seen, fix) in cases {
        let objects = with_plugin(plugin, |p| {
            *p["spec"].pointer_mut(field).expect(field) = value;
        });
        wasm_fails(&objects, seen, fix);
    }
}

#[test]
fn missing_plugins_and_several_faults_each_print_their_fix() {
    let mut none = healthy();
    none.retain(|o| o["kind"] != "WasmPlugin");
    let finding = wasm_fails(
        &none,
        "no gateway plugin",
        "apply manifests/wasm-plugins.yaml",
    );
    assert!(finding.detail.contains("no sidecar plugin in ecommerce"));
    assert_eq!(finding.fix.lines().count(), 1, "one fix for both");

    let faults = with_plugin("ecommerce/c4mesh-sidecars", |p| {
        p["spec"].as_object_mut().map(|s| s.remove("match"));
        p["spec"]["pluginConfig"]["mode"] = json!("gateway");
    });
    let finding = wasm_fails(&faults, "runs in gateway mode", "[{mode: CLIENT}]");
    assert_eq!(finding.fix.lines().count(), 2, "{}", finding.fix);
}

#[test]
fn the_sidecar_plugin_must_stay_off_the_gateway_api_gateway() {
    // Istio puts the Gateway's infrastructure annotations on the pods it deploys for it.
    let gateway = manifests()
        .into_iter()
        .find(|o| o["kind"] == "Gateway" && o["spec"]["gatewayClassName"] == "istio")
        .expect("the Gateway API gateway");
    let gateway_pod = json!({
        "kind": "Pod",
        "metadata": {
            "name": "ecommerce-gateway-istio-0",
            "namespace": "ecommerce",
            "labels": {"gateway.networking.k8s.io/gateway-name": "ecommerce-gateway"},
            "annotations": gateway["spec"]["infrastructure"]["annotations"],
        },
        "status": {"phase": "Running", "containerStatuses": [{"name": "istio-proxy", "ready": true}]}
    });
    let mut objects = healthy();
    objects.push(gateway_pod.clone());
    assert!(
        failed(&objects).is_empty(),
        "the gateway's pod is no service pod without its sidecar, and the selector misses it"
    );

    let mut unselective = with_plugin("ecommerce/c4mesh-sidecars", |p| {
        p["spec"].as_object_mut().map(|s| s.remove("selector"));
    });
    assert!(
        wasm_plugins(&unselective).pass,
        "no gateway pods to load into"
    );
    unselective.push(gateway_pod);
    wasm_fails(
        &unselective,
        "gateway pods [\"ecommerce-gateway-istio-0\"]",
        "selector",
    );
}

#[test]
fn a_kubectl_list_is_unwrapped_and_the_request_check_reads_the_answer() {
    let list = json!({"kind": "List", "items": [pod("a", [true, true]), pod("b", [true, true])]});
    assert_eq!(objects(vec![list]).len(), 2);
    assert!(request(Some(200), None, String::new()).pass);
    assert!(!request(Some(404), Some("no_route"), String::new()).pass);
    assert!(!request(Some(503), None, String::new()).pass);
    assert!(!request(None, None, "refused".into()).pass);
}

#[test]
fn the_generated_routes_retry_post_and_patch_safely_and_plugins_grant_within_them() {
    let finding = safe_retries(&healthy());
    assert!(finding.pass, "{finding:#?}");
    let finding = plugin_grants(&healthy());
    assert!(finding.pass, "{finding:#?}");
    assert!(
        finding.detail.contains("plugin instances"),
        "{}",
        finding.detail
    );
}

#[test]
fn a_route_retrying_post_on_5xx_is_named_with_the_fix() {
    // The operator's VirtualService as the guide writes it, but with retryOn 5xx for every
    // method.
    let mut objects = healthy();
    objects
        .retain(|o| !(o["kind"] == "VirtualService" && o["metadata"]["name"] == "payment-service"));
    objects.push(json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "payment-service", "namespace": "ecommerce"},
        "spec": {
            "hosts": ["api.c4ang.com"],
            "gateways": ["ecommerce-gateway"],
            "http": [{
                "match": [{"uri": {"prefix": "/api/v1/payments"}}],
                "route": [{"destination": {"host": "payment-service", "port": {"number": 8080}}}],
                "retries": {"attempts": 3, "retryOn": "5xx,reset"},
                "timeout": "10s"
            }]
        }
    }));
    let finding = safe_retries(&objects);
    assert!(!finding.pass);
    assert!(
        finding.detail.contains("gateway route ecommerce/payment-service http[0] (payment-service) retries POST and PATCH on 5xx, reset"),
        "{}",
        finding.detail
    );
    assert!(finding.fix.contains("POST|PATCH"), "{}", finding.fix);
    // The guide's own retries (no retryOn) keep Istio's safe defaults.
    let guide = objects
        .iter_mut()
        .find(|o| o["kind"] == "VirtualService" && o["metadata"]["name"] == "payment-service")
        .expect("the VirtualService");
    guide["spec"]["http"][0]["retries"] = json!({"attempts": 3});
    assert!(safe_retries(&objects).pass);
}

#[test]
fn a_plugin_granting_more_than_its_routes_is_named_with_the_fix() {
    let objects = with_plugin("ecommerce/c4mesh-sidecars", |p| {
        p["spec"]["pluginConfig"]["retry"]["attempts"] = json!(3);
    });
    let finding = plugin_grants(&objects);
    assert!(!finding.pass);
    assert!(
        finding.detail.contains("ecommerce.c4mesh-sidecars on order-service/0: route orders grants 3 where the proxy retries 2"),
        "{}",
        finding.detail
    );
    assert!(finding.fix.contains("retry.attempts"), "{}", finding.fix);
    // With VirtualServices bound to mesh retrying 3 times, 3 is what the routes allow.
    let mut objects = objects;
    for service in c4mesh_mesh::istio::generated::services_of_config("") {
        objects.push(json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": format!("{service}-mesh"), "namespace": "ecommerce"},
            "spec": {
                "hosts": [service],
                "http": [{"route": [{"destination": {"host": service}}], "retries": {"attempts": 3, "retryOn": "gateway-error"}}]
            }
        }));
    }
    let finding = plugin_grants(&objects);
    assert!(finding.pass, "{finding:#?}");
}

#[test]
fn a_plugin_stating_what_its_routes_do_not_apply_is_named_with_the_fix() {
    // The generated plugins state what the generated routes do.
    let finding = plugin_grants(&healthy());
    assert!(finding.pass, "{finding:#?}");
    // The gateway's plugin granting 2 while stating that the routes (3 retries) apply
    // its retries: a full grant would leave the route's 3 in force.
    let objects = with_plugin("istio-system/c4mesh-gateway", |p| {
        p["spec"]["pluginConfig"]["retry"]["attempts"] = json!(2);
    });
    let finding = plugin_grants(&objects);
    assert!(!finding.pass);
    assert!(
        finding.detail.contains(
            "route orders states proxy_applies retries, but grants 2 where the proxy retries 3"
        ),
        "{}",
        finding.detail
    );
    assert!(finding.fix.contains("proxy_applies"), "{}", finding.fix);
    // The sidecars' plugin stating a timeout the in-mesh routes do not have.
    let objects = with_plugin("ecommerce/c4mesh-sidecars", |p| {
        p["spec"]["pluginConfig"]["proxy_applies"] = json!(["retries", "timeout"]);
    });
    let finding = plugin_grants(&objects);
    assert!(!finding.pass);
    assert!(
        finding.detail.contains("route orders states proxy_applies timeout, but times out after 10000 ms where the proxy's route takes none"),
        "{}",
        finding.detail
    );
    // Without the statement, a smaller grant is the filter's own business.
    let objects = with_plugin("istio-system/c4mesh-gateway", |p| {
        p["spec"]["pluginConfig"]["retry"]["attempts"] = json!(2);
        p["spec"]["pluginConfig"]
            .as_object_mut()
            .expect("an object")
            .remove("proxy_applies");
    });
    let finding = plugin_grants(&objects);
    assert!(finding.pass, "{finding:#?}");
}
