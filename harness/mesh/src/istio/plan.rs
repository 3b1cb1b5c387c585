//! What istiod sends one proxy, as far as this mesh models it: the output of the
//! translation, read by the Envoy bootstrap ([`crate::envoy`]) and by the conformance
//! suite's emulated router alike, so that both run the same mesh.

use std::time::Duration;

/// One proxy of the mesh: the ingress gateway, or the outbound side of a pod's sidecar.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyPlan {
    /// `gateway`, or the pod, `service/index`.
    pub name: String,
    pub role: Role,
    pub connection_manager: ConnectionManager,
    /// Whether a port in the authority is ignored when picking the virtual host.
    pub ignore_port_in_host_matching: bool,
    /// In match order: Envoy picks the virtual host by domain, then the first route.
    pub virtual_hosts: Vec<VirtualHost>,
    /// The WasmPlugins that reach this proxy, in the order they run (before the router).
    pub filters: Vec<WasmFilter>,
    /// One per mesh service (and the pass-through cluster of a sidecar).
    pub clusters: Vec<ClusterPolicy>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The ingress gateway: routes by path under the Gateway's hosts.
    Gateway,
    /// A pod's sidecar, outbound: routes by destination authority.
    Sidecar { service: String },
}

/// The HTTP connection manager's request handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionManager {
    /// RFC 3986 normalisation of the path (dot segments resolved) before any filter.
    pub normalize_path: bool,
    pub merge_slashes: bool,
    /// Escaped slashes (`%2F`, `%5C`) are left as they are.
    pub escaped_slashes_unchanged: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VirtualHost {
    pub name: String,
    /// Envoy domains: exact, `*.suffix`, `prefix*` forms, or `*`.
    pub domains: Vec<String>,
    pub include_request_attempt_count: bool,
    pub routes: Vec<Route>,
}

/// How a route matches the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Envoy `prefix`: plain string prefix (`/api/v1/orders` matches `/api/v1/ordersX`).
    Prefix(String),
    Exact(String),
    /// Envoy `path_separated_prefix`: the prefix, then the end or `/`.
    SeparatedPrefix(String),
    /// Envoy `safe_regex` on the path.
    Regex(String),
}

impl PathMatch {
    /// Whether `path` (before `?`) matches, as Envoy's router decides it.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Exact(p) => path == p,
            PathMatch::SeparatedPrefix(p) => {
                path == p
                    || (path.starts_with(p.as_str()) && path.as_bytes().get(p.len()) == Some(&b'/'))
            }
            PathMatch::Regex(r) => regex_full_match(r, path),
        }
    }
}

/// A method condition on `:method`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodMatch {
    Exact(String),
    /// An alternation of literal methods (`POST|PATCH`), the only regex form modelled.
    Regex(String),
}

impl MethodMatch {
    pub fn matches(&self, method: &str) -> bool {
        match self {
            MethodMatch::Exact(m) => m == method,
            MethodMatch::Regex(r) => regex_full_match(r, method),
        }
    }
}

/// Full match of a regex of literal alternatives (`a|b|c`); anything with other
/// metacharacters matches only itself literally.
fn regex_full_match(regex: &str, text: &str) -> bool {
    regex.split('|').any(|alternative| alternative == text)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The VirtualService route's name, or the default route's.
    pub name: String,
    /// Where it comes from, for people: `namespace/name http[i]` of its VirtualService,
    /// `namespace/name rules[i]` of its HTTPRoute, or empty for Istio's own routes.
    pub source: String,
    pub path: PathMatch,
    pub method: Option<MethodMatch>,
    /// The destination cluster (a mesh service's name, or the pass-through cluster).
    pub cluster: String,
    /// Zero: no timeout.
    pub timeout: Duration,
    /// `None`: the route does not retry.
    pub retry: Option<RetryPolicy>,
}

impl Route {
    /// Whether a request matches this route.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.path.matches(path) && self.method.as_ref().is_none_or(|m| m.matches(method))
    }
}

/// Envoy's route retry policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub num_retries: u32,
    pub retry_on: String,
    pub retriable_status_codes: Vec<u16>,
    pub per_try_timeout: Option<Duration>,
    /// The `previous_hosts` retry host predicate.
    pub previous_hosts: bool,
    pub host_selection_retry_max_attempts: u32,
    /// The back-off base interval (Envoy's default 25 ms when absent).
    pub backoff_base: Option<Duration>,
}

/// A cluster's load balancing and protection.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterPolicy {
    /// The mesh service's name.
    pub name: String,
    pub connect_timeout: Duration,
    pub lb_policy: LbPolicy,
    pub outlier: Option<OutlierPolicy>,
    /// Percent of healthy hosts under which Envoy routes to all hosts; `None`: Envoy's
    /// default, 50.
    pub healthy_panic_threshold: Option<f64>,
    pub circuit_breakers: CircuitBreakers,
}

impl ClusterPolicy {
    /// The panic threshold in force (Envoy's default when unset).
    pub fn panic_threshold(&self) -> f64 {
        self.healthy_panic_threshold.unwrap_or(50.0)
    }
}

/// Envoy's load balancers as Istio picks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbPolicy {
    RoundRobin,
    LeastRequest,
    Random,
}

impl LbPolicy {
    pub fn envoy_name(self) -> &'static str {
        match self {
            LbPolicy::RoundRobin => "ROUND_ROBIN",
            LbPolicy::LeastRequest => "LEAST_REQUEST",
            LbPolicy::Random => "RANDOM",
        }
    }
}

/// Envoy cluster outlier detection; a field left out takes Envoy's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierPolicy {
    pub consecutive_5xx: Option<u32>,
    pub interval: Option<Duration>,
    pub base_ejection: Option<Duration>,
    pub max_ejection_percent: Option<u32>,
}

impl OutlierPolicy {
    pub fn consecutive(&self) -> u32 {
        self.consecutive_5xx.unwrap_or(5)
    }

    pub fn interval(&self) -> Duration {
        self.interval.unwrap_or(Duration::from_secs(10))
    }

    pub fn base(&self) -> Duration {
        self.base_ejection.unwrap_or(Duration::from_secs(30))
    }

    pub fn max_ejection(&self) -> u32 {
        self.max_ejection_percent.unwrap_or(10)
    }
}

/// The cluster's default-priority thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreakers {
    pub max_connections: u32,
    pub max_pending_requests: u32,
    pub max_requests: u32,
    pub max_retries: u32,
}

impl CircuitBreakers {
    /// What Istio sets without a DestinationRule connection pool: no limit.
    pub const UNLIMITED: CircuitBreakers = CircuitBreakers {
        max_connections: u32::MAX,
        max_pending_requests: u32::MAX,
        max_requests: u32::MAX,
        max_retries: u32::MAX,
    };
}

/// A WasmPlugin as the proxy runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmFilter {
    /// `<namespace>.<name>` (the plugin's `plugin_name`).
    pub name: String,
    /// The module's URL in the WasmPlugin.
    pub url: String,
    /// `pluginConfig` as the JSON string the module receives.
    pub configuration: String,
    /// `vm_id` is empty on Istio; `root_id` is the plugin's `pluginName` (empty).
    pub vm_id: String,
    pub root_id: String,
    pub phase: String,
    pub failure_policy: FailurePolicy,
}

impl WasmFilter {
    /// With any `failStrategy` but `FAIL_OPEN`, a module the agent cannot fetch is
    /// replaced by an RBAC filter that denies every request (403), `FAIL_RELOAD`
    /// included (`pkg/wasm/convert.go`, `MaybeConvertWasmExtensionConfig`).
    pub fn denies_all_when_unfetched(&self) -> bool {
        self.failure_policy != FailurePolicy::FailOpen
    }
}

/// What Envoy does when the plugin's VM fails (`failStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    FailClosed,
    FailOpen,
    FailReload,
}

impl FailurePolicy {
    pub fn envoy_name(self) -> &'static str {
        match self {
            FailurePolicy::FailClosed => "FAIL_CLOSED",
            FailurePolicy::FailOpen => "FAIL_OPEN",
            FailurePolicy::FailReload => "FAIL_RELOAD",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: PathMatch, method: Option<MethodMatch>) -> Route {
        Route {
            name: String::new(),
            source: String::new(),
            path,
            method,
            cluster: "order-service".into(),
            timeout: Duration::ZERO,
            retry: None,
        }
    }

    #[test]
    fn path_matchers_as_envoy_matches_them() {
        let separated = PathMatch::SeparatedPrefix("/api/v1/orders".into());
        assert!(separated.matches("/api/v1/orders"));
        assert!(separated.matches("/api/v1/orders/1"));
        assert!(!separated.matches("/api/v1/orders1"));
        let plain = PathMatch::Prefix("/api/v1/orders".into());
        assert!(plain.matches("/api/v1/orders1"), "a plain string prefix");
        let exact = PathMatch::Exact("/api/v1/orders".into());
        assert!(exact.matches("/api/v1/orders") && !exact.matches("/api/v1/orders/"));
        assert!(PathMatch::Regex("/a|/b".into()).matches("/b"));
        assert!(!PathMatch::Regex("/a|/b".into()).matches("/ab"));
    }

    #[test]
    fn a_route_takes_a_request_when_path_and_method_match() {
        let unsafe_methods = route(
            PathMatch::Prefix("/".into()),
            Some(MethodMatch::Regex("POST|PATCH".into())),
        );
        assert!(unsafe_methods.matches("POST", "/api/v1/payments"));
        assert!(!unsafe_methods.matches("GET", "/api/v1/payments"));
        assert!(!unsafe_methods.matches("POSTX", "/api/v1/payments"));
        let any = route(PathMatch::Exact("/a".into()), None);
        assert!(any.matches("DELETE", "/a") && !any.matches("GET", "/b"));
    }
}
