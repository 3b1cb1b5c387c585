//! The host side of the proxy-wasm ABI 0.2.1 and of WASI preview 1, one module per area.
//!
//! Each area adds its functions to the [`Linker`] with `func_wrap`. Every function is a
//! thin shim in the manner of Envoy's host: it decodes its arguments from guest memory
//! (checked slicing, never unchecked access), answers `InvalidMemoryAccess` or
//! `BadArgument` for bad input, and calls into the state of the [`HostState`]. Expected
//! failures are statuses returned to the guest; only a trap raised by the guest itself
//! (for example inside `proxy_on_memory_allocate`) unwinds the call.
//!
//! The statuses are those of proxy-wasm-cpp-host, call by call, because the Rust SDK
//! panics on any status it does not expect: a host that answers `NotFound` where Envoy
//! answers `Ok` with an empty value turns a working filter into a trapping one.
//! `harness/guests/probe` checks them against a real Envoy.
//!
//! Imports the host does not know are linked too, to functions that answer
//! `Unimplemented` (WASI: `ENOSYS`), so any module links and only a module that calls
//! them sees the difference.

pub mod buffers;
pub mod general;
pub mod headers;
pub mod http_calls;
pub mod log;
pub mod memory;
pub mod metrics;
pub mod pairs;
pub mod properties;
pub mod shared_data;
pub mod shared_queues;
pub mod timers;
pub mod wasi;

use crate::state::HostState;
use wasmtime::{Caller, ExternType, FuncType, Linker, Module, Store, Val, ValType};

/// A status code of the ABI (`WasmResult` in Envoy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    SerializationFailure = 3,
    ParseFailure = 4,
    BadExpression = 5,
    InvalidMemoryAccess = 6,
    Empty = 7,
    CasMismatch = 8,
    ResultMismatch = 9,
    InternalFailure = 10,
    BrokenConnection = 11,
    Unimplemented = 12,
}

/// Why a host function did not succeed: a status for the guest, or a trap.
pub enum Fail {
    Status(Status),
    Trap(wasmtime::Error),
}

impl From<Status> for Fail {
    fn from(status: Status) -> Fail {
        Fail::Status(status)
    }
}

impl From<wasmtime::Error> for Fail {
    fn from(error: wasmtime::Error) -> Fail {
        Fail::Trap(error)
    }
}

/// What a host function returns to wasmtime: its status, or the trap.
pub(crate) fn answer(result: Result<(), Fail>) -> wasmtime::Result<u32> {
    match result {
        Ok(()) => Ok(Status::Ok as u32),
        Err(Fail::Status(s)) => Ok(s as u32),
        Err(Fail::Trap(e)) => Err(e),
    }
}

/// Map types (`WasmHeaderMapType`).
pub mod map_type {
    pub const REQUEST_HEADERS: u32 = 0;
    pub const REQUEST_TRAILERS: u32 = 1;
    pub const RESPONSE_HEADERS: u32 = 2;
    pub const RESPONSE_TRAILERS: u32 = 3;
    pub const GRPC_INITIAL_METADATA: u32 = 4;
    pub const GRPC_TRAILING_METADATA: u32 = 5;
    pub const CALL_RESPONSE_HEADERS: u32 = 6;
    pub const CALL_RESPONSE_TRAILERS: u32 = 7;
    pub const MAX: u32 = CALL_RESPONSE_TRAILERS;
}

/// Buffer types (`WasmBufferType`).
pub mod buffer_type {
    pub const REQUEST_BODY: u32 = 0;
    pub const RESPONSE_BODY: u32 = 1;
    pub const DOWNSTREAM_DATA: u32 = 2;
    pub const UPSTREAM_DATA: u32 = 3;
    pub const CALL_RESPONSE_BODY: u32 = 4;
    pub const GRPC_RECEIVE: u32 = 5;
    pub const VM_CONFIGURATION: u32 = 6;
    pub const PLUGIN_CONFIGURATION: u32 = 7;
    pub const CALL_DATA: u32 = 8;
    pub const MAX: u32 = CALL_DATA;
}

/// Stream types (`WasmStreamType`).
pub mod stream_type {
    pub const REQUEST: u32 = 0;
    pub const RESPONSE: u32 = 1;
    pub const DOWNSTREAM: u32 = 2;
    pub const UPSTREAM: u32 = 3;
    pub const MAX: u32 = UPSTREAM;
}

/// Adds every host function the harness implements.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    log::add_to_linker(linker)?;
    headers::add_to_linker(linker)?;
    buffers::add_to_linker(linker)?;
    properties::add_to_linker(linker)?;
    shared_data::add_to_linker(linker)?;
    shared_queues::add_to_linker(linker)?;
    metrics::add_to_linker(linker)?;
    timers::add_to_linker(linker)?;
    http_calls::add_to_linker(linker)?;
    general::add_to_linker(linker)?;
    wasi::add_to_linker(linker)?;
    Ok(())
}

/// Links every function import of `module` that the linker does not define to a
/// function answering `Unimplemented` (12), or `ENOSYS` for WASI; results of other
/// types are zeros. Returns the imports so linked.
pub(crate) fn link_unknown_imports(
    linker: &mut Linker<HostState>,
    store: &mut Store<HostState>,
    module: &Module,
) -> wasmtime::Result<Vec<String>> {
    let mut linked = Vec::new();
    for import in module.imports() {
        if linker.get_by_import(&mut *store, &import).is_some() {
            continue;
        }
        let ExternType::Func(ty) = import.ty() else {
            continue;
        };
        let wasi = import.module().starts_with("wasi");
        let code = if wasi {
            wasi::ENOSYS
        } else {
            Status::Unimplemented as u32
        };
        let results: Vec<ValType> = ty.results().collect();
        let func_ty = FuncType::new(linker.engine(), ty.params(), results.clone());
        linker.func_new(
            import.module(),
            import.name(),
            func_ty,
            move |_: Caller<'_, HostState>, _params: &[Val], out: &mut [Val]| {
                for (slot, ty) in out.iter_mut().zip(&results) {
                    *slot = match ty {
                        ValType::I32 => Val::I32(code as i32),
                        ValType::I64 => Val::I64(i64::from(code)),
                        ValType::F32 => Val::F32(0),
                        ValType::F64 => Val::F64(0),
                        _ => Val::FuncRef(None),
                    };
                }
                Ok(())
            },
        )?;
        linked.push(format!("{}::{}", import.module(), import.name()));
    }
    Ok(linked)
}
