//! `c4mesh manifests` and `c4mesh package`: the mesh's Kubernetes, Istio and Gateway API
//! objects generated from the filter's defaults, and the filter as an OCI image.

use anyhow::{bail, Result};
use c4mesh_manifests::{generate, oci, MeshOptions};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ManifestsArgs {
    /// Where the manifests go.
    #[arg(long, value_name = "DIR", default_value = "manifests")]
    out: PathBuf,
    /// The filter module whose sha256 the WasmPlugins carry.
    #[arg(long, value_name = "PATH")]
    wasm: Option<PathBuf>,
    /// Write nothing; fail if DIR differs from a fresh generation.
    #[arg(long)]
    check: bool,
}

#[derive(clap::Args)]
pub struct PackageArgs {
    /// The OCI image layout directory to write.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The filter module to package.
    #[arg(long, value_name = "PATH")]
    wasm: Option<PathBuf>,
    /// The image tag recorded in the layout's index.
    #[arg(long, value_name = "TAG", default_value = env!("CARGO_PKG_VERSION"))]
    tag: String,
}

pub fn manifests(args: ManifestsArgs) -> Result<()> {
    let module = super::module_bytes(args.wasm.as_deref())?;
    let manifests = generate(&MeshOptions::for_module(&module))?;
    if args.check {
        let differ = manifests.differences(&args.out);
        if !differ.is_empty() {
            bail!(
                "{} differ from a fresh generation: {} (run `c4mesh manifests`)",
                args.out.display(),
                differ.join(", ")
            );
        }
        println!("{} is up to date", args.out.display());
    } else {
        manifests.write(&args.out)?;
        println!(
            "wrote {} files to {}",
            manifests.files.len(),
            args.out.display()
        );
    }
    Ok(())
}

pub fn package(args: PackageArgs) -> Result<()> {
    let module = super::module_bytes(args.wasm.as_deref())?;
    let package = oci::package(&module, &args.tag, &args.out)?;
    println!("{} (tag {})", package.digest, args.tag);
    println!("module {}", package.module_digest);
    Ok(())
}
