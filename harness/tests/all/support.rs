//! Shared by the integration tests: the workspace's Wasm modules built on first use.

use std::path::PathBuf;

pub use c4mesh_mesh::envoy::workspace_root;

/// A module of the workspace (`c4mesh_filter`, `c4mesh_abi_probe`...), built once per
/// test run.
pub fn wasm_module(name: &str) -> PathBuf {
    c4mesh_mesh::envoy::module(name).unwrap_or_else(|e| panic!("{e:#}"))
}

pub fn filter_wasm() -> PathBuf {
    wasm_module("c4mesh_filter")
}

pub fn probe_wasm() -> PathBuf {
    wasm_module("c4mesh_abi_probe")
}
