//! One worker's VM: a wasmtime instance of the module with its [`HostState`], started
//! the way Envoy starts a VM, and the one place where the harness calls into the guest.
//!
//! ## Start
//!
//! The module must export `proxy_abi_version_0_2_1` or `proxy_abi_version_0_2_0` and
//! its memory. A worker instantiates it, runs `_initialize` (the reactor's
//! constructors), creates the root context (`proxy_on_context_create(1, 0)`), then
//! calls `proxy_on_vm_start` and `proxy_on_configure`, handing them the sizes of the VM
//! and plugin configurations.
//!
//! ## Calls and faults
//!
//! Every callback runs under a deadline and the memory limit. A trap, a callback past
//! its deadline or a memory limit hit is a [`GuestFault`] naming the callback: the
//! worker is marked failed, as Envoy marks a VM that trapped, and the harness itself
//! goes on.
//!
//! ## Why an epoch deadline and not fuel
//!
//! A looping filter must be stopped, not waited for (H5). Fuel stops it after a count
//! of instructions, exactly and repeatably, but the count is kept by code compiled into
//! every basic block of the guest, and the host paid about a third of its request
//! cycle for it. An epoch deadline costs a compare at loop heads and function entries:
//! one thread per engine moves the engine's epoch every [`EPOCH_TICK`], and each
//! callback may run until the epoch has moved past its deadline. The bound is wall
//! time, hence not exact to the instruction; a test that needs a deterministic bound
//! sets [`Limits::fuel_per_callback`], which the host then meters as well.

use crate::error::{describe, Error};
use crate::state::{lock, HostState, Plugin, ProxyShared};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use wasmtime::{
    Config, Engine, Instance, Linker, Module, OptLevel, Store, Trap, TypedFunc, WasmParams,
    WasmResults,
};

/// How often an engine's epoch moves: the granularity of callback deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// What went wrong in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// The guest trapped (a panic in a Rust filter ends in `unreachable`).
    Trap,
    /// The callback used up its fuel ([`Limits::fuel_per_callback`]).
    OutOfFuel,
    /// The callback ran past its deadline ([`Limits::time_per_callback`]): it looped
    /// or ran too long.
    Deadline,
    /// The guest asked for memory beyond the limit.
    MemoryLimit,
}

/// A callback that did not return normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestFault {
    pub worker: usize,
    /// The export that was running, e.g. `proxy_on_request_headers`.
    pub callback: &'static str,
    pub context: u32,
    pub kind: FaultKind,
    /// wasmtime's error and its causes, on one line: a fault is a record the harness
    /// reports and compares (`Clone`, `Eq`), which wasmtime's error is not.
    pub message: String,
}

impl fmt::Display for GuestFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            FaultKind::Trap => "trapped",
            FaultKind::OutOfFuel => "ran out of fuel",
            FaultKind::Deadline => "ran past its deadline",
            FaultKind::MemoryLimit => "hit the memory limit",
        };
        write!(
            f,
            "worker {} {} (context {}) {what}: {}",
            self.worker, self.callback, self.context, self.message
        )
    }
}

impl std::error::Error for GuestFault {}

/// Limits on one VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of linear memory (default 256 MiB).
    pub memory_bytes: usize,
    /// Wall time one callback may run, to within [`EPOCH_TICK`] (default 1 s); `None`
    /// sets no deadline.
    pub time_per_callback: Option<Duration>,
    /// Fuel (about one unit per wasm instruction) per callback: a deterministic bound,
    /// at a cost in speed. `None` (the default) runs unmetered.
    pub fuel_per_callback: Option<u64>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory_bytes: 256 << 20,
            time_per_callback: Some(Duration::from_secs(1)),
            fuel_per_callback: None,
        }
    }
}

impl Limits {
    /// Epoch ticks a callback may run: its deadline, rounded up, plus the tick in
    /// progress when it starts.
    fn deadline_ticks(&self) -> Option<u64> {
        self.time_per_callback.map(|t| {
            let tick = EPOCH_TICK.as_nanos().max(1);
            u64::try_from(t.as_nanos().div_ceil(tick))
                .unwrap_or(u64::MAX)
                .saturating_add(1)
        })
    }
}

type F1 = TypedFunc<u32, ()>;
type F2 = TypedFunc<(u32, u32), ()>;
type F2R = TypedFunc<(u32, u32), u32>;
type F3R = TypedFunc<(u32, u32, u32), u32>;
type F5 = TypedFunc<(u32, u32, u32, u32, u32), ()>;

/// The callbacks a module may export (ABI 0.2.x signatures).
pub(crate) struct Exports {
    pub on_context_create: Option<F2>,
    pub on_vm_start: Option<F2R>,
    pub on_configure: Option<F2R>,
    pub on_tick: Option<F1>,
    pub on_queue_ready: Option<F2>,
    pub on_request_headers: Option<F3R>,
    pub on_request_body: Option<F3R>,
    pub on_request_trailers: Option<F2R>,
    pub on_response_headers: Option<F3R>,
    pub on_response_body: Option<F3R>,
    pub on_response_trailers: Option<F2R>,
    pub on_http_call_response: Option<F5>,
    pub on_log: Option<F1>,
    pub on_done: Option<TypedFunc<u32, u32>>,
    pub on_delete: Option<F1>,
    pub initialize: Option<TypedFunc<(), ()>>,
}

fn typed<P: WasmParams, R: WasmResults>(
    instance: &Instance,
    store: &mut Store<HostState>,
    name: &str,
    worker: usize,
) -> Result<Option<TypedFunc<P, R>>, Error> {
    if instance.get_func(&mut *store, name).is_none() {
        return Ok(None);
    }
    instance
        .get_typed_func::<P, R>(&mut *store, name)
        .map(Some)
        .map_err(|e| Error::Instantiate {
            worker,
            export: Some(name.to_owned()),
            source: e.into(),
        })
}

impl Exports {
    fn load(
        instance: &Instance,
        store: &mut Store<HostState>,
        worker: usize,
    ) -> Result<Exports, Error> {
        Ok(Exports {
            on_context_create: typed(instance, store, "proxy_on_context_create", worker)?,
            on_vm_start: typed(instance, store, "proxy_on_vm_start", worker)?,
            on_configure: typed(instance, store, "proxy_on_configure", worker)?,
            on_tick: typed(instance, store, "proxy_on_tick", worker)?,
            on_queue_ready: typed(instance, store, "proxy_on_queue_ready", worker)?,
            on_request_headers: typed(instance, store, "proxy_on_request_headers", worker)?,
            on_request_body: typed(instance, store, "proxy_on_request_body", worker)?,
            on_request_trailers: typed(instance, store, "proxy_on_request_trailers", worker)?,
            on_response_headers: typed(instance, store, "proxy_on_response_headers", worker)?,
            on_response_body: typed(instance, store, "proxy_on_response_body", worker)?,
            on_response_trailers: typed(instance, store, "proxy_on_response_trailers", worker)?,
            on_http_call_response: typed(instance, store, "proxy_on_http_call_response", worker)?,
            on_log: typed(instance, store, "proxy_on_log", worker)?,
            on_done: typed(instance, store, "proxy_on_done", worker)?,
            on_delete: typed(instance, store, "proxy_on_delete", worker)?,
            initialize: typed(instance, store, "_initialize", worker)?,
        })
    }
}

/// The engine for VMs under `limits`: one per kind of metering, shared by every module
/// and proxy of the process (an engine is what wasmtime means to be shared). An engine
/// with deadlines has a thread of its own that moves its epoch every [`EPOCH_TICK`].
pub(crate) fn engine(limits: &Limits) -> Result<Engine, Error> {
    type Engines = Mutex<HashMap<(bool, bool), Engine>>;
    static ENGINES: OnceLock<Engines> = OnceLock::new();
    let key = (
        limits.fuel_per_callback.is_some(),
        limits.time_per_callback.is_some(),
    );
    let engines = ENGINES.get_or_init(|| Mutex::new(HashMap::new()));
    let mut engines = lock(engines);
    if let Some(engine) = engines.get(&key) {
        return Ok(engine.clone());
    }
    let (fuel, epochs) = key;
    let mut config = Config::new();
    config.consume_fuel(fuel);
    config.epoch_interruption(epochs);
    config.cranelift_opt_level(OptLevel::Speed);
    // Tables filled at instantiation: an indirect call then skips the check for an
    // entry not yet initialised (80-90 instructions per request cycle).
    config.table_lazy_init(false);
    let engine = Engine::new(&config).map_err(|e| Error::Compile(e.into()))?;
    if epochs {
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("c4mesh-host-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(Error::EpochThread)?;
    }
    engines.insert(key, engine.clone());
    Ok(engine)
}

/// Checks the ABI version export.
pub(crate) fn check_abi(module: &Module) -> Result<(), Error> {
    let exports: Vec<&str> = module.exports().map(|e| e.name()).collect();
    if exports
        .iter()
        .any(|e| *e == "proxy_abi_version_0_2_1" || *e == "proxy_abi_version_0_2_0")
    {
        return Ok(());
    }
    let mut shown: Vec<&str> = exports
        .iter()
        .copied()
        .filter(|e| e.starts_with("proxy_"))
        .collect();
    shown.truncate(8);
    Err(Error::AbiVersion(if shown.is_empty() {
        "no proxy_* exports".into()
    } else {
        shown.join(", ")
    }))
}

/// One worker thread's VM: its store, the module's exports, its limits.
pub(crate) struct WorkerVm {
    pub index: usize,
    pub store: Store<HostState>,
    pub exports: Exports,
    pub limits: Limits,
    deadline_ticks: Option<u64>,
    /// Set when a callback faulted: the VM takes no more calls.
    pub failed: Option<GuestFault>,
}

impl WorkerVm {
    /// Instantiates the module and runs `_initialize`; the root context is not created yet.
    pub fn instantiate(
        engine: &Engine,
        module: &Module,
        linker: &Linker<HostState>,
        state: HostState,
        limits: Limits,
    ) -> Result<WorkerVm, Error> {
        let index = state.worker;
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limit);
        if limits.fuel_per_callback.is_some() {
            store
                .set_fuel(u64::MAX)
                .map_err(|e| Error::Fuel(e.into()))?;
        }
        if let Some(ticks) = limits.deadline_ticks() {
            store.epoch_deadline_trap();
            store.set_epoch_deadline(ticks);
        }
        let instance = linker
            .instantiate(&mut store, module)
            .map_err(|e| Error::Instantiate {
                worker: index,
                export: None,
                source: e.into(),
            })?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or(Error::NoMemory)?;
        let alloc =
            match instance.get_typed_func::<u32, u32>(&mut store, "proxy_on_memory_allocate") {
                Ok(f) => Some(f),
                Err(_) => instance
                    .get_typed_func::<u32, u32>(&mut store, "malloc")
                    .ok(),
            };
        let exports = Exports::load(&instance, &mut store, index)?;
        store.data_mut().memory = Some(memory);
        store.data_mut().alloc = alloc.map(Arc::new);
        let mut worker = WorkerVm {
            index,
            store,
            exports,
            limits,
            deadline_ticks: limits.deadline_ticks(),
            failed: None,
        };
        if worker.exports.initialize.is_some() {
            worker
                .call("_initialize", |e| e.initialize.as_ref(), 0, ())
                .map_err(|fault| Error::Start {
                    worker: index,
                    callback: "_initialize",
                    fault,
                })?;
        }
        Ok(worker)
    }

    /// Creates the root context and runs `proxy_on_vm_start` and `proxy_on_configure`.
    /// Returns what `proxy_on_configure` answered.
    pub fn start(&mut self) -> Result<bool, Error> {
        let root = self.store.data().root_id;
        let vm_config = self.store.data().plugin.vm_configuration.len() as u32;
        let start_error = |fault: GuestFault| Error::Start {
            worker: fault.worker,
            callback: fault.callback,
            fault,
        };
        let create: fn(&Exports) -> Option<&F2> = |e| e.on_context_create.as_ref();
        self.call("proxy_on_context_create", create, root, (root, 0))
            .map_err(start_error)?;
        let vm_start: fn(&Exports) -> Option<&F2R> = |e| e.on_vm_start.as_ref();
        let started = self
            .call("proxy_on_vm_start", vm_start, root, (root, vm_config))
            .map_err(start_error)?;
        if started == Some(0) {
            return Err(Error::VmStartRejected { worker: self.index });
        }
        self.configure().map_err(start_error)
    }

    /// Runs `proxy_on_configure` with the plugin configuration readable.
    pub fn configure(&mut self) -> Result<bool, GuestFault> {
        let root = self.store.data().root_id;
        let size = self.store.data().plugin.configuration.len() as u32;
        self.store.data_mut().configuring = true;
        let configure: fn(&Exports) -> Option<&F2R> = |e| e.on_configure.as_ref();
        let result = self.call("proxy_on_configure", configure, root, (root, size));
        self.store.data_mut().configuring = false;
        Ok(result? != Some(0))
    }

    /// Calls the export `select` picks in `context`; `Ok(None)` if the module does not
    /// export it. The exports are typed once, at instantiation, and called in place.
    pub fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        callback: &'static str,
        select: fn(&Exports) -> Option<&TypedFunc<P, R>>,
        context: u32,
        params: P,
    ) -> Result<Option<R>, GuestFault> {
        if let Some(fault) = &self.failed {
            return Err(fault.clone());
        }
        let Some(func) = select(&self.exports) else {
            return Ok(None);
        };
        {
            let state = self.store.data_mut();
            state.current = context;
            state.effective = None;
            state.stop_iteration = false;
            state.limit.hit = false;
        }
        if let Some(fuel) = self.limits.fuel_per_callback {
            // Cannot fail: fuel is enabled whenever a budget is set.
            let _ = self.store.set_fuel(fuel);
        }
        if let Some(ticks) = self.deadline_ticks {
            self.store.set_epoch_deadline(ticks);
        }
        match func.call(&mut self.store, params) {
            Ok(result) => Ok(Some(result)),
            Err(error) => {
                let kind = match error.downcast_ref::<Trap>() {
                    Some(Trap::OutOfFuel) => FaultKind::OutOfFuel,
                    Some(Trap::Interrupt) => FaultKind::Deadline,
                    _ if self.store.data().limit.hit => FaultKind::MemoryLimit,
                    _ => FaultKind::Trap,
                };
                let fault = GuestFault {
                    worker: self.index,
                    callback,
                    context,
                    kind,
                    message: describe(&error),
                };
                self.failed = Some(fault.clone());
                Err(fault)
            }
        }
    }

    pub fn state(&self) -> &HostState {
        self.store.data()
    }

    pub fn state_mut(&mut self) -> &mut HostState {
        self.store.data_mut()
    }
}

/// Builds the state of a new worker.
pub(crate) fn new_state(
    plugin: &Arc<Plugin>,
    shared: &Arc<ProxyShared>,
    worker: usize,
    limits: Limits,
    seed: u64,
) -> HostState {
    HostState::new(
        Arc::clone(plugin),
        Arc::clone(shared),
        worker,
        limits.memory_bytes,
        seed,
    )
}
