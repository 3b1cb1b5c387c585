//! The ABI probe: a proxy-wasm module whose only job is to call every host function in
//! normal and edge cases and log each outcome as one line.
//!
//! Run in Envoy and in the c4mesh harness, it gives two transcripts that must be
//! identical: that is how the harness proves it answers like Envoy (statuses, encodings,
//! callback order), including where a filter would never look.
//!
//! ## The transcript
//!
//! Every line starts with `probe: `; lines written while the VM starts start with
//! `probe-start: ` (Envoy starts the module once on its main thread and once per worker,
//! so those lines repeat). Nothing that legitimately differs between runs is logged as
//! is: ports, request ids and times are masked or reduced to their size.
//!
//! ## The requests
//!
//! - `POST /probe/full` with a body: every host area from `on_http_request_headers`,
//!   then a chain of asynchronous steps, each started by the previous one, so the order
//!   is fixed: an HTTP callout, its response, a shared-queue message, `on_queue_ready`
//!   on the root context, a tick, and from the tick `proxy_continue_stream` on the
//!   paused request; then the request body (buffer edits), the response, `on_log`,
//!   `on_done` and the context's deletion.
//! - `GET /probe/local`: a local reply from `on_http_request_headers`, seen again by
//!   the response callbacks.
//! - `GET /probe/plain`: a request that continues at once, to see which maps stay
//!   readable afterwards.
//! - `GET /probe/late-local`: a local reply from `on_http_response_headers`.

// A Wasm program: empty when built for the host.
#![cfg(target_arch = "wasm32")]

mod raw;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::cell::Cell;
use std::time::Duration;

const INFO: u32 = 2;

// Map, buffer and stream types of the ABI, by number (the probe also sends bad ones).
const REQUEST_HEADERS: u32 = 0;
const REQUEST_TRAILERS: u32 = 1;
const RESPONSE_HEADERS: u32 = 2;
const RESPONSE_TRAILERS: u32 = 3;
const CALL_RESPONSE_HEADERS: u32 = 6;
const CALL_RESPONSE_TRAILERS: u32 = 7;
const REQUEST_BODY: u32 = 0;
const RESPONSE_BODY: u32 = 1;
const CALL_RESPONSE_BODY: u32 = 4;
const VM_CONFIGURATION: u32 = 6;
const PLUGIN_CONFIGURATION: u32 = 7;
const STREAM_REQUEST: u32 = 0;

thread_local! {
    /// The request waiting for the asynchronous chain, and the queue it uses.
    static WAITING: Cell<u32> = const { Cell::new(0) };
    static QUEUE: Cell<u32> = const { Cell::new(0) };
    static CALL_TOKEN: Cell<u32> = const { Cell::new(0) };
}

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(ProbeRoot) });
}}

fn line(text: &str) {
    raw::log(INFO, &format!("probe: {text}"));
}

fn start_line(text: &str) {
    raw::log(INFO, &format!("probe-start: {text}"));
}

/// Bytes as text when printable, else as hex.
fn show(bytes: &[u8]) -> String {
    if bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
        format!("{:?}", String::from_utf8_lossy(bytes))
    } else {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("hex:{hex}")
    }
}

/// An answer with `ip:port` values reduced to `ip:<port>`.
fn show_address(answer: &raw::Answer) -> String {
    match &answer.data {
        Some(d) => {
            let text = String::from_utf8_lossy(d);
            let masked = match text.rsplit_once(':') {
                Some((ip, _)) => format!("{ip}:<port>"),
                None => text.into_owned(),
            };
            format!("{} {masked:?}", answer.status)
        }
        None => answer.show(),
    }
}

fn show_answer(answer: &raw::Answer) -> String {
    match &answer.data {
        Some(d) => format!("{} {}", answer.status, show(d)),
        None => format!("{} null", answer.status),
    }
}

/// A header map answer as `status [name=value ...]`, values of `masked` names hidden.
fn show_pairs(answer: &raw::Answer, masked: &[&str]) -> String {
    match &answer.data {
        None => format!("{} null", answer.status),
        Some(d) => match raw::deserialize(d) {
            None => format!("{} undecodable {} bytes", answer.status, d.len()),
            Some(pairs) => {
                let shown: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| {
                        if masked.contains(&k.as_str()) {
                            format!("{k}=<{}>", v.len().min(1))
                        } else {
                            format!("{k}={v}")
                        }
                    })
                    .collect();
                format!("{} [{}]", answer.status, shown.join(" "))
            }
        },
    }
}

const MASKED_HEADERS: [&str; 3] = ["x-request-id", "date", "x-envoy-upstream-service-time"];

// === impl ProbeRoot ===

struct ProbeRoot;

impl Context for ProbeRoot {}

impl RootContext for ProbeRoot {
    fn on_vm_start(&mut self, size: usize) -> bool {
        let config = raw::get_buffer(VM_CONFIGURATION, 0, usize::MAX);
        start_line(&format!(
            "on_vm_start size={size} vm_configuration={}",
            show_answer(&config)
        ));
        true
    }

    fn on_configure(&mut self, size: usize) -> bool {
        let config = raw::get_buffer(PLUGIN_CONFIGURATION, 0, usize::MAX);
        start_line(&format!(
            "on_configure size={size} plugin_configuration={}",
            show_answer(&config)
        ));
        let rejected = config.data.as_deref() == Some(b"reject");
        start_line(&format!("on_configure returns {}", !rejected));
        !rejected
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        line(&format!(
            "root on_queue_ready same_queue={}",
            queue_id == QUEUE.get()
        ));
        line(&format!(
            "root dequeue -> {}",
            raw::dequeue(queue_id).show()
        ));
        line(&format!(
            "root dequeue again -> {}",
            raw::dequeue(queue_id).show()
        ));
        line(&format!(
            "root get_property request.path -> {}",
            raw::get_property(&["request", "path"]).show()
        ));
        line(&format!(
            "root get_property plugin_name -> {}",
            raw::get_property(&["plugin_name"]).show()
        ));
        line(&format!(
            "root set_property -> {}",
            raw::set_property(&["probe_root_key"], b"v")
        ));
        line(&format!(
            "root get_pairs request_headers -> {}",
            show_pairs(&raw::get_pairs(REQUEST_HEADERS), &MASKED_HEADERS)
        ));
        line(&format!(
            "root add_header request_headers -> {}",
            raw::add_header(REQUEST_HEADERS, "x-root", "1")
        ));
        line(&format!(
            "root get_buffer request_body -> {}",
            raw::get_buffer(REQUEST_BODY, 0, 100).show()
        ));
        line(&format!("root done -> {}", raw::done()));
        line(&format!("root set_tick 5 -> {}", raw::set_tick(5)));
    }

    fn on_tick(&mut self) {
        line(&format!("root on_tick set_tick 0 -> {}", raw::set_tick(0)));
        line(&format!(
            "root set_effective_context unknown -> {}",
            raw::set_effective_context(99_999)
        ));
        let waiting = WAITING.get();
        line(&format!(
            "root set_effective_context waiting -> {}",
            raw::set_effective_context(waiting)
        ));
        line(&format!(
            "root continue_stream request -> {}",
            raw::continue_stream(STREAM_REQUEST)
        ));
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(ProbeStream {
            id: context_id,
            path: String::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

// === impl ProbeStream ===

struct ProbeStream {
    id: u32,
    path: String,
}

impl ProbeStream {
    fn general(&self) {
        line(&format!(
            "log warn -> {}",
            raw::log(3, "probe: a warn line")
        ));
        line(&format!(
            "log error -> {}",
            raw::log(4, "probe: an error line")
        ));
        line(&format!(
            "log critical -> {}",
            raw::log(5, "probe: a critical line")
        ));
        line(&format!(
            "log debug -> {}",
            raw::log(1, "probe: a debug line")
        ));
        line(&format!("log bad level -> {}", raw::log(6, "probe: never")));
        line(&format!(
            "log bad pointer -> {}",
            raw::log_raw(INFO, raw::BAD_PTR, 64)
        ));
        let (status, level) = raw::get_log_level();
        line(&format!("get_log_level -> {status} {level}"));
        let (status, t) = raw::get_time();
        line(&format!(
            "get_current_time -> {status} nonzero={}",
            t > 1_500_000_000_000_000_000
        ));
        line(&format!(
            "get_current_time bad pointer -> {}",
            raw::get_time_bad_ptr()
        ));
        line(&format!(
            "continue_stream bad type -> {}",
            raw::continue_stream(99)
        ));
        line(&format!(
            "close_stream bad type -> {}",
            raw::close_stream(99)
        ));
        line(&format!("done in stream -> {}", raw::done()));
        line(&format!(
            "call_foreign_function unknown -> {}",
            raw::call_foreign("no_such_function").show()
        ));
        let (answer, code) = raw::get_status();
        line(&format!("get_status -> {} code={code}", answer.show()));
        line(&format!(
            "grpc_call unparsable service -> {}",
            raw::grpc_call(b"\xff\xff\xff")
        ));
        line(&format!(
            "grpc_stream unparsable service -> {}",
            raw::grpc_stream(b"\xff\xff\xff")
        ));
        line(&format!(
            "grpc_send unknown stream -> {}",
            raw::grpc_send(1000)
        ));
        line(&format!("grpc_send call token -> {}", raw::grpc_send(1001)));
        line(&format!(
            "grpc_cancel unknown -> {}",
            raw::grpc_cancel(1000)
        ));
        line(&format!("grpc_close unknown -> {}", raw::grpc_close(1000)));
        line(&format!(
            "set_effective_context self -> {}",
            raw::set_effective_context(self.id)
        ));
    }

    fn properties(&self) {
        let plain: [&[&str]; 17] = [
            &["plugin_name"],
            &["plugin_root_id"],
            &["plugin_vm_id"],
            &["request", "path"],
            &["request", "url_path"],
            &["request", "host"],
            &["request", "method"],
            &["request", "scheme"],
            &["request", "protocol"],
            &["request", "query"],
            &["request", "headers", "x-probe"],
            &["request", "size"],
            &["request", "useragent"],
            &["connection", "mtls"],
            &["node", "id"],
            &["response", "code"],
            &["upstream", "address"],
        ];
        for path in plain {
            line(&format!(
                "get_property {} -> {}",
                path.join("."),
                show_answer(&raw::get_property(path))
            ));
        }
        for path in [["source", "address"], ["destination", "address"]] {
            line(&format!(
                "get_property {} -> {}",
                path.join("."),
                show_address(&raw::get_property(&path))
            ));
        }
        for path in [
            ["request", "id"],
            ["request", "time"],
            ["source", "port"],
            ["destination", "port"],
        ] {
            let answer = raw::get_property(&path);
            let size = answer.data.as_ref().map_or(0, Vec::len);
            line(&format!(
                "get_property {} -> {} size={size}",
                path.join("."),
                answer.status
            ));
        }
        let missing: [&[&str]; 4] = [
            &["no_such_property"],
            &["request", "no_such_field"],
            &["plugin_name", "deeper"],
            &[],
        ];
        for path in missing {
            line(&format!(
                "get_property missing {:?} -> {}",
                path.join("."),
                raw::get_property(path).show()
            ));
        }
        line(&format!(
            "set_property probe_key -> {}",
            raw::set_property(&["probe_key"], b"v1")
        ));
        line(&format!(
            "get_property probe_key -> {}",
            show_answer(&raw::get_property(&["probe_key"]))
        ));
        line(&format!(
            "set_property probe_key again -> {}",
            raw::set_property(&["probe_key"], b"v2")
        ));
        line(&format!(
            "get_property probe_key -> {}",
            show_answer(&raw::get_property(&["probe_key"]))
        ));
    }

    fn headers(&self) {
        let pairs = raw::get_pairs(REQUEST_HEADERS);
        line(&format!(
            "get_pairs request_headers -> {}",
            show_pairs(&pairs, &MASKED_HEADERS)
        ));
        line(&format!(
            "get_header x-probe -> {}",
            raw::get_header(REQUEST_HEADERS, "x-probe").show()
        ));
        line(&format!(
            "get_header X-Probe -> {}",
            raw::get_header(REQUEST_HEADERS, "X-Probe").show()
        ));
        line(&format!(
            "get_header missing -> {}",
            raw::get_header(REQUEST_HEADERS, "x-missing").show()
        ));
        line(&format!(
            "add_header x-multi a -> {}",
            raw::add_header(REQUEST_HEADERS, "x-multi", "a")
        ));
        line(&format!(
            "add_header x-multi b -> {}",
            raw::add_header(REQUEST_HEADERS, "x-multi", "b")
        ));
        line(&format!(
            "get_header x-multi -> {}",
            raw::get_header(REQUEST_HEADERS, "x-multi").show()
        ));
        line(&format!(
            "replace_header x-multi c -> {}",
            raw::replace_header(REQUEST_HEADERS, "x-multi", "c")
        ));
        line(&format!(
            "get_header x-multi -> {}",
            raw::get_header(REQUEST_HEADERS, "x-multi").show()
        ));
        line(&format!(
            "replace_header X-New n -> {}",
            raw::replace_header(REQUEST_HEADERS, "X-New", "n")
        ));
        line(&format!(
            "get_header x-new -> {}",
            raw::get_header(REQUEST_HEADERS, "x-new").show()
        ));
        line(&format!(
            "remove_header x-new -> {}",
            raw::remove_header(REQUEST_HEADERS, "x-new")
        ));
        line(&format!(
            "remove_header missing -> {}",
            raw::remove_header(REQUEST_HEADERS, "x-missing")
        ));
        line(&format!(
            "add_header x-empty '' -> {}",
            raw::add_header(REQUEST_HEADERS, "x-empty", "")
        ));
        line(&format!(
            "get_header x-empty -> {}",
            raw::get_header(REQUEST_HEADERS, "x-empty").show()
        ));
        line(&format!(
            "get_pairs request_headers after -> {}",
            show_pairs(&raw::get_pairs(REQUEST_HEADERS), &MASKED_HEADERS)
        ));
        for (name, map) in [
            ("request_trailers", REQUEST_TRAILERS),
            ("response_headers", RESPONSE_HEADERS),
            ("response_trailers", RESPONSE_TRAILERS),
            ("grpc_initial_metadata", 4),
            ("grpc_trailing_metadata", 5),
            ("call_response_headers", CALL_RESPONSE_HEADERS),
            ("call_response_trailers", CALL_RESPONSE_TRAILERS),
            ("bad_map", 99),
        ] {
            line(&format!(
                "get_pairs {name} -> {}",
                show_pairs(&raw::get_pairs(map), &[])
            ));
            line(&format!(
                "get_header {name} -> {}",
                raw::get_header(map, "x").show()
            ));
            line(&format!(
                "add_header {name} -> {}",
                raw::add_header(map, "x", "1")
            ));
            line(&format!(
                "replace_header {name} -> {}",
                raw::replace_header(map, "x", "1")
            ));
            line(&format!(
                "remove_header {name} -> {}",
                raw::remove_header(map, "x")
            ));
        }
        line(&format!(
            "set_pairs request_trailers -> {}",
            raw::set_pairs(REQUEST_TRAILERS, &raw::serialize(&[("t", "1")]))
        ));
        line(&format!(
            "set_pairs bad_map -> {}",
            raw::set_pairs(99, &raw::serialize(&[("t", "1")]))
        ));
        line(&format!(
            "set_pairs bad pointer -> {}",
            raw::set_pairs_raw(REQUEST_HEADERS, raw::BAD_PTR, 64)
        ));
        line(&format!(
            "get_header bad key pointer -> {}",
            raw::get_header_bad_key(REQUEST_HEADERS)
        ));
        line(&format!(
            "get_header bad return pointer -> {}",
            raw::get_header_bad_return(REQUEST_HEADERS, "x-probe")
        ));
    }

    fn shared_data(&self) {
        let key = "probe.k1";
        line(&format!(
            "get_shared missing -> {}",
            raw::get_shared("probe.missing").0.show()
        ));
        line(&format!(
            "set_shared cas=0 -> {}",
            raw::set_shared(key, b"one", 0)
        ));
        let (answer, cas1) = raw::get_shared(key);
        line(&format!(
            "get_shared -> {} cas_nonzero={}",
            answer.show(),
            cas1 != 0
        ));
        line(&format!(
            "set_shared cas=current -> {}",
            raw::set_shared(key, b"two", cas1)
        ));
        let (answer, cas2) = raw::get_shared(key);
        line(&format!(
            "get_shared -> {} cas_changed={}",
            answer.show(),
            cas2 != cas1
        ));
        line(&format!(
            "set_shared stale cas -> {}",
            raw::set_shared(key, b"three", cas1)
        ));
        let (answer, cas3) = raw::get_shared(key);
        line(&format!(
            "get_shared after mismatch -> {} cas_same={}",
            answer.show(),
            cas3 == cas2
        ));
        line(&format!(
            "set_shared cas=0 overwrite -> {}",
            raw::set_shared(key, b"four", 0)
        ));
        let (answer, cas4) = raw::get_shared(key);
        line(&format!(
            "get_shared -> {} cas_changed={}",
            answer.show(),
            cas4 != cas3
        ));
        line(&format!(
            "set_shared new key with cas -> {}",
            raw::set_shared("probe.k2", b"x", 12_345)
        ));
        line(&format!(
            "set_shared empty value -> {}",
            raw::set_shared("probe.k3", b"", 0)
        ));
        let (answer, cas) = raw::get_shared("probe.k3");
        line(&format!(
            "get_shared empty value -> {} cas_nonzero={}",
            answer.show(),
            cas != 0
        ));
        line(&format!(
            "set_shared bad pointer -> {}",
            raw::set_shared_bad_key()
        ));
    }

    fn queues(&self) {
        line(&format!(
            "resolve_queue missing -> {}",
            raw::resolve_queue("c4mesh", "probe.no_queue").0
        ));
        let (status, id) = raw::register_queue("probe_q");
        QUEUE.set(id);
        line(&format!("register_queue -> {status} nonzero={}", id != 0));
        let (status, again) = raw::register_queue("probe_q");
        line(&format!(
            "register_queue again -> {status} same={}",
            again == id
        ));
        let (status, resolved) = raw::resolve_queue("c4mesh", "probe_q");
        line(&format!(
            "resolve_queue same vm -> {status} same={}",
            resolved == id
        ));
        let (status, resolved) = raw::resolve_queue("", "probe_q");
        line(&format!(
            "resolve_queue empty vm_id -> {status} same={}",
            resolved == id
        ));
        line(&format!(
            "resolve_queue other vm -> {}",
            raw::resolve_queue("other_vm", "probe_q").0
        ));
        line(&format!("dequeue empty -> {}", raw::dequeue(id).show()));
        line(&format!(
            "dequeue unknown -> {}",
            raw::dequeue(0xdead).show()
        ));
        line(&format!(
            "enqueue unknown -> {}",
            raw::enqueue(0xdead, b"x")
        ));
    }

    fn metrics(&self) {
        let (s, counter) = raw::define_metric(0, "probe_counter");
        line(&format!("define counter -> {s} id={counter}"));
        let (s, gauge) = raw::define_metric(1, "probe_gauge");
        line(&format!("define gauge -> {s} id={gauge}"));
        let (s, histogram) = raw::define_metric(2, "probe_histogram");
        line(&format!("define histogram -> {s} id={histogram}"));
        let (s, again) = raw::define_metric(0, "probe_counter");
        line(&format!(
            "define counter again -> {s} same={}",
            again == counter
        ));
        line(&format!(
            "define bad type -> {}",
            raw::define_metric(7, "probe_bad").0
        ));
        line(&format!(
            "increment counter 1 -> {}",
            raw::increment_metric(counter, 1)
        ));
        line(&format!(
            "increment counter 0 -> {}",
            raw::increment_metric(counter, 0)
        ));
        line(&format!(
            "increment counter -1 -> {}",
            raw::increment_metric(counter, -1)
        ));
        line(&format!(
            "record counter 5 -> {}",
            raw::record_metric(counter, 5)
        ));
        line(&format!("get counter -> {:?}", raw::get_metric(counter)));
        line(&format!(
            "record gauge 10 -> {}",
            raw::record_metric(gauge, 10)
        ));
        line(&format!(
            "increment gauge -3 -> {}",
            raw::increment_metric(gauge, -3)
        ));
        line(&format!(
            "increment gauge 2 -> {}",
            raw::increment_metric(gauge, 2)
        ));
        line(&format!("get gauge -> {:?}", raw::get_metric(gauge)));
        line(&format!(
            "record histogram 42 -> {}",
            raw::record_metric(histogram, 42)
        ));
        line(&format!(
            "increment histogram -> {}",
            raw::increment_metric(histogram, 1)
        ));
        line(&format!(
            "get histogram -> {:?}",
            raw::get_metric(histogram)
        ));
        for (name, id) in [
            ("counter", 0xFFF0),
            ("gauge", 0xFFF1),
            ("histogram", 0xFFF2),
            ("bad type", 0xFFF3),
        ] {
            line(&format!(
                "increment unknown {name} -> {}",
                raw::increment_metric(id, 1)
            ));
            line(&format!(
                "record unknown {name} -> {}",
                raw::record_metric(id, 1)
            ));
            line(&format!("get unknown {name} -> {}", raw::get_metric(id).0));
        }
    }

    fn http_calls(&self) {
        let no_authority = raw::serialize(&[(":method", "GET"), (":path", "/callout")]);
        line(&format!(
            "http_call without :authority -> {}",
            raw::http_call("probe", &no_authority, b"", 1000).0
        ));
        let headers = raw::serialize(&[
            (":method", "POST"),
            (":path", "/callout"),
            (":authority", "probe"),
        ]);
        line(&format!(
            "http_call unknown cluster -> {}",
            raw::http_call("no_such_cluster", &headers, b"", 1000).0
        ));
        line(&format!(
            "http_call empty cluster -> {}",
            raw::http_call("", &headers, b"", 1000).0
        ));
        let no_path = raw::serialize(&[(":method", "GET"), (":authority", "probe")]);
        line(&format!(
            "http_call without :path -> {}",
            raw::http_call("probe", &no_path, b"", 1000).0
        ));
        let no_method = raw::serialize(&[(":path", "/callout"), (":authority", "probe")]);
        line(&format!(
            "http_call without :method -> {}",
            raw::http_call("probe", &no_method, b"", 1000).0
        ));
        for which in ["cluster", "headers", "body", "trailers", "token"] {
            line(&format!(
                "http_call bad {which} pointer -> {}",
                raw::bad::http_call("no_such_cluster", &headers, which)
            ));
        }
        // The real call goes through the SDK, whose dispatcher must know the token.
        let call = self.dispatch_http_call(
            "probe",
            vec![
                (":method", "POST"),
                (":path", "/callout"),
                (":authority", "probe"),
            ],
            Some(b"ping"),
            vec![],
            Duration::from_secs(5),
        );
        let token = call.unwrap_or(0);
        CALL_TOKEN.set(token);
        line(&format!(
            "http_call -> ok={} nonzero={}",
            call.is_ok(),
            token != 0
        ));
    }

    fn buffers_outside(&self) {
        for (name, buffer) in [
            ("request_body", REQUEST_BODY),
            ("response_body", RESPONSE_BODY),
            ("call_response_body", CALL_RESPONSE_BODY),
            ("vm_configuration", VM_CONFIGURATION),
            ("plugin_configuration", PLUGIN_CONFIGURATION),
            ("bad_buffer", 99),
        ] {
            line(&format!(
                "get_buffer {name} -> {}",
                raw::get_buffer(buffer, 0, 100).show()
            ));
            line(&format!(
                "set_buffer {name} -> {}",
                raw::set_buffer(buffer, 0, 0, b"x")
            ));
        }
    }

    /// Every other host call with one pointer outside memory.
    fn bad_pointers(&self) {
        type Case = (&'static str, fn() -> u32);
        let cases: [Case; 26] = [
            ("get_log_level return", raw::bad::get_log_level),
            ("get_status return", raw::bad::get_status),
            ("call_foreign_function name", raw::bad::call_foreign_name),
            ("get_pairs return", || {
                raw::bad::get_pairs_return(REQUEST_HEADERS)
            }),
            ("add_header key", || {
                raw::bad::add_header_key(REQUEST_HEADERS)
            }),
            ("add_header value", || {
                raw::bad::add_header_value(REQUEST_HEADERS)
            }),
            ("replace_header value", || {
                raw::bad::replace_header_value(REQUEST_HEADERS)
            }),
            ("remove_header key", || {
                raw::bad::remove_header_key(REQUEST_HEADERS)
            }),
            ("get_property path", raw::bad::get_property_path),
            ("get_property return", || {
                raw::bad::get_property_return(&["request", "path"])
            }),
            ("get_property missing return", || {
                raw::bad::get_property_return(&["no_such_property"])
            }),
            ("set_property value", raw::bad::set_property_value),
            ("get_shared key", raw::bad::get_shared_key),
            ("get_shared return", || {
                raw::bad::get_shared_return("probe.k1")
            }),
            ("get_shared cas return", || {
                raw::bad::get_shared_cas_return("probe.k1")
            }),
            ("get_shared missing return", || {
                raw::bad::get_shared_return("probe.missing")
            }),
            ("set_shared value", || {
                raw::bad::set_shared_value("probe.bad")
            }),
            ("register_queue name", raw::bad::register_queue_name),
            ("register_queue return", || {
                raw::bad::register_queue_return("probe_bad_q")
            }),
            ("resolve_queue vm_id", || {
                raw::bad::resolve_queue_vm_id("probe_q")
            }),
            ("resolve_queue return", || {
                raw::bad::resolve_queue_return("c4mesh", "probe_q")
            }),
            ("dequeue return", || raw::bad::dequeue_return(QUEUE.get())),
            ("enqueue value", || raw::bad::enqueue_value(QUEUE.get())),
            (
                "send_local_response details",
                raw::bad::send_local_response_details,
            ),
            (
                "send_local_response headers",
                raw::bad::send_local_response_headers,
            ),
            ("grpc_call service", raw::bad::grpc_call_service),
        ];
        for (name, call) in cases {
            line(&format!("bad pointer {name} -> {}", call()));
        }
        line(&format!(
            "bad pointer define_metric name -> {}",
            raw::bad::define_metric_name()
        ));
        line(&format!(
            "bad pointer define_metric return -> {}",
            raw::bad::define_metric_return("probe_bad_counter")
        ));
        let (_, next) = raw::define_metric(0, "probe_after_bad");
        line(&format!("define after bad return -> id={next}"));
        let (_, counter) = raw::define_metric(0, "probe_counter");
        line(&format!(
            "bad pointer get_metric return -> {}",
            raw::bad::get_metric_return(counter)
        ));
        let (status, resolved) = raw::resolve_queue("c4mesh", "probe_bad_q");
        line(&format!(
            "resolve_queue after bad register -> {status} nonzero={}",
            resolved != 0
        ));
        line(&format!(
            "get_shared after bad set -> {}",
            raw::get_shared("probe.bad").0.show()
        ));
    }

    fn request_body(&self, size: usize, end: bool) {
        line(&format!("on_http_request_body size={size} end={end}"));
        line(&format!(
            "get_buffer all -> {}",
            raw::get_buffer(REQUEST_BODY, 0, usize::MAX).show()
        ));
        line(&format!(
            "get_buffer from 6 -> {}",
            raw::get_buffer(REQUEST_BODY, 6, 100).show()
        ));
        line(&format!(
            "get_buffer 2 from 1 -> {}",
            raw::get_buffer(REQUEST_BODY, 1, 2).show()
        ));
        line(&format!(
            "get_buffer max 0 -> {}",
            raw::get_buffer(REQUEST_BODY, 0, 0).show()
        ));
        line(&format!(
            "get_buffer from the end -> {}",
            raw::get_buffer(REQUEST_BODY, 10, 5).show()
        ));
        line(&format!(
            "get_buffer past the end -> {}",
            raw::get_buffer(REQUEST_BODY, 11, 5).show()
        ));
        line(&format!(
            "set_buffer prepend -> {}",
            raw::set_buffer(REQUEST_BODY, 0, 0, b"<<")
        ));
        line(&format!(
            "set_buffer append -> {}",
            raw::set_buffer(REQUEST_BODY, 12, 0, b">>")
        ));
        line(&format!(
            "get_buffer all -> {}",
            raw::get_buffer(REQUEST_BODY, 0, usize::MAX).show()
        ));
        line(&format!(
            "set_buffer middle -> {}",
            raw::set_buffer(REQUEST_BODY, 3, 2, b"x")
        ));
        line(&format!(
            "set_buffer replace -> {}",
            raw::set_buffer(REQUEST_BODY, 0, 14, b"HELLO BODY")
        ));
        line(&format!(
            "get_buffer all -> {}",
            raw::get_buffer(REQUEST_BODY, 0, usize::MAX).show()
        ));
        line(&format!(
            "get_buffer bad type -> {}",
            raw::get_buffer(99, 0, 10).show()
        ));
        line(&format!(
            "get_buffer bad return pointer -> {}",
            raw::bad::get_buffer_return(REQUEST_BODY)
        ));
        line(&format!(
            "get_buffer bad size pointer -> {}",
            raw::bad::get_buffer_size_return(REQUEST_BODY)
        ));
        line(&format!(
            "set_buffer bad data pointer -> {}",
            raw::bad::set_buffer_data(REQUEST_BODY)
        ));
        line(&format!(
            "get_buffer all after bad calls -> {}",
            raw::get_buffer(REQUEST_BODY, 0, usize::MAX).show()
        ));
    }
}

impl Context for ProbeStream {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        line(&format!(
            "on_http_call_response same_token={} headers={headers} body={body} trailers={trailers}",
            token == CALL_TOKEN.get()
        ));
        line(&format!(
            "call get_header :status -> {}",
            raw::get_header(CALL_RESPONSE_HEADERS, ":status").show()
        ));
        line(&format!(
            "call get_pairs headers -> {}",
            show_pairs(&raw::get_pairs(CALL_RESPONSE_HEADERS), &MASKED_HEADERS)
        ));
        line(&format!(
            "call get_pairs trailers -> {}",
            show_pairs(&raw::get_pairs(CALL_RESPONSE_TRAILERS), &[])
        ));
        line(&format!(
            "call get_buffer body -> {}",
            raw::get_buffer(CALL_RESPONSE_BODY, 0, usize::MAX).show()
        ));
        line(&format!(
            "call add_header headers -> {}",
            raw::add_header(CALL_RESPONSE_HEADERS, "x", "1")
        ));
        line(&format!(
            "call set_buffer body -> {}",
            raw::set_buffer(CALL_RESPONSE_BODY, 0, 0, b"x")
        ));
        let (answer, code) = raw::get_status();
        line(&format!("call get_status -> {} code={code}", answer.show()));
        line(&format!(
            "call get_header request x-probe -> {}",
            raw::get_header(REQUEST_HEADERS, "x-probe").show()
        ));
        WAITING.set(self.id);
        line(&format!("enqueue -> {}", raw::enqueue(QUEUE.get(), b"m1")));
    }

    fn on_done(&mut self) -> bool {
        line(&format!("{} on_done", self.path));
        true
    }
}

impl Drop for ProbeStream {
    fn drop(&mut self) {
        line(&format!("{} deleted", self.path));
    }
}

impl HttpContext for ProbeStream {
    fn on_http_request_headers(&mut self, headers: usize, end: bool) -> Action {
        let path = raw::get_header(REQUEST_HEADERS, ":path");
        self.path = path
            .data
            .map(|p| String::from_utf8_lossy(&p).into_owned())
            .unwrap_or_default();
        line(&format!(
            "{} on_http_request_headers headers={headers} end={end}",
            self.path
        ));
        if self.path == "/probe/local" {
            let headers = raw::serialize(&[("x-local", "1"), ("content-type", "application/json")]);
            let status = raw::send_local_response(403, "probe_denied", b"denied", &headers);
            line(&format!("send_local_response -> {status}"));
            line(&format!(
                "get_header after local reply -> {}",
                raw::get_header(REQUEST_HEADERS, ":path").show()
            ));
            return Action::Pause;
        }
        if self.path != "/probe/full" {
            line(&format!(
                "get_pairs request_headers -> {}",
                show_pairs(&raw::get_pairs(REQUEST_HEADERS), &MASKED_HEADERS)
            ));
            return Action::Continue;
        }
        self.general();
        self.properties();
        self.headers();
        self.shared_data();
        self.queues();
        self.metrics();
        self.buffers_outside();
        self.bad_pointers();
        self.http_calls();
        Action::Pause
    }

    fn on_http_request_body(&mut self, size: usize, end: bool) -> Action {
        if self.path != "/probe/full" {
            line(&format!(
                "{} on_http_request_body size={size} end={end}",
                self.path
            ));
            return Action::Continue;
        }
        self.request_body(size, end);
        if WAITING.get() == 0 {
            line("request body waits for the chain");
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_request_trailers(&mut self, trailers: usize) -> Action {
        line(&format!(
            "{} on_http_request_trailers trailers={trailers}",
            self.path
        ));
        Action::Continue
    }

    fn on_http_response_headers(&mut self, headers: usize, end: bool) -> Action {
        line(&format!(
            "{} on_http_response_headers headers={headers} end={end}",
            self.path
        ));
        line(&format!(
            "response get_pairs -> {}",
            show_pairs(&raw::get_pairs(RESPONSE_HEADERS), &MASKED_HEADERS)
        ));
        line(&format!(
            "response get_property response.code -> {}",
            show_answer(&raw::get_property(&["response", "code"]))
        ));
        line(&format!(
            "response get_property upstream.address -> {}",
            show_address(&raw::get_property(&["upstream", "address"]))
        ));
        line(&format!(
            "response get_property upstream.request_attempt_count -> {}",
            show_answer(&raw::get_property(&["upstream", "request_attempt_count"]))
        ));
        line(&format!(
            "response get_pairs request_headers -> {}",
            show_pairs(&raw::get_pairs(REQUEST_HEADERS), &MASKED_HEADERS)
        ));
        for path in [
            ["request", "path"],
            ["request", "method"],
            ["response", "code_details"],
            ["response", "size"],
        ] {
            line(&format!(
                "response get_property {} -> {}",
                path.join("."),
                show_answer(&raw::get_property(&path))
            ));
        }
        line(&format!(
            "response get_property request.headers.x-probe -> {}",
            show_answer(&raw::get_property(&["request", "headers", "x-probe"]))
        ));
        line(&format!(
            "response get_property response.headers.content-type -> {}",
            show_answer(&raw::get_property(&["response", "headers", "content-type"]))
        ));
        if self.path == "/probe/late-local" {
            let headers = raw::serialize(&[("x-late-local", "1")]);
            let status = raw::send_local_response(502, "probe_late", b"late", &headers);
            line(&format!("late send_local_response -> {status}"));
            return Action::Pause;
        }
        line(&format!(
            "response add_header -> {}",
            raw::add_header(RESPONSE_HEADERS, "x-probe-added", "yes")
        ));
        line(&format!(
            "response replace_header content-type -> {}",
            raw::replace_header(RESPONSE_HEADERS, "content-type", "text/probe")
        ));
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, end: bool) -> Action {
        line(&format!(
            "{} on_http_response_body size={size} end={end}",
            self.path
        ));
        if self.path == "/probe/local" {
            line(&format!(
                "response body -> {}",
                raw::get_buffer(RESPONSE_BODY, 0, usize::MAX).show()
            ));
        } else {
            line(&format!(
                "response body first byte -> {}",
                raw::get_buffer(RESPONSE_BODY, 0, 1).show()
            ));
            line(&format!(
                "response get_buffer request_body -> {}",
                raw::get_buffer(REQUEST_BODY, 0, 100).show()
            ));
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, trailers: usize) -> Action {
        line(&format!(
            "{} on_http_response_trailers trailers={trailers}",
            self.path
        ));
        Action::Continue
    }

    fn on_log(&mut self) {
        line(&format!("{} on_log", self.path));
        for path in [
            ["response", "code"],
            ["response", "code_details"],
            ["upstream", "request_attempt_count"],
            ["request", "path"],
        ] {
            line(&format!(
                "log get_property {} -> {}",
                path.join("."),
                show_answer(&raw::get_property(&path))
            ));
        }
        line(&format!(
            "log get_property upstream.address -> {}",
            show_address(&raw::get_property(&["upstream", "address"]))
        ));
        line(&format!(
            "log get_header response :status -> {}",
            raw::get_header(RESPONSE_HEADERS, ":status").show()
        ));
        line(&format!(
            "log get_header request :path -> {}",
            raw::get_header(REQUEST_HEADERS, ":path").show()
        ));
        line(&format!(
            "log add_header response -> {}",
            raw::add_header(RESPONSE_HEADERS, "x-late", "1")
        ));
    }
}
