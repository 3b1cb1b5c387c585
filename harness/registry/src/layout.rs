//! OCI image layouts (`oci-layout`, `index.json`, `blobs/sha256/HEX`) read for a push
//! and written for the CLI's image.
//!
//! Reading checks what a registry would otherwise reject half-way through an upload:
//! one manifest in the index, every blob present, of the size its descriptor states
//! and hashing to the digest that names it. Writing uses typed documents, so the bytes
//! (and the digests) do not depend on how a JSON map orders its keys.

use crate::reference::valid_digest;
use crate::Error;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

/// The OCI image manifest media type, which both layouts of this project use.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker's image manifest, which a layout may also hold.
pub(crate) const DOCKER_MANIFEST_MEDIA_TYPE: &str =
    "application/vnd.docker.distribution.manifest.v2+json";
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// A content descriptor: what a manifest or an index says about a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
}

/// The one annotation this crate writes (`org.opencontainers.image.ref.name`); others
/// are kept when read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Annotations {
    #[serde(
        rename = "org.opencontainers.image.ref.name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ref_name: Option<String>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// An image manifest, as far as pushing and pulling need it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Index {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    manifests: Vec<Descriptor>,
}

/// A blob read from a layout, its digest checked.
#[derive(Debug, Clone)]
pub(crate) struct Blob {
    pub descriptor: Descriptor,
    pub bytes: Vec<u8>,
}

/// The one image of a layout: its manifest (bytes exactly as written) and the blobs it
/// names, config first.
#[derive(Debug)]
pub(crate) struct Image {
    pub manifest: Blob,
    pub blobs: Vec<Blob>,
}

/// `sha256:HEX` of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn layout_problem(dir: &Path, problem: impl Into<String>) -> Error {
    Error::Layout {
        path: dir.to_owned(),
        problem: problem.into(),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::LayoutIo {
        path: path.to_owned(),
        source,
    })
}

fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf, Error> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if valid_digest(digest) => Ok(dir.join("blobs/sha256").join(hex)),
        _ => Err(layout_problem(
            dir,
            format!("{digest:?} is not a sha256 digest this layout can hold"),
        )),
    }
}

/// Reads the blob `descriptor` names and checks its size and digest.
fn read_blob(dir: &Path, descriptor: &Descriptor, what: &str) -> Result<Blob, Error> {
    let path = blob_path(dir, &descriptor.digest)?;
    let bytes = read_file(&path)?;
    let actual = sha256_digest(&bytes);
    if actual != descriptor.digest {
        return Err(Error::DigestMismatch {
            what: format!("{what} {}", path.display()),
            expected: descriptor.digest.clone(),
            actual,
        });
    }
    if bytes.len() as u64 != descriptor.size {
        return Err(layout_problem(
            dir,
            format!(
                "{what} {} is {} bytes, its descriptor says {}",
                descriptor.digest,
                bytes.len(),
                descriptor.size
            ),
        ));
    }
    Ok(Blob {
        descriptor: descriptor.clone(),
        bytes,
    })
}

/// Reads the single image of the layout at `dir`.
pub(crate) fn read(dir: &Path) -> Result<Image, Error> {
    read_file(&dir.join("oci-layout"))?;
    let index_path = dir.join("index.json");
    let index: Index =
        serde_json::from_slice(&read_file(&index_path)?).map_err(|source| Error::LayoutJson {
            path: index_path.clone(),
            source,
        })?;
    let [entry] = index.manifests.as_slice() else {
        return Err(layout_problem(
            dir,
            format!(
                "index.json lists {} manifests; a push takes a layout of one image",
                index.manifests.len()
            ),
        ));
    };
    if entry.media_type != MANIFEST_MEDIA_TYPE && entry.media_type != DOCKER_MANIFEST_MEDIA_TYPE {
        return Err(layout_problem(
            dir,
            format!(
                "index.json names a {}, not an image manifest",
                entry.media_type
            ),
        ));
    }
    let manifest = read_blob(dir, entry, "the image manifest")?;
    let parsed: Manifest =
        serde_json::from_slice(&manifest.bytes).map_err(|source| Error::LayoutJson {
            path: dir
                .join("blobs/sha256")
                .join(entry.digest.trim_start_matches("sha256:")),
            source,
        })?;
    let mut blobs = vec![read_blob(dir, &parsed.config, "the image config")?];
    for layer in &parsed.layers {
        // A blob named twice (the Wasm image's runtime config is its config and a
        // layer) is one blob to the registry.
        if blobs.iter().all(|b| b.descriptor.digest != layer.digest) {
            blobs.push(read_blob(dir, layer, "a layer")?);
        }
    }
    Ok(Image { manifest, blobs })
}

// === writing ===

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(path, bytes).map_err(|source| Error::LayoutIo {
        path: path.to_owned(),
        source,
    })
}

pub(crate) fn to_json<T: Serialize>(dir: &Path, value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|source| Error::LayoutJson {
        path: dir.to_owned(),
        source,
    })
}

/// Writes `bytes` under `blobs/sha256/` and describes them as `media_type`.
pub(crate) fn write_blob(dir: &Path, media_type: &str, bytes: &[u8]) -> Result<Descriptor, Error> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|source| Error::LayoutIo {
        path: blobs.clone(),
        source,
    })?;
    let digest = sha256_digest(bytes);
    write_file(&blob_path(dir, &digest)?, bytes)?;
    Ok(Descriptor {
        media_type: media_type.to_owned(),
        digest,
        size: bytes.len() as u64,
        annotations: None,
    })
}

/// Writes `manifest` as a blob and `index.json` and `oci-layout` naming it `tag`.
pub(crate) fn write_image(dir: &Path, manifest: &Manifest, tag: &str) -> Result<Descriptor, Error> {
    let bytes = to_json(dir, manifest)?;
    let descriptor = write_blob(dir, MANIFEST_MEDIA_TYPE, &bytes)?;
    let index = Index {
        schema_version: 2,
        media_type: Some(INDEX_MEDIA_TYPE.to_owned()),
        manifests: vec![Descriptor {
            annotations: Some(Annotations {
                ref_name: Some(tag.to_owned()),
                other: serde_json::Map::new(),
            }),
            ..descriptor.clone()
        }],
    };
    write_file(&dir.join("index.json"), &to_json(dir, &index)?)?;
    write_file(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    Ok(descriptor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_digest_is_lower_case_hex() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn annotations_round_trip_other_keys() {
        let json = r#"{"mediaType":"m","digest":"d","size":1,"annotations":{"org.opencontainers.image.ref.name":"v1","org.opencontainers.image.title":"plugin.wasm"}}"#;
        let d: Descriptor = serde_json::from_str(json).unwrap();
        let a = d.annotations.as_ref().unwrap();
        assert_eq!(a.ref_name.as_deref(), Some("v1"));
        assert_eq!(a.other["org.opencontainers.image.title"], "plugin.wasm");
    }
}
