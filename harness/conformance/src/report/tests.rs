use super::*;
use crate::expect::Check;
use crate::scenario::parse;
use std::path::Path;

fn scenario() -> Scenario {
    parse(
        "name: x\nrules: [R1]\nsteps:\n  - request: {path: /api/v1/orders/1}\n",
        Path::new("x.yaml"),
    )
    .expect("valid")
}

fn check(label: &str, pass: Option<bool>) -> Check {
    Check {
        label: label.into(),
        pass,
        detail: String::new(),
    }
}

#[test]
fn outcomes_that_differ_are_disagreements_and_failures() {
    let mut report = ScenarioReport::new(&scenario());
    report.add(
        TargetKind::Wasm,
        vec![check("a", Some(true)), check("b", Some(true))],
    );
    report.add(
        TargetKind::Envoy,
        vec![check("a", Some(true)), check("b", Some(false))],
    );
    assert_eq!(report.disagreements(), 1);
    assert_eq!(report.failed(), 1);
    assert!(!report.passed());
}

#[test]
fn not_observable_is_neither_a_failure_nor_a_disagreement() {
    let mut report = ScenarioReport::new(&scenario());
    report.add(TargetKind::Wasm, vec![check("a", Some(true))]);
    report.add(TargetKind::Url, vec![check("a", None)]);
    assert_eq!(report.disagreements(), 0);
    assert!(report.passed());
}

#[test]
fn a_target_that_could_not_run_fails_the_scenario() {
    let mut report = ScenarioReport::new(&scenario());
    report.add(TargetKind::Wasm, vec![check("a", Some(true))]);
    report.add_error(TargetKind::Envoy, "Envoy not found".into());
    assert_eq!(report.failed(), 1);
    let mut suite = SuiteReport::new(vec![TargetKind::Wasm, TargetKind::Envoy]);
    suite.scenarios.push(report);
    let json = suite.json();
    assert_eq!(json["summary"]["failed"], 1);
    assert_eq!(json["summary"]["scenarios"], 1);
    assert_eq!(json["scenarios"][0]["errors"]["envoy"], "Envoy not found");
    assert!(!suite.passed());
}

#[test]
fn an_expectation_missing_on_one_target_is_a_disagreement() {
    let mut report = ScenarioReport::new(&scenario());
    report.add(
        TargetKind::Wasm,
        vec![check("a", Some(true)), check("b", Some(true))],
    );
    report.add(TargetKind::Envoy, vec![check("a", Some(true))]);
    assert_eq!(report.disagreements(), 1);
}
