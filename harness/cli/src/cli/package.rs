//! `c4mesh package` and `c4mesh image`: the filter as the OCI image an Istio WasmPlugin
//! pulls, and c4mesh itself as a container image (for the replay Job), each written as
//! an OCI image layout and pushed to a registry on request.
//!
//! Pushing speaks the registry's distribution API itself (`c4mesh-registry`), so no
//! Docker daemon, `oras` or `skopeo` is needed; credentials come from the docker
//! config file as docker finds it, or from `--username` and `--password-stdin`.

use anyhow::{bail, Context, Result};
use c4mesh_manifests::oci;
use c4mesh_registry::{Credentials, Reference, Transport};
use object::elf::EM_X86_64;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{Endianness, FileKind};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct PackageArgs {
    /// The OCI image layout directory to write (default with --push: a temporary one).
    #[arg(long, value_name = "DIR", required_unless_present = "push")]
    out: Option<PathBuf>,
    /// The filter module to package (default: the filter built into c4mesh).
    #[arg(long, value_name = "PATH")]
    wasm: Option<PathBuf>,
    /// The image tag recorded in the layout's index.
    #[arg(long, value_name = "TAG", default_value = env!("CARGO_PKG_VERSION"))]
    tag: String,
    #[command(flatten)]
    push: PushArgs,
}

#[derive(clap::Args)]
pub struct ImageArgs {
    /// The OCI image layout directory to write (default with --push: a temporary one).
    #[arg(long, value_name = "DIR", required_unless_present = "push")]
    out: Option<PathBuf>,
    /// The statically linked c4mesh binary to put in the image (default: this one,
    /// which must then be static: scripts/image.sh builds one).
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
    /// The image tag recorded in the layout's index.
    #[arg(long, value_name = "TAG", default_value = env!("CARGO_PKG_VERSION"))]
    tag: String,
    #[command(flatten)]
    push: PushArgs,
}

#[derive(clap::Args)]
struct PushArgs {
    /// Push the image to oci://HOST[:PORT]/REPOSITORY:TAG (or @sha256:DIGEST).
    #[arg(long, value_name = "oci://HOST/REPO:TAG", value_parser = parse_reference)]
    push: Option<Reference>,
    /// The registry user (default: the docker config file's entry for the host).
    #[arg(long, value_name = "USER", requires = "password_stdin")]
    username: Option<String>,
    /// Read the registry password from standard input (with --username).
    #[arg(long, requires = "username")]
    password_stdin: bool,
    /// Speak plain HTTP to the registry (one on loopback); HTTPS otherwise.
    #[arg(long)]
    plain_http: bool,
}

fn parse_reference(text: &str) -> Result<Reference, String> {
    text.parse::<Reference>().map_err(|e| e.to_string())
}

pub fn package(args: PackageArgs) -> Result<()> {
    let module = super::module_bytes(args.wasm.as_deref())?;
    let (dir, _scratch) = layout_dir(args.out.as_deref())?;
    let package = oci::package(&module, &args.tag, &dir)?;
    println!("image   {} (tag {})", package.digest, args.tag);
    println!("module  {}", package.module_digest);
    if let Some(pushed) = push(&args.push, &dir)? {
        println!("pushed  {}", pushed.pinned);
        println!(
            "WasmPlugin: url: {}  sha256: {}",
            pushed.pinned,
            pushed.wasm_plugin_sha256()
        );
    }
    Ok(())
}

pub fn image(args: ImageArgs) -> Result<()> {
    let path = match &args.binary {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("finding this binary")?,
    };
    let binary = std::fs::read(&path)
        .with_context(|| format!("--binary {}: cannot read it", path.display()))?;
    check_static(&binary).with_context(|| format!("--binary {}", path.display()))?;
    let (dir, _scratch) = layout_dir(args.out.as_deref())?;
    let image = c4mesh_registry::cli_image(&binary, &args.tag, &dir)?;
    println!("image   {} (tag {})", image.digest, args.tag);
    if let Some(pushed) = push(&args.push, &dir)? {
        println!("pushed  {}", pushed.pinned);
    }
    Ok(())
}

/// Where the layout is written: `--out`, else (only pushing) a temporary directory,
/// removed when the returned guard drops.
fn layout_dir(out: Option<&Path>) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    if let Some(dir) = out {
        return Ok((dir.to_path_buf(), None));
    }
    let scratch = tempfile::Builder::new()
        .prefix("c4mesh-image-")
        .tempdir()
        .context("creating a temporary directory for the image layout")?;
    Ok((scratch.path().to_path_buf(), Some(scratch)))
}

fn push(args: &PushArgs, dir: &Path) -> Result<Option<c4mesh_registry::Pushed>> {
    let Some(reference) = &args.push else {
        return Ok(None);
    };
    let credentials = match &args.username {
        Some(username) => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("--password-stdin: reading the password")?;
            Credentials::basic(username, password.trim_end_matches(['\r', '\n']))
        }
        None => Credentials::from_docker_config(reference.host())?,
    };
    let transport = if args.plain_http {
        Transport::PlainHttp
    } else {
        Transport::Tls
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime that pushes")?;
    let pushed = runtime
        .block_on(c4mesh_registry::push_layout(
            dir,
            reference,
            &credentials,
            transport,
        ))
        .with_context(|| format!("--push {reference}"))?;
    Ok(Some(pushed))
}

/// Whether `binary` can be the whole image: a 64-bit x86-64 ELF executable that names
/// no program interpreter (`PT_INTERP`, the dynamic loader a dynamically linked binary
/// asks for), so that it runs on a file system with no loader and no libraries.
fn check_static(binary: &[u8]) -> Result<()> {
    match FileKind::parse(binary) {
        Ok(FileKind::Elf64) => {}
        Ok(FileKind::Elf32) => bail!("a 32-bit ELF file, and the image is linux/amd64"),
        _ => bail!("not an ELF executable, and the image runs its binary as linux/amd64"),
    }
    let elf = ElfFile64::<Endianness>::parse(binary).context("a malformed ELF file")?;
    let endian = elf.endian();
    let machine = elf.elf_header().e_machine(endian);
    if machine != EM_X86_64 {
        bail!("an ELF file for machine {machine} (x86-64 is {EM_X86_64}), and the image is linux/amd64");
    }
    for segment in elf.elf_program_headers() {
        let interpreter = segment
            .interpreter(endian, binary)
            .context("a malformed ELF file")?;
        if let Some(interpreter) = interpreter {
            bail!(
                "linked dynamically (it asks for {}), and the image has no libraries: \
                 build a static one (scripts/image.sh)",
                String::from_utf8_lossy(interpreter)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_static;

    fn refusal(binary: &[u8]) -> String {
        format!("{:#}", check_static(binary).expect_err("refused"))
    }

    #[test]
    fn a_dynamically_linked_binary_and_other_files_are_refused() {
        let this = std::fs::read(std::env::current_exe().expect("this test")).expect("readable");
        let dynamic = refusal(&this);
        assert!(
            dynamic.contains("linked dynamically") && dynamic.contains("ld-linux"),
            "tests link dynamically: {dynamic}"
        );
        assert!(refusal(b"\0asm\x01\0\0\0").contains("not an ELF executable"));
        assert!(refusal(b"#!/bin/sh\n").contains("not an ELF executable"));
        assert!(
            refusal(b"\x7fELF\x02\x01").contains("not an ELF executable"),
            "truncated"
        );
        let mut truncated = this[..64].to_vec();
        truncated[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(
            refusal(&truncated).contains("malformed"),
            "program headers past the end"
        );
        let mut arm = this.clone();
        arm[0x12..0x14].copy_from_slice(&183u16.to_le_bytes());
        assert!(refusal(&arm).contains("machine 183"));
    }
}
