//! The checks on the generated manifests plus the state a healthy cluster adds (pods
//! with their sidecar, the NLB's hostname), and on that state broken the known ways.

use super::*;
use serde::Deserialize;
use serde_json::json;

/// Every object of the manifests the generator writes (the checked-in `manifests/`, a
/// test elsewhere makes sure of that); the module's digest does not matter here.
fn manifests() -> Vec<Value> {
    let generated = c4mesh_manifests::generate(&c4mesh_manifests::MeshOptions::for_module(&[]))
        .expect("generating the manifests");
    let mut docs = Vec::new();
    for text in generated.files.values() {
        for doc in serde_yaml::Deserializer::from_str(text) {
            let value = Value::deserialize(doc).expect("yaml");
            if !value.is_null() {
                docs.push(value);
            }
        }
    }
    objects(docs)
}

fn pod(name: &str, ready: [bool; 2]) -> Value {
    json!({
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ecommerce"},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "app", "ready": ready[0]},
            {"name": "istio-proxy", "ready": ready[1]}
        ]}
    })
}

/// The generated manifests as a healthy cluster shows them.
fn healthy() -> Vec<Value> {
    let mut objects = manifests();
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
    assert_eq!(
        failed(&unpinned),
        ["WasmPlugins on the gateway and the sidecars, pinned by sha256"]
    );

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

    assert_eq!(failed(&healthy()).len(), 0);
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
