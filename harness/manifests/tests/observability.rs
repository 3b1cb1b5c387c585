//! The generated observability: rules that `promtool` accepts, unit tests that fire each
//! alert where it should and nowhere else (and fail when a rule is broken), the
//! `PrometheusRule` carrying the same rules, the stats inclusion on every proxy the
//! manifests describe, and a dashboard that only queries the filter's series.
//!
//! `promtool` comes from the Debian package `prometheus` (`scripts/setup.sh`); without it
//! these tests fail and say so.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use c4mesh_manifests::observability::{self, alert_names, filter_series, RULES_FILE};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn observability_dir() -> PathBuf {
    repo().join("manifests").join(observability::DIR)
}

/// `promtool`; a missing one fails the test with the fix.
fn promtool() -> PathBuf {
    c4mesh_mesh::prometheus::promtool_binary().unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `promtool` with `args` in `dir`: success and what it printed.
fn run_promtool(dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(promtool())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running promtool");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

fn scratch_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("c4mesh-{name}-"))
        .tempdir()
        .expect("a temporary directory")
}

#[test]
fn promtool_accepts_the_generated_rules() {
    let (ok, out) = run_promtool(&observability_dir(), &["check", "rules", RULES_FILE]);
    assert!(ok, "promtool check rules {RULES_FILE}:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn each_alert_fires_in_its_unit_test_and_only_there() {
    let (ok, out) = run_promtool(
        &observability_dir(),
        &["test", "rules", "c4mesh-rules.test.yml"],
    );
    assert!(ok, "promtool test rules:\n{out}");

    // Every alert is expected to fire somewhere, and to stay quiet somewhere.
    let tests: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(observability_dir().join("c4mesh-rules.test.yml")).unwrap(),
    )
    .unwrap();
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for case in tests["tests"].as_array().unwrap() {
        for check in case["alert_rule_test"].as_array().unwrap() {
            let name = check["alertname"].as_str().unwrap().to_owned();
            if check["exp_alerts"].as_array().unwrap().is_empty() {
                quiet.insert(name);
            } else {
                fires.insert(name);
            }
        }
    }
    let all: BTreeSet<String> = alert_names().iter().map(|n| n.to_string()).collect();
    assert_eq!(fires, all, "an alert without a case that fires it");
    assert_eq!(quiet, all, "an alert without a case where it must not fire");
}

#[test]
fn the_unit_tests_catch_a_broken_rule() {
    let rules = observability::rules_file().unwrap();
    let tests = observability::rules_unit_tests().unwrap();
    for (alert, broken) in [
        // The circuit alert on a value the gauge never takes: it never fires.
        (
            "C4meshCircuitOpen",
            (
                "c4mesh_route:circuit_open > 0",
                "c4mesh_route:circuit_open > 1",
            ),
        ),
        // The budget alert on every exhaustion: it fires for the route at 0.5% too.
        ("C4meshBudgetExhausted", ("> 0.01", "> 0.001")),
    ] {
        assert!(rules.contains(broken.0), "{alert}: {}", broken.0);
        let dir = scratch_dir(&format!("broken-rules-{alert}"));
        std::fs::write(
            dir.path().join(RULES_FILE),
            rules.replace(broken.0, broken.1),
        )
        .unwrap();
        std::fs::write(dir.path().join("tests.yml"), &tests).unwrap();
        let (ok, out) = run_promtool(dir.path(), &["test", "rules", "tests.yml"]);
        drop(dir);
        assert!(!ok, "{alert} broken, yet the unit tests pass:\n{out}");
        assert!(out.contains(alert), "{out}");
    }
}

#[test]
fn the_prometheus_rule_carries_the_same_rules() {
    let text = std::fs::read_to_string(observability_dir().join("prometheus-rule.yaml")).unwrap();
    let rule: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(rule["kind"], "PrometheusRule");
    let plain: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(observability_dir().join(RULES_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(rule["spec"]["groups"], plain["groups"]);

    let addon: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(observability_dir().join("istio-addon-prometheus.patch.yaml"))
            .unwrap(),
    )
    .unwrap();
    let addon_rules: Value =
        serde_saphyr::from_str(addon["data"]["alerting_rules.yml"].as_str().unwrap()).unwrap();
    assert_eq!(
        addon_rules, plain,
        "the add-on patch carries the rules file"
    );
}

#[test]
fn the_rules_cover_every_route_and_metric() {
    let metrics = observability::metrics().unwrap();
    let groups = observability::groups().unwrap();
    let recorded: Vec<&observability::Rule> = groups
        .iter()
        .flat_map(|g| &g.rules)
        .filter(|r| r.record.is_some())
        .collect();
    let config = c4mesh_filter_core::Config::defaults();
    for metric in &metrics {
        let name = observability::recorded(metric);
        let routes: BTreeSet<&str> = recorded
            .iter()
            .filter(|r| r.record.as_deref() == Some(&name))
            .filter_map(|r| r.labels.get("route").map(String::as_str))
            .collect();
        match metric.scope {
            observability::Scope::Route => assert_eq!(
                routes,
                config.routes.iter().map(|r| r.name.as_str()).collect(),
                "{name}"
            ),
            observability::Scope::Proxy => assert!(
                recorded.iter().any(|r| r.record.as_deref() == Some(&name)),
                "{name}"
            ),
        }
    }
}

#[test]
fn the_dashboard_is_json_whose_every_panel_queries_the_filter_series() {
    let text = std::fs::read_to_string(observability_dir().join("grafana-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(dashboard["uid"], "c4mesh");
    let panels = dashboard["panels"].as_array().unwrap();
    let config = c4mesh_filter_core::Config::defaults();
    for route in &config.routes {
        assert!(
            panels
                .iter()
                .any(|p| p["type"] == "row" && p["title"].as_str().unwrap().contains(&route.name)),
            "a row for route {}",
            route.name
        );
    }
    let known: BTreeSet<String> = observability::metrics()
        .unwrap()
        .iter()
        .flat_map(|m| {
            config
                .routes
                .iter()
                .map(move |r| m.series(&r.name))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "unique panel ids"
        );
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let series = filter_series(expr);
            assert!(!series.is_empty(), "{expr}");
            for name in series {
                assert!(
                    known.contains(&name),
                    "{}: {name} is no filter series",
                    panel["title"]
                );
            }
        }
    }
    for title in [
        "Requests",
        "Local replies by reason",
        "Retries granted and used",
        "Budget exhaustion",
        "Circuit state",
        "Host ejections and circuit openings",
    ] {
        let count = panels.iter().filter(|p| p["title"] == title).count();
        assert_eq!(count, config.routes.len(), "{title}: one per route");
    }
}
