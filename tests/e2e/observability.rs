//! The generated observability against real Envoys and a real Prometheus: the
//! dashboard and the rules read series the proxies export, and during an outage the
//! circuit alert fires in Prometheus for the failing route, then resolves after the
//! service recovers.
//!
//! Prometheus is the Debian package `prometheus` (`scripts/setup.sh`); a missing one
//! fails these tests with the fix.

use c4mesh_filter_core::config::SIDECAR_CONFIG_JSON;
use c4mesh_manifests::observability::{self, filter_series};
use c4mesh_mesh::mesh::MeshOptions;
use c4mesh_mesh::{LocalMesh, Prometheus, PrometheusConfig, Topology, Wasm};
use serde_json::Value;
use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

/// The metric names of a `/stats/prometheus` answer.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

fn fast_prometheus() -> PrometheusConfig {
    PrometheusConfig {
        scrape_interval: Duration::from_secs(1),
        evaluation_interval: Duration::from_secs(1),
        rules: Some(observability::rules_file().expect("the rules")),
    }
}

/// Waits until Prometheus has scraped every proxy.
fn wait_scraped(prometheus: &Prometheus, proxies: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let health = prometheus.target_health().expect("targets");
        if health.len() == proxies && health.iter().all(|(_, h)| h == "up") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "targets not up: {health:?}\n{}",
            prometheus.log()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_dashboard_and_the_rules_read_series_the_proxies_export() {
    let mut sidecar: Value = serde_json::from_str(SIDECAR_CONFIG_JSON).expect("sidecar config");
    sidecar["mode"] = Value::from("sidecar");
    let mesh = LocalMesh::start(MeshOptions {
        topology: Topology::parse("order-service=payment-service").expect("topology"),
        sidecar_wasm: Wasm::filter(&sidecar.to_string()).expect("the filter"),
        ..MeshOptions::gateway(Wasm::filter("").expect("the filter"))
    })
    .expect("the local mesh");
    let prometheus = mesh.prometheus(&fast_prometheus()).expect("Prometheus");
    let client = mesh.client();
    for _ in 0..5 {
        client.get("/api/v1/orders/1", &[]).expect("a request");
    }

    // What the proxies export: the gateway's and a sidecar's admin /stats/prometheus.
    let proxies = mesh.proxies();
    assert!(
        proxies.len() > 1,
        "the gateway and the order pods' sidecars"
    );
    let mut names = BTreeSet::new();
    for (pod, envoy) in &proxies {
        let text = envoy.admin_get("/stats/prometheus").expect("stats");
        let here = exported(&text);
        assert!(
            here.contains("c4mesh_route_orders_requests_total"),
            "{pod} exports the filter's series"
        );
        names.extend(here);
    }

    let repo = c4mesh_mesh::envoy::workspace_root();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo.join("manifests/observability/grafana-dashboard.json"))
            .expect("the dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    assert!(queries.len() > 30, "{} queries", queries.len());
    for expr in &queries {
        for name in filter_series(expr) {
            assert!(
                names.contains(&name),
                "the dashboard queries {name}, which no proxy exports ({expr})"
            );
        }
    }
    let rules = observability::groups().expect("the rules");
    let recorded: BTreeSet<String> = rules
        .iter()
        .flat_map(|g| &g.rules)
        .filter_map(|r| r.record.clone())
        .collect();
    for rule in rules.iter().flat_map(|g| &g.rules) {
        for name in filter_series(&rule.expr) {
            assert!(
                names.contains(&name) || recorded.contains(&name),
                "rule {:?} reads {name}, which neither a proxy nor a rule makes",
                rule.record.as_ref().or(rule.alert.as_ref())
            );
        }
    }

    // And in Prometheus every query of the dashboard answers.
    wait_scraped(&prometheus, proxies.len());
    thread::sleep(Duration::from_secs(3));
    for expr in &queries {
        let expr = expr.replace("$__rate_interval", "10s");
        let result = prometheus.query(&expr).expect("query");
        assert!(!result.is_empty(), "no data for {expr}");
    }
    let recorded = prometheus
        .query("c4mesh_route:requests:rate1m{route=\"orders\",pod=\"istio-ingressgateway\"}")
        .expect("query");
    assert_eq!(recorded.len(), 1, "the recording rules run: {recorded:?}");
}

/// Whether `alert` fires in Prometheus for `route`, and for which pods.
fn firing_pods(prometheus: &Prometheus, alert: &str, route: &str) -> Vec<String> {
    prometheus
        .firing(alert)
        .expect("alerts")
        .iter()
        .filter(|a| a["labels"]["route"] == route)
        .map(|a| {
            format!(
                "{}/{}",
                a["labels"]["namespace"].as_str().unwrap_or_default(),
                a["labels"]["pod"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn the_circuit_alert_fires_during_an_outage_and_resolves_after_recovery() {
    // A short open period, so the circuit closes soon after the service recovers.
    let mesh = LocalMesh::with_filter(
        r#"{"outlier": {"consecutive_5xx": 5, "base_ejection": "2s", "max_ejection": "4s"}}"#,
    )
    .expect("the local mesh");
    let prometheus = mesh.prometheus(&fast_prometheus()).expect("Prometheus");
    wait_scraped(&prometheus, 1);
    let client = mesh.client();
    let alert = "C4meshCircuitOpen";

    for _ in 0..10 {
        assert_eq!(
            client.get("/api/v1/orders/1", &[]).expect("get").status,
            200
        );
    }
    thread::sleep(Duration::from_secs(3));
    assert!(
        prometheus.firing(alert).expect("alerts").is_empty(),
        "a healthy mesh raises no circuit alert"
    );

    // The outage: orders answers 503 until its circuit opens at the gateway.
    mesh.set_status("orders", 503);
    let mut opened = None;
    for _ in 0..50 {
        let r = client.get("/api/v1/orders/1", &[]).expect("get");
        if r.header("x-c4-reason") == Some("circuit_open") {
            opened = Some(Instant::now());
            break;
        }
    }
    let opened = opened.expect("the circuit opens after 5 consecutive 5xx");
    // Metrics flush within 1 s, a scrape and two evaluations (recording, alert) follow.
    let fire_within = Duration::from_secs(15);
    let fired = loop {
        client.get("/api/v1/orders/1", &[]).expect("get");
        let pods = firing_pods(&prometheus, alert, "orders");
        if !pods.is_empty() {
            assert_eq!(pods, ["istio-system/istio-ingressgateway"]);
            break opened.elapsed();
        }
        assert!(
            opened.elapsed() < fire_within,
            "{alert} not firing {fire_within:?} after the circuit opened: {:?}\n{}",
            prometheus.alerts(),
            prometheus.log()
        );
        thread::sleep(Duration::from_millis(250));
    };
    let firing = prometheus.firing(alert).expect("alerts");
    assert_eq!(firing.len(), 1, "only the failing route: {firing:?}");
    assert_eq!(firing[0]["labels"]["severity"], "critical");
    assert!(firing[0]["annotations"]["summary"]
        .as_str()
        .is_some_and(|s| s.contains("route orders")));
    assert!(firing[0]["activeAt"].is_string(), "since when");
    eprintln!("{alert} fired {fired:?} after the circuit opened");

    // Recovery: the next half-open probe succeeds (within max_ejection), the gauge drops
    // to 0 and the alert resolves.
    mesh.set_status("orders", 200);
    let recovered = Instant::now();
    let resolve_within = Duration::from_secs(20);
    loop {
        client.get("/api/v1/orders/1", &[]).expect("get");
        let alerts = prometheus.alerts().expect("alerts");
        if !alerts.iter().any(|a| a["labels"]["alertname"] == alert) {
            break;
        }
        assert!(
            recovered.elapsed() < resolve_within,
            "{alert} still active {resolve_within:?} after recovery: {alerts:?}"
        );
        thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "{alert} resolved {:?} after the service recovered",
        recovered.elapsed()
    );
    assert_eq!(
        client.get("/api/v1/orders/1", &[]).expect("get").status,
        200
    );
}
