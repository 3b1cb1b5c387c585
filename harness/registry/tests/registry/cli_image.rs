//! The CLI's container image: a deterministic layout of one layer holding the binary,
//! which skopeo reads as a linux/amd64 image, on disk and once pushed.

use crate::support::{self, Registry, TRANSPORT};
use c4mesh_registry::{
    cli_image, push_layout, Credentials, BINARY_PATH, CONFIG_MEDIA_TYPE, IMAGE_USER,
    LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE,
};
use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// A real executable: this test's own binary.
fn binary() -> Vec<u8> {
    std::fs::read(std::env::current_exe().expect("this test's path")).expect("this test's binary")
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn blob(dir: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(
        dir.join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").expect("a sha256 digest")),
    )
    .expect("a blob of the layout")
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("JSON")
}

#[test]
fn the_cli_image_layout_is_deterministic_and_complete() {
    let binary = binary();
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let image = cli_image(&binary, "v1", one.path()).unwrap();
    assert_eq!(
        cli_image(&binary, "v1", two.path()).unwrap(),
        image,
        "same binary, same image"
    );

    let index = json(&std::fs::read(one.path().join("index.json")).unwrap());
    assert_eq!(index["manifests"][0]["digest"], image.digest.as_str());
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "v1"
    );
    let manifest_bytes = blob(one.path(), &image.digest);
    assert_eq!(sha256(&manifest_bytes), image.digest);
    let manifest = json(&manifest_bytes);
    assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
    assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
    assert_eq!(manifest["config"]["digest"], image.config_digest.as_str());
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    assert_eq!(manifest["layers"][0]["mediaType"], LAYER_MEDIA_TYPE);
    assert_eq!(manifest["layers"][0]["digest"], image.layer_digest.as_str());

    let config = json(&blob(one.path(), &image.config_digest));
    assert_eq!(
        (config["architecture"].as_str(), config["os"].as_str()),
        (Some("amd64"), Some("linux"))
    );
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!([BINARY_PATH])
    );
    assert_eq!(config["config"]["User"], IMAGE_USER, "not root");
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([image.diff_id])
    );

    let compressed = blob(one.path(), &image.layer_digest);
    assert_eq!(manifest["layers"][0]["size"], compressed.len());
    let mut tar = Vec::new();
    GzDecoder::new(compressed.as_slice())
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(
        sha256(&tar),
        image.diff_id,
        "the diff id is the uncompressed layer's"
    );
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut entries = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header();
        let path = entry.path().unwrap().display().to_string();
        let (mode, mtime, uid, gid) = (
            header.mode().unwrap(),
            header.mtime().unwrap(),
            header.uid().unwrap(),
            header.gid().unwrap(),
        );
        assert_eq!((mtime, uid, gid), (0, 0, 0), "{path}");
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        if path == BINARY_PATH.trim_start_matches('/') {
            assert_eq!(content, binary, "the binary as given");
        }
        entries.push((path, mode));
    }
    let expected: Vec<(String, u32)> = [
        ("tmp/", 0o1777),
        ("usr/", 0o755),
        ("usr/local/", 0o755),
        ("usr/local/bin/", 0o755),
        ("usr/local/bin/c4mesh", 0o755),
    ]
    .iter()
    .map(|(p, m)| (p.to_string(), *m))
    .collect();
    let paths = |e: &[(String, u32)]| {
        e.iter()
            .map(|(p, _)| p.trim_end_matches('/').to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(paths(&entries), paths(&expected), "sorted, parents first");
    assert_eq!(
        entries.iter().map(|e| e.1).collect::<Vec<_>>(),
        expected.iter().map(|e| e.1).collect::<Vec<_>>()
    );

    // skopeo reads the layout itself as an image.
    let layout = format!("oci:{}:v1", one.path().display());
    let inspected = support::skopeo_json(&["inspect", &layout]);
    assert_eq!(inspected["Architecture"], "amd64", "{inspected}");
    assert_eq!(inspected["Os"], "linux");
    assert_eq!(inspected["Digest"], image.digest.as_str());
}

#[tokio::test]
async fn the_cli_image_pushed_is_an_image_skopeo_reads() {
    let registry = Registry::open();
    let layout = registry.scratch("cli");
    let image = cli_image(&binary(), "v1", &layout).unwrap();
    let reference = registry.reference("c4mesh/cli:v1");
    let pushed = push_layout(&layout, &reference, &Credentials::Anonymous, TRANSPORT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", registry.log()));
    assert_eq!(pushed.digest, image.digest);

    let inspected = support::skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        &registry.docker("c4mesh/cli:v1"),
    ]);
    assert_eq!(inspected["Digest"], image.digest.as_str(), "{inspected}");
    assert_eq!(inspected["Architecture"], "amd64");
    assert_eq!(inspected["Os"], "linux");
    assert_eq!(inspected["Layers"], serde_json::json!([image.layer_digest]));
    let config = support::skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        "--config",
        &registry.docker("c4mesh/cli:v1"),
    ]);
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!([BINARY_PATH])
    );
}
