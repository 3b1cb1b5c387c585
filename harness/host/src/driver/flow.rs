//! How the request and the response pass the filter: pausing and continuing,
//! buffering a paused body, the upstream's answer, local replies, resets and the end
//! of a stream. The part of the driver that is Envoy's filter-manager semantics, apart
//! from how the filter is called and from what runs outside streams.

use super::*;

impl Proxy {
    // === Either direction ===
    //
    // The request and the response pass the filter the same way: headers (which the
    // filter may pause, holding everything after them), body chunks (pausing one
    // buffers the body), trailers. Only their callbacks and what follows their end
    // differ: the upstream answers the request, the response ends the stream.

    pub(super) fn deliver_headers(&mut self, id: StreamId, side: Side) {
        let mut args = (0, 0);
        self.with_stream(id, |s| {
            let (d, live) = side.parts(s);
            d.phase = Phase::HeadersPaused;
            *side.live(live).0 = true;
            args = (d.headers.len() as u32, u32::from(d.headers_end));
        });
        let verdict = self.filter_call(id, side.callbacks().0, args.0, args.1);
        if verdict == CallbackOutcome::Failed {
            return;
        }
        self.apply_deferred(id.worker);
        if verdict == CallbackOutcome::Continue
            && self.phase(id, side.is_response()) == Some(Phase::HeadersPaused)
        {
            self.with_stream(id, |s| *side.live(&mut s.live).0 = false);
            self.release_headers(id, side);
        }
    }

    pub(super) fn release_headers(&mut self, id: StreamId, side: Side) {
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

    pub(super) fn deliver_body(&mut self, id: StreamId, side: Side, end: bool) {
        let mut size = 0;
        self.with_stream(id, |s| {
            let (d, live) = side.parts(s);
            d.phase = Phase::Buffering;
            *side.live(live).1 = true;
            size = d.body.len() as u32;
        });
        let verdict = self.filter_call(id, side.callbacks().1, size, u32::from(end));
        if verdict == CallbackOutcome::Failed {
            return;
        }
        self.apply_deferred(id.worker);
        if verdict == CallbackOutcome::Continue
            && self.phase(id, side.is_response()) == Some(Phase::Buffering)
        {
            self.flush_body(id, side, end);
        }
    }

    pub(super) fn flush_body(&mut self, id: StreamId, side: Side, end: bool) {
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

    pub(super) fn deliver_trailers(&mut self, id: StreamId, side: Side) {
        let mut count = 0;
        self.with_stream(id, |s| {
            let (d, live) = side.parts(s);
            d.phase = Phase::TrailersPaused;
            *side.live(live).2 = true;
            count = d.trailers.as_ref().map_or(0, HeaderMap::len) as u32;
        });
        let verdict = self.filter_call(id, side.callbacks().2, count, 0);
        if verdict == CallbackOutcome::Failed {
            return;
        }
        self.apply_deferred(id.worker);
        if verdict == CallbackOutcome::Continue
            && self.phase(id, side.is_response()) == Some(Phase::TrailersPaused)
        {
            self.flush_all(id, side);
        }
    }

    pub(super) fn flush_all(&mut self, id: StreamId, side: Side) {
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
    pub(super) fn continue_side(&mut self, id: StreamId, side: Side) {
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
    pub(super) fn side_done(&mut self, id: StreamId, side: Side) {
        match side {
            Side::Request => self.request_done(id),
            Side::Response => self.finish(id),
        }
    }

    // === Request ===

    /// The whole request reached the upstream: the upstream answers, if it can.
    pub(super) fn request_done(&mut self, id: StreamId) {
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

    pub(super) fn feed_response(&mut self, id: StreamId, response: Response) {
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

    pub(super) fn response_headers_inner(&mut self, id: StreamId, headers: HeaderMap, end: bool) {
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
    pub(super) fn body_arrives(&mut self, id: StreamId, side: Side, chunk: Vec<u8>, end: bool) {
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
    pub(super) fn trailers_arrive(&mut self, id: StreamId, side: Side, trailers: HeaderMap) {
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

    pub(super) fn local_reply(&mut self, id: StreamId, reply: LocalReply) {
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

    pub(super) fn reset_stream(&mut self, id: StreamId) {
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
    pub(super) fn finish(&mut self, id: StreamId) {
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
    pub(super) fn keep_finished(&mut self, id: StreamId, stream: crate::state::Stream) {
        if self.finished.insert(id, stream).is_none() {
            self.finished_order.push_back(id);
        }
        while self.finished_order.len() > crate::proxy::FINISHED_KEPT {
            if let Some(old) = self.finished_order.pop_front() {
                self.finished.remove(&old);
            }
        }
    }
}
