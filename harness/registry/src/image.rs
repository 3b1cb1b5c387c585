//! The c4mesh CLI as a container image, written without a Docker daemon.
//!
//! A static binary needs no base image: one layer holding it at [`BINARY_PATH`] and a
//! world-writable `/tmp` (the CLI gives each Envoy it launches a temporary folder) is
//! the whole file system. It runs as an unprivileged user ([`IMAGE_USER`]), so a pod that
//! requires `runAsNonRoot` runs it as it is. Writing the layer here rather than with `docker build` keeps
//! the image reproducible: entries in path order, owned by root, every time stamp at
//! the epoch, gzip without a name or a time, typed JSON documents. The same binary
//! always gives the same digest, which can then be pinned in a Deployment.

use crate::layout::{self, to_json, Descriptor, Manifest, MANIFEST_MEDIA_TYPE};
use crate::Error;
use flate2::write::GzEncoder;
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// Where the binary is in the image, and the image's entrypoint.
pub const BINARY_PATH: &str = "/usr/local/bin/c4mesh";
/// The user the image runs as, `UID:GID`: numeric, as Kubernetes' `runAsNonRoot` needs
/// to check it is not root; 65532, distroless' `nonroot`, owns nothing in the image.
pub const IMAGE_USER: &str = "65532:65532";
/// The standard OCI image config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// The one layer: a gzip-compressed tar.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The time of every entry and of the image: the epoch.
const EPOCH: u64 = 0;
const CREATED: &str = "1970-01-01T00:00:00Z";

/// A written CLI image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliImage {
    /// `sha256:HEX` of the image manifest.
    pub digest: String,
    /// `sha256:HEX` of the image config.
    pub config_digest: String,
    /// `sha256:HEX` of the compressed layer, as the manifest names it.
    pub layer_digest: String,
    /// `sha256:HEX` of the uncompressed layer, as the config's `rootfs.diff_ids` names it.
    pub diff_id: String,
}

#[derive(Serialize)]
struct ImageConfig<'a> {
    created: &'a str,
    architecture: &'a str,
    os: &'a str,
    config: RunConfig<'a>,
    rootfs: RootFs<'a>,
    history: [History<'a>; 1],
}

#[derive(Serialize)]
struct RunConfig<'a> {
    #[serde(rename = "Entrypoint")]
    entrypoint: [&'a str; 1],
    #[serde(rename = "Env")]
    env: [&'a str; 1],
    #[serde(rename = "WorkingDir")]
    working_dir: &'a str,
    #[serde(rename = "User")]
    user: &'a str,
}

#[derive(Serialize)]
struct RootFs<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    diff_ids: [&'a str; 1],
}

#[derive(Serialize)]
struct History<'a> {
    created: &'a str,
    created_by: &'a str,
}

/// Writes an OCI image layout under `dir`, tagged `tag`, of a linux/amd64 image whose
/// entrypoint is `binary` (a static executable) at [`BINARY_PATH`].
pub fn cli_image(binary: &[u8], tag: &str, dir: &Path) -> Result<CliImage, Error> {
    let tar = layer_tar(binary).map_err(|source| Error::LayoutIo {
        path: dir.to_owned(),
        source,
    })?;
    let diff_id = layout::sha256_digest(&tar);
    let compressed = gzip(&tar).map_err(|source| Error::LayoutIo {
        path: dir.to_owned(),
        source,
    })?;
    let layer = layout::write_blob(dir, LAYER_MEDIA_TYPE, &compressed)?;
    let config = ImageConfig {
        created: CREATED,
        architecture: "amd64",
        os: "linux",
        config: RunConfig {
            entrypoint: [BINARY_PATH],
            env: ["PATH=/usr/local/bin:/usr/bin:/bin"],
            working_dir: "/",
            user: IMAGE_USER,
        },
        rootfs: RootFs {
            kind: "layers",
            diff_ids: [&diff_id],
        },
        history: [History {
            created: CREATED,
            created_by: "c4mesh-registry: the c4mesh binary",
        }],
    };
    let config = layout::write_blob(dir, CONFIG_MEDIA_TYPE, &to_json(dir, &config)?)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.to_owned()),
        config: config.clone(),
        layers: vec![layer.clone()],
    };
    let Descriptor { digest, .. } = layout::write_image(dir, &manifest, tag)?;
    Ok(CliImage {
        digest,
        config_digest: config.digest,
        layer_digest: layer.digest,
        diff_id,
    })
}

/// The layer's file system, entries sorted by path, parents first.
fn layer_tar(binary: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let directories = [
        ("tmp/", 0o1777),
        ("usr/", 0o755),
        ("usr/local/", 0o755),
        ("usr/local/bin/", 0o755),
    ];
    for (path, mode) in directories {
        let mut header = header(tar::EntryType::Directory, mode, 0)?;
        header.set_path(path)?;
        header.set_cksum();
        tar.append(&header, std::io::empty())?;
    }
    let mut header = header(tar::EntryType::Regular, 0o755, binary.len() as u64)?;
    header.set_path(BINARY_PATH.trim_start_matches('/'))?;
    header.set_cksum();
    tar.append(&header, binary)?;
    tar.into_inner()
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> std::io::Result<tar::Header> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(EPOCH);
    header.set_uid(0);
    header.set_gid(0);
    header.set_username("root")?;
    header.set_groupname("root")?;
    Ok(header)
}

/// gzip with no file name and a zero time in its header, so equal input gives equal
/// bytes.
fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder: GzEncoder<Vec<u8>> = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes)?;
    encoder.finish()
}
