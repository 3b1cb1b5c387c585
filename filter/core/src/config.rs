//! The plugin configuration: wire JSON in, validated domain values out.
//!
//! The WasmPlugin `pluginConfig` is JSON (SPEC 2.1). An empty or absent configuration
//! means [`DEFAULT_CONFIG_JSON`], the mesh the filter was built for; a partial one
//! inherits every field it leaves out from there. That one document is also what the
//! manifests ship as `pluginConfig`, so the mesh definition has a single source.
//!
//! ## Inheritance
//!
//! - A top-level field that is absent takes the default document's value.
//! - An object given at the top level (`retry`, `retry_budget`, `outlier`) inherits
//!   each field it omits from the default document's object.
//! - A route's `retry`, `retry_budget` and `outlier` inherit each omitted field from
//!   the effective top-level object; a route's `timeout` defaults to its retry timeout.
//! - `"retry_budget": null` switches the budget off (at the top level: for every route
//!   without a budget of its own); `"outlier": {"consecutive_5xx": 0}` switches the
//!   outlier signal and the route circuit off.
//!
//! ## Where the filter runs
//!
//! `mode` and `namespace` (SPEC 2.8) are not in the default document, which is the
//! gateway's and is what the manifests ship: absent, they are `"gateway"` and
//! `"ecommerce"`. In sidecar mode each route's `service` must be a Kubernetes service
//! name, since that is how a call names its destination (see [`crate::destination`]),
//! and the destinations are grouped once, here, for the per-request lookup.
//!
//! ## What the proxy's route already applies (R6)
//!
//! `proxy_applies` states which of the filter's request headers the proxy's own route
//! policy already applies: `"retries"` (the route retries `retry.attempts` times, so a
//! grant of all of them needs no `x-envoy-max-retries`) and `"timeout"` (the route's
//! timeout is the filter's, so `x-envoy-upstream-rq-timeout-ms` is left out). Absent,
//! the filter sets both headers on every forwarded request. A request-header mutation
//! makes Envoy match the route again, so on a healthy request under the statement the
//! filter changes nothing. The generated manifests make the statement true and say it;
//! `c4mesh check` verifies it in a cluster. `route_header: true` adds `x-c4-route` for
//! the service.
//!
//! ## Numbers
//!
//! Ratios and rates become integers (parts per million, micro-tokens) so that the
//! configuration is `Eq` and the budget arithmetic is exact.

use crate::destination::{self, Destinations};
use crate::duration;
use crate::json::{self, ConfigError, Object, Path};
use crate::path as path_safety;
use crate::routes::RouteTable;
use serde_json::{Map, Value};

/// The configuration an empty `pluginConfig` stands for (SPEC 2.1).
pub const DEFAULT_CONFIG_JSON: &str = r#"{
  "hosts": ["api.c4ang.com", "*"],
  "unmatched": "reject",
  "debug_headers": false,
  "routes": [
    {"name": "customers",       "prefix": "/api/v1/customers",       "service": "customer-service"},
    {"name": "orders",          "prefix": "/api/v1/orders",          "service": "order-service"},
    {"name": "products",        "prefix": "/api/v1/products",        "service": "product-service"},
    {"name": "payments",        "prefix": "/api/v1/payments",        "service": "payment-service"},
    {"name": "recommendations", "prefix": "/api/v1/recommendations", "service": "recommendation-service"},
    {"name": "saga",            "prefix": "/api/v1/saga",            "service": "saga-tracker"}
  ],
  "retry":        {"attempts": 3, "timeout": "10s", "retry_on": "5xx,reset,connect-failure,refused-stream"},
  "retry_budget": {"ratio": 0.2, "min_retries_per_second": 10, "window": "10s"},
  "outlier":      {"consecutive_5xx": 5, "base_ejection": "30s", "max_ejection": "300s"}
}"#;

/// The sidecars' configuration, overlaying [`DEFAULT_CONFIG_JSON`] (SPEC 2.8): sidecar
/// mode, and the retries Istio gives in-mesh calls without a VirtualService (2, on its
/// default conditions), so that the filter never grants more than Istio would. That
/// route retries as the filter does but has no timeout, so only the retries are stated
/// as the proxy's (R6): the filter still sets its timeout on every call.
pub const SIDECAR_CONFIG_JSON: &str = r#"{"mode": "sidecar", "proxy_applies": ["retries"], "retry": {"attempts": 2, "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"}}"#;

/// Parts per million: the unit of ratios.
pub const PPM: u64 = 1_000_000;

/// At most this many retries per request may be configured.
pub const MAX_ATTEMPTS: u64 = 10;

/// The namespace of the mesh's services when the configuration names none.
pub const DEFAULT_NAMESPACE: &str = "ecommerce";

/// Route names become metric names and shared-data keys: keep them short and plain.
const MAX_ROUTE_NAME: usize = 64;

/// Retry conditions Envoy's router understands (`x-envoy-retry-on`).
const RETRY_ON_KINDS: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    // gRPC status conditions, part of Istio's default in-mesh policy.
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// The validated configuration the filter runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    /// The namespace of the mesh's services (lower case), naming destinations in
    /// sidecar mode.
    pub namespace: String,
    pub hosts: HostPatterns,
    pub unmatched: Unmatched,
    pub debug_headers: bool,
    /// Whether forwarded requests carry `x-c4-route` to the service (R6).
    pub route_header: bool,
    /// What the proxy's route policy already applies (R6).
    pub proxy_applies: ProxyApplies,
    pub routes: Vec<Route>,
    /// Routes by path prefix (R3), for the gateway.
    pub table: RouteTable,
    /// Routes by destination service (S1); empty in gateway mode.
    pub destinations: Destinations,
}

/// Where the filter runs (SPEC 2.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The ingress gateway: routes by host and path (R1-R7).
    #[default]
    Gateway,
    /// Every pod's sidecar, outbound: routes by destination service (S1-S3).
    Sidecar,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Gateway => "gateway",
            Mode::Sidecar => "sidecar",
        }
    }
}

/// The parts of the filter's route policy that the proxy's own routes already apply
/// (`proxy_applies`), so that the filter need not set them per request (R6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProxyApplies {
    /// Every route's proxy route retries exactly `retry.attempts` times.
    pub retries: bool,
    /// Every route's proxy route has the filter's route timeout.
    pub timeout: bool,
}

/// What happens to a request that matches no route (R7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmatched {
    Reject,
    Pass,
}

/// The `hosts` entries, split by kind for matching (R1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostPatterns {
    /// `*` is present: any authority matches.
    pub any: bool,
    /// Exact host names, lower case.
    pub exact: Vec<String>,
    /// `*.suffix` entries, stored as `.suffix`, lower case.
    pub suffixes: Vec<String>,
}

/// One route after inheritance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub name: String,
    pub prefix: String,
    pub service: String,
    /// Allowed methods (R4); `None` allows every method.
    pub methods: Option<Methods>,
    /// The request timeout set as `x-envoy-upstream-rq-timeout-ms`.
    pub timeout_ms: u64,
    pub retry: RetryPolicy,
    pub budget: Option<BudgetPolicy>,
    pub outlier: OutlierPolicy,
}

/// A route's allowed methods and the `allow` header that lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Methods {
    pub list: Vec<String>,
    pub allow_header: String,
}

impl Methods {
    pub fn allows(&self, method: &[u8]) -> bool {
        self.list.iter().any(|m| m.as_bytes() == method)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries per request (attempts = 1 + retries).
    pub attempts: u32,
    pub timeout_ms: u64,
    pub retry_on: String,
}

/// The retry budget (SPEC 2.3) in exact integer units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetPolicy {
    /// Retries each routed request adds, in parts per million of a retry.
    pub ratio_ppm: u64,
    /// Retries per second always allowed, in millionths of a retry.
    pub min_per_second_ppm: u64,
    pub window_ms: u64,
}

impl BudgetPolicy {
    /// The retries always available over one window (`min_retries_per_second x window`),
    /// in millionths of a retry.
    pub fn reserve_ppm(&self) -> u64 {
        let product = u128::from(self.min_per_second_ppm) * u128::from(self.window_ms) / 1000;
        u64::try_from(product).unwrap_or(u64::MAX)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierPolicy {
    /// 0 switches the per-host signal and the route circuit off.
    pub consecutive_5xx: u32,
    pub base_ejection_ms: u64,
    pub max_ejection_ms: u64,
}

impl OutlierPolicy {
    pub fn enabled(&self) -> bool {
        self.consecutive_5xx > 0
    }

    /// `base_ejection x n`, capped at `max_ejection`.
    pub fn ejection_ms(&self, n: u32) -> u64 {
        self.base_ejection_ms
            .saturating_mul(u64::from(n.max(1)))
            .min(self.max_ejection_ms)
    }
}

impl Config {
    /// The configuration an empty `pluginConfig` stands for.
    pub fn defaults() -> Config {
        match Config::parse(b"") {
            Ok(config) => config,
            // The default document is a constant checked by the tests.
            Err(err) => unreachable!("default configuration is invalid: {err}"),
        }
    }

    /// Parses and validates a `pluginConfig`. Empty (or blank) input means the defaults.
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        let defaults: Value =
            serde_json::from_str(DEFAULT_CONFIG_JSON).map_err(|e| ConfigError {
                path: String::new(),
                reason: format!("default configuration: {e}"),
            })?;
        let user: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Object(Map::new())
        } else {
            serde_json::from_slice(bytes).map_err(|e| ConfigError {
                path: String::new(),
                reason: format!("invalid JSON: {e}"),
            })?
        };
        parse_document(&user, &defaults)
    }
}

const TOP_FIELDS: &[&str] = &[
    "mode",
    "namespace",
    "hosts",
    "unmatched",
    "debug_headers",
    "route_header",
    "proxy_applies",
    "routes",
    "retry",
    "retry_budget",
    "outlier",
];
const ROUTE_FIELDS: &[&str] = &[
    "name",
    "prefix",
    "service",
    "methods",
    "timeout",
    "retry",
    "retry_budget",
    "outlier",
];
const RETRY_FIELDS: &[&str] = &["attempts", "timeout", "retry_on"];
const BUDGET_FIELDS: &[&str] = &["ratio", "min_retries_per_second", "window"];
const OUTLIER_FIELDS: &[&str] = &["consecutive_5xx", "base_ejection", "max_ejection"];

fn parse_document(user: &Value, defaults: &Value) -> Result<Config, ConfigError> {
    let root = Path::Root;
    let top = Object::new(user, &root, TOP_FIELDS)?;
    let default_of = |name: &str| defaults.get(name).unwrap_or(&Value::Null);
    let field = |name: &'static str| top.get(name).unwrap_or(default_of(name));

    let mode = parse_mode(top.get("mode"), &root.field("mode"))?;
    let namespace = parse_namespace(top.get("namespace"), &root.field("namespace"))?;
    let hosts = parse_hosts(field("hosts"), &root.field("hosts"))?;
    let unmatched_path = root.field("unmatched");
    let unmatched = match json::as_str(field("unmatched"), &unmatched_path)? {
        "reject" => Unmatched::Reject,
        "pass" => Unmatched::Pass,
        other => {
            return Err(ConfigError::new(
                &unmatched_path,
                format!("must be \"reject\" or \"pass\", got {other:?}"),
            ))
        }
    };
    let debug_headers = json::as_bool(field("debug_headers"), &root.field("debug_headers"))?;
    let route_header = match top.get("route_header") {
        Some(value) => json::as_bool(value, &root.field("route_header"))?,
        None => false,
    };
    let proxy_applies =
        parse_proxy_applies(top.get("proxy_applies"), &root.field("proxy_applies"))?;

    // Top-level policies inherit omitted fields from the default document.
    let retry_path = root.field("retry");
    let retry_value = merge(top.get("retry"), default_of("retry"), &retry_path)?;
    let retry = parse_retry(&retry_value, &retry_path)?;
    let budget_path = root.field("retry_budget");
    let budget_value = match top.get("retry_budget") {
        Some(Value::Null) => Value::Null,
        given => merge(given, default_of("retry_budget"), &budget_path)?,
    };
    let budget = parse_budget(&budget_value, &budget_path)?;
    let outlier_path = root.field("outlier");
    let outlier_value = merge(top.get("outlier"), default_of("outlier"), &outlier_path)?;
    let outlier = parse_outlier(&outlier_value, &outlier_path)?;

    let inherited = Inherited {
        retry: &retry_value,
        budget: if budget_value.is_null() {
            default_of("retry_budget")
        } else {
            &budget_value
        },
        outlier: &outlier_value,
    };
    let routes_path = root.field("routes");
    let mut routes = Vec::new();
    for (i, value) in json::as_array(field("routes"), &routes_path)?
        .iter()
        .enumerate()
    {
        let route_path = routes_path.index(i);
        let route = parse_route(value, &route_path, &inherited, &retry, budget, outlier)?;
        if mode == Mode::Sidecar && !destination::is_service_name(&route.service) {
            return Err(ConfigError::new(
                &route_path.field("service"),
                format!(
                    "must be a Kubernetes service name in sidecar mode (1 to 63 of a-z, 0-9 \
                     and '-', starting with a letter, ending with a letter or digit), got {:?}",
                    route.service
                ),
            ));
        }
        if let Some(first) = routes.iter().position(|r: &Route| r.name == route.name) {
            return Err(ConfigError::new(
                &route_path.field("name"),
                format!(
                    "duplicate route name {:?} (also routes[{first}])",
                    route.name
                ),
            ));
        }
        if let Some(first) = routes.iter().position(|r: &Route| r.prefix == route.prefix) {
            return Err(ConfigError::new(
                &route_path.field("prefix"),
                format!("duplicate prefix {:?} (also routes[{first}])", route.prefix),
            ));
        }
        routes.push(route);
    }
    top.finish()?;
    let table = RouteTable::new(routes.iter().map(|r| r.prefix.as_str()));
    let destinations = match mode {
        Mode::Gateway => Destinations::default(),
        Mode::Sidecar => Destinations::new(&namespace, &routes),
    };
    Ok(Config {
        mode,
        namespace,
        hosts,
        unmatched,
        debug_headers,
        route_header,
        proxy_applies,
        routes,
        table,
        destinations,
    })
}

fn parse_mode(value: Option<&Value>, path: &Path<'_>) -> Result<Mode, ConfigError> {
    let Some(value) = value else {
        return Ok(Mode::default());
    };
    match json::as_str(value, path)? {
        "gateway" => Ok(Mode::Gateway),
        "sidecar" => Ok(Mode::Sidecar),
        other => Err(ConfigError::new(
            path,
            format!("must be \"gateway\" or \"sidecar\", got {other:?}"),
        )),
    }
}

fn parse_proxy_applies(
    value: Option<&Value>,
    path: &Path<'_>,
) -> Result<ProxyApplies, ConfigError> {
    let mut applies = ProxyApplies::default();
    let Some(value) = value else {
        return Ok(applies);
    };
    for (i, entry) in json::as_array(value, path)?.iter().enumerate() {
        let entry_path = path.index(i);
        let slot = match json::as_str(entry, &entry_path)? {
            "retries" => &mut applies.retries,
            "timeout" => &mut applies.timeout,
            other => {
                return Err(ConfigError::new(
                    &entry_path,
                    format!("must be \"retries\" or \"timeout\", got {other:?}"),
                ))
            }
        };
        if *slot {
            return Err(ConfigError::new(&entry_path, "listed twice"));
        }
        *slot = true;
    }
    Ok(applies)
}

fn parse_namespace(value: Option<&Value>, path: &Path<'_>) -> Result<String, ConfigError> {
    let Some(value) = value else {
        return Ok(DEFAULT_NAMESPACE.to_owned());
    };
    let namespace = json::as_str(value, path)?;
    if !destination::is_dns_label(namespace) {
        return Err(ConfigError::new(
            path,
            format!(
                "must be a Kubernetes namespace (1 to 63 of a-z, 0-9 and '-', starting and \
                 ending with a letter or digit), got {namespace:?}"
            ),
        ));
    }
    Ok(namespace.to_owned())
}

/// The effective top-level objects a route inherits from.
struct Inherited<'a> {
    retry: &'a Value,
    budget: &'a Value,
    outlier: &'a Value,
}

/// Overlays `given` (an object, or absent) on `base`, field by field.
fn merge(given: Option<&Value>, base: &Value, path: &Path<'_>) -> Result<Value, ConfigError> {
    let mut merged = base.as_object().cloned().unwrap_or_default();
    match given {
        None => {}
        Some(Value::Object(fields)) => {
            for (k, v) in fields {
                merged.insert(k.clone(), v.clone());
            }
        }
        Some(other) => {
            return Err(ConfigError::new(
                path,
                format!("expected an object, got {}", json::type_name(other)),
            ))
        }
    }
    Ok(Value::Object(merged))
}

fn parse_hosts(value: &Value, path: &Path<'_>) -> Result<HostPatterns, ConfigError> {
    let entries = json::as_array(value, path)?;
    if entries.is_empty() {
        return Err(ConfigError::new(path, "must list at least one host"));
    }
    let mut hosts = HostPatterns::default();
    for (i, entry) in entries.iter().enumerate() {
        let entry_path = path.index(i);
        let text = json::as_str(entry, &entry_path)?.to_ascii_lowercase();
        if text == "*" {
            hosts.any = true;
            continue;
        }
        let (name, wildcard) = match text.strip_prefix("*.") {
            Some(rest) => (rest, true),
            None => (text.as_str(), false),
        };
        let valid = !name.is_empty()
            && !name.starts_with('.')
            && !name.ends_with('.')
            && !name.contains("..")
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !valid {
            return Err(ConfigError::new(
                &entry_path,
                format!("must be \"*\", \"*.domain\" or a host name without port, got {text:?}"),
            ));
        }
        if wildcard {
            hosts.suffixes.push(format!(".{name}"));
        } else {
            hosts.exact.push(name.to_owned());
        }
    }
    Ok(hosts)
}

fn parse_route(
    value: &Value,
    path: &Path<'_>,
    inherited: &Inherited<'_>,
    top_retry: &RetryPolicy,
    top_budget: Option<BudgetPolicy>,
    top_outlier: OutlierPolicy,
) -> Result<Route, ConfigError> {
    let route = Object::new(value, path, ROUTE_FIELDS)?;
    let required = |name: &'static str| {
        route
            .get(name)
            .ok_or_else(|| ConfigError::new(&path.field(name), "is required"))
    };

    let name_path = path.field("name");
    let name = json::as_str(required("name")?, &name_path)?;
    if name.is_empty()
        || name.len() > MAX_ROUTE_NAME
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ConfigError::new(
            &name_path,
            format!("must be 1 to {MAX_ROUTE_NAME} letters, digits, '-' or '_', got {name:?}"),
        ));
    }

    let prefix_path = path.field("prefix");
    let prefix = json::as_str(required("prefix")?, &prefix_path)?;
    if prefix.is_empty() {
        return Err(ConfigError::new(&prefix_path, "must not be empty"));
    }
    if !prefix.starts_with('/') {
        return Err(ConfigError::new(
            &prefix_path,
            format!("must start with '/', got {prefix:?}"),
        ));
    }
    if prefix.contains(['?', '#']) || path_safety::check(prefix.as_bytes()).is_err() {
        return Err(ConfigError::new(
            &prefix_path,
            format!("must be a plain path (no '//', dot segments, encoded separators, query or fragment), got {prefix:?}"),
        ));
    }
    // "/api/" and "/api" are the same prefix for a segment-aware match.
    let prefix = if prefix.len() > 1 {
        prefix.trim_end_matches('/')
    } else {
        prefix
    };

    let service_path = path.field("service");
    let service = json::as_str(required("service")?, &service_path)?;
    if service.is_empty() {
        return Err(ConfigError::new(&service_path, "must not be empty"));
    }

    let methods = match route.get("methods") {
        None => None,
        Some(value) => Some(parse_methods(value, &path.field("methods"))?),
    };

    let retry = match route.get("retry") {
        None => top_retry.clone(),
        Some(given) => {
            let retry_path = path.field("retry");
            parse_retry(
                &merge(Some(given), inherited.retry, &retry_path)?,
                &retry_path,
            )?
        }
    };
    let budget = match route.get("retry_budget") {
        None => top_budget,
        Some(Value::Null) => None,
        Some(given) => {
            let budget_path = path.field("retry_budget");
            parse_budget(
                &merge(Some(given), inherited.budget, &budget_path)?,
                &budget_path,
            )?
        }
    };
    let outlier = match route.get("outlier") {
        None => top_outlier,
        Some(given) => {
            let outlier_path = path.field("outlier");
            parse_outlier(
                &merge(Some(given), inherited.outlier, &outlier_path)?,
                &outlier_path,
            )?
        }
    };
    let timeout_ms = match route.get("timeout") {
        None => retry.timeout_ms,
        Some(value) => parse_duration(value, &path.field("timeout"), 1)?,
    };
    route.finish()?;
    Ok(Route {
        name: name.to_owned(),
        prefix: prefix.to_owned(),
        service: service.to_owned(),
        methods,
        timeout_ms,
        retry,
        budget,
        outlier,
    })
}

fn parse_methods(value: &Value, path: &Path<'_>) -> Result<Methods, ConfigError> {
    let entries = json::as_array(value, path)?;
    if entries.is_empty() {
        return Err(ConfigError::new(path, "must list at least one method"));
    }
    let mut list: Vec<String> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let entry_path = path.index(i);
        let method = json::as_str(entry, &entry_path)?;
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ConfigError::new(
                &entry_path,
                format!("must be an upper-case HTTP method such as \"GET\", got {method:?}"),
            ));
        }
        if !list.iter().any(|m| m == method) {
            list.push(method.to_owned());
        }
    }
    let allow_header = list.join(", ");
    Ok(Methods { list, allow_header })
}

fn parse_retry(value: &Value, path: &Path<'_>) -> Result<RetryPolicy, ConfigError> {
    let retry = Object::new(value, path, RETRY_FIELDS)?;
    let attempts_path = path.field("attempts");
    let attempts = json::as_u64_within(
        retry.get("attempts").unwrap_or(&Value::Null),
        &attempts_path,
        0,
        MAX_ATTEMPTS,
    )?;
    let timeout_ms = parse_duration(
        retry.get("timeout").unwrap_or(&Value::Null),
        &path.field("timeout"),
        1,
    )?;
    let retry_on_path = path.field("retry_on");
    let retry_on = json::as_str(
        retry.get("retry_on").unwrap_or(&Value::Null),
        &retry_on_path,
    )?;
    let kinds: Vec<&str> = retry_on.split(',').map(str::trim).collect();
    if let Some(bad) = kinds.iter().find(|k| !RETRY_ON_KINDS.contains(k)) {
        return Err(ConfigError::new(
            &retry_on_path,
            format!(
                "unknown retry condition {bad:?} (known: {})",
                RETRY_ON_KINDS.join(", ")
            ),
        ));
    }
    retry.finish()?;
    Ok(RetryPolicy {
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        timeout_ms,
        retry_on: kinds.join(","),
    })
}

fn parse_budget(value: &Value, path: &Path<'_>) -> Result<Option<BudgetPolicy>, ConfigError> {
    if value.is_null() {
        return Ok(None);
    }
    let budget = Object::new(value, path, BUDGET_FIELDS)?;
    let ratio_path = path.field("ratio");
    let ratio = json::as_f64(budget.get("ratio").unwrap_or(&Value::Null), &ratio_path)?;
    if !(0.0..=1.0).contains(&ratio) {
        return Err(ConfigError::new(
            &ratio_path,
            format!("must be within [0, 1], got {ratio}"),
        ));
    }
    let min_path = path.field("min_retries_per_second");
    let min_per_second = json::as_f64(
        budget.get("min_retries_per_second").unwrap_or(&Value::Null),
        &min_path,
    )?;
    if !(0.0..=1_000_000.0).contains(&min_per_second) {
        return Err(ConfigError::new(
            &min_path,
            format!("must be within [0, 1000000], got {min_per_second}"),
        ));
    }
    let window_ms = parse_duration(
        budget.get("window").unwrap_or(&Value::Null),
        &path.field("window"),
        1,
    )?;
    budget.finish()?;
    // Round down: the bound may only get stricter through the conversion.
    Ok(Some(BudgetPolicy {
        ratio_ppm: (ratio * PPM as f64).floor() as u64,
        min_per_second_ppm: (min_per_second * PPM as f64).floor() as u64,
        window_ms,
    }))
}

fn parse_outlier(value: &Value, path: &Path<'_>) -> Result<OutlierPolicy, ConfigError> {
    let outlier = Object::new(value, path, OUTLIER_FIELDS)?;
    let consecutive = json::as_u64_within(
        outlier.get("consecutive_5xx").unwrap_or(&Value::Null),
        &path.field("consecutive_5xx"),
        0,
        10_000,
    )?;
    let base_ejection_ms = parse_duration(
        outlier.get("base_ejection").unwrap_or(&Value::Null),
        &path.field("base_ejection"),
        1,
    )?;
    let max_path = path.field("max_ejection");
    let max_ejection_ms = parse_duration(
        outlier.get("max_ejection").unwrap_or(&Value::Null),
        &max_path,
        1,
    )?;
    if max_ejection_ms < base_ejection_ms {
        return Err(ConfigError::new(
            &max_path,
            format!(
                "must be at least base_ejection ({}), got {}",
                duration::Millis(base_ejection_ms),
                duration::Millis(max_ejection_ms)
            ),
        ));
    }
    outlier.finish()?;
    Ok(OutlierPolicy {
        consecutive_5xx: u32::try_from(consecutive).unwrap_or(u32::MAX),
        base_ejection_ms,
        max_ejection_ms,
    })
}

fn parse_duration(value: &Value, path: &Path<'_>, min_ms: u64) -> Result<u64, ConfigError> {
    let text = match value {
        Value::String(s) => s.as_str(),
        other => {
            return Err(ConfigError::new(
                path,
                format!(
                    "expected a duration string such as \"10s\", got {}",
                    json::type_name(other)
                ),
            ))
        }
    };
    let ms = duration::parse_millis(text).map_err(|reason| ConfigError::new(path, reason))?;
    if ms < min_ms {
        return Err(ConfigError::new(
            path,
            format!(
                "must be at least {}, got {text:?}",
                duration::Millis(min_ms)
            ),
        ));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests;
