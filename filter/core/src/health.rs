//! Outlier signalling and the route circuit (O1-O3), as one shared value per route.
//!
//! The filter sees the final attempt of every request (Envoy retries below it). It
//! keeps, per route, the consecutive 5xx count behind the circuit and a small table of
//! hosts with their own counts. Both live in one value in shared data so that all
//! worker VMs of a proxy count together and agree on the circuit; workers change it
//! with compare-and-swap and cache a [`HealthView`] of it, so a request on a healthy
//! route reads no shared data at all.
//!
//! ## Circuit mechanics
//!
//! - Closed: `consecutive_5xx` consecutive 5xx final responses open it for
//!   `base_ejection x n` (n = consecutive openings, capped at `max_ejection`).
//! - Open: requests fail fast until the period ends.
//! - Half-open: one request at a time is admitted as the probe; a non-5xx probe
//!   closes the circuit and resets n, a 5xx probe reopens it with n + 1, a probe whose
//!   stream ends without a response frees the slot. A probe slot whose stream has not
//!   ended within the route timeout (plus a second) is taken as lost and freed too.
//! - Responses to requests admitted before the circuit opened do not move it.
//!
//! ## Host signal
//!
//! Per host (`ip:port`), `consecutive_5xx` consecutive 5xx final responses signal an
//! ejection for `base_ejection x n`; n counts ejections that follow each other within
//! `max_ejection` of the previous one ending, and starts again at 1 after that. While
//! a host's ejection lasts, its 5xx are not counted again. The table keeps the 16
//! hosts seen most recently.

use crate::codec::{Reader, Writer};
use crate::config::OutlierPolicy;

/// Most hosts tracked per route; the least recently seen is dropped first.
pub const MAX_HOSTS: usize = 16;

/// Longest host address kept (an `ip:port`, IPv6 included, is far shorter).
const MAX_ADDRESS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    Open { until_ms: u64 },
    HalfOpen { probe_deadline_ms: u64 },
}

impl Circuit {
    /// The `x-c4-circuit` debug header value.
    pub fn label(&self, now_ms: u64) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::Open { until_ms } if now_ms < *until_ms => "open",
            Circuit::Open { .. } | Circuit::HalfOpen { .. } => "half-open",
        }
    }

    pub fn is_open(&self) -> bool {
        !matches!(self, Circuit::Closed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostHealth {
    pub address: Vec<u8>,
    pub consecutive: u32,
    pub ejections: u32,
    pub ejected_until_ms: u64,
    pub last_seen_ms: u64,
}

/// The shared health of one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteHealth {
    pub consecutive: u32,
    pub openings: u32,
    pub circuit: Circuit,
    pub hosts: Vec<HostHealth>,
}

impl Default for RouteHealth {
    fn default() -> Self {
        RouteHealth {
            consecutive: 0,
            openings: 0,
            circuit: Circuit::Closed,
            hosts: Vec::new(),
        }
    }
}

/// Whether a request may go upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admit,
    /// Admitted as the half-open circuit's one probe.
    Probe,
    FailFast {
        retry_after_s: u64,
    },
}

/// The final outcome of one upstream request.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    pub failure: bool,
    pub host: Option<&'a [u8]>,
    pub probe: bool,
}

/// A host ejection to signal (O1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ejection {
    pub host: Vec<u8>,
    pub consecutive: u32,
    pub ejected_for_ms: u64,
}

/// What a recorded outcome changed, for metrics and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    pub ejection: Option<Ejection>,
    /// The circuit opened (or reopened) for this long.
    pub opened_for_ms: Option<u64>,
    pub closed: bool,
}

/// What a worker caches of a route's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthView {
    pub circuit: Circuit,
    /// Some count is running: a success must be recorded to reset it.
    pub streak: bool,
}

impl Default for HealthView {
    fn default() -> Self {
        HealthView {
            circuit: Circuit::Closed,
            streak: false,
        }
    }
}

impl HealthView {
    /// Admission from the cache alone; `None` when the shared value must decide.
    ///
    /// Only two states are decided here: closed with no count running (the healthy
    /// path, no shared read), and open before its period ends. While a count runs the
    /// circuit may open on another worker at any moment, and a half-open circuit may
    /// close; a worker learns of both by notification, which can arrive after its next
    /// request, so in those states every request reads the shared value.
    pub fn admit(&self, now_ms: u64) -> Option<Admission> {
        match self.circuit {
            Circuit::Closed if !self.streak => Some(Admission::Admit),
            Circuit::Open { until_ms } if now_ms < until_ms => Some(Admission::FailFast {
                retry_after_s: retry_after(until_ms - now_ms),
            }),
            _ => None,
        }
    }
}

/// Seconds until half-open, rounded up, at least 1.
fn retry_after(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

impl RouteHealth {
    pub fn view(&self) -> HealthView {
        HealthView {
            circuit: self.circuit,
            streak: self.consecutive > 0 || self.hosts.iter().any(|h| h.consecutive > 0),
        }
    }

    /// Whether [`RouteHealth::admit`] would change the value (take the probe slot).
    pub fn admission_writes(&self, now_ms: u64) -> bool {
        match self.circuit {
            Circuit::Closed => false,
            Circuit::Open { until_ms } => now_ms >= until_ms,
            Circuit::HalfOpen { probe_deadline_ms } => now_ms >= probe_deadline_ms,
        }
    }

    /// Decides admission against the shared value, taking the probe slot if free.
    pub fn admit(&mut self, now_ms: u64, probe_timeout_ms: u64) -> Admission {
        let probe_deadline_ms = now_ms.saturating_add(probe_timeout_ms);
        match self.circuit {
            Circuit::Closed => Admission::Admit,
            Circuit::Open { until_ms } if now_ms < until_ms => Admission::FailFast {
                retry_after_s: retry_after(until_ms - now_ms),
            },
            Circuit::HalfOpen {
                probe_deadline_ms: busy,
            } if now_ms < busy => Admission::FailFast { retry_after_s: 1 },
            Circuit::Open { .. } | Circuit::HalfOpen { .. } => {
                self.circuit = Circuit::HalfOpen { probe_deadline_ms };
                Admission::Probe
            }
        }
    }

    /// Frees the probe slot of a probe whose stream ended without a response.
    pub fn release_probe(&mut self, now_ms: u64) {
        if let Circuit::HalfOpen { .. } = self.circuit {
            self.circuit = Circuit::Open { until_ms: now_ms };
        }
    }

    /// Records the final outcome of an upstream request.
    pub fn record(&mut self, now_ms: u64, policy: &OutlierPolicy, outcome: Outcome<'_>) -> Signals {
        let mut signals = Signals::default();
        if !policy.enabled() {
            return signals;
        }
        if let Some(address) = outcome.host {
            signals.ejection = self.record_host(now_ms, policy, address, outcome.failure);
        }
        match (self.circuit, outcome.probe) {
            (Circuit::Closed, false) => {
                if outcome.failure {
                    self.consecutive += 1;
                    if self.consecutive >= policy.consecutive_5xx {
                        signals.opened_for_ms = Some(self.open(now_ms, policy));
                    }
                } else {
                    self.consecutive = 0;
                }
            }
            (Circuit::HalfOpen { .. }, true) => {
                if outcome.failure {
                    signals.opened_for_ms = Some(self.open(now_ms, policy));
                } else {
                    self.circuit = Circuit::Closed;
                    self.openings = 0;
                    self.consecutive = 0;
                    signals.closed = true;
                }
            }
            // Late responses of requests admitted before the circuit moved.
            _ => {}
        }
        signals
    }

    fn open(&mut self, now_ms: u64, policy: &OutlierPolicy) -> u64 {
        self.openings = self.openings.saturating_add(1);
        self.consecutive = 0;
        let period = policy.ejection_ms(self.openings);
        self.circuit = Circuit::Open {
            until_ms: now_ms.saturating_add(period),
        };
        period
    }

    fn record_host(
        &mut self,
        now_ms: u64,
        policy: &OutlierPolicy,
        address: &[u8],
        failure: bool,
    ) -> Option<Ejection> {
        let address = &address[..address.len().min(MAX_ADDRESS)];
        let index = match self.hosts.iter().position(|h| h.address == address) {
            Some(index) => index,
            None => {
                if self.hosts.len() >= MAX_HOSTS {
                    let oldest =
                        (0..self.hosts.len()).min_by_key(|&i| self.hosts[i].last_seen_ms)?;
                    self.hosts.swap_remove(oldest);
                }
                self.hosts.push(HostHealth {
                    address: address.to_vec(),
                    consecutive: 0,
                    ejections: 0,
                    ejected_until_ms: 0,
                    last_seen_ms: now_ms,
                });
                self.hosts.len() - 1
            }
        };
        let host = &mut self.hosts[index];
        host.last_seen_ms = host.last_seen_ms.max(now_ms);
        if !failure {
            host.consecutive = 0;
            return None;
        }
        if now_ms < host.ejected_until_ms {
            return None;
        }
        host.consecutive += 1;
        if host.consecutive < policy.consecutive_5xx {
            return None;
        }
        let chained = host.ejections > 0
            && now_ms.saturating_sub(host.ejected_until_ms) <= policy.max_ejection_ms;
        host.ejections = if chained {
            host.ejections.saturating_add(1)
        } else {
            1
        };
        let ejected_for_ms = policy.ejection_ms(host.ejections);
        host.ejected_until_ms = now_ms.saturating_add(ejected_for_ms);
        let consecutive = std::mem::take(&mut host.consecutive);
        Some(Ejection {
            host: host.address.clone(),
            consecutive,
            ejected_for_ms,
        })
    }

    /// The longest encoding: counts, circuit, host count, and a full host table of
    /// the longest addresses.
    pub const MAX_ENCODED: usize =
        4 + 4 + 1 + 8 + 1 + MAX_HOSTS * (1 + MAX_ADDRESS + 4 + 4 + 8 + 8);

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(self.consecutive);
        w.u32(self.openings);
        match self.circuit {
            Circuit::Closed => {
                w.u8(0);
                w.u64(0);
            }
            Circuit::Open { until_ms } => {
                w.u8(1);
                w.u64(until_ms);
            }
            Circuit::HalfOpen { probe_deadline_ms } => {
                w.u8(2);
                w.u64(probe_deadline_ms);
            }
        }
        w.u8(self.hosts.len() as u8);
        for h in &self.hosts {
            w.short_bytes(&h.address);
            w.u32(h.consecutive);
            w.u32(h.ejections);
            w.u64(h.ejected_until_ms);
            w.u64(h.last_seen_ms);
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Option<RouteHealth> {
        let mut r = Reader::new(bytes);
        let consecutive = r.u32()?;
        let openings = r.u32()?;
        let tag = r.u8()?;
        let at = r.u64()?;
        let circuit = match tag {
            0 => Circuit::Closed,
            1 => Circuit::Open { until_ms: at },
            2 => Circuit::HalfOpen {
                probe_deadline_ms: at,
            },
            _ => return None,
        };
        let count = r.u8()? as usize;
        if count > MAX_HOSTS {
            return None;
        }
        let mut hosts = Vec::with_capacity(count);
        for _ in 0..count {
            hosts.push(HostHealth {
                address: r.short_bytes()?.to_vec(),
                consecutive: r.u32()?,
                ejections: r.u32()?,
                ejected_until_ms: r.u64()?,
                last_seen_ms: r.u64()?,
            });
        }
        r.end()?;
        Some(RouteHealth {
            consecutive,
            openings,
            circuit,
            hosts,
        })
    }
}

#[cfg(test)]
mod tests;
