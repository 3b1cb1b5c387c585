//! Pass criteria for a replay (`--slo`) and the guard that stops one when the gateway
//! fails (`--abort-on`).
//!
//! ## Why gates
//!
//! A rehearsal before a release is only useful to a pipeline if its outcome is a yes
//! or a no. As k6's thresholds do, a run states what must hold (`p99<50ms`,
//! `errors<0.1%`, `route=payments:p99<200ms`); each statement is judged against the
//! final report, every verdict is printed and kept in the JSON report, and the exit
//! status says whether they all held. Expressions are checked when the command line is
//! read, so a typo fails in a second, not after a thirty-minute run.
//!
//! ## What counts as an error
//!
//! `errors` is the share of finished requests that got no response (refused, reset,
//! timed out, TLS refused: every transport error) or a 5xx response. k6's
//! `http_req_failed` also counts 4xx, but a 404 or a 429 is the gateway answering as
//! designed; a 5xx is the mesh failing. Requests a stopped run gave up waiting for
//! (`unfinished`) are not counted either way.
//!
//! Numbers are kept as integers — latency in microseconds, rates in millionths — so a
//! limit means exactly what was written (`0.1%` is 1,000 millionths, not a float
//! near it) and comparisons are exact.
//!
//! ## Window mechanics
//!
//! The abort guard ([`Guard`]) is pure: the driver hands it the time since the start and
//! the run's cumulative counts of finished and failed requests about ten times a
//! second. It keeps those samples for one window, and the rate over the window is the
//! difference between the newest sample and the newest one at least a window old (the
//! start, in a run younger than its window). Judging from samples costs nothing per
//! request beyond the counters the progress line already keeps, and the guard reacts
//! within one sample. A window needs [`MIN_REQUESTS`] finished requests before it can
//! trip, so three failures of the first five requests do not stop a run.

use super::report::Report;
use super::routes::{Routes, OTHER};
use std::cmp::Ordering;
use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Finished requests a window must hold before the abort guard judges it.
pub const MIN_REQUESTS: u64 = 20;

/// Shortest and longest abort window.
const WINDOW_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));

/// Millionths in one: rates are kept as millionths of the requests.
const MILLION: u64 = 1_000_000;

/// Why an expression is not a gate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SloError {
    #[error("no comparison: write METRIC<LIMIT, such as p99<50ms or errors<0.1%")]
    NoOperator,
    #[error("unknown metric {0:?}: expected p50, p90, p99, p99.9, max or errors")]
    UnknownMetric(String),
    #[error("unknown route {route:?}: expected one of {known}")]
    UnknownRoute { route: String, known: String },
    #[error("no route name: write route=NAME:METRIC<LIMIT")]
    NoRoute,
    #[error("missing unit after {number:?}: {expected}")]
    MissingUnit {
        number: String,
        expected: &'static str,
    },
    #[error("unknown unit {unit:?}: {expected}")]
    UnknownUnit {
        unit: String,
        expected: &'static str,
    },
    #[error("{0:?} is not a limit: a plain decimal number, at most microseconds or 0.0001%")]
    BadNumber(String),
    #[error("an error rate above 100% can never be reached")]
    AboveHundred,
    #[error("the guard watches the error rate: write errors>RATE%/WINDOW, such as errors>5%/10s")]
    NotErrors,
    #[error("the guard stops when errors rise above a limit: use > or >=")]
    NotAbove,
    #[error("the guard watches every request, not one route")]
    RouteInGuard,
    #[error("missing window: write errors>RATE%/WINDOW, such as errors>5%/10s")]
    NoWindow,
    #[error("window {text:?}: {message}")]
    BadWindow { text: String, message: String },
}

/// What a gate measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    P50,
    P90,
    P99,
    P999,
    /// The longest latency.
    Max,
    /// The share of requests that failed: transport errors and 5xx responses.
    Errors,
}

impl Metric {
    fn parse(text: &str) -> Result<Metric, SloError> {
        Ok(match text {
            "p50" => Metric::P50,
            "p90" => Metric::P90,
            "p99" => Metric::P99,
            "p99.9" => Metric::P999,
            "max" => Metric::Max,
            "errors" => Metric::Errors,
            _ => return Err(SloError::UnknownMetric(text.to_owned())),
        })
    }

    /// The latency quantile, for the percentiles.
    fn quantile(self) -> Option<f64> {
        match self {
            Metric::P50 => Some(0.5),
            Metric::P90 => Some(0.9),
            Metric::P99 => Some(0.99),
            Metric::P999 => Some(0.999),
            Metric::Max | Metric::Errors => None,
        }
    }
}

/// How the observed value must compare with the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Below,
    AtMost,
    Above,
    AtLeast,
}

impl Op {
    fn holds(self, observed_vs_limit: Ordering) -> bool {
        match self {
            Op::Below => observed_vs_limit.is_lt(),
            Op::AtMost => observed_vs_limit.is_le(),
            Op::Above => observed_vs_limit.is_gt(),
            Op::AtLeast => observed_vs_limit.is_ge(),
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Op::Below => "<",
            Op::AtMost => "<=",
            Op::Above => ">",
            Op::AtLeast => ">=",
        }
    }
}

/// One pass criterion: `[route=NAME:]METRIC OP LIMIT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slo {
    /// The expression as written (trimmed), as verdicts name it.
    text: String,
    /// A route's requests only; all requests without.
    route: Option<String>,
    metric: Metric,
    op: Op,
    /// Microseconds for a latency, millionths of the requests for `errors`.
    limit: u64,
}

/// A gate judged against a report.
#[derive(Debug, Clone, PartialEq)]
pub struct SloVerdict {
    /// The expression as written.
    pub expr: String,
    /// Milliseconds for a latency, percent for `errors`; `None` when the run has
    /// nothing to judge it by (no responses, or no requests on the route): a gate that
    /// measured nothing fails.
    pub observed: Option<f64>,
    /// `ms` or `%`.
    pub unit: &'static str,
    pub pass: bool,
}

// === impl Slo ===

impl FromStr for Slo {
    type Err = SloError;

    fn from_str(text: &str) -> Result<Slo, SloError> {
        let text = text.trim();
        let (route, rest) = match text.strip_prefix("route=") {
            Some(rest) => {
                let (name, rest) = rest.split_once(':').ok_or(SloError::NoRoute)?;
                (Some(known_route(name.trim())?), rest)
            }
            None => (None, text),
        };
        let at = rest.find(['<', '>']).ok_or(SloError::NoOperator)?;
        let (metric, comparison) = rest.split_at(at);
        let metric = Metric::parse(metric.trim())?;
        let (op, value) = if let Some(value) = comparison.strip_prefix("<=") {
            (Op::AtMost, value)
        } else if let Some(value) = comparison.strip_prefix(">=") {
            (Op::AtLeast, value)
        } else if let Some(value) = comparison.strip_prefix('<') {
            (Op::Below, value)
        } else {
            (Op::Above, comparison.get(1..).unwrap_or_default())
        };
        let limit = limit(metric, value.trim())?;
        Ok(Slo {
            text: text.to_owned(),
            route,
            metric,
            op,
            limit,
        })
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Slo {
    /// This gate's verdict on a finished (or stopped) run.
    pub fn evaluate(&self, report: &Report) -> SloVerdict {
        let stats = match &self.route {
            Some(name) => report.route(name),
            None => Some(&report.overall),
        };
        let (observed, pass) = match (self.metric, stats) {
            (_, None) => (None, false),
            (Metric::Errors, Some(stats)) => {
                let requests = stats.requests();
                let failed = stats.failed();
                if requests == 0 {
                    (None, false)
                } else {
                    let order = compare_rate(failed, requests, self.limit);
                    let percent = failed as f64 * 100.0 / requests as f64;
                    (Some(percent), self.op.holds(order))
                }
            }
            (metric, Some(stats)) => {
                let micros = match metric.quantile() {
                    Some(q) => stats.latency_micros(q),
                    None => stats.max_micros(),
                };
                match micros {
                    Some(micros) => (
                        Some(micros as f64 / 1000.0),
                        self.op.holds(micros.cmp(&self.limit)),
                    ),
                    None => (None, false),
                }
            }
        };
        SloVerdict {
            expr: self.text.clone(),
            observed,
            unit: if self.metric == Metric::Errors {
                "%"
            } else {
                "ms"
            },
            pass,
        }
    }
}

/// `failed / requests` against a limit in millionths, exactly.
fn compare_rate(failed: u64, requests: u64, limit: u64) -> Ordering {
    let observed = u128::from(failed) * u128::from(MILLION);
    observed.cmp(&(u128::from(limit) * u128::from(requests)))
}

/// `name` if requests can be counted under it (the filter's routes and `other`).
fn known_route(name: &str) -> Result<String, SloError> {
    let routes = Routes::defaults();
    let known: Vec<&str> = (0..=routes.len()).map(|i| routes.name(i)).collect();
    if name == OTHER || known.contains(&name) {
        Ok(name.to_owned())
    } else {
        Err(SloError::UnknownRoute {
            route: name.to_owned(),
            known: known.join(", "),
        })
    }
}

/// A metric's limit: microseconds for a latency (`50ms`, `1.5s`, `800us`), millionths
/// for an error rate (`0.1%`).
fn limit(metric: Metric, value: &str) -> Result<u64, SloError> {
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let unit = unit.trim();
    // The unit's decimal places below the integer the limit is kept in.
    let (expected, digits) = if metric == Metric::Errors {
        let digits = (unit == "%").then_some(4);
        ("an error rate is a percentage (0.1%)", digits)
    } else {
        let digits = match unit {
            "ms" => Some(3),
            "s" => Some(6),
            "us" | "µs" => Some(0),
            _ => None,
        };
        ("a latency takes ms, s or us (50ms)", digits)
    };
    let Some(digits) = digits else {
        return Err(if unit.is_empty() {
            SloError::MissingUnit {
                number: number.to_owned(),
                expected,
            }
        } else {
            SloError::UnknownUnit {
                unit: unit.to_owned(),
                expected,
            }
        });
    };
    let limit = scaled(number, digits)?;
    if metric == Metric::Errors && limit > MILLION {
        return Err(SloError::AboveHundred);
    }
    Ok(limit)
}

/// A plain decimal times `10^digits`, refused if it has more decimals than that or
/// does not fit.
fn scaled(number: &str, digits: u32) -> Result<u64, SloError> {
    let bad = || SloError::BadNumber(number.to_owned());
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !all_digits(whole)
        || !all_digits(fraction)
        || (number.contains('.') && fraction.is_empty())
        || fraction.len() > digits as usize
    {
        return Err(bad());
    }
    let scale = 10u64.pow(digits);
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let mut value = whole.checked_mul(scale).ok_or_else(bad)?;
    let mut place = scale;
    for digit in fraction.bytes() {
        place /= 10;
        value = value
            .checked_add(u64::from(digit - b'0') * place)
            .ok_or_else(bad)?;
    }
    Ok(value)
}

// === impl AbortRule ===

/// When to stop sending: `errors>RATE%/WINDOW`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbortRule {
    /// The expression as written (trimmed).
    text: String,
    op: Op,
    /// Millionths of the requests in the window.
    limit: u64,
    window: Duration,
}

impl FromStr for AbortRule {
    type Err = SloError;

    fn from_str(text: &str) -> Result<AbortRule, SloError> {
        let text = text.trim();
        let (rule, window) = text.rsplit_once('/').ok_or(SloError::NoWindow)?;
        let window_text = window.trim();
        let window = c4mesh_filter_core::duration::parse_millis(window_text)
            .map(Duration::from_millis)
            .map_err(|message| SloError::BadWindow {
                text: window_text.to_owned(),
                message,
            })?;
        let (shortest, longest) = WINDOW_RANGE;
        if !(shortest..=longest).contains(&window) {
            return Err(SloError::BadWindow {
                text: window_text.to_owned(),
                message: "must be from 1s to 1h".to_owned(),
            });
        }
        let gate: Slo = rule.parse()?;
        if gate.route.is_some() {
            return Err(SloError::RouteInGuard);
        }
        if gate.metric != Metric::Errors {
            return Err(SloError::NotErrors);
        }
        if !matches!(gate.op, Op::Above | Op::AtLeast) {
            return Err(SloError::NotAbove);
        }
        Ok(AbortRule {
            text: text.to_owned(),
            op: gate.op,
            limit: gate.limit,
            window,
        })
    }
}

impl fmt::Display for AbortRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl AbortRule {
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Why this rule stopped a run, as a report read back says it: `observed`
    /// percent failed, `failed` of `requests` in the window, `at` into the run.
    pub(crate) fn tripped(&self, observed: f64, requests: u64, failed: u64, at: Duration) -> Abort {
        Abort {
            rule: self.text.clone(),
            observed,
            requests,
            failed,
            limit: self.limit as f64 * 100.0 / MILLION as f64,
            op: self.op.symbol(),
            window: self.window,
            at,
        }
    }
}

/// Why the guard stopped a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Abort {
    /// The rule as written.
    pub rule: String,
    /// Failed requests in the window, in percent.
    pub observed: f64,
    /// Finished and failed requests in the window.
    pub requests: u64,
    pub failed: u64,
    /// The rule's limit, in percent.
    pub limit: f64,
    pub op: &'static str,
    pub window: Duration,
    /// Time since the start of the run when the guard tripped.
    pub at: Duration,
}

impl fmt::Display for Abort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "errors {:.1}% {} {}% over the last {} s at {:.1} s",
            self.observed,
            self.op,
            self.limit,
            self.window.as_secs_f64(),
            self.at.as_secs_f64()
        )
    }
}

// === impl Guard ===

/// The run's cumulative counts at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    at: Duration,
    finished: u64,
    failed: u64,
}

/// The abort guard: judges the error rate over a sliding window of samples.
#[derive(Debug, Clone)]
pub struct Guard {
    rule: AbortRule,
    /// Oldest first; the first is the newest sample at least a window old (or the
    /// start), the baseline the window's counts are taken from.
    samples: VecDeque<Sample>,
}

impl Guard {
    pub fn new(rule: AbortRule) -> Guard {
        let start = Sample {
            at: Duration::ZERO,
            finished: 0,
            failed: 0,
        };
        Guard {
            rule,
            samples: VecDeque::from([start]),
        }
    }

    /// Takes the counts at `now` (time since the start; finished and failed requests
    /// so far) and says whether the run must stop. A clock that goes backwards or
    /// counts that shrink make an empty window, never a panic.
    pub fn observe(&mut self, now: Duration, finished: u64, failed: u64) -> Option<Abort> {
        let cutoff = now.saturating_sub(self.rule.window);
        while self.samples.get(1).is_some_and(|s| s.at <= cutoff) {
            self.samples.pop_front();
        }
        let base = self.samples.front().copied()?;
        self.samples.push_back(Sample {
            at: now,
            finished,
            failed,
        });
        let requests = finished.saturating_sub(base.finished);
        let failed = failed.saturating_sub(base.failed).min(requests);
        if requests < MIN_REQUESTS {
            return None;
        }
        if !self
            .rule
            .op
            .holds(compare_rate(failed, requests, self.rule.limit))
        {
            return None;
        }
        Some(self.rule.tripped(
            failed as f64 * 100.0 / requests as f64,
            requests,
            failed,
            now,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slo(text: &str) -> Slo {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn refused(text: &str) -> String {
        match text.parse::<Slo>() {
            Ok(slo) => panic!("{text} parsed as {slo:?}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn every_metric_operator_and_unit_parses_to_exact_integers() {
        let parsed = slo("p99<50ms");
        assert_eq!(
            (parsed.route, parsed.metric, parsed.op, parsed.limit),
            (None, Metric::P99, Op::Below, 50_000)
        );
        assert_eq!(slo("p50<=1.5s").limit, 1_500_000);
        assert_eq!(slo("p50<=1.5s").op, Op::AtMost);
        assert_eq!(slo("p90 > 800us").op, Op::Above);
        assert_eq!(slo("p90 > 800us").limit, 800);
        assert_eq!(slo("p99.9>=0.25ms").metric, Metric::P999);
        assert_eq!(slo("p99.9>=0.25ms").op, Op::AtLeast);
        assert_eq!(slo("p99.9>=0.25ms").limit, 250);
        assert_eq!(slo("max<2s").metric, Metric::Max);
        assert_eq!(slo("errors<0.1%").limit, 1_000);
        assert_eq!(slo("errors<0.0001%").limit, 1);
        assert_eq!(slo("errors<=100%").limit, MILLION);
        let routed = slo(" route=payments:p99<200ms ");
        assert_eq!(routed.route.as_deref(), Some("payments"));
        assert_eq!(routed.to_string(), "route=payments:p99<200ms");
        assert_eq!(slo("route=other:errors<1%").route.as_deref(), Some("other"));
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        assert!(refused("p99<50").contains("missing unit after \"50\""));
        assert!(refused("errors<1").contains("percentage"));
        assert!(refused("p95<50ms").contains("unknown metric \"p95\""));
        assert!(refused("p99=50ms").contains("no comparison"));
        assert!(refused("p99<50m").contains("unknown unit \"m\""));
        assert!(refused("errors<1ms").contains("unknown unit \"ms\""));
        assert!(refused("p99<0.0001ms").contains("not a limit"));
        assert!(refused("p99<.5ms").contains("not a limit"));
        assert!(refused("p99<5.ms").contains("not a limit"));
        assert!(refused("p99<ms").contains("not a limit"));
        assert!(refused("p99<99999999999999999999s").contains("not a limit"));
        assert!(refused("errors<101%").contains("above 100%"));
        let unknown = refused("route=billing:p99<1s");
        assert!(unknown.contains("unknown route \"billing\""), "{unknown}");
        assert!(unknown.contains("payments"), "{unknown}");
        assert!(refused("route=payments").contains("no route name"));
    }

    #[test]
    fn abort_rules_take_an_error_rate_above_a_limit_over_a_window() {
        let rule: AbortRule = "errors>5%/10s".parse().expect("rule");
        assert_eq!((rule.op, rule.limit), (Op::Above, 50_000));
        assert_eq!(rule.window(), Duration::from_secs(10));
        let refused = |text: &str| match text.parse::<AbortRule>() {
            Ok(rule) => panic!("{text} parsed as {rule:?}"),
            Err(err) => err.to_string(),
        };
        assert!(refused("errors>5%").contains("missing window"));
        assert!(refused("errors>5%/10").contains("window \"10\""));
        assert!(refused("errors>5%/100ms").contains("from 1s to 1h"));
        assert!(refused("p99>5ms/10s").contains("error rate"));
        assert!(refused("errors<5%/10s").contains("use > or >="));
        assert!(refused("route=saga:errors>5%/10s").contains("every request"));
        assert!(refused("errors>5/10s").contains("missing unit"));
    }

    fn rule(text: &str) -> AbortRule {
        text.parse().expect("rule")
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn the_guard_needs_enough_requests_and_a_rate_above_the_limit() {
        let mut guard = Guard::new(rule("errors>5%/10s"));
        // 19 requests, all failed: too few to judge.
        assert_eq!(guard.observe(secs(0.1), 19, 19), None);
        // 100 requests, 5 failed: 5% is not above 5%.
        assert_eq!(guard.observe(secs(0.2), 100, 5), None);
        let abort = guard.observe(secs(0.3), 100, 6).expect("6% > 5%");
        assert_eq!((abort.requests, abort.failed), (100, 6));
        assert_eq!(
            abort.to_string(),
            "errors 6.0% > 5% over the last 10 s at 0.3 s"
        );
        let mut at_least = Guard::new(rule("errors>=5%/10s"));
        assert!(at_least.observe(secs(0.2), 100, 5).is_some());
    }

    #[test]
    fn the_window_forgets_what_is_older_than_it() {
        let mut guard = Guard::new(rule("errors>10%/2s"));
        let (mut finished, mut failed) = (0, 0);
        // Ten requests every 100 ms, `bad` of them failed, at `tick` * 100 ms.
        let mut at = |guard: &mut Guard, tick: u64, ok: u64, bad: u64| {
            finished += ok + bad;
            failed += bad;
            guard.observe(Duration::from_millis(tick * 100), finished, failed)
        };
        for tick in 1..=30 {
            assert_eq!(at(&mut guard, tick, 10, 0), None);
        }
        // 20 failures among the window's 210 requests: 9.5%.
        assert_eq!(at(&mut guard, 31, 0, 20), None);
        for tick in 32..=60 {
            assert_eq!(at(&mut guard, tick, 10, 0), None);
        }
        // Those 20 are more than 2 s old now: 15 among 205 is 7.3% (35 would be 17%).
        assert_eq!(at(&mut guard, 61, 0, 15), None);
        let abort = at(&mut guard, 62, 0, 10).expect("25 among 205 trips");
        assert_eq!((abort.requests, abort.failed), (205, 25));
        assert!(guard.samples.len() <= 22, "{} samples", guard.samples.len());
    }

    #[test]
    fn a_clock_going_backwards_or_counts_shrinking_do_not_trip_it() {
        let mut guard = Guard::new(rule("errors>5%/1s"));
        assert_eq!(guard.observe(secs(5.0), 100, 0), None);
        assert_eq!(guard.observe(secs(6.5), 200, 0), None);
        // Back in time: the window keeps its baseline.
        assert_eq!(guard.observe(secs(4.0), 300, 0), None);
        // Counts below the baseline: an empty window.
        assert_eq!(guard.observe(secs(7.0), 10, 10), None);
        assert_eq!(guard.observe(Duration::ZERO, 0, 0), None);
    }
}
