//! A proxy-wasm host in wasmtime that runs any proxy-wasm module the way Envoy runs it,
//! so a filter can be tested in-process, deterministically and fast.
//!
//! A whole test of a filter: load it with its configuration, drive requests through
//! it, and look at what the upstream and the client got, what it logged and what it
//! counted.
//!
//! ```
//! use c4mesh_host::{LogLevel, Proxy, DownstreamRequest, Response};
//! use std::time::Duration;
//! # let wasm = c4mesh_guests::FILTER.file().expect("the filter's file");
//! let mut proxy = Proxy::builder()
//!     .wasm_file(&wasm) // e.g. target/wasm32-wasip1/release/my_filter.wasm
//!     .config(r#"{"debug_headers": true, "route_header": true}"#)
//!     .upstream(|_| Response::status(200))
//!     .start()?;
//! assert!(proxy.configured());
//! let logs = proxy.take_logs();
//! assert_eq!(logs[0].level, LogLevel::Info);
//! assert_eq!(logs[0].message, "c4mesh configured: mode=gateway routes=6");
//!
//! let get = |path: &str| DownstreamRequest::new("GET", path, "api.c4ang.com");
//! let routed = proxy.send(0, get("/api/v1/orders/42"))?;
//! assert_eq!(routed.upstream_header("x-c4-route"), Some("orders"));
//! assert_eq!((routed.status(), routed.header("x-c4-circuit")), (Some(200), Some("closed")));
//! let refused = proxy.send(0, get("/api/v1/orders/../admin"))?;
//! assert_eq!(refused.status(), Some(400));
//! assert!(refused.upstream.is_none(), "a refused request never reaches the upstream");
//!
//! proxy.advance(Duration::from_secs(1))?; // the filter flushes its counts on a tick
//! assert_eq!(proxy.metric_value("c4mesh.route.orders.requests_total"), 1);
//! assert_eq!(proxy.metric_value("c4mesh.bad_path_total"), 1);
//! # Ok::<(), c4mesh_host::Error>(())
//! ```
//!
//! Step by step instead of whole requests: [`Proxy::open_stream`],
//! [`Proxy::request_headers`], [`Proxy::respond`], [`Proxy::stream`]. Several workers
//! sharing data and queues: [`ProxyBuilder::workers`]. Callouts:
//! [`ProxyBuilder::clusters`] and [`ProxyBuilder::http_calls`].
//!
//! ## Why a host of our own
//!
//! A filter's behaviour depends on its host as much as on its code: which status a call
//! answers (the Rust SDK panics on an unexpected one), which maps a callback may touch,
//! what a local reply looks like to the filter's own response callbacks, how shared
//! data resolves a compare-and-swap between workers. Envoy answers all of this, but
//! through a process, sockets and wall time. This host answers it the same way
//! (checked against a real Envoy 1.40 by the ABI probe in `harness/guests/probe`), in one
//! process and on a clock the test moves.
//!
//! ## Layout
//!
//! - [`abi`]: the host functions, one module per area of the ABI, plus WASI.
//! - `state`: what one worker VM's host functions see (`Store<HostState>`).
//! - `vm`: instantiating a worker and calling into it under a deadline and a memory
//!   limit.
//! - `driver`: the stream lifecycle in Envoy's order, pause/continue, local replies,
//!   queues, callouts, ticks.
//! - [`Proxy`]: N workers of one module sharing data, queues, metrics and a [`Clock`];
//!   the API tests use.

pub mod abi;
pub mod clock;
mod driver;
mod error;
pub mod http;
pub mod properties;
mod proxy;
pub mod run;
mod state;
mod vm;

pub use abi::log::LogLevel;
pub use abi::metrics::{MetricKind, MetricValue};
pub use abi::Status;
pub use clock::Clock;
pub use error::Error;
pub use http::{CallOutcome, DownstreamRequest, HeaderMap, HttpCall, LocalReply, Response};
pub use properties::{Properties, Value};
pub use proxy::{
    Exchange, FailurePolicy, Proxy, ProxyBuilder, StreamId, StreamView, UpstreamRequest,
};
pub use state::{HostState, LogRecord, Plugin};
pub use vm::{FaultKind, GuestFault, Limits};
