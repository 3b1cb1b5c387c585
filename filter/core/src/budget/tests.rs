use super::*;
use proptest::prelude::*;

fn policy(ratio: f64, min_per_second: f64, window_ms: u64) -> BudgetPolicy {
    BudgetPolicy {
        ratio_ppm: (ratio * 1e6) as u64,
        min_per_second_ppm: (min_per_second * 1e6) as u64,
        window_ms,
    }
}

/// A ledger with the whole reserve leased, as a single worker would hold it.
fn lone_worker(policy: &BudgetPolicy) -> Ledger {
    let mut ledger = Ledger::new(policy);
    let mut pool = ReservePool::new(policy);
    ledger.add_capacity(pool.take(0, i64::MAX));
    ledger
}

#[test]
fn b2_grants_min_of_attempts_and_whole_tokens() {
    let p = policy(0.2, 1.0, 10_000); // reserve: 10 retries
    let mut ledger = lone_worker(&p);
    ledger.deposit(0);
    assert_eq!(ledger.grant(0, 3), 3);
    ledger.deposit(0);
    assert_eq!(ledger.grant(0, 3), 3);
    ledger.deposit(0);
    assert_eq!(ledger.grant(0, 3), 3);
    // 9 held, 10 + 0.6 available: one whole retry left.
    ledger.deposit(0);
    assert_eq!(ledger.grant(0, 3), 1);
    ledger.deposit(0);
    assert_eq!(ledger.grant(0, 3), 0, "k may be 0");
}

#[test]
fn b3_unused_retries_are_refunded_used_ones_spent() {
    let p = policy(0.0, 1.0, 10_000); // 10 retries per window, no ratio
    let mut ledger = lone_worker(&p);
    for _ in 0..100 {
        ledger.deposit(5);
        let k = ledger.grant(5, 3);
        assert_eq!(k, 3, "healthy requests refund everything");
        ledger.settle(5, k, 0);
    }
    ledger.deposit(5);
    let k = ledger.grant(5, 3);
    ledger.settle(6, k, 3);
    assert_eq!(ledger.available(), 7 * RETRY);
}

#[test]
fn b1_spent_retries_come_back_only_after_a_window() {
    let p = policy(0.0, 1.0, 10_000);
    let mut ledger = lone_worker(&p);
    for t in 0..10 {
        ledger.deposit(t * 100);
        let k = ledger.grant(t * 100, 1);
        assert_eq!(k, 1);
        ledger.settle(t * 100, k, 1);
    }
    ledger.deposit(1_000);
    assert_eq!(ledger.grant(1_000, 1), 0, "ten spent in this window");
    // The check is conservative by up to one bucket (a tenth of the window).
    // At 10.95 s the exact window [0.95 s, 10.95 s] holds no spend, but the oldest
    // bucket of the ring still does.
    ledger.deposit(10_950);
    assert_eq!(ledger.grant(10_950, 3), 0);
    ledger.deposit(11_000);
    assert_eq!(ledger.grant(11_000, 3), 3);
}

#[test]
fn deposits_before_a_window_do_not_fund_it() {
    // A quiet healthy past must not pay for a burst of retries now (B1 is over any
    // window, so only deposits inside the window that ends now count).
    let p = policy(0.5, 0.0, 1_000);
    let mut ledger = Ledger::new(&p);
    for t in 0..1_000 {
        ledger.deposit(t);
    }
    // 500 retries of credit, but a window starting now holds none of it yet.
    ledger.deposit(1_000);
    assert_eq!(ledger.grant(1_000, 3), 0);
}

#[test]
fn release_idle_returns_capacity_only_when_idle() {
    let p = policy(0.2, 10.0, 10_000);
    let mut ledger = lone_worker(&p);
    ledger.deposit(0);
    let k = ledger.grant(0, 3);
    assert_eq!(
        ledger.release_idle(20_000, 10_000),
        0,
        "a reservation is held"
    );
    ledger.settle(1, k, 0);
    assert_eq!(
        ledger.release_idle(5_000, 10_000),
        0,
        "busy within the window"
    );
    assert_eq!(ledger.release_idle(10_000, 10_000), 100 * RETRY);
    assert_eq!(ledger.capacity(), 0);
}

#[test]
fn pool_capacity_cools_down_for_a_window() {
    let p = policy(0.2, 10.0, 10_000);
    let mut pool = ReservePool::new(&p);
    assert_eq!(pool.take(0, 30 * RETRY), 30 * RETRY);
    assert_eq!(pool.free(), 70 * RETRY);
    pool.give_back(1_000, 30 * RETRY, 10_000);
    assert_eq!(pool.take(11_000, i64::MAX), 70 * RETRY);
    assert_eq!(pool.take(11_001, i64::MAX), 30 * RETRY);
    let bytes = pool.encode();
    assert_eq!(ReservePool::decode(&bytes), Some(pool.clone()));
    assert_eq!(ReservePool::decode(&bytes[..bytes.len() - 1]), None);
}

#[test]
fn pool_merges_cooling_entries_beyond_its_cap() {
    let p = policy(0.2, 10.0, 10_000);
    let mut pool = ReservePool::new(&p);
    pool.take(0, i64::MAX);
    for t in 0..20 {
        pool.give_back(t, 5 * RETRY, 10_000);
    }
    assert_eq!(pool.encode().len(), ReservePool::MAX_ENCODED);
    assert_eq!(pool.take(10_007, i64::MAX), 35 * RETRY);
    assert_eq!(
        pool.take(10_019, i64::MAX),
        0,
        "merged entries wait for the latest"
    );
    assert_eq!(pool.take(10_020, i64::MAX), 65 * RETRY);
}

/// What a simulated proxy did, for checking B1 afterwards.
#[derive(Default)]
struct History {
    deposits: Vec<u64>,
    /// (reservation time, retries used)
    used: Vec<(u64, u32)>,
}

impl History {
    /// B1 over every closed window [s, s + window].
    fn assert_bound(&self, p: &BudgetPolicy) {
        // The count in a window changes only where one of its ends meets an event.
        let times = self.deposits.iter().chain(self.used.iter().map(|(t, _)| t));
        let starts: Vec<u64> = times
            .flat_map(|&t| [t, t.saturating_sub(p.window_ms)])
            .collect();
        for s in starts {
            let end = s + p.window_ms;
            let deposits = self
                .deposits
                .iter()
                .filter(|&&t| t >= s && t <= end)
                .count() as u128;
            let used: u128 = self
                .used
                .iter()
                .filter(|(t, _)| *t >= s && *t <= end)
                .map(|(_, u)| u128::from(*u))
                .sum();
            let bound = u128::from(p.ratio_ppm) * deposits + u128::from(p.reserve_ppm());
            assert!(
                used * RETRY as u128 <= bound,
                "window at {s}: {used} retries granted, bound {} retries",
                bound as f64 / 1e6
            );
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Wait(u64),
    Request {
        worker: usize,
        attempts: u32,
    },
    Settle {
        worker: usize,
        pick: usize,
        used_of: u32,
    },
    Release {
        worker: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u64..700).prop_map(Op::Wait),
        4 => (0usize..3, 0u32..=5).prop_map(|(worker, attempts)| Op::Request { worker, attempts }),
        3 => (0usize..3, any::<usize>(), 0u32..=5).prop_map(|(worker, pick, used_of)| Op::Settle { worker, pick, used_of }),
        1 => (0usize..3).prop_map(|worker| Op::Release { worker }),
    ]
}

/// Runs ops on `workers` ledgers sharing one reserve pool, leasing as the filter does.
fn simulate(p: &BudgetPolicy, workers: usize, ops: &[Op]) -> History {
    let mut pool = ReservePool::new(p);
    let mut ledgers: Vec<Ledger> = (0..workers).map(|_| Ledger::new(p)).collect();
    let mut open: Vec<Vec<(u64, u32)>> = vec![Vec::new(); workers];
    let mut history = History::default();
    let mut now = 0u64;
    for op in ops {
        match *op {
            Op::Wait(ms) => now += ms,
            Op::Request { worker, attempts } => {
                let w = worker % workers;
                let ledger = &mut ledgers[w];
                ledger.deposit(now);
                history.deposits.push(now);
                let short = ledger.shortfall(attempts);
                if short > 0 {
                    ledger.add_capacity(pool.take(now, short.max(2 * RETRY)));
                }
                let k = ledger.grant(now, attempts);
                assert!(k <= attempts);
                open[w].push((now, k));
            }
            Op::Settle {
                worker,
                pick,
                used_of,
            } => {
                let w = worker % workers;
                if !open[w].is_empty() {
                    let index = pick % open[w].len();
                    let (at, k) = open[w].remove(index);
                    let used = used_of.min(k);
                    ledgers[w].settle(now, k, used);
                    history.used.push((at, used));
                }
            }
            Op::Release { worker } => {
                let w = worker % workers;
                let amount = ledgers[w].release_idle(now, p.window_ms);
                pool.give_back(now, amount, p.window_ms);
            }
        }
    }
    // Streams still open keep their reservation, as if every retry was used.
    for (w, streams) in open.into_iter().enumerate() {
        for (at, k) in streams {
            ledgers[w].settle(now, k, k);
            history.used.push((at, k));
        }
    }
    history
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// B1 with one worker: no sequence of requests, grants and refunds exceeds it.
    #[test]
    fn b1_holds_for_one_worker(
        ops in proptest::collection::vec(op(), 1..300),
        ratio in 0.0f64..=1.0,
        min_per_second in 0.0f64..5.0,
        window_ms in 100u64..3_000,
    ) {
        let p = policy(ratio, min_per_second, window_ms);
        simulate(&p, 1, &ops).assert_bound(&p);
    }

    /// B1 and B4 with three workers leasing from one pool: the sum stays bounded.
    #[test]
    fn b1_holds_across_workers_sharing_the_reserve(
        ops in proptest::collection::vec(op(), 1..300),
        ratio in 0.0f64..=1.0,
        min_per_second in 0.0f64..5.0,
        window_ms in 100u64..3_000,
    ) {
        let p = policy(ratio, min_per_second, window_ms);
        simulate(&p, 3, &ops).assert_bound(&p);
    }
}

#[test]
fn b5_outage_costs_at_most_the_bound() {
    // 1000 requests over 20 s, every attempt failing: each request uses all it gets.
    let p = policy(0.2, 10.0, 10_000);
    let mut pool = ReservePool::new(&p);
    let mut ledger = Ledger::new(&p);
    let mut attempts = 0u64;
    for i in 0..1000u64 {
        let now = i * 20;
        ledger.deposit(now);
        let short = ledger.shortfall(3);
        if short > 0 {
            ledger.add_capacity(pool.take(now, short));
        }
        let k = ledger.grant(now, 3);
        ledger.settle(now + 5, k, k);
        attempts += 1 + u64::from(k);
    }
    let bound = 1000.0 * 1.2 + 10.0 * (20.0 + 10.0) + 3.0;
    assert!((attempts as f64) <= bound, "{attempts} > {bound}");
    assert!(attempts > 1000, "the budget grants retries: {attempts}");
}
