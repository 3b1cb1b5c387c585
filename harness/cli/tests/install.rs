//! The binary as an operator installs it: `cargo install --path harness/cli` into a
//! temporary root, then run from an empty directory with nothing of the source tree
//! in reach: the filter, the no-op module and the conformance suite travel inside it.
//!
//! A test binary of its own, so no other test runs while `cargo install` (sharing the
//! workspace's target directory, so that it reuses the build) writes the binary.

use c4mesh_mesh::Client;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_installed_binary_runs_the_demo_the_mesh_and_the_suite_from_an_empty_directory() {
    let root = tempfile::tempdir().expect("an install root");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let install = Command::new(cargo)
        .args(["install", "--quiet", "--locked", "--path"])
        .arg(workspace_root().join("harness/cli"))
        .arg("--root")
        .arg(root.path())
        .arg("--target-dir")
        .arg(&target)
        .output()
        .expect("running cargo install");
    assert!(
        install.status.success(),
        "cargo install: {}",
        text(&install)
    );
    let binary = root.path().join("bin/c4mesh");

    // Nowhere near the repository, and no cache of modules from an earlier run.
    let empty = tempfile::tempdir().expect("an empty directory");
    let cache = tempfile::tempdir().expect("a cache directory");
    let c4mesh = |args: &[&str]| {
        let mut command = Command::new(&binary);
        command
            .current_dir(empty.path())
            .env("XDG_CACHE_HOME", cache.path())
            .args(args);
        command
    };
    let in_empty = |args: &[&str]| {
        let output = c4mesh(args)
            .output()
            .unwrap_or_else(|e| panic!("running c4mesh {args:?}: {e}"));
        assert!(
            output.status.success(),
            "c4mesh {args:?}: {}",
            text(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };

    let suite = in_empty(&["conformance", "--target", "wasm"]);
    assert!(
        suite.contains("failed 0, disagreements 0"),
        "the built-in suite: {suite}"
    );
    let scenarios: usize = suite
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("scenarios "))
        .and_then(|l| l.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("a summary line: {suite}"));
    assert!(scenarios > 90, "{scenarios} scenarios");

    let demo = in_empty(&["demo"]);
    assert!(demo.contains("1. Routing"), "{demo}");
    assert!(demo.contains("-> 200 from order-service"), "{demo}");

    // `up` serves until --for ends; a request through its gateway gets a service.
    let mut up = c4mesh(&["up", "--for", "20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting c4mesh up");
    let stdout = up.stdout.take().expect("piped");
    let started = Instant::now();
    let mut printed = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("c4mesh up's output");
        printed.push_str(&line);
        printed.push('\n');
        if line.starts_with("serving for") || started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    let gateway: SocketAddr = printed
        .lines()
        .find_map(|l| l.strip_prefix("gateway  http://"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("a gateway address in: {printed}"));
    let response = Client::new(gateway).get("/api/v1/orders/1", &[]);
    let answer = c4mesh(&["run", "GET", "/api/v1/orders/1"])
        .output()
        .expect("running c4mesh run");
    let _ = up.kill();
    let _ = up.wait();
    let response = response.unwrap_or_else(|e| panic!("{gateway}: {e:#}"));
    assert_eq!(response.status, 200, "{gateway}: {printed}");
    assert_eq!(
        response.json().expect("a service's JSON")["service"],
        "order-service"
    );
    assert!(answer.status.success(), "c4mesh run: {}", text(&answer));
    assert!(
        std::fs::read_dir(empty.path())
            .expect("readable")
            .next()
            .is_none(),
        "nothing is written to the working directory"
    );
}
