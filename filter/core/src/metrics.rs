//! Metric names and the per-worker tally (SPEC 2.5).
//!
//! Each increment through the proxy-wasm ABI crosses the Wasm boundary, so requests
//! only bump plain integers here; the glue flushes the tally on tick (metrics lag by
//! at most the tick period) with ids it defined at configure time.

use crate::routes::RouteId;

/// Per-route counters, in the order of [`RouteCounter`].
pub const ROUTE_COUNTERS: [&str; 8] = [
    "requests_total",
    "local_replies_total",
    "retries_granted_total",
    "retries_used_total",
    "budget_exhausted_total",
    "host_ejections_total",
    "circuit_opened_total",
    "fail_fast_total",
];

/// The per-route gauge: 1 while the route's circuit is open or half-open.
pub const CIRCUIT_OPEN_GAUGE: &str = "circuit_open";

/// Proxy-wide counters, in the order of [`GlobalCounter`].
pub const GLOBAL_COUNTERS: [&str; 4] = [
    "unknown_host_total",
    "no_route_total",
    "bad_path_total",
    "config_errors_total",
];

/// Proxy-wide gauges of the filter's own footprint (SPEC 2.7), in the order of
/// [`FootprintGauge`], set on tick: the linear memory of the filter's VMs (summed
/// over them), and the shared-data keys and bytes a VM knows of
/// ([`crate::footprint`]).
pub const GLOBAL_GAUGES: [&str; 3] = ["vm_memory_bytes", "shared_keys", "shared_bytes"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FootprintGauge {
    VmMemoryBytes = 0,
    SharedKeys,
    SharedBytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteCounter {
    Requests = 0,
    LocalReplies,
    RetriesGranted,
    RetriesUsed,
    BudgetExhausted,
    HostEjections,
    CircuitOpened,
    FailFast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalCounter {
    UnknownHost = 0,
    NoRoute,
    BadPath,
    ConfigErrors,
}

/// `c4mesh.route.<route>.<name>`
pub fn route_metric_name(route: &str, name: &str) -> String {
    format!("c4mesh.route.{route}.{name}")
}

/// `c4mesh.<name>`
pub fn global_metric_name(name: &str) -> String {
    format!("c4mesh.{name}")
}

/// A metric change to apply through the ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricUpdate {
    Route(RouteId, RouteCounter, u64),
    Global(GlobalCounter, u64),
    CircuitOpen(RouteId, bool),
}

/// Counts not yet flushed.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    route: Vec<[u64; 8]>,
    global: [u64; 4],
}

impl Tally {
    pub fn new(routes: usize) -> Tally {
        Tally {
            route: vec![[0; 8]; routes],
            global: [0; 4],
        }
    }

    pub fn route(&mut self, route: RouteId, counter: RouteCounter, by: u64) {
        if let Some(counts) = self.route.get_mut(route) {
            counts[counter as usize] += by;
        }
    }

    pub fn global(&mut self, counter: GlobalCounter) {
        self.global[counter as usize] += 1;
    }

    /// Hands every non-zero count to `apply` and resets it.
    pub fn drain(&mut self, apply: &mut impl FnMut(MetricUpdate)) {
        const ROUTE: [RouteCounter; 8] = [
            RouteCounter::Requests,
            RouteCounter::LocalReplies,
            RouteCounter::RetriesGranted,
            RouteCounter::RetriesUsed,
            RouteCounter::BudgetExhausted,
            RouteCounter::HostEjections,
            RouteCounter::CircuitOpened,
            RouteCounter::FailFast,
        ];
        const GLOBAL: [GlobalCounter; 4] = [
            GlobalCounter::UnknownHost,
            GlobalCounter::NoRoute,
            GlobalCounter::BadPath,
            GlobalCounter::ConfigErrors,
        ];
        for (route, counts) in self.route.iter_mut().enumerate() {
            for (i, count) in counts.iter_mut().enumerate() {
                if *count > 0 {
                    apply(MetricUpdate::Route(route, ROUTE[i], std::mem::take(count)));
                }
            }
        }
        for (i, count) in self.global.iter_mut().enumerate() {
            if *count > 0 {
                apply(MetricUpdate::Global(GLOBAL[i], std::mem::take(count)));
            }
        }
    }
}
