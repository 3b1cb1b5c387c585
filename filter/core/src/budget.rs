//! The retry budget (B1-B4): how many retries each request may have.
//!
//! ## Why budgets and not a retry count
//!
//! "3 retries" multiplies a failing service's load by four at every hop. A budget
//! lets retries through while they are rare and cuts them off when they would
//! multiply load: over any window of length `window`, the retries granted on a route
//! stay within `ratio x requests + min_retries_per_second x window` (B1).
//!
//! ## The ledger
//!
//! A reservation of k retries may be used at any time until the stream ends, so the
//! ledger holds it in full until it is settled; at settlement the unused part is
//! refunded and the used part is recorded at settlement time. For the bound to hold
//! over *every* window, not only windows aligned to some clock, a grant at time g
//! must fit in every window that ends at g:
//!
//! ```text
//! capacity - held + min over s in [g - window, g] of (ratio x D[s, g] - U[s, g]) >= k
//! ```
//!
//! where D counts routed requests and U settled retries. With P(t) the running sum of
//! `ratio x deposits - used`, the minimum is P(g) minus the maximum of P over the
//! window. The ledger keeps a ring of buckets (a tenth of the window each), each with
//! its sum and the peak of its running sum, so the minimum is one pass over eleven
//! buckets, and a whole bucket too many is counted at the old end: the check can only
//! be stricter than the bound. Every amount is an integer in millionths of a retry.
//!
//! ## Sharing between workers (B4)
//!
//! Each worker VM keeps its own ledger, funded by its own routed requests, so the
//! per-request path touches no shared data. The fixed part of the bound,
//! `min_retries_per_second x window` (the reserve), is one pool per route in shared
//! data: a worker leases capacity from it with compare-and-swap when its own deposits
//! do not cover a grant, keeps it while busy and gives it back when idle. Capacity
//! given back cools down for one window before anyone may lease it again, so within
//! any window a unit of capacity backs the grants of one worker only, and the sum of
//! all workers' grants stays within B1.

use crate::codec::{Reader, Writer};
use crate::config::BudgetPolicy;

/// One retry, in the ledger's unit (millionths of a retry).
pub const RETRY: i64 = 1_000_000;

/// Buckets per window; the ring holds one more for the bucket being filled.
const BUCKETS: u64 = 10;
const RING: usize = BUCKETS as usize + 1;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bucket {
    /// Sum of the bucket's events.
    sum: i64,
    /// Highest running sum inside the bucket, counting the empty prefix (so >= 0).
    peak: i64,
}

/// One worker's view of a route's budget.
#[derive(Debug, Clone)]
pub struct Ledger {
    ratio: i64,
    bucket_ms: u64,
    ring: [Bucket; RING],
    /// Absolute number of the bucket being filled; `None` before the first event.
    current: Option<u64>,
    /// Retries reserved and not yet settled.
    held: i64,
    /// Reserve capacity leased from the shared pool.
    capacity: i64,
    /// When this ledger last reserved, for giving capacity back when idle.
    last_reservation_ms: u64,
}

impl Ledger {
    pub fn new(policy: &BudgetPolicy) -> Ledger {
        Ledger {
            ratio: i64::try_from(policy.ratio_ppm).unwrap_or(i64::MAX),
            bucket_ms: policy.window_ms.div_ceil(BUCKETS).max(1),
            ring: [Bucket::default(); RING],
            current: None,
            held: 0,
            capacity: 0,
            last_reservation_ms: 0,
        }
    }

    /// Moves the ring to `now`. A clock that goes back leaves the ring where it is.
    fn advance(&mut self, now_ms: u64) {
        let bucket = now_ms / self.bucket_ms;
        match self.current {
            Some(current) if bucket <= current => {}
            Some(current) => {
                let steps = (bucket - current).min(RING as u64);
                for step in 1..=steps {
                    self.ring[((current + step) % RING as u64) as usize] = Bucket::default();
                }
                self.current = Some(bucket);
            }
            None => self.current = Some(bucket),
        }
    }

    fn head(&mut self) -> &mut Bucket {
        let index = (self.current.unwrap_or(0) % RING as u64) as usize;
        &mut self.ring[index]
    }

    fn record(&mut self, amount: i64) {
        let head = self.head();
        head.sum = head.sum.saturating_add(amount);
        head.peak = head.peak.max(head.sum);
    }

    /// `min over s of (ratio x D[s, now] - U[s, now])` over the ring (<= 0).
    fn min_suffix(&self) -> i64 {
        let Some(current) = self.current else {
            return 0;
        };
        let mut after = 0i64;
        let mut min = 0i64;
        for back in 0..RING as u64 {
            let bucket = self.ring[((current + RING as u64 * 2 - back) % RING as u64) as usize];
            min = min.min(after.saturating_add(bucket.sum).saturating_sub(bucket.peak));
            after = after.saturating_add(bucket.sum);
        }
        min
    }

    /// Records one routed request (its `ratio` of a retry).
    pub fn deposit(&mut self, now_ms: u64) {
        self.advance(now_ms);
        self.record(self.ratio);
    }

    /// What could be granted now, in millionths of a retry (may be negative).
    pub fn available(&self) -> i64 {
        self.capacity
            .saturating_sub(self.held)
            .saturating_add(self.min_suffix())
    }

    /// How much more capacity a grant of `attempts` retries would need (0 if none).
    pub fn shortfall(&self, attempts: u32) -> i64 {
        (i64::from(attempts) * RETRY)
            .saturating_sub(self.available())
            .max(0)
    }

    /// Reserves k = min(attempts, whole retries available) (B2).
    pub fn grant(&mut self, now_ms: u64, attempts: u32) -> u32 {
        self.advance(now_ms);
        self.last_reservation_ms = now_ms;
        let whole = (self.available() / RETRY).clamp(0, i64::from(attempts));
        self.held = self.held.saturating_add(whole * RETRY);
        u32::try_from(whole).unwrap_or(0)
    }

    /// Settles a reservation when its stream ends (B3): `used` retries are spent at
    /// `now`, the rest returns to the ledger.
    pub fn settle(&mut self, now_ms: u64, granted: u32, used: u32) {
        self.advance(now_ms);
        self.held = self.held.saturating_sub(i64::from(granted) * RETRY).max(0);
        self.record(-(i64::from(used.min(granted)) * RETRY));
    }

    pub fn capacity(&self) -> i64 {
        self.capacity
    }

    pub fn add_capacity(&mut self, amount: i64) {
        self.capacity = self.capacity.saturating_add(amount.max(0));
    }

    /// Gives all leased capacity back if nothing is held and nothing was reserved for
    /// a whole window (housekeeping on tick). Returns the amount to return to the pool.
    pub fn release_idle(&mut self, now_ms: u64, window_ms: u64) -> i64 {
        if self.capacity == 0
            || self.held != 0
            || now_ms.saturating_sub(self.last_reservation_ms) < window_ms
        {
            return 0;
        }
        std::mem::take(&mut self.capacity)
    }
}

/// Most cooling entries kept; more are merged into the latest (later is stricter).
const MAX_COOLING: usize = 8;

/// The shared reserve of a route: capacity free to lease, and capacity cooling down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservePool {
    free: i64,
    /// (usable again at, amount), oldest first.
    cooling: Vec<(u64, i64)>,
}

impl ReservePool {
    /// The longest encoding: the free amount, the cooling count and every entry.
    pub const MAX_ENCODED: usize = 8 + 1 + MAX_COOLING * 16;

    /// A fresh pool holding the whole reserve.
    pub fn new(policy: &BudgetPolicy) -> ReservePool {
        ReservePool {
            free: i64::try_from(policy.reserve_ppm()).unwrap_or(i64::MAX),
            cooling: Vec::new(),
        }
    }

    fn thaw(&mut self, now_ms: u64) {
        while let Some(&(until, amount)) = self.cooling.first() {
            if until > now_ms {
                break;
            }
            self.free = self.free.saturating_add(amount);
            self.cooling.remove(0);
        }
    }

    /// Leases up to `want`; returns what was leased.
    pub fn take(&mut self, now_ms: u64, want: i64) -> i64 {
        self.thaw(now_ms);
        let got = want.clamp(0, self.free);
        self.free -= got;
        got
    }

    /// Returns leased capacity; it may be leased again only after `window_ms`.
    pub fn give_back(&mut self, now_ms: u64, amount: i64, window_ms: u64) {
        if amount <= 0 {
            return;
        }
        self.thaw(now_ms);
        let until = now_ms.saturating_add(window_ms).saturating_add(1);
        if self.cooling.len() >= MAX_COOLING {
            if let Some(last) = self.cooling.last_mut() {
                last.0 = last.0.max(until);
                last.1 = last.1.saturating_add(amount);
                return;
            }
        }
        self.cooling.push((until, amount));
    }

    pub fn free(&self) -> i64 {
        self.free
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.i64(self.free);
        w.u8(self.cooling.len() as u8);
        for &(until, amount) in &self.cooling {
            w.u64(until);
            w.i64(amount);
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Option<ReservePool> {
        let mut r = Reader::new(bytes);
        let free = r.i64()?;
        let count = r.u8()? as usize;
        if count > MAX_COOLING {
            return None;
        }
        let mut cooling = Vec::with_capacity(count);
        for _ in 0..count {
            cooling.push((r.u64()?, r.i64()?));
        }
        r.end()?;
        Some(ReservePool { free, cooling })
    }
}

#[cfg(test)]
mod tests;
