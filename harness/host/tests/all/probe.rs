//! The ABI probe runs in the harness and in a real Envoy 1.40; the two transcripts, the
//! metrics and what the client got must be identical.
//!
//! The probe (`harness/probe`) calls every host function in normal and edge cases and
//! logs each outcome. Envoy is the reference: a difference is a bug of the harness.

use crate::support::{lines, probe_wasm};
use c4mesh_host::{CallOutcome, Exchange, Proxy, Request, Response};
use c4mesh_mesh::envoy::{Envoy, EnvoyConfig, ServiceRoute, Wasm};
use c4mesh_mesh::{Behaviour, Client, Upstream};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"{"probe":true}"#;
/// The plugin's name in both proxies: not the host's default, so `plugin_name` shows
/// whose name the host reports.
const PLUGIN_NAME: &str = "c4mesh-probe";
const LAST_LINE: &str = "probe: /probe/late-local deleted";

/// What the testbed's upstream answers, as the harness's upstream. Envoy's HTTP/1
/// codec delivers the end of a content-length body as a separate empty chunk, hence
/// the empty last chunk.
fn upstream_answer(path: &str) -> Response {
    let body = serde_json::json!({"service": "probe", "path": path}).to_string();
    Response::status(200)
        .header("content-type", "application/json")
        .body(body)
        .body("")
        .header("x-envoy-upstream-service-time", "1")
}

/// The same answer to a callout: Envoy's async client hands it over whole.
fn callout_answer(path: &str) -> Response {
    let body = serde_json::json!({"service": "probe", "path": path}).to_string();
    Response::status(200)
        .header("content-type", "application/json")
        .body(body)
        .header("x-envoy-upstream-service-time", "1")
}

/// The requests, as Envoy's codec and connection manager present them to the filter.
fn request(method: &str, path: &str, extra: &[(&str, &str)], body: Option<&str>) -> Request {
    let mut request = Request::new(method, path, "probe.local");
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

struct Run {
    transcript: Vec<String>,
    counter: u64,
    gauge: u64,
    /// (status, selected headers) per request, in order.
    responses: Vec<(u16, Vec<(String, String)>)>,
}

const SHOWN_HEADERS: [&str; 5] = [
    "content-type",
    "content-length",
    "x-local",
    "x-probe-added",
    "x-late-local",
];

fn shown(headers: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| SHOWN_HEADERS.contains(&k.as_str()))
        .cloned()
        .collect();
    out.sort();
    out
}

fn harness_run() -> Run {
    let mut proxy = Proxy::builder()
        .wasm_file(probe_wasm())
        .config(CONFIG)
        .name(PLUGIN_NAME)
        // Istio leaves the VM id empty, as the gateway's Wasm filter has it.
        .vm_id("")
        .clusters(["probe"])
        .upstream(|r| upstream_answer(r.header(":path").unwrap_or("")))
        .http_calls(|call| {
            CallOutcome::Response(callout_answer(call.headers.get_str(":path").unwrap_or("")))
        })
        .start()
        .expect("the probe starts in the harness");
    assert!(proxy.configured());
    let full = proxy
        .send(
            0,
            request(
                "POST",
                "/probe/full",
                &[("x-probe", "1")],
                Some("hello body"),
            ),
        )
        .expect("full");
    assert!(!full.finished, "the full request waits for the tick");
    proxy.advance(Duration::from_millis(5)).expect("tick");
    let full = proxy.exchange(full.id).expect("full");
    let local = proxy
        .send(0, request("GET", "/probe/local", &[], None))
        .expect("local");
    let plain = proxy
        .send(0, request("GET", "/probe/plain", &[], None))
        .expect("plain");
    let late = proxy
        .send(0, request("GET", "/probe/late-local", &[], None))
        .expect("late");
    assert!(proxy.faults().is_empty(), "{:?}", proxy.faults());
    let responses = [full, local, plain, late]
        .iter()
        .map(|e: &Exchange| {
            assert!(e.finished, "{e:?}");
            let r = e.response.as_ref().expect("a response");
            (r.status_code().unwrap_or(0), shown(&r.headers.to_strings()))
        })
        .collect();
    Run {
        transcript: lines(&proxy.logs()),
        counter: proxy.metric_value("probe_counter"),
        gauge: proxy.metric_value("probe_gauge"),
        responses,
    }
}

/// `level message` lines of the wasm logger in an Envoy log.
fn envoy_lines(log: &str) -> Vec<String> {
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

fn envoy_run() -> Run {
    let upstream =
        Upstream::start("probe", Behaviour::status(200)).expect("an upstream on loopback");
    // The generated gateway, with a route of its own for the probe's prefix.
    let config = EnvoyConfig::gateway(
        1,
        Wasm::Named {
            name: PLUGIN_NAME.into(),
            path: probe_wasm(),
            config: CONFIG.into(),
        },
        vec![ServiceRoute {
            name: "probe".into(),
            prefix: "/probe".into(),
            hosts: vec![upstream.addr()],
        }],
    )
    .expect("the gateway's plan");
    let envoy =
        Envoy::start(&config).unwrap_or_else(|e| panic!("this test needs Envoy 1.40: {e:#}"));
    let client = Client::new(envoy.listener);
    let mut responses = Vec::new();
    let raw = b"POST /probe/full HTTP/1.1\r\nhost: probe.local\r\nx-probe: 1\r\ncontent-length: 10\r\nconnection: close\r\n\r\nhello body";
    responses.push(client.send_raw(raw).expect("full"));
    for path in ["/probe/local", "/probe/plain", "/probe/late-local"] {
        responses.push(
            client
                .request("GET", path, Some("probe.local"), &[])
                .expect(path),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !envoy.log().contains(LAST_LINE) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let counter = envoy
        .stat("wasmcustom.probe_counter")
        .ok()
        .flatten()
        .unwrap_or(0);
    let gauge = envoy
        .stat("wasmcustom.probe_gauge")
        .ok()
        .flatten()
        .unwrap_or(0);
    Run {
        transcript: envoy_lines(&envoy.log()),
        counter,
        gauge,
        responses: responses
            .iter()
            .map(|r| (r.status, shown(&r.headers)))
            .collect(),
    }
}

/// The stream lines in order, and the start lines once each (Envoy starts the VM on its
/// main thread and again on each worker).
fn normalise(lines: &[String]) -> (Vec<String>, Vec<String>) {
    let mut start = Vec::new();
    let mut stream = Vec::new();
    for line in lines {
        let message = line.split_once(' ').map_or("", |(_, m)| m);
        if message.starts_with("probe-start: ") {
            if !start.contains(line) {
                start.push(line.clone());
            }
        } else if message.starts_with("probe: ") {
            stream.push(line.clone());
        }
    }
    (start, stream)
}

/// Where the two transcripts first differ, with the whole of both written to files.
fn first_difference(a: &[String], b: &[String]) -> String {
    let dir = std::env::temp_dir();
    let files = [("harness", a), ("envoy", b)].map(|(name, lines)| {
        let path = dir.join(format!("c4mesh-probe-{name}.txt"));
        let _ = std::fs::write(&path, lines.join("\n") + "\n");
        path.display().to_string()
    });
    let at = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let window = |v: &[String]| v[at.saturating_sub(3)..(at + 3).min(v.len())].join("\n  ");
    format!(
        "first difference at line {at} (harness {} lines, Envoy {} lines; all of them in {} and {})\nharness:\n  {}\nenvoy:\n  {}",
        a.len(),
        b.len(),
        files[0],
        files[1],
        window(a),
        window(b)
    )
}

#[test]
fn probe_transcript_is_identical_in_the_harness_and_in_envoy() {
    let harness = harness_run();
    let envoy = envoy_run();
    let (harness_start, harness_stream) = normalise(&harness.transcript);
    let (envoy_start, envoy_stream) = normalise(&envoy.transcript);
    assert!(
        envoy_stream.iter().any(|l| l.ends_with(LAST_LINE)),
        "Envoy's transcript is incomplete:\n{}",
        envoy.transcript.join("\n")
    );
    assert!(
        harness_stream.len() > 250,
        "the probe logged only {} lines",
        harness_stream.len()
    );
    assert_eq!(harness_start, envoy_start, "start lines");
    assert!(
        harness_stream == envoy_stream,
        "{}",
        first_difference(&harness_stream, &envoy_stream)
    );
    assert_eq!(
        (harness.counter, harness.gauge),
        (envoy.counter, envoy.gauge),
        "metrics (counter, gauge)"
    );
    assert_eq!(harness.responses, envoy.responses, "what the client got");
}

#[test]
fn probe_transcript_in_the_harness_is_deterministic() {
    let a = harness_run();
    let b = harness_run();
    assert_eq!(a.transcript, b.transcript);
}
