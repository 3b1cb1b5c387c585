//! Metric ids, defined once per configuration, and the flush of the core's tally.

use crate::abi;
use c4mesh_filter_core::metrics::{
    global_metric_name, route_metric_name, MetricUpdate, CIRCUIT_OPEN_GAUGE, GLOBAL_COUNTERS,
    ROUTE_COUNTERS,
};
use c4mesh_filter_core::Config;

/// Proxy-wide counters, defined at VM start (a rejected configuration is counted too).
#[derive(Debug, Default)]
pub struct GlobalIds([Option<u32>; 4]);

impl GlobalIds {
    pub fn define() -> GlobalIds {
        GlobalIds(GLOBAL_COUNTERS.map(|name| abi::define_counter(&global_metric_name(name))))
    }

    pub fn config_error(&self) {
        if let Some(id) = self.0[3] {
            abi::increment_metric(id, 1);
        }
    }
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
            if let Some(id) = global.0[counter as usize] {
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
