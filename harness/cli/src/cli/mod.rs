//! The subcommands of `c4mesh`, one module each; `main.rs` only parses and dispatches.

pub mod check;
pub mod conformance;
pub mod demo;
pub mod manifests;
pub mod package;
pub mod replay;
pub mod run;
pub mod soak;
pub mod up;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The module a command runs: `--wasm PATH` when given, else the filter built into
/// c4mesh (a file of its bytes, for Envoy).
pub fn module_file(wasm: Option<&Path>) -> Result<PathBuf> {
    match wasm {
        Some(path) if path.is_file() => Ok(path.to_path_buf()),
        Some(path) => bail!("--wasm {}: no such module", path.display()),
        None => c4mesh_guests::FILTER
            .file()
            .context("writing the built-in filter module"),
    }
}

/// The bytes of the module a command packages or pins: `--wasm PATH` when given, else
/// the filter built into c4mesh.
pub fn module_bytes(wasm: Option<&Path>) -> Result<Vec<u8>> {
    match wasm {
        Some(path) => std::fs::read(path)
            .with_context(|| format!("--wasm {}: cannot read the module", path.display())),
        None => Ok(c4mesh_guests::FILTER.bytes().to_vec()),
    }
}
