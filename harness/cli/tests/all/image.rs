//! `c4mesh image` end to end, as the replay Job's pods meet it: a static binary made
//! into an image, pushed to a real registry on loopback, read back by skopeo as an OCI
//! image, pulled into an OCI layout, and the binary taken out of the layer run as the
//! Job's container runs it (`command: [c4mesh]` looked up on the image's `PATH`).
//!
//! The static binary is a two-line program compiled here with `rustc` (crt-static),
//! standing in for c4mesh, whose static build (`scripts/image.sh`) takes many minutes.

use crate::command::c4mesh;
use crate::registry::{self, Registry};
use c4mesh_manifests::{replay_job, ReplayJobOptions};
use c4mesh_registry::{
    BINARY_PATH, CONFIG_MEDIA_TYPE, IMAGE_USER, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE,
};
use flate2::read::GzDecoder;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the stand-in prints first, before its arguments.
const MARKER: &str = "c4mesh-image-test-binary";

/// A statically linked executable that prints [`MARKER`] and its arguments.
fn static_binary(dir: &Path) -> PathBuf {
    let source = dir.join("marker.rs");
    std::fs::write(
        &source,
        format!(
            "fn main() {{\n    \
             let args: Vec<String> = std::env::args().skip(1).collect();\n    \
             println!(\"{MARKER} {{}}\", args.join(\" \"));\n}}\n"
        ),
    )
    .expect("the stand-in's source");
    let binary = dir.join("marker");
    let output = Command::new("rustc")
        .args([
            "--edition=2021",
            "-O",
            "-C",
            "target-feature=+crt-static",
            "-o",
        ])
        .arg(&binary)
        .arg(&source)
        .output()
        .unwrap_or_else(|e| panic!("running rustc, which builds the stand-in binary: {e}"));
    assert!(
        output.status.success(),
        "rustc -C target-feature=+crt-static: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    binary
}

fn json_file(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn blob_path(layout: &Path, digest: &serde_json::Value) -> PathBuf {
    let digest = digest.as_str().expect("a digest");
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").expect("a sha256 digest"))
}

/// The image's file system, unpacked from the one layer of the layout's only image
/// into `root`.
fn unpack(layout: &Path, root: &Path) {
    let index = json_file(&layout.join("index.json"));
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1, "{index}");
    let manifest = json_file(&blob_path(layout, &manifests[0]["digest"]));
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "{manifest}");
    let layer = std::fs::File::open(blob_path(layout, &layers[0]["digest"])).expect("the layer");
    tar::Archive::new(GzDecoder::new(layer))
        .unpack(root)
        .expect("the layer unpacks");
}

/// Where a container runtime finds `command` in `root`: as a path, or on the `PATH`
/// of the image config's `Env`.
fn look_up(root: &Path, config: &serde_json::Value, command: &str) -> PathBuf {
    let inside = |path: &str| root.join(path.trim_start_matches('/'));
    if command.contains('/') {
        return inside(command);
    }
    let env = config["config"]["Env"].as_array().expect("Env");
    let path = env
        .iter()
        .find_map(|entry| entry.as_str()?.strip_prefix("PATH="))
        .unwrap_or_else(|| panic!("the image sets no PATH: {config}"));
    path.split(':')
        .map(|dir| inside(dir).join(command))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{command} is not on the image's PATH {path}"))
}

#[test]
fn image_of_a_static_binary_is_pushed_pulled_back_and_runs_as_the_job_runs_it() {
    let registry = Registry::open();
    let scratch = registry.scratch("image");
    let binary = static_binary(&scratch);
    let written = scratch.join("written");
    let (code, stdout, stderr) = c4mesh(&[
        "image",
        "--binary",
        &binary.display().to_string(),
        "--out",
        &written.display().to_string(),
        "--tag",
        "v1",
        "--push",
        &format!("oci://{}/c4mesh/cli:v1", registry.host()),
        "--plain-http",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}\n{}", registry.log());
    let digest = stdout
        .lines()
        .find_map(|line| line.strip_prefix("image   "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the image line: {stdout}"));
    assert!(
        stdout.contains(&format!(
            "pushed  oci://{}/c4mesh/cli@{digest}",
            registry.host()
        )),
        "{stdout}"
    );

    let remote = registry.docker("c4mesh/cli:v1");
    let inspected = registry::skopeo_json(&["inspect", "--tls-verify=false", &remote]);
    assert_eq!(inspected["Digest"], digest, "{inspected}");
    assert_eq!(
        (inspected["Os"].as_str(), inspected["Architecture"].as_str()),
        (Some("linux"), Some("amd64"))
    );
    let (manifest, served) = registry::skopeo_raw_manifest(
        &["--tls-verify=false", &remote],
        &registry.scratch("skopeo"),
    );
    assert_eq!(served, digest, "the digest the registry serves");
    assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
    assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
    assert_eq!(manifest["layers"][0]["mediaType"], LAYER_MEDIA_TYPE);
    let config = registry::skopeo_json(&["inspect", "--tls-verify=false", "--config", &remote]);
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!([BINARY_PATH]),
        "{config}"
    );
    assert_eq!(config["config"]["User"], IMAGE_USER, "not root");

    // Pulled back by skopeo, not read from what c4mesh wrote.
    let pulled = scratch.join("pulled");
    registry::skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &remote,
        &format!("oci:{}:v1", pulled.display()),
    ]);
    let root = scratch.join("root");
    unpack(&pulled, &root);
    let entrypoint = root.join(BINARY_PATH.trim_start_matches('/'));
    assert_eq!(
        std::fs::read(&entrypoint).expect("the binary in the layer"),
        std::fs::read(&binary).expect("the binary given"),
        "the binary as given"
    );
    let mode = std::fs::metadata(&entrypoint)
        .expect("its metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o755, 0o755, "executable by anyone: {mode:o}");

    // The Job's container: its command found on the image's PATH, given its args.
    let job = replay_job(&ReplayJobOptions::new(2, 10.0, "1s")).expect("a replay Job");
    let spec = job.job.spec.expect("a Job spec");
    let container = &spec.template.spec.expect("a pod spec").containers[0];
    let command = container.command.clone().expect("the Job sets the command");
    let program = look_up(&root, &config, &command[0]);
    assert_eq!(
        program, entrypoint,
        "the Job's command is the image's binary"
    );
    let args = container.args.clone().expect("the Job's args");
    let output = Command::new(&program)
        .args(&command[1..])
        .args(&args)
        .env_clear()
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{MARKER} {}\n", args.join(" "))
    );
}

#[test]
fn image_refuses_a_dynamic_binary_and_a_file_that_is_no_executable() {
    let out = tempfile::tempdir().expect("a temporary directory");
    let out_arg = out.path().join("layout").display().to_string();
    let (code, _, stderr) = c4mesh(&["image", "--binary", "/bin/true", "--out", &out_arg]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--binary /bin/true: linked dynamically (it asks for /lib64/ld-linux")
            && stderr.contains("scripts/image.sh"),
        "{stderr}"
    );
    // Without --binary, this binary, which the tests build dynamically linked.
    let (code, _, stderr) = c4mesh(&["image", "--out", &out_arg]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("linked dynamically"), "{stderr}");

    let script = out.path().join("run.sh");
    std::fs::write(&script, "#!/bin/sh\nexec c4mesh \"$@\"\n").expect("a script");
    let (code, _, stderr) = c4mesh(&[
        "image",
        "--binary",
        &script.display().to_string(),
        "--out",
        &out_arg,
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not an ELF executable"), "{stderr}");
    assert!(!out.path().join("layout").exists(), "nothing written");
}
