//! Integration tests of the host, compiled as one binary.
//!
//! - `probe`: the ABI probe's transcript in the host equals Envoy's.
//! - `probe_lean`: so does the transcript of a probe that exports only seven callbacks.
//! - `faults`: guests that loop, trap or exhaust memory are reported; the rest goes on.
//! - `workers`: several VMs of one module share data (with CAS), queues and metrics.
//! - `lifecycle`: the stream lifecycle, driven step by step through the probe.

mod faults;
mod lifecycle;
mod probe;
mod probe_lean;
mod support;
mod workers;
