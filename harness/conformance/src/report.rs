//! The suite's outcome: per scenario and expectation, the outcome on each target and
//! whether the targets agree; a table for people and one JSON object for machines.

use super::expect::Check;
use super::scenario::{Scenario, TargetKind};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// One expectation across the targets.
#[derive(Debug, Clone)]
pub struct Row {
    pub label: String,
    /// Per target: pass (`None`: not observable there) and what was observed.
    pub outcomes: BTreeMap<TargetKind, (Option<bool>, String)>,
}

impl Row {
    /// Failed on some target.
    pub fn failed(&self) -> bool {
        self.outcomes.values().any(|(pass, _)| *pass == Some(false))
    }

    /// Two targets that both observed it disagree.
    pub fn disagrees(&self) -> bool {
        let seen: Vec<bool> = self
            .outcomes
            .values()
            .filter_map(|(pass, _)| *pass)
            .collect();
        seen.windows(2).any(|w| w[0] != w[1])
    }
}

/// One scenario across the targets.
#[derive(Debug, Clone)]
pub struct ScenarioReport {
    pub name: String,
    pub file: String,
    pub rules: Vec<String>,
    pub rows: Vec<Row>,
    /// Targets that could not run the scenario, and why.
    pub errors: BTreeMap<TargetKind, String>,
    pub targets: Vec<TargetKind>,
}

impl ScenarioReport {
    pub fn new(scenario: &Scenario) -> ScenarioReport {
        ScenarioReport {
            name: scenario.name.clone(),
            file: scenario.file.display().to_string(),
            rules: scenario.rules.clone(),
            rows: Vec::new(),
            errors: BTreeMap::new(),
            targets: Vec::new(),
        }
    }

    pub fn add(&mut self, target: TargetKind, checks: Vec<Check>) {
        self.targets.push(target);
        for check in checks {
            let outcome = (check.pass, check.detail);
            match self.rows.iter_mut().find(|r| r.label == check.label) {
                Some(row) => {
                    row.outcomes.insert(target, outcome);
                }
                None => self.rows.push(Row {
                    label: check.label,
                    outcomes: BTreeMap::from([(target, outcome)]),
                }),
            }
        }
    }

    pub fn add_error(&mut self, target: TargetKind, error: String) {
        self.targets.push(target);
        self.errors.insert(target, error);
    }

    pub fn failed(&self) -> usize {
        self.rows.iter().filter(|r| r.failed()).count() + self.errors.len()
    }

    pub fn disagreements(&self) -> usize {
        self.rows.iter().filter(|r| r.disagrees()).count()
            + self
                .rows
                .iter()
                .filter(|r| {
                    // An expectation a target never produced, while another did.
                    self.targets
                        .iter()
                        .any(|t| !self.errors.contains_key(t) && !r.outcomes.contains_key(t))
                })
                .count()
    }

    pub fn passed(&self) -> bool {
        self.failed() == 0 && self.disagreements() == 0
    }
}

/// The whole suite.
#[derive(Debug, Clone)]
pub struct SuiteReport {
    pub targets: Vec<TargetKind>,
    pub scenarios: Vec<ScenarioReport>,
    /// Per target, the time its scenarios took, added up.
    pub wall: BTreeMap<TargetKind, Duration>,
    /// The run's own wall time: less than the sum of `wall` when scenarios overlap.
    pub elapsed: Duration,
    /// How many scenarios ran at a time.
    pub jobs: usize,
}

impl SuiteReport {
    pub fn new(targets: Vec<TargetKind>) -> SuiteReport {
        SuiteReport {
            targets,
            scenarios: Vec::new(),
            wall: BTreeMap::new(),
            elapsed: Duration::ZERO,
            jobs: 1,
        }
    }

    pub fn add_time(&mut self, target: TargetKind, elapsed: Duration) {
        *self.wall.entry(target).or_default() += elapsed;
    }

    pub fn expectations(&self) -> usize {
        self.scenarios.iter().map(|s| s.rows.len()).sum()
    }

    pub fn failed(&self) -> usize {
        self.scenarios.iter().map(ScenarioReport::failed).sum()
    }

    pub fn disagreements(&self) -> usize {
        self.scenarios
            .iter()
            .map(ScenarioReport::disagreements)
            .sum()
    }

    pub fn passed(&self) -> bool {
        !self.scenarios.is_empty() && self.failed() == 0 && self.disagreements() == 0
    }

    /// `scenarios 45, expectations 612, failed 0, disagreements 0 (wasm 2.1 s, envoy 95.0 s;
    /// 48.6 s with 2 jobs)`
    pub fn summary_line(&self) -> String {
        let times: Vec<String> = self
            .wall
            .iter()
            .map(|(t, d)| format!("{t} {:.1} s", d.as_secs_f64()))
            .collect();
        format!(
            "scenarios {}, expectations {}, failed {}, disagreements {} ({}; {:.1} s with {} {})",
            self.scenarios.len(),
            self.expectations(),
            self.failed(),
            self.disagreements(),
            times.join(", "),
            self.elapsed.as_secs_f64(),
            self.jobs,
            if self.jobs == 1 { "job" } else { "jobs" },
        )
    }

    pub fn json(&self) -> Value {
        let wall: Map<String, Value> = self
            .wall
            .iter()
            .map(|(t, d)| (t.to_string(), seconds(*d)))
            .collect();
        let scenarios: Vec<Value> = self
            .scenarios
            .iter()
            .map(|s| {
                let expectations: Vec<Value> = s
                    .rows
                    .iter()
                    .map(|r| {
                        let outcomes: Map<String, Value> = r
                            .outcomes
                            .iter()
                            .map(|(t, (pass, detail))| {
                                let outcome = match pass {
                                    Some(true) => "pass",
                                    Some(false) => "fail",
                                    None => "not-observable",
                                };
                                (
                                    t.to_string(),
                                    json!({"outcome": outcome, "observed": detail}),
                                )
                            })
                            .collect();
                        json!({
                            "expectation": r.label,
                            "failed": r.failed(),
                            "agree": !r.disagrees(),
                            "targets": outcomes,
                        })
                    })
                    .collect();
                let errors: Map<String, Value> = s
                    .errors
                    .iter()
                    .map(|(t, e)| (t.to_string(), json!(e)))
                    .collect();
                json!({
                    "name": s.name,
                    "file": s.file,
                    "rules": s.rules,
                    "passed": s.passed(),
                    "errors": errors,
                    "expectations": expectations,
                })
            })
            .collect();
        json!({
            "summary": {
                "scenarios": self.scenarios.len(),
                "expectations": self.expectations(),
                "failed": self.failed(),
                "disagreements": self.disagreements(),
                "passed": self.passed(),
                "targets": self.targets.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "wall_seconds": wall,
                "elapsed_seconds": seconds(self.elapsed),
                "jobs": self.jobs,
            },
            "scenarios": scenarios,
        })
    }
}

/// Seconds to the millisecond.
fn seconds(duration: Duration) -> Value {
    json!((duration.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// One scenario as lines of the table: a status line, then every expectation that
/// failed or disagreed, with what each target observed.
pub fn table_lines(report: &ScenarioReport) -> String {
    let mut out = String::new();
    let marks: Vec<String> = report
        .targets
        .iter()
        .map(|t| {
            let bad = report.errors.contains_key(t)
                || report
                    .rows
                    .iter()
                    .any(|r| r.outcomes.get(t).is_some_and(|(p, _)| *p == Some(false)));
            format!("{t} {}", if bad { "FAIL" } else { "ok" })
        })
        .collect();
    let _ = writeln!(
        out,
        "{:4}  {}  {:>3} expectations  {} [{}]",
        if report.passed() { "PASS" } else { "FAIL" },
        marks.join("  "),
        report.rows.len(),
        report.name,
        report.rules.join(", "),
    );
    for (target, error) in &report.errors {
        let _ = writeln!(out, "        {target}: error: {error}");
    }
    for row in report.rows.iter().filter(|r| r.failed() || r.disagrees()) {
        let what = if row.disagrees() {
            "disagree"
        } else {
            "failed"
        };
        let _ = writeln!(out, "        {what}: {}", row.label);
        for (target, (pass, detail)) in &row.outcomes {
            let outcome = match pass {
                Some(true) => "pass",
                Some(false) => "fail",
                None => "n/a",
            };
            let _ = writeln!(out, "          {target:<6} {outcome:<5} observed {detail}");
        }
    }
    out
}

#[cfg(test)]
mod tests;
