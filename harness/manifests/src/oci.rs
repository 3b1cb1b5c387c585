//! The filter as an OCI image that Istio's WasmPlugin can pull (`oci://...`).
//!
//! Istio accepts the Wasm OCI artifact layout: an image manifest whose config has
//! media type `application/vnd.module.wasm.config.v1+json` and exactly two layers, that
//! runtime configuration again and the module itself
//! (`application/vnd.module.wasm.content.layer.v1+wasm`): Istio 1.28's
//! `pkg/wasm/imagefetcher.go`, `extractOCIArtifactImage`, refuses any other number of
//! layers ("number of layers must be 2") and takes the layer of the Wasm media type. A
//! WasmPlugin pinning such an image by `sha256` gives the manifest's digest, not the
//! module's (`pkg/wasm/cache.go`, `getOrFetch`, compares it with
//! `ImageFetcher::PrepareFetch`'s `img.Digest().Hex`). The
//! package is written as an OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/...`) that `oras cp --from-oci-layout` or `skopeo copy oci:...` push
//! to a registry. Everything is content-addressed and free of timestamps, so the same
//! module always gives the same digest.

use crate::objects::sha256_hex;
use crate::Error;
use serde_json::json;
use std::path::Path;

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.module.wasm.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.module.wasm.content.layer.v1+wasm";

/// A written package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// `sha256:<hex>` of the image manifest: what `oci://repo@sha256:...` pins.
    pub digest: String,
    /// `sha256:<hex>` of the module (the layer).
    pub module_digest: String,
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

fn to_json(what: &str, value: &serde_json::Value) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|source| Error::Json {
        what: what.to_owned(),
        source,
    })
}

/// Writes `module` as an OCI image layout under `dir`, tagged `tag`.
pub fn package(module: &[u8], tag: &str, dir: &Path) -> Result<Package, Error> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|source| Error::Io {
        path: blobs.display().to_string(),
        source,
    })?;
    let put = |bytes: &[u8]| -> Result<(String, usize), Error> {
        let hex = sha256_hex(bytes);
        write(&blobs.join(&hex), bytes)?;
        Ok((format!("sha256:{hex}"), bytes.len()))
    };
    let (module_digest, module_size) = put(module)?;
    let config = to_json(
        "image config",
        &json!({"type": "envoy_proxy", "abiVersions": ["v0.2.1"], "rootIds": [""]}),
    )?;
    let (config_digest, config_size) = put(&config)?;
    let manifest = to_json(
        "image manifest",
        &json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config_size},
            "layers": [{
                "mediaType": CONFIG_MEDIA_TYPE,
                "digest": config_digest,
                "size": config_size
            }, {
                "mediaType": LAYER_MEDIA_TYPE,
                "digest": module_digest,
                "size": module_size,
                "annotations": {"org.opencontainers.image.title": "plugin.wasm"}
            }]
        }),
    )?;
    let (digest, manifest_size) = put(&manifest)?;
    let index = to_json(
        "image index",
        &json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": MANIFEST_MEDIA_TYPE,
                "digest": digest,
                "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": tag}
            }]
        }),
    )?;
    write(&dir.join("index.json"), &index)?;
    write(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    Ok(Package {
        digest,
        module_digest,
    })
}
