//! Calling the filter: creating a stream's context, running one callback, and what
//! follows when a worker's VM faults (its streams fail, or pass untouched when the
//! plugin fails open). Kept apart so that every guest call goes through one place that
//! knows the failure policy and applies the callback's deferred effects.

use super::*;

impl Proxy {
    // === Calling the filter ===

    /// The stream `id` while the client's and the upstream's events still reach it:
    /// `None` once it has finished, been reset or answered locally (later events are
    /// dropped, as Envoy drops them); an error for a stream that was never opened.
    pub(super) fn accepting(
        &mut self,
        id: StreamId,
    ) -> Result<Option<&mut crate::state::Stream>, Error> {
        if self.finished.contains_key(&id) {
            return Ok(None);
        }
        let stream = self.live_stream_mut(id)?;
        Ok((stream.local_reply.is_none() && !stream.reset).then_some(stream))
    }

    pub(super) fn alive(&self, id: StreamId) -> bool {
        self.workers
            .get(id.worker)
            .is_some_and(|w| w.state().streams.contains_key(&id.context))
    }

    pub(super) fn phase(&self, id: StreamId, response: bool) -> Option<Phase> {
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
    pub(super) fn create_context(&mut self, id: StreamId) -> bool {
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

    pub(super) fn filter_call(
        &mut self,
        id: StreamId,
        callback: Callback,
        a: u32,
        b: u32,
    ) -> CallbackOutcome {
        let worker = &mut self.workers[id.worker];
        if worker.failed.is_some() {
            if self.policy == FailurePolicy::FailOpen {
                return CallbackOutcome::Continue;
            }
            self.fail_stream(id);
            return CallbackOutcome::Failed;
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
            Ok(None) => CallbackOutcome::Continue,
            Ok(Some(action)) => {
                if action == 0 && !worker.state().stop_iteration {
                    CallbackOutcome::Continue
                } else {
                    CallbackOutcome::Pause
                }
            }
            Err(fault) => {
                self.faults.push(fault);
                self.on_worker_failed(id.worker);
                if self.policy == FailurePolicy::FailOpen && self.alive(id) {
                    CallbackOutcome::Continue
                } else {
                    CallbackOutcome::Failed
                }
            }
        }
    }

    /// A worker's VM failed: its streams fail (or, fail-open, pass untouched).
    pub(super) fn on_worker_failed(&mut self, worker: usize) {
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
    pub(super) fn fail_stream(&mut self, id: StreamId) {
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
    pub(super) fn apply_deferred(&mut self, worker: usize) {
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

    pub(super) fn with_stream(&mut self, id: StreamId, f: impl FnOnce(&mut crate::state::Stream)) {
        if let Some(stream) = self.workers[id.worker]
            .state_mut()
            .streams
            .get_mut(&id.context)
        {
            f(stream);
        }
    }
}
