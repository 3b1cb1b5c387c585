//! OCI registries for c4mesh: what `c4mesh package --push oci://HOST/REPO:TAG` needs.
//!
//! The filter reaches a mesh as an OCI artifact that Istio's agent pulls, and the CLI
//! reaches a cluster as a container image. Both are written first as OCI image layouts
//! on disk (the filter's by `c4mesh_manifests::oci::package`, the CLI's by
//! [`cli_image`]), because a layout is content-addressed and deterministic: the digest
//! a WasmPlugin pins is known before anything is uploaded, and the same inputs always
//! give the same digest. This crate moves such a layout to a registry
//! ([`push_layout`]) byte for byte, so the manifest digest in the registry is the
//! layout's, and reads a Wasm image back ([`pull_wasm`]) checking every digest on the
//! way.
//!
//! ## What a WasmPlugin's `sha256` holds for an `oci://` url
//!
//! The manifest digest, not the module's. In Istio 1.28.0 the agent compares the
//! plugin's `sha256` with what it fetched in `pkg/wasm/cache.go`,
//! `(*LocalFileCache).getOrFetch`: the expected value is `GetOptions.Checksum`, filled
//! from the plugin's `sha256` by `rewriteVMConfig` in `pkg/wasm/convert.go`; the actual
//! value, for the `oci` scheme, is the `actualDigest` returned by
//! `(*ImageFetcher).PrepareFetch` in `pkg/wasm/imagefetcher.go`, which is
//! `img.Digest().Hex`, the hex sha256 of the image manifest, without the `sha256:`
//! prefix. Only for `http`/`https` urls is it the sha256 of the module bytes. When
//! `sha256` is empty and the url is pinned (`oci://HOST/REPO@sha256:HEX`),
//! `(*LocalFileCache).getEntry` takes the pinned digest as the checksum. Hence
//! [`Pushed::wasm_plugin_sha256`].
//!
//! The same fetcher decides which image shapes it accepts (the `binaryFetcher` of
//! `PrepareFetch`): the *compat* variant, whose last layer is a `tar+gzip` holding
//! `plugin.wasm`, or the *oci* variant, which `extractOCIArtifactImage` requires to
//! have exactly two manifest layers, one of them
//! `application/vnd.module.wasm.content.layer.v1+wasm` (the runtime config being the
//! other). The layout `c4mesh_manifests::oci::package` writes is that shape: the
//! runtime config as the manifest's config and again as the first layer, the module as
//! the second; [`pull_wasm`] looks for the module layer wherever it stands.
//!
//! ## Credentials and transport
//!
//! Credentials are looked up as docker and skopeo do ([`Credentials::from_docker_config`]):
//! the `auths` entry for the registry's host in `$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`, else anonymous. Credential helpers (`credsStore`,
//! `credHelpers`) are not run. TLS is the default; plain HTTP only when the caller asks
//! for [`Transport::PlainHttp`] (a registry on loopback). TLS uses rustls with the
//! `ring` provider the rest of the workspace uses (installed as the process's default
//! provider unless one is already) and the system's roots.

mod credentials;
mod distribution;
mod image;
mod layout;
mod reference;

pub use credentials::{docker_config_path, Credentials};
pub use distribution::{pull_wasm, push_layout, PulledWasm, Pushed, Transport};
pub use image::{
    cli_image, CliImage, BINARY_PATH, CONFIG_MEDIA_TYPE, IMAGE_USER, LAYER_MEDIA_TYPE,
};
pub use layout::MANIFEST_MEDIA_TYPE;
pub use reference::{Reference, ReferenceProblem};

use std::path::PathBuf;

/// What can go wrong reading references, credentials and layouts, or talking to a
/// registry. Each variant keeps its cause; match on the variant, not on the text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text is not `oci://HOST/REPO:TAG` or `oci://HOST/REPO@sha256:HEX`.
    #[error("{text:?} is not an OCI reference (oci://HOST/REPO:TAG or oci://HOST/REPO@sha256:HEX): {problem}")]
    Reference {
        text: String,
        problem: ReferenceProblem,
    },
    /// A docker config file could not be read.
    #[error("reading the docker config {path}: {source}")]
    DockerConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A docker config file is not the JSON docker writes.
    #[error("the docker config {path} is not valid: {source}")]
    DockerConfigJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// An `auths` entry's `auth` is not base64.
    #[error("the docker config {path}: auths.{key:?}.auth is not base64: {source}")]
    DockerConfigBase64 {
        path: PathBuf,
        key: String,
        #[source]
        source: base64::DecodeError,
    },
    /// An `auths` entry's `auth` does not decode to `username:password`.
    #[error("the docker config {path}: auths.{key:?}.auth is not base64 of username:password")]
    DockerConfigAuth { path: PathBuf, key: String },
    /// A file of an OCI image layout could not be read or written.
    #[error("the OCI image layout at {path}: {source}")]
    LayoutIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON document of an OCI image layout is not what the image spec says.
    #[error("the OCI image layout at {path}: {source}")]
    LayoutJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// An OCI image layout breaks the image spec in a way JSON parsing does not catch.
    #[error("the OCI image layout at {path}: {problem}")]
    Layout { path: PathBuf, problem: String },
    /// A blob's content does not hash to the digest that names it.
    #[error("{what} should have digest {expected} but has {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// The registry refused the credentials (or their absence).
    #[error("{registry} refused the credentials for {reference}: {source}")]
    Unauthorized {
        registry: String,
        reference: String,
        #[source]
        source: oci_client::errors::OciDistributionError,
    },
    /// The repository, tag or digest is not in the registry.
    #[error("{reference} is not in the registry: {source}")]
    NotFound {
        reference: String,
        #[source]
        source: oci_client::errors::OciDistributionError,
    },
    /// Any other failure of a registry operation (connection, TLS, protocol).
    #[error("{operation} {reference}: {source}")]
    Registry {
        operation: &'static str,
        reference: String,
        #[source]
        source: oci_client::errors::OciDistributionError,
    },
    /// A pulled manifest is not a Wasm image.
    #[error("{reference} is not a Wasm image: {problem}")]
    NotWasm { reference: String, problem: String },
    /// A pulled manifest is not an OCI image manifest at all.
    #[error("{reference} is not a Wasm image: its manifest is not an image manifest")]
    Manifest {
        reference: String,
        #[source]
        source: serde_json::Error,
    },
}
