//! What a replay saw: latency percentiles, statuses, errors and attempts, overall
//! and per route, as a stable JSON document and a short human summary.
//!
//! ## Why these numbers
//!
//! - Latency is kept in an HdrHistogram of microseconds (1 µs to 1 h, 3 significant
//!   digits): exact percentiles to 0.1% in constant memory, so a long run costs no
//!   more than a short one. It covers responses only; requests that got none are
//!   counted by error kind instead, since their "latency" would only be a timeout.
//! - Statuses and error kinds are distributions, not just a success rate: a 503
//!   from the filter's circuit breaker and a connection refused are different
//!   problems.
//! - Attempts come from the response (`x-c4-attempts` when the filter runs with
//!   `debug_headers`, else `x-envoy-attempt-count`): the retries the client never
//!   sees but the upstream pays for.
//!
//! - The verdicts of the run's gates (`slo`) and the abort guard's reason
//!   (`aborted`) belong to the report, so a pipeline reads why a run failed from the
//!   same document as its numbers ([`super::slo`]).
//!
//! - Each latency series (`all`, and each route's) also travels whole, as its
//!   HdrHistogram in the V2 format, base64-encoded (`histograms`), with the counts
//!   and the exact duration (`duration_us`) beside it: what `c4mesh replay merge`
//!   needs to add the shards of a run into one report whose percentiles are those of
//!   every sample, not an average of percentiles ([`super::merge`]).
//!
//! The JSON uses `serde_json` maps, whose keys are sorted: the same run gives the
//! same document, key for key. Times are in milliseconds (latency) or seconds
//! (duration) with 3 decimals, and the duration in whole microseconds too.

use super::routes::Routes;
use super::shard::Shard;
use super::slo::{Abort, SloVerdict};
use base64::Engine as _;
use c4mesh_live::{Answer, Endpoint, ErrorKind};
use hdrhistogram::serialization::{Serializer as _, V2Serializer};
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Longest latency the histograms hold (longer ones are recorded as this).
pub(crate) const MAX_MICROS: u64 = 3_600_000_000;

/// The percentiles reported, with their JSON keys.
const PERCENTILES: [(&str, f64); 4] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)];

/// Statistics of a set of requests (the whole run, or one route).
#[derive(Debug, Clone)]
pub struct Stats {
    pub(crate) latency: Histogram<u64>,
    /// The exact longest latency (the histogram's is rounded up to its bucket).
    pub(crate) max_micros: u64,
    pub(crate) responses: u64,
    pub(crate) errors: u64,
    pub(crate) statuses: BTreeMap<u16, u64>,
    /// Kinds as [`ErrorKind::as_str`] names them (owned when read back from a report).
    pub(crate) error_kinds: BTreeMap<Cow<'static, str>, u64>,
    pub(crate) attempts_seen: u64,
    pub(crate) attempts_total: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    pub fn new() -> Stats {
        let latency = match Histogram::new_with_bounds(1, MAX_MICROS, 3) {
            Ok(histogram) => histogram,
            // Constant bounds, valid by construction (checked by the tests).
            Err(err) => unreachable!("histogram bounds: {err}"),
        };
        Stats {
            latency,
            max_micros: 0,
            responses: 0,
            errors: 0,
            statuses: BTreeMap::new(),
            error_kinds: BTreeMap::new(),
            attempts_seen: 0,
            attempts_total: 0,
        }
    }

    /// Records a response with its latency.
    pub(crate) fn record_response(&mut self, latency: Duration, answer: Answer) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency.saturating_record(micros.clamp(1, MAX_MICROS));
        self.max_micros = self.max_micros.max(micros);
        self.responses += 1;
        *self.statuses.entry(answer.status).or_default() += 1;
        if let Some(attempts) = answer.attempts {
            self.attempts_seen += 1;
            self.attempts_total += attempts;
        }
    }

    /// Records a request that got no response.
    pub(crate) fn record_error(&mut self, kind: ErrorKind) {
        self.errors += 1;
        *self
            .error_kinds
            .entry(Cow::Borrowed(kind.as_str()))
            .or_default() += 1;
    }

    /// Requests that ended, with a response or an error.
    pub fn requests(&self) -> u64 {
        self.responses + self.errors
    }

    pub fn responses(&self) -> u64 {
        self.responses
    }

    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Responses by status code.
    pub fn statuses(&self) -> &BTreeMap<u16, u64> {
        &self.statuses
    }

    /// Errors by kind (`connect_refused`, `timeout`, `reset`, ...).
    pub fn error_kinds(&self) -> &BTreeMap<Cow<'static, str>, u64> {
        &self.error_kinds
    }

    /// The latency at quantile `q` (0 to 1) in milliseconds; `None` without responses.
    pub fn latency_ms(&self, q: f64) -> Option<f64> {
        self.latency_micros(q).map(|micros| micros as f64 / 1000.0)
    }

    /// The longest latency in milliseconds; `None` without responses.
    pub fn max_ms(&self) -> Option<f64> {
        self.max_micros().map(|micros| micros as f64 / 1000.0)
    }

    /// The latency at quantile `q` (0 to 1) in microseconds; `None` without responses.
    pub fn latency_micros(&self, q: f64) -> Option<u64> {
        (self.responses > 0).then(|| self.latency.value_at_quantile(q).min(self.max_micros))
    }

    /// The longest latency in microseconds; `None` without responses.
    pub fn max_micros(&self) -> Option<u64> {
        (self.responses > 0).then_some(self.max_micros)
    }

    /// Requests that failed: errors (no response) and 5xx responses, as `errors` in
    /// an SLO counts them.
    pub fn failed(&self) -> u64 {
        let server_errors: u64 = self.statuses.range(500..=599).map(|(_, n)| n).sum();
        self.errors + server_errors
    }

    /// Responses that said how many attempts they took.
    pub fn attempts_seen(&self) -> u64 {
        self.attempts_seen
    }

    /// Attempts added up over those responses.
    pub fn attempts_total(&self) -> u64 {
        self.attempts_total
    }

    /// Mean attempts per response that said; `None` if none did.
    pub fn attempts_mean(&self) -> Option<f64> {
        (self.attempts_seen > 0).then(|| self.attempts_total as f64 / self.attempts_seen as f64)
    }

    /// `{"requests", "responses", "errors", "error_kinds", "latency_ms", "statuses",
    /// "attempts"}`.
    pub fn to_json(&self) -> Value {
        let mut latency = Map::new();
        for (key, q) in PERCENTILES {
            latency.insert(key.to_owned(), number(self.latency_ms(q)));
        }
        latency.insert("max".to_owned(), number(self.max_ms()));
        let statuses: Map<String, Value> = self
            .statuses
            .iter()
            .map(|(status, n)| (status.to_string(), json!(n)))
            .collect();
        let kinds: Map<String, Value> = self
            .error_kinds
            .iter()
            .map(|(kind, n)| (kind.to_string(), json!(n)))
            .collect();
        json!({
            "requests": self.requests(),
            "responses": self.responses,
            "errors": self.errors,
            "error_kinds": kinds,
            "latency_ms": latency,
            "statuses": statuses,
            "attempts": {
                "seen": self.attempts_seen,
                "total": self.attempts_total,
                "mean": number(self.attempts_mean()),
            },
        })
    }

    /// The latency histogram: responses only, in microseconds.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.latency
    }

    /// The latency histogram in HdrHistogram's V2 format, base64-encoded; `None` if
    /// it cannot be encoded (a count above `i64::MAX`).
    pub fn histogram_base64(&self) -> Option<String> {
        let mut bytes = Vec::new();
        V2Serializer::new()
            .serialize(&self.latency, &mut bytes)
            .ok()?;
        Some(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// Adds another set's statistics to this one (the workers' reports). Both
    /// histograms have the same bounds, so the addition cannot fail.
    pub(crate) fn merge(&mut self, other: &Stats) {
        let _ = self.latency.add(&other.latency);
        self.max_micros = self.max_micros.max(other.max_micros);
        self.responses += other.responses;
        self.errors += other.errors;
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        for (kind, n) in &other.error_kinds {
            *self.error_kinds.entry(kind.clone()).or_default() += n;
        }
        self.attempts_seen += other.attempts_seen;
        self.attempts_total += other.attempts_total;
    }

    fn outcomes(&self) -> String {
        let parts: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .chain(self.error_kinds.iter().map(|(k, n)| format!("{k}: {n}")))
            .collect();
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// A float rounded to 3 decimals, or null.
fn number(value: Option<f64>) -> Value {
    match value {
        Some(v) if v.is_finite() => json!(round3(v)),
        _ => Value::Null,
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// How the run was paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Open loop at `rate` requests per second, or at recorded offsets (`None`).
    Open {
        rate: Option<f64>,
    },
    Closed {
        concurrency: usize,
    },
}

/// The outcome of a replay.
#[derive(Debug, Clone)]
pub struct Report {
    /// The target URL.
    pub target: String,
    pub host: String,
    pub mode: Mode,
    /// False when the run was stopped before its bound.
    pub complete: bool,
    /// From the start to the last answer (or to the stop).
    pub duration: Duration,
    /// Requests sent but neither answered nor failed when a stopped run gave up
    /// waiting for them.
    pub unfinished: u64,
    pub overall: Stats,
    /// Connections opened over the run.
    pub connections: u64,
    /// The verdicts of the run's gates (`--slo`), in the order given.
    pub slo: Vec<SloVerdict>,
    /// Why the abort guard (`--abort-on`) stopped the run, if it did.
    pub aborted: Option<Abort>,
    /// The share of a run split over several generators this report is of.
    pub shard: Option<Shard>,
    /// The reports merged into this one (`c4mesh replay merge`), in the order given;
    /// empty for a run.
    pub parts: Vec<Part>,
    /// Per route, in route order, `other` last.
    pub(crate) routes: Vec<(String, Stats)>,
}

/// A report merged into another: what the merged report keeps of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// The file it was read from.
    pub file: String,
    pub shard: Option<Shard>,
    /// Requests it finished (answered or failed).
    pub finished: u64,
    pub duration: Duration,
    pub complete: bool,
    /// Why its abort guard stopped it, if it did.
    pub aborted: Option<String>,
}

// === impl Part ===

impl Part {
    /// Finished requests per second over its own duration.
    pub fn achieved_rate(&self) -> f64 {
        rate(self.finished, self.duration)
    }

    fn to_json(&self) -> Value {
        json!({
            "file": self.file,
            "shard": self.shard.map(|s| s.to_string()),
            "requests": self.finished,
            "duration_s": number(Some(self.duration.as_secs_f64())),
            "achieved_rate": number(Some(self.achieved_rate())),
            "complete": self.complete,
            "aborted": self.aborted,
        })
    }
}

/// `finished` over `duration`, per second; 0 over no time.
fn rate(finished: u64, duration: Duration) -> f64 {
    let seconds = duration.as_secs_f64();
    if seconds > 0.0 {
        finished as f64 / seconds
    } else {
        0.0
    }
}

impl Report {
    pub(crate) fn new(endpoint: &Endpoint, mode: Mode, routes: &Routes) -> Report {
        Report {
            target: endpoint.url.clone(),
            host: endpoint.host.clone(),
            mode,
            complete: true,
            duration: Duration::ZERO,
            unfinished: 0,
            overall: Stats::new(),
            connections: 0,
            slo: Vec::new(),
            aborted: None,
            shard: None,
            parts: Vec::new(),
            routes: (0..=routes.len())
                .map(|i| (routes.name(i).to_owned(), Stats::new()))
                .collect(),
        }
    }

    /// The same report with nothing recorded yet.
    pub(crate) fn empty(&self) -> Report {
        Report {
            overall: Stats::new(),
            routes: self
                .routes
                .iter()
                .map(|(name, _)| (name.clone(), Stats::new()))
                .collect(),
            ..self.clone()
        }
    }

    /// Adds a worker's outcomes to this report.
    pub(crate) fn merge(&mut self, other: &Report) {
        self.overall.merge(&other.overall);
        for ((_, mine), (_, theirs)) in self.routes.iter_mut().zip(&other.routes) {
            mine.merge(theirs);
        }
    }

    /// Records one finished request of route index `route`.
    pub(crate) fn record(
        &mut self,
        route: usize,
        latency: Duration,
        result: Result<Answer, ErrorKind>,
    ) {
        let last = self.routes.len().saturating_sub(1);
        let route_stats = self.routes.get_mut(route.min(last)).map(|(_, s)| s);
        match result {
            Ok(answer) => {
                self.overall.record_response(latency, answer);
                if let Some(stats) = route_stats {
                    stats.record_response(latency, answer);
                }
            }
            Err(kind) => {
                self.overall.record_error(kind);
                if let Some(stats) = route_stats {
                    stats.record_error(kind);
                }
            }
        }
    }

    /// Requests sent: answered, failed, or unfinished.
    pub fn requests(&self) -> u64 {
        self.overall.requests() + self.unfinished
    }

    /// Finished requests per second over the run; for a merged report, the sum of
    /// its parts' rates, each over its own duration (shards that ran side by side
    /// add up, whatever their durations).
    pub fn achieved_rate(&self) -> f64 {
        if self.parts.is_empty() {
            rate(self.overall.requests(), self.duration)
        } else {
            self.parts.iter().map(Part::achieved_rate).sum()
        }
    }

    /// Whether every gate held (true without gates).
    pub fn slo_passed(&self) -> bool {
        self.slo.iter().all(|verdict| verdict.pass)
    }

    /// A route's statistics, if any request fell under it.
    pub fn route(&self, name: &str) -> Option<&Stats> {
        self.routes
            .iter()
            .find(|(n, s)| n == name && s.requests() > 0)
            .map(|(_, s)| s)
    }

    /// The routes any request fell under, in route order (`other` last).
    pub fn routes(&self) -> impl Iterator<Item = (&str, &Stats)> {
        self.routes
            .iter()
            .filter(|(_, s)| s.requests() > 0)
            .map(|(n, s)| (n.as_str(), s))
    }

    /// The report as JSON (see the module docs).
    pub fn to_json(&self) -> Value {
        let mut object = match self.overall.to_json() {
            Value::Object(object) => object,
            _ => Map::new(),
        };
        object.insert("target".to_owned(), json!(self.target));
        object.insert("connections".to_owned(), json!(self.connections));
        object.insert("host".to_owned(), json!(self.host));
        match self.mode {
            Mode::Open { rate } => {
                object.insert("mode".to_owned(), json!("open"));
                object.insert("rate".to_owned(), number(rate));
            }
            Mode::Closed { concurrency } => {
                object.insert("mode".to_owned(), json!("closed"));
                object.insert("concurrency".to_owned(), json!(concurrency));
            }
        }
        object.insert("complete".to_owned(), json!(self.complete));
        object.insert(
            "duration_s".to_owned(),
            number(Some(self.duration.as_secs_f64())),
        );
        object.insert("requests".to_owned(), json!(self.requests()));
        object.insert("unfinished".to_owned(), json!(self.unfinished));
        object.insert(
            "achieved_rate".to_owned(),
            number(Some(self.achieved_rate())),
        );
        let routes: Map<String, Value> = self
            .routes()
            .map(|(name, stats)| (name.to_owned(), stats.to_json()))
            .collect();
        object.insert("routes".to_owned(), Value::Object(routes));
        let verdicts = self
            .slo
            .iter()
            .map(|verdict| {
                json!({
                    "expr": verdict.expr,
                    "observed": number(verdict.observed),
                    "unit": verdict.unit,
                    "pass": verdict.pass,
                })
            })
            .collect();
        object.insert("slo".to_owned(), Value::Array(verdicts));
        let aborted = self.aborted.as_ref().map_or(Value::Null, |abort| {
            json!({
                "reason": abort.to_string(),
                "rule": abort.rule,
                "error_rate": number(Some(abort.observed)),
                "requests": abort.requests,
                "failed": abort.failed,
                "window_s": number(Some(abort.window.as_secs_f64())),
                "at_s": number(Some(abort.at.as_secs_f64())),
            })
        });
        object.insert("aborted".to_owned(), aborted);
        object.insert(
            "shard".to_owned(),
            self.shard.map_or(Value::Null, |s| json!(s.to_string())),
        );
        object.insert(
            "duration_us".to_owned(),
            json!(u64::try_from(self.duration.as_micros()).unwrap_or(u64::MAX)),
        );
        let encoded = |stats: &Stats| stats.histogram_base64().map_or(Value::Null, Value::String);
        let per_route: Map<String, Value> = self
            .routes()
            .map(|(name, stats)| (name.to_owned(), encoded(stats)))
            .collect();
        object.insert(
            "histograms".to_owned(),
            json!({"all": encoded(&self.overall), "routes": per_route}),
        );
        object.insert(
            "merged".to_owned(),
            Value::Array(self.parts.iter().map(Part::to_json).collect()),
        );
        Value::Object(object)
    }

    /// A few lines for a person: what was sent, how fast, how long it took, what came
    /// back.
    pub fn summary(&self) -> String {
        let overall = &self.overall;
        let mode = match self.mode {
            Mode::Open { rate: Some(rate) } => format!("open loop at {rate}/s"),
            Mode::Open { rate: None } => "open loop at recorded times".to_owned(),
            Mode::Closed { concurrency } => format!("closed loop, concurrency {concurrency}"),
        };
        let mut text = String::new();
        let _ = writeln!(
            text,
            "{} requests to {} in {:.2} s ({:.1}/s achieved), {mode}, {} connections{}",
            self.requests(),
            self.target,
            self.duration.as_secs_f64(),
            self.achieved_rate(),
            self.connections,
            if self.complete { "" } else { ", stopped early" },
        );
        if let Some(shard) = self.shard {
            let _ = writeln!(text, "shard {shard}: this generator's share of the run");
        }
        if !self.parts.is_empty() {
            let _ = writeln!(text, "merged from {} reports:", self.parts.len());
            for part in &self.parts {
                let _ = writeln!(
                    text,
                    "  {}{}: {} requests in {:.2} s ({:.1}/s){}",
                    part.file,
                    part.shard
                        .map_or_else(String::new, |s| format!(" (shard {s})")),
                    part.finished,
                    part.duration.as_secs_f64(),
                    part.achieved_rate(),
                    match &part.aborted {
                        Some(reason) => format!(", aborted: {reason}"),
                        None if !part.complete => ", stopped early".to_owned(),
                        None => String::new(),
                    },
                );
            }
        }
        if let Some(abort) = &self.aborted {
            let _ = writeln!(text, "aborted: {abort}");
        }
        let _ = writeln!(
            text,
            "responses {}, errors {}{}",
            overall.responses,
            overall.errors,
            if self.unfinished > 0 {
                format!(", unfinished {}", self.unfinished)
            } else {
                String::new()
            }
        );
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
        let _ = writeln!(
            text,
            "latency ms: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            ms(overall.latency_ms(0.5)),
            ms(overall.latency_ms(0.9)),
            ms(overall.latency_ms(0.99)),
            ms(overall.latency_ms(0.999)),
            ms(overall.max_ms()),
        );
        let _ = writeln!(text, "outcomes: {}", overall.outcomes());
        if let Some(mean) = overall.attempts_mean() {
            let _ = writeln!(
                text,
                "attempts: mean {mean:.2} over {} responses",
                overall.attempts_seen
            );
        }
        let _ = writeln!(text, "per route:");
        for (name, stats) in self.routes() {
            let attempts = stats
                .attempts_mean()
                .map_or_else(String::new, |m| format!("  attempts {m:.2}"));
            let _ = writeln!(
                text,
                "  {name:<16} {:>6} requests  p50 {:>8}  p99 {:>8}  {}{attempts}",
                stats.requests(),
                ms(stats.latency_ms(0.5)),
                ms(stats.latency_ms(0.99)),
                stats.outcomes(),
            );
        }
        if !self.slo.is_empty() {
            let failed = self.slo.iter().filter(|v| !v.pass).count();
            let _ = writeln!(
                text,
                "slo: {} passed, {failed} failed",
                self.slo.len() - failed
            );
            let width = self.slo.iter().map(|v| v.expr.len()).max().unwrap_or(0);
            for verdict in &self.slo {
                let observed = verdict.observed.map_or_else(
                    || "nothing to judge by".to_owned(),
                    |v| format!("observed {v:.3} {}", verdict.unit),
                );
                let _ = writeln!(
                    text,
                    "  {}  {:<width$}  {observed}",
                    if verdict.pass { "pass" } else { "FAIL" },
                    verdict.expr,
                );
            }
        }
        text
    }
}
