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

use crate::error::Error;
use crate::http::{CallOutcome, HeaderMap, LocalReply, Response};
use crate::proxy::{FailurePolicy, Proxy, StreamId, UpstreamRequest};
use crate::state::{lock, CalloutView, Deferred, Phase};
use crate::vm::Exports;
use std::time::Duration;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
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

impl Proxy {
    // === Public steps ===

    /// A new stream on `worker`; its context is created when the request headers come.
    pub fn open_stream(&mut self, worker: usize) -> Result<StreamId, Error> {
        if worker >= self.workers.len() {
            return Err(Error::NoWorker(worker));
        }
        if !self.configured.get(worker).copied().unwrap_or(false) {
            return Err(Error::ConfigureRejected);
        }
        if self.workers[worker].failed.is_some() && self.policy == FailurePolicy::Reload {
            let (mut fresh, accepted) = self.new_worker(worker)?;
            // Context ids go on from the failed VM's, so stream ids stay unique.
            let next = self.workers[worker].state().next_context_id;
            let state = fresh.state_mut();
            state.next_context_id = state.next_context_id.max(next);
            self.workers[worker] = fresh;
            self.configured[worker] = accepted;
        }
        let now = self.shared.clock.now_nanos();
        let state = self.workers[worker].state_mut();
        let context = state.next_context_id;
        state.next_context_id = state.next_context_id.wrapping_add(1);
        let stream = crate::state::Stream {
            started_nanos: now,
            ..Default::default()
        };
        state.streams.insert(context, stream);
        Ok(StreamId { worker, context })
    }

    /// The client's request headers; `end` if there is no body.
    pub fn request_headers(
        &mut self,
        id: StreamId,
        headers: impl Into<HeaderMap>,
        end: bool,
    ) -> Result<(), Error> {
        if self.finished.contains_key(&id) {
            return Ok(());
        }
        let stream = self.live_stream_mut(id)?;
        if stream.request.phase != Phase::Idle {
            return Err(out_of_order(id, "request headers were already sent"));
        }
        stream.request.headers = headers.into();
        stream.request.end_received = end;
        stream.request.headers_end = end;
        if self.create_context(id) {
            self.deliver_headers(id, Side::Request);
        }
        self.settle()
    }

    /// A chunk of the client's request body; `end` if it is the last and no trailers follow.
    pub fn request_body(&mut self, id: StreamId, chunk: &[u8], end: bool) -> Result<(), Error> {
        let Some(stream) = self.accepting(id)? else {
            return Ok(());
        };
        if stream.request.phase == Phase::Idle {
            return Err(out_of_order(id, "request body before the request headers"));
        }
        if stream.request.end_received {
            return Err(out_of_order(
                id,
                "request body after the end of the request",
            ));
        }
        self.body_arrives(id, Side::Request, chunk.to_vec(), end);
        self.settle()
    }

    /// The client's request trailers (they end the request).
    pub fn request_trailers(
        &mut self,
        id: StreamId,
        trailers: impl Into<HeaderMap>,
    ) -> Result<(), Error> {
        let Some(stream) = self.accepting(id)? else {
            return Ok(());
        };
        if stream.request.phase == Phase::Idle || stream.request.end_received {
            return Err(out_of_order(
                id,
                "request trailers before the headers or after the end",
            ));
        }
        self.trailers_arrive(id, Side::Request, trailers.into());
        self.settle()
    }

    /// Answers the stream's request with `response`: now if the whole request reached
    /// the upstream, else as soon as it does.
    pub fn respond(&mut self, id: StreamId, response: Response) -> Result<(), Error> {
        if self.finished.contains_key(&id) {
            return Ok(());
        }
        let stream = self.live_stream_mut(id)?;
        if stream.request.sent_end {
            self.feed_response(id, response);
        } else {
            stream.upstream_response = Some(response);
        }
        self.settle()
    }

    /// The upstream's response headers; `end` if there is no body.
    pub fn response_headers(
        &mut self,
        id: StreamId,
        headers: impl Into<HeaderMap>,
        end: bool,
    ) -> Result<(), Error> {
        let Some(stream) = self.accepting(id)? else {
            return Ok(());
        };
        if stream.request.sent_headers.is_none() {
            return Err(out_of_order(id, "the request has not reached the upstream"));
        }
        if stream.response.phase != Phase::Idle {
            return Err(out_of_order(id, "response headers were already sent"));
        }
        self.response_headers_inner(id, headers.into(), end);
        self.settle()
    }

    /// A chunk of the upstream's response body.
    pub fn response_body(&mut self, id: StreamId, chunk: &[u8], end: bool) -> Result<(), Error> {
        let Some(stream) = self.accepting(id)? else {
            return Ok(());
        };
        if stream.response.phase == Phase::Idle || stream.response.end_received {
            return Err(out_of_order(
                id,
                "response body before the headers or after the end",
            ));
        }
        self.body_arrives(id, Side::Response, chunk.to_vec(), end);
        self.settle()
    }

    /// The upstream's response trailers (they end the response).
    pub fn response_trailers(
        &mut self,
        id: StreamId,
        trailers: impl Into<HeaderMap>,
    ) -> Result<(), Error> {
        let Some(stream) = self.accepting(id)? else {
            return Ok(());
        };
        if stream.response.phase == Phase::Idle || stream.response.end_received {
            return Err(out_of_order(
                id,
                "response trailers before the headers or after the end",
            ));
        }
        self.trailers_arrive(id, Side::Response, trailers.into());
        self.settle()
    }

    /// The client resets the stream.
    pub fn reset(&mut self, id: StreamId) -> Result<(), Error> {
        if self.finished.contains_key(&id) {
            return Ok(());
        }
        self.live_stream_mut(id)?;
        self.reset_stream(id);
        self.settle()
    }

    /// Answers a pending callout (see [`Proxy::pending_http_calls`]).
    pub fn resolve_http_call(
        &mut self,
        worker: usize,
        token: u32,
        outcome: CallOutcome,
    ) -> Result<(), Error> {
        let calls = &mut self
            .workers
            .get_mut(worker)
            .ok_or(Error::NoWorker(worker))?
            .state_mut()
            .calls;
        let call = calls
            .iter_mut()
            .find(|c| c.call.token == token)
            .ok_or(Error::UnknownCall(token))?;
        call.answer = Some(outcome);
        self.settle()
    }

    /// Moves the proxy clock forward, firing ticks and callout timeouts in time order.
    /// With wall time, sleeps for `by` and fires what is due.
    pub fn advance(&mut self, by: Duration) -> Result<(), Error> {
        let clock = self.shared.clock.clone();
        if !clock.is_virtual() {
            std::thread::sleep(by);
            return self.run_due();
        }
        let target = clock
            .now_nanos()
            .saturating_add(u64::try_from(by.as_nanos()).unwrap_or(u64::MAX));
        // Timers re-armed from the clock's last instant come due at that same instant
        // again (the time saturates): bound them as `run_due` does.
        let (mut instant, mut at_instant) = (None, 0usize);
        loop {
            match self.next_event() {
                Some((due, event)) if due <= target => {
                    // A timer overdue because the clock jumped fires once, now, as
                    // Envoy's would, instead of once for every period it missed.
                    let at = due.max(clock.now_nanos());
                    if instant == Some(at) {
                        at_instant += 1;
                        if at_instant >= SETTLE_LIMIT {
                            return Err(Error::Internal(format!(
                                "timers kept firing at {at} ns; stopped after {SETTLE_LIMIT}"
                            )));
                        }
                    } else {
                        (instant, at_instant) = (Some(at), 0);
                    }
                    clock.set(at);
                    self.fire(event, at);
                    self.settle()?;
                }
                _ => break,
            }
        }
        clock.set(target);
        Ok(())
    }

    /// Fires every tick and timeout due at the current time.
    pub fn run_due(&mut self) -> Result<(), Error> {
        let now = self.shared.clock.now_nanos();
        for _ in 0..SETTLE_LIMIT {
            match self.next_event() {
                Some((at, event)) if at <= now => {
                    self.fire(event, now);
                    self.settle()?;
                }
                _ => return Ok(()),
            }
        }
        Err(Error::Internal("timers kept firing".into()))
    }

    /// Delivers queue notifications and callout answers until none is left.
    pub fn settle(&mut self) -> Result<(), Error> {
        for _ in 0..SETTLE_LIMIT {
            let ready = lock(&self.shared.queues).next_ready();
            if let Some((worker, context, token)) = ready {
                self.deliver_queue_ready(worker, context, token);
                continue;
            }
            if self.answer_calls() {
                continue;
            }
            return Ok(());
        }
        Err(Error::Internal(format!(
            "asynchronous callbacks kept triggering each other; stopped after {SETTLE_LIMIT} rounds"
        )))
    }

    // === Calling the filter ===

    /// The stream `id` while the client's and the upstream's events still reach it:
    /// `None` once it has finished, been reset or answered locally (later events are
    /// dropped, as Envoy drops them); an error for a stream that was never opened.
    fn accepting(&mut self, id: StreamId) -> Result<Option<&mut crate::state::Stream>, Error> {
        if self.finished.contains_key(&id) {
            return Ok(None);
        }
        let stream = self.live_stream_mut(id)?;
        Ok((stream.local_reply.is_none() && !stream.reset).then_some(stream))
    }

    fn alive(&self, id: StreamId) -> bool {
        self.workers
            .get(id.worker)
            .is_some_and(|w| w.state().streams.contains_key(&id.context))
    }

    fn phase(&self, id: StreamId, response: bool) -> Option<Phase> {
        let stream = self
            .workers
            .get(id.worker)?
            .state()
            .streams
            .get(&id.context)?;
        Some(if response {
            stream.response.phase
        } else {
            stream.request.phase
        })
    }

    /// Runs `proxy_on_context_create` once; false if the stream failed.
    fn create_context(&mut self, id: StreamId) -> bool {
        let Ok(stream) = self.live_stream_mut(id) else {
            return false;
        };
        if stream.created {
            return true;
        }
        stream.created = true;
        let worker = &mut self.workers[id.worker];
        if worker.failed.is_some() {
            return self.policy == FailurePolicy::FailOpen || {
                self.fail_stream(id);
                false
            };
        }
        let root = worker.state().root_id;
        match worker.call(
            "proxy_on_context_create",
            |e| e.on_context_create.as_ref(),
            id.context,
            (id.context, root),
        ) {
            Ok(_) => true,
            Err(fault) => {
                self.faults.push(fault);
                self.on_worker_failed(id.worker);
                self.policy == FailurePolicy::FailOpen
            }
        }
    }

    fn filter_call(&mut self, id: StreamId, callback: Callback, a: u32, b: u32) -> Verdict {
        let worker = &mut self.workers[id.worker];
        if worker.failed.is_some() {
            if self.policy == FailurePolicy::FailOpen {
                return Verdict::Continue;
            }
            self.fail_stream(id);
            return Verdict::Failed;
        }
        let c = id.context;
        let result = match callback {
            Callback::RequestHeaders => worker.call(
                "proxy_on_request_headers",
                |e| e.on_request_headers.as_ref(),
                c,
                (c, a, b),
            ),
            Callback::RequestBody => worker.call(
                "proxy_on_request_body",
                |e| e.on_request_body.as_ref(),
                c,
                (c, a, b),
            ),
            Callback::RequestTrailers => worker.call(
                "proxy_on_request_trailers",
                |e| e.on_request_trailers.as_ref(),
                c,
                (c, a),
            ),
            Callback::ResponseHeaders => worker.call(
                "proxy_on_response_headers",
                |e| e.on_response_headers.as_ref(),
                c,
                (c, a, b),
            ),
            Callback::ResponseBody => worker.call(
                "proxy_on_response_body",
                |e| e.on_response_body.as_ref(),
                c,
                (c, a, b),
            ),
            Callback::ResponseTrailers => worker.call(
                "proxy_on_response_trailers",
                |e| e.on_response_trailers.as_ref(),
                c,
                (c, a),
            ),
        };
        match result {
            // Not exported: Continue, as Envoy answers for a missing callback. The
            // `stop_iteration` flag is not looked at: no callback ran, so it is still
            // what an earlier callback left (a local reply from the request headers
            // would otherwise hold the reply's own response headers).
            Ok(None) => Verdict::Continue,
            Ok(Some(action)) => {
                if action == 0 && !worker.state().stop_iteration {
                    Verdict::Continue
                } else {
                    Verdict::Pause
                }
            }
            Err(fault) => {
                self.faults.push(fault);
                self.on_worker_failed(id.worker);
                if self.policy == FailurePolicy::FailOpen && self.alive(id) {
                    Verdict::Continue
                } else {
                    Verdict::Failed
                }
            }
        }
    }

    /// A worker's VM failed: its streams fail (or, fail-open, pass untouched).
    fn on_worker_failed(&mut self, worker: usize) {
        let state = self.workers[worker].state_mut();
        state.deferred.clear();
        state.calls.clear();
        let mut contexts: Vec<u32> = state.streams.keys().copied().collect();
        contexts.sort_unstable();
        for context in contexts {
            let id = StreamId { worker, context };
            if self.policy == FailurePolicy::FailOpen {
                self.continue_side(id, Side::Request);
                self.continue_side(id, Side::Response);
            } else {
                self.fail_stream(id);
            }
        }
    }

    /// Ends a stream whose VM failed: a 503 to the client (or a reset if it already
    /// has headers), without calling into the VM.
    fn fail_stream(&mut self, id: StreamId) {
        let Some(mut stream) = self.workers[id.worker]
            .state_mut()
            .streams
            .remove(&id.context)
        else {
            return;
        };
        stream.details = Some("wasm_fail_stream".into());
        if stream.response.sent_headers.is_some() {
            stream.reset = true;
        } else {
            stream.response.sent_headers = Some(HeaderMap::from_pairs([
                (":status", "503"),
                ("content-length", "0"),
            ]));
            stream.response.sent_end = true;
        }
        stream.request.phase = Phase::Done;
        stream.response.phase = Phase::Done;
        stream.finished = true;
        self.keep_finished(id, stream);
    }

    /// Applies what callbacks on `worker` asked for, until nothing is left.
    fn apply_deferred(&mut self, worker: usize) {
        for _ in 0..SETTLE_LIMIT {
            let items = std::mem::take(&mut self.workers[worker].state_mut().deferred);
            if items.is_empty() {
                return;
            }
            for item in items {
                match item {
                    Deferred::Continue { context, response } => {
                        let id = StreamId { worker, context };
                        if response {
                            self.continue_side(id, Side::Response);
                        } else {
                            self.continue_side(id, Side::Request);
                        }
                    }
                    Deferred::LocalReply { context, reply } => {
                        self.local_reply(StreamId { worker, context }, reply)
                    }
                    Deferred::Reset { context } => self.reset_stream(StreamId { worker, context }),
                }
            }
        }
    }

    fn with_stream(&mut self, id: StreamId, f: impl FnOnce(&mut crate::state::Stream)) {
        if let Some(stream) = self.workers[id.worker]
            .state_mut()
            .streams
            .get_mut(&id.context)
        {
            f(stream);
        }
    }

    // === Either direction ===
    //
    // The request and the response pass the filter the same way: headers (which the
    // filter may pause, holding everything after them), body chunks (pausing one
    // buffers the body), trailers. Only their callbacks and what follows their end
    // differ: the upstream answers the request, the response ends the stream.

    fn deliver_headers(&mut self, id: StreamId, side: Side) {
        let mut args = (0, 0);
        self.with_stream(id, |s| {
            let (d, live) = side.parts(s);
            d.phase = Phase::HeadersPaused;
            *side.live(live).0 = true;
            args = (d.headers.len() as u32, u32::from(d.headers_end));
        });
        let verdict = self.filter_call(id, side.callbacks().0, args.0, args.1);
        if verdict == Verdict::Failed {
            return;
        }
        self.apply_deferred(id.worker);
        if verdict == Verdict::Continue
            && self.phase(id, side.is_response()) == Some(Phase::HeadersPaused)
        {
            self.with_stream(id, |s| *side.live(&mut s.live).0 = false);
            self.release_headers(id, side);
        }
    }

    fn release_headers(&mut self, id: StreamId, side: Side) {
        let mut headers_end = false;
        let mut held = None;
        self.with_stream(id, |s| {
            if side == Side::Request {
                s.upstream_reached = true;
            }
            let (d, _) = side.parts(s);
            d.phase = Phase::Flowing;
            d.sent_headers = Some(d.headers.clone());
            headers_end = d.headers_end;
            if !headers_end {
                let trailers = d.held_trailers.take();
                let deliver_body =
                    !d.held_body.is_empty() || (d.end_received && trailers.is_none());
                if deliver_body {
                    d.body = std::mem::take(&mut d.held_body);
                }
                held = Some((deliver_body, d.end_received && trailers.is_none(), trailers));
            }
        });
        if headers_end {
            self.with_stream(id, |s| {
                let (d, _) = side.parts(s);
                d.sent_end = true;
                d.phase = Phase::Done;
            });
            self.side_done(id, side);
            return;
        }
        let Some((deliver_body, end, trailers)) = held else {
            return;
        };
        if deliver_body {
            self.deliver_body(id, side, end);
        }
        if let Some(trailers) = trailers {
            if matches!(
                self.phase(id, side.is_response()),
                Some(Phase::Flowing | Phase::Buffering)
            ) {
                self.with_stream(id, |s| side.parts(s).0.trailers = Some(trailers));
                self.deliver_trailers(id, side);
            }
        }
    }

    fn deliver_body(&mut self, id: StreamId, side: Side, end: bool) {
        let mut size = 0;
        self.with_stream(id, |s| {
            let (d, live) = side.parts(s);
            d.phase = Phase::Buffering;
            *side.live(live).1 = true;
            size = d.body.len() as u32;
        });
        let verdict = self.filter_call(id, side.callbacks().1, size, u32::from(end));
        if verdict == Verdict::Failed {
            return;
        }
        self.apply_deferred(id.worker);
        if verdict == Verdict::Continue
            && self.phase(id, side.is_response()) == Some(Phase::Buffering)
        {
            self.flush_body(id, side, end);
        }
    }

    fn flush_body(&mut self, id: StreamId, side: Side, end: bool) {
        self.with_stream(id, |s| {
            let (d, live) = side.parts(s);
            *side.live(live).1 = false;
            let body = std::mem::take(&mut d.body);
            d.sent_body.extend_from_slice(&body);
            d.phase = Phase::Flowing;
            if end {
                d.sent_end = true;
                d.phase = Phase::Done;
            }
        });
        if end {
            self.side_done(id, side);
        }
    }

    fn deliver_trailers(&mut self, id: StreamId, side: Side) {
        let mut count = 0;
        self.with_stream(id, |s| {
            let (d, live) = side.parts(s);
            d.phase = Phase::TrailersPaused;
            *side.live(live).2 = true;
            count = d.trailers.as_ref().map_or(0, HeaderMap::len) as u32;
        });
        let verdict = self.filter_call(id, side.callbacks().2, count, 0);
        if verdict == Verdict::Failed {
            return;
        }
        self.apply_deferred(id.worker);
        if verdict == Verdict::Continue
            && self.phase(id, side.is_response()) == Some(Phase::TrailersPaused)
        {
            self.flush_all(id, side);
        }
    }

    fn flush_all(&mut self, id: StreamId, side: Side) {
        self.with_stream(id, |s| {
            let (d, live) = side.parts(s);
            let (_, body, trailers) = side.live(live);
            *body = false;
            *trailers = false;
            let sent = std::mem::take(&mut d.body);
            d.sent_body.extend_from_slice(&sent);
            d.sent_trailers = d.trailers.clone();
            d.sent_end = true;
            d.phase = Phase::Done;
        });
        self.side_done(id, side);
    }

    /// `proxy_continue_stream` for one direction: whatever the filter paused goes on.
    fn continue_side(&mut self, id: StreamId, side: Side) {
        let mut phase = None;
        let mut end = false;
        self.with_stream(id, |s| {
            let (d, live) = side.parts(s);
            let (headers, body, trailers) = side.live(live);
            *headers = false;
            *body = false;
            *trailers = false;
            phase = Some(d.phase);
            end = d.end_received && d.trailers.is_none();
        });
        match phase {
            Some(Phase::HeadersPaused) => self.release_headers(id, side),
            Some(Phase::Buffering) => self.flush_body(id, side, end),
            Some(Phase::TrailersPaused) => self.flush_all(id, side),
            _ => {}
        }
    }

    /// A direction went past the filter entirely.
    fn side_done(&mut self, id: StreamId, side: Side) {
        match side {
            Side::Request => self.request_done(id),
            Side::Response => self.finish(id),
        }
    }

    // === Request ===

    /// The whole request reached the upstream: the upstream answers, if it can.
    fn request_done(&mut self, id: StreamId) {
        let Some(stream) = self.workers[id.worker]
            .state_mut()
            .streams
            .get_mut(&id.context)
        else {
            return;
        };
        if stream.local_reply.is_some() || stream.reset {
            return;
        }
        let response = match stream.upstream_response.take() {
            Some(response) => response,
            None => {
                let Some(upstream) = self.upstream.as_mut() else {
                    return;
                };
                // The upstream borrows the request as it left the filter: moved out of
                // the stream for the call and back, not copied.
                let Some(headers) = stream.request.sent_headers.take() else {
                    return;
                };
                let request = UpstreamRequest {
                    stream: id,
                    headers,
                    body: std::mem::take(&mut stream.request.sent_body),
                    trailers: stream.request.sent_trailers.take(),
                };
                let response = upstream(&request);
                stream.request.sent_headers = Some(request.headers);
                stream.request.sent_body = request.body;
                stream.request.sent_trailers = request.trailers;
                response
            }
        };
        self.feed_response(id, response);
    }

    // === Response ===

    fn feed_response(&mut self, id: StreamId, response: Response) {
        let local = self
            .stream_data(id)
            .is_none_or(|s| s.local_reply.is_some() || s.reset);
        if local || self.phase(id, true) != Some(Phase::Idle) {
            return;
        }
        let chunks = response.body.len();
        let has_trailers = response.trailers.is_some();
        self.response_headers_inner(id, response.headers, chunks == 0 && !has_trailers);
        for (i, chunk) in response.body.into_iter().enumerate() {
            if !self.alive(id) {
                return;
            }
            self.body_arrives(id, Side::Response, chunk, i + 1 == chunks && !has_trailers);
        }
        if let Some(trailers) = response.trailers {
            if self.alive(id) {
                self.trailers_arrive(id, Side::Response, trailers);
            }
        }
    }

    fn response_headers_inner(&mut self, id: StreamId, headers: HeaderMap, end: bool) {
        self.with_stream(id, |s| {
            s.response.headers = headers;
            s.response.end_received = end;
            s.response.headers_end = end;
            if s.details.is_none() {
                s.details = Some("via_upstream".into());
            }
        });
        self.deliver_headers(id, Side::Response);
    }

    /// A body chunk from the sender: held while the filter holds the headers, else
    /// through the filter.
    fn body_arrives(&mut self, id: StreamId, side: Side, chunk: Vec<u8>, end: bool) {
        let mut phase = None;
        self.with_stream(id, |s| {
            let (d, _) = side.parts(s);
            d.end_received = end;
            phase = Some(d.phase);
            match d.phase {
                Phase::HeadersPaused => d.held_body.extend_from_slice(&chunk),
                Phase::Flowing => d.body = chunk,
                Phase::Buffering => d.body.extend_from_slice(&chunk),
                _ => {}
            }
        });
        if matches!(phase, Some(Phase::Flowing | Phase::Buffering)) {
            self.deliver_body(id, side, end);
        }
    }

    /// Trailers from the sender (they end the direction).
    fn trailers_arrive(&mut self, id: StreamId, side: Side, trailers: HeaderMap) {
        let mut phase = None;
        self.with_stream(id, |s| {
            let (d, _) = side.parts(s);
            d.end_received = true;
            phase = Some(d.phase);
            match d.phase {
                Phase::HeadersPaused => d.held_trailers = Some(trailers),
                Phase::Flowing | Phase::Buffering => d.trailers = Some(trailers),
                _ => {}
            }
        });
        if matches!(phase, Some(Phase::Flowing | Phase::Buffering)) {
            self.deliver_trailers(id, side);
        }
    }

    // === Local replies, resets, the end ===

    fn local_reply(&mut self, id: StreamId, reply: LocalReply) {
        let Some(stream) = self.workers[id.worker]
            .state_mut()
            .streams
            .get_mut(&id.context)
        else {
            return;
        };
        if stream.local_reply.is_some() || stream.reset {
            return;
        }
        stream.local_reply = Some(reply.clone());
        stream.details = Some(reply.details.clone());
        stream.request.phase = Phase::Done;
        stream.request.held_body.clear();
        stream.request.held_trailers = None;
        if stream.response.sent_headers.is_some() {
            self.reset_stream(id);
            return;
        }
        if stream.response.phase != Phase::Idle {
            // The filter holds the upstream's response: the reply replaces it directly.
            stream.response.sent_headers = Some(reply.response_headers());
            stream.response.sent_body = reply.body;
            stream.response.sent_trailers = None;
            stream.response.sent_end = true;
            stream.response.phase = Phase::Done;
            self.finish(id);
            return;
        }
        let body = reply.body.clone();
        self.response_headers_inner(id, reply.response_headers(), body.is_empty());
        if !body.is_empty() && self.alive(id) {
            self.body_arrives(id, Side::Response, body, true);
        }
    }

    fn reset_stream(&mut self, id: StreamId) {
        if !self.alive(id) {
            return;
        }
        self.with_stream(id, |s| {
            s.reset = true;
            s.request.phase = Phase::Done;
            s.response.phase = Phase::Done;
        });
        self.finish(id);
    }

    /// `on_log`, `on_done`, `on_delete`, then the stream is kept as finished.
    fn finish(&mut self, id: StreamId) {
        let Some(stream) = self.workers[id.worker]
            .state_mut()
            .streams
            .get_mut(&id.context)
        else {
            return;
        };
        if stream.finished {
            return;
        }
        stream.finished = true;
        let created = stream.created;
        let c = id.context;
        let worker = &mut self.workers[id.worker];
        if created && worker.failed.is_none() {
            worker
                .state_mut()
                .streams
                .entry(c)
                .and_modify(|s| s.in_log = true);
            let mut result = worker
                .call("proxy_on_log", |e| e.on_log.as_ref(), c, c)
                .map(|_| ());
            worker
                .state_mut()
                .streams
                .entry(c)
                .and_modify(|s| s.in_log = false);
            if result.is_ok() {
                result = worker
                    .call("proxy_on_done", |e| e.on_done.as_ref(), c, c)
                    .map(|_| ());
            }
            if result.is_ok() {
                result = worker
                    .call("proxy_on_delete", |e| e.on_delete.as_ref(), c, c)
                    .map(|_| ());
            }
            if let Err(fault) = result {
                self.faults.push(fault);
            }
        }
        let worker = &mut self.workers[id.worker];
        let state = worker.state_mut();
        state.deferred.retain(|d| match d {
            Deferred::Continue { context, .. }
            | Deferred::LocalReply { context, .. }
            | Deferred::Reset { context } => *context != c,
        });
        if let Some(stream) = state.streams.remove(&c) {
            self.keep_finished(id, stream);
        }
        if self.workers[id.worker].failed.is_some() {
            self.on_worker_failed(id.worker);
        } else {
            self.apply_deferred(id.worker);
        }
    }

    /// Keeps a finished stream readable, forgetting the oldest beyond
    /// [`FINISHED_KEPT`](crate::proxy::FINISHED_KEPT).
    fn keep_finished(&mut self, id: StreamId, stream: crate::state::Stream) {
        if self.finished.insert(id, stream).is_none() {
            self.finished_order.push_back(id);
        }
        while self.finished_order.len() > crate::proxy::FINISHED_KEPT {
            if let Some(old) = self.finished_order.pop_front() {
                self.finished.remove(&old);
            }
        }
    }

    // === Root callbacks ===

    fn deliver_queue_ready(&mut self, worker: usize, context: u32, token: u32) {
        let Some(w) = self.workers.get_mut(worker) else {
            return;
        };
        if w.failed.is_some() {
            return;
        }
        let ready: fn(&Exports) -> Option<&_> = |e| e.on_queue_ready.as_ref();
        if let Err(fault) = w.call("proxy_on_queue_ready", ready, context, (context, token)) {
            self.faults.push(fault);
            self.on_worker_failed(worker);
            return;
        }
        self.apply_deferred(worker);
    }

    /// Asks the handler about new callouts and delivers one answer; true if it did.
    fn answer_calls(&mut self) -> bool {
        let mut unasked = Vec::new();
        for w in &self.workers {
            for pending in &w.state().calls {
                if pending.answer.is_none() {
                    unasked.push(pending.call.clone());
                }
            }
        }
        for call in unasked {
            let outcome = match self.http_calls.as_mut() {
                Some(handler) => handler(&call),
                None => CallOutcome::Pending,
            };
            let calls = &mut self.workers[call.worker].state_mut().calls;
            if let Some(pending) = calls.iter_mut().find(|p| p.call.token == call.token) {
                pending.answer = Some(outcome);
            }
        }
        for worker in 0..self.workers.len() {
            let calls = &mut self.workers[worker].state_mut().calls;
            let ready = calls.iter().position(|p| {
                matches!(
                    p.answer,
                    Some(CallOutcome::Response(_) | CallOutcome::Reset)
                )
            });
            if let Some(index) = ready {
                let pending = calls.remove(index);
                if let Some(outcome) = pending.answer {
                    self.deliver_call(worker, pending.call.token, outcome);
                }
                return true;
            }
        }
        false
    }

    fn deliver_call(&mut self, worker: usize, token: u32, outcome: CallOutcome) {
        let w = &mut self.workers[worker];
        if w.failed.is_some() {
            return;
        }
        let root = w.state().root_id;
        let counts = {
            let state = w.state_mut();
            match outcome {
                CallOutcome::Response(response) => {
                    let view = CalloutView {
                        body: response.body.concat(),
                        headers: response.headers,
                        trailers: response.trailers.unwrap_or_default(),
                    };
                    let counts = (
                        view.headers.len() as u32,
                        view.body.len() as u32,
                        view.trailers.len() as u32,
                    );
                    state.callout = Some(view);
                    state.status = (0, Vec::new());
                    counts
                }
                _ => {
                    state.callout = None;
                    state.status = (
                        crate::abi::Status::BrokenConnection as u32,
                        b"reset".to_vec(),
                    );
                    (0, 0, 0)
                }
            }
        };
        let result = w.call(
            "proxy_on_http_call_response",
            |e| e.on_http_call_response.as_ref(),
            root,
            (root, token, counts.0, counts.1, counts.2),
        );
        let state = w.state_mut();
        state.callout = None;
        state.status = (0, Vec::new());
        if let Err(fault) = result {
            self.faults.push(fault);
            self.on_worker_failed(worker);
            return;
        }
        self.apply_deferred(worker);
    }

    // === Time ===

    fn next_event(&self) -> Option<(u64, Event)> {
        let mut next: Option<(u64, Event)> = None;
        let mut consider = |at: u64, event: Event| {
            if next.is_none_or(|(t, _)| at < t) {
                next = Some((at, event));
            }
        };
        for w in &self.workers {
            if w.failed.is_some() {
                continue;
            }
            let state = w.state();
            if let Some(at) = state.tick.next_at {
                consider(at, Event::Tick(w.index));
            }
            for pending in &state.calls {
                let waiting = matches!(pending.answer, None | Some(CallOutcome::Pending));
                if let (true, Some(at)) = (waiting, pending.deadline) {
                    consider(at, Event::Timeout(w.index, pending.call.token));
                }
            }
        }
        next
    }

    fn fire(&mut self, event: Event, now: u64) {
        match event {
            Event::Tick(worker) => {
                let w = &mut self.workers[worker];
                let period = u64::from(w.state().tick.period_ms) * 1_000_000;
                w.state_mut().tick.next_at = (period > 0).then(|| now.saturating_add(period));
                let root = w.state().root_id;
                if let Err(fault) = w.call("proxy_on_tick", |e| e.on_tick.as_ref(), root, root) {
                    self.faults.push(fault);
                    self.on_worker_failed(worker);
                    return;
                }
                self.apply_deferred(worker);
            }
            Event::Timeout(worker, token) => {
                let calls = &mut self.workers[worker].state_mut().calls;
                if let Some(pending) = calls.iter_mut().find(|p| p.call.token == token) {
                    // What Envoy's async client answers on a timeout.
                    pending.answer = Some(CallOutcome::Response(
                        Response::status(504)
                            .header("content-type", "text/plain")
                            .body("upstream request timeout"),
                    ));
                }
            }
        }
    }
}

fn out_of_order(id: StreamId, message: &str) -> Error {
    Error::OutOfOrder {
        stream: id.to_string(),
        message: message.to_owned(),
    }
}
