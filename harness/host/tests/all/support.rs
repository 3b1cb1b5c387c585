//! Shared by the host's integration tests: the workspace's probe modules built on first
//! use, small test guests in WAT, requests and answers as Envoy presents them, and
//! transcripts as lines, read from the host or from an Envoy log, and compared.

use c4mesh_host::{DownstreamRequest, LogRecord, Proxy, ProxyBuilder, Response};
use c4mesh_mesh::envoy::{Envoy, EnvoyConfig, ServiceRoute, Wasm};
use c4mesh_mesh::{Behaviour, Client, Upstream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A module of the workspace (built by `c4mesh-guests`) as a file.
pub fn wasm_file(module: c4mesh_guests::Module) -> PathBuf {
    module
        .file()
        .unwrap_or_else(|e| panic!("{}: {e}", module.name()))
}

pub fn probe_wasm() -> PathBuf {
    wasm_file(c4mesh_guests::PROBE)
}

/// The probe that exports only seven callbacks (`harness/guests/probe-lean`).
pub fn probe_lean_wasm() -> PathBuf {
    wasm_file(c4mesh_guests::PROBE_LEAN)
}

/// A proxy builder for a WAT guest.
pub fn wat_proxy(source: &str) -> ProxyBuilder {
    let bytes = wat::parse_str(source).expect("valid WAT");
    Proxy::builder().wasm_bytes(bytes)
}

/// Log records as `level message` lines.
pub fn lines(logs: &[LogRecord]) -> Vec<String> {
    logs.iter()
        .map(|l| format!("{} {}", l.level, l.message))
        .collect()
}

/// A request for `probe.local` as Envoy's codec and connection manager present it to
/// the filter.
pub fn request(
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: Option<&str>,
) -> DownstreamRequest {
    let mut request = DownstreamRequest::new(method, path, "probe.local");
    for (k, v) in extra {
        request = request.header(k, v);
    }
    if let Some(body) = body {
        request = request.header("content-length", &body.len().to_string());
    }
    request = request
        .header("x-forwarded-proto", "http")
        .header("x-request-id", "2f1e2a36-5a7b-4c38-9b3e-0d6c1f3a9e11");
    if let Some(body) = body {
        request = request.body(body);
    }
    request
}

/// What the testbed's upstream (`c4mesh_mesh::Upstream` named `probe`) answers, as the
/// host's upstream. Envoy's HTTP/1 codec delivers the end of a content-length body as a
/// separate empty chunk, hence the empty last chunk.
fn upstream_answer(path: &str) -> Response {
    let body = serde_json::json!({"service": "probe", "path": path}).to_string();
    Response::status(200)
        .header("content-type", "application/json")
        .body(body)
        .body("")
        .header("x-envoy-upstream-service-time", "1")
}

/// `level message` lines of the wasm logger in an Envoy log.
pub fn envoy_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| {
            let parts: Vec<&str> = line.splitn(4, "][").collect();
            if parts.len() < 4 || !parts[3].starts_with("wasm] ") {
                return None;
            }
            let level = match parts[2] {
                "warning" => "warn",
                other => other,
            };
            let rest = parts[3].split_once(" wasm log")?.1;
            let message = rest.split_once(": ")?.1;
            Some(format!("{level} {message}"))
        })
        .collect()
}

/// A probe in the host as the gateway runs it in Envoy: plugin `name`, Istio's empty VM
/// id, the `probe` cluster, and [`upstream_answer`] for the testbed's upstream.
pub fn probe_proxy(module: PathBuf, config: &str, name: &str) -> ProxyBuilder {
    Proxy::builder()
        .wasm_file(module)
        .config(config)
        .name(name)
        // Istio leaves the VM id empty, as the gateway's Wasm filter has it.
        .vm_id("")
        .clusters(["probe"])
        .upstream(|r| upstream_answer(r.header(":path").unwrap_or("")))
}

/// A real Envoy 1.40 and what it routes to.
pub struct Gateway {
    pub envoy: Envoy,
    pub client: Client,
    /// Kept for as long as Envoy runs.
    _upstream: Option<Upstream>,
}

/// The generated gateway with one worker, running `module` as the Wasm plugin `name`
/// with `config`; with a `prefix`, that prefix goes to the `probe` service, an upstream
/// on loopback. Fails the test, saying so, when there is no Envoy (`ENVOY_BIN`).
pub fn envoy_gateway(name: &str, module: PathBuf, config: &str, prefix: Option<&str>) -> Gateway {
    let upstream = prefix.map(|prefix| {
        let upstream =
            Upstream::start("probe", Behaviour::status(200)).expect("an upstream on loopback");
        let route = ServiceRoute {
            name: "probe".into(),
            prefix: prefix.into(),
            hosts: vec![upstream.addr()],
        };
        (upstream, route)
    });
    let (upstream, services) = match upstream {
        Some((upstream, route)) => (Some(upstream), vec![route]),
        None => (None, Vec::new()),
    };
    let wasm = Wasm::Named {
        name: name.into(),
        path: module,
        config: config.into(),
    };
    let config = EnvoyConfig::gateway(1, wasm, services).expect("the gateway's plan");
    let envoy =
        Envoy::start(&config).unwrap_or_else(|e| panic!("this test needs Envoy 1.40: {e:#}"));
    Gateway {
        client: Client::new(envoy.listener),
        envoy,
        _upstream: upstream,
    }
}

/// Waits up to 10 s for Envoy to log `text`; whether it did.
pub fn wait_for_log(envoy: &Envoy, text: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !envoy.log().contains(text) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// A transcript split into its start lines, once each (Envoy starts the VM on its main
/// thread and again on each worker), and its stream lines in order. A line belongs to
/// the start when its message begins with one of `start`, to the streams when it begins
/// with `stream`; other lines are dropped.
pub fn normalise(lines: &[String], start: &[&str], stream: &str) -> (Vec<String>, Vec<String>) {
    let mut starts = Vec::new();
    let mut streams = Vec::new();
    for line in lines {
        let message = line.split_once(' ').map_or("", |(_, m)| m);
        if start.iter().any(|s| message.starts_with(s)) {
            if !starts.contains(line) {
                starts.push(line.clone());
            }
        } else if message.starts_with(stream) {
            streams.push(line.clone());
        }
    }
    (starts, streams)
}

/// Where the host's and Envoy's transcripts first differ, with the whole of both
/// written to `host.txt` and `envoy.txt` in a temporary directory `c4mesh-<probe>-*`.
pub fn first_difference(probe: &str, host: &[String], envoy: &[String]) -> String {
    // Kept on purpose: the transcripts are for reading after the test has failed.
    let dir = tempfile::Builder::new()
        .prefix(&format!("c4mesh-{probe}-"))
        .tempdir()
        .expect("a temporary directory")
        .keep();
    let files = [("host", host), ("envoy", envoy)].map(|(side, lines)| {
        let path = dir.join(format!("{side}.txt"));
        let _ = std::fs::write(&path, lines.join("\n") + "\n");
        path.display().to_string()
    });
    let at = host
        .iter()
        .zip(envoy)
        .position(|(x, y)| x != y)
        .unwrap_or(host.len().min(envoy.len()));
    let window = |v: &[String]| v[at.saturating_sub(3)..(at + 3).min(v.len())].join("\n  ");
    format!(
        "first difference at line {at} (host {} lines, Envoy {} lines; all of them in {} and {})\nhost:\n  {}\nenvoy:\n  {}",
        host.len(),
        envoy.len(),
        files[0],
        files[1],
        window(host),
        window(envoy)
    )
}

/// A minimal proxy-wasm guest: on request headers it reads `x-fault` and loops
/// forever (`loop`), traps (`trap`), or grows its memory past any limit (`memory`);
/// otherwise it logs `ok` and continues. It also imports a host function no host has,
/// and calls it at start, refusing to start unless it answers Unimplemented (12).
pub const FAULT_GUEST: &str = r#"
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_from_the_future" (func $future (param i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 16) "x-fault")
  (data (i32.const 32) "ok")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (i32.eq (call $future (i32.const 7)) (i32.const 12)))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param i32 i32) (result i32)
    (local $first i32)
    (if (i32.eqz (call $get (i32.const 0) (i32.const 16) (i32.const 7) (i32.const 64) (i32.const 68)))
      (then
        (local.set $first (i32.load8_u (i32.load (i32.const 64))))
        (if (i32.eq (local.get $first) (i32.const 108)) (then (loop $forever (br $forever))))
        (if (i32.eq (local.get $first) (i32.const 116)) (then unreachable))
        (if (i32.eq (local.get $first) (i32.const 109))
          (then
            (if (i32.eq (memory.grow (i32.const 60000)) (i32.const -1)) (then unreachable))))))
    (drop (call $log (i32.const 2) (i32.const 32) (i32.const 2)))
    (i32.const 0))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))
"#;
