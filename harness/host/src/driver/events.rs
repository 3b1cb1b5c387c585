//! The embedder's side of a stream: the client's and the upstream's events, in the
//! order Envoy sees them, each checked against the stream's phase (an event out of
//! order is the embedder's mistake, an error) before the filter hears of it.

use super::*;

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
}
