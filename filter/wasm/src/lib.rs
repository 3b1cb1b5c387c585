//! The c4mesh filter as a proxy-wasm module: thin glue between Envoy and the core.
//!
//! Each callback turns what the proxy offers (header maps, properties, the clock)
//! into a call on [`c4mesh_filter_core::Worker`] and applies the answer: local
//! replies, header changes, metrics, shared data. The glue is written for the fewest
//! host calls per request (SPEC 2.6): the request headers are read once as one
//! buffer, only headers that are present are removed, three headers are added, and
//! the response phase reads `:status` plus only what the outcome can need (the
//! attempt count when retries were reserved, the upstream address when a host count
//! may change). Metrics are tallied in the worker and flushed on tick.
//!
//! Every host call goes through [`abi`], whose wrappers cannot panic: a trap would
//! fail every request through the VM.

mod abi;
mod mesh;
mod metrics;
mod pairs;
mod root;
mod stream;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(root::Root::default())
    });
}}
