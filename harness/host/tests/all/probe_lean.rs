//! The lean probe runs in the host and in a real Envoy 1.40; the two transcripts and
//! what the client got must be identical.
//!
//! The lean probe (`harness/guests/probe-lean`) exports seven callbacks and nothing else, where
//! the SDK-built probe exports all 27. Envoy calls only what a module exports, so this
//! is where the host shows it does the same: no `proxy_on_context_create`, and still
//! `on_log` for every stream; no body callbacks, and the bodies flow; no `on_done` or
//! `on_delete`, and the streams end. Envoy is the reference.
//!
//! A guest in WAT goes further than the probe's fixed set of exports: without any
//! response callback (nor `on_vm_start`, `on_configure`), the local reply its request
//! headers send must still reach the client, in the host as in Envoy.

use crate::support::{
    envoy_gateway, envoy_lines, first_difference, lines, normalise, probe_lean_wasm, probe_proxy,
    request, wait_for_log, wat_proxy,
};
use c4mesh_host::Exchange;
use std::io::Write;
use std::net::TcpStream;

const CONFIG: &str = r#"{"lean":true}"#;
const PLUGIN_NAME: &str = "c4mesh-probe-lean";
/// The root callbacks' lines (once per VM, and Envoy runs one VM per thread) and the
/// streams' lines.
const START: &[&str] = &["probe-lean: on_vm_start ", "probe-lean: on_configure "];
const STREAM: &str = "probe-lean: ";
/// The requests that get an answer, in order, with their extra headers.
const ANSWERED: [(&str, &[(&str, &str)]); 3] = [
    ("/lean/plain", &[]),
    ("/lean/local", &[]),
    ("/lean/plain", &[("x-probe", "1")]),
];
/// The last request: paused by the probe, then abandoned by the client.
const HELD: &str = "/lean/hold";
/// What the module exports, sorted: the seven entry points and its memory.
const EXPORTS: [&str; 8] = [
    "memory",
    "proxy_abi_version_0_2_1",
    "proxy_on_configure",
    "proxy_on_log",
    "proxy_on_memory_allocate",
    "proxy_on_request_headers",
    "proxy_on_response_headers",
    "proxy_on_vm_start",
];

struct Run {
    transcript: Vec<String>,
    /// (status, `x-lean`) per request, in order; status 0 when no response came.
    responses: Vec<(u16, Option<String>)>,
}

fn seen_by_client(exchange: &Exchange) -> (u16, Option<String>) {
    match &exchange.response {
        Some(r) => (
            r.status_code().unwrap_or(0),
            r.headers.get_str("x-lean").map(str::to_owned),
        ),
        None => (0, None),
    }
}

fn host_run() -> Run {
    let mut proxy = probe_proxy(probe_lean_wasm(), CONFIG, PLUGIN_NAME)
        .start()
        .expect("the lean probe starts in the host");
    assert!(proxy.configured());
    let mut responses = Vec::new();
    for (path, extra) in ANSWERED {
        let exchange = proxy
            .send(0, request("GET", path, extra, None))
            .expect(path);
        assert!(exchange.finished, "{exchange:?}");
        responses.push(seen_by_client(&exchange));
    }
    let held = proxy.send(0, request("GET", HELD, &[], None)).expect(HELD);
    assert!(!held.finished, "the probe holds {HELD}: {held:?}");
    proxy.reset(held.id).expect("the client goes away");
    let held = proxy.exchange(held.id).expect(HELD);
    assert!(held.finished && held.reset, "{held:?}");
    responses.push(seen_by_client(&held));
    assert!(proxy.faults().is_empty(), "{:?}", proxy.faults());
    Run {
        transcript: lines(&proxy.logs()),
        responses,
    }
}

fn envoy_run() -> Run {
    let gateway = envoy_gateway(PLUGIN_NAME, probe_lean_wasm(), CONFIG, Some("/lean"));
    let (envoy, client) = (&gateway.envoy, gateway.client);
    let mut responses = Vec::new();
    for (path, extra) in ANSWERED {
        let r = client
            .request("GET", path, Some("probe.local"), extra)
            .expect(path);
        responses.push((r.status, r.header("x-lean").map(str::to_owned)));
    }
    // The held request: sent by hand, and the connection closed once the probe holds it.
    let mut held = TcpStream::connect(envoy.listener).expect("a connection to Envoy");
    held.write_all(
        format!("GET {HELD} HTTP/1.1\r\nhost: probe.local\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .expect(HELD);
    let holding = format!("on_request_headers {HELD} ");
    assert!(
        wait_for_log(envoy, &holding),
        "Envoy never ran the request headers of {HELD}:\n{}",
        envoy.log()
    );
    drop(held);
    let ended = format!("on_log {HELD} ");
    assert!(
        wait_for_log(envoy, &ended),
        "Envoy never ran on_log for {HELD}:\n{}",
        envoy.log()
    );
    responses.push((0, None));
    Run {
        transcript: envoy_lines(&envoy.log()),
        responses,
    }
}

#[test]
fn lean_probe_exports_only_its_seven_callbacks() {
    let engine = wasmtime::Engine::default();
    let module = wasmtime::Module::from_file(&engine, probe_lean_wasm()).expect("the lean probe");
    let mut exports: Vec<&str> = module.exports().map(|e| e.name()).collect();
    exports.sort_unstable();
    assert_eq!(exports, EXPORTS);
}

#[test]
fn lean_probe_transcript_is_identical_in_the_host_and_in_envoy() {
    let host = host_run();
    let envoy = envoy_run();
    let (host_start, host_stream) = normalise(&host.transcript, START, STREAM);
    let (envoy_start, envoy_stream) = normalise(&envoy.transcript, START, STREAM);
    assert_eq!(
        host_stream.len(),
        3 * ANSWERED.len() + 2,
        "request headers, response headers and on_log per answered request, then \
         request headers and on_log for the held one:\n{}",
        host_stream.join("\n")
    );
    assert_eq!(host_start, envoy_start, "start lines");
    assert!(
        host_stream == envoy_stream,
        "{}",
        first_difference("probe-lean", &host_stream, &envoy_stream)
    );
    assert_eq!(host.responses, envoy.responses, "what the client got");
}

/// A guest that exports no response callback, no `on_vm_start` and no `on_configure`:
/// its request headers send a local reply (418, body `denied`) and pause, its `on_log`
/// logs one line.
const REPLY_ONLY_GUEST: &str = r#"
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response"
    (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "reply-only: on_request_headers")
  (data (i32.const 64) "reply-only: on_log")
  (data (i32.const 96) "denied")
  (func (export "proxy_abi_version_0_2_1"))
  ;; Never called: the guest asks the host for no buffer.
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 4096))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $reply (i32.const 418) (i32.const 0) (i32.const 0) (i32.const 96) (i32.const 6)
      (i32.const 128) (i32.const 4) (i32.const -1)))
    (drop (call $log (i32.const 2) (i32.const 16) (i32.const 30)))
    (i32.const 1))
  (func (export "proxy_on_log") (param i32)
    (drop (call $log (i32.const 2) (i32.const 64) (i32.const 18)))))
"#;

#[test]
fn a_local_reply_passes_a_module_without_response_callbacks() {
    let mut proxy = wat_proxy(REPLY_ONLY_GUEST)
        .start()
        .expect("a module without on_vm_start or on_configure starts");
    assert!(proxy.configured());
    let exchange = proxy
        .send(0, request("GET", "/reply", &[], None))
        .expect("/reply");
    let host = (
        exchange.finished,
        seen_by_client(&exchange).0,
        exchange.body(),
    );
    let host_lines = normalise(&lines(&proxy.logs()), &[], "reply-only: ").1;

    let path_dir = tempfile::Builder::new()
        .prefix("c4mesh-reply-only-")
        .tempdir()
        .expect("a temporary directory");
    let path = path_dir.path().join("c4mesh-reply-only.wasm");
    std::fs::write(&path, wat::parse_str(REPLY_ONLY_GUEST).expect("valid WAT"))
        .expect("a temp file");
    let gateway = envoy_gateway("c4mesh-reply-only", path.clone(), "", None);
    let envoy = &gateway.envoy;
    let r = gateway
        .client
        .request("GET", "/reply", Some("probe.local"), &[])
        .expect("/reply");
    assert!(wait_for_log(envoy, "reply-only: on_log"), "{}", envoy.log());
    let envoy_lines = normalise(&envoy_lines(&envoy.log()), &[], "reply-only: ").1;
    let _ = std::fs::remove_file(&path);
    assert_eq!(host, (true, r.status, r.body), "finished, status, body");
    assert_eq!(
        host_lines,
        [
            "info reply-only: on_request_headers",
            "info reply-only: on_log"
        ]
    );
    assert_eq!(host_lines, envoy_lines);
}
