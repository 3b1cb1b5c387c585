//! The ABI probe runs in the harness and in a real Envoy 1.40; the two transcripts, the
//! metrics and what the client got must be identical.
//!
//! The probe (`harness/guests/probe`) calls every host function in normal and edge cases and
//! logs each outcome. Envoy is the reference: a difference is a bug of the harness.

use crate::support::{
    envoy_gateway, envoy_lines, first_difference, lines, normalise, probe_proxy, probe_wasm,
    request, wait_for_log,
};
use c4mesh_host::{CallOutcome, Exchange, Response};
use std::time::Duration;

const CONFIG: &str = r#"{"probe":true}"#;
/// The plugin's name in both proxies: not the host's default, so `plugin_name` shows
/// whose name the host reports.
const PLUGIN_NAME: &str = "c4mesh-probe";
const LAST_LINE: &str = "probe: /probe/late-local deleted";
/// Where the start lines and the stream lines of the transcript begin.
const START: &[&str] = &["probe-start: "];
const STREAM: &str = "probe: ";

/// The same answer to a callout: Envoy's async client hands it over whole.
fn callout_answer(path: &str) -> Response {
    let body = serde_json::json!({"service": "probe", "path": path}).to_string();
    Response::status(200)
        .header("content-type", "application/json")
        .body(body)
        .header("x-envoy-upstream-service-time", "1")
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
    let mut proxy = probe_proxy(probe_wasm(), CONFIG, PLUGIN_NAME)
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

fn envoy_run() -> Run {
    // The generated gateway, with a route of its own for the probe's prefix.
    let gateway = envoy_gateway(PLUGIN_NAME, probe_wasm(), CONFIG, Some("/probe"));
    let (envoy, client) = (&gateway.envoy, gateway.client);
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
    wait_for_log(envoy, LAST_LINE);
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

#[test]
fn probe_transcript_is_identical_in_the_harness_and_in_envoy() {
    let harness = harness_run();
    let envoy = envoy_run();
    let (harness_start, harness_stream) = normalise(&harness.transcript, START, STREAM);
    let (envoy_start, envoy_stream) = normalise(&envoy.transcript, START, STREAM);
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
        first_difference("probe", &harness_stream, &envoy_stream)
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
