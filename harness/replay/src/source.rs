//! What a replay sends: the built-in mix, or the requests of a JSONL file.
//!
//! ## File format
//!
//! One JSON object per line; blank lines and lines starting with `#` are skipped.
//! A line is one of:
//!
//! - a request: `{"method": "GET", "path": "/api/v1/orders/1", "headers": {"x": "y"},
//!   "body": "...", "at_ms": 120}`. Only `path` is required; `method` defaults to GET;
//!   `at_ms` is the time offset from the start of the run. Unknown keys are errors, so
//!   a misspelt key is not silently ignored.
//! - an Envoy/Istio JSON access-log line, recognised by a `start_time` or
//!   `response_code` key (Istio's default JSON format). `method`, `path` and
//!   `authority` (sent as the Host header) are replayed; `start_time` (RFC 3339) gives
//!   the time offset, from the earliest `start_time` in the file. Other keys are
//!   ignored. Envoy writes a line when a request *ends*, so lines are not in start
//!   order; requests with offsets are therefore sorted by offset.
//!
//! Offsets are all or nothing: one line with and another without is an error, since a
//! schedule with holes in it has no single meaning. A bad line is reported as
//! `file:line: what is wrong`.
//!
//! ## The mix
//!
//! Round robin over the six routes, `GET <prefix>/<n>` with `n` counting 1..=1000 per
//! route: deterministic, so two runs send the same requests in the same order, and
//! every route gets the same share.
//!
//! ## Generated requests
//!
//! A [`Generator`] makes request `i` when it falls due, from what holds at that
//! moment: the soak (`c4mesh_soak`) names an upstream address that is live then, in a
//! header, while its pool of upstreams turns over. Its requests are the program's own,
//! so they are not checked as a file's lines are.

use super::routes::Routes;
use super::shard::Shard;
use super::{Error, OptionsError};
use c4mesh_live::connection::Template;
use c4mesh_live::ErrorKind;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Where a replay's requests come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in round-robin mix over the six routes.
    Mix,
    /// A JSONL file of requests or access-log lines.
    File(PathBuf),
    /// Requests made as they fall due.
    Generated(Generator),
}

/// Makes request `i` of a run (counted from 0) when it falls due; called from the
/// replay's worker threads.
#[derive(Clone)]
pub struct Generator(Arc<dyn Fn(u64) -> ReplayRequest + Send + Sync>);

impl Generator {
    pub fn new(make: impl Fn(u64) -> ReplayRequest + Send + Sync + 'static) -> Generator {
        Generator(Arc::new(make))
    }

    pub fn request(&self, i: u64) -> ReplayRequest {
        (self.0)(i)
    }
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Generator")
    }
}

/// Two generators are the same when they are one function.
impl PartialEq for Generator {
    fn eq(&self, other: &Generator) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Generator {}

/// One request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRequest {
    pub method: String,
    pub path: String,
    /// In file order; a `host` header here replaces the run's default Host.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When to send it, from the start of the run (open loop without a rate).
    pub at: Option<Duration>,
}

impl ReplayRequest {
    pub fn get(path: &str) -> ReplayRequest {
        ReplayRequest {
            method: "GET".to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            at: None,
        }
    }
}

/// The `n`th request of the built-in mix over `routes`.
pub fn mix_request(routes: &Routes, n: u64) -> ReplayRequest {
    let count = routes.len().max(1) as u64;
    let index = usize::try_from(n % count).unwrap_or(0);
    let id = (n / count) % 1000 + 1;
    let prefix = routes.prefix(index).unwrap_or("");
    ReplayRequest::get(&format!("{prefix}/{id}"))
}

/// Reads a traffic file (see the module docs for its format).
pub fn read_file(path: &Path) -> Result<Vec<ReplayRequest>, Error> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        file: name.clone(),
        source,
    })?;
    parse(&name, &text)
}

/// Parses traffic-file text; `name` is the file name errors give.
pub fn parse(name: &str, text: &str) -> Result<Vec<ReplayRequest>, Error> {
    let line_error = |line: usize, message: String| Error::Line {
        file: name.to_owned(),
        line,
        message,
    };
    // (line number, request, access-log start time in µs since the epoch)
    let mut parsed: Vec<(usize, ReplayRequest, Option<i64>)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let json_error = |what, source| Error::LineJson {
            file: name.to_owned(),
            line: number,
            what,
            source,
        };
        let value: Value = serde_json::from_str(line).map_err(|e| json_error("invalid JSON", e))?;
        let Value::Object(object) = value else {
            return Err(line_error(number, "expected a JSON object".to_owned()));
        };
        let (request, start) =
            if object.contains_key("start_time") || object.contains_key("response_code") {
                access_log_line(&object).map_err(|message| line_error(number, message))?
            } else {
                let request = request_line(object).map_err(|refusal| match refusal {
                    Refusal::Json(e) => json_error("not a request line", e),
                    Refusal::Rule(message) => line_error(number, message),
                })?;
                (request, None)
            };
        validate(&request).map_err(|message| line_error(number, message))?;
        parsed.push((number, request, start));
    }
    if parsed.is_empty() {
        return Err(Error::NoRequests {
            file: name.to_owned(),
        });
    }
    if let Some(earliest) = parsed.iter().filter_map(|(_, _, start)| *start).min() {
        for (_, request, start) in &mut parsed {
            if let Some(start) = *start {
                let micros = u64::try_from(start - earliest).unwrap_or(0);
                request.at = Some(Duration::from_micros(micros));
            }
        }
    }
    let with = parsed.iter().find(|(_, r, _)| r.at.is_some());
    let without = parsed.iter().find(|(_, r, _)| r.at.is_none());
    if let (Some((with, _, _)), Some((without, _, _))) = (with, without) {
        return Err(line_error(
            *without,
            format!("no time offset (at_ms or start_time), but line {with} has one: give every line one or none"),
        ));
    }
    let mut requests: Vec<ReplayRequest> = parsed.into_iter().map(|(_, r, _)| r).collect();
    requests.sort_by_key(|r| r.at);
    Ok(requests)
}

fn default_method() -> String {
    "GET".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestLine {
    #[serde(default = "default_method")]
    method: String,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    at_ms: Option<f64>,
}

/// Why a line is no request line: its JSON does not fit one (serde's error kept), or a
/// value breaks a rule.
enum Refusal {
    Json(serde_json::Error),
    Rule(String),
}

fn request_line(object: Map<String, Value>) -> Result<ReplayRequest, Refusal> {
    if !object.contains_key("path") {
        return Err(Refusal::Rule("not a request (no \"path\") nor an access-log line (no \"start_time\" or \"response_code\")".to_owned()));
    }
    let line: RequestLine = serde_json::from_value(Value::Object(object)).map_err(Refusal::Json)?;
    let at = match line.at_ms {
        None => None,
        Some(ms) if ms.is_finite() && ms >= 0.0 => Some(Duration::from_secs_f64(ms / 1000.0)),
        Some(ms) => {
            return Err(Refusal::Rule(format!(
                "at_ms: {ms} is not a non-negative number"
            )))
        }
    };
    Ok(ReplayRequest {
        method: line.method,
        path: line.path,
        headers: line.headers.into_iter().collect(),
        body: line.body.map(String::into_bytes).unwrap_or_default(),
        at,
    })
}

/// A field of an access-log line as text; Envoy logs a missing value as `"-"` or null.
fn log_field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    match object.get(key) {
        Some(Value::String(s)) if !s.is_empty() && s != "-" => Some(s.as_str()),
        _ => None,
    }
}

fn access_log_line(object: &Map<String, Value>) -> Result<(ReplayRequest, Option<i64>), String> {
    let path = log_field(object, "path").ok_or("access-log line without a \"path\"")?;
    let mut request = ReplayRequest::get(path);
    if let Some(method) = log_field(object, "method") {
        request.method = method.to_owned();
    }
    if let Some(authority) = log_field(object, "authority") {
        request
            .headers
            .push(("host".to_owned(), authority.to_owned()));
    }
    let start = match object.get("start_time") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(parse_rfc3339(text).ok_or_else(|| {
            format!("start_time: {text:?} is not an RFC 3339 time (like 2024-05-01T12:00:00.123Z)")
        })?),
        Some(other) => return Err(format!("start_time: expected a string, got {other}")),
    };
    Ok((request, start))
}

/// Rejects what would break the request on the wire (header injection, bad tokens).
fn validate(request: &ReplayRequest) -> Result<(), String> {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
    };
    if !token(&request.method) {
        return Err(format!(
            "method: {:?} is not an HTTP method",
            request.method
        ));
    }
    if !request.path.starts_with('/') || !request.path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "path: {:?} must start with / and have no spaces or control characters",
            request.path
        ));
    }
    for (name, value) in &request.headers {
        if !token(name) {
            return Err(format!("headers: {name:?} is not a header name"));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(format!("headers: {name}: value has a line break"));
        }
    }
    Ok(())
}

/// Microseconds since the Unix epoch of an RFC 3339 time
/// (`2024-05-01T12:00:00.123Z`, `2024-05-01T14:00:00+02:00`).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().try_fold(0i64, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
        })
    };
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut micros = 0i64;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            if at - start < 6 {
                micros = micros * 10 + i64::from(b[at] - b'0');
            }
            at += 1;
        }
        if at == start {
            return None;
        }
        for _ in (at - start)..6 {
            micros *= 10;
        }
    }
    let offset_minutes = match b.get(at)? {
        b'Z' | b'z' if at + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if at + 6 == b.len() && b[at + 3] == b':' => {
            let minutes = digits(at + 1, 2)? * 60 + digits(at + 4, 2)?;
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000_000 + micros)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (eras of 400 years).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A request of the run with its route, and its parsed parts once they are made
/// (one set per HTTP version, since HTTP/2 names the host in the URI).
#[derive(Debug)]
pub(crate) struct Prepared {
    pub request: ReplayRequest,
    pub route: usize,
    pub h1: OnceLock<Result<Template, ErrorKind>>,
    pub h2: OnceLock<Result<Template, ErrorKind>>,
}

impl Prepared {
    fn new(request: ReplayRequest, routes: &Routes) -> Arc<Prepared> {
        let route = routes.classify(&request.path);
        Arc::new(Prepared {
            request,
            route,
            h1: OnceLock::new(),
            h2: OnceLock::new(),
        })
    }
}

/// How many distinct requests the built-in mix cycles through (per route).
const MIX_IDS: u64 = 1000;

/// The resolved source: request `i` of the run, and when it is due if recorded.
pub(crate) enum Traffic {
    /// The mix's requests, one cycle of them.
    Mix { items: Vec<Arc<Prepared>> },
    List {
        items: Vec<(Arc<Prepared>, Option<Duration>)>,
        /// With recorded offsets: how far each pass over the file shifts the next.
        period: Option<Duration>,
    },
    /// Each request made when it falls due.
    Generated { make: Generator, routes: Routes },
}

impl Traffic {
    pub fn new(source: &Source, routes: &Routes) -> Result<Traffic, Error> {
        match source {
            Source::Mix => Ok(Traffic::Mix {
                items: (0..routes.len().max(1) as u64 * MIX_IDS)
                    .map(|n| Prepared::new(mix_request(routes, n), routes))
                    .collect(),
            }),
            Source::File(path) => Ok(Traffic::from_requests(&read_file(path)?, routes)),
            Source::Generated(make) => Ok(Traffic::Generated {
                make: make.clone(),
                routes: routes.clone(),
            }),
        }
    }

    pub fn from_requests(requests: &[ReplayRequest], routes: &Routes) -> Traffic {
        let items: Vec<_> = requests
            .iter()
            .map(|r| (Prepared::new(r.clone(), routes), r.at))
            .collect();
        // A pass lasts from the first offset to the last plus one average gap, so
        // cycling keeps the file's average rate.
        let offsets: Vec<Duration> = items.iter().filter_map(|(_, at)| *at).collect();
        let period = match (offsets.first(), offsets.last()) {
            (Some(&first), Some(&last)) if offsets.len() == items.len() => {
                let gaps = u32::try_from(offsets.len().saturating_sub(1)).unwrap_or(u32::MAX);
                let gap = if gaps == 0 {
                    Duration::ZERO
                } else {
                    (last - first) / gaps
                };
                Some((last + gap).max(Duration::from_millis(1)))
            }
            _ => None,
        };
        Traffic::List { items, period }
    }

    /// This shard's share ([`super::shard`]): every N-th request of a file, each
    /// keeping its offset, the pass keeping the whole file's period; the mix and
    /// generated requests whole.
    pub fn shard(self, shard: Shard) -> Result<Traffic, OptionsError> {
        match self {
            Traffic::List { items, period } if !shard.is_whole() => {
                let requests = items.len() as u64;
                let items = shard.pick(&items);
                if items.is_empty() {
                    return Err(OptionsError::ShardWithoutRequests { shard, requests });
                }
                Ok(Traffic::List { items, period })
            }
            whole => Ok(whole),
        }
    }

    /// Requests in one pass (`None` for the endless mix and generated requests).
    pub fn len(&self) -> Option<u64> {
        match self {
            Traffic::Mix { .. } | Traffic::Generated { .. } => None,
            Traffic::List { items, .. } => Some(items.len() as u64),
        }
    }

    /// Whether every request has a recorded time offset.
    pub fn has_offsets(&self) -> bool {
        matches!(
            self,
            Traffic::List {
                period: Some(_),
                ..
            }
        )
    }

    /// Request `i` of the run (files cycle).
    pub fn item(&self, i: u64) -> Arc<Prepared> {
        match self {
            Traffic::Mix { items } => {
                let index = usize::try_from(i % items.len().max(1) as u64).unwrap_or(0);
                Arc::clone(&items[index])
            }
            Traffic::List { items, .. } => {
                let index = usize::try_from(i % items.len().max(1) as u64).unwrap_or(0);
                Arc::clone(&items[index].0)
            }
            Traffic::Generated { make, routes } => Prepared::new(make.request(i), routes),
        }
    }

    /// When request `i` is due, from the start, if the file records offsets.
    pub fn offset(&self, i: u64) -> Option<Duration> {
        let Traffic::List {
            items,
            period: Some(period),
        } = self
        else {
            return None;
        };
        let n = items.len().max(1) as u64;
        let index = usize::try_from(i % n).unwrap_or(0);
        let pass = u32::try_from(i / n).unwrap_or(u32::MAX);
        Some(items[index].1? + period.saturating_mul(pass))
    }
}
