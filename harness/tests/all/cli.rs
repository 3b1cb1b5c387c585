//! `c4mesh run`.

use crate::support::probe_wasm;
use std::process::Command;

fn c4mesh(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_c4mesh"))
        .args(args)
        .output()
        .expect("running c4mesh");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn run_prints_logs_then_the_response() {
    let wasm = probe_wasm();
    let (code, stdout, stderr) = c4mesh(&[
        "run",
        "--wasm",
        wasm.to_str().unwrap_or_default(),
        "--config",
        "{}",
        "-H",
        "host: api.c4ang.com",
        "--upstream-status",
        "404",
        "GET",
        "/probe/plain",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "info probe-start: on_vm_start size=0 vm_configuration=0 null"
    );
    assert!(
        lines.contains(&"info probe: /probe/plain on_http_request_headers headers=5 end=true"),
        "{stdout}"
    );
    let status = lines
        .iter()
        .position(|l| *l == "HTTP 404")
        .expect("status line");
    assert!(lines[..status]
        .iter()
        .all(|l| l.split_once(' ').is_some_and(|(level, _)| level == "info")));
    assert!(
        lines[status + 1..].contains(&"x-probe-added: yes"),
        "{stdout}"
    );
}

#[test]
fn bad_arguments_name_the_flag() {
    let (code, _, stderr) = c4mesh(&["run", "--wasm", "x.wasm", "--workers", "zero", "GET", "/"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--workers"), "{stderr}");
    let (code, _, stderr) = c4mesh(&["run", "--wasm", "/nonexistent.wasm", "GET", "/"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("/nonexistent.wasm"), "{stderr}");
}
