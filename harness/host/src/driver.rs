//! The stream lifecycle, in the order Envoy runs it.
//!
//! ## A stream
//!
//! `proxy_on_context_create` when the request headers arrive, then
//! `on_http_request_headers`, `_body` (per chunk), `_trailers`; once the whole request
//! has gone past the filter, the upstream answers and the response runs the same way
//! through `on_http_response_*`; when the client has the whole response, `on_log`,
//! `on_done` and `on_delete`.
//!
//! ## Pause and continue
//!
//! Pausing the headers holds everything after them (Envoy's stop-all): body chunks and
//! trailers that arrive meanwhile are kept and delivered to the filter, as one chunk,
//! after `proxy_continue_stream`. Pausing a body chunk buffers the body: later chunks are
//! appended and the filter sees the whole buffer each time; continuing sends it on.
//! Effects a callback asks for (continue, local reply, reset) apply when it returns,
//! before its own result, as Envoy's deferred actions do.
//!
//! ## Local replies
//!
//! A local reply sent before the response started replaces the request: the filter's
//! response callbacks see the reply's headers and body, as in Envoy. Sent while the
//! filter holds an upstream response, it replaces that response without passing the
//! filter again; sent after the client got headers, it resets the stream.
//!
//! ## Asynchronous work
//!
//! Queue notifications and callout answers never run inside a callback: after every
//! step the driver delivers them until nothing is left ([`Proxy::settle`]). Ticks and
//! callout timeouts run when the clock moves ([`Proxy::advance`]).
//!
//! ## Where each job lives
//!
//! One module per job, each an `impl Proxy` block over the shared step types here:
//! `events` takes the embedder's events and checks their order, `guest` calls the
//! filter and handles a VM that faults, `flow` moves each direction past the filter
//! (pause, continue, local replies, the end), `callouts` delivers queue notifications
//! and callout answers, and `time` fires ticks and timeouts.

use crate::error::Error;
use crate::http::{CallOutcome, HeaderMap, LocalReply, Response};
use crate::proxy::{FailurePolicy, Proxy, StreamId, UpstreamRequest};
use crate::state::{lock, CalloutView, Deferred, Phase};
use crate::vm::Exports;
use std::time::Duration;

mod callouts;
mod events;
mod flow;
mod guest;
mod time;

/// Rounds of asynchronous work after which the driver assumes a livelock.
const SETTLE_LIMIT: usize = 100_000;

#[derive(Debug, Clone, Copy)]
enum Callback {
    RequestHeaders,
    RequestBody,
    RequestTrailers,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
}

/// One direction of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

impl Side {
    fn is_response(self) -> bool {
        self == Side::Response
    }

    /// The direction's state and the stream's live-map flags, borrowed together.
    fn parts(
        self,
        stream: &mut crate::state::Stream,
    ) -> (&mut crate::state::Direction, &mut crate::state::Live) {
        match self {
            Side::Request => (&mut stream.request, &mut stream.live),
            Side::Response => (&mut stream.response, &mut stream.live),
        }
    }

    /// Whether the filter may touch the direction's headers, body, trailers now.
    fn live(self, live: &mut crate::state::Live) -> (&mut bool, &mut bool, &mut bool) {
        match self {
            Side::Request => (
                &mut live.request_headers,
                &mut live.request_body,
                &mut live.request_trailers,
            ),
            Side::Response => (
                &mut live.response_headers,
                &mut live.response_body,
                &mut live.response_trailers,
            ),
        }
    }

    /// The headers, body and trailers callbacks.
    fn callbacks(self) -> (Callback, Callback, Callback) {
        match self {
            Side::Request => (
                Callback::RequestHeaders,
                Callback::RequestBody,
                Callback::RequestTrailers,
            ),
            Side::Response => (
                Callback::ResponseHeaders,
                Callback::ResponseBody,
                Callback::ResponseTrailers,
            ),
        }
    }
}

/// What a filter callback came to: go on, hold the direction, or stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallbackOutcome {
    Continue,
    Pause,
    /// The VM failed and the stream with it: stop working on it.
    Failed,
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Tick(usize),
    Timeout(usize, u32),
}

fn out_of_order(id: StreamId, message: &'static str) -> Error {
    Error::OutOfOrder {
        stream: id,
        message,
    }
}
