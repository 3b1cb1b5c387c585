//! Virtual time: ticks and callout timeouts fire in time order as the embedder moves
//! the clock, so a test decides when time passes and nothing depends on the wall
//! clock.

use super::*;

impl Proxy {
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
                            return Err(Error::TimersKeptFiring {
                                at: Some(at),
                                rounds: SETTLE_LIMIT,
                            });
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
        Err(Error::TimersKeptFiring {
            at: None,
            rounds: SETTLE_LIMIT,
        })
    }

    // === Time ===

    pub(super) fn next_event(&self) -> Option<(u64, Event)> {
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

    pub(super) fn fire(&mut self, event: Event, now: u64) {
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
