//! The local mesh on loopback: what `c4mesh up`, `c4mesh demo`, the conformance
//! suite's envoy target and the end-to-end tests run the filter in.
//!
//! The filter is only trusted once a real Envoy has run it against real upstreams, so
//! this crate starts Envoy 1.40 (from `ENVOY_BIN`, the project's `.venv`, or `PATH`)
//! with a generated bootstrap: one listener (and, as the Gateway's port 443, an HTTPS
//! one with a certificate for `api.c4ang.com` made at start), the filter (or the
//! no-op module, or no Wasm), the router with the mesh's retry policy, one cluster per
//! service. The services are small HTTP/1.1 servers on 127.0.0.1 whose answers the
//! tests change at run time, which record every attempt they receive and count the
//! connections they accept. Beside it, a real Prometheus can scrape every proxy
//! ([`prometheus`]).

pub mod bootstrap;
pub mod client;
pub mod envoy;
pub mod istio;
pub mod launch;
pub mod mesh;
pub mod prometheus;
pub mod tls;
pub mod topology;
pub mod upstream;
pub mod yaml;

pub use client::{Client, ClientError, Response};
pub use envoy::{Envoy, EnvoyConfig, ServiceRoute, TlsListener, Wasm};
pub use mesh::{services, LocalMesh, MeshOptions, Service};
pub use prometheus::{Prometheus, PrometheusConfig};
pub use tls::Certificates;
pub use topology::Topology;
pub use upstream::{Attempt, Behaviour, Handler, Reply, Upstream};
