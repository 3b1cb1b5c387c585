//! The c4mesh filter as a proxy-wasm module: thin glue between Envoy and the core.
//!
//! Each callback turns what the proxy offers (header maps, properties, the clock)
//! into a call on [`c4mesh_filter_core::Worker`] and applies the answer: local
//! replies, header changes, metrics, shared data. The glue is written for the fewest
//! calls across the Wasm boundary per request (SPEC 2.6):
//!
//! - the module exports only the callbacks it uses ([`exports`]), so Envoy enters the
//!   VM four times for a stream, not eight or more;
//! - the request headers are read once as one buffer, only headers that are present
//!   are removed, and nothing is added that the proxy's route already applies
//!   (`proxy_applies`), so a healthy request is not changed and Envoy does not match
//!   its route again;
//! - the response phase reads `:status` plus only what the outcome can need (the
//!   attempt count when retries were reserved, the upstream address when a host count
//!   may change); metrics are tallied in the worker and flushed on tick.
//!
//! Every host call goes through [`abi`], whose wrappers cannot panic: a trap would
//! fail every request through the VM.

mod abi;
pub mod exports;
mod mesh;
mod metrics;
mod pairs;
mod root;
mod stream;
