//! Integration tests of the harness, compiled as one binary.
//!
//! - `probe`: the ABI probe's transcript in the harness equals Envoy's.
//! - `faults`: guests that loop, trap or exhaust memory are reported; the rest goes on.
//! - `workers`: several VMs of one module share data (with CAS), queues and metrics.
//! - `filter`: the c4mesh filter on virtual time (routing, budget, circuit, workers).
//! - `lifecycle`: the stream lifecycle, driven step by step through the probe.
//! - `cli`: the `c4mesh run` command.
//! - `scenario_schema`: conformance scenarios, the JSON Schema of their format and the
//!   loader agree.

mod cli;
#[path = "../common/command.rs"]
mod command;
mod faults;
mod filter;
mod lifecycle;
mod probe;
mod scenario_schema;
mod support;
mod workers;
