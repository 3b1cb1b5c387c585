//! A proxy: one module, its plugin configuration, and N worker VMs sharing data,
//! queues, metrics and a clock, as one Envoy process with N worker threads.
//!
//! This is the API tests use. Build a proxy with [`Proxy::builder`], then either send
//! whole requests ([`Proxy::send`], answered by the proxy's upstream) or drive a
//! stream step by step ([`Proxy::open_stream`], [`Proxy::request_headers`], ...) and
//! look at it ([`Proxy::stream`]): what reached the upstream, what the client got,
//! whether the filter paused. Logs, metrics, shared data, HTTP callouts and faults are
//! readable at any point, and virtual time moves only through [`Proxy::advance`].

use crate::abi::metrics::{MetricValue, Metrics};
use crate::abi::shared_data::SharedData;
use crate::abi::shared_queues::SharedQueues;
use crate::clock::Clock;
use crate::error::Error;
use crate::http::{CallOutcome, DownstreamRequest, HeaderMap, HttpCall, LocalReply, Response};
use crate::properties::{Node, Value};
use crate::state::{lock, HostState, IdMap, LogRecord, Plugin, ProxyShared, Stream};
use crate::vm::{self, check_abi, new_state, GuestFault, Limits, WorkerVm};
use crate::LogLevel;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use wasmtime::{Engine, Linker, Module, Store};

/// How many finished streams stay readable ([`Proxy::stream`], [`Proxy::exchange`]):
/// the most recent ones, so a long run keeps its memory flat.
pub const FINISHED_KEPT: usize = 16_384;

/// What happens to a worker whose VM faulted, as Envoy's `failure_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// The VM stays failed; its streams get a local 503 (Envoy's default).
    #[default]
    FailClosed,
    /// The VM stays failed; its streams pass as if the filter were not there.
    FailOpen,
    /// The stream that saw the fault gets a 503; the next stream on the worker gets a
    /// fresh VM.
    Reload,
}

/// A stream: its worker and its context id in that worker's VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    pub worker: usize,
    pub context: u32,
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "worker {} context {}", self.worker, self.context)
    }
}

/// The request as it reached the upstream.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    pub stream: StreamId,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<HeaderMap>,
}

impl UpstreamRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get_str(name)
    }
}

type Upstream = Box<dyn FnMut(&UpstreamRequest) -> Response + Send>;
type CallHandler = Box<dyn FnMut(&HttpCall) -> CallOutcome + Send>;

/// Builds a [`Proxy`].
pub struct ProxyBuilder {
    wasm: Option<Result<Vec<u8>, Error>>,
    plugin: Plugin,
    workers: usize,
    clock: Clock,
    log_level: LogLevel,
    limits: Limits,
    policy: FailurePolicy,
    clusters: HashSet<String>,
    seed: u64,
    upstream: Option<Upstream>,
    http_calls: Option<CallHandler>,
    upstream_address: String,
}

impl ProxyBuilder {
    /// The module, from a file.
    pub fn wasm_file(mut self, path: impl AsRef<Path>) -> ProxyBuilder {
        let path = path.as_ref();
        self.wasm = Some(std::fs::read(path).map_err(|source| Error::Read {
            path: path.display().to_string(),
            source,
        }));
        self
    }

    /// The module, as bytes.
    pub fn wasm_bytes(mut self, bytes: impl Into<Vec<u8>>) -> ProxyBuilder {
        self.wasm = Some(Ok(bytes.into()));
        self
    }

    /// The plugin configuration (`proxy_on_configure`).
    pub fn config(mut self, config: impl AsRef<[u8]>) -> ProxyBuilder {
        self.plugin.configuration = config.as_ref().to_vec();
        self
    }

    /// The VM configuration (`proxy_on_vm_start`).
    pub fn vm_config(mut self, config: impl AsRef<[u8]>) -> ProxyBuilder {
        self.plugin.vm_configuration = config.as_ref().to_vec();
        self
    }

    /// WorkerVm VMs (default 1).
    pub fn workers(mut self, workers: usize) -> ProxyBuilder {
        self.workers = workers;
        self
    }

    /// The plugin's name, the property `plugin_name` (Envoy's `config.name`; default
    /// `c4mesh`).
    pub fn name(mut self, name: &str) -> ProxyBuilder {
        self.plugin.name = name.to_owned();
        self
    }

    /// The plugin's root id, the property `plugin_root_id` (default empty).
    pub fn root_id(mut self, root_id: &str) -> ProxyBuilder {
        self.plugin.root_id = root_id.to_owned();
        self
    }

    /// The VM id, the property `plugin_vm_id` and the namespace of shared data and
    /// queues (default `c4mesh`).
    pub fn vm_id(mut self, vm_id: &str) -> ProxyBuilder {
        self.plugin.vm_id = vm_id.to_owned();
        self
    }

    pub fn node(mut self, id: &str, cluster: &str) -> ProxyBuilder {
        self.plugin.node = Node {
            id: id.to_owned(),
            cluster: cluster.to_owned(),
        };
        self
    }

    /// An environment variable the VM sees.
    pub fn env(mut self, key: &str, value: &str) -> ProxyBuilder {
        self.plugin.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The clock (default: virtual time).
    pub fn clock(mut self, clock: Clock) -> ProxyBuilder {
        self.clock = clock;
        self
    }

    /// The lowest level logged (default info, as Envoy's `wasm` logger).
    pub fn log_level(mut self, level: LogLevel) -> ProxyBuilder {
        self.log_level = level;
        self
    }

    pub fn limits(mut self, limits: Limits) -> ProxyBuilder {
        self.limits = limits;
        self
    }

    pub fn failure_policy(mut self, policy: FailurePolicy) -> ProxyBuilder {
        self.policy = policy;
        self
    }

    /// Clusters the proxy has, which `proxy_http_call` may name. As in Envoy, a call to
    /// any other cluster answers `BadArgument` and never calls back; a proxy starts
    /// with no clusters.
    pub fn clusters<S: Into<String>>(
        mut self,
        clusters: impl IntoIterator<Item = S>,
    ) -> ProxyBuilder {
        self.clusters.extend(clusters.into_iter().map(Into::into));
        self
    }

    /// One cluster the proxy has (see [`ProxyBuilder::clusters`]).
    pub fn cluster(self, name: &str) -> ProxyBuilder {
        self.clusters([name])
    }

    /// Seed of WASI `random_get`.
    pub fn seed(mut self, seed: u64) -> ProxyBuilder {
        self.seed = seed;
        self
    }

    /// Answers requests that reach the upstream. Without one, the test answers with
    /// [`Proxy::response_headers`] and friends.
    pub fn upstream(
        mut self,
        upstream: impl FnMut(&UpstreamRequest) -> Response + Send + 'static,
    ) -> ProxyBuilder {
        self.upstream = Some(Box::new(upstream));
        self
    }

    /// Answers HTTP callouts. Without one, callouts stay pending until
    /// [`Proxy::resolve_http_call`] or their timeout.
    pub fn http_calls(
        mut self,
        handler: impl FnMut(&HttpCall) -> CallOutcome + Send + 'static,
    ) -> ProxyBuilder {
        self.http_calls = Some(Box::new(handler));
        self
    }

    /// `upstream.address` of requests that reach the upstream (default
    /// `127.0.0.1:8080`), unless the stream sets its own.
    pub fn upstream_address(mut self, address: &str) -> ProxyBuilder {
        self.upstream_address = address.to_owned();
        self
    }

    /// Compiles the module, starts the workers and configures them.
    pub fn start(self) -> Result<Proxy, Error> {
        Proxy::start(self)
    }
}

/// One module running in N worker VMs.
pub struct Proxy {
    pub(crate) engine: Engine,
    pub(crate) module: Module,
    pub(crate) linker: Linker<HostState>,
    pub(crate) plugin: Arc<Plugin>,
    pub(crate) shared: Arc<ProxyShared>,
    pub(crate) workers: Vec<WorkerVm>,
    pub(crate) limits: Limits,
    pub(crate) policy: FailurePolicy,
    pub(crate) seed: u64,
    pub(crate) upstream: Option<Upstream>,
    pub(crate) http_calls: Option<CallHandler>,
    pub(crate) faults: Vec<GuestFault>,
    pub(crate) configured: Vec<bool>,
    pub(crate) finished: IdMap<StreamId, Stream>,
    /// Finished streams, oldest first.
    pub(crate) finished_order: VecDeque<StreamId>,
    pub(crate) unimplemented: Vec<String>,
}

/// Compiled modules, by content and engine: tests start many proxies of one module,
/// and compiling it is the slow part.
type ModuleCache = Mutex<HashMap<(u64, usize, bool, bool), Module>>;

fn compile(bytes: &[u8], limits: &Limits) -> Result<(Engine, Module), Error> {
    static CACHE: OnceLock<ModuleCache> = OnceLock::new();
    let engine = vm::engine(limits)?;
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    let key = (
        hasher.finish(),
        bytes.len(),
        limits.fuel_per_callback.is_some(),
        limits.time_per_callback.is_some(),
    );
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(found) = lock(cache).get(&key) {
        return Ok((engine, found.clone()));
    }
    let module = Module::new(&engine, bytes).map_err(|e| Error::Compile(e.into()))?;
    lock(cache).insert(key, module.clone());
    Ok((engine, module))
}

impl Proxy {
    pub fn builder() -> ProxyBuilder {
        ProxyBuilder {
            wasm: None,
            plugin: Plugin {
                name: "c4mesh".into(),
                root_id: String::new(),
                vm_id: "c4mesh".into(),
                vm_configuration: Vec::new(),
                configuration: Vec::new(),
                node: Node::default(),
                env: Vec::new(),
            },
            workers: 1,
            clock: Clock::virtual_time(),
            log_level: LogLevel::Info,
            limits: Limits::default(),
            policy: FailurePolicy::default(),
            clusters: HashSet::new(),
            seed: 0x00c4_3e5a,
            upstream: None,
            http_calls: None,
            upstream_address: "127.0.0.1:8080".into(),
        }
    }

    fn start(builder: ProxyBuilder) -> Result<Proxy, Error> {
        if builder.workers == 0 {
            return Err(Error::NoWorkers);
        }
        let bytes = builder.wasm.unwrap_or_else(|| Err(Error::NoModule))?;
        let (engine, module) = compile(&bytes, &builder.limits)?;
        check_abi(&module)?;
        let plugin = Arc::new(builder.plugin);
        let shared = Arc::new(ProxyShared {
            clock: builder.clock,
            log_level: builder.log_level,
            logs: Mutex::new(Vec::new()),
            shared_data: Mutex::new(SharedData::default()),
            queues: Mutex::new(SharedQueues::default()),
            metrics: Mutex::new(Metrics::default()),
            clusters: builder.clusters,
            upstream_address: builder.upstream_address,
        });
        let mut linker = Linker::new(&engine);
        crate::abi::add_to_linker(&mut linker).map_err(|e| Error::Link(e.into()))?;
        let mut probe_store =
            Store::new(&engine, new_state(&plugin, &shared, 0, builder.limits, 0));
        let unimplemented =
            crate::abi::link_unknown_imports(&mut linker, &mut probe_store, &module)
                .map_err(|e| Error::Link(e.into()))?;
        drop(probe_store);
        let mut proxy = Proxy {
            engine,
            module,
            linker,
            plugin,
            shared,
            workers: Vec::new(),
            limits: builder.limits,
            policy: builder.policy,
            seed: builder.seed,
            upstream: builder.upstream,
            http_calls: builder.http_calls,
            faults: Vec::new(),
            configured: Vec::new(),
            finished: IdMap::default(),
            finished_order: VecDeque::new(),
            unimplemented,
        };
        for index in 0..builder.workers {
            let (worker, accepted) = proxy.new_worker(index)?;
            proxy.workers.push(worker);
            proxy.configured.push(accepted);
        }
        Ok(proxy)
    }

    pub(crate) fn new_worker(&self, index: usize) -> Result<(WorkerVm, bool), Error> {
        let state = new_state(&self.plugin, &self.shared, index, self.limits, self.seed);
        let mut worker =
            WorkerVm::instantiate(&self.engine, &self.module, &self.linker, state, self.limits)?;
        let accepted = worker.start()?;
        Ok((worker, accepted))
    }

    // === Configuration and workers ===

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Whether every worker's `proxy_on_configure` accepted the configuration.
    pub fn configured(&self) -> bool {
        self.configured.iter().all(|c| *c)
    }

    /// Runs `proxy_on_configure` again on every worker with a new configuration;
    /// returns whether all accepted it. A rejected configuration stays rejected until
    /// the next accepted one, as the test decides what Envoy would keep.
    pub fn reconfigure(&mut self, config: impl AsRef<[u8]>) -> Result<bool, Error> {
        let mut plugin = (*self.plugin).clone();
        plugin.configuration = config.as_ref().to_vec();
        self.plugin = Arc::new(plugin);
        let mut results = Vec::new();
        for worker in &mut self.workers {
            worker.state_mut().plugin = Arc::clone(&self.plugin);
            match worker.configure() {
                Ok(accepted) => results.push(accepted),
                Err(fault) => {
                    self.faults.push(fault);
                    results.push(false);
                }
            }
        }
        self.configured = results;
        self.settle()?;
        Ok(self.configured())
    }

    /// Imports of the module that the host does not implement (they answer
    /// `Unimplemented`).
    pub fn unimplemented_imports(&self) -> &[String] {
        &self.unimplemented
    }

    /// Faults of the guest so far, in order.
    pub fn faults(&self) -> &[GuestFault] {
        &self.faults
    }

    /// Whether a worker's VM has failed.
    pub fn failed(&self, worker: usize) -> bool {
        self.workers.get(worker).is_some_and(|w| w.failed.is_some())
    }

    pub fn set_upstream(
        &mut self,
        upstream: impl FnMut(&UpstreamRequest) -> Response + Send + 'static,
    ) {
        self.upstream = Some(Box::new(upstream));
    }

    /// No automatic upstream: the test answers with [`Proxy::respond`] or
    /// [`Proxy::response_headers`].
    pub fn clear_upstream(&mut self) {
        self.upstream = None;
    }

    pub fn set_http_call_handler(
        &mut self,
        handler: impl FnMut(&HttpCall) -> CallOutcome + Send + 'static,
    ) {
        self.http_calls = Some(Box::new(handler));
    }

    // === Observation ===

    /// Every line logged so far (at or above the log level), in order.
    pub fn logs(&self) -> Vec<LogRecord> {
        lock(&self.shared.logs).clone()
    }

    /// The lines logged so far, clearing them.
    pub fn take_logs(&self) -> Vec<LogRecord> {
        std::mem::take(&mut *lock(&self.shared.logs))
    }

    /// A metric by the name the module defined (without Envoy's `wasmcustom.`).
    pub fn metric(&self, name: &str) -> Option<MetricValue> {
        lock(&self.shared.metrics).get(name).cloned()
    }

    /// The counter or gauge value of a metric, 0 if undefined.
    pub fn metric_value(&self, name: &str) -> u64 {
        self.metric(name).map_or(0, |m| m.value())
    }

    pub fn metrics(&self) -> Vec<(String, MetricValue)> {
        lock(&self.shared.metrics).all()
    }

    /// A shared-data value and its cas, in the plugin's VM id.
    pub fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        lock(&self.shared.shared_data)
            .get(&self.plugin.vm_id, key.as_bytes())
            .map(|(v, cas)| (v.to_vec(), cas))
    }

    /// Every shared-data key in the plugin's VM id.
    pub fn shared_data_keys(&self) -> Vec<String> {
        lock(&self.shared.shared_data)
            .keys(&self.plugin.vm_id)
            .into_iter()
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .collect()
    }

    /// Writes shared data as another worker would (cas 0 is unconditional).
    pub fn set_shared_data(&self, key: &str, value: &[u8], cas: u32) -> bool {
        lock(&self.shared.shared_data)
            .set(&self.plugin.vm_id, key.as_bytes(), value, cas)
            .is_ok()
    }

    /// Items waiting in the queue `name` of the plugin's VM id.
    pub fn queue_len(&self, name: &str) -> usize {
        let queues = lock(&self.shared.queues);
        queues
            .resolve(&self.plugin.vm_id, name)
            .map_or(0, |t| queues.len(t))
    }

    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// The proxy clock, nanoseconds since the Unix epoch.
    pub fn now_nanos(&self) -> u64 {
        self.shared.clock.now_nanos()
    }

    /// Callouts waiting for an answer.
    pub fn pending_http_calls(&self) -> Vec<HttpCall> {
        self.workers
            .iter()
            .flat_map(|w| {
                w.state().calls.iter().filter(|c| {
                    c.answer.is_none() || matches!(c.answer, Some(CallOutcome::Pending))
                })
            })
            .map(|c| c.call.clone())
            .collect()
    }

    /// Sets a property of a stream, by dotted path (`upstream.address`).
    pub fn set_stream_property(
        &mut self,
        id: StreamId,
        path: &str,
        value: impl Into<Value>,
    ) -> Result<(), Error> {
        self.live_stream_mut(id)?.properties.set(path, value);
        Ok(())
    }

    /// A stream, live or finished.
    pub fn stream(&self, id: StreamId) -> Option<StreamView<'_>> {
        self.stream_data(id).map(|stream| StreamView { id, stream })
    }

    pub(crate) fn stream_data(&self, id: StreamId) -> Option<&Stream> {
        self.workers
            .get(id.worker)
            .and_then(|w| w.state().streams.get(&id.context))
            .or_else(|| self.finished.get(&id))
    }

    pub(crate) fn live_stream_mut(&mut self, id: StreamId) -> Result<&mut Stream, Error> {
        self.workers
            .get_mut(id.worker)
            .and_then(|w| w.state_mut().streams.get_mut(&id.context))
            .ok_or_else(|| Error::UnknownStream(id))
    }

    // === Whole requests ===

    /// Sends a whole request on `worker` and runs everything that follows without
    /// moving time: callouts with a handler, queue notifications, the upstream's
    /// answer. The stream may still be paused afterwards (waiting for a tick or a
    /// pending callout): see [`Exchange::finished`].
    pub fn send(&mut self, worker: usize, request: DownstreamRequest) -> Result<Exchange, Error> {
        let id = self.open_stream(worker)?;
        let chunks = request.body.len();
        let has_trailers = request.trailers.is_some();
        self.request_headers(id, request.headers, chunks == 0 && !has_trailers)?;
        for (i, chunk) in request.body.into_iter().enumerate() {
            self.request_body(id, &chunk, i + 1 == chunks && !has_trailers)?;
        }
        if let Some(trailers) = request.trailers {
            self.request_trailers(id, trailers)?;
        }
        self.exchange(id)
    }

    /// A snapshot of a stream's outcome.
    pub fn exchange(&self, id: StreamId) -> Result<Exchange, Error> {
        let stream = self
            .stream_data(id)
            .ok_or_else(|| Error::UnknownStream(id))?;
        let view = StreamView { id, stream };
        Ok(Exchange {
            id,
            upstream: view.upstream_request(),
            response: view.response(),
            local_reply: stream.local_reply.clone(),
            reset: stream.reset,
            finished: stream.finished,
        })
    }
}

/// What happened to a request.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub id: StreamId,
    /// The request as the upstream got it, if it got it.
    pub upstream: Option<UpstreamRequest>,
    /// The response as the client got it so far.
    pub response: Option<Response>,
    pub local_reply: Option<LocalReply>,
    pub reset: bool,
    /// The stream ended (`on_log`, `on_done` and `on_delete` ran).
    pub finished: bool,
}

impl Exchange {
    /// The status the client got.
    pub fn status(&self) -> Option<u16> {
        self.response.as_ref().and_then(Response::status_code)
    }

    /// A response header the client got.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.response.as_ref().and_then(|r| r.headers.get_str(name))
    }

    /// The response body the client got.
    pub fn body(&self) -> Vec<u8> {
        self.response
            .as_ref()
            .map(|r| r.body.concat())
            .unwrap_or_default()
    }

    /// A request header the upstream got.
    pub fn upstream_header(&self, name: &str) -> Option<&str> {
        self.upstream.as_ref().and_then(|u| u.header(name))
    }
}

/// A read-only view of a stream.
pub struct StreamView<'a> {
    id: StreamId,
    stream: &'a Stream,
}

impl StreamView<'_> {
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// The request headers as the upstream got them, once the filter let them go.
    pub fn upstream_headers(&self) -> Option<&HeaderMap> {
        self.stream.request.sent_headers.as_ref()
    }

    pub fn upstream_body(&self) -> &[u8] {
        &self.stream.request.sent_body
    }

    pub fn upstream_request(&self) -> Option<UpstreamRequest> {
        let request = &self.stream.request;
        request
            .sent_headers
            .as_ref()
            .map(|headers| UpstreamRequest {
                stream: self.id,
                headers: headers.clone(),
                body: request.sent_body.clone(),
                trailers: request.sent_trailers.clone(),
            })
    }

    /// Whether the whole request reached the upstream.
    pub fn upstream_complete(&self) -> bool {
        self.stream.request.sent_end
    }

    /// The response as the client got it so far.
    pub fn response(&self) -> Option<Response> {
        let response = &self.stream.response;
        response.sent_headers.as_ref().map(|headers| Response {
            headers: headers.clone(),
            body: if response.sent_body.is_empty() {
                Vec::new()
            } else {
                vec![response.sent_body.clone()]
            },
            trailers: response.sent_trailers.clone(),
        })
    }

    pub fn status(&self) -> Option<u16> {
        self.response().and_then(|r| r.status_code())
    }

    pub fn local_reply(&self) -> Option<&LocalReply> {
        self.stream.local_reply.as_ref()
    }

    /// The filter holds the request (headers, body or trailers paused).
    pub fn request_paused(&self) -> bool {
        use crate::state::Phase;
        matches!(
            self.stream.request.phase,
            Phase::HeadersPaused | Phase::Buffering | Phase::TrailersPaused
        )
    }

    /// The filter holds the response.
    pub fn response_paused(&self) -> bool {
        use crate::state::Phase;
        matches!(
            self.stream.response.phase,
            Phase::HeadersPaused | Phase::Buffering | Phase::TrailersPaused
        )
    }

    pub fn reset(&self) -> bool {
        self.stream.reset
    }

    pub fn finished(&self) -> bool {
        self.stream.finished
    }
}
