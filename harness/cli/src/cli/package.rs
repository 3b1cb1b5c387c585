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
    if let Some(interpreter) = elf_interpreter(&binary) {
        bail!(
            "--binary {}: linked dynamically (it asks for {interpreter}), and the image has \
             no libraries: build a static one (scripts/image.sh)",
            path.display()
        );
    }
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

/// The program interpreter an ELF executable asks for (`PT_INTERP`), which a
/// dynamically linked binary has and a static one has not; `None` for anything that
/// is not a 64-bit little-endian ELF file, which the image takes as it is.
fn elf_interpreter(binary: &[u8]) -> Option<String> {
    const PT_INTERP: u32 = 3;
    if binary.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(binary.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(binary.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(binary.get(at..at + 8)?.try_into().ok()?));
    let table = usize::try_from(u64_at(0x20)?).ok()?;
    let (size, count) = (usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    (0..count).find_map(|i| {
        let header = table.checked_add(i.checked_mul(size)?)?;
        if u32_at(header)? != PT_INTERP {
            return None;
        }
        let offset = usize::try_from(u64_at(header + 8)?).ok()?;
        let length = usize::try_from(u64_at(header + 32)?).ok()?;
        let name = binary.get(offset..offset.checked_add(length)?)?;
        Some(
            String::from_utf8_lossy(name)
                .trim_end_matches('\0')
                .to_owned(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::elf_interpreter;

    #[test]
    fn a_dynamically_linked_binary_names_its_interpreter_and_other_files_none() {
        let this = std::fs::read(std::env::current_exe().expect("this test")).expect("readable");
        let interpreter = elf_interpreter(&this).expect("tests link dynamically");
        assert!(interpreter.contains("ld-linux"), "{interpreter}");
        assert_eq!(elf_interpreter(b"\0asm\x01\0\0\0"), None);
        assert_eq!(elf_interpreter(b"\x7fELF\x02\x01"), None, "truncated");
    }
}
