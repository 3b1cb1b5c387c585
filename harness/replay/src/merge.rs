//! `c4mesh replay merge`: the reports of a run's shards read back and added up into
//! one report, as if one generator had sent everything.
//!
//! ## Why histograms, and what adds up
//!
//! Percentiles do not average: the p99 of four shards is not the mean of their p99s,
//! and no arithmetic on percentiles gives it. So every report carries its latency
//! histograms whole (HdrHistogram's V2 format, base64), and the merge deserialises
//! and adds them: the merged percentiles are exactly those of one histogram that
//! recorded every sample of every shard. Counts (requests, responses, errors by kind,
//! statuses, attempts, connections, unfinished requests) are summed; the longest
//! latency is the longest of any shard.
//!
//! Shards run side by side, so the merged rates are sums: the configured rate (or
//! concurrency) is the sum of the shards' shares, and the achieved rate the sum of
//! each shard's finished requests over its own duration. The merged duration is the
//! longest shard's. A merged report is complete when every shard's was; the gates of
//! `merge --slo` are judged on the merged numbers, the shards' own verdicts dropped.
//!
//! Reports that cannot be shards of one run are refused, naming the file and what
//! differs: another target or host, another way of pacing, shards of another count,
//! or the same shard twice. A merged report read back is one part, like a run's: its
//! own parts are not read, so merging it again takes its requests over its longest
//! duration as its rate.

use super::report::{Mode, Part, Report, Stats, MAX_MICROS};
use super::routes::Routes;
use super::shard::{Shard, ShardError};
use super::slo::{Abort, AbortRule};
use base64::Engine as _;
use hdrhistogram::serialization::{DeserializeError, Deserializer};
use hdrhistogram::{AdditionError, Histogram};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

/// Why reports cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no reports to merge")]
    Nothing,
    #[error("{file}: cannot be read")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: not JSON")]
    Json {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{file}: not a replay report as `c4mesh replay --json` writes it")]
    Report {
        file: String,
        #[source]
        source: ReportError,
    },
    #[error("{file}: {what} {theirs}, but {first} has {ours}: not shards of one run")]
    Mismatch {
        file: String,
        first: String,
        what: &'static str,
        theirs: String,
        ours: String,
    },
    #[error("{file}: shard {shard} again (also in {first})")]
    Duplicate {
        file: String,
        first: String,
        shard: Shard,
    },
}

/// What is wrong in a report read back, by the path of its field.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{field}: missing, or not {expected}")]
    Field {
        field: String,
        expected: &'static str,
    },
    #[error("{field}: not base64")]
    Base64 {
        field: String,
        #[source]
        source: base64::DecodeError,
    },
    #[error("{field}: not an HdrHistogram in the V2 format")]
    Histogram {
        field: String,
        #[source]
        source: DeserializeError,
    },
    #[error("{field}: latencies beyond what a report holds (1 µs to 1 h)")]
    Range {
        field: String,
        #[source]
        source: AdditionError,
    },
    #[error("{field}: holds {held} latencies, but the report counts {responses} responses")]
    Count {
        field: String,
        held: u64,
        responses: u64,
    },
    #[error("{field}: not a shard")]
    Shard {
        field: String,
        #[source]
        source: ShardError,
    },
    #[error("routes.{0}: not one of the routes")]
    Route(String),
}

/// Reads a report as `c4mesh replay --json` writes it; errors name the file.
pub fn read_report(path: &Path) -> Result<Report, MergeError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| MergeError::Read {
        file: file.clone(),
        source,
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|source| MergeError::Json {
        file: file.clone(),
        source,
    })?;
    Report::from_json(&value).map_err(|source| MergeError::Report { file, source })
}

/// One report of `reports` (each named by its file), as the module docs say.
pub fn merge(reports: &[(String, Report)]) -> Result<Report, MergeError> {
    let Some((first_file, first)) = reports.first() else {
        return Err(MergeError::Nothing);
    };
    let mut merged = first.empty();
    merged.shard = None;
    merged.slo = Vec::new();
    merged.aborted = None;
    merged.complete = true;
    merged.duration = Duration::ZERO;
    merged.unfinished = 0;
    merged.connections = 0;
    merged.parts = Vec::new();
    merged.mode = match first.mode {
        Mode::Open { rate: Some(_) } => Mode::Open { rate: Some(0.0) },
        Mode::Closed { .. } => Mode::Closed { concurrency: 0 },
        recorded => recorded,
    };
    let mut seen: Vec<(Shard, &str)> = Vec::new();
    for (file, report) in reports {
        let mismatch = |what, theirs: String, ours: String| MergeError::Mismatch {
            file: file.clone(),
            first: first_file.clone(),
            what,
            theirs,
            ours,
        };
        if report.target != first.target {
            return Err(mismatch(
                "targets",
                report.target.clone(),
                first.target.clone(),
            ));
        }
        if report.host != first.host {
            return Err(mismatch(
                "names host",
                report.host.clone(),
                first.host.clone(),
            ));
        }
        if pacing(report.mode) != pacing(first.mode) {
            return Err(mismatch(
                "runs",
                pacing(report.mode).to_owned(),
                pacing(first.mode).to_owned(),
            ));
        }
        if let Some(shard) = report.shard {
            if let Some(&(other, other_file)) =
                seen.iter().find(|(s, _)| s.count() != shard.count())
            {
                return Err(MergeError::Mismatch {
                    file: file.clone(),
                    first: other_file.to_owned(),
                    what: "is shard",
                    theirs: shard.to_string(),
                    ours: format!("shard {other}"),
                });
            }
            if let Some(&(_, other_file)) = seen.iter().find(|(s, _)| *s == shard) {
                return Err(MergeError::Duplicate {
                    file: file.clone(),
                    first: other_file.to_owned(),
                    shard,
                });
            }
            seen.push((shard, file));
        }
        merged.mode = match (merged.mode, report.mode) {
            (Mode::Open { rate: Some(a) }, Mode::Open { rate: Some(b) }) => {
                Mode::Open { rate: Some(a + b) }
            }
            (Mode::Closed { concurrency: a }, Mode::Closed { concurrency: b }) => {
                Mode::Closed { concurrency: a + b }
            }
            (recorded, _) => recorded,
        };
        merged.overall.merge(&report.overall);
        for ((_, mine), (_, theirs)) in merged.routes.iter_mut().zip(&report.routes) {
            mine.merge(theirs);
        }
        merged.complete &= report.complete;
        merged.duration = merged.duration.max(report.duration);
        merged.unfinished += report.unfinished;
        merged.connections += report.connections;
        merged.parts.push(Part {
            file: file.clone(),
            shard: report.shard,
            finished: report.overall.requests(),
            duration: report.duration,
            complete: report.complete,
            aborted: report.aborted.as_ref().map(ToString::to_string),
        });
    }
    Ok(merged)
}

/// How a report's requests were paced, as merge compares them.
fn pacing(mode: Mode) -> &'static str {
    match mode {
        Mode::Open { rate: Some(_) } => "open loop at a rate",
        Mode::Open { rate: None } => "open loop at recorded times",
        Mode::Closed { .. } => "closed loop",
    }
}

// === impl Report ===

impl Report {
    /// A report read back from its JSON ([`Report::to_json`]), with what merging
    /// needs: counts, histograms, the exact duration, the shard. The gates' verdicts
    /// are not read (a merge judges its own), and why a guard stopped the run only as
    /// its reason.
    pub fn from_json(value: &Value) -> Result<Report, ReportError> {
        let top = Fields::root(value)?;
        let routes = Routes::defaults();
        let mode = match top.str("mode")? {
            "open" => Mode::Open {
                rate: top.optional_f64("rate")?,
            },
            "closed" => Mode::Closed {
                concurrency: usize::try_from(top.u64("concurrency")?).unwrap_or(usize::MAX),
            },
            _ => {
                return Err(ReportError::Field {
                    field: "mode".into(),
                    expected: "\"open\" or \"closed\"",
                })
            }
        };
        let histograms = top.object("histograms")?;
        let route_histograms = histograms.object("routes")?;
        let overall = stats(&top, &histograms.path_of("all"), histograms.get("all"))?;
        let mut routes_stats: Vec<(String, Stats)> = (0..=routes.len())
            .map(|i| (routes.name(i).to_owned(), Stats::new()))
            .collect();
        let listed = top.object("routes")?;
        for (name, _) in listed.map {
            let slot = routes_stats
                .iter_mut()
                .find(|(known, _)| known == name)
                .ok_or_else(|| ReportError::Route(name.clone()))?;
            let fields = listed.object(name)?;
            slot.1 = stats(
                &fields,
                &route_histograms.path_of(name),
                route_histograms.get(name),
            )?;
        }
        let shard = match top.get("shard") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => {
                Some(text.parse().map_err(|source| ReportError::Shard {
                    field: "shard".into(),
                    source,
                })?)
            }
            Some(_) => {
                return Err(ReportError::Field {
                    field: "shard".into(),
                    expected: "I/N or null",
                })
            }
        };
        let aborted = match top.get("aborted") {
            None | Some(Value::Null) => None,
            Some(_) => Some(abort(&top.object("aborted")?)?),
        };
        Ok(Report {
            target: top.str("target")?.to_owned(),
            host: top.str("host")?.to_owned(),
            mode,
            complete: top.bool("complete")?,
            duration: Duration::from_micros(top.u64("duration_us")?),
            unfinished: top.u64("unfinished")?,
            overall,
            connections: top.u64("connections")?,
            slo: Vec::new(),
            aborted,
            shard,
            parts: Vec::new(),
            routes: routes_stats,
        })
    }
}

/// Why the abort guard stopped a run, from the report's `aborted`.
fn abort(fields: &Fields<'_>) -> Result<Abort, ReportError> {
    let rule: AbortRule = fields
        .str("rule")?
        .parse()
        .map_err(|_| fields.wrong("rule", "an abort rule (errors>RATE%/WINDOW)"))?;
    let at = fields
        .optional_f64("at_s")?
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| fields.wrong("at_s", "a time in seconds"))?;
    Ok(rule.tripped(
        fields
            .optional_f64("error_rate")?
            .ok_or_else(|| fields.wrong("error_rate", "a percentage"))?,
        fields.u64("requests")?,
        fields.u64("failed")?,
        at,
    ))
}

/// One series' statistics from its fields and its encoded histogram.
fn stats(
    fields: &Fields<'_>,
    histogram_path: &str,
    histogram: Option<&Value>,
) -> Result<Stats, ReportError> {
    let mut stats = Stats::new();
    stats.responses = fields.u64("responses")?;
    stats.errors = fields.u64("errors")?;
    let statuses = fields.object("statuses")?;
    for (status, _) in statuses.map {
        let code = status
            .parse::<u16>()
            .ok()
            .filter(|c| (100..=999).contains(c))
            .ok_or_else(|| ReportError::Field {
                field: statuses.path_of(status),
                expected: "keyed by a status code",
            })?;
        stats.statuses.insert(code, statuses.u64(status)?);
    }
    let kinds = fields.object("error_kinds")?;
    for (kind, _) in kinds.map {
        stats
            .error_kinds
            .insert(Cow::Owned(kind.clone()), kinds.u64(kind)?);
    }
    let attempts = fields.object("attempts")?;
    stats.attempts_seen = attempts.u64("seen")?;
    stats.attempts_total = attempts.u64("total")?;
    let latency = fields.object("latency_ms")?;
    let max = latency.optional_f64("max")?;
    stats.max_micros = match max {
        Some(ms) if ms >= 0.0 => (ms * 1000.0).round().min(MAX_MICROS as f64 * 2.0) as u64,
        None if stats.responses == 0 => 0,
        _ => {
            return Err(ReportError::Field {
                field: latency.path_of("max"),
                expected: "a latency in ms",
            })
        }
    };
    let Some(Value::String(encoded)) = histogram else {
        return Err(ReportError::Field {
            field: histogram_path.to_owned(),
            expected: "a base64 HdrHistogram",
        });
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|source| ReportError::Base64 {
            field: histogram_path.to_owned(),
            source,
        })?;
    let decoded: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|source| ReportError::Histogram {
            field: histogram_path.to_owned(),
            source,
        })?;
    stats
        .latency
        .add(&decoded)
        .map_err(|source| ReportError::Range {
            field: histogram_path.to_owned(),
            source,
        })?;
    if stats.latency.len() != stats.responses {
        return Err(ReportError::Count {
            field: histogram_path.to_owned(),
            held: stats.latency.len(),
            responses: stats.responses,
        });
    }
    Ok(stats)
}

/// A JSON object and its path in the report, for errors that name the field.
struct Fields<'a> {
    path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn root(value: &'a Value) -> Result<Fields<'a>, ReportError> {
        match value {
            Value::Object(map) => Ok(Fields {
                path: String::new(),
                map,
            }),
            _ => Err(ReportError::Field {
                field: "(the document)".into(),
                expected: "an object",
            }),
        }
    }

    fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    fn wrong(&self, key: &str, expected: &'static str) -> ReportError {
        ReportError::Field {
            field: self.path_of(key),
            expected,
        }
    }

    fn object(&self, key: &str) -> Result<Fields<'a>, ReportError> {
        match self.map.get(key) {
            Some(Value::Object(map)) => Ok(Fields {
                path: self.path_of(key),
                map,
            }),
            _ => Err(self.wrong(key, "an object")),
        }
    }

    fn str(&self, key: &str) -> Result<&'a str, ReportError> {
        self.map
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| self.wrong(key, "a string"))
    }

    fn u64(&self, key: &str) -> Result<u64, ReportError> {
        self.map
            .get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| self.wrong(key, "a whole number"))
    }

    fn bool(&self, key: &str) -> Result<bool, ReportError> {
        self.map
            .get(key)
            .and_then(Value::as_bool)
            .ok_or_else(|| self.wrong(key, "true or false"))
    }

    /// A number, or null.
    fn optional_f64(&self, key: &str) -> Result<Option<f64>, ReportError> {
        match self.map.get(key) {
            Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_f64()
                .filter(|v| v.is_finite())
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a number or null")),
            None => Err(self.wrong(key, "a number or null")),
        }
    }
}
