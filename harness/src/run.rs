//! One request through a module: what `c4mesh run` does.
//!
//! An operator tries a filter before it reaches the mesh: load the module with its
//! configuration, send one request, let a simple upstream answer with a fixed status,
//! and see what the module logged and what the client got. Everything runs in the
//! harness on virtual time; HTTP callouts are answered 503, as a mesh without the
//! named cluster would.

use crate::error::Error;
use crate::http::{CallOutcome, Request, Response};
use crate::proxy::Proxy;
use crate::state::LogRecord;
use crate::vm::GuestFault;
use crate::LogLevel;
use std::path::PathBuf;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub wasm: PathBuf,
    pub config: Vec<u8>,
    pub workers: usize,
    pub upstream_status: u16,
    pub method: String,
    pub path: String,
    /// Extra request headers; a `host` header sets `:authority`.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub log_level: LogLevel,
}

/// What happened.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Whether `proxy_on_configure` accepted the configuration.
    pub configured: bool,
    pub logs: Vec<LogRecord>,
    /// The response the client got, if any.
    pub response: Option<Response>,
    /// The filter left the stream paused (it waits for something the run does not
    /// provide, such as a tick).
    pub paused: bool,
    pub faults: Vec<GuestFault>,
}

pub fn run(options: &RunOptions) -> Result<RunReport, Error> {
    let status = options.upstream_status;
    let mut proxy = Proxy::builder()
        .wasm_file(&options.wasm)
        .config(&options.config)
        .workers(options.workers)
        .log_level(options.log_level)
        .upstream(move |_| Response::status(status))
        .http_calls(|_| CallOutcome::Response(Response::status(503)))
        .start()?;
    if !proxy.configured() {
        return Ok(RunReport {
            configured: false,
            logs: proxy.take_logs(),
            response: None,
            paused: false,
            faults: proxy.faults().to_vec(),
        });
    }
    let authority = options
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host") || k.eq_ignore_ascii_case(":authority"))
        .map_or("localhost", |(_, v)| v.as_str());
    let mut request = Request::new(&options.method, &options.path, authority);
    for (k, v) in &options.headers {
        if !k.eq_ignore_ascii_case("host") && !k.eq_ignore_ascii_case(":authority") {
            request.headers.add(k, v);
        }
    }
    request.headers.add("x-forwarded-proto", "http");
    if let Some(body) = &options.body {
        request
            .headers
            .set("content-length", body.len().to_string());
        request = request.body(body);
    }
    let exchange = proxy.send(0, request)?;
    Ok(RunReport {
        configured: true,
        logs: proxy.take_logs(),
        paused: !exchange.finished && exchange.response.is_none(),
        response: exchange.response,
        faults: proxy.faults().to_vec(),
    })
}
