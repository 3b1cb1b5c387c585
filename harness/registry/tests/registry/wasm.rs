//! The filter's Wasm image: pushed from the layout `c4mesh package` writes, seen by
//! skopeo with Istio's media types and the layout's digest, pulled back byte for byte.

use crate::support::{self, Registry, TRANSPORT};
use c4mesh_manifests::oci;
use c4mesh_registry::{pull_wasm, push_layout, Credentials, Error, Reference, Transport};

#[tokio::test]
async fn the_filter_image_in_the_registry_is_the_layouts() {
    let registry = Registry::open();
    let module = support::wasm_module();
    let layout = registry.scratch("filter");
    let package = oci::package(&module, "v1", &layout).unwrap();
    let reference = registry.reference("c4mesh/filter:v1");

    let pushed = push_layout(&layout, &reference, &Credentials::Anonymous, TRANSPORT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", registry.log()));
    assert_eq!(
        pushed.digest, package.digest,
        "the manifest digest is the layout's"
    );
    assert_eq!(
        (pushed.uploaded, pushed.present),
        (2, 0),
        "config and module uploaded"
    );
    assert_eq!(
        pushed.pinned.to_string(),
        format!("oci://{}/c4mesh/filter@{}", registry.host(), package.digest)
    );
    assert_eq!(
        pushed.wasm_plugin_sha256(),
        package.digest.strip_prefix("sha256:").unwrap()
    );

    let docker = registry.docker("c4mesh/filter:v1");
    let (raw, digest) = support::skopeo_raw_manifest(
        &["--tls-verify=false", &docker],
        &registry.scratch("skopeo"),
    );
    assert_eq!(
        digest, pushed.digest,
        "skopeo's digest of what the registry serves"
    );
    assert_eq!(raw["mediaType"], oci::MANIFEST_MEDIA_TYPE);
    assert_eq!(
        raw["config"]["mediaType"],
        "application/vnd.module.wasm.config.v1+json"
    );
    // Istio 1.28's oci variant: exactly two layers, the runtime config and the module
    // (pkg/wasm/imagefetcher.go, extractOCIArtifactImage).
    let layers = raw["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{raw}");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.module.wasm.config.v1+json"
    );
    assert_eq!(layers[0]["digest"], raw["config"]["digest"]);
    assert_eq!(
        layers[1]["mediaType"],
        "application/vnd.module.wasm.content.layer.v1+wasm"
    );
    assert_eq!(layers[1]["digest"], package.module_digest.as_str());

    let pulled = pull_wasm(&reference, &Credentials::Anonymous, TRANSPORT)
        .await
        .unwrap();
    assert_eq!(pulled.module, module, "the module comes back byte for byte");
    assert_eq!(pulled.digest, package.digest);
    assert_eq!(pulled.module_digest, package.module_digest);
    let by_digest = pull_wasm(&pushed.pinned, &Credentials::Anonymous, TRANSPORT)
        .await
        .unwrap();
    assert_eq!(by_digest, pulled, "the pinned url pulls the same image");

    let again = push_layout(&layout, &reference, &Credentials::Anonymous, TRANSPORT)
        .await
        .unwrap();
    assert_eq!(
        (again.digest, again.uploaded, again.present),
        (pushed.digest.clone(), 0, 2)
    );

    // Pushing by digest alone, to another repository.
    let pinned = registry.reference(&format!("c4mesh/pinned@{}", package.digest));
    let by_digest = push_layout(&layout, &pinned, &Credentials::Anonymous, TRANSPORT)
        .await
        .unwrap();
    assert_eq!(by_digest.digest, package.digest);
}

#[tokio::test]
async fn a_pinned_digest_must_be_the_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let package = oci::package(&support::wasm_module(), "v1", dir.path()).unwrap();
    let other = format!("sha256:{}", "0".repeat(64));
    // Refused before any connection: nothing listens on port 9.
    let reference: Reference = format!("oci://127.0.0.1:9/c4mesh/filter:v1@{other}")
        .parse()
        .unwrap();
    let err = push_layout(dir.path(), &reference, &Credentials::Anonymous, TRANSPORT)
        .await
        .unwrap_err();
    match err {
        Error::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!((expected, actual), (other, package.digest));
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn what_is_missing_or_not_wasm_is_said_so() {
    let registry = Registry::open();
    let missing = pull_wasm(
        &registry.reference("c4mesh/filter:absent"),
        &Credentials::Anonymous,
        TRANSPORT,
    )
    .await
    .unwrap_err();
    assert!(matches!(missing, Error::NotFound { .. }), "{missing:?}");

    let layout = registry.scratch("cli");
    c4mesh_registry::cli_image(b"\x7fELF not really", "v1", &layout).unwrap();
    let reference = registry.reference("c4mesh/cli:v1");
    push_layout(&layout, &reference, &Credentials::Anonymous, TRANSPORT)
        .await
        .unwrap();
    let err = pull_wasm(&reference, &Credentials::Anonymous, TRANSPORT)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotWasm { .. }), "{err:?}");
}

#[test]
fn a_bad_reference_names_the_text() {
    let text = "oci://127.0.0.1:5000/C4mesh/filter:v1";
    let err = text.parse::<Reference>().unwrap_err();
    match &err {
        Error::Reference {
            text: named,
            problem,
        } => {
            assert_eq!(named, text);
            assert_eq!(*problem, c4mesh_registry::ReferenceProblem::Repository);
        }
        other => panic!("expected a reference error, got {other:?}"),
    }
    assert!(err.to_string().contains(text), "{err}");
}

#[tokio::test]
async fn a_layout_of_something_else_is_refused_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let reference: Reference = "oci://127.0.0.1:9/c4mesh/filter:v1".parse().unwrap();
    let err = push_layout(dir.path(), &reference, &Credentials::Anonymous, TRANSPORT)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::LayoutIo { .. }),
        "no oci-layout: {err:?}"
    );

    let package = oci::package(&support::wasm_module(), "v1", dir.path()).unwrap();
    let module = dir
        .path()
        .join("blobs/sha256")
        .join(package.module_digest.trim_start_matches("sha256:"));
    std::fs::write(&module, b"\0asm tampered").unwrap();
    let err = push_layout(dir.path(), &reference, &Credentials::Anonymous, TRANSPORT)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::DigestMismatch { .. }),
        "a tampered blob: {err:?}"
    );
}

#[tokio::test]
async fn tls_is_the_default_and_plain_http_is_only_on_request() {
    assert_eq!(Transport::default(), Transport::Tls);
    let registry = Registry::open();
    let layout = registry.scratch("filter");
    oci::package(&support::wasm_module(), "v1", &layout).unwrap();
    let reference = registry.reference("c4mesh/filter:v1");
    let err = push_layout(&layout, &reference, &Credentials::Anonymous, Transport::Tls)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Registry { .. }),
        "a TLS handshake with a plain HTTP server: {err:?}"
    );
    let err = pull_wasm(&reference, &Credentials::Anonymous, Transport::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Registry { .. }), "{err:?}");
}
