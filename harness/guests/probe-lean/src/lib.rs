//! The lean ABI probe: a proxy-wasm module that exports seven of the ABI's entry points
//! and nothing else, to show that a host calls exactly the callbacks a module exports.
//!
//! ## Why a second probe, without the SDK
//!
//! Envoy (proxy-wasm-cpp-host, `src/context.cc`) looks each callback up once and calls
//! it only if the module exports it: a missing headers, body or trailers callback
//! means Continue; the context counts as created even when `proxy_on_context_create`
//! is missing, so `on_log` still runs for it; `on_done` and `on_delete` run only if
//! exported. The full probe (`harness/guests/probe`) cannot show any of this: it is built on
//! the `proxy-wasm` SDK, whose 27 callbacks are `#[no_mangle]` items that every module
//! linking the crate exports. This module therefore declares its own imports
//! ([`host`]) and its own exports, and leaves out on purpose:
//! `proxy_on_context_create`, every body and trailers callback, `proxy_on_done`,
//! `proxy_on_delete`, `proxy_on_tick`, `proxy_on_queue_ready`,
//! `proxy_on_http_call_response` and `_initialize`.
//!
//! ## The transcript
//!
//! Each callback logs one line at info, `probe-lean: <callback> ...`, with what it
//! observes; nothing that differs between runs (ids, ports, times) is logged. A stream
//! is named by the `:path` its request headers carried, and `seen` or `unseen` says
//! whether its context id came through `proxy_on_request_headers` before: the module
//! never hears of a context's creation, only of its callbacks.
//!
//! ## The requests
//!
//! - `/lean/plain`: continues; the upstream answers.
//! - `/lean/local`: a local reply (418, `x-lean: local`, a body) from the request
//!   headers, which pause; the response headers callback still sees the reply.
//! - `/lean/hold`: the request headers pause and nothing resumes them, so the stream
//!   ends when the client goes away: `on_log` without a response.

mod host;

use host::{Answer, Map, NOT_FOUND};
use std::cell::Cell;

const CONTINUE: u32 = 0;
const PAUSE: u32 = 1;

thread_local! {
    /// Streams by context id, from their request headers to `on_log`: the path.
    static STREAMS: Cell<Vec<(u32, String)>> = const { Cell::new(Vec::new()) };
    /// The root context `proxy_on_vm_start` ran in.
    static ROOT: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Works on the live streams (taken out of their cell and put back, so no borrow can fail).
fn with_streams<R>(f: impl FnOnce(&mut Vec<(u32, String)>) -> R) -> R {
    STREAMS.with(|cell| {
        let mut streams = cell.take();
        let result = f(&mut streams);
        cell.set(streams);
        result
    })
}

/// `<path> seen` for a stream whose request headers the module saw, else `unseen`.
fn stream_name(context_id: u32, forget: bool) -> String {
    let path = with_streams(|streams| {
        let at = streams.iter().position(|(id, _)| *id == context_id)?;
        Some(if forget {
            streams.swap_remove(at).1
        } else {
            streams[at].1.clone()
        })
    });
    match path {
        Some(path) => format!("{path} seen"),
        None => "unseen".to_owned(),
    }
}

fn line(text: &str) {
    host::info(&format!("probe-lean: {text}"));
}

/// A header or property as text, `absent` when the host has none, else the status.
fn show(answer: &Answer) -> String {
    match answer {
        Ok(bytes) => format!("{:?}", String::from_utf8_lossy(bytes)),
        Err(NOT_FOUND) => "absent".to_owned(),
        Err(status) => format!("status {status}"),
    }
}

/// `upstream.request_attempt_count`: a little-endian u64 when the router made attempts.
fn attempts() -> String {
    match host::property(&["upstream", "request_attempt_count"]) {
        Ok(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(word) => u64::from_le_bytes(word).to_string(),
            Err(_) => format!("{} bytes", bytes.len()),
        },
        failed => show(&failed),
    }
}

/// The ABI this module speaks: proxy-wasm 0.2.1.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Memory for a buffer the host hands over; [`host`] takes it back as a `Vec<u8>`.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    // A byte vector's `with_capacity` allocates exactly `size` bytes.
    let mut buffer = Vec::<u8>::with_capacity(size);
    let pointer = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    pointer
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(root_context_id: u32, vm_configuration_size: usize) -> u32 {
    ROOT.set(Some(root_context_id));
    line(&format!(
        "on_vm_start vm_configuration_size={vm_configuration_size}"
    ));
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root_context_id: u32, configuration_size: usize) -> u32 {
    line(&format!(
        "on_configure configuration_size={configuration_size} same_root={}",
        ROOT.get() == Some(root_context_id)
    ));
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(context_id: u32, headers: usize, end: u32) -> u32 {
    let path = match host::header(Map::RequestHeaders, ":path") {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(status) => format!("<status {status}>"),
    };
    let before = stream_name(context_id, false);
    with_streams(|streams| streams.push((context_id, path.clone())));
    let probe = show(&host::header(Map::RequestHeaders, "x-probe"));
    let (action, outcome) = match path.as_str() {
        "/lean/local" => {
            let status = host::send_local_response(418, ("x-lean", "local"), "lean local reply");
            (PAUSE, format!(" send_local_response={status}"))
        }
        "/lean/hold" => (PAUSE, " held".to_owned()),
        _ => (CONTINUE, String::new()),
    };
    line(&format!(
        "on_request_headers {path} {before} headers={headers} end={} x-probe={probe}{outcome}",
        end != 0
    ));
    action
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(context_id: u32, headers: usize, end: u32) -> u32 {
    line(&format!(
        "on_response_headers {} headers={headers} end={} :status={} attempts={}",
        stream_name(context_id, false),
        end != 0,
        show(&host::header(Map::ResponseHeaders, ":status")),
        attempts()
    ));
    CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_log(context_id: u32) {
    // The module's last word on a stream (it exports no `on_done`/`on_delete`).
    line(&format!(
        "on_log {} :status={} attempts={}",
        stream_name(context_id, true),
        show(&host::header(Map::ResponseHeaders, ":status")),
        attempts()
    ));
}
