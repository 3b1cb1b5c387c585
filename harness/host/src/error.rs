//! The harness's error type.
//!
//! Faults of the guest (a trap, running out of fuel, the memory limit) are not errors of
//! the harness: they are reported as [`GuestFault`](crate::GuestFault)s and the harness
//! goes on. An `Error` means the harness could not do what was asked: the module could
//! not be loaded, a step was driven out of order, a stream id is unknown.
//!
//! wasmtime's errors are kept as the [`source`](std::error::Error::source) of the
//! variants they cause ([`Error::Compile`], [`Error::Instantiate`]), boxed as standard
//! errors so that a caller walks from the harness's message down to wasmtime's causes.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("compiling the module")]
    Compile(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("no module given")]
    NoModule,
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
    #[error("worker {worker}: {callback} failed while the VM started: {message}")]
    Start {
        worker: usize,
        callback: &'static str,
        message: String,
    },
    #[error("worker {worker}: proxy_on_vm_start returned false")]
    VmStartRejected { worker: usize },
    #[error("the plugin configuration was rejected (proxy_on_configure returned false)")]
    ConfigureRejected,
    #[error("there is no worker {0}")]
    NoWorker(usize),
    #[error("unknown stream {0}")]
    UnknownStream(String),
    #[error("stream {stream}: {message}")]
    OutOfOrder { stream: String, message: String },
    #[error("the number of workers must be at least 1")]
    NoWorkers,
    #[error("unknown HTTP call token {0}")]
    UnknownCall(u32),
    #[error("internal: {0}")]
    Internal(String),
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
