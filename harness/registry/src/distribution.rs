//! Pushing a layout to a registry and pulling a Wasm image back, over the OCI
//! distribution API (`oci-client`).
//!
//! A push uploads the layout's blobs (those the registry lacks), then the manifest as
//! the exact bytes of the layout, never re-serialised: the digest a WasmPlugin pins is
//! the sha256 of those bytes. It then asks the registry which digest the tag resolves
//! to and refuses to report success unless it is the layout's.

use crate::layout::{
    self, sha256_digest, Manifest, DOCKER_MANIFEST_MEDIA_TYPE, MANIFEST_MEDIA_TYPE,
};
use crate::{Credentials, Error, Reference};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::{Client, RegistryOperation};
use std::path::Path;

/// The Wasm module layer of Istio's *oci* image variant.
const WASM_LAYER_MEDIA_TYPE: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
const WASM_MAGIC: &[u8] = b"\0asm";

/// How to reach the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// HTTPS, the server verified against the system's roots.
    #[default]
    Tls,
    /// Plain HTTP, for a registry on loopback or a trusted network; only on request.
    PlainHttp,
}

/// A layout in a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `sha256:HEX` of the manifest, the layout's and the registry's.
    pub digest: String,
    /// The repository pinned to `digest` (`oci://HOST/REPO@sha256:HEX`).
    pub pinned: Reference,
    /// Blobs uploaded, and blobs the registry already held.
    pub uploaded: usize,
    pub present: usize,
}

/// A Wasm module pulled from a registry, every digest checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledWasm {
    pub module: Vec<u8>,
    /// `sha256:HEX` of the manifest.
    pub digest: String,
    /// `sha256:HEX` of the module.
    pub module_digest: String,
}

// === impl Pushed ===

impl Pushed {
    /// What a WasmPlugin whose `url` is this image's must carry as `sha256`: the
    /// manifest digest's hex, without `sha256:` (see the crate docs).
    pub fn wasm_plugin_sha256(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }
}

/// Pushes the one image of the OCI image layout at `dir` to `reference`, under its tag
/// (or by digest when it has none). A digest in `reference` must be the layout's.
pub async fn push_layout(
    dir: &Path,
    reference: &Reference,
    credentials: &Credentials,
    transport: Transport,
) -> Result<Pushed, Error> {
    let image = layout::read(dir)?;
    let digest = image.manifest.descriptor.digest.clone();
    if let Some(pinned) = reference.digest() {
        if pinned != digest {
            return Err(Error::DigestMismatch {
                what: format!("the image of {} pushed to {reference}", dir.display()),
                expected: pinned.to_owned(),
                actual: digest,
            });
        }
    }
    // The manifest goes to the tag when there is one; a reference carrying a digest
    // would otherwise be addressed by the digest alone.
    let target = match reference.tag() {
        Some(tag) => oci_client::Reference::with_tag(
            reference.host().to_owned(),
            reference.repository().to_owned(),
            tag.to_owned(),
        ),
        None => reference.to_oci(),
    };
    let client = client(transport, reference)?;
    let auth = credentials.to_oci();
    client
        .auth(&target, &auth, RegistryOperation::Push)
        .await
        .map_err(|e| failure("authenticating to push", reference, e))?;

    let (mut uploaded, mut present) = (0, 0);
    for blob in &image.blobs {
        let digest = &blob.descriptor.digest;
        let exists = client
            .blob_exists(&target, digest)
            .await
            .map_err(|e| failure("looking for a blob of", reference, e))?;
        if exists {
            present += 1;
            continue;
        }
        client
            .push_blob(&target, blob.bytes.clone(), digest)
            .await
            .map_err(|e| failure("uploading a blob to", reference, e))?;
        uploaded += 1;
    }

    let media_type =
        http::HeaderValue::from_str(&image.manifest.descriptor.media_type).map_err(|_| {
            Error::Layout {
                path: dir.to_owned(),
                problem: format!(
                    "the manifest media type {:?} is not a header value",
                    image.manifest.descriptor.media_type
                ),
            }
        })?;
    client
        .push_manifest_raw(&target, image.manifest.bytes.clone(), media_type)
        .await
        .map_err(|e| failure("pushing the manifest to", reference, e))?;

    let held = client
        .fetch_manifest_digest(&target, &auth)
        .await
        .map_err(|e| failure("reading back the manifest digest of", reference, e))?;
    if held != digest {
        return Err(Error::DigestMismatch {
            what: format!("the manifest {reference} holds after the push"),
            expected: digest,
            actual: held,
        });
    }
    Ok(Pushed {
        pinned: reference.pinned(&digest),
        digest,
        uploaded,
        present,
    })
}

/// Pulls the Wasm module of the image at `reference`: the manifest's layer of media
/// type `application/vnd.module.wasm.content.layer.v1+wasm`, wherever it stands among
/// the layers. The manifest is checked against a digest in `reference`, and the module
/// against its descriptor.
pub async fn pull_wasm(
    reference: &Reference,
    credentials: &Credentials,
    transport: Transport,
) -> Result<PulledWasm, Error> {
    let target = reference.to_oci();
    let client = client(transport, reference)?;
    let auth = credentials.to_oci();
    let (bytes, digest) = client
        .pull_manifest_raw(
            &target,
            &auth,
            &[MANIFEST_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE],
        )
        .await
        .map_err(|e| failure("pulling the manifest of", reference, e))?;
    let not_wasm = |problem: String| Error::NotWasm {
        reference: reference.to_string(),
        problem,
    };
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|source| Error::Manifest {
        reference: reference.to_string(),
        source,
    })?;
    let Some(layer) = manifest
        .layers
        .iter()
        .find(|l| l.media_type == WASM_LAYER_MEDIA_TYPE)
    else {
        let types: Vec<&str> = manifest
            .layers
            .iter()
            .map(|l| l.media_type.as_str())
            .collect();
        return Err(not_wasm(format!(
            "no layer of media type {WASM_LAYER_MEDIA_TYPE} among {types:?}"
        )));
    };
    let mut module = Vec::new();
    client
        .pull_blob(&target, layer.digest.as_str(), &mut module)
        .await
        .map_err(|e| failure("pulling the module of", reference, e))?;
    let module_digest = sha256_digest(&module);
    if module_digest != layer.digest {
        return Err(Error::DigestMismatch {
            what: format!("the module of {reference}"),
            expected: layer.digest.clone(),
            actual: module_digest,
        });
    }
    if !module.starts_with(WASM_MAGIC) {
        return Err(not_wasm(
            "its module layer does not start with the Wasm magic".to_owned(),
        ));
    }
    Ok(PulledWasm {
        module,
        digest,
        module_digest,
    })
}

/// A client for one operation. TLS goes through rustls with `ring`, installed as the
/// process's default provider unless one is already (reqwest is built without a
/// provider of its own, so the workspace compiles one crypto library, not two).
fn client(transport: Transport, reference: &Reference) -> Result<Client, Error> {
    // An error only says that a provider is already installed, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = ClientConfig {
        protocol: match transport {
            Transport::Tls => ClientProtocol::Https,
            Transport::PlainHttp => ClientProtocol::Http,
        },
        ..ClientConfig::default()
    };
    Client::try_from(config).map_err(|e| failure("setting up a client for", reference, e))
}

/// What the registry's answer says happened, from the error's variant and status.
fn failure(operation: &'static str, reference: &Reference, source: OciDistributionError) -> Error {
    let reference_text = reference.to_string();
    match status_of(&source) {
        Some(401 | 403) => Error::Unauthorized {
            registry: reference.host().to_owned(),
            reference: reference_text,
            source,
        },
        Some(404) => Error::NotFound {
            reference: reference_text,
            source,
        },
        _ => Error::Registry {
            operation,
            reference: reference_text,
            source,
        },
    }
}

/// The HTTP status an error stands for, when it stands for one.
fn status_of(error: &OciDistributionError) -> Option<u16> {
    match error {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => Some(401),
        OciDistributionError::ImageManifestNotFoundError(_) => Some(404),
        OciDistributionError::ServerError { code, .. } => Some(*code),
        OciDistributionError::RequestError(e) => e.status().map(|s| s.as_u16()),
        OciDistributionError::RegistryError { envelope, .. } => {
            envelope.errors.iter().find_map(|e| match e.code {
                OciErrorCode::Unauthorized => Some(401),
                OciErrorCode::Denied => Some(403),
                OciErrorCode::ManifestUnknown
                | OciErrorCode::NameUnknown
                | OciErrorCode::BlobUnknown
                | OciErrorCode::NotFound => Some(404),
                _ => None,
            })
        }
        _ => None,
    }
}
