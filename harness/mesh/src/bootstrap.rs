//! A proxy's plan ([`crate::istio::ProxyPlan`]) as an Envoy bootstrap: the same
//! virtual hosts, routes, retry policies, clusters and Wasm filters istiod would send
//! it over xDS, written as static resources, with the mesh's endpoints on loopback.
//!
//! What only the local mesh adds: the listeners' loopback addresses (and, with a
//! [`TlsListener`], the Gateway's port 443 as a second listener with the same
//! connection manager), the admin port, and the module each Wasm filter runs (the
//! workspace's build instead of the WasmPlugin's URL). Both listeners let Envoy pick
//! the codec from the first bytes (`codec_type: AUTO`, as Istio sets it), so the plain
//! port also takes HTTP/2 with prior knowledge (h2c).

use crate::envoy::{EnvoyConfig, Wasm};
use crate::istio::plan::{ClusterPolicy, MethodMatch, PathMatch, RetryPolicy, Route, VirtualHost};
use serde_json::{json, Value};
use std::time::Duration;

/// A protobuf JSON duration.
fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

fn path_match(path: &PathMatch) -> Value {
    match path {
        PathMatch::Prefix(p) => json!({"prefix": p}),
        PathMatch::Exact(p) => json!({"path": p}),
        PathMatch::SeparatedPrefix(p) => json!({"path_separated_prefix": p}),
        PathMatch::Regex(r) => json!({"safe_regex": {"regex": r}}),
    }
}

fn retry_policy(policy: &RetryPolicy) -> Value {
    let mut out = json!({
        "retry_on": policy.retry_on,
        "num_retries": policy.num_retries,
        "host_selection_retry_max_attempts": policy.host_selection_retry_max_attempts,
    });
    if !policy.retriable_status_codes.is_empty() {
        out["retriable_status_codes"] = json!(policy.retriable_status_codes);
    }
    if policy.previous_hosts {
        out["retry_host_predicate"] = json!([{
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}
        }]);
    }
    if let Some(per_try) = policy.per_try_timeout {
        out["per_try_timeout"] = json!(seconds(per_try));
    }
    if let Some(base) = policy.backoff_base {
        out["retry_back_off"] = json!({"base_interval": seconds(base)});
    }
    out
}

fn route(route: &Route) -> Value {
    let mut matcher = path_match(&route.path);
    matcher["case_sensitive"] = json!(true);
    if let Some(method) = &route.method {
        let string_match = match method {
            MethodMatch::Exact(m) => json!({"exact": m}),
            MethodMatch::Regex(r) => json!({"safe_regex": {"regex": r}}),
        };
        matcher["headers"] = json!([{"name": ":method", "string_match": string_match}]);
    }
    let mut action = json!({
        "cluster": route.cluster,
        "timeout": seconds(route.timeout),
    });
    if let Some(policy) = &route.retry {
        action["retry_policy"] = retry_policy(policy);
    }
    json!({"name": route.name, "match": matcher, "route": action})
}

fn virtual_host(host: &VirtualHost) -> Value {
    json!({
        "name": host.name,
        "domains": host.domains,
        "include_request_attempt_count": host.include_request_attempt_count,
        "routes": host.routes.iter().map(route).collect::<Vec<_>>(),
    })
}

fn cluster(policy: &ClusterPolicy, hosts: &[std::net::SocketAddr]) -> Value {
    let endpoints: Vec<Value> = hosts
        .iter()
        .map(|h| json!({"endpoint": {"address": {"socket_address": {"address": h.ip().to_string(), "port_value": h.port()}}}}))
        .collect();
    let breakers = policy.circuit_breakers;
    let mut out = json!({
        "name": policy.name,
        "connect_timeout": seconds(policy.connect_timeout),
        "lb_policy": policy.lb_policy.envoy_name(),
        "circuit_breakers": {"thresholds": [{
            "max_connections": breakers.max_connections,
            "max_pending_requests": breakers.max_pending_requests,
            "max_requests": breakers.max_requests,
            "max_retries": breakers.max_retries,
            "track_remaining": true
        }]},
        "load_assignment": {"cluster_name": policy.name, "endpoints": [{"lb_endpoints": endpoints}]}
    });
    if let Some(outlier) = &policy.outlier {
        let mut detection = json!({"enforcing_success_rate": 0});
        if let Some(n) = outlier.consecutive_5xx {
            detection["consecutive_5xx"] = json!(n);
            detection["enforcing_consecutive_5xx"] = json!(if n == 0 { 0 } else { 100 });
        }
        if let Some(interval) = outlier.interval {
            detection["interval"] = json!(seconds(interval));
        }
        if let Some(base) = outlier.base_ejection {
            detection["base_ejection_time"] = json!(seconds(base));
        }
        if let Some(max) = outlier.max_ejection_percent {
            detection["max_ejection_percent"] = json!(max);
        }
        out["outlier_detection"] = detection;
    }
    if let Some(threshold) = policy.healthy_panic_threshold {
        out["common_lb_config"] = json!({"healthy_panic_threshold": {"value": threshold}});
    }
    out
}

/// The Wasm filters before the router: the plan's, each running the module `wasm`
/// names (none for [`Wasm::None`]).
fn wasm_filters(config: &EnvoyConfig) -> Vec<Value> {
    let (module, name_override, configuration_override) = match &config.wasm {
        Wasm::None => return Vec::new(),
        Wasm::Module { path, config } => (path, None, config),
        Wasm::Named { name, path, config } => (path, Some(name.as_str()), config),
    };
    let filter = |name: &str, root_id: &str, failure_policy: &str, configuration: &str| {
        json!({
            "name": format!("extensions.istio.io/wasmplugin/{name}"),
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {
                    "name": name,
                    "root_id": root_id,
                    "vm_config": {
                        "vm_id": "",
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": {"local": {"filename": module}}
                    },
                    "configuration": {
                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                        "value": configuration
                    },
                    "failure_policy": failure_policy
                }
            }
        })
    };
    if config.plan.filters.is_empty() {
        // A proxy no WasmPlugin reaches, asked to run a module all the same.
        return vec![filter(
            name_override.unwrap_or("c4mesh"),
            "",
            "FAIL_CLOSED",
            configuration_override,
        )];
    }
    config
        .plan
        .filters
        .iter()
        .map(|f| {
            filter(
                name_override.unwrap_or(&f.name),
                &f.root_id,
                f.failure_policy.envoy_name(),
                configuration_override,
            )
        })
        .collect()
}

/// Where every listener and the admin interface bind: loopback, port 0. The kernel
/// picks each port as Envoy binds it, so no port is chosen before it is taken and no
/// other process can take it in between; [`crate::envoy`] reads back what was bound.
const ANY_PORT: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    0,
));

/// The whole bootstrap.
pub(crate) fn render(config: &EnvoyConfig) -> Value {
    let plan = &config.plan;
    let mut filters = wasm_filters(config);
    filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
    }));
    let clusters: Vec<Value> = plan
        .clusters
        .iter()
        .map(|c| {
            let hosts = config
                .services
                .iter()
                .find(|s| s.name == c.name)
                .map_or(&[][..], |s| s.hosts.as_slice());
            cluster(c, hosts)
        })
        .collect();
    let manager_settings = plan.connection_manager;
    let manager = json!({
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "ingress",
            "codec_type": "AUTO",
            "http_protocol_options": {"accept_http_10": true},
            "normalize_path": manager_settings.normalize_path,
            "merge_slashes": manager_settings.merge_slashes,
            "path_with_escaped_slashes_action": if manager_settings.escaped_slashes_unchanged { "KEEP_UNCHANGED" } else { "UNESCAPE_AND_FORWARD" },
            "stream_idle_timeout": "0s",
            "route_config": {
                "name": plan.name,
                "ignore_port_in_host_matching": plan.ignore_port_in_host_matching,
                "virtual_hosts": plan.virtual_hosts.iter().map(virtual_host).collect::<Vec<_>>()
            },
            "http_filters": filters
        }
    });
    let mut listeners = vec![listener(
        crate::envoy::LISTENER,
        ANY_PORT,
        json!({"filters": [manager.clone()]}),
    )];
    if let Some(tls) = &config.tls {
        listeners.push(listener(
            crate::envoy::TLS_LISTENER,
            ANY_PORT,
            json!({
                "filters": [manager],
                "transport_socket": {
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                        "common_tls_context": {
                            "alpn_protocols": ["h2", "http/1.1"],
                            "tls_certificates": [{
                                "certificate_chain": {"filename": tls.cert},
                                "private_key": {"filename": tls.key}
                            }]
                        }
                    }
                }
            }),
        ));
    }
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": listeners,
            "clusters": clusters
        }
    })
}

/// A listener on loopback with one filter chain.
fn listener(name: &str, addr: std::net::SocketAddr, chain: Value) -> Value {
    json!({
        "name": name,
        "address": {"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}},
        // Without SO_REUSEPORT the workers share the one socket bound to port 0,
        // instead of each binding a port of its own.
        "enable_reuse_port": false,
        "filter_chains": [chain]
    })
}
