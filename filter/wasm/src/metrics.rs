//! Metric ids, defined once per configuration, the flush of the core's tally, and the
//! filter's own footprint.
//!
//! ## Footprint gauges
//!
//! Envoy shows neither a Wasm VM's memory nor what a filter keeps in shared data, so
//! the filter reports both on tick (SPEC 2.7; the soak checks them). The VMs of one
//! plugin share each gauge, so `vm_memory_bytes` is added to by each VM as its linear
//! memory grows (linear memory never shrinks): the gauge is the sum over the VMs that
//! ever ran the plugin in this proxy, a VM that Envoy replaced included.
//! `shared_keys` and `shared_bytes` are set by each VM from what it has seen; every VM
//! sees its configuration's whole key set when it is configured, so they agree.

use crate::abi;
use c4mesh_filter_core::metrics::{
    global_metric_name, route_metric_name, FootprintGauge, MetricUpdate, CIRCUIT_OPEN_GAUGE,
    GLOBAL_COUNTERS, GLOBAL_GAUGES, ROUTE_COUNTERS,
};
use c4mesh_filter_core::Config;
use std::cell::Cell;

/// Proxy-wide counters and footprint gauges, defined at VM start (a rejected
/// configuration is counted too).
#[derive(Debug, Default)]
pub struct GlobalIds {
    counters: [Option<u32>; 4],
    gauges: [Option<u32>; 3],
    /// What this VM last reported of each gauge.
    reported: [Cell<u64>; 3],
}

impl GlobalIds {
    pub fn define() -> GlobalIds {
        GlobalIds {
            counters: GLOBAL_COUNTERS.map(|name| abi::define_counter(&global_metric_name(name))),
            gauges: GLOBAL_GAUGES.map(|name| abi::define_gauge(&global_metric_name(name))),
            reported: Default::default(),
        }
    }

    pub fn config_error(&self) {
        if let Some(id) = self.counters[3] {
            abi::increment_metric(id, 1);
        }
    }

    /// Reports this VM's linear memory (its growth, added to the shared gauge) and
    /// the shared-data keys and bytes it knows of; a host call only for a change.
    pub fn report_footprint(&self, keys: usize, bytes: usize) {
        let memory = linear_memory_bytes();
        let slot = FootprintGauge::VmMemoryBytes as usize;
        let grown = memory.saturating_sub(self.reported[slot].get());
        if grown > 0 {
            if let Some(id) = self.gauges[slot] {
                abi::increment_metric(id, grown);
            }
            self.reported[slot].set(memory);
        }
        for (gauge, value) in [
            (FootprintGauge::SharedKeys, keys),
            (FootprintGauge::SharedBytes, bytes),
        ] {
            let slot = gauge as usize;
            let value = value as u64;
            if self.reported[slot].get() != value {
                if let Some(id) = self.gauges[slot] {
                    abi::record_metric(id, value);
                }
                self.reported[slot].set(value);
            }
        }
    }
}

/// The size of the module's linear memory (memory 0), in bytes.
#[cfg(target_arch = "wasm32")]
fn linear_memory_bytes() -> u64 {
    core::arch::wasm32::memory_size(0) as u64 * 65_536
}

/// Natively (clippy, docs) there is no linear memory.
#[cfg(not(target_arch = "wasm32"))]
fn linear_memory_bytes() -> u64 {
    0
}

/// Per-route counters and gauges of one configuration.
#[derive(Debug, Default)]
pub struct RouteIds {
    counters: Vec<[Option<u32>; 8]>,
    gauges: Vec<Option<u32>>,
}

impl RouteIds {
    pub fn define(config: &Config) -> RouteIds {
        let counters = config
            .routes
            .iter()
            .map(|r| {
                ROUTE_COUNTERS.map(|name| abi::define_counter(&route_metric_name(&r.name, name)))
            })
            .collect();
        let gauges = config
            .routes
            .iter()
            .map(|r| abi::define_gauge(&route_metric_name(&r.name, CIRCUIT_OPEN_GAUGE)))
            .collect();
        RouteIds { counters, gauges }
    }
}

/// Applies one update of the core's tally through the ABI.
pub fn apply(global: &GlobalIds, routes: &RouteIds, update: MetricUpdate) {
    match update {
        MetricUpdate::Route(route, counter, by) => {
            if let Some(Some(id)) = routes.counters.get(route).map(|ids| ids[counter as usize]) {
                abi::increment_metric(id, by);
            }
        }
        MetricUpdate::Global(counter, by) => {
            if let Some(id) = global.counters[counter as usize] {
                abi::increment_metric(id, by);
            }
        }
        MetricUpdate::CircuitOpen(route, open) => {
            if let Some(Some(id)) = routes.gauges.get(route) {
                abi::record_metric(*id, u64::from(open));
            }
        }
    }
}
