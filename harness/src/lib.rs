//! c4mesh harness: what the `c4mesh` command does, over the proxy-wasm host.
//!
//! The host (the crate `c4mesh-host`, re-exported here: [`Proxy`], [`abi`], ...) runs
//! any proxy-wasm module the way Envoy 1.40 does. This crate puts the product around
//! it:
//!
//! - [`run`]: a single request through a module, for the `c4mesh run` command.
//! - [`conformance`]: declarative scenarios run on the host, a real Envoy or a live
//!   gateway, and their agreement.
//! - [`replay`] and [`live`]: traffic to a live gateway, open or closed loop, measured
//!   without coordinated omission, for the `c4mesh replay` command.
//! - [`check`]: the operator's test script against a cluster.
//! - [`soak`]: the filter in a real Envoy for a bounded time under rotating faults and
//!   changing upstream addresses, its memory and shared data sampled and checked.

pub mod check;
pub mod conformance;
pub mod live;
pub mod replay;
pub mod run;
pub mod soak;

pub use c4mesh_host::{abi, clock, http, properties};
pub use c4mesh_host::{
    CallOutcome, Clock, Error, Exchange, FailurePolicy, FaultKind, GuestFault, HeaderMap,
    HostState, HttpCall, Limits, LocalReply, LogLevel, LogRecord, MetricKind, MetricValue, Plugin,
    Properties, Proxy, ProxyBuilder, Request, Response, Status, StreamId, StreamView,
    UpstreamRequest, Value,
};
