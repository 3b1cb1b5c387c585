//! The whole filter, its .wasm as Envoy runs it, driven through `c4mesh-host` with
//! arbitrary header maps, property values, body chunks, callback orders, clock jumps
//! and shared-data contents, on one or two workers. The property is 2.7's: the filter
//! never traps. A trap (a panic in the module ends in one), a callback past the host's
//! deadline or over its memory limit is a crash, and so is the host giving up on
//! callbacks that keep triggering each other.
//!
//! ## What libFuzzer sees
//!
//! The filter runs as compiled wasm, whose branches libFuzzer's coverage cannot see: it
//! sees the host's (which host functions the filter called, which way the driver took a
//! stream). To steer by what the filter did, each step's outcome (the status and route
//! the client got, the route and retries the upstream got, whether the stream paused,
//! the shape of each log line, the metrics that moved) is hashed into libFuzzer's extra
//! counters, one more feature per new outcome.
//!
//! ## The module
//!
//! `C4MESH_FILTER_WASM`, else `wasm32-wasip1/wasm/c4mesh_filter.wasm` under
//! `CARGO_TARGET_DIR` or the repository's `target/`: `scripts/fuzz.sh` builds it first
//! (`cargo build --profile wasm --target wasm32-wasip1 -p c4mesh-filter`).
#![no_main]

use c4mesh_filter_core::config::SIDECAR_CONFIG_JSON;
use c4mesh_filter_core::DEFAULT_CONFIG_JSON;
use c4mesh_fuzz::MESH_PREFIXES;
use c4mesh_host::{Error, HeaderMap, LogRecord, Proxy, StreamId, Value};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Steps per input, streams per input and headers per map: enough for interleavings
/// and for maps past Envoy's default limit of 100, bounded so an input stays fast.
const MAX_STEPS: usize = 96;
const MAX_STREAMS: usize = 32;
const MAX_HEADERS: usize = 1024;
/// Bytes per header map: Envoy's default limit is 60 KiB, configurable to 8 MiB.
const MAX_HEADER_BYTES: usize = 1 << 20;
/// The latest the clock jumps to: Envoy's clock is i64 nanoseconds (year 2262).
const LATEST_NANOS: u64 = i64::MAX as u64;

#[derive(Debug, Arbitrary)]
struct Input {
    config: Config,
    two_workers: bool,
    steps: Vec<Step>,
}

#[derive(Debug, Arbitrary)]
enum Config {
    Gateway,
    Sidecar,
    DebugHeaders,
    /// Signals that trip at once: one 5xx ejects a host, debug headers show it.
    Tripwire,
    Bytes(Vec<u8>),
}

impl Config {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Config::Gateway => DEFAULT_CONFIG_JSON.into(),
            Config::Sidecar => SIDECAR_CONFIG_JSON.into(),
            Config::DebugHeaders => br#"{"debug_headers": true}"#.to_vec(),
            Config::Tripwire => br#"{"debug_headers": true, "retry_budget": {"ratio": 0.01, "min_retries_per_second": 1, "window": "1s"}, "outlier": {"consecutive_5xx": 1, "base_ejection": "1s", "max_ejection": "2s"}}"#.to_vec(),
            Config::Bytes(bytes) => bytes.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Pick {
    /// A new stream, on the first or the second worker.
    New(bool),
    Existing(u8),
}

#[derive(Debug, Arbitrary)]
enum Step {
    /// A request with its pseudo-headers (some dropped or repeated) and more headers.
    Request {
        stream: Pick,
        method: u8,
        path: PathValue,
        authority: u8,
        /// Bit 0..3: drop :method, :path, :authority, :scheme; bit 4..7: repeat them.
        mangle: u8,
        more: Vec<Entry>,
        end: bool,
    },
    /// Request headers exactly as given, pseudo-headers or not.
    RawRequest {
        stream: Pick,
        headers: Vec<Entry>,
        end: bool,
    },
    RequestBody {
        stream: u8,
        chunk: Vec<u8>,
        end: bool,
    },
    RequestTrailers {
        stream: u8,
        trailers: Vec<Entry>,
    },
    Property {
        stream: u8,
        property: Property,
    },
    ResponseHeaders {
        stream: u8,
        status: Status,
        more: Vec<Entry>,
        end: bool,
    },
    ResponseBody {
        stream: u8,
        chunk: Vec<u8>,
        end: bool,
    },
    ResponseTrailers {
        stream: u8,
        trailers: Vec<Entry>,
    },
    Reset {
        stream: u8,
    },
    /// Time moves on, firing ticks on the way (at most about two minutes' worth).
    Advance {
        millis: u16,
        seconds: u8,
    },
    Jump(Jump),
    SharedData {
        key: u8,
        value: Vec<u8>,
    },
    Reconfigure(Config),
}

impl Step {
    /// Which kind of step, for the outcome counters.
    fn kind(&self) -> u8 {
        match self {
            Step::Request { .. } => 0,
            Step::RawRequest { .. } => 1,
            Step::RequestBody { .. } => 2,
            Step::RequestTrailers { .. } => 3,
            Step::Property { .. } => 4,
            Step::ResponseHeaders { .. } => 5,
            Step::ResponseBody { .. } => 6,
            Step::ResponseTrailers { .. } => 7,
            Step::Reset { .. } => 8,
            Step::Advance { .. } => 9,
            Step::Jump(_) => 10,
            Step::SharedData { .. } => 11,
            Step::Reconfigure(_) => 12,
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Jump {
    Back { millis: u32 },
    Forward { seconds: u32 },
    To(u64),
}

#[derive(Debug, Arbitrary)]
enum PathValue {
    Route { route: u8, tail: Vec<u8> },
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Property {
    Address(Text),
    AttemptCount(Number),
}

#[derive(Debug, Arbitrary)]
enum Text {
    /// One of many distinct hosts, as a mesh with churning pods has.
    Host(u16),
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Number {
    /// 8 bytes little-endian, as Envoy encodes an integer.
    Int(u64),
    /// Any bytes: wrong lengths, not a number.
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Status {
    Common(u8),
    Code(u16),
    Raw(Vec<u8>),
    Missing,
}

#[derive(Debug, Arbitrary)]
enum Entry {
    One(Name, HeaderValue),
    /// The same header many times over.
    Many(Name, HeaderValue, u16),
}

#[derive(Debug, Arbitrary)]
enum Name {
    Known(u8),
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum HeaderValue {
    Raw(Vec<u8>),
    Number(u64),
    /// One byte repeated: a long value from a short input.
    Long(u8, u16),
    Path(PathValue),
}

const NAMES: &[&str] = &[
    ":method",
    ":path",
    ":authority",
    ":scheme",
    ":status",
    "host",
    "content-length",
    "x-c4-route",
    "x-c4-circuit",
    "x-envoy-max-retries",
    "x-envoy-retry-on",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-attempt-count",
    "x-request-id",
    "X-C4-Route",
];
const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "get", "",
];
const AUTHORITIES: &[&str] = &[
    "api.c4ang.com",
    "api.c4ang.com:443",
    "API.C4ANG.COM",
    "other.example",
    "order-service",
    "payment-service.ecommerce",
    "product-service.ecommerce.svc.cluster.local:8080",
    "saga-tracker.shop",
    "",
];
const STATUSES: &[&str] = &["200", "204", "404", "429", "500", "502", "503", "504"];

fn pick<'a>(words: &[&'a str], i: u8) -> &'a str {
    words[usize::from(i) % words.len()]
}

impl PathValue {
    fn bytes(&self) -> Vec<u8> {
        match self {
            PathValue::Route { route, tail } => {
                let mut path = pick(MESH_PREFIXES, *route).as_bytes().to_vec();
                path.extend_from_slice(tail);
                path
            }
            PathValue::Raw(bytes) => bytes.clone(),
        }
    }
}

impl Name {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Name::Known(i) => pick(NAMES, *i).into(),
            Name::Raw(bytes) => bytes.clone(),
        }
    }
}

impl HeaderValue {
    fn bytes(&self) -> Vec<u8> {
        match self {
            HeaderValue::Raw(bytes) => bytes.clone(),
            HeaderValue::Number(n) => n.to_string().into_bytes(),
            HeaderValue::Long(byte, len) => vec![*byte; usize::from(*len)],
            HeaderValue::Path(path) => path.bytes(),
        }
    }
}

fn add_entries(map: &mut HeaderMap, entries: &[Entry]) {
    let mut bytes: usize = map.iter().map(|(n, v)| n.len() + v.len()).sum();
    for entry in entries {
        let (name, value, count) = match entry {
            Entry::One(name, value) => (name, value, 1),
            Entry::Many(name, value, count) => (name, value, usize::from(*count)),
        };
        let (name, value) = (name.bytes(), value.bytes());
        for _ in 0..count {
            bytes += name.len() + value.len();
            if map.len() >= MAX_HEADERS || bytes > MAX_HEADER_BYTES {
                return;
            }
            map.add(&name, &value);
        }
    }
}

/// The filter's .wasm, read once.
fn module() -> &'static [u8] {
    static MODULE: OnceLock<Vec<u8>> = OnceLock::new();
    MODULE.get_or_init(|| {
        let path = std::env::var_os("C4MESH_FILTER_WASM")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
                std::env::var_os("CARGO_TARGET_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| root.join("target"))
                    .join("wasm32-wasip1/wasm/c4mesh_filter.wasm")
            });
        std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "the filter module {} is missing ({e}): build it with `cargo build --profile \
                 wasm --target wasm32-wasip1 -p c4mesh-filter` or set C4MESH_FILTER_WASM",
                path.display()
            )
        })
    })
}

// === Outcomes as extra counters ===

const COUNTERS: usize = 1 << 12;

/// libFuzzer reads (and clears) this section after every run, as coverage counters.
#[used]
#[link_section = "__libfuzzer_extra_counters"]
static EXTRA: [AtomicU8; COUNTERS] = [const { AtomicU8::new(0) }; COUNTERS];

/// Marks an outcome as seen. Only whether, not how often: a counter's count would make
/// every repetition a feature of its own, and the corpus many times larger.
fn count(feature: impl Hash) {
    let mut hasher = DefaultHasher::new();
    feature.hash(&mut hasher);
    EXTRA[(hasher.finish() % COUNTERS as u64) as usize].store(1, Ordering::Relaxed);
}

/// A log line without its values: `outlier route=orders host=10.0.0.7:80` is
/// `outlier route= host=`, so that distinct hosts are not distinct outcomes, and
/// only its first words, where a refused configuration names the field.
fn shape(record: &LogRecord) -> String {
    let words = record
        .message
        .split(' ')
        .take(6)
        .map(|w| match w.find('=') {
            Some(at) => &w[..=at],
            None if w.bytes().any(|b| b.is_ascii_digit()) => "#",
            None => w,
        });
    words.collect::<Vec<_>>().join(" ")
}

/// The filter's own label in a response header (the last value: the filter adds its
/// after the upstream's), if it is one of its words and not something the upstream sent.
fn label<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    let value = *headers.get_all(name).last()?;
    let word = value.len() <= 16 && value.iter().all(|b| b.is_ascii_lowercase() || *b == b'_');
    word.then_some(value)
}

fn observe(proxy: &Proxy, step: u8, stream: Option<StreamId>) {
    for record in proxy.take_logs() {
        count((step, record.level as u8, shape(&record)));
    }
    let Some(view) = stream.and_then(|id| proxy.stream(id)) else {
        return;
    };
    let upstream = view.upstream_headers();
    let response = view.response();
    count((
        step,
        // The class, not the code: any u16 is a status here, and each its own outcome
        // would swamp the rest.
        view.status()
            .map(|s| if (100..600).contains(&s) { s / 100 } else { 0 }),
        view.local_reply().map(|r| r.status),
        view.request_paused(),
        view.response_paused(),
        view.reset(),
        view.finished(),
        upstream.and_then(|h| h.get_str("x-c4-route").map(str::to_owned)),
        upstream.and_then(|h| h.get_str("x-envoy-max-retries").map(str::to_owned)),
        response
            .as_ref()
            .and_then(|r| label(&r.headers, "x-c4-route")),
        response
            .as_ref()
            .and_then(|r| label(&r.headers, "x-c4-circuit")),
    ));
}

fn observe_metrics(proxy: &Proxy) {
    for (name, value) in proxy.metrics() {
        count((name, 64 - value.value().leading_zeros()));
    }
}

// === Driving ===

struct Run {
    proxy: Proxy,
    streams: Vec<StreamId>,
}

impl Run {
    fn stream(&self, i: u8) -> Option<StreamId> {
        (!self.streams.is_empty()).then(|| self.streams[usize::from(i) % self.streams.len()])
    }

    fn open(&mut self, pick: &Pick) -> Option<StreamId> {
        match pick {
            Pick::New(second) if self.streams.len() < MAX_STREAMS => {
                let worker = usize::from(*second) % self.proxy.workers();
                let id = self.proxy.open_stream(worker).ok()?;
                self.streams.push(id);
                Some(id)
            }
            Pick::New(_) => None,
            Pick::Existing(i) => self.stream(*i),
        }
    }

    /// One step; the stream it touched, if any.
    fn step(&mut self, step: &Step) -> (Result<(), Error>, Option<StreamId>) {
        let proxy = &mut self.proxy;
        match step {
            Step::Request {
                stream,
                method,
                path,
                authority,
                mangle,
                more,
                end,
            } => {
                let Some(id) = self.open(stream) else {
                    return (Ok(()), None);
                };
                let pseudo = [
                    (":method", pick(METHODS, *method).as_bytes().to_vec()),
                    (":path", path.bytes()),
                    (
                        ":authority",
                        pick(AUTHORITIES, *authority).as_bytes().to_vec(),
                    ),
                    (":scheme", b"https".to_vec()),
                ];
                let mut headers = HeaderMap::new();
                for (bit, (name, value)) in pseudo.iter().enumerate() {
                    let dropped = mangle & (1 << bit) != 0;
                    let repeated = mangle & (1 << (bit + 4)) != 0;
                    let copies = if dropped {
                        0
                    } else if repeated {
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        headers.add(name, value);
                    }
                }
                add_entries(&mut headers, more);
                (self.proxy.request_headers(id, headers, *end), Some(id))
            }
            Step::RawRequest {
                stream,
                headers,
                end,
            } => {
                let Some(id) = self.open(stream) else {
                    return (Ok(()), None);
                };
                let mut map = HeaderMap::new();
                add_entries(&mut map, headers);
                (self.proxy.request_headers(id, map, *end), Some(id))
            }
            Step::RequestBody { stream, chunk, end } => {
                self.on(*stream, |p, id| p.request_body(id, chunk, *end))
            }
            Step::RequestTrailers { stream, trailers } => self.on(*stream, |p, id| {
                let mut map = HeaderMap::new();
                add_entries(&mut map, trailers);
                p.request_trailers(id, map)
            }),
            Step::Property { stream, property } => self.on(*stream, |p, id| {
                let (path, value) = match property {
                    Property::Address(Text::Host(n)) => (
                        "upstream.address",
                        Value::String(format!("10.{}.{}.1:8080", n >> 8, n & 0xff)),
                    ),
                    Property::Address(Text::Raw(bytes)) => {
                        ("upstream.address", Value::Bytes(bytes.clone()))
                    }
                    Property::AttemptCount(Number::Int(n)) => {
                        ("upstream.request_attempt_count", Value::Uint(*n))
                    }
                    Property::AttemptCount(Number::Raw(bytes)) => (
                        "upstream.request_attempt_count",
                        Value::Bytes(bytes.clone()),
                    ),
                };
                p.set_stream_property(id, path, value)
            }),
            Step::ResponseHeaders {
                stream,
                status,
                more,
                end,
            } => self.on(*stream, |p, id| {
                let mut map = HeaderMap::new();
                match status {
                    Status::Common(i) => map.add(":status", pick(STATUSES, *i)),
                    Status::Code(code) => map.add(":status", code.to_string()),
                    Status::Raw(bytes) => map.add(":status", bytes),
                    Status::Missing => {}
                }
                add_entries(&mut map, more);
                p.response_headers(id, map, *end)
            }),
            Step::ResponseBody { stream, chunk, end } => {
                self.on(*stream, |p, id| p.response_body(id, chunk, *end))
            }
            Step::ResponseTrailers { stream, trailers } => self.on(*stream, |p, id| {
                let mut map = HeaderMap::new();
                add_entries(&mut map, trailers);
                p.response_trailers(id, map)
            }),
            Step::Reset { stream } => self.on(*stream, |p, id| p.reset(id)),
            Step::Advance { millis, seconds } => {
                let by =
                    Duration::from_millis(u64::from(*millis) + 1000 * u64::from(*seconds % 64));
                (proxy.advance(by), None)
            }
            Step::Jump(jump) => {
                let now = proxy.now_nanos();
                let to = match jump {
                    Jump::Back { millis } => now.saturating_sub(u64::from(*millis) * 1_000_000),
                    Jump::Forward { seconds } => {
                        now.saturating_add(u64::from(*seconds) * 1_000_000_000)
                    }
                    Jump::To(nanos) => *nanos,
                };
                proxy.clock().jump_to(to.min(LATEST_NANOS));
                (proxy.run_due(), None)
            }
            Step::SharedData { key, value } => {
                let mut keys = proxy.shared_data_keys();
                keys.sort();
                if let Some(key) = keys.get(usize::from(*key) % keys.len().max(1)) {
                    proxy.set_shared_data(key, value, 0);
                }
                (Ok(()), None)
            }
            Step::Reconfigure(config) => (proxy.reconfigure(config.bytes()).map(|_| ()), None),
        }
    }

    fn on(
        &mut self,
        stream: u8,
        drive: impl FnOnce(&mut Proxy, StreamId) -> Result<(), Error>,
    ) -> (Result<(), Error>, Option<StreamId>) {
        match self.stream(stream) {
            Some(id) => (drive(&mut self.proxy, id), Some(id)),
            None => (Ok(()), None),
        }
    }

    /// Panics (the crash libFuzzer reports) if the filter faulted or the host gave up.
    fn check(&self, step: &dyn std::fmt::Debug, result: &Result<(), Error>) {
        if let Err(
            error @ (Error::Unsettled { .. }
            | Error::TimersKeptFiring { .. }
            | Error::EpochThread(_)
            | Error::Link(_)
            | Error::Fuel(_)),
        ) = result
        {
            panic!("the host gave up after {step:?}: {error}");
        }
        if let Some(fault) = self.proxy.faults().first() {
            panic!(
                "the filter faulted after {step:?}: {fault}\nlogs: {:#?}",
                self.proxy.logs()
            );
        }
    }
}

fuzz_target!(|input: Input| {
    let proxy = Proxy::builder()
        .wasm_bytes(module())
        .config(input.config.bytes())
        .workers(if input.two_workers { 2 } else { 1 })
        .start();
    let proxy =
        proxy.unwrap_or_else(|e| panic!("the filter did not start with {:?}: {e}", input.config));
    let mut run = Run {
        proxy,
        streams: Vec::new(),
    };
    run.check(&input.config, &Ok(()));
    observe(&run.proxy, u8::MAX, None);
    for step in input.steps.iter().take(MAX_STEPS) {
        let (result, stream) = run.step(step);
        run.check(step, &result);
        observe(&run.proxy, step.kind(), stream);
        if matches!(step, Step::Advance { .. } | Step::Jump(_)) {
            observe_metrics(&run.proxy);
        }
    }
    // Every stream ends, so that `on_log` runs for each, and a tick flushes the counts.
    for id in run.streams.clone() {
        let result = run.proxy.reset(id);
        run.check(&"the final resets", &result);
    }
    let result = run.proxy.advance(Duration::from_secs(1));
    run.check(&"the final tick", &result);
    observe_metrics(&run.proxy);
});
