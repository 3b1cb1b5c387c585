//! One request through a module: what `c4mesh run` does.
//!
//! An operator tries a filter before it reaches the mesh: load the module with its
//! configuration, send one request, let a simple upstream answer with a fixed status,
//! and see what the module logged and what the client got. Everything runs in the
//! harness on virtual time.
//!
//! The upstream answers as a service of the mesh does: the status asked for, a JSON
//! body (none for 1xx, 204 and 304) with its `content-length`, delivered as Envoy's
//! HTTP/1 codec delivers it (the body, then an empty last chunk), so the module's
//! `on_http_response_headers` sees `end_of_stream=false`. The proxy has the clusters
//! named in [`RunOptions::clusters`] and no others: a callout to another cluster
//! answers `BadArgument`, as in Envoy; a callout to a named cluster gets Envoy's 503
//! `no healthy upstream`, since the run has no endpoints behind it.

use crate::{
    CallOutcome, DownstreamRequest, Error, GuestFault, LogLevel, LogRecord, Proxy, Response,
};
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
    /// The plugin's name (the property `plugin_name`).
    pub name: String,
    /// Clusters the proxy has, which `proxy_http_call` may name.
    pub clusters: Vec<String>,
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

/// What the run's upstream answers to a request for `path`.
fn upstream_answer(status: u16, path: &str) -> Response {
    let response = Response::status(status);
    if status < 200 || status == 204 || status == 304 {
        return response.header("content-length", "0");
    }
    let body = serde_json::json!({"service": "upstream", "path": path}).to_string();
    response
        .header("content-type", "application/json")
        .header("content-length", &body.len().to_string())
        .body(body)
        .body("")
}

pub fn run(options: &RunOptions) -> Result<RunReport, Error> {
    let status = options.upstream_status;
    let mut proxy = Proxy::builder()
        .wasm_file(&options.wasm)
        .config(&options.config)
        .workers(options.workers)
        .log_level(options.log_level)
        .name(&options.name)
        .clusters(options.clusters.iter().cloned())
        .upstream(move |request| upstream_answer(status, request.header(":path").unwrap_or("")))
        .http_calls(|_| {
            CallOutcome::Response(
                Response::status(503)
                    .header("content-type", "text/plain")
                    .header("content-length", "19")
                    .body("no healthy upstream"),
            )
        })
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
    let mut request = DownstreamRequest::new(&options.method, &options.path, authority);
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
