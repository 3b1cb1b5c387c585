//! Builds the workspace's proxy-wasm modules for `wasm32-wasip1` with the `wasm`
//! profile, once per change of their sources, into this crate's `OUT_DIR`.
//!
//! The modules are workspace packages, so the nested cargo reads the workspace's
//! manifest and lock file; it gets a target directory of its own under `OUT_DIR`,
//! so it never waits on the lock of the build that runs this script. Flags meant for
//! the native build (`RUSTFLAGS`, clippy's wrapper) are not passed on.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Package name and the file its `cdylib` becomes.
const MODULES: &[(&str, &str)] = &[
    ("c4mesh-filter", "c4mesh_filter"),
    ("c4mesh-noop", "c4mesh_noop"),
    ("c4mesh-abi-probe", "c4mesh_abi_probe"),
    ("c4mesh-abi-probe-lean", "c4mesh_abi_probe_lean"),
    ("c4mesh-trap", "c4mesh_trap"),
];

/// What the modules are built from, relative to the workspace root.
const SOURCES: &[&str] = &[
    "Cargo.toml",
    "Cargo.lock",
    "filter/core",
    "filter/wasm",
    "harness/guests/noop",
    "harness/guests/probe",
    "harness/guests/probe-lean",
    "harness/guests/trap",
];

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("{} has no workspace root", manifest_dir.display()));
    let out = PathBuf::from(env("OUT_DIR"));
    let target_dir = out.join("target");
    for source in SOURCES {
        println!("cargo:rerun-if-changed={}", root.join(source).display());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(&root)
        .args([
            "build",
            "--quiet",
            "--profile",
            "wasm",
            "--target",
            "wasm32-wasip1",
        ])
        .env("CARGO_TARGET_DIR", &target_dir);
    for (package, _) in MODULES {
        build.args(["-p", package]);
    }
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
    ] {
        build.env_remove(var);
    }
    let status = build
        .status()
        .unwrap_or_else(|e| panic!("running cargo to build the Wasm modules: {e}"));
    if !status.success() {
        panic!(
            "building the Wasm modules for wasm32-wasip1 failed ({status}); \
             `rustup target add wasm32-wasip1` installs the target"
        );
    }
    for (_, file) in MODULES {
        let built = target_dir.join(format!("wasm32-wasip1/wasm/{file}.wasm"));
        let kept = out.join(format!("{file}.wasm"));
        std::fs::copy(&built, &kept)
            .unwrap_or_else(|e| panic!("copying {} to {}: {e}", built.display(), kept.display()));
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name} for build scripts"))
}
