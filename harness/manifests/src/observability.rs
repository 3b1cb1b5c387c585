//! What the operator applies to see the filter: the proxies' stats inclusion, the
//! Prometheus rules and the Grafana dashboard, generated from one source.
//!
//! ## One source
//!
//! The filter core names its metrics (`c4mesh_filter_core::metrics`: the per-route
//! counters, the `circuit_open` gauge, the proxy-wide counters and footprint gauges) and the default
//! configuration names the routes. [`metrics`] is the table built from both, with what
//! each metric means; the recording rules, the alerts, their unit tests and every
//! dashboard panel are generated from it. A metric the core adds without a description
//! here fails the generation ([`Error::Undescribed`](crate::Error)), so the rules and
//! the dashboard cannot silently miss one.
//!
//! ## From the filter to Prometheus
//!
//! The filter defines `c4mesh.route.<route>.<name>` and `c4mesh.<name>`; Envoy keeps
//! them under its custom stat namespace `wasmcustom.`. Istio's proxies only keep the
//! stats their `proxyStatsMatcher` includes, so every generated Deployment's pod
//! template, and the ingress gateway's through a patch, carries the annotation
//! `proxy.istio.io/config: {proxyStatsMatcher: {inclusionPrefixes: [wasmcustom.c4mesh]}}`
//! ([`proxy_config_annotation`]). Envoy's `/stats/prometheus` (which Istio's merged
//! metrics endpoint on port 15020 serves) drops the custom namespace and the `envoy_`
//! prefix: `wasmcustom.c4mesh.route.orders.requests_total` is scraped as
//! `c4mesh_route_orders_requests_total` ([`prometheus_name`]; checked against a running
//! Envoy by the end-to-end tests).
//!
//! ## Why recording rules first
//!
//! The route is part of each metric's name, not a label. The recording rules turn each
//! route's series into one series per metric with a `route` label
//! (`c4mesh_route:requests:rate1m{route="orders"}`), keeping the labels of the proxy it
//! came from (`namespace`, `pod`, ...): the alerts are then four rules, not four per
//! route, and name the route and the proxy in their labels. The dashboard queries the
//! scraped series themselves, so it works on a Prometheus without these rules.

mod dashboard;
mod rules;

pub use dashboard::dashboard;
pub use rules::{
    alert_names, groups, prometheus_rule, recorded, rules_file, rules_unit_tests, Alert, Rule,
    RuleGroup, AMPLIFICATION_DEFAULT, BUDGET_EXHAUSTED_SHARE, RULES_FILE,
};

use crate::Error;
use c4mesh_filter_core::metrics::{
    global_metric_name, route_metric_name, CIRCUIT_OPEN_GAUGE, GLOBAL_COUNTERS, GLOBAL_GAUGES,
    ROUTE_COUNTERS,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The prefix of every stat of the filter in Envoy (its `wasmcustom.` namespace).
pub const STATS_PREFIX: &str = "wasmcustom.c4mesh";
/// The pod annotation Istio reads a proxy's `ProxyConfig` from.
pub const PROXY_CONFIG_ANNOTATION: &str = "proxy.istio.io/config";
/// The folder of the generated observability files, under `manifests/`.
pub const DIR: &str = "observability";

/// Where a metric lives: per route, or once per proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Route,
    Proxy,
}

/// What kind of metric Envoy exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One metric of the filter, as the core names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    /// The core's name (`requests_total`, `circuit_open`, `bad_path_total`).
    pub name: &'static str,
    pub scope: Scope,
    pub kind: Kind,
    /// What it counts, for the dashboard and the docs.
    pub help: &'static str,
}

impl Metric {
    /// The name without its `_total` suffix, as the recording rules use it.
    pub fn base(&self) -> &'static str {
        self.name.strip_suffix("_total").unwrap_or(self.name)
    }

    /// The series Envoy exports for this metric (of `route`, for a route metric).
    pub fn series(&self, route: &str) -> String {
        match self.scope {
            Scope::Route => prometheus_name(&route_metric_name(route, self.name)),
            Scope::Proxy => prometheus_name(&global_metric_name(self.name)),
        }
    }
}

fn help(name: &str) -> Option<&'static str> {
    Some(match name {
        "requests_total" => "requests routed to the route",
        "local_replies_total" => {
            "requests the filter answered itself (circuit_open, method_not_allowed)"
        }
        "retries_granted_total" => "retries the budget granted (x-envoy-max-retries)",
        "retries_used_total" => "retries Envoy made of those granted",
        "budget_exhausted_total" => "requests granted fewer retries than the route's attempts",
        "host_ejections_total" => "hosts signalled as ejected after consecutive 5xx",
        "circuit_opened_total" => "times the route's circuit opened",
        "fail_fast_total" => "requests answered 503 circuit_open without reaching the service",
        "circuit_open" => "1 while the route's circuit is open or half-open, else 0",
        "unknown_host_total" => "requests for a host the gateway does not serve (404 unknown_host)",
        "no_route_total" => "requests matching no route (404 no_route)",
        "bad_path_total" => "requests refused for their path (400 bad_path)",
        "config_errors_total" => "plugin configurations the filter rejected",
        "vm_memory_bytes" => {
            "linear memory of the filter's Wasm VMs in the proxy, summed over them"
        }
        "shared_keys" => "shared-data keys the filter keeps (a fixed set per configuration)",
        "shared_bytes" => "bytes of the values under those keys (host tables capped per route)",
        _ => return None,
    })
}

/// Every metric of the filter: the core's names with their meaning.
pub fn metrics() -> Result<Vec<Metric>, Error> {
    let named = ROUTE_COUNTERS
        .iter()
        .map(|n| (*n, Scope::Route, Kind::Counter))
        .chain(std::iter::once((
            CIRCUIT_OPEN_GAUGE,
            Scope::Route,
            Kind::Gauge,
        )))
        .chain(
            GLOBAL_COUNTERS
                .iter()
                .map(|n| (*n, Scope::Proxy, Kind::Counter)),
        )
        .chain(
            GLOBAL_GAUGES
                .iter()
                .map(|n| (*n, Scope::Proxy, Kind::Gauge)),
        );
    named
        .map(|(name, scope, kind)| {
            Ok(Metric {
                name,
                scope,
                kind,
                help: help(name).ok_or_else(|| Error::Undescribed(name.to_owned()))?,
            })
        })
        .collect()
}

/// The metric of that core name (for the rules and the dashboard, which name the
/// metrics they use).
pub(crate) fn metric(metrics: &[Metric], name: &str) -> Result<Metric, Error> {
    metrics
        .iter()
        .find(|m| m.name == name)
        .cloned()
        .ok_or_else(|| Error::Undescribed(name.to_owned()))
}

/// The name Envoy's `/stats/prometheus` gives a filter stat (`c4mesh.route.orders.
/// requests_total` → `c4mesh_route_orders_requests_total`): the `wasmcustom.`
/// namespace and Envoy's `envoy_` prefix are left out, and every character a
/// Prometheus name cannot hold becomes `_`.
pub fn prometheus_name(stat: &str) -> String {
    let stat = stat.strip_prefix("wasmcustom.").unwrap_or(stat);
    let mut name: String = stat
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// The filter's series a PromQL expression reads: every metric name starting with
/// `c4mesh_` (recorded ones, `c4mesh_route:...`, included), in order of appearance.
pub fn filter_series(expr: &str) -> Vec<String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("c4mesh_") {
        let preceded = rest[..at].chars().next_back().is_some_and(word);
        let tail = &rest[at..];
        let end = tail.find(|c: char| !word(c)).unwrap_or(tail.len());
        if !preceded {
            names.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

// === impl the stats inclusion ===

/// The part of Istio's `ProxyConfig` the annotation sets, typed as Istio names it
/// (`istio.mesh.v1alpha1.ProxyConfig.proxyStatsMatcher`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyConfig {
    pub proxy_stats_matcher: ProxyStatsMatcher,
}

/// `ProxyConfig.ProxyStatsMatcher`: which Envoy stats the proxy keeps besides Istio's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyStatsMatcher {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inclusion_prefixes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inclusion_suffixes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inclusion_regexps: Vec<String>,
}

/// The `proxy.istio.io/config` value that includes the filter's stats.
pub fn proxy_config_annotation() -> Result<String, Error> {
    let config = ProxyConfig {
        proxy_stats_matcher: ProxyStatsMatcher {
            inclusion_prefixes: vec![STATS_PREFIX.to_owned()],
            inclusion_suffixes: Vec::new(),
            inclusion_regexps: Vec::new(),
        },
    };
    crate::objects::to_yaml(&config).map_err(|source| Error::Yaml {
        what: "the proxy config annotation".into(),
        source,
    })
}

/// The annotations a pod needs for its proxy to keep the filter's stats.
pub fn pod_annotations() -> Result<BTreeMap<String, String>, Error> {
    Ok(BTreeMap::from([(
        PROXY_CONFIG_ANNOTATION.to_owned(),
        proxy_config_annotation()?,
    )]))
}

/// Whether a `proxy.istio.io/config` value includes every stat of the filter: one of
/// its `inclusionPrefixes` is a prefix of `wasmcustom.c4mesh.` (suffixes and regular
/// expressions are not evaluated here). `Err` when the value is no YAML object.
pub fn includes_filter_stats(annotation: &str) -> Result<bool, String> {
    let value: serde_json::Value = serde_saphyr::from_str(annotation)
        .map_err(|e| format!("not YAML: {}", e.without_snippet()))?;
    if !value.is_object() {
        return Err("not a ProxyConfig object".into());
    }
    let stat = format!("{STATS_PREFIX}.");
    Ok(value
        .pointer("/proxyStatsMatcher/inclusionPrefixes")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|prefixes| {
            prefixes
                .iter()
                .filter_map(serde_json::Value::as_str)
                .any(|p| !p.is_empty() && stat.starts_with(p))
        }))
}

#[cfg(test)]
mod tests;
