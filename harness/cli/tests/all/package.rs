//! `c4mesh package --push` as an operator runs it, against a real registry on loopback
//! (the registry crate's test support: Debian's `docker-registry` and `skopeo`): the
//! filter built into the binary arrives in Istio's Wasm media types, and the digest to
//! pin in the WasmPlugin is the one the registry serves.

use crate::command::c4mesh;
use crate::registry::{self, Registry};

#[test]
fn package_pushes_the_built_in_filter_and_prints_the_digest_to_pin() {
    let registry = Registry::open();
    let target = format!("oci://{}/c4mesh/filter:0.1.0", registry.host());
    let (code, stdout, stderr) = c4mesh(&["package", "--push", &target, "--plain-http"]);
    assert_eq!(code, 0, "{stdout}{stderr}\n{}", registry.log());
    let pin = stdout
        .lines()
        .find_map(|l| l.strip_prefix("WasmPlugin: url: "))
        .unwrap_or_else(|| panic!("the WasmPlugin line: {stdout}"));
    let (url, sha256) = pin
        .split_once("  sha256: ")
        .unwrap_or_else(|| panic!("url and sha256: {pin}"));
    assert!(url.ends_with(&format!("@sha256:{sha256}")), "{pin}");

    let (manifest, digest) = registry::skopeo_raw_manifest(
        &[
            "--tls-verify=false",
            &registry.docker("c4mesh/filter:0.1.0"),
        ],
        &registry.scratch("skopeo"),
    );
    assert_eq!(
        digest,
        format!("sha256:{sha256}"),
        "the digest the registry serves"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.module.wasm.config.v1+json"
    );
    assert_eq!(
        manifest["layers"][1]["mediaType"],
        "application/vnd.module.wasm.content.layer.v1+wasm"
    );
    assert_eq!(
        manifest["layers"][1]["digest"],
        format!("sha256:{}", c4mesh_guests::FILTER.sha256_hex())
    );
}

#[test]
fn push_refuses_a_bad_reference() {
    let (code, _, stderr) = c4mesh(&["package", "--push", "docker://x/y:z"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--push") && stderr.contains("docker://x/y:z"),
        "{stderr}"
    );
}

#[test]
fn manifests_replay_job_writes_the_indexed_job_and_names_bad_flags() {
    let (code, stdout, stderr) = c4mesh(&[
        "manifests",
        "replay-job",
        "--shards",
        "4",
        "--rate",
        "400",
        "--duration",
        "30s",
        "--",
        "--slo",
        "p99<50ms",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("completionMode: Indexed"), "{stdout}");
    assert!(stdout.contains("$(JOB_COMPLETION_INDEX)/4"), "{stdout}");
    assert!(stdout.contains("p99<50ms"), "{stdout}");

    let (code, _, stderr) = c4mesh(&[
        "manifests",
        "replay-job",
        "--shards",
        "0",
        "--rate",
        "1",
        "--duration",
        "1s",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--shards"), "{stderr}");

    // A closed loop: replay splits the clients, so the rate is left out.
    let job = |replay_args: &[&str]| {
        let mut args = vec![
            "manifests",
            "replay-job",
            "--shards",
            "4",
            "--duration",
            "30s",
            "--",
        ];
        args.extend_from_slice(replay_args);
        c4mesh(&args)
    };
    let (code, stdout, stderr) = job(&["--concurrency", "64"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("--concurrency"), "{stdout}");
    assert!(!stdout.contains("--rate"), "{stdout}");
    let (code, _, stderr) = job(&["--cacert", "ca.pem"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("--cacert names a file the pods do not have"),
        "{stderr}"
    );
}
