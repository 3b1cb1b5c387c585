//! One HTTP stream: request decision at the headers, accounting at the response, and
//! at the stream's end the settlement of a stream that got no response.

use crate::abi::{self, Level, Map};
use crate::exports::Action;
use crate::pairs::pairs;
use crate::root::Active;
use c4mesh_filter_core::control::{is_control_header, route_header_fits};
use c4mesh_filter_core::duration::Millis;
use c4mesh_filter_core::health::Signals;
use c4mesh_filter_core::reply::LocalReply;
use c4mesh_filter_core::{Request, RouteId, Ticket, Verdict};
use std::rc::Rc;

enum Phase {
    /// Headers not seen yet, or no configuration.
    Start,
    Replied(LocalReply),
    Passed,
    Forwarded {
        ticket: Ticket,
        settled: bool,
    },
}

pub struct Stream {
    active: Option<Rc<Active>>,
    phase: Phase,
    /// The proxy clock at the request headers.
    started_ms: u64,
    /// Attempts read at the response, for the debug header.
    attempts: Option<u64>,
}

impl Stream {
    pub fn new(active: Option<Rc<Active>>) -> Stream {
        Stream {
            active,
            phase: Phase::Start,
            started_ms: 0,
            attempts: None,
        }
    }

    pub fn on_request_headers(&mut self) -> Action {
        let Some(active) = self.active.clone() else {
            return Action::Continue;
        };
        let now_ms = abi::now_ms();
        self.started_ms = now_ms;
        let headers = abi::header_pairs(Map::RequestHeaders);
        let mut method: &[u8] = b"";
        let mut path: &[u8] = b"";
        let mut authority = None;
        let mut host = None;
        // Headers that go on to the service (pseudo-headers and R5's removals aside).
        let mut kept = 0usize;
        for (name, value) in pairs(&headers) {
            match name {
                b":method" => method = value,
                b":path" => path = value,
                b":authority" => authority = Some(value),
                b"host" => {
                    host = Some(value);
                    kept += 1;
                }
                _ if name.first() == Some(&b':') => {}
                _ if is_control_header(name) => abi::remove_header(Map::RequestHeaders, name),
                _ => kept += 1,
            }
        }
        let request = Request {
            method,
            path,
            authority: authority.or(host),
        };
        let mut shared = active.shared.clone();
        let mut worker = active.worker.borrow_mut();
        match worker.on_request(&request, now_ms, &mut shared) {
            Verdict::Forward(ticket) => {
                let set = worker.route_headers(&ticket, route_header_fits(kept));
                if let Some(route) = set.route {
                    abi::add_header(Map::RequestHeaders, b"x-c4-route", route.as_bytes());
                }
                if let Some(ms) = set.timeout_ms {
                    abi::add_header(
                        Map::RequestHeaders,
                        b"x-envoy-upstream-rq-timeout-ms",
                        ms.as_bytes(),
                    );
                }
                if let Some(k) = set.max_retries {
                    abi::add_header(Map::RequestHeaders, b"x-envoy-max-retries", k.as_bytes());
                }
                self.phase = Phase::Forwarded {
                    ticket,
                    settled: false,
                };
                Action::Continue
            }
            Verdict::Pass => {
                self.phase = Phase::Passed;
                Action::Continue
            }
            Verdict::Reply(reply) => {
                let headers = reply.headers(worker.config());
                let pairs: Vec<(&str, &str)> =
                    headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                abi::send_local_response(
                    reply.status(),
                    &pairs,
                    reply.body(worker.config()).as_bytes(),
                );
                self.phase = Phase::Replied(reply);
                Action::Pause
            }
        }
    }

    pub fn on_response_headers(&mut self) -> Action {
        let Some(active) = self.active.clone() else {
            return Action::Continue;
        };
        if let Phase::Forwarded { ticket, settled } = &mut self.phase {
            let ticket = *ticket;
            *settled = true;
            let status = abi::header(Map::ResponseHeaders, ":status")
                .and_then(|s| parse_u64(&s))
                .map_or(0, |s| u32::try_from(s).unwrap_or(0));
            let mut worker = active.worker.borrow_mut();
            if worker.needs_attempt_count(&ticket) {
                self.attempts = attempt_count();
            }
            // Only a change to shared health needs the upstream address and the clock.
            let (host, now_ms) = if worker.needs_health_update(&ticket, status) {
                (abi::property(&["upstream", "address"]), abi::now_ms())
            } else {
                (None, self.started_ms)
            };
            let mut shared = active.shared.clone();
            let signals = worker.on_response(
                &ticket,
                status,
                self.attempts,
                host.as_deref(),
                now_ms,
                &mut shared,
            );
            log_signals(&worker.route(ticket.route).name, &signals);
        }
        if active.worker.borrow().config().debug_headers {
            self.add_debug_headers(&active);
        }
        Action::Continue
    }

    /// The stream is over: a forwarded request that got no response (the client reset
    /// it) settles its budget and frees the probe slot it may hold.
    pub fn on_log(self) {
        let Some(active) = self.active else {
            return;
        };
        if let Phase::Forwarded {
            ticket,
            settled: false,
        } = self.phase
        {
            let mut shared = active.shared.clone();
            active.worker.borrow_mut().on_end_without_response(
                &ticket,
                attempt_count(),
                abi::now_ms(),
                &mut shared,
            );
        }
    }

    fn add_debug_headers(&self, active: &Active) {
        let worker = active.worker.borrow();
        let (route, granted, attempts): (Option<RouteId>, String, u64) = match &self.phase {
            Phase::Forwarded { ticket, .. } => (
                Some(ticket.route),
                ticket
                    .granted
                    .map_or_else(|| "none".to_owned(), |k| k.to_string()),
                self.attempts.unwrap_or(0),
            ),
            Phase::Replied(reply) => (reply.route, "0".to_owned(), 0),
            Phase::Passed | Phase::Start => (None, "none".to_owned(), 0),
        };
        let route_name = route.map_or("none", |id| worker.route(id).name.as_str());
        let circuit = route.map_or("closed", |id| worker.circuit_label(id, abi::now_ms()));
        abi::add_header(Map::ResponseHeaders, b"x-c4-route", route_name.as_bytes());
        abi::add_header(
            Map::ResponseHeaders,
            b"x-c4-retries-granted",
            granted.as_bytes(),
        );
        abi::add_header(
            Map::ResponseHeaders,
            b"x-c4-attempts",
            attempts.to_string().as_bytes(),
        );
        abi::add_header(Map::ResponseHeaders, b"x-c4-circuit", circuit.as_bytes());
    }
}

/// The request's final attempt count (B3): the property
/// `upstream.request_attempt_count` (an 8-byte little-endian integer in Envoy), else
/// the response header `x-envoy-attempt-count`.
fn attempt_count() -> Option<u64> {
    abi::property(&["upstream", "request_attempt_count"])
        .and_then(|bytes| Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)))
        .or_else(|| {
            abi::header(Map::ResponseHeaders, "x-envoy-attempt-count").and_then(|v| parse_u64(&v))
        })
}

fn parse_u64(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

fn log_signals(route: &str, signals: &Signals) {
    if let Some(ejection) = &signals.ejection {
        abi::log(
            Level::Warn,
            &format!(
                "outlier route={route} host={} consecutive_5xx={} ejected_for={}",
                String::from_utf8_lossy(&ejection.host),
                ejection.consecutive,
                Millis(ejection.ejected_for_ms)
            ),
        );
    }
    if let Some(period) = signals.opened_for_ms {
        abi::log(
            Level::Warn,
            &format!("circuit route={route} opened_for={}", Millis(period)),
        );
    }
    if signals.closed {
        abi::log(Level::Info, &format!("circuit route={route} closed"));
    }
}
