//! The proxy-wasm modules c4mesh runs, built once by this crate's build script and
//! embedded in whatever links it.
//!
//! The `c4mesh` binary carries the filter and the no-op module (the local mesh's
//! topologies and benchmarks compare the two), so an installed binary runs its demo,
//! its local mesh and its conformance suite from any directory; the tests reach the
//! ABI probes and the trapping module the same way. Nothing runs `cargo build` at run
//! time.
//!
//! The harness's host takes a module's bytes; Envoy takes a file. [`Module::file`]
//! gives the build's own file while it is there and unchanged (tests, a binary run
//! from the source tree) and otherwise a copy in the user's cache directory named by
//! the module's digest, written once.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A module built from this workspace.
#[derive(Debug, Clone, Copy)]
pub struct Module {
    name: &'static str,
    bytes: &'static [u8],
    built: &'static str,
}

macro_rules! module {
    ($name:literal) => {
        Module {
            name: $name,
            bytes: include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".wasm")),
            built: concat!(env!("OUT_DIR"), "/", $name, ".wasm"),
        }
    };
}

/// The c4mesh filter (`filter/wasm`), as the WasmPlugins ship it.
pub const FILTER: Module = module!("c4mesh_filter");
/// A proxy-wasm HTTP filter that does nothing: the baseline of every cost measurement.
pub const NOOP: Module = module!("c4mesh_noop");
/// The ABI probe: calls every host function in normal and edge cases and logs each
/// outcome.
pub const PROBE: Module = module!("c4mesh_abi_probe");
/// The lean probe: no SDK, seven exports.
pub const PROBE_LEAN: Module = module!("c4mesh_abi_probe_lean");
/// A filter that traps on request paths containing `/trap`.
pub const TRAP: Module = module!("c4mesh_trap");

/// Writing a module's file failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no cache directory for {module}.wasm: neither XDG_CACHE_HOME nor HOME is set")]
    NoCacheDir { module: &'static str },
    #[error("writing {module}.wasm to {}", dir.display())]
    Write {
        module: &'static str,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Module {
    /// The module's file name without `.wasm`: `c4mesh_filter`, `c4mesh_noop`, ...
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The module as built.
    pub fn bytes(&self) -> &'static [u8] {
        self.bytes
    }

    /// `sha256` of the module, in hex: what a WasmPlugin pins.
    pub fn sha256_hex(&self) -> String {
        Sha256::digest(self.bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A file holding exactly these bytes, for a proxy that loads modules from files.
    pub fn file(&self) -> Result<PathBuf, Error> {
        self.file_with(cache_dir)
    }

    fn file_with(&self, cache_dir: impl FnOnce() -> Option<PathBuf>) -> Result<PathBuf, Error> {
        let built = Path::new(self.built);
        if std::fs::read(built).is_ok_and(|bytes| bytes == self.bytes) {
            return Ok(built.to_path_buf());
        }
        let dir = cache_dir()
            .ok_or(Error::NoCacheDir { module: self.name })?
            .join("c4mesh/modules");
        let path = dir.join(format!("{}-{}.wasm", self.name, self.sha256_hex()));
        if std::fs::read(&path).is_ok_and(|bytes| bytes == self.bytes) {
            return Ok(path);
        }
        let write = |dir: &Path| -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            let mut file = tempfile::NamedTempFile::new_in(dir)?;
            file.write_all(self.bytes)?;
            file.persist(&path).map_err(|e| e.error)?;
            Ok(())
        };
        write(&dir).map_err(|source| Error::Write {
            module: self.name,
            dir: dir.clone(),
            source,
        })?;
        Ok(path)
    }
}

fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os("XDG_CACHE_HOME") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => std::env::var_os("HOME")
            .filter(|home| !home.is_empty())
            .map(|home| PathBuf::from(home).join(".cache")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_is_wasm_and_its_file_holds_its_bytes() {
        for module in [FILTER, NOOP, PROBE, PROBE_LEAN, TRAP] {
            assert_eq!(&module.bytes()[..4], b"\0asm", "{}", module.name());
            let file = module.file().expect("a file for the module");
            assert_eq!(std::fs::read(&file).expect("readable"), module.bytes());
        }
    }

    #[test]
    fn the_filter_is_under_one_mebibyte() {
        let size = FILTER.bytes().len();
        assert!(
            size < 1 << 20,
            "c4mesh_filter.wasm is {size} bytes: over 1 MiB"
        );
    }

    #[test]
    fn a_module_whose_build_is_gone_is_written_to_the_cache_once() {
        let cache = tempfile::tempdir().expect("a temporary directory");
        let gone = Module {
            built: "/nonexistent/c4mesh_noop.wasm",
            ..NOOP
        };
        let dir = || Some(cache.path().to_path_buf());
        let first = gone.file_with(dir).expect("written");
        let second = gone.file_with(dir).expect("found");
        assert_eq!(first, second);
        assert!(first.starts_with(cache.path()));
        assert_eq!(std::fs::read(&first).expect("readable"), NOOP.bytes());
    }
}
