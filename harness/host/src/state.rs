//! What one worker VM's host functions see: the `T` of its `Store<T>`.
//!
//! Envoy gives each worker thread its own VM; each VM has one root context and a
//! context per HTTP stream, and every host call acts on "the current context" (or the
//! one set with `proxy_set_effective_context`). [`HostState`] holds exactly that: the
//! VM's contexts and the stream data behind them, plus a handle on what the workers of
//! one proxy share (shared data, queues, metrics, logs, the clock).
//!
//! ## Which maps a callback may touch
//!
//! Envoy hands a filter pointers to the live header maps and bodies only while it may
//! change them: request headers from `on_http_request_headers` until the request goes
//! on (the callback returns Continue, or `proxy_continue_stream`), and so on. Outside
//! that window a read of the map answers `BadArgument` (a whole-map read answers an
//! empty map) and a write answers `BadArgument`. [`Live`] keeps those windows, and
//! `on_log` sees the final maps read-only, as Envoy's access-log view.

use crate::abi::metrics::Metrics;
use crate::abi::shared_data::SharedData;
use crate::abi::shared_queues::SharedQueues;
use crate::clock::Clock;
use crate::http::{HeaderMap, LocalReply, Response};
use crate::properties::{Node, Properties};
use crate::LogLevel;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use wasmtime::{Memory, ResourceLimiter, TypedFunc};

/// The plugin as configured: names and configurations, the same for every worker.
#[derive(Debug, Clone)]
pub struct Plugin {
    pub name: String,
    pub root_id: String,
    pub vm_id: String,
    pub vm_configuration: Vec<u8>,
    pub configuration: Vec<u8>,
    pub node: Node,
    /// Environment variables the VM sees through WASI.
    pub env: Vec<(String, String)>,
}

/// One line a module logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub worker: usize,
    pub level: LogLevel,
    pub message: String,
}

/// What the workers of one proxy share, as the threads of one Envoy process do.
pub(crate) struct ProxyShared {
    pub clock: Clock,
    pub log_level: LogLevel,
    pub logs: Mutex<Vec<LogRecord>>,
    pub shared_data: Mutex<SharedData>,
    pub queues: Mutex<SharedQueues>,
    pub metrics: Mutex<Metrics>,
    /// Clusters a callout may name.
    pub clusters: HashSet<String>,
    /// `upstream.address` of a stream that reached the upstream and set none.
    pub upstream_address: String,
}

/// A map keyed by ids the host hands out (context ids, stream ids): hashed with one
/// multiplication instead of SipHash, since no one chooses these keys to collide.
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// The hasher of [`IdMap`] (Fx-style: rotate, xor, multiply per word).
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// Locks a mutex, going on with the data if a panicking holder poisoned it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Windows in which the filter may touch a stream's live maps and bodies.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Live {
    pub request_headers: bool,
    pub request_body: bool,
    pub request_trailers: bool,
    pub response_headers: bool,
    pub response_body: bool,
    pub response_trailers: bool,
}

/// Where one direction of a stream is in the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Phase {
    /// Headers not seen yet.
    #[default]
    Idle,
    /// The filter paused the headers: everything after them waits.
    HeadersPaused,
    /// Headers went on; body chunks pass through the filter.
    Flowing,
    /// The filter paused a body chunk and buffers the body.
    Buffering,
    /// The filter paused the trailers.
    TrailersPaused,
    /// Everything went on, end of stream included.
    Done,
}

/// One direction (request or response) of a stream: the message as the filter sees
/// it and what has gone past the filter.
#[derive(Debug, Clone, Default)]
pub(crate) struct Direction {
    pub phase: Phase,
    pub headers: HeaderMap,
    /// The body chunk the filter sees now (the buffered body while buffering).
    pub body: Vec<u8>,
    pub trailers: Option<HeaderMap>,
    /// Whether the end of stream has arrived from the sender.
    pub end_received: bool,
    /// The end of stream came with the headers.
    pub headers_end: bool,
    /// Data that arrived while the filter held the headers (Envoy's stop-all).
    pub held_body: Vec<u8>,
    pub held_trailers: Option<HeaderMap>,
    /// What went past the filter, toward the upstream or the client.
    pub sent_headers: Option<HeaderMap>,
    pub sent_body: Vec<u8>,
    pub sent_trailers: Option<HeaderMap>,
    pub sent_end: bool,
}

/// The host side of one HTTP stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stream {
    /// `proxy_on_context_create` has run.
    pub created: bool,
    pub request: Direction,
    pub response: Direction,
    pub live: Live,
    /// During `on_log`: the final maps, read-only.
    pub in_log: bool,
    pub properties: Properties,
    /// Values written with `proxy_set_property`, by raw path.
    pub filter_state: HashMap<Vec<u8>, Vec<u8>>,
    /// When the stream started (proxy clock).
    pub started_nanos: u64,
    /// Whether the request reached the upstream.
    pub upstream_reached: bool,
    /// The local reply the filter sent, if any.
    pub local_reply: Option<LocalReply>,
    /// `response.code_details`.
    pub details: Option<String>,
    /// The stream was reset (by the filter or the client).
    pub reset: bool,
    /// `on_log`, `on_done` and `on_delete` have run.
    pub finished: bool,
    /// The upstream's answer, waiting for the request to reach the upstream.
    pub upstream_response: Option<Response>,
}

/// An effect a callback asked for, applied when the callback returns (Envoy defers
/// them the same way: the stream may not re-enter the VM from inside a host call).
#[derive(Debug, Clone)]
pub(crate) enum Deferred {
    Continue { context: u32, response: bool },
    LocalReply { context: u32, reply: LocalReply },
    Reset { context: u32 },
}

/// The HTTP callout response being delivered (`on_http_call_response`).
#[derive(Debug, Clone)]
pub(crate) struct CalloutView {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: HeaderMap,
}

/// A callout waiting for its answer.
#[derive(Debug, Clone)]
pub(crate) struct PendingCall {
    pub call: crate::http::HttpCall,
    /// When it times out (proxy clock), if it has a timeout.
    pub deadline: Option<u64>,
    pub answer: Option<crate::http::CallOutcome>,
}

/// The tick of the root context.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tick {
    pub period_ms: u32,
    pub next_at: Option<u64>,
}

/// Metric ids of one VM (Envoy numbers them per VM: the low two bits are the type).
#[derive(Debug, Clone)]
pub(crate) struct MetricIds {
    pub next: [u32; 3],
    pub names: HashMap<u32, String>,
}

impl Default for MetricIds {
    fn default() -> MetricIds {
        MetricIds {
            next: [0, 1, 2],
            names: HashMap::new(),
        }
    }
}

/// Guest memory limit; records whether the guest hit it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MemoryLimit {
    pub max_bytes: usize,
    pub hit: bool,
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// The `T` of a worker's `Store<T>`.
pub struct HostState {
    pub(crate) plugin: Arc<Plugin>,
    pub(crate) shared: Arc<ProxyShared>,
    pub(crate) worker: usize,
    pub(crate) memory: Option<Memory>,
    /// The guest's allocator (`proxy_on_memory_allocate`). Shared, because a host call
    /// holds it while it calls the guest with the store: cloning a `TypedFunc` clones
    /// its registered type, which cost about 120 instructions per allocation.
    pub(crate) alloc: Option<Arc<TypedFunc<u32, u32>>>,
    /// The context of the callback in progress.
    pub(crate) current: u32,
    pub(crate) effective: Option<u32>,
    pub(crate) root_id: u32,
    pub(crate) next_context_id: u32,
    pub(crate) streams: IdMap<u32, Stream>,
    /// `on_configure` is running: the plugin configuration is readable.
    pub(crate) configuring: bool,
    pub(crate) callout: Option<CalloutView>,
    /// What `proxy_get_status` answers.
    pub(crate) status: (u32, Vec<u8>),
    pub(crate) tick: Tick,
    pub(crate) next_call_token: u32,
    pub(crate) calls: Vec<PendingCall>,
    pub(crate) metric_ids: MetricIds,
    pub(crate) deferred: Vec<Deferred>,
    /// `proxy_send_local_response` ran: the callback's result counts as Pause.
    pub(crate) stop_iteration: bool,
    pub(crate) limit: MemoryLimit,
    pub(crate) rng: u64,
}

impl HostState {
    pub(crate) fn new(
        plugin: Arc<Plugin>,
        shared: Arc<ProxyShared>,
        worker: usize,
        max_memory: usize,
        seed: u64,
    ) -> HostState {
        HostState {
            plugin,
            shared,
            worker,
            memory: None,
            alloc: None,
            current: 0,
            effective: None,
            root_id: 1,
            next_context_id: 2,
            streams: IdMap::default(),
            configuring: false,
            callout: None,
            status: (0, Vec::new()),
            tick: Tick::default(),
            next_call_token: 1,
            calls: Vec::new(),
            metric_ids: MetricIds::default(),
            deferred: Vec::new(),
            stop_iteration: false,
            limit: MemoryLimit {
                max_bytes: max_memory,
                hit: false,
            },
            rng: seed ^ 0x9E37_79B9_7F4A_7C15 ^ (worker as u64).wrapping_mul(0xD1B5_4A32_D192_ED03),
        }
    }

    /// The context host calls act on: the effective one if set, else the current one.
    pub(crate) fn context(&self) -> u32 {
        self.effective.unwrap_or(self.current)
    }

    /// The stream of the acting context, if it is a stream context.
    pub(crate) fn stream(&self) -> Option<&Stream> {
        self.streams.get(&self.context())
    }

    pub(crate) fn stream_mut(&mut self) -> Option<&mut Stream> {
        let id = self.context();
        self.streams.get_mut(&id)
    }

    pub(crate) fn is_context(&self, id: u32) -> bool {
        id == self.root_id || self.streams.contains_key(&id)
    }

    /// The next pseudo-random number (splitmix64), for WASI `random_get`.
    pub(crate) fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn log(&self, level: LogLevel, message: String) {
        if level >= self.shared.log_level {
            lock(&self.shared.logs).push(LogRecord {
                worker: self.worker,
                level,
                message,
            });
        }
    }
}
