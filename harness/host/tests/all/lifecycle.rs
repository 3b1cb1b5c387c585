//! The stream lifecycle, step by step.

use crate::support::{lines, probe_wasm, wasm_file};
use c4mesh_host::{CallOutcome, DownstreamRequest, Error, HeaderMap, Proxy, Response};
use std::time::Duration;

fn probe() -> Proxy {
    Proxy::builder()
        .wasm_file(probe_wasm())
        .config("{}")
        .clusters(["probe"])
        .start()
        .expect("the probe starts")
}

fn messages(proxy: &Proxy) -> Vec<String> {
    lines(&proxy.logs())
        .into_iter()
        .filter(|l| !l.contains("probe-start"))
        .collect()
}

#[test]
fn a_paused_request_holds_its_body_until_continued() {
    let mut proxy = probe();
    let id = proxy.open_stream(0).expect("stream");
    proxy
        .request_headers(
            id,
            DownstreamRequest::new("POST", "/probe/full", "h").headers,
            false,
        )
        .expect("headers");
    proxy.request_body(id, b"hello ", false).expect("body");
    proxy.request_body(id, b"body", true).expect("body");
    let view = proxy.stream(id).expect("stream");
    assert!(view.request_paused());
    assert!(
        view.upstream_headers().is_none(),
        "nothing reached the upstream"
    );
    assert!(
        !messages(&proxy)
            .iter()
            .any(|l| l.contains("on_http_request_body")),
        "the body waits"
    );

    // The callout has no handler: it stays pending until answered.
    let calls = proxy.pending_http_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].cluster, "probe");
    assert_eq!(calls[0].body, b"ping");
    proxy
        .resolve_http_call(
            0,
            calls[0].token,
            CallOutcome::Response(Response::status(200).body("pong")),
        )
        .expect("answer");
    // The queue notification ran, the tick is set; time moves, the tick continues the request.
    proxy.advance(Duration::from_millis(4)).expect("time");
    assert!(proxy.stream(id).expect("stream").request_paused());
    proxy.advance(Duration::from_millis(1)).expect("time");
    let view = proxy.stream(id).expect("stream");
    assert!(view.upstream_complete());
    assert_eq!(
        view.upstream_body(),
        b"HELLO BODY",
        "the filter's edits reached the upstream"
    );
    assert!(
        messages(&proxy).contains(&"info probe: on_http_request_body size=10 end=true".to_owned())
    );

    // The test is the upstream.
    proxy
        .response_headers(id, HeaderMap::from([(":status", "200")]), false)
        .expect("response");
    proxy.response_body(id, b"{}", true).expect("response body");
    let exchange = proxy.exchange(id).expect("exchange");
    assert!(exchange.finished);
    assert_eq!(exchange.status(), Some(200));
    assert_eq!(exchange.header("x-probe-added"), Some("yes"));
    let tail: Vec<String> = messages(&proxy).into_iter().rev().take(2).collect();
    assert_eq!(
        tail,
        [
            "info probe: /probe/full deleted",
            "info probe: /probe/full on_done"
        ]
    );
}

#[test]
fn a_local_reply_passes_the_response_callbacks() {
    let mut proxy = probe();
    let exchange = proxy
        .send(0, DownstreamRequest::get("/probe/local"))
        .expect("send");
    assert!(exchange.finished);
    assert!(
        exchange.upstream.is_none(),
        "a local reply never reaches the upstream"
    );
    assert_eq!(exchange.status(), Some(403));
    assert_eq!(exchange.body(), b"denied");
    assert_eq!(
        exchange.header("content-type"),
        Some("text/probe"),
        "the filter changed its own reply"
    );
    let reply = exchange.local_reply.expect("local reply");
    assert_eq!(reply.details, "probe_denied");
    let log = messages(&proxy);
    assert!(
        log.contains(
            &"info probe: /probe/local on_http_response_headers headers=4 end=false".to_owned()
        ),
        "{log:#?}"
    );
    assert!(log.contains(
        &"info probe: log get_property response.code_details -> 0 \"probe_denied\"".to_owned()
    ));
}

#[test]
fn steps_out_of_order_are_errors() {
    let mut proxy = probe();
    let id = proxy.open_stream(0).expect("stream");
    assert!(proxy.request_body(id, b"x", true).is_err());
    proxy
        .request_headers(id, DownstreamRequest::get("/probe/plain").headers, true)
        .expect("headers");
    assert!(proxy
        .request_headers(id, DownstreamRequest::get("/").headers, true)
        .is_err());
    assert!(proxy.open_stream(7).is_err());
}

#[test]
fn ticks_follow_virtual_time() {
    let mut proxy = probe();
    proxy.set_http_call_handler(|_| CallOutcome::Response(Response::status(200)));
    proxy
        .send(
            0,
            DownstreamRequest::new("POST", "/probe/full", "h").body("hello body"),
        )
        .expect("send");
    let ticks = |p: &Proxy| {
        p.logs()
            .iter()
            .filter(|l| l.message.contains("on_tick"))
            .count()
    };
    assert_eq!(ticks(&proxy), 0);
    proxy.advance(Duration::from_millis(4)).expect("time");
    assert_eq!(ticks(&proxy), 0);
    proxy.advance(Duration::from_millis(100)).expect("time");
    assert_eq!(
        ticks(&proxy),
        1,
        "the probe stops its tick in the first one"
    );
    assert_eq!(
        proxy.now_nanos() - c4mesh_host::clock::DEFAULT_EPOCH_NANOS,
        104_000_000
    );
}

#[test]
fn timers_overdue_after_a_clock_jump_fire_once_and_the_end_of_time_stops() {
    let mut proxy = Proxy::builder()
        .wasm_file(wasm_file(c4mesh_guests::FILTER))
        .start()
        .expect("the filter starts");
    // A year ahead: the filter's 1 s tick fires once, not once per missed second.
    let year = 365 * 24 * 3600 * 1_000_000_000u64;
    proxy.clock().jump_to(proxy.now_nanos() + year);
    proxy.advance(Duration::from_secs(2)).expect("time");
    // At the clock's last instant a re-armed tick is due again at once: reported.
    proxy.clock().jump_to(u64::MAX - 1);
    let error = proxy
        .advance(Duration::from_secs(5))
        .expect_err("a tick that keeps coming due at one instant");
    assert!(
        matches!(error, Error::TimersKeptFiring { at: Some(_), .. }),
        "{error}"
    );
}
