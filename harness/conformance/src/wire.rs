//! Scenario traffic over real HTTP in wall time, for the `envoy` and `url` targets.
//!
//! Each request goes on its own connection, so requests spread over the proxy's
//! workers as separate clients' would. To the local Envoy of the `envoy` target
//! requests are written as raw HTTP/1.1 bytes: scenarios send malformed requests on
//! purpose (raw backslashes, no Host), which no HTTP library sends. To a live gateway
//! (the `url` target) they go through the product's client stack ([`c4mesh_live`]:
//! HTTP or HTTPS, verified for the request's host), and only a request that stack
//! refuses to build is written raw, over TCP or TLS. Steps run in order; within a
//! step up to `concurrency` client threads send, either as soon as their previous
//! request is answered (closed loop) or when each request is due (open loop).

use super::observe::{Exchange, NoReply, Reply};
use super::scenario::Scenario;
use super::traffic::{ClientRequest, Plan};
use c4mesh_live::connection::Dialer;
use c4mesh_live::{self as live, BlockingClient, Settings};
use c4mesh_mesh::Client;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Where requests go and how their Host header is chosen.
#[derive(Debug, Clone)]
pub struct Destination {
    pub addr: SocketAddr,
    /// Replaces the scenario's default host `api.c4ang.com` (for a live gateway known by
    /// another name).
    pub host_override: Option<String>,
    /// A live gateway: the client stack's dialer (its TLS configuration made once)
    /// and settings (else raw bytes to `addr`).
    pub live: Option<(Dialer, Settings)>,
}

/// The raw HTTP/1.1 bytes of a request.
pub fn raw_request(request: &ClientRequest, host_override: Option<&str>) -> Vec<u8> {
    let mut raw = format!("{} {} HTTP/1.1\r\n", request.method, request.path).into_bytes();
    if let Some(host) = &request.host {
        let host = match host_override {
            Some(other) if host == "api.c4ang.com" => other,
            _ => host.as_str(),
        };
        raw.extend_from_slice(format!("host: {host}\r\n").as_bytes());
    }
    for (name, value) in &request.headers {
        raw.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if let Some(body) = &request.body {
        raw.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    raw.extend_from_slice(b"connection: close\r\n\r\n");
    if let Some(body) = &request.body {
        raw.extend_from_slice(body);
    }
    raw
}

/// Longest a live gateway may take for one scenario request.
const LIVE_TIMEOUT: Duration = Duration::from_secs(20);

fn send(destination: &Destination, request: &ClientRequest) -> Result<Reply, NoReply> {
    if let Some((dialer, settings)) = &destination.live {
        return send_live(
            dialer,
            settings,
            destination.host_override.as_deref(),
            request,
        );
    }
    let raw = raw_request(request, destination.host_override.as_deref());
    let client = Client::new(destination.addr);
    let response = match request.abort_after {
        Some(patience) => client.send_raw_or_abort(&raw, patience),
        None => client.send_raw(&raw).map(Some),
    };
    match response {
        Ok(Some(r)) => Ok(Reply {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }),
        Ok(None) => Err(NoReply::Aborted),
        Err(e) => Err(NoReply::Failed(super::describe(&e))),
    }
}

/// A request to a live gateway: through the client stack when it can be built,
/// else as raw bytes (no Host header, bytes the `http` types refuse). A request with
/// `abort_after` has that long instead of [`LIVE_TIMEOUT`], and running out of it is
/// the client giving up.
fn send_live(
    dialer: &Dialer,
    settings: &Settings,
    host_override: Option<&str>,
    request: &ClientRequest,
) -> Result<Reply, NoReply> {
    let reply = |r: live::FullResponse| Reply {
        status: r.status,
        headers: r.headers,
        body: r.body.to_vec(),
    };
    let timeout = request.abort_after.unwrap_or(LIVE_TIMEOUT);
    let failed = |kind: live::ErrorKind| match kind {
        live::ErrorKind::Timeout if request.abort_after.is_some() => NoReply::Aborted,
        kind => NoReply::Failed(kind.to_string()),
    };
    if let Some(host) = &request.host {
        let host = match host_override {
            Some(other) if host == "api.c4ang.com" => other.to_owned(),
            _ => host.clone(),
        };
        let mut client = BlockingClient::with_dialer(dialer.with_host(&host))
            .map_err(|e| NoReply::Failed(super::describe(&e)))?;
        let body = request.body.as_deref().unwrap_or_default();
        match client.send(
            &request.method,
            &request.path,
            &request.headers,
            body,
            timeout,
        ) {
            Ok(response) => return Ok(reply(response)),
            Err(live::ErrorKind::BadRequest) => {}
            Err(kind) => return Err(failed(kind)),
        }
    }
    let raw = raw_request(request, host_override);
    let bytes = live::raw::exchange(&dialer.endpoint, settings, &raw, timeout).map_err(failed)?;
    live::raw::parse(&bytes)
        .map(reply)
        .map_err(|k| NoReply::Failed(k.to_string()))
}

/// Runs the scenario's steps against `destination`; `start` is scenario time zero.
pub fn drive(scenario: &Scenario, destination: &Destination, start: Instant) -> Vec<Exchange> {
    let exchanges = Arc::new(Mutex::new(Vec::new()));
    let ids = Arc::new(AtomicU64::new(1));
    for (index, step) in scenario.steps.iter().enumerate() {
        if let Some(at) = step.at {
            sleep_until(start + at);
        }
        let step_start = Instant::now();
        let plan = Plan::of(step);
        let next = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..plan.concurrency.min(plan.count))
            .map(|_| {
                let (next, ids, exchanges) =
                    (Arc::clone(&next), Arc::clone(&ids), Arc::clone(&exchanges));
                let (destination, spec) = (destination.clone(), step.request.clone());
                thread::spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= plan.count {
                        return;
                    }
                    sleep_until(step_start + plan.due(i));
                    let request = ClientRequest::new(&spec, ids.fetch_add(1, Ordering::SeqCst));
                    let response = send(&destination, &request);
                    if let Ok(mut all) = exchanges.lock() {
                        all.push(Exchange {
                            id: request.id,
                            step: index,
                            response,
                        });
                    }
                })
            })
            .collect();
        for client in clients {
            let _ = client.join();
        }
    }
    let mut all = exchanges.lock().map(|e| e.clone()).unwrap_or_default();
    all.sort_by_key(|e| e.id);
    all
}

pub fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        thread::sleep(at - now);
    }
}

/// How long after the last step the `envoy` target reads metrics.
pub const METRICS_SETTLE: Duration = super::wasm_target::METRICS_SETTLE;
