//! One look at the running proxy every few seconds, and the CSV they make.
//!
//! Each sample reads Envoy's admin stats once for the filter's gauges and counters
//! (`wasmcustom.c4mesh.*`), Envoy's heap (`server.memory_allocated`) and the hosts
//! its `ORIGINAL_DST` clusters hold (`membership_total`), and `/proc/PID/status` for
//! the process's resident memory. The columns are [`COLUMNS`], in that order.

use super::Error;
use c4mesh_mesh::Envoy;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// The CSV header, one name per column of [`Sample::row`].
pub const COLUMNS: [&str; 20] = [
    "elapsed_s",
    "phase",
    "fault",
    "fault_route",
    "requests_sent",
    "responses",
    "errors",
    "upstream_attempts",
    "addresses_live",
    "addresses_seen",
    "envoy_upstream_hosts",
    "vm_memory_bytes",
    "envoy_rss_bytes",
    "envoy_heap_bytes",
    "shared_keys",
    "shared_bytes",
    "filter_requests",
    "host_ejections",
    "circuits_opened",
    "fail_fast",
];

/// What was seen at one moment of the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub elapsed: Duration,
    pub phase: u64,
    pub fault: &'static str,
    pub fault_route: String,
    pub requests_sent: u64,
    pub responses: u64,
    pub errors: u64,
    pub upstream_attempts: u64,
    pub addresses_live: u64,
    pub addresses_seen: u64,
    pub proxy: ProxyReading,
}

/// What the proxy itself reports: its stats and its memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxyReading {
    pub vm_memory_bytes: Option<u64>,
    pub shared_keys: Option<u64>,
    pub shared_bytes: Option<u64>,
    pub envoy_rss_bytes: u64,
    pub envoy_heap_bytes: u64,
    pub envoy_upstream_hosts: u64,
    pub filter_requests: u64,
    pub host_ejections: u64,
    pub circuits_opened: u64,
    pub fail_fast: u64,
}

/// Reads the proxy's stats and resident memory.
pub fn read_proxy(envoy: &Envoy) -> Result<ProxyReading, Error> {
    let stats = |filter: &str| {
        envoy.stats(filter).map_err(|source| Error::Stats {
            filter: filter.to_owned(),
            source: Box::new(source),
        })
    };
    let mut all = stats("^wasmcustom\\.c4mesh\\.")?;
    all.extend(stats("^server\\.memory_allocated$")?);
    all.extend(stats("\\.membership_total$")?);
    let path = PathBuf::from(format!("/proc/{}/status", envoy.pid()));
    let status = std::fs::read_to_string(&path).map_err(|source| Error::Status { path, source })?;
    Ok(reading(&all, &status))
}

/// The reading from parsed stats and the text of `/proc/PID/status`.
pub fn reading(stats: &BTreeMap<String, u64>, proc_status: &str) -> ProxyReading {
    let global = |name: &str| stats.get(&format!("wasmcustom.c4mesh.{name}")).copied();
    let per_route = |name: &str| {
        stats
            .iter()
            .filter(|(k, _)| k.starts_with("wasmcustom.c4mesh.route.") && k.ends_with(name))
            .map(|(_, v)| v)
            .sum()
    };
    ProxyReading {
        vm_memory_bytes: global("vm_memory_bytes"),
        shared_keys: global("shared_keys"),
        shared_bytes: global("shared_bytes"),
        envoy_rss_bytes: rss_bytes(proc_status).unwrap_or(0),
        envoy_heap_bytes: stats.get("server.memory_allocated").copied().unwrap_or(0),
        envoy_upstream_hosts: stats
            .iter()
            .filter(|(k, _)| k.starts_with("cluster.") && k.ends_with(".membership_total"))
            .map(|(_, v)| v)
            .sum(),
        filter_requests: per_route(".requests_total"),
        host_ejections: per_route(".host_ejections_total"),
        circuits_opened: per_route(".circuit_opened_total"),
        fail_fast: per_route(".fail_fast_total"),
    }
}

/// `VmRSS:   123456 kB` in `/proc/PID/status`, in bytes.
pub fn rss_bytes(proc_status: &str) -> Option<u64> {
    let line = proc_status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl Sample {
    /// One CSV row, in [`COLUMNS`] order; a value the filter did not report is empty.
    pub fn row(&self) -> String {
        let optional = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        let p = &self.proxy;
        [
            format!("{:.1}", self.elapsed.as_secs_f64()),
            self.phase.to_string(),
            self.fault.to_owned(),
            self.fault_route.clone(),
            self.requests_sent.to_string(),
            self.responses.to_string(),
            self.errors.to_string(),
            self.upstream_attempts.to_string(),
            self.addresses_live.to_string(),
            self.addresses_seen.to_string(),
            p.envoy_upstream_hosts.to_string(),
            optional(p.vm_memory_bytes),
            p.envoy_rss_bytes.to_string(),
            p.envoy_heap_bytes.to_string(),
            optional(p.shared_keys),
            optional(p.shared_bytes),
            p.filter_requests.to_string(),
            p.host_ejections.to_string(),
            p.circuits_opened.to_string(),
            p.fail_fast.to_string(),
        ]
        .join(",")
    }
}

/// The samples as CSV, header first.
pub fn csv(samples: &[Sample]) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    for sample in samples {
        let _ = writeln!(out, "{}", sample.row());
    }
    out
}
