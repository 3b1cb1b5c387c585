//! Checking a scenario's expectations against what a target observed.
//!
//! Each expectation becomes one [`Check`] with a label that is the same on every
//! target, so the report can line the targets up and see where they disagree. A check
//! the target cannot observe (attempts on a live gateway) is `None`, not a pass.

use super::observe::{Exchange, NoReply, Observed, ProxyObserved, Reply};
use super::scenario::{Aggregate, Expect, ProxyExpect, Scenario, Step};
use super::upstreams::AttemptRecord;
use std::collections::BTreeMap;

/// One expectation's outcome on one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub label: String,
    /// `None`: the target cannot observe it.
    pub pass: Option<bool>,
    /// What was observed, in a few words.
    pub detail: String,
}

struct Checks<'a> {
    observed: &'a Observed,
    out: Vec<Check>,
}

impl Checks<'_> {
    fn push(&mut self, label: String, pass: bool, detail: String) {
        self.out.push(Check {
            label,
            pass: Some(pass),
            detail,
        });
    }

    /// A check on upstream attempts: not observable on every target.
    fn push_upstream(&mut self, label: String, check: impl FnOnce(&Observed) -> (bool, String)) {
        if self.observed.sees_upstreams {
            let (pass, detail) = check(self.observed);
            self.push(label, pass, detail);
        } else {
            self.out.push(Check {
                label,
                pass: None,
                detail: "not observable on this target".into(),
            });
        }
    }
}

/// Every check of `scenario` against `observed`.
pub fn evaluate(scenario: &Scenario, observed: &Observed) -> Vec<Check> {
    let mut checks = Checks {
        observed,
        out: Vec::new(),
    };
    if let Some(rejection) = &scenario.rejected {
        checks.push(
            "configuration is rejected".into(),
            !observed.configured,
            if observed.configured {
                "accepted"
            } else {
                "rejected"
            }
            .into(),
        );
        logs_contain(&mut checks, &rejection.log);
        return checks.out;
    }
    checks.push(
        "configuration is accepted".into(),
        observed.configured,
        if observed.configured {
            "accepted"
        } else {
            "rejected"
        }
        .into(),
    );
    for (index, step) in scenario.steps.iter().enumerate() {
        let name = step_name(step, index);
        let exchanges: Vec<&Exchange> = observed
            .exchanges
            .iter()
            .filter(|e| e.step == index)
            .collect();
        let expected = super::traffic::Plan::of(step).count;
        if step.expect.as_ref().is_some_and(|e| e.aborted) {
            checks.push(
                format!("{name}: every request aborted by its client"),
                exchanges.len() == expected
                    && exchanges
                        .iter()
                        .all(|e| e.response.as_ref().err() == Some(&NoReply::Aborted)),
                tally(exchanges.iter().map(|e| match &e.response {
                    Ok(reply) => format!("answered {}", reply.status),
                    Err(no_reply) => no_reply.to_string(),
                })),
            );
        } else {
            checks.push(
                format!("{name}: every request answered"),
                exchanges.len() == expected && exchanges.iter().all(|e| e.response.is_ok()),
                answered_detail(&exchanges, expected),
            );
        }
        if let Some(expect) = &step.expect {
            per_response(&mut checks, &name, expect, &exchanges);
        }
        if let Some(aggregate) = &step.aggregate {
            together(&mut checks, &name, aggregate, &exchanges);
        }
    }
    if let Some(finally) = &scenario.finally {
        for (metric, bound) in &finally.metrics {
            let value = observed.metrics.get(metric).copied();
            checks.push_upstream(format!("metric {metric} {bound}"), |_| {
                (
                    value.is_some_and(|v| bound.holds(v)),
                    value.map_or_else(|| "absent".into(), |v| format!("{v}")),
                )
            });
        }
        for (key, bound) in &finally.attempts {
            checks.push_upstream(format!("attempts at {key} {bound}"), |o| {
                let n = o.attempts.iter().filter(|a| host_matches(a, key)).count() as f64;
                (bound.holds(n), format!("{n}"))
            });
        }
        for needle in &finally.logs {
            logs_contain(&mut checks, needle);
        }
        for (key, expect) in &finally.proxies {
            proxy_checks(&mut checks, key, expect);
        }
        for needle in &finally.logs_absent {
            checks.push_upstream(format!("no log line contains {needle:?}"), |o| {
                let found = o.logs.iter().find(|l| l.contains(needle.as_str()));
                (
                    found.is_none(),
                    found.map_or_else(|| "none".into(), Clone::clone),
                )
            });
        }
    }
    checks.out
}

pub fn step_name(step: &Step, index: usize) -> String {
    step.name.clone().unwrap_or_else(|| {
        format!(
            "step {} ({} {})",
            index + 1,
            step.request.method,
            step.request.path
        )
    })
}

/// The proxies a `finally.proxies` key names: `gateway`, a pod `service/index`, or
/// every pod of `service`.
fn proxies_of<'a>(observed: &'a Observed, key: &str) -> Vec<&'a ProxyObserved> {
    observed
        .proxies
        .iter()
        .filter(|(name, _)| {
            name.as_str() == key
                || (key != "gateway"
                    && !key.contains('/')
                    && name.split_once('/').is_some_and(|(s, _)| s == key))
        })
        .map(|(_, p)| p)
        .collect()
}

/// One proxy's (or one service's pods') metrics, summed, and log lines.
fn proxy_checks(checks: &mut Checks<'_>, key: &str, expect: &ProxyExpect) {
    for (metric, bound) in &expect.metrics {
        checks.push_upstream(format!("{key}: metric {metric} {bound}"), |o| {
            let values: Vec<f64> = proxies_of(o, key)
                .iter()
                .filter_map(|p| p.metrics.get(metric).copied())
                .collect();
            let sum: f64 = values.iter().sum();
            (
                !values.is_empty() && bound.holds(sum),
                if values.is_empty() {
                    "absent".into()
                } else {
                    format!("{sum}")
                },
            )
        });
    }
    for needle in &expect.logs {
        checks.push_upstream(format!("{key}: some log line contains {needle:?}"), |o| {
            let found = proxies_of(o, key)
                .iter()
                .any(|p| p.logs.iter().any(|l| l.contains(needle.as_str())));
            (found, if found { "found" } else { "none" }.into())
        });
    }
    for needle in &expect.logs_absent {
        checks.push_upstream(format!("{key}: no log line contains {needle:?}"), |o| {
            let found = proxies_of(o, key)
                .iter()
                .flat_map(|p| p.logs.iter())
                .find(|l| l.contains(needle.as_str()));
            (
                found.is_none(),
                found.map_or_else(|| "none".into(), Clone::clone),
            )
        });
    }
}

fn logs_contain(checks: &mut Checks<'_>, needle: &str) {
    checks.push_upstream(format!("a log line contains {needle:?}"), |o| {
        let found = o.logs.iter().any(|l| l.contains(needle));
        (found, format!("{} log lines", o.logs.len()))
    });
}

fn answered_detail(exchanges: &[&Exchange], expected: usize) -> String {
    let failed: Vec<&NoReply> = exchanges
        .iter()
        .filter_map(|e| e.response.as_ref().err())
        .collect();
    match failed.first() {
        Some(first) => format!("{} of {expected} failed, first: {first}", failed.len()),
        None => format!("{} of {expected}", exchanges.len()),
    }
}

/// A summary of values over responses: `200 x9, 503 x1`.
fn tally<T: Ord + std::fmt::Display>(values: impl IntoIterator<Item = T>) -> String {
    let mut counts: BTreeMap<T, usize> = BTreeMap::new();
    for value in values {
        *counts.entry(value).or_default() += 1;
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(v, n)| {
            if *n == 1 {
                format!("{v}")
            } else {
                format!("{v} x{n}")
            }
        })
        .collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(", ")
    }
}

fn replies<'a>(exchanges: &[&'a Exchange]) -> Vec<&'a Reply> {
    exchanges
        .iter()
        .filter_map(|e| e.response.as_ref().ok())
        .collect()
}

fn per_response(checks: &mut Checks<'_>, name: &str, expect: &Expect, exchanges: &[&Exchange]) {
    let replies = replies(exchanges);
    let all = |f: &dyn Fn(&Reply) -> bool| !replies.is_empty() && replies.iter().all(|r| f(r));
    if let Some(status) = &expect.status {
        checks.push(
            format!("{name}: status {status}"),
            all(&|r| status.accepts(&r.status)),
            tally(replies.iter().map(|r| r.status)),
        );
    }
    for (header, value) in &expect.headers {
        checks.push(
            format!("{name}: header {header} = {value:?}"),
            all(&|r| r.header(header) == Some(value.as_str())),
            tally(
                replies
                    .iter()
                    .map(|r| format!("{:?}", r.header(header).unwrap_or("(absent)"))),
            ),
        );
    }
    for header in &expect.headers_present {
        checks.push(
            format!("{name}: header {header} present"),
            all(&|r| r.header(header).is_some()),
            tally(replies.iter().map(|r| r.header(header).is_some())),
        );
    }
    for header in &expect.headers_absent {
        checks.push(
            format!("{name}: header {header} absent"),
            all(&|r| r.header(header).is_none()),
            tally(
                replies
                    .iter()
                    .map(|r| format!("{:?}", r.header(header).unwrap_or("(absent)"))),
            ),
        );
    }
    if let Some(fields) = &expect.body {
        for (field, value) in fields {
            let actual = |r: &Reply| {
                serde_json::from_slice::<serde_json::Value>(&r.body)
                    .ok()
                    .and_then(|b| b.get(field).cloned())
            };
            checks.push(
                format!("{name}: body.{field} = {value}"),
                all(&|r| actual(r).as_ref() == Some(value)),
                tally(
                    replies
                        .iter()
                        .map(|r| actual(r).map_or_else(|| "(absent)".into(), |v| v.to_string())),
                ),
            );
        }
    }
    if let Some(service) = &expect.service {
        checks.push_upstream(format!("{name}: answered by {service}"), |o| {
            let services: Vec<String> = exchanges.iter().map(|e| service_of(o, e.id)).collect();
            (
                !services.is_empty() && services.iter().all(|s| s == service),
                tally(services),
            )
        });
    }
    if let Some(bound) = &expect.attempts {
        checks.push_upstream(
            format!("{name}: upstream attempts per request {bound}"),
            |o| {
                let counts: Vec<usize> = exchanges
                    .iter()
                    .map(|e| o.attempts_of(e.id).count())
                    .collect();
                (
                    !counts.is_empty() && counts.iter().all(|n| bound.holds(*n as f64)),
                    tally(counts),
                )
            },
        );
    }
    for (header, value) in &expect.upstream_headers {
        checks.push_upstream(format!("{name}: upstream got {header} = {value:?}"), |o| {
            let seen: Vec<String> = exchanges
                .iter()
                .map(|e| {
                    o.attempts_of(e.id).next().map_or_else(
                        || "(no attempt)".into(),
                        |a| format!("{:?}", a.header(header).unwrap_or("(absent)")),
                    )
                })
                .collect();
            let pass = !seen.is_empty() && seen.iter().all(|s| *s == format!("{value:?}"));
            (pass, tally(seen))
        });
    }
    for header in &expect.upstream_headers_absent {
        checks.push_upstream(format!("{name}: upstream got no {header}"), |o| {
            let seen: Vec<String> = exchanges
                .iter()
                .flat_map(|e| o.attempts_of(e.id))
                .map(|a| format!("{:?}", a.header(header).unwrap_or("(absent)")))
                .collect();
            let pass = !seen.is_empty() && seen.iter().all(|s| s == "\"(absent)\"");
            (pass, tally(seen))
        });
    }
}

/// The service whose hosts got a request's attempts from the entry proxy (not the
/// calls services make further down a topology), or `none`.
fn service_of(observed: &Observed, request: u64) -> String {
    observed
        .attempts_of(request)
        .filter(|a| a.header(c4mesh_mesh::topology::CALLER).is_none())
        .last()
        .map_or_else(|| "none".into(), |a| a.service.clone())
}

fn host_matches(attempt: &AttemptRecord, key: &str) -> bool {
    match key.split_once('/') {
        Some((service, host)) => attempt.service == service && host.parse() == Ok(attempt.host),
        None => attempt.service == key,
    }
}

fn together(checks: &mut Checks<'_>, name: &str, aggregate: &Aggregate, exchanges: &[&Exchange]) {
    let replies = replies(exchanges);
    for (status, bound) in &aggregate.statuses {
        let n = replies.iter().filter(|r| r.status == *status).count() as f64;
        checks.push(
            format!("{name}: responses with status {status} {bound}"),
            bound.holds(n),
            format!("{n}"),
        );
    }
    for (reason, bound) in &aggregate.reasons {
        let n = replies
            .iter()
            .filter(|r| r.header("x-c4-reason") == Some(reason.as_str()))
            .count() as f64;
        checks.push(
            format!("{name}: responses with reason {reason} {bound}"),
            bound.holds(n),
            format!("{n}"),
        );
    }
    let step_attempts = |o: &Observed| -> Vec<AttemptRecord> {
        exchanges
            .iter()
            .flat_map(|e| o.attempts_of(e.id).cloned())
            .collect()
    };
    if let Some(bound) = &aggregate.attempts {
        checks.push_upstream(format!("{name}: upstream attempts {bound}"), |o| {
            let n = step_attempts(o).len() as f64;
            (bound.holds(n), format!("{n}"))
        });
    }
    if let Some(bound) = &aggregate.attempts_per_request {
        checks.push_upstream(
            format!("{name}: upstream attempts per request {bound}"),
            |o| {
                let n = step_attempts(o).len() as f64 / exchanges.len().max(1) as f64;
                (bound.holds(n), format!("{n:.3}"))
            },
        );
    }
    for (key, bound) in &aggregate.hosts {
        checks.push_upstream(format!("{name}: upstream attempts at {key} {bound}"), |o| {
            let n = step_attempts(o)
                .iter()
                .filter(|a| host_matches(a, key))
                .count() as f64;
            (bound.holds(n), format!("{n}"))
        });
    }
    for (key, bound) in &aggregate.attempts_per_request_at {
        checks.push_upstream(
            format!("{name}: attempts at {key} per request {bound}"),
            |o| {
                let n = step_attempts(o)
                    .iter()
                    .filter(|a| host_matches(a, key))
                    .count() as f64
                    / exchanges.len().max(1) as f64;
                (bound.holds(n), format!("{n:.3}"))
            },
        );
    }
}
