//! `c4mesh-manifests`: writes the mesh's manifests, checks them, packages the filter.
//!
//! ```text
//! c4mesh-manifests generate [--out DIR] [--wasm PATH]   write the manifests (default: manifests/)
//! c4mesh-manifests check    [--out DIR] [--wasm PATH]   fail if the files differ from a fresh generation
//! c4mesh-manifests package  [--wasm PATH] --out DIR [--tag TAG]   the filter as an OCI image layout
//! ```
//! `--wasm` defaults to the filter's release build,
//! `target/wasm32-wasip1/wasm/c4mesh_filter.wasm`.

use anyhow::{bail, Context, Result};
use c4mesh_manifests::{generate, oci, MeshOptions};
use std::path::PathBuf;

const USAGE: &str = "usage: c4mesh-manifests generate|check [--out DIR] [--wasm PATH]\n       c4mesh-manifests package --out DIR [--wasm PATH] [--tag TAG]";

struct Args {
    command: String,
    out: Option<PathBuf>,
    wasm: PathBuf,
    tag: String,
}

fn parse() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let Some(command) = args.next() else {
        bail!("missing command\n{USAGE}");
    };
    let mut parsed = Args {
        command,
        out: None,
        wasm: PathBuf::from("target/wasm32-wasip1/wasm/c4mesh_filter.wasm"),
        tag: env!("CARGO_PKG_VERSION").to_owned(),
    };
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{flag}: missing value\n{USAGE}"))
        };
        match flag.as_str() {
            "--out" => parsed.out = Some(PathBuf::from(value()?)),
            "--wasm" => parsed.wasm = PathBuf::from(value()?),
            "--tag" => parsed.tag = value()?,
            other => bail!("{other}: unknown flag\n{USAGE}"),
        }
    }
    Ok(parsed)
}

fn main() -> Result<()> {
    let args = parse()?;
    let module = std::fs::read(&args.wasm).with_context(|| {
        format!(
            "--wasm {}: cannot read the module (build it with `cargo build --profile wasm --target wasm32-wasip1 -p c4mesh-filter`)",
            args.wasm.display()
        )
    })?;
    match args.command.as_str() {
        "generate" | "check" => {
            let out = args.out.unwrap_or_else(|| PathBuf::from("manifests"));
            let manifests = generate(&MeshOptions::for_module(&module))?;
            if args.command == "generate" {
                manifests.write(&out)?;
                println!("wrote {} files to {}", manifests.files.len(), out.display());
            } else {
                let differ = manifests.differences(&out);
                if !differ.is_empty() {
                    bail!(
                        "{} differ from a fresh generation: {}",
                        out.display(),
                        differ.join(", ")
                    );
                }
                println!("{} is up to date", out.display());
            }
        }
        "package" => {
            let Some(out) = args.out else {
                bail!("package: --out DIR is required\n{USAGE}");
            };
            let package = oci::package(&module, &args.tag, &out)?;
            println!("{} (tag {})", package.digest, args.tag);
            println!("module {}", package.module_digest);
        }
        other => bail!("{other}: unknown command\n{USAGE}"),
    }
    Ok(())
}
