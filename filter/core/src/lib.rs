//! The c4mesh filter's logic, without a proxy.
//!
//! Everything the filter decides lives here as plain Rust with time passed in as a
//! value: the configuration and its validation, routing (by host and path at the
//! gateway, by destination service in a sidecar), path safety, the retry budget, the
//! per-host outlier signal and the route circuit. The proxy-wasm glue
//! (`c4mesh-filter`) only turns headers and properties into calls on [`Worker`] and
//! applies what it returns, so every rule is tested and benchmarked natively.

pub mod authority;
pub mod budget;
mod codec;
pub mod config;
pub mod control;
pub mod destination;
pub mod duration;
pub mod footprint;
pub mod health;
pub mod json;
pub mod path;
pub mod routes;

pub use config::{Config, Mode, DEFAULT_CONFIG_JSON};
pub use json::ConfigError;
pub use routes::{RouteId, RouteTable};
pub mod metrics;
pub mod reply;
pub mod shared;
pub mod worker;

pub use shared::{MemoryShared, Shared};
pub use worker::{Request, RouteHeaders, Ticket, Verdict, Worker};
