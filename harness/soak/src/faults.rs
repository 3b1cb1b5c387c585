//! The faults a soak rotates through, and how an upstream answers under each.
//!
//! The soak runs in phases of equal length. Phase `p` puts fault `p mod 5` on route
//! `p mod 6`, so over thirty phases every fault meets every route, while the other
//! routes stay healthy: the filter keeps opening and closing circuits, tracking and
//! ejecting hosts, and granting and refunding retries on every route. The schedule is
//! a pure function of the elapsed time; the upstreams read the current phase from
//! [`FaultState`] at each attempt.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// One fault, as the route's upstreams show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every attempt answered 503.
    Unavailable,
    /// The connection closed before any response byte.
    Reset,
    /// No answer until the proxy gives up (the route timeout).
    Hang,
    /// A share of the attempts, in per mille, answered 503.
    ErrorRate(u16),
    /// Every other upstream (by the order they were started) answers 503, the rest 200:
    /// one bad host of two.
    BadHost,
}

/// The faults in rotation order.
pub const FAULTS: [Fault; 5] = [
    Fault::Unavailable,
    Fault::Reset,
    Fault::Hang,
    Fault::ErrorRate(300),
    Fault::BadHost,
];

impl Fault {
    /// How the CSV, the plot and the summary name it.
    pub fn label(self) -> &'static str {
        match self {
            Fault::Unavailable => "503",
            Fault::Reset => "reset",
            Fault::Hang => "hang",
            Fault::ErrorRate(_) => "error-rate",
            Fault::BadHost => "bad-host",
        }
    }
}

/// What an upstream does with one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Status(u16),
    Reset,
    Hang,
}

/// Phase `index`: which fault, on which route (an index into the routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phase {
    pub index: u64,
    pub fault: Fault,
    pub route: usize,
}

/// The phase at `elapsed` into the run, phases lasting `length`, over `routes` routes.
pub fn phase_at(elapsed: Duration, length: Duration, routes: usize) -> Phase {
    let index = (elapsed.as_millis() / length.as_millis().max(1)) as u64;
    Phase {
        index,
        fault: FAULTS[(index % FAULTS.len() as u64) as usize],
        route: (index % routes.max(1) as u64) as usize,
    }
}

/// How long each phase lasts: `wanted`, shortened so that every fault has run once
/// within the first third of the run (the memory check compares the last third with
/// the first), but never under `minimum`.
pub fn phase_length(run: Duration, wanted: Duration, minimum: Duration) -> Duration {
    let fits = run / (3 * FAULTS.len() as u32);
    wanted.min(fits).max(minimum)
}

/// The fault in force, shared by every upstream of the soak.
#[derive(Debug, Default)]
pub struct FaultState {
    /// The phase index plus one; 0 before the first phase (all healthy).
    phase: AtomicU64,
    route: AtomicUsize,
    /// Attempts answered, for the error rate's deterministic choice and the summary.
    attempts: AtomicU64,
}

impl FaultState {
    pub fn enter(&self, phase: Phase) {
        self.route.store(phase.route, Ordering::SeqCst);
        self.phase.store(phase.index + 1, Ordering::SeqCst);
    }

    /// Attempts the upstreams received.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::SeqCst)
    }

    /// The answer of upstream number `serial` to an attempt on route `route` (`None`:
    /// a path of no route).
    pub fn answer(&self, serial: u64, route: Option<usize>) -> Answer {
        let n = self.attempts.fetch_add(1, Ordering::SeqCst);
        let phase = self.phase.load(Ordering::SeqCst);
        if phase == 0 || route != Some(self.route.load(Ordering::SeqCst)) {
            return Answer::Status(200);
        }
        decide(
            FAULTS[((phase - 1) % FAULTS.len() as u64) as usize],
            serial,
            n,
        )
    }
}

/// The answer under `fault` of upstream `serial` to the soak's `n`th attempt.
pub fn decide(fault: Fault, serial: u64, n: u64) -> Answer {
    match fault {
        Fault::Unavailable => Answer::Status(503),
        Fault::Reset => Answer::Reset,
        Fault::Hang => Answer::Hang,
        Fault::ErrorRate(per_mille) => {
            if scramble(n) % 1000 < u64::from(per_mille) {
                Answer::Status(503)
            } else {
                Answer::Status(200)
            }
        }
        Fault::BadHost if serial % 2 == 1 => Answer::Status(503),
        Fault::BadHost => Answer::Status(200),
    }
}

/// SplitMix64's finaliser: attempt numbers spread evenly over the error rate's range.
fn scramble(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
