//! Work outside any stream callback: queue notifications and callout answers, which
//! Envoy delivers on the worker's event loop once the current callback has returned,
//! so they are delivered here after each step until none is left ([`Proxy::settle`]).

use super::*;

impl Proxy {
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
        Err(Error::Unsettled {
            rounds: SETTLE_LIMIT,
        })
    }

    // === Root callbacks ===

    pub(super) fn deliver_queue_ready(&mut self, worker: usize, context: u32, token: u32) {
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
    pub(super) fn answer_calls(&mut self) -> bool {
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

    pub(super) fn deliver_call(&mut self, worker: usize, token: u32, outcome: CallOutcome) {
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
}
