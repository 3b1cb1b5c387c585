//! c4mesh harness: a proxy-wasm host in wasmtime that runs any proxy-wasm module the
//! way Envoy runs it, so a filter can be tested in-process, deterministically and fast.
//!
//! ## Why a host of our own
//!
//! A filter's behaviour depends on its host as much as on its code: which status a call
//! answers (the Rust SDK panics on an unexpected one), which maps a callback may touch,
//! what a local reply looks like to the filter's own response callbacks, how shared
//! data resolves a compare-and-swap between workers. Envoy answers all of this, but
//! through a process, sockets and wall time. This host answers it the same way
//! (checked against a real Envoy 1.40 by the ABI probe in `harness/probe`), in one
//! process and on a clock the test moves.
//!
//! ## Layout
//!
//! - [`abi`]: the host functions, one module per area of the ABI, plus WASI.
//! - `state`: what one worker VM's host functions see (`Store<HostState>`).
//! - `vm`: instantiating a worker and calling into it under fuel and memory limits.
//! - `driver`: the stream lifecycle in Envoy's order, pause/continue, local replies,
//!   queues, callouts, ticks.
//! - [`Proxy`]: N workers of one module sharing data, queues, metrics and a [`Clock`];
//!   the API tests use.
//! - [`run`]: a single request through a module, for the `c4mesh run` command.
//! - [`replay`]: traffic to a live gateway, open or closed loop, measured without
//!   coordinated omission, for the `c4mesh replay` command.

pub mod abi;
pub mod check;
pub mod clock;
pub mod conformance;
mod driver;
mod error;
pub mod http;
pub mod live;
pub mod properties;
mod proxy;
pub mod replay;
pub mod run;
mod state;
mod vm;

pub use abi::log::LogLevel;
pub use abi::metrics::{MetricKind, MetricValue};
pub use abi::Status;
pub use clock::Clock;
pub use error::Error;
pub use http::{CallOutcome, HeaderMap, HttpCall, LocalReply, Request, Response};
pub use properties::{Properties, Value};
pub use proxy::{
    Exchange, FailurePolicy, Proxy, ProxyBuilder, StreamId, StreamView, UpstreamRequest,
};
pub use state::{HostState, LogRecord, Plugin};
pub use vm::{FaultKind, GuestFault, Limits};
