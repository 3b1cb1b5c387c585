//! The harness's error type.
//!
//! Faults of the guest (a trap, running out of fuel, the memory limit) are not errors of
//! the harness: they are reported as [`GuestFault`](crate::GuestFault)s and the harness
//! goes on. An `Error` means the harness could not do what was asked: the module could
//! not be loaded, a step was driven out of order, a stream id is unknown.
//!
//! wasmtime's errors are kept as the [`source`](std::error::Error::source) of the
//! variants they cause ([`Error::Compile`], [`Error::Instantiate`], [`Error::Link`],
//! [`Error::Fuel`]), boxed as standard errors so that a caller walks from the harness's
//! message down to wasmtime's causes; so are I/O errors and the guest's fault when it
//! stops the VM from starting. A variant holds text only where no error value exists.

use crate::proxy::StreamId;
use crate::vm::GuestFault;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("reading {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("compiling the module")]
    Compile(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("no module given")]
    NoModule,
    /// The module's `proxy_*` exports (the first few), listed for the reader: a
    /// description, no error value.
    #[error("the module exports neither proxy_abi_version_0_2_1 nor proxy_abi_version_0_2_0 (exports: {0})")]
    AbiVersion(String),
    #[error("the module does not export its linear memory as \"memory\"")]
    NoMemory,
    #[error("instantiating worker {worker}{}", export.as_ref().map(|e| format!(": export {e} has an unexpected signature")).unwrap_or_default())]
    Instantiate {
        worker: usize,
        /// The export whose signature is not the ABI's, when that is what failed.
        export: Option<String>,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("worker {worker}: {callback} failed while the VM started")]
    Start {
        worker: usize,
        callback: &'static str,
        #[source]
        fault: GuestFault,
    },
    #[error("worker {worker}: proxy_on_vm_start returned false")]
    VmStartRejected { worker: usize },
    #[error("the plugin configuration was rejected (proxy_on_configure returned false)")]
    ConfigureRejected,
    #[error("there is no worker {0}")]
    NoWorker(usize),
    #[error("unknown stream {0}")]
    UnknownStream(StreamId),
    /// A step driven before the one it needs, or twice; `message` says which (a
    /// description, no error value).
    #[error("stream {stream}: {message}")]
    OutOfOrder {
        stream: StreamId,
        message: &'static str,
    },
    #[error("the number of workers must be at least 1")]
    NoWorkers,
    #[error("unknown HTTP call token {0}")]
    UnknownCall(u32),
    #[error("starting the epoch thread")]
    EpochThread(#[source] std::io::Error),
    #[error("linking the host functions")]
    Link(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("setting the store's fuel")]
    Fuel(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("asynchronous callbacks kept triggering each other; stopped after {rounds} rounds")]
    Unsettled { rounds: usize },
    /// Timers kept coming due: at one instant (`at`, in nanoseconds) after `rounds`
    /// firings, or at the current time when `at` is `None`.
    #[error("timers kept firing{}; stopped after {rounds}", at.map(|at| format!(" at {at} ns")).unwrap_or_default())]
    TimersKeptFiring { at: Option<u64>, rounds: usize },
}

/// The message of a wasmtime error with its causes, on one line.
pub(crate) fn describe(error: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}
