//! Embeds the conformance suite (`suite/`, every `*.yaml` and the format's JSON
//! Schema) in the crate: a table of relative paths and `include_str!`s, so rustc
//! tracks each file and cargo reruns this script when one is added or removed.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| panic!("cargo sets CARGO_MANIFEST_DIR for build scripts"));
    let suite = Path::new(&manifest_dir).join("suite");
    println!("cargo:rerun-if-changed={}", suite.display());
    let mut files = Vec::new();
    collect(&suite, &mut files);
    files.sort();
    let mut table = String::from("&[\n");
    for file in &files {
        let relative = file
            .strip_prefix(&suite)
            .unwrap_or_else(|_| panic!("{} is under suite/", file.display()));
        let _ = writeln!(
            table,
            "    ({:?}, include_str!({:?})),",
            relative.display().to_string(),
            file.display().to_string()
        );
    }
    table.push(']');
    let out = std::env::var("OUT_DIR").unwrap_or_else(|_| panic!("cargo sets OUT_DIR"));
    let target = Path::new(&out).join("suite.rs");
    std::fs::write(&target, table).unwrap_or_else(|e| panic!("writing {}: {e}", target.display()));
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .path();
        if path.is_dir() {
            collect(&path, files);
        } else if path
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            files.push(path);
        }
    }
}
