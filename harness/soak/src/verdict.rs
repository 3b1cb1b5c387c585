//! What a soak must show, checked on its samples.
//!
//! ## Flat memory
//!
//! Memory that is bounded still grows at first: the filter's VMs grow their linear
//! memory to the high-water mark of their heap, Envoy's allocator and connection pools
//! warm up, each fault brings its own working set (a hang holds connections, a reset
//! opens new ones). Every fault runs within the first third of the run
//! ([`super::faults::phase_length`]), so by then the working set of the whole rotation
//! has been seen. Memory is flat when the highest value of the last third is at most
//! the highest of the first third plus a tolerance ([`Tolerance`]): a leak of even a
//! few hundred bytes per request grows past it over a run of minutes, while the
//! ups and downs of a bounded working set do not.
//!
//! ## A bounded key set
//!
//! The filter's shared-data keys are a fixed set per configuration
//! ([`c4mesh_filter_core::footprint::bound`]). The soak checks that the keys it
//! reports never exceed that bound, that the set at the end is the set at the start
//! (no key per host, however many addresses came and went), and that the bytes under
//! them stay within the bound too (host tables capped).

use super::faults::FAULTS;
use super::sample::Sample;
use c4mesh_filter_core::footprint::Bound;
use std::collections::BTreeSet;
use std::time::Duration;

/// How much the last third may exceed the first: a share of it plus some bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    pub ratio: f64,
    pub bytes: u64,
}

impl Tolerance {
    fn allows(&self, first: u64, last: u64) -> bool {
        last as f64 <= first as f64 * (1.0 + self.ratio) + self.bytes as f64
    }
}

/// The tolerances of the memory checks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// The filter's linear memory (summed over its VMs): grows in 64 KiB pages.
    pub vm_memory: Tolerance,
    /// Envoy's resident memory.
    pub envoy_rss: Tolerance,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            vm_memory: Tolerance {
                ratio: 0.05,
                bytes: 2 * 65_536,
            },
            envoy_rss: Tolerance {
                ratio: 0.10,
                bytes: 8 << 20,
            },
        }
    }
}

/// One property, held or not, and what was measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

/// Judges a run of length `run` from its samples.
pub fn judge(
    samples: &[Sample],
    run: Duration,
    bound: Bound,
    faults_run: &BTreeSet<&'static str>,
    limits: &Limits,
) -> Vec<Check> {
    let first: Vec<&Sample> = samples.iter().filter(|s| s.elapsed * 3 <= run).collect();
    let last: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.elapsed * 3 >= run * 2)
        .collect();
    let mut checks = vec![Check {
        name: "samples in the first and the last third",
        passed: first.len() >= 2 && last.len() >= 2,
        detail: format!("{} and {}", first.len(), last.len()),
    }];
    checks.push(flat(
        "filter VM memory flat",
        &first,
        &last,
        |s| s.proxy.vm_memory_bytes,
        limits.vm_memory,
    ));
    checks.push(flat(
        "Envoy RSS flat",
        &first,
        &last,
        |s| Some(s.proxy.envoy_rss_bytes).filter(|&v| v > 0),
        limits.envoy_rss,
    ));
    let keys: Vec<u64> = samples.iter().filter_map(|s| s.proxy.shared_keys).collect();
    checks.push(match (keys.first(), keys.last(), keys.iter().max()) {
        (Some(&start), Some(&end), Some(&most)) => Check {
            name: "shared-data keys bounded",
            passed: most <= bound.keys as u64 && start == end && start > 0,
            detail: format!(
                "{start} at the start, {end} at the end, at most {most}; the configuration's bound {}",
                bound.keys
            ),
        },
        _ => missing("shared-data keys bounded", "shared_keys"),
    });
    let bytes: Vec<u64> = samples
        .iter()
        .filter_map(|s| s.proxy.shared_bytes)
        .collect();
    checks.push(match bytes.iter().max() {
        Some(&most) => Check {
            name: "shared-data bytes bounded",
            passed: most <= bound.bytes as u64,
            detail: format!("at most {most}; the configuration's bound {}", bound.bytes),
        },
        None => missing("shared-data bytes bounded", "shared_bytes"),
    });
    let all: BTreeSet<&str> = FAULTS.iter().map(|f| f.label()).collect();
    let absent: Vec<&str> = all.difference(faults_run).copied().collect();
    checks.push(Check {
        name: "every fault ran",
        passed: absent.is_empty(),
        detail: if absent.is_empty() {
            all.into_iter().collect::<Vec<_>>().join(", ")
        } else {
            format!("never ran: {}", absent.join(", "))
        },
    });
    checks
}

fn missing(name: &'static str, gauge: &str) -> Check {
    Check {
        name,
        passed: false,
        detail: format!("the filter reported no {gauge} gauge"),
    }
}

fn flat(
    name: &'static str,
    first: &[&Sample],
    last: &[&Sample],
    value: impl Fn(&Sample) -> Option<u64>,
    tolerance: Tolerance,
) -> Check {
    let most = |samples: &[&Sample]| samples.iter().filter_map(|s| value(s)).max();
    match (most(first), most(last)) {
        (Some(first), Some(last)) => Check {
            name,
            passed: tolerance.allows(first, last),
            detail: format!(
                "highest {} in the first third, {} in the last (allowed: {} + {:.0}% + {})",
                mib(first),
                mib(last),
                mib(first),
                tolerance.ratio * 100.0,
                mib(tolerance.bytes)
            ),
        },
        _ => Check {
            name,
            passed: false,
            detail: "no value in the first or the last third".to_owned(),
        },
    }
}

/// Bytes as MiB with two decimals.
pub fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}
