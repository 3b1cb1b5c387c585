//! What the filter keeps in shared data, measured and bounded (SPEC 2.7).
//!
//! Shared data lives as long as the proxy and proxy-wasm has no call to delete a key,
//! so a key written per upstream host, or a value that grows with the hosts seen,
//! would grow a gateway's memory for as long as it runs. The filter's design keeps
//! it fixed: per configuration, one VM counter (the glue's queue indices) and, per
//! route, one budget pool and one health value whose host table holds at most
//! [`MAX_HOSTS`](crate::health::MAX_HOSTS) hosts. [`bound`] states that set and the
//! most bytes it can hold, from the configuration alone.
//!
//! A [`Footprint`] is what one VM has seen of it: every key it read or wrote, with the
//! size of the value it last saw there. The glue records each shared-data call into
//! one and reports it as the `shared_keys` and `shared_bytes` gauges, so a soak in a
//! real Envoy can check the measured set against the bound while addresses come and
//! go. Every VM reads each key of its configuration when it is configured, so each
//! reports the whole set; a VM writing a key no other knows would raise its own count.

use crate::budget::ReservePool;
use crate::config::Config;
use crate::health::RouteHealth;
use std::collections::HashMap;

/// The keys a VM has read or written, each with its value's last known size.
#[derive(Debug, Clone, Default)]
pub struct Footprint {
    sizes: HashMap<String, usize>,
    bytes: usize,
}

impl Footprint {
    /// A value of `size` bytes was read from or written to `key`.
    pub fn record(&mut self, key: &str, size: usize) {
        match self.sizes.get_mut(key) {
            Some(known) => {
                self.bytes = self.bytes - *known + size;
                *known = size;
            }
            None => {
                self.sizes.insert(key.to_owned(), size);
                self.bytes += size;
            }
        }
    }

    /// Distinct keys seen.
    pub fn keys(&self) -> usize {
        self.sizes.len()
    }

    /// The sum of the last known size of each key's value.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether it stays within `bound`.
    pub fn within(&self, bound: &Bound) -> bool {
        self.keys() <= bound.keys && self.bytes() <= bound.bytes
    }
}

/// The most a configuration keeps in shared data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub keys: usize,
    pub bytes: usize,
}

/// The shared-data values of one configuration: the VM counter, then per route its
/// budget pool (when the budget is on) and its health (when the outlier rules are on).
pub fn bound(config: &Config) -> Bound {
    let mut keys = 1;
    let mut bytes = VM_COUNTER_BYTES;
    for route in &config.routes {
        if route.budget.is_some() {
            keys += 1;
            bytes += ReservePool::MAX_ENCODED;
        }
        if route.outlier.enabled() {
            keys += 1;
            bytes += RouteHealth::MAX_ENCODED;
        }
    }
    Bound { keys, bytes }
}

/// The VM counter is a `u32`.
const VM_COUNTER_BYTES: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::{vm_counter_key, MemoryShared, Shared};
    use crate::worker::{Request, Verdict, Worker};

    #[test]
    fn a_footprint_counts_each_key_once_with_its_latest_size() {
        let mut footprint = Footprint::default();
        footprint.record("a", 10);
        footprint.record("b", 4);
        footprint.record("a", 30);
        footprint.record("a", 2);
        assert_eq!((footprint.keys(), footprint.bytes()), (2, 6));
        let bound = Bound { keys: 2, bytes: 6 };
        assert!(footprint.within(&bound));
        footprint.record("c", 0);
        assert!(!footprint.within(&bound));
    }

    #[test]
    fn the_bound_is_the_vm_counter_and_two_values_per_route_unless_switched_off() {
        let defaults = bound(&Config::defaults());
        assert_eq!(defaults.keys, 1 + 6 * 2);
        assert_eq!(
            defaults.bytes,
            4 + 6 * (ReservePool::MAX_ENCODED + RouteHealth::MAX_ENCODED)
        );
        let config = Config::parse(br#"{"retry_budget": null, "outlier": {"consecutive_5xx": 0}}"#)
            .expect("a valid configuration");
        assert_eq!(bound(&config), Bound { keys: 1, bytes: 4 });
    }

    /// Thousands of distinct upstream addresses on every route, through two workers
    /// sharing one store: each address is seen eight times, interleaved with fifteen
    /// others, and every other one fails each time, so hosts are tracked, ejected and
    /// evicted while the route circuits stay closed. The keys and bytes in shared data
    /// stay within the bound all along, and the host tables do fill up.
    #[test]
    fn shared_data_stays_within_the_bound_however_many_hosts_come_and_go() {
        let config =
            Config::parse(br#"{"outlier": {"base_ejection": "1s", "max_ejection": "4s"}}"#)
                .expect("a valid configuration");
        let limit = bound(&config);
        let store = MemoryShared::default();
        let mut workers: Vec<(Worker, MemoryShared)> = (0..2)
            .map(|_| {
                let mut shared = store.handle();
                let mut worker = Worker::new(config.clone(), 3);
                worker.init_shared(&mut shared);
                // The glue's VM counter, as each VM claims its index.
                shared.set(&vm_counter_key(3), &1u32.to_le_bytes(), 0);
                (worker, shared)
            })
            .collect();
        let routes = config.routes.len() as u64;
        let mut distinct = std::collections::HashSet::new();
        let mut ejections = 0;
        for n in 0..120_000u64 {
            let now_ms = n * 7;
            let (worker, shared) = &mut workers[(n % 2) as usize];
            let route = &config.routes[(n % routes) as usize];
            let path = format!("{}/{n}", route.prefix);
            let request = Request {
                method: b"GET",
                path: path.as_bytes(),
                authority: Some(b"api.c4ang.com"),
            };
            let Verdict::Forward(ticket) = worker.on_request(&request, now_ms, shared) else {
                panic!("request {n} was not forwarded: no circuit may open");
            };
            let j = n / routes;
            let id = j % 16 + 16 * (j / 128);
            let host = format!(
                "127.0.{}.{}:{}",
                id / 256 % 256,
                id % 256,
                20_000 + id % 1000
            );
            distinct.insert(host.clone());
            let status = if id % 2 == 1 { 503 } else { 200 };
            let signals = worker.on_response(
                &ticket,
                status,
                Some(1),
                Some(host.as_bytes()),
                now_ms,
                shared,
            );
            ejections += u32::from(signals.ejection.is_some());
            if n % 500 == 0 {
                worker.on_tick(now_ms, shared);
                let footprint = store.footprint();
                assert!(footprint.within(&limit), "{footprint:?} over {limit:?}");
                assert_eq!(footprint.keys(), limit.keys);
            }
        }
        assert!(distinct.len() >= 2_000, "{} addresses", distinct.len());
        assert!(ejections >= 1_000, "{ejections} ejections");
        let mut shared = store.handle();
        for route in &config.routes {
            let key = format!("c4mesh/{:016x}/{}/health", 3, route.name);
            let (bytes, _) = shared.get(&key).expect("the route's health");
            let health = RouteHealth::decode(&bytes).expect("it decodes");
            assert_eq!(
                health.hosts.len(),
                crate::health::MAX_HOSTS,
                "{}",
                route.name
            );
        }
    }
}
