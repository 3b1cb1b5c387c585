//! The emulated router (H6): what Envoy's router does after the filter chain, in
//! harness time, so the `wasm` target sees the same retries, hosts and timeouts as a
//! real Envoy.
//!
//! ## What is emulated, and how Envoy does it
//!
//! - Route match (`wasm_target::Mesh::route`, on the proxy's plan): the virtual host by
//!   authority, then the first route whose path and method matchers match the path
//!   before `?`; no route: 404 with an empty body.
//! - Retry policy: the route's `retry_on` and `num_retries`; a request header
//!   `x-envoy-max-retries` takes precedence over `num_retries`, `x-envoy-retry-on` is
//!   OR-merged with the route's kinds; the router consumes these and the timeout headers
//!   (they never reach the upstream).
//! - Retry kinds: `5xx` (5xx answers, resets, refused connections, per-try timeouts),
//!   `gateway-error` (502, 503, 504, resets, refused connections, per-try timeouts),
//!   `reset` (resets and refused connections), `connect-failure` (refused connections,
//!   a host that is `down`), `refused-stream` and `reset-before-request` (neither happens
//!   with these upstreams, which read the request before they reset), `retriable-4xx` (409),
//!   `retriable-status-codes` (the route's list, Istio's in-mesh 503); the gRPC kinds
//!   (`unavailable`, `cancelled`) never match an HTTP/1.1 answer.
//! - Back-off: Envoy's jittered exponential back-off, 25 ms base and 250 ms cap: before
//!   retry n a delay uniform in [0, (2^n - 1) x 25 ms), capped at 250 ms.
//! - Timeouts: the global timeout (route `timeout`, or `x-envoy-upstream-rq-timeout-ms`)
//!   covers all attempts and back-offs and ends the request with 504; a per-try timeout
//!   ends one attempt, which then counts as retriable under `5xx`/`gateway-error`.
//! - Hosts: round robin per worker and service; a retry avoids hosts already tried (the
//!   `previous_hosts` predicate Istio sets, up to 5 reselections); ejected hosts are
//!   skipped unless the healthy share falls below the cluster's panic threshold (Envoy's
//!   default 50%; Istio sets 0 with outlier detection, so a service whose hosts are all
//!   ejected answers 503 `no healthy upstream` without an attempt).
//! - Upstream request headers: `x-envoy-attempt-count` (the virtual host's
//!   `include_request_attempt_count`) and `x-envoy-expected-rq-timeout-ms`.
//! - Outlier detection (when the mesh has it): consecutive 5xx per host (resets and
//!   timeouts count), ejection for base x n while at most `max_ejection_percent` of the
//!   hosts are ejected, return to service on the first sweep (every `interval`) after
//!   the ejection time.
//! - Circuit breakers: `max_requests` per cluster and proxy (requests from their first
//!   attempt to their end); one more gets a local 503 `overflow` with
//!   `x-envoy-overloaded: true` at once, without an attempt or a retry. The header and
//!   the absence of a retry are not yet checked against Envoy 1.40: the scenario
//!   `istio/connection-pool-overflow.yaml` checks, on a real Envoy too, only that the
//!   overflow is a 503 that opens the filter's circuit.
//! - Final answers of the router itself: 503 `upstream connect error or
//!   disconnect/reset before headers` after a reset, 504 `upstream request timeout`.

use super::rng::Rng;
use super::scenario::OutlierDetection;
use std::time::Duration;

/// The route a request took, as the router applies it.
#[derive(Debug, Clone)]
pub struct RouteEntry {
    pub service: usize,
    pub retry_on: String,
    pub num_retries: u32,
    pub timeout: Duration,
    pub per_try_timeout: Option<Duration>,
    /// Statuses retried under `retriable-status-codes` (at most four are kept).
    pub retriable_status_codes: Vec<u16>,
}

/// Retry conditions, as Envoy's `retry_on` flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOn {
    pub five_xx: bool,
    pub gateway_error: bool,
    pub reset: bool,
    pub connect_failure: bool,
    pub retriable_4xx: bool,
    pub retriable_status_codes: bool,
}

impl RetryOn {
    /// Parses a comma-separated list; unknown kinds are ignored, as Envoy does.
    pub fn parse(text: &str) -> RetryOn {
        let mut on = RetryOn::default();
        for kind in text.split(',').map(str::trim) {
            match kind {
                "5xx" => on.five_xx = true,
                "gateway-error" => on.gateway_error = true,
                "reset" => on.reset = true,
                "connect-failure" => on.connect_failure = true,
                "retriable-4xx" => on.retriable_4xx = true,
                "retriable-status-codes" => on.retriable_status_codes = true,
                _ => {}
            }
        }
        on
    }

    pub fn merge(self, other: RetryOn) -> RetryOn {
        RetryOn {
            five_xx: self.five_xx || other.five_xx,
            gateway_error: self.gateway_error || other.gateway_error,
            reset: self.reset || other.reset,
            connect_failure: self.connect_failure || other.connect_failure,
            retriable_4xx: self.retriable_4xx || other.retriable_4xx,
            retriable_status_codes: self.retriable_status_codes || other.retriable_status_codes,
        }
    }

    pub fn any(self) -> bool {
        self != RetryOn::default()
    }

    /// Whether an attempt's outcome may be retried; `codes` are the retriable status
    /// codes (0 fills unused slots).
    pub fn retries(self, outcome: Outcome, codes: [u16; 4]) -> bool {
        match outcome {
            Outcome::Status(status) => {
                (self.five_xx && (500..600).contains(&status))
                    || (self.gateway_error && matches!(status, 502..=504))
                    || (self.retriable_4xx && status == 409)
                    || (self.retriable_status_codes && codes.contains(&status))
            }
            Outcome::Reset => self.five_xx || self.gateway_error || self.reset,
            Outcome::ConnectFailure => {
                self.five_xx || self.gateway_error || self.reset || self.connect_failure
            }
            Outcome::PerTryTimeout => self.five_xx || self.gateway_error,
        }
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    /// The connection closed before a response.
    Reset,
    /// The connection was refused (the host is gone).
    ConnectFailure,
    PerTryTimeout,
}

impl Outcome {
    /// Whether outlier detection counts it as a 5xx.
    pub fn is_failure(self) -> bool {
        match self {
            Outcome::Status(status) => status >= 500,
            Outcome::Reset | Outcome::ConnectFailure | Outcome::PerTryTimeout => true,
        }
    }
}

/// The request headers the router reads (after the filter chain) and consumes: the
/// control headers the filter strips from clients (R5).
pub use c4mesh_filter_core::control::ENVOY_CONTROL as CONSUMED_HEADERS;

/// The policy one request runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub retry_on: RetryOn,
    pub retries: u32,
    /// Zero: no global timeout.
    pub timeout: Duration,
    pub per_try_timeout: Option<Duration>,
    /// Retriable status codes (0 fills unused slots).
    pub status_codes: [u16; 4],
}

impl Policy {
    /// The route's policy with the request's control headers applied, as Envoy's
    /// router reads them.
    pub fn for_request(route: &RouteEntry, header: impl Fn(&str) -> Option<String>) -> Policy {
        let mut retry_on = RetryOn::parse(&route.retry_on);
        if let Some(extra) = header("x-envoy-retry-on") {
            retry_on = retry_on.merge(RetryOn::parse(&extra));
        }
        let retries = header("x-envoy-max-retries")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(route.num_retries);
        let timeout = header("x-envoy-upstream-rq-timeout-ms")
            .and_then(|v| v.trim().parse().ok())
            .map_or(route.timeout, Duration::from_millis);
        let per_try_timeout = header("x-envoy-upstream-rq-per-try-timeout-ms")
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_millis)
            .or(route.per_try_timeout);
        let mut status_codes = [0; 4];
        for (slot, code) in status_codes.iter_mut().zip(&route.retriable_status_codes) {
            *slot = *code;
        }
        Policy {
            retry_on,
            retries: if retry_on.any() { retries } else { 0 },
            timeout,
            per_try_timeout,
            status_codes,
        }
    }

    /// Whether retry number `retries_done + 1` may follow an attempt with `outcome`.
    pub fn retry_after(&self, outcome: Outcome, retries_done: u32) -> bool {
        retries_done < self.retries && self.retry_on.retries(outcome, self.status_codes)
    }
}

/// Envoy's back-off before retry `n` (1-based): uniform in [0, (2^n - 1) x 25 ms),
/// capped at 250 ms.
pub fn backoff(n: u32, rng: &mut Rng) -> Duration {
    const BASE_MS: u64 = 25;
    const MAX_MS: u64 = 250;
    let multiplier = (1u64 << n.min(20)) - 1;
    let ceiling = multiplier.saturating_mul(BASE_MS).max(1);
    Duration::from_millis(rng.below(ceiling).min(MAX_MS))
}

/// The router's own answers.
pub fn reset_reply() -> (u16, &'static str) {
    (
        503,
        "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
    )
}

pub fn connect_failure_reply() -> (u16, &'static str) {
    (
        503,
        "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: delayed connect error: Connection refused",
    )
}

pub fn timeout_reply() -> (u16, &'static str) {
    (504, "upstream request timeout")
}

/// The answer when the cluster's `max_requests` circuit breaker is full.
pub fn overflow_reply() -> (u16, &'static str) {
    (
        503,
        "upstream connect error or disconnect/reset before headers. reset reason: overflow",
    )
}

/// The answer when no host of the cluster may take the request.
pub fn no_healthy_upstream_reply() -> (u16, &'static str) {
    (503, "no healthy upstream")
}

/// Per-host outlier state.
#[derive(Debug, Clone, Default)]
struct HostHealth {
    consecutive: u32,
    ejections: u32,
    /// Ejected until the first sweep at or after this time.
    ejected_until: Option<Duration>,
}

/// Host selection for one service: round robin per worker, the previous-hosts
/// predicate, outlier ejections.
#[derive(Debug, Clone)]
pub struct Cluster {
    next: Vec<usize>,
    health: Vec<HostHealth>,
    outlier: Option<OutlierDetection>,
    /// Percent of healthy hosts below which every host takes traffic.
    panic_threshold: f64,
    /// The `max_requests` circuit breaker, and the requests in flight against it.
    max_requests: u32,
    active: u32,
}

impl Cluster {
    pub fn new(
        hosts: usize,
        workers: usize,
        outlier: Option<OutlierDetection>,
        panic_threshold: f64,
    ) -> Cluster {
        Cluster {
            next: vec![0; workers.max(1)],
            health: vec![HostHealth::default(); hosts],
            outlier,
            panic_threshold,
            max_requests: u32::MAX,
            active: 0,
        }
    }

    /// With a `max_requests` circuit breaker (the DestinationRule's `http2MaxRequests`).
    pub fn with_max_requests(mut self, max: u32) -> Cluster {
        self.max_requests = max;
        self
    }

    /// A request starts its first attempt: `false` when the circuit breaker is full
    /// (Envoy's local 503 `overflow`, never retried).
    pub fn admit(&mut self) -> bool {
        if self.active >= self.max_requests {
            return false;
        }
        self.active += 1;
        true
    }

    /// A request admitted by [`Cluster::admit`] ended.
    pub fn release(&mut self) {
        self.active = self.active.saturating_sub(1);
    }

    fn ejected(&self, host: usize, now: Duration) -> bool {
        let Some(until) = self.health.get(host).and_then(|h| h.ejected_until) else {
            return false;
        };
        let interval = self
            .outlier
            .as_ref()
            .map_or(Duration::from_secs(10), |o| o.interval);
        // Hosts return on the detector's sweep, every `interval` from the start.
        let step = interval.as_nanos().max(1);
        let sweeps = until.as_nanos().div_ceil(step);
        let back = Duration::from_nanos(u64::try_from(sweeps * step).unwrap_or(u64::MAX));
        now < back
    }

    /// Hosts that take traffic at `now`: the healthy ones, or all of them when the
    /// healthy share is below the panic threshold.
    fn eligible(&self, now: Duration) -> Vec<usize> {
        let hosts = self.health.len();
        let healthy: Vec<usize> = (0..hosts).filter(|h| !self.ejected(*h, now)).collect();
        let percent = if hosts == 0 {
            0.0
        } else {
            100.0 * healthy.len() as f64 / hosts as f64
        };
        if percent < self.panic_threshold {
            (0..hosts).collect()
        } else {
            healthy
        }
    }

    /// The host for the next attempt of a request on `worker` that has tried `tried`;
    /// `None` when no host may take it (Envoy's `no healthy upstream`).
    pub fn pick(&mut self, worker: usize, tried: &[usize], now: Duration) -> Option<usize> {
        let eligible = self.eligible(now);
        if eligible.is_empty() {
            return None;
        }
        let slot = worker % self.next.len();
        let mut choice = 0;
        // The first pick plus up to 5 reselections while the host was tried before.
        for _ in 0..6 {
            let index = self.next[slot] % eligible.len();
            self.next[slot] = self.next[slot].wrapping_add(1);
            choice = eligible[index];
            if !tried.contains(&choice) {
                break;
            }
        }
        Some(choice)
    }

    /// Counts an attempt's outcome for outlier detection.
    pub fn record(&mut self, host: usize, outcome: Outcome, now: Duration) {
        let Some(outlier) = self.outlier.clone() else {
            return;
        };
        let total = self.health.len();
        let ejected_now = (0..total).filter(|h| self.ejected(*h, now)).count();
        let already = self.ejected(host, now);
        let Some(health) = self.health.get_mut(host) else {
            return;
        };
        if !outcome.is_failure() {
            health.consecutive = 0;
            return;
        }
        health.consecutive += 1;
        if health.consecutive < outlier.consecutive_5xx {
            return;
        }
        health.consecutive = 0;
        let within = (ejected_now + 1) * 100 <= outlier.max_ejection_percent as usize * total;
        if !already && within {
            health.ejections += 1;
            health.ejected_until = Some(now + outlier.base_ejection * health.ejections);
        }
    }
}

#[cfg(test)]
mod tests;
