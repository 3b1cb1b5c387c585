//! Integration tests of the harness, compiled as one binary.
//!
//! The host's own tests (probe, faults, workers, lifecycle) are in `harness/host`.
//!
//! - `filter`: the c4mesh filter on virtual time (routing, budget, circuit, workers).
//! - `cli`: the `c4mesh run` command.
//! - `package`: `c4mesh package --push` and `manifests replay-job`.
//! - `image`: `c4mesh image` of a static binary, pushed, pulled back by skopeo and run
//!   as the replay Job runs it; dynamic binaries refused.
//! - `replay_gates`: `c4mesh replay`'s gates (`--slo`) and abort guard (`--abort-on`).
//! - `scenario_schema`: conformance scenarios, the JSON Schema of their format and the
//!   loader agree.
//! - `trust`: `--cacert` trusted as curl trusts it, by `replay`, `check` and the `url`
//!   target against a TLS server on loopback.

mod cli;
#[path = "../common/command.rs"]
mod command;
mod filter;
mod image;
mod package;
/// The registry crate's test support: `docker-registry` on loopback and `skopeo`.
#[path = "../../../registry/tests/registry/support.rs"]
#[allow(dead_code)]
mod registry;
mod replay_gates;
mod scenario_schema;
mod support;
mod trust;
