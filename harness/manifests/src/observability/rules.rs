//! The Prometheus rules: per-route recording rules, four alerts over them, and the
//! `promtool test rules` cases that fire each alert and show where it stays quiet.
//!
//! ## The alerts and their thresholds
//!
//! - `C4meshCircuitOpen` (critical, no `for`): a route's circuit is open or half-open
//!   at a proxy. The circuit only opens after `consecutive_5xx` failures in a row and
//!   stays open at least `base_ejection`, so one sample of the gauge is no blip; the
//!   alert's `activeAt` says since when.
//! - `C4meshBudgetExhausted` (warning, `for: 2m`): more than
//!   [`BUDGET_EXHAUSTED_SHARE`] of a route's requests got fewer retries than its
//!   attempts. A healthy route refunds what it reserves and never gets there; a
//!   sustained share means the service fails often enough to spend the budget.
//! - `C4meshHostEjections` (warning, no `for`): the filter signalled a host ejection on
//!   the route in the last minute.
//! - `C4meshRetryAmplification` (warning, `for: 2m`): retries used per request above the
//!   route's `retry_budget.ratio` (the share of extra load the budget is sized for;
//!   [`AMPLIFICATION_DEFAULT`] for a route without a budget): the service receives more
//!   than `1 + ratio` attempts per request.

use super::{metric, metrics, Kind, Metric, Scope, DIR};
use crate::istio::{Meta, Resource};
use crate::objects::{yaml, HEADER};
use crate::Error;
use c4mesh_filter_core::config::Route;
use c4mesh_filter_core::Config;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The share of a route's requests that may get fewer retries than its attempts before
/// `C4meshBudgetExhausted` fires.
pub const BUDGET_EXHAUSTED_SHARE: f64 = 0.01;
/// The retries per request above which `C4meshRetryAmplification` fires on a route
/// without a retry budget.
pub const AMPLIFICATION_DEFAULT: f64 = 0.2;
/// The file name of the plain rules file, under `manifests/observability/`.
pub const RULES_FILE: &str = "c4mesh-rules.yml";
/// The window of the recorded rates.
const WINDOW: &str = "1m";

/// One alert of the rules, as the docs and the tests name it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub name: &'static str,
    pub severity: &'static str,
    pub for_: Option<&'static str>,
    /// Templates over the alert's labels (`{{ $labels.route }}`, `namespace`, `pod`).
    pub summary: &'static str,
    pub description: &'static str,
}

const CIRCUIT_OPEN: Alert = Alert {
    name: "C4meshCircuitOpen",
    severity: "critical",
    for_: None,
    summary:
        "Circuit of route {{ $labels.route }} open at {{ $labels.namespace }}/{{ $labels.pod }}",
    description: "Requests on route {{ $labels.route }} get a local 503 (circuit_open) at \
                  {{ $labels.namespace }}/{{ $labels.pod }} without reaching the service: its \
                  last final responses were 5xx in a row. The circuit probes the service again \
                  after base_ejection and closes on the first success.",
};
const BUDGET_EXHAUSTED: Alert = Alert {
    name: "C4meshBudgetExhausted",
    severity: "warning",
    for_: Some("2m"),
    summary: "Retry budget of route {{ $labels.route }} exhausted at {{ $labels.namespace }}/{{ $labels.pod }}",
    description: "Requests on route {{ $labels.route }} get fewer retries than the route's \
                  attempts at {{ $labels.namespace }}/{{ $labels.pod }}: the service fails \
                  often enough to spend the retry budget.",
};
const HOST_EJECTIONS: Alert = Alert {
    name: "C4meshHostEjections",
    severity: "warning",
    for_: None,
    summary:
        "Hosts of route {{ $labels.route }} ejected at {{ $labels.namespace }}/{{ $labels.pod }}",
    description: "The filter at {{ $labels.namespace }}/{{ $labels.pod }} saw consecutive 5xx \
                  from a host of route {{ $labels.route }} and signalled its ejection (the \
                  proxy's log names the host).",
};
const RETRY_AMPLIFICATION: Alert = Alert {
    name: "C4meshRetryAmplification",
    severity: "warning",
    for_: Some("2m"),
    summary: "Retries amplify the load on route {{ $labels.route }} at {{ $labels.namespace }}/{{ $labels.pod }}",
    description: "Retries used per request on route {{ $labels.route }} at \
                  {{ $labels.namespace }}/{{ $labels.pod }} are above the route's retry budget \
                  ratio: the service receives more attempts than requests by more than the \
                  budget allows for.",
};

/// The four alerts.
pub fn alert_names() -> [&'static str; 4] {
    [
        CIRCUIT_OPEN.name,
        BUDGET_EXHAUSTED.name,
        HOST_EJECTIONS.name,
        RETRY_AMPLIFICATION.name,
    ]
}

/// A rule group as Prometheus reads it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleGroup {
    pub name: String,
    pub rules: Vec<Rule>,
}

/// A recording or alerting rule.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    pub expr: String,
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `c4mesh_route:<base>:rate1m` for a route counter, `c4mesh_route:<name>` for the gauge,
/// `c4mesh:<base>:rate1m` for a proxy-wide counter.
pub fn recorded(metric: &Metric) -> String {
    let level = match metric.scope {
        Scope::Route => "c4mesh_route",
        Scope::Proxy => "c4mesh",
    };
    match metric.kind {
        Kind::Counter => format!("{level}:{}:rate{WINDOW}", metric.base()),
        Kind::Gauge => format!("{level}:{}", metric.name),
    }
}

fn record(metric: &Metric, route: Option<&str>) -> Rule {
    let series = metric.series(route.unwrap_or_default());
    Rule {
        record: Some(recorded(metric)),
        expr: match metric.kind {
            Kind::Counter => format!("rate({series}[{WINDOW}])"),
            Kind::Gauge => series,
        },
        labels: route
            .map(|r| BTreeMap::from([("route".to_owned(), r.to_owned())]))
            .unwrap_or_default(),
        ..Rule::default()
    }
}

fn alert(alert: &Alert, expr: String) -> Rule {
    Rule {
        alert: Some(alert.name.to_owned()),
        expr,
        for_: alert.for_.map(str::to_owned),
        labels: BTreeMap::from([("severity".to_owned(), alert.severity.to_owned())]),
        annotations: BTreeMap::from([
            ("summary".to_owned(), alert.summary.to_owned()),
            ("description".to_owned(), alert.description.to_owned()),
        ]),
        ..Rule::default()
    }
}

/// The retries per request above which a route's traffic is amplified.
fn amplification_threshold(route: &Route) -> f64 {
    route
        .budget
        .as_ref()
        .map_or(AMPLIFICATION_DEFAULT, |b| b.ratio_ppm as f64 / 1e6)
}

/// The rule groups, from the filter's metrics and the default configuration's routes.
pub fn groups() -> Result<Vec<RuleGroup>, Error> {
    let config = Config::defaults();
    let metrics = metrics()?;
    let mut routes = Vec::new();
    let mut proxy = Vec::new();
    for metric in &metrics {
        match metric.scope {
            Scope::Route => {
                for route in &config.routes {
                    routes.push(record(metric, Some(&route.name)));
                }
            }
            Scope::Proxy => proxy.push(record(metric, None)),
        }
    }
    let name = |n: &str| metric(&metrics, n).map(|m| recorded(&m));
    let requests = name("requests_total")?;
    let mut alerts = vec![
        alert(&CIRCUIT_OPEN, format!("{} > 0", name("circuit_open")?)),
        alert(
            &BUDGET_EXHAUSTED,
            format!(
                "{} / {requests} > {BUDGET_EXHAUSTED_SHARE}",
                name("budget_exhausted_total")?
            ),
        ),
        alert(
            &HOST_EJECTIONS,
            format!("{} > 0", name("host_ejections_total")?),
        ),
    ];
    // One rule per distinct threshold; without a route matcher when all routes share it.
    let mut thresholds: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for route in &config.routes {
        let ppm = (amplification_threshold(route) * 1e6).round() as u64;
        thresholds.entry(ppm).or_default().push(&route.name);
    }
    let retries_used = name("retries_used_total")?;
    for (ppm, names) in &thresholds {
        let matcher = if thresholds.len() == 1 {
            String::new()
        } else {
            format!("{{route=~\"{}\"}}", names.join("|"))
        };
        alerts.push(alert(
            &RETRY_AMPLIFICATION,
            format!(
                "{retries_used}{matcher} / {requests} > {}",
                *ppm as f64 / 1e6
            ),
        ));
    }
    Ok(vec![
        RuleGroup {
            name: "c4mesh-routes".into(),
            rules: routes,
        },
        RuleGroup {
            name: "c4mesh-proxies".into(),
            rules: proxy,
        },
        RuleGroup {
            name: "c4mesh-alerts".into(),
            rules: alerts,
        },
    ])
}

#[derive(Serialize)]
struct RulesFile {
    groups: Vec<RuleGroup>,
}

/// The plain rules file (`rule_files:` of a Prometheus configuration).
pub fn rules_file() -> Result<String, Error> {
    yaml("prometheus rules", &[RulesFile { groups: groups()? }])
        .map(|text| text.replacen("---\n", "", 1))
}

/// `spec` of a `PrometheusRule`.
#[derive(Debug, Clone, Serialize)]
pub struct PrometheusRuleSpec {
    pub groups: Vec<RuleGroup>,
}

/// The same rules as a `PrometheusRule` for the Prometheus Operator.
pub fn prometheus_rule() -> Result<String, Error> {
    let mut meta = Meta::new("c4mesh", "istio-system");
    meta.labels
        .insert("app.kubernetes.io/part-of".into(), "c4mesh".into());
    let rule = Resource::new(
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        meta,
        PrometheusRuleSpec { groups: groups()? },
    );
    yaml("prometheus rule", &[rule])
}

// === the unit tests of the rules ===

/// An alert's template with the labels filled in, as Prometheus expands it.
fn expand(template: &str, labels: &BTreeMap<&str, &str>) -> String {
    let mut out = template.to_owned();
    for (name, value) in labels {
        out = out.replace(&format!("{{{{ $labels.{name} }}}}"), value);
    }
    out
}

/// A proxy the test series come from.
#[derive(Clone, Copy)]
struct Proxy {
    namespace: &'static str,
    pod: &'static str,
}

const GATEWAY: Proxy = Proxy {
    namespace: "istio-system",
    pod: "istio-ingressgateway-0",
};
const SIDECAR: Proxy = Proxy {
    namespace: "ecommerce",
    pod: "order-service-0",
};

fn series(metric: &Metric, route: &str, proxy: Proxy, values: &str) -> Value {
    json!({
        "series": format!(
            "{}{{namespace=\"{}\",pod=\"{}\"}}",
            metric.series(route),
            proxy.namespace,
            proxy.pod
        ),
        "values": values,
    })
}

/// `exp_alerts` of `alert` firing for a route at a proxy.
fn firing(alert: &Alert, route: &str, proxy: Proxy) -> Value {
    let labels = BTreeMap::from([
        ("namespace", proxy.namespace),
        ("pod", proxy.pod),
        ("route", route),
    ]);
    let mut exp_labels: BTreeMap<&str, &str> = labels.clone();
    exp_labels.insert("severity", alert.severity);
    json!({
        "exp_labels": exp_labels,
        "exp_annotations": {
            "summary": expand(alert.summary, &labels),
            "description": expand(alert.description, &labels),
        },
    })
}

fn check(at: &str, alert: &Alert, firing: Vec<Value>) -> Value {
    json!({"eval_time": at, "alertname": alert.name, "exp_alerts": firing})
}

/// `promtool test rules` cases: each alert fires for the route and proxy whose series
/// cross its threshold, not before its `for`, not for a neighbour below the threshold,
/// and stops when the series recover. Samples every 15 s (Istio's scrape interval).
pub fn rules_unit_tests() -> Result<String, Error> {
    let config = Config::defaults();
    let metrics = metrics()?;
    let m = |n: &str| metric(&metrics, n);
    let (a, b) = match config.routes.as_slice() {
        [a, b, ..] => (a, b),
        _ => return Err(Error::Undescribed("two routes for the rules' tests".into())),
    };
    let (ra, rb) = (a.name.as_str(), b.name.as_str());
    let (requests, gauge) = (m("requests_total")?, m("circuit_open")?);
    let exhausted = m("budget_exhausted_total")?;
    let ejections = m("host_ejections_total")?;
    let used = m("retries_used_total")?;
    // 4 requests a second; from 3m the amplified route uses half a retry per request,
    // above its budget's ratio, the other one a tenth, below it.
    let busy = "0+60x40";
    let amplified = "0x12 30+30x27";
    debug_assert!(amplification_threshold(a) < 0.5 && amplification_threshold(b) > 0.1);
    let tests = json!([
        {
            "name": "circuit open: fires while the route's gauge is 1 at that proxy, resolves when it is 0",
            "interval": "15s",
            "input_series": [
                series(&gauge, ra, GATEWAY, "0x7 1x7 0x7"),
                series(&gauge, ra, SIDECAR, "0x21"),
                series(&gauge, rb, GATEWAY, "0x21"),
            ],
            "alert_rule_test": [
                check("1m", &CIRCUIT_OPEN, vec![]),
                check("2m30s", &CIRCUIT_OPEN, vec![firing(&CIRCUIT_OPEN, ra, GATEWAY)]),
                check("5m", &CIRCUIT_OPEN, vec![]),
            ],
        },
        {
            "name": "budget exhausted: fires after 2m above 1% of requests, not for a route at 0.5%",
            "interval": "15s",
            "input_series": [
                series(&requests, ra, GATEWAY, busy),
                series(&exhausted, ra, GATEWAY, "0x12 6+6x27"),
                series(&requests, rb, GATEWAY, "0+600x40"),
                series(&exhausted, rb, GATEWAY, "0+3x40"),
            ],
            "alert_rule_test": [
                check("3m", &BUDGET_EXHAUSTED, vec![]),
                check("4m30s", &BUDGET_EXHAUSTED, vec![]),
                check("6m30s", &BUDGET_EXHAUSTED, vec![firing(&BUDGET_EXHAUSTED, ra, GATEWAY)]),
            ],
        },
        {
            "name": "host ejections: fire in the minute after an ejection, only for that route",
            "interval": "15s",
            "input_series": [
                series(&ejections, ra, SIDECAR, "0x12 1x28"),
                series(&ejections, rb, SIDECAR, "0x40"),
            ],
            "alert_rule_test": [
                check("3m", &HOST_EJECTIONS, vec![]),
                check("3m45s", &HOST_EJECTIONS, vec![firing(&HOST_EJECTIONS, ra, SIDECAR)]),
                check("6m", &HOST_EJECTIONS, vec![]),
            ],
        },
        {
            "name": "retry amplification: fires after 2m above the budget ratio, not for a route below it",
            "interval": "15s",
            "input_series": [
                series(&requests, ra, GATEWAY, busy),
                series(&used, ra, GATEWAY, amplified),
                series(&requests, rb, GATEWAY, busy),
                series(&used, rb, GATEWAY, "0+6x40"),
            ],
            "alert_rule_test": [
                check("3m", &RETRY_AMPLIFICATION, vec![]),
                check("4m30s", &RETRY_AMPLIFICATION, vec![]),
                check("6m30s", &RETRY_AMPLIFICATION, vec![firing(&RETRY_AMPLIFICATION, ra, GATEWAY)]),
            ],
        },
        {
            "name": "a healthy mesh raises nothing",
            "interval": "15s",
            "input_series": [
                series(&requests, ra, GATEWAY, busy),
                series(&used, ra, GATEWAY, "0x40"),
                series(&exhausted, ra, GATEWAY, "0x40"),
                series(&ejections, ra, GATEWAY, "0x40"),
                series(&gauge, ra, GATEWAY, "0x40"),
            ],
            "alert_rule_test": alert_names()
                .iter()
                .map(|name| json!({"eval_time": "9m", "alertname": name, "exp_alerts": []}))
                .collect::<Vec<_>>(),
        },
    ]);
    let file = json!({
        "rule_files": [RULES_FILE],
        "evaluation_interval": "15s",
        "tests": tests,
    });
    let text = crate::objects::to_yaml(&file).map_err(|source| Error::Yaml {
        what: "the rules' unit tests".into(),
        source,
    })?;
    Ok(format!(
        "{HEADER}# Run: promtool test rules manifests/{DIR}/c4mesh-rules.test.yml\n{text}"
    ))
}
