//! Metrics: `proxy_define_metric`, `proxy_increment_metric`, `proxy_record_metric`,
//! `proxy_get_metric`.
//!
//! Stats live once per proxy (Envoy shows them process-wide under `wasmcustom.`), ids
//! once per VM, numbered as Envoy numbers them: the low two bits carry the type
//! (counter 0, gauge 1, histogram 2) and each definition takes the next id of its type,
//! even for a name already defined. Statuses follow Envoy call by call: incrementing a
//! counter by zero or less is `BadArgument`, a histogram can be recorded but neither
//! incremented nor read, an unknown id is `NotFound` unless its type bits already make
//! the call a `BadArgument`.

use super::{answer, memory, Fail, Status};
use crate::state::{lock, HostState};
use std::collections::BTreeMap;
use wasmtime::{Caller, Linker};

/// The kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl MetricKind {
    fn from_u32(kind: u32) -> Option<MetricKind> {
        Some(match kind {
            0 => MetricKind::Counter,
            1 => MetricKind::Gauge,
            2 => MetricKind::Histogram,
            _ => return None,
        })
    }
}

/// A metric's current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricValue {
    Counter(u64),
    Gauge(u64),
    /// Every recorded value, in order.
    Histogram(Vec<u64>),
}

impl MetricValue {
    /// The counter or gauge value; the number of samples of a histogram.
    pub fn value(&self) -> u64 {
        match self {
            MetricValue::Counter(v) | MetricValue::Gauge(v) => *v,
            MetricValue::Histogram(samples) => samples.len() as u64,
        }
    }
}

/// The stats of one proxy, by name.
#[derive(Debug, Default)]
pub struct Metrics {
    stats: BTreeMap<(String, MetricKind), MetricValue>,
}

// === impl Metrics ===

impl Metrics {
    fn define(&mut self, name: &str, kind: MetricKind) {
        self.stats
            .entry((name.to_owned(), kind))
            .or_insert_with(|| match kind {
                MetricKind::Counter => MetricValue::Counter(0),
                MetricKind::Gauge => MetricValue::Gauge(0),
                MetricKind::Histogram => MetricValue::Histogram(Vec::new()),
            });
    }

    /// The value of `name` (any kind; a counter first).
    pub fn get(&self, name: &str) -> Option<&MetricValue> {
        [
            MetricKind::Counter,
            MetricKind::Gauge,
            MetricKind::Histogram,
        ]
        .into_iter()
        .find_map(|k| self.stats.get(&(name.to_owned(), k)))
    }

    /// Every metric, by name.
    pub fn all(&self) -> Vec<(String, MetricValue)> {
        self.stats
            .iter()
            .map(|((n, _), v)| (n.clone(), v.clone()))
            .collect()
    }

    fn entry(&mut self, name: &str, kind: MetricKind) -> Option<&mut MetricValue> {
        self.stats.get_mut(&(name.to_owned(), kind))
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: Caller<'_, HostState>, kind: u32, name: u32, name_size: u32, id_ptr: u32| {
            answer(define(&mut c, kind, name, name_size, id_ptr))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_increment_metric",
        |c: Caller<'_, HostState>, id: u32, offset: i64| answer(increment(c.data(), id, offset)),
    )?;
    linker.func_wrap(
        "env",
        "proxy_record_metric",
        |c: Caller<'_, HostState>, id: u32, value: u64| answer(record(c.data(), id, value)),
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_metric",
        |mut c: Caller<'_, HostState>, id: u32, value_ptr: u32| answer(get(&mut c, id, value_ptr)),
    )?;
    Ok(())
}

fn define(
    c: &mut Caller<'_, HostState>,
    kind: u32,
    name: u32,
    name_size: u32,
    id_ptr: u32,
) -> Result<(), Fail> {
    let name = memory::read(c, name, name_size)?;
    let kind_index = kind as usize;
    let kind = MetricKind::from_u32(kind).ok_or(Status::BadArgument)?;
    let name = String::from_utf8_lossy(&name).into_owned();
    let state = c.data_mut();
    lock(&state.shared.metrics).define(&name, kind);
    let ids = &mut state.metric_ids;
    ids.next[kind_index] = ids.next[kind_index].wrapping_add(4);
    let id = ids.next[kind_index];
    ids.names.insert(id, name);
    memory::write_u32(c, id_ptr, id)
}

/// The kind an id's type bits name, and the metric's name if the VM defined it.
fn lookup(state: &HostState, id: u32) -> (Option<MetricKind>, Option<String>) {
    (
        MetricKind::from_u32(id & 3),
        state.metric_ids.names.get(&id).cloned(),
    )
}

fn increment(state: &HostState, id: u32, offset: i64) -> Result<(), Fail> {
    let (kind, name) = lookup(state, id);
    let mut metrics = lock(&state.shared.metrics);
    match (kind, name) {
        (Some(MetricKind::Counter), Some(name)) => {
            if offset <= 0 {
                return Err(Status::BadArgument.into());
            }
            if let Some(MetricValue::Counter(v)) = metrics.entry(&name, MetricKind::Counter) {
                *v = v.wrapping_add(offset.unsigned_abs());
            }
            Ok(())
        }
        (Some(MetricKind::Gauge), Some(name)) => {
            if let Some(MetricValue::Gauge(v)) = metrics.entry(&name, MetricKind::Gauge) {
                *v = if offset >= 0 {
                    v.wrapping_add(offset.unsigned_abs())
                } else {
                    v.wrapping_sub(offset.unsigned_abs())
                };
            }
            Ok(())
        }
        (Some(MetricKind::Counter | MetricKind::Gauge), None) => Err(Status::NotFound.into()),
        _ => Err(Status::BadArgument.into()),
    }
}

fn record(state: &HostState, id: u32, value: u64) -> Result<(), Fail> {
    let (kind, name) = lookup(state, id);
    let (Some(kind), Some(name)) = (kind, name) else {
        return Err(Status::NotFound.into());
    };
    let mut metrics = lock(&state.shared.metrics);
    match metrics.entry(&name, kind) {
        Some(MetricValue::Counter(v)) => *v = v.wrapping_add(value),
        Some(MetricValue::Gauge(v)) => *v = value,
        Some(MetricValue::Histogram(samples)) => samples.push(value),
        None => return Err(Status::NotFound.into()),
    }
    Ok(())
}

fn get(c: &mut Caller<'_, HostState>, id: u32, value_ptr: u32) -> Result<(), Fail> {
    let value = {
        let state = c.data();
        let (kind, name) = lookup(state, id);
        match (kind, name) {
            (Some(kind @ (MetricKind::Counter | MetricKind::Gauge)), Some(name)) => {
                let metrics = lock(&state.shared.metrics);
                match metrics.stats.get(&(name, kind)) {
                    Some(v) => v.value(),
                    None => return Err(Status::NotFound.into()),
                }
            }
            (Some(MetricKind::Counter | MetricKind::Gauge), None) => {
                return Err(Status::NotFound.into())
            }
            _ => return Err(Status::BadArgument.into()),
        }
    };
    memory::write_u64(c, value_ptr, value)
}
