//! Shared by the integration tests: the workspace's Wasm modules (built by
//! `c4mesh-guests`) and the repository's folders.

use std::path::{Path, PathBuf};

/// The repository root (this crate lives in `harness/cli`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A module's file.
pub fn wasm_file(module: c4mesh_guests::Module) -> PathBuf {
    module
        .file()
        .unwrap_or_else(|e| panic!("{}: {e}", module.name()))
}

pub fn filter_wasm() -> PathBuf {
    wasm_file(c4mesh_guests::FILTER)
}

pub fn probe_wasm() -> PathBuf {
    wasm_file(c4mesh_guests::PROBE)
}
