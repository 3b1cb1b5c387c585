//! One worker VM's filter: the decisions for each request and response.
//!
//! Envoy runs one VM per worker thread; each holds a [`Worker`]. A request on a
//! healthy route is decided from the worker's own state (route table, budget ledger,
//! cached circuit view) without reading shared data; shared data is read and written
//! only when something the other workers must see changes: a budget lease, a 5xx, a
//! success that ends a streak, a probe. Those changes are pushed to the other
//! workers with [`Shared::notify`] so their cached views follow.
//!
//! ## Gateway and sidecar
//!
//! The two modes differ only in how a request finds its route: at the gateway by host
//! and path (R1, R2, R3, R7), in a sidecar by destination service (S1), where a call to
//! anything that is not a destination of the mesh passes untouched (S2) before any
//! check. From the route on (R4, O2-O3, B2 and the response phase) both are the same
//! code (S3).

use crate::budget::{Ledger, ReservePool};
use crate::config::{Config, Mode, Route, Unmatched};
use crate::health::{Admission, HealthView, Outcome, RouteHealth, Signals};
use crate::metrics::{GlobalCounter, MetricUpdate, RouteCounter, Tally};
use crate::path;
use crate::reply::{LocalReply, Reason};
use crate::routes::RouteId;
use crate::shared::{Shared, CAS_ATTEMPTS};

/// Values of `x-envoy-max-retries` (attempts are at most 10): no formatting per request.
const RETRY_COUNTS: [&str; 11] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"];

/// What the filter needs of a request's headers.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a [u8],
    /// `:path`, query included.
    pub path: &'a [u8],
    /// `:authority`, else `host`.
    pub authority: Option<&'a [u8]>,
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Answer locally.
    Reply(LocalReply),
    /// Forward untouched (control headers aside): unmatched with `unmatched: pass` at
    /// the gateway, or not a destination of the mesh in a sidecar.
    Pass,
    /// Forward with the route's headers set.
    Forward(Ticket),
}

/// A forwarded request's state until its stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub route: RouteId,
    /// Retries reserved (`x-envoy-max-retries`); `None` when the budget is off.
    pub granted: Option<u32>,
    /// The half-open circuit's probe.
    pub probe: bool,
}

/// The request headers the filter sets on a forwarded request (R6, B2): each is
/// `None` where the proxy's route already applies the same value or, for the route
/// name, where the configuration does not ask for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouteHeaders<'a> {
    /// `x-c4-route`.
    pub route: Option<&'a str>,
    /// `x-envoy-upstream-rq-timeout-ms`.
    pub timeout_ms: Option<&'a str>,
    /// `x-envoy-max-retries`.
    pub max_retries: Option<&'static str>,
}

/// A worker's state for one route.
#[derive(Debug)]
struct RouteState {
    budget_key: String,
    health_key: String,
    timeout_header: String,
    ledger: Option<Ledger>,
    /// No lease attempt before this time after one came back short.
    lease_after_ms: u64,
    view: HealthView,
    /// Last value given to the `circuit_open` gauge.
    gauge: Option<bool>,
}

/// The filter of one worker VM.
#[derive(Debug)]
pub struct Worker {
    config: Config,
    routes: Vec<RouteState>,
    tally: Tally,
}

impl Worker {
    /// `namespace` separates the shared values of different configurations (the glue
    /// passes a fingerprint of the configuration bytes).
    pub fn new(config: Config, namespace: u64) -> Worker {
        let routes = config
            .routes
            .iter()
            .map(|route| RouteState {
                budget_key: format!("c4mesh/{namespace:016x}/{}/budget", route.name),
                health_key: format!("c4mesh/{namespace:016x}/{}/health", route.name),
                timeout_header: route.timeout_ms.to_string(),
                ledger: route.budget.as_ref().map(Ledger::new),
                lease_after_ms: 0,
                view: HealthView::default(),
                gauge: None,
            })
            .collect();
        let tally = Tally::new(config.routes.len());
        Worker {
            config,
            routes,
            tally,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn route(&self, id: RouteId) -> &Route {
        &self.config.routes[id]
    }

    /// The headers to set on a forwarded request. `room_for_route` says whether the
    /// request can take `x-c4-route` without nearing Envoy's header limit
    /// ([`crate::control::route_header_fits`]).
    pub fn route_headers(&self, ticket: &Ticket, room_for_route: bool) -> RouteHeaders<'_> {
        let route = &self.config.routes[ticket.route];
        let applies = self.config.proxy_applies;
        RouteHeaders {
            route: (self.config.route_header && room_for_route).then_some(route.name.as_str()),
            timeout_ms: (!applies.timeout)
                .then_some(self.routes[ticket.route].timeout_header.as_str()),
            max_retries: ticket
                .granted
                .filter(|&k| !(applies.retries && k == route.retry.attempts))
                .map(|k| RETRY_COUNTS[(k as usize).min(RETRY_COUNTS.len() - 1)]),
        }
    }

    /// Creates the shared values that do not exist yet. Envoy configures the plugin
    /// on the main thread before any worker serves, so creation does not race.
    pub fn init_shared(&mut self, shared: &mut impl Shared) {
        for (route, state) in self.config.routes.iter().zip(&mut self.routes) {
            if let Some(policy) = &route.budget {
                if shared.get(&state.budget_key).is_none() {
                    shared.set(&state.budget_key, &ReservePool::new(policy).encode(), 0);
                }
            }
            if route.outlier.enabled() {
                match shared.get(&state.health_key) {
                    Some((bytes, _)) => {
                        if let Some(health) = RouteHealth::decode(&bytes) {
                            state.view = health.view();
                        }
                    }
                    None => {
                        shared.set(&state.health_key, &RouteHealth::default().encode(), 0);
                    }
                }
            }
        }
    }

    /// Counts a configuration that was rejected (the glue's `on_configure`).
    pub fn count_config_error(tally: &mut Tally) {
        tally.global(GlobalCounter::ConfigErrors);
    }

    /// Decides a request at its headers (R1-R7 or S1-S3, O2-O3, B2).
    pub fn on_request(
        &mut self,
        request: &Request<'_>,
        now_ms: u64,
        shared: &mut impl Shared,
    ) -> Verdict {
        let routed = match self.config.mode {
            Mode::Gateway => self.route_at_gateway(request),
            Mode::Sidecar => self.route_to_destination(request),
        };
        let id = match routed {
            Ok(id) => id,
            Err(verdict) => return verdict,
        };
        self.tally.route(id, RouteCounter::Requests, 1);
        let route = &self.config.routes[id];
        if let Some(methods) = &route.methods {
            if !methods.allows(request.method) {
                self.tally.route(id, RouteCounter::LocalReplies, 1);
                return reply(Reason::MethodNotAllowed, Some(id));
            }
        }
        let probe = match self.admit(id, now_ms, shared) {
            Admission::Admit => false,
            Admission::Probe => true,
            Admission::FailFast { retry_after_s } => {
                self.tally.route(id, RouteCounter::LocalReplies, 1);
                self.tally.route(id, RouteCounter::FailFast, 1);
                return reply(Reason::CircuitOpen { retry_after_s }, Some(id));
            }
        };
        let granted = self.grant(id, now_ms, shared);
        Verdict::Forward(Ticket {
            route: id,
            granted,
            probe,
        })
    }

    /// R1, R2, R3 and R7: the route of a request at the gateway, or the verdict on a
    /// request that has none.
    fn route_at_gateway(&mut self, request: &Request<'_>) -> Result<RouteId, Verdict> {
        if !self.config.hosts.matches(request.authority) {
            self.tally.global(GlobalCounter::UnknownHost);
            return Err(reply(Reason::UnknownHost, None));
        }
        let table = &self.config.table;
        let Some(id) = routed(request.path, |p| table.lookup(p), &mut self.tally)? else {
            self.tally.global(GlobalCounter::NoRoute);
            return Err(match self.config.unmatched {
                Unmatched::Reject => reply(Reason::NoRoute, None),
                Unmatched::Pass => Verdict::Pass,
            });
        };
        Ok(id)
    }

    /// S1, S2 and R2: the route of a call from a sidecar. A call to anything but a
    /// destination of the mesh passes, uncounted: it is none of the filter's business,
    /// and its path is the destination's to judge.
    fn route_to_destination(&mut self, request: &Request<'_>) -> Result<RouteId, Verdict> {
        let Some(destination) = self.config.destinations.lookup(request.authority) else {
            return Err(Verdict::Pass);
        };
        routed(request.path, |p| destination.route(p), &mut self.tally)
    }

    fn admit(&mut self, id: RouteId, now_ms: u64, shared: &mut impl Shared) -> Admission {
        let route = &self.config.routes[id];
        if !route.outlier.enabled() {
            return Admission::Admit;
        }
        if let Some(admission) = self.routes[id].view.admit(now_ms) {
            return admission;
        }
        let state = &mut self.routes[id];
        let Some(health) = shared
            .get(&state.health_key)
            .and_then(|(bytes, _)| RouteHealth::decode(&bytes))
        else {
            return Admission::Admit;
        };
        state.view = health.view();
        if !health.admission_writes(now_ms) {
            let mut health = health;
            return health.admit(now_ms, 0);
        }
        let probe_timeout_ms = route.timeout_ms.saturating_add(1_000);
        self.update_health(id, shared, |health| health.admit(now_ms, probe_timeout_ms))
            // A lasting conflict: fail fast rather than risk a second probe.
            .unwrap_or(Admission::FailFast { retry_after_s: 1 })
    }

    /// Reserves retries for a forwarded request, leasing reserve capacity if short.
    fn grant(&mut self, id: RouteId, now_ms: u64, shared: &mut impl Shared) -> Option<u32> {
        let route = &self.config.routes[id];
        let policy = route.budget?;
        let attempts = route.retry.attempts;
        let state = &mut self.routes[id];
        let ledger = state.ledger.as_mut()?;
        ledger.deposit(now_ms);
        let short = ledger.shortfall(attempts);
        if short > 0 && now_ms >= state.lease_after_ms {
            let chunk = short.max(i64::try_from(policy.reserve_ppm() / 8).unwrap_or(i64::MAX));
            let leased = lease(shared, &state.budget_key, now_ms, chunk);
            ledger.add_capacity(leased);
            if leased < short {
                state.lease_after_ms = now_ms.saturating_add(policy.window_ms / 10);
            }
        }
        let granted = ledger.grant(now_ms, attempts);
        self.tally
            .route(id, RouteCounter::RetriesGranted, u64::from(granted));
        if granted < attempts {
            self.tally.route(id, RouteCounter::BudgetExhausted, 1);
        }
        Some(granted)
    }

    /// Whether this outcome changes the route's shared health, so the response phase
    /// must read `upstream.address` and the clock. A success on a route with no
    /// running count needs neither.
    pub fn needs_health_update(&self, ticket: &Ticket, status: u32) -> bool {
        self.config.routes[ticket.route].outlier.enabled()
            && (status >= 500 || ticket.probe || self.routes[ticket.route].view.streak)
    }

    /// Whether the response phase must read the attempt count.
    pub fn needs_attempt_count(&self, ticket: &Ticket) -> bool {
        ticket.granted.is_some_and(|k| k > 0) || self.config.debug_headers
    }

    /// Records the final response of a forwarded request (B3, O1-O3). `attempts` is
    /// the request's final attempt count, `host` is `upstream.address`. `now_ms` may
    /// be the request's start when [`Worker::needs_health_update`] is false: the
    /// budget settles into its newest bucket either way.
    pub fn on_response(
        &mut self,
        ticket: &Ticket,
        status: u32,
        attempts: Option<u64>,
        host: Option<&[u8]>,
        now_ms: u64,
        shared: &mut impl Shared,
    ) -> Signals {
        self.settle(ticket, attempts, now_ms);
        let id = ticket.route;
        let failure = status >= 500;
        if !self.needs_health_update(ticket, status) {
            return Signals::default();
        }
        let policy = self.config.routes[id].outlier;
        let outcome = Outcome {
            failure,
            host,
            probe: ticket.probe,
        };
        let signals = self
            .update_health(id, shared, |health| health.record(now_ms, &policy, outcome))
            .unwrap_or_default();
        if signals.ejection.is_some() {
            self.tally.route(id, RouteCounter::HostEjections, 1);
        }
        if signals.opened_for_ms.is_some() {
            self.tally.route(id, RouteCounter::CircuitOpened, 1);
        }
        signals
    }

    /// A forwarded stream ended without a response (client reset): settle its budget
    /// and free the probe slot it may hold.
    pub fn on_end_without_response(
        &mut self,
        ticket: &Ticket,
        attempts: Option<u64>,
        now_ms: u64,
        shared: &mut impl Shared,
    ) {
        self.settle(ticket, attempts, now_ms);
        if ticket.probe {
            self.update_health(ticket.route, shared, |health| health.release_probe(now_ms));
        }
    }

    fn settle(&mut self, ticket: &Ticket, attempts: Option<u64>, now_ms: u64) {
        let Some(granted) = ticket.granted else {
            return;
        };
        let used = match attempts {
            Some(attempts) => u32::try_from(attempts.saturating_sub(1))
                .unwrap_or(u32::MAX)
                .min(granted),
            // Neither the property nor the header: keep the reservation.
            None => granted,
        };
        if let Some(ledger) = self.routes[ticket.route].ledger.as_mut() {
            ledger.settle(now_ms, granted, used);
        }
        self.tally
            .route(ticket.route, RouteCounter::RetriesUsed, u64::from(used));
    }

    /// Re-reads a route's shared health after another worker's notification.
    pub fn refresh(&mut self, id: RouteId, shared: &mut impl Shared) {
        let Some(state) = self.routes.get_mut(id) else {
            return;
        };
        if let Some(health) = shared
            .get(&state.health_key)
            .and_then(|(bytes, _)| RouteHealth::decode(&bytes))
        {
            state.view = health.view();
        }
    }

    /// Housekeeping on tick: idle workers give leased reserve capacity back.
    pub fn on_tick(&mut self, now_ms: u64, shared: &mut impl Shared) {
        for (route, state) in self.config.routes.iter().zip(&mut self.routes) {
            let (Some(policy), Some(ledger)) = (route.budget, state.ledger.as_mut()) else {
                continue;
            };
            let idle = ledger.release_idle(now_ms, policy.window_ms);
            if idle > 0 {
                update(
                    shared,
                    &state.budget_key,
                    ReservePool::decode,
                    ReservePool::encode,
                    |pool| pool.give_back(now_ms, idle, policy.window_ms),
                );
            }
        }
    }

    /// The `x-c4-circuit` debug value of a route as this worker sees it.
    pub fn circuit_label(&self, id: RouteId, now_ms: u64) -> &'static str {
        self.routes[id].view.circuit.label(now_ms)
    }

    /// Hands pending metric changes to `apply`: counters, and the `circuit_open`
    /// gauge of routes whose circuit changed since the last flush.
    pub fn drain_metrics(&mut self, mut apply: impl FnMut(MetricUpdate)) {
        self.tally.drain(&mut apply);
        for (id, (route, state)) in self.config.routes.iter().zip(&mut self.routes).enumerate() {
            if !route.outlier.enabled() {
                continue;
            }
            let open = state.view.circuit.is_open();
            if state.gauge != Some(open) {
                state.gauge = Some(open);
                apply(MetricUpdate::CircuitOpen(id, open));
            }
        }
    }

    /// Applies `change` to a route's shared health with compare-and-swap, refreshes
    /// the cached view, and notifies the other workers when what they cache changed.
    /// `None` after [`CAS_ATTEMPTS`] conflicts: nothing was recorded.
    fn update_health<R>(
        &mut self,
        id: RouteId,
        shared: &mut impl Shared,
        change: impl FnMut(&mut RouteHealth) -> R,
    ) -> Option<R> {
        let state = &mut self.routes[id];
        let (health, result) = update(
            shared,
            &state.health_key,
            RouteHealth::decode,
            RouteHealth::encode,
            change,
        )?;
        let before = state.view;
        state.view = health.view();
        let circuit_moved = std::mem::discriminant(&before.circuit)
            != std::mem::discriminant(&state.view.circuit)
            || (state.view.circuit != before.circuit && state.view.circuit.is_open());
        if circuit_moved || (state.view.streak && !before.streak) {
            shared.notify(id);
        }
        Some(result)
    }
}

fn reply(reason: Reason, route: Option<RouteId>) -> Verdict {
    Verdict::Reply(LocalReply { reason, route })
}

/// R2 and R3: what `lookup` finds for a safe request target, or the 400 reply to an
/// unsafe one.
fn routed<T: PartialEq>(
    target: &[u8],
    lookup: impl Fn(&[u8]) -> T,
    tally: &mut Tally,
) -> Result<T, Verdict> {
    path::route(target, lookup).map_err(|why| {
        tally.global(GlobalCounter::BadPath);
        reply(Reason::BadPath(why), None)
    })
}

/// Leases up to `want` from a route's reserve pool; 0 on lasting conflict.
fn lease(shared: &mut impl Shared, key: &str, now_ms: u64, want: i64) -> i64 {
    update(
        shared,
        key,
        ReservePool::decode,
        ReservePool::encode,
        |pool| pool.take(now_ms, want),
    )
    .map_or(0, |(_, leased)| leased)
}

/// A compare-and-swap loop over one shared value. An absent or undecodable value is
/// left alone (nothing is granted from it); returns the value written and `change`'s
/// result, or `None` after [`CAS_ATTEMPTS`] conflicts.
fn update<T, R>(
    shared: &mut impl Shared,
    key: &str,
    decode: fn(&[u8]) -> Option<T>,
    encode: fn(&T) -> Vec<u8>,
    mut change: impl FnMut(&mut T) -> R,
) -> Option<(T, R)> {
    for _ in 0..CAS_ATTEMPTS {
        let (bytes, cas) = shared.get(key)?;
        let mut value = decode(&bytes)?;
        let result = change(&mut value);
        if shared.set(key, &encode(&value), cas) {
            return Some((value, result));
        }
    }
    None
}

#[cfg(test)]
mod tests;
