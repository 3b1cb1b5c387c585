//! The proxy clock: virtual time that a test moves, or wall time.
//!
//! Everything time-dependent in the host reads this clock: `proxy_get_current_time_nanoseconds`,
//! WASI `clock_time_get`, ticks and HTTP call timeouts. With the virtual clock a run is
//! deterministic: time stands still inside a callback and moves only when the test says
//! so, which is how rules like "a circuit opens for 30 s" are tested without sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where virtual time starts unless told otherwise: 2025-01-01T00:00:00Z.
pub const DEFAULT_EPOCH_NANOS: u64 = 1_735_689_600_000_000_000;

/// A clock shared by every worker of a proxy.
#[derive(Debug, Clone)]
pub enum Clock {
    /// Time moves only through [`Clock::advance`] and [`Clock::set`].
    Virtual(Arc<VirtualTime>),
    /// The machine's clock.
    Wall,
}

#[derive(Debug)]
pub struct VirtualTime {
    now: AtomicU64,
    start: u64,
}

impl Clock {
    /// Virtual time starting at [`DEFAULT_EPOCH_NANOS`].
    pub fn virtual_time() -> Clock {
        Clock::virtual_at(DEFAULT_EPOCH_NANOS)
    }

    /// Virtual time starting at `nanos` since the Unix epoch.
    pub fn virtual_at(nanos: u64) -> Clock {
        Clock::Virtual(Arc::new(VirtualTime {
            now: AtomicU64::new(nanos),
            start: nanos,
        }))
    }

    pub fn wall() -> Clock {
        Clock::Wall
    }

    pub fn is_virtual(&self) -> bool {
        matches!(self, Clock::Virtual(_))
    }

    /// Nanoseconds since the Unix epoch.
    pub fn now_nanos(&self) -> u64 {
        match self {
            Clock::Virtual(t) => t.now.load(Ordering::SeqCst),
            Clock::Wall => wall_nanos(),
        }
    }

    /// Monotonic nanoseconds: since the start of virtual time, or the wall clock.
    pub fn monotonic_nanos(&self) -> u64 {
        match self {
            Clock::Virtual(t) => t.now.load(Ordering::SeqCst).saturating_sub(t.start),
            Clock::Wall => wall_nanos(),
        }
    }

    /// Moves virtual time forward; no effect on wall time.
    pub fn advance(&self, by: Duration) {
        if let Clock::Virtual(t) = self {
            let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
            let now = t.now.load(Ordering::SeqCst);
            t.now.store(now.saturating_add(by), Ordering::SeqCst);
        }
    }

    /// Sets virtual time (never backwards); no effect on wall time.
    pub fn set(&self, nanos: u64) {
        if let Clock::Virtual(t) = self {
            t.now.fetch_max(nanos, Ordering::SeqCst);
        }
    }

    /// Sets virtual time to `nanos`, backwards too, as a wall clock stepped by NTP or
    /// by hand; no effect on wall time. Ticks due by then fire on [`crate::Proxy::run_due`].
    pub fn jump_to(&self, nanos: u64) {
        if let Clock::Virtual(t) = self {
            t.now.store(nanos, Ordering::SeqCst);
        }
    }
}

fn wall_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_time_moves_only_when_told() {
        let clock = Clock::virtual_at(1_000);
        assert_eq!(clock.now_nanos(), 1_000);
        assert_eq!(clock.monotonic_nanos(), 0);
        clock.advance(Duration::from_nanos(500));
        assert_eq!(clock.now_nanos(), 1_500);
        assert_eq!(clock.monotonic_nanos(), 500);
        clock.set(1_200);
        assert_eq!(clock.now_nanos(), 1_500, "never backwards");
    }

    #[test]
    fn a_jump_moves_virtual_time_either_way() {
        let clock = Clock::virtual_at(1_000);
        clock.jump_to(400);
        assert_eq!((clock.now_nanos(), clock.monotonic_nanos()), (400, 0));
        clock.jump_to(u64::MAX);
        assert_eq!(clock.now_nanos(), u64::MAX);
    }

    #[test]
    fn wall_time_is_after_2020() {
        assert!(Clock::wall().now_nanos() > 1_577_836_800_000_000_000);
    }
}
