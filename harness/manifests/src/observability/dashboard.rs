//! The Grafana dashboard: a row of proxy-wide panels, then one row per route with its
//! requests, local replies by reason, retries granted and used, budget exhaustion, the
//! circuit's state over time and host ejections. Every query reads the series Envoy
//! exports (no recording rule needed), summed per proxy (`namespace`, `pod`: the labels
//! Istio's Prometheus gives a pod's metrics, and the local mesh's Prometheus too).

use super::{metric, metrics, Metric};
use crate::Error;
use c4mesh_filter_core::config::Route;
use c4mesh_filter_core::Config;
use serde_json::{json, Value};

const PER_PROXY: &str = "{{namespace}}/{{pod}}";
const WIDTH: u32 = 8;
const HEIGHT: u32 = 8;

/// One query of a panel and its legend.
struct Query {
    expr: String,
    legend: String,
}

fn query(expr: String, legend: &str) -> Query {
    Query {
        expr,
        legend: legend.to_owned(),
    }
}

/// The rate of a counter per proxy.
fn rate_per_proxy(series: &str) -> String {
    format!("sum by (namespace, pod) (rate({series}[$__rate_interval]))")
}

/// The rate of a counter over every proxy.
fn rate(series: &str) -> String {
    format!("sum(rate({series}[$__rate_interval]))")
}

struct Layout {
    next_id: u32,
    y: u32,
    x: u32,
    panels: Vec<Value>,
}

impl Layout {
    fn row(&mut self, title: &str) {
        if self.x > 0 {
            self.y += HEIGHT;
            self.x = 0;
        }
        self.next_id += 1;
        self.panels.push(json!({
            "type": "row",
            "id": self.next_id,
            "title": title,
            "collapsed": false,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
            "panels": [],
        }));
        self.y += 1;
    }

    fn panel(&mut self, kind: &str, title: &str, help: &str, unit: &str, queries: Vec<Query>) {
        if self.x + WIDTH > 24 {
            self.y += HEIGHT;
            self.x = 0;
        }
        self.next_id += 1;
        let targets: Vec<Value> = queries
            .into_iter()
            .zip('A'..)
            .map(|(q, ref_id)| {
                json!({
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "expr": q.expr,
                    "legendFormat": q.legend,
                    "refId": ref_id.to_string(),
                })
            })
            .collect();
        let mut panel = json!({
            "type": kind,
            "id": self.next_id,
            "title": title,
            "description": help,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": HEIGHT, "w": WIDTH, "x": self.x, "y": self.y},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
            "targets": targets,
        });
        if kind == "state-timeline" {
            panel["fieldConfig"]["defaults"]["mappings"] = json!([{
                "type": "value",
                "options": {
                    "0": {"text": "closed", "color": "green", "index": 0},
                    "1": {"text": "open", "color": "red", "index": 1},
                },
            }]);
            panel["fieldConfig"]["defaults"]["color"] = json!({"mode": "thresholds"});
            panel["fieldConfig"]["defaults"]["thresholds"] = json!({
                "mode": "absolute",
                "steps": [{"color": "green", "value": null}, {"color": "red", "value": 1}],
            });
        }
        self.panels.push(panel);
        self.x += WIDTH;
    }
}

fn route_panels(layout: &mut Layout, metrics: &[Metric], route: &Route) -> Result<(), Error> {
    let m = |name: &str| metric(metrics, name);
    let s = |name: &str| m(name).map(|m| m.series(&route.name));
    layout.row(&format!(
        "route {} ({} {})",
        route.name, route.service, route.prefix
    ));
    layout.panel(
        "timeseries",
        "Requests",
        m("requests_total")?.help,
        "reqps",
        vec![query(rate_per_proxy(&s("requests_total")?), PER_PROXY)],
    );
    let (local, fail_fast) = (s("local_replies_total")?, s("fail_fast_total")?);
    layout.panel(
        "timeseries",
        "Local replies by reason",
        m("local_replies_total")?.help,
        "reqps",
        vec![
            query(rate(&fail_fast), "circuit_open"),
            query(
                format!("{} - {}", rate(&local), rate(&fail_fast)),
                "method_not_allowed",
            ),
        ],
    );
    layout.panel(
        "timeseries",
        "Retries granted and used",
        "retries the budget granted, and those Envoy made",
        "reqps",
        vec![
            query(rate(&s("retries_granted_total")?), "granted"),
            query(rate(&s("retries_used_total")?), "used"),
        ],
    );
    layout.panel(
        "timeseries",
        "Budget exhaustion",
        m("budget_exhausted_total")?.help,
        "reqps",
        vec![query(
            rate_per_proxy(&s("budget_exhausted_total")?),
            PER_PROXY,
        )],
    );
    layout.panel(
        "state-timeline",
        "Circuit state",
        m("circuit_open")?.help,
        "none",
        vec![query(
            format!("max by (namespace, pod) ({})", s("circuit_open")?),
            PER_PROXY,
        )],
    );
    layout.panel(
        "timeseries",
        "Host ejections and circuit openings",
        "hosts signalled as ejected, and circuit openings, per minute",
        "short",
        vec![
            query(
                format!(
                    "sum by (namespace, pod) (increase({}[1m]))",
                    s("host_ejections_total")?
                ),
                "ejections {{namespace}}/{{pod}}",
            ),
            query(
                format!(
                    "sum by (namespace, pod) (increase({}[1m]))",
                    s("circuit_opened_total")?
                ),
                "circuit opened {{namespace}}/{{pod}}",
            ),
        ],
    );
    Ok(())
}

/// The dashboard as Grafana imports it (pretty-printed JSON).
pub fn dashboard() -> Result<String, Error> {
    let config = Config::defaults();
    let metrics = metrics()?;
    let mut layout = Layout {
        next_id: 0,
        y: 0,
        x: 0,
        panels: Vec::new(),
    };
    layout.row("all routes");
    let proxy_wide = ["unknown_host_total", "no_route_total", "bad_path_total"]
        .into_iter()
        .map(|name| {
            let metric = metric(&metrics, name)?;
            let reason = metric.base().to_owned();
            Ok(query(rate(&metric.series("")), &reason))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    layout.panel(
        "timeseries",
        "Refused before routing, by reason",
        "requests refused for their host or path, over every proxy",
        "reqps",
        proxy_wide,
    );
    let requests: Vec<Query> = config
        .routes
        .iter()
        .map(|r| {
            Ok(query(
                rate(&metric(&metrics, "requests_total")?.series(&r.name)),
                &r.name,
            ))
        })
        .collect::<Result<_, Error>>()?;
    layout.panel(
        "timeseries",
        "Requests by route",
        "requests routed, over every proxy",
        "reqps",
        requests,
    );
    let config_errors = metric(&metrics, "config_errors_total")?;
    layout.panel(
        "timeseries",
        "Rejected configurations",
        config_errors.help,
        "short",
        vec![query(
            format!(
                "sum by (namespace, pod) (increase({}[5m]))",
                config_errors.series("")
            ),
            PER_PROXY,
        )],
    );
    for route in &config.routes {
        route_panels(&mut layout, &metrics, route)?;
    }
    let dashboard = json!({
        "title": "c4mesh: routes, retries and circuits",
        "uid": "c4mesh",
        "description": "The c4mesh filter's metrics (wasmcustom.c4mesh) at the ingress gateway and the sidecars. Generated by `c4mesh manifests`.",
        "tags": ["c4mesh", "istio"],
        "editable": true,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "templating": {"list": [{
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
        }]},
        "annotations": {"list": []},
        "panels": layout.panels,
    });
    serde_json::to_string_pretty(&dashboard)
        .map(|text| text + "\n")
        .map_err(|source| Error::Json {
            what: "the dashboard".into(),
            source,
        })
}
