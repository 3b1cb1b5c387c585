//! Each translation rule pinned, on the generated manifests and on resources written
//! the way the operator's guide writes them.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use super::*;
use crate::istio::generated;
use crate::istio::plan::{FailurePolicy, LbPolicy};
use crate::istio::retry::DEFAULT_RETRY_ON;

fn six() -> Vec<String> {
    generated::services_of_config("")
}

fn mesh() -> (Resources, Workloads) {
    (
        generated::resources("", "").unwrap(),
        generated::workloads(&six()),
    )
}

fn parse(text: &str) -> Resources {
    Resources::parse("test.yaml", text, "ecommerce").unwrap()
}

fn route_for<'a>(plan: &'a ProxyPlan, domain: &str, method: &str, path: &str) -> &'a Route {
    let host = plan
        .virtual_hosts
        .iter()
        .find(|v| v.domains.iter().any(|d| d == domain))
        .unwrap();
    host.routes
        .iter()
        .find(|r| r.matches(method, path))
        .unwrap()
}

#[test]
fn generated_gateway_routes_retry_5xx_for_idempotent_methods_only() {
    let (resources, workloads) = mesh();
    let plan = gateway(&resources, &workloads).unwrap();
    let get = route_for(&plan, "api.c4ang.com", "GET", "/api/v1/payments");
    let retry = get.retry.as_ref().unwrap();
    assert_eq!(get.cluster, "payment-service");
    assert_eq!(retry.num_retries, 3);
    assert_eq!(retry.retry_on, "5xx,reset,connect-failure,refused-stream");
    assert_eq!(get.timeout, Duration::from_secs(10));
    for method in ["POST", "PATCH"] {
        let unsafe_route = route_for(&plan, "api.c4ang.com", method, "/api/v1/payments");
        let retry = unsafe_route.retry.as_ref().unwrap();
        assert_eq!(
            retry.retry_on, "connect-failure,refused-stream,reset-before-request",
            "{method}"
        );
        assert_eq!(retry.num_retries, 3);
    }
    assert_eq!(
        route_for(&plan, "api.c4ang.com", "PUT", "/api/v1/payments").name,
        "payments"
    );
}

#[test]
fn gateway_virtual_hosts_answer_the_gateway_hosts_without_ports() {
    let (resources, workloads) = mesh();
    let plan = gateway(&resources, &workloads).unwrap();
    let domains: Vec<&str> = plan
        .virtual_hosts
        .iter()
        .flat_map(|v| v.domains.iter().map(String::as_str))
        .collect();
    assert_eq!(domains, ["api.c4ang.com", "*"]);
    assert!(plan.ignore_port_in_host_matching);
    assert!(plan
        .virtual_hosts
        .iter()
        .all(|v| v.include_request_attempt_count));
    // A VirtualService for api.c4ang.com only: other hosts get Envoy's 404.
    let mut narrow = resources.clone();
    for vs in &mut narrow.virtual_services {
        vs.spec.hosts = vec!["api.c4ang.com".into()];
    }
    let plan = gateway(&narrow, &workloads).unwrap();
    assert_eq!(plan.virtual_hosts.len(), 1);
    assert_eq!(plan.virtual_hosts[0].domains, ["api.c4ang.com"]);
    assert_eq!(plan.virtual_hosts[0].name, "api.c4ang.com:80");
}

#[test]
fn a_uri_prefix_is_a_plain_envoy_prefix_and_the_generated_routes_match_segments() {
    let (mut resources, workloads) = mesh();
    let plan = gateway(&resources, &workloads).unwrap();
    let orders = route_for(&plan, "api.c4ang.com", "GET", "/api/v1/orders");
    assert_eq!(orders.path, PathMatch::Exact("/api/v1/orders".into()));
    let below = route_for(&plan, "api.c4ang.com", "GET", "/api/v1/orders/1");
    assert_eq!(below.path, PathMatch::Prefix("/api/v1/orders/".into()));
    let host = &plan.virtual_hosts[0];
    assert!(!host
        .routes
        .iter()
        .any(|r| r.matches("GET", "/api/v1/ordersX")));
    // The operator's `uri.prefix` alone is a plain prefix.
    resources.overlay(parse(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: order-service, namespace: ecommerce}
spec:
  hosts: [api.c4ang.com]
  gateways: [ecommerce-gateway]
  http:
  - match: [{uri: {prefix: /api/v1/orders}}]
    route: [{destination: {host: order-service}}]
",
    ));
    let plan = gateway(&resources, &workloads).unwrap();
    let orders = route_for(&plan, "api.c4ang.com", "GET", "/api/v1/ordersX");
    assert_eq!(orders.path, PathMatch::Prefix("/api/v1/orders".into()));
}

#[test]
fn the_operators_virtual_service_without_retry_on_keeps_the_default_conditions() {
    let (mut resources, workloads) = mesh();
    resources.overlay(parse(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: order-service, namespace: ecommerce}
spec:
  hosts: [api.c4ang.com]
  gateways: [ecommerce-gateway]
  http:
  - match: [{uri: {prefix: /api/v1/orders}}]
    route: [{destination: {host: order-service, port: {number: 8080}}}]
    retries: {attempts: 3}
    timeout: 10s
",
    ));
    let plan = gateway(&resources, &workloads).unwrap();
    let orders = route_for(&plan, "api.c4ang.com", "GET", "/api/v1/orders/1");
    let retry = orders.retry.as_ref().unwrap();
    assert_eq!(retry.num_retries, 3);
    assert_eq!(retry.retry_on, DEFAULT_RETRY_ON);
    assert!(
        retry.retriable_status_codes.is_empty(),
        "a 503 is never retried"
    );
}

#[test]
fn in_mesh_calls_without_a_mesh_virtual_service_get_the_default_policy_and_no_timeout() {
    let (resources, workloads) = mesh();
    let plan = sidecar(&resources, &workloads, "order-service", 0).unwrap();
    assert_eq!(plan.name, "order-service/0");
    let route = route_for(
        &plan,
        "payment-service.ecommerce.svc.cluster.local",
        "POST",
        "/api/v1/payments",
    );
    assert_eq!(route.name, "default");
    assert_eq!(route.timeout, Duration::ZERO);
    let retry = route.retry.as_ref().unwrap();
    assert_eq!(retry.num_retries, 2);
    assert_eq!(retry.retry_on, DEFAULT_RETRY_ON);
    assert!(retry.retriable_status_codes.is_empty());
    assert!(retry.previous_hosts);
    assert_eq!(retry.host_selection_retry_max_attempts, 5);
    let passthrough = plan.virtual_hosts.last().unwrap();
    assert_eq!(passthrough.domains, ["*"]);
    assert_eq!(passthrough.routes[0].cluster, PASSTHROUGH);
}

#[test]
fn sidecar_domains_are_every_kubernetes_spelling() {
    let (_, workloads) = mesh();
    let domains = sidecar_domains("payment-service", &workloads);
    for expected in [
        "payment-service.ecommerce.svc.cluster.local",
        "payment-service.ecommerce.svc.cluster.local.",
        "payment-service",
        "payment-service.ecommerce.svc",
        "payment-service.ecommerce",
        "payment-service:8080",
    ] {
        assert!(domains.iter().any(|d| d == expected), "{expected}");
    }
}

#[test]
fn virtual_services_bound_to_mesh_replace_the_default_route() {
    let (mut resources, workloads) = mesh();
    resources.overlay(parse(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: saga-tracker-mesh}
spec:
  hosts: [saga-tracker]
  http:
  - route: [{destination: {host: saga-tracker}}]
    retries: {attempts: 3, retryOn: 5xx}
",
    ));
    let plan = sidecar(&resources, &workloads, "payment-service", 1).unwrap();
    let saga = route_for(&plan, "saga-tracker", "GET", "/api/v1/saga");
    assert_eq!(saga.retry.as_ref().unwrap().retry_on, "5xx");
    assert_eq!(saga.retry.as_ref().unwrap().num_retries, 3);
    // Bound to `mesh` only: the gateway's routes are untouched.
    let gw = gateway(&resources, &workloads).unwrap();
    let at_gateway = route_for(&gw, "api.c4ang.com", "GET", "/api/v1/saga");
    assert_eq!(at_gateway.name, "saga");
}

#[test]
fn destination_rules_become_outlier_detection_panic_threshold_and_circuit_breakers() {
    let (resources, workloads) = mesh();
    let plan = gateway(&resources, &workloads).unwrap();
    let orders = plan
        .clusters
        .iter()
        .find(|c| c.name == "order-service")
        .unwrap();
    let outlier = orders.outlier.as_ref().unwrap();
    assert_eq!(outlier.consecutive_5xx, Some(5));
    assert_eq!(outlier.max_ejection_percent, Some(50));
    assert_eq!(orders.healthy_panic_threshold, Some(0.0));
    assert_eq!(orders.circuit_breakers.max_connections, 100);
    assert_eq!(orders.circuit_breakers.max_requests, 100);
    assert_eq!(orders.circuit_breakers.max_retries, u32::MAX);
    assert_eq!(orders.circuit_breakers.max_pending_requests, u32::MAX);
    assert_eq!(orders.lb_policy, LbPolicy::RoundRobin);
    assert_eq!(orders.connect_timeout, Duration::from_secs(10));
    // The guide's rule: no maxEjectionPercent, Envoy's 10% then applies.
    let mut operator = resources.clone();
    operator.overlay(parse(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: order-service}
spec:
  host: order-service.ecommerce.svc.cluster.local
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 5}
",
    ));
    let plan = gateway(&operator, &workloads).unwrap();
    let orders = plan
        .clusters
        .iter()
        .find(|c| c.name == "order-service")
        .unwrap();
    let outlier = orders.outlier.as_ref().unwrap();
    assert_eq!(outlier.max_ejection_percent, None);
    assert_eq!(outlier.max_ejection(), 10);
    assert_eq!(orders.circuit_breakers.max_connections, u32::MAX);
}

#[test]
fn without_a_destination_rule_envoy_defaults_apply() {
    let (mut resources, workloads) = mesh();
    resources.destination_rules.clear();
    let plan = gateway(&resources, &workloads).unwrap();
    let orders = plan
        .clusters
        .iter()
        .find(|c| c.name == "order-service")
        .unwrap();
    assert_eq!(orders.outlier, None);
    assert_eq!(orders.healthy_panic_threshold, None);
    assert_eq!(orders.panic_threshold(), 50.0);
    assert_eq!(orders.lb_policy, LbPolicy::LeastRequest);
    assert_eq!(orders.circuit_breakers, CircuitBreakers::UNLIMITED);
}

#[test]
fn paths_are_normalised_and_escaped_slashes_kept() {
    let (resources, workloads) = mesh();
    for plan in [
        gateway(&resources, &workloads).unwrap(),
        sidecar(&resources, &workloads, "order-service", 0).unwrap(),
    ] {
        assert!(plan.connection_manager.normalize_path);
        assert!(!plan.connection_manager.merge_slashes);
        assert!(plan.connection_manager.escaped_slashes_unchanged);
    }
    let none = Workloads {
        path_normalization: PathNormalization::None,
        ..workloads.clone()
    };
    assert!(!connection_manager(&none).normalize_path);
    let decode = Workloads {
        path_normalization: PathNormalization::DecodeAndMergeSlashes,
        ..workloads
    };
    let manager = connection_manager(&decode);
    assert!(manager.normalize_path && manager.merge_slashes && !manager.escaped_slashes_unchanged);
}

#[test]
fn plugins_are_named_by_namespace_with_empty_ids_and_reach_their_proxies() {
    let (resources, workloads) = mesh();
    let gw = gateway(&resources, &workloads).unwrap();
    assert_eq!(gw.filters.len(), 1);
    let filter = &gw.filters[0];
    assert_eq!(filter.name, "istio-system.c4mesh-gateway");
    assert_eq!(filter.vm_id, "");
    assert_eq!(filter.root_id, "");
    assert_eq!(filter.failure_policy, FailurePolicy::FailReload);
    assert!(
        filter.denies_all_when_unfetched(),
        "FAIL_RELOAD still denies all"
    );
    let config: serde_json::Value = serde_json::from_str(&filter.configuration).unwrap();
    assert_eq!(config["mode"], "gateway");
    let side = sidecar(&resources, &workloads, "order-service", 0).unwrap();
    assert_eq!(side.filters.len(), 1);
    assert_eq!(side.filters[0].name, "ecommerce.c4mesh-sidecars");
    assert_eq!(side.filters[0].failure_policy, FailurePolicy::FailOpen);
    assert!(!side.filters[0].denies_all_when_unfetched());
}

#[test]
fn every_plugin_grants_no_more_retries_than_its_routes() {
    let (resources, workloads) = mesh();
    let attempts = |plan: &ProxyPlan| -> u64 {
        let config: serde_json::Value =
            serde_json::from_str(&plan.filters[0].configuration).unwrap();
        config["retry"]["attempts"].as_u64().unwrap()
    };
    let max_route_retries = |plan: &ProxyPlan| {
        plan.virtual_hosts
            .iter()
            .flat_map(|v| &v.routes)
            .filter(|r| r.cluster != PASSTHROUGH)
            .filter_map(|r| r.retry.as_ref().map(|p| u64::from(p.num_retries)))
            .max()
            .unwrap()
    };
    let gw = gateway(&resources, &workloads).unwrap();
    assert_eq!(attempts(&gw), max_route_retries(&gw));
    let side = sidecar(&resources, &workloads, "payment-service", 0).unwrap();
    assert_eq!(attempts(&side), max_route_retries(&side));
    // The Gateway API alternative: HTTPRoutes without `retry` get Istio's 2.
    let manifests =
        c4mesh_manifests::generate(&c4mesh_manifests::MeshOptions::for_module(&[])).unwrap();
    let mut api = Resources::default();
    for (name, text) in &manifests.files {
        if name.starts_with("gateway-api/") {
            api.add(name, text, "ecommerce").unwrap();
        }
    }
    let plan = gateway_api(&api, &workloads, c4mesh_manifests::GATEWAY).unwrap();
    let orders = route_for(&plan, "api.c4ang.com", "GET", "/api/v1/orders/1");
    assert_eq!(
        orders.path,
        PathMatch::SeparatedPrefix("/api/v1/orders".into())
    );
    assert_eq!(orders.retry.as_ref().unwrap().num_retries, 2);
    assert_eq!(orders.retry.as_ref().unwrap().retry_on, DEFAULT_RETRY_ON);
    assert_eq!(plan.filters.len(), 1);
    assert_eq!(attempts(&plan), 2);
}

#[test]
fn a_destination_outside_the_mesh_names_the_field() {
    let (mut resources, workloads) = mesh();
    resources.overlay(parse(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken}
spec:
  hosts: [api.c4ang.com]
  gateways: [ecommerce-gateway]
  http:
  - route: [{destination: {host: billing-service}}]
",
    ));
    let error = gateway(&resources, &workloads).unwrap_err();
    assert_eq!(error.field, "spec.http[0].route");
    assert_eq!(error.origin, "test.yaml:1");
    assert!(error.reason.contains("billing-service"), "{error}");
}

#[test]
fn the_checked_in_manifests_translate_as_the_generated_resources() {
    // What an operator applies (`manifests/`, every file and kind) gives every proxy the
    // plan the local mesh runs.
    let dir = crate::envoy::workspace_root().join("manifests");
    let applied = Resources::read_dir(&dir, "ecommerce").unwrap();
    let (generated, workloads) = mesh();
    assert_eq!(
        gateway(&applied, &workloads).unwrap(),
        gateway(&generated, &workloads).unwrap()
    );
    for service in six() {
        assert_eq!(
            sidecar(&applied, &workloads, &service, 0).unwrap(),
            sidecar(&generated, &workloads, &service, 0).unwrap(),
            "{service}"
        );
    }
    let api = gateway_api(&applied, &workloads, c4mesh_manifests::GATEWAY).unwrap();
    assert_eq!(api.virtual_hosts[0].routes.len(), 6);
}
