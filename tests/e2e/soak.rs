//! 2.7 robustness: a short soak in real Envoy (2 workers), through the same code as
//! `c4mesh soak`: rotating faults, hundreds of distinct upstream addresses, the
//! filter's VM memory, Envoy's RSS and the shared-data keys sampled and checked.

use c4mesh_soak::{self as soak, faults::FAULTS, sample::COLUMNS};
use std::time::Duration;

#[test]
fn a_short_soak_keeps_memory_flat_and_the_shared_data_keys_bounded() {
    c4mesh_mesh::envoy::envoy_binary().expect("the soak needs Envoy");
    let wasm = c4mesh_guests::FILTER.file().expect("the filter module");
    let out_dir = tempfile::Builder::new()
        .prefix("c4mesh-soak-e2e-")
        .tempdir()
        .expect("a temporary directory");
    let out = out_dir.path().join("c4mesh-soak-e2e");
    let options = soak::Options::new(wasm, Duration::from_secs(24), out.clone());
    let outcome = soak::run(&options, |_| {}).expect("the soak ran");
    let summary = outcome.summary();
    assert!(outcome.passed(), "{summary}");

    // What must have happened for the checks to mean something.
    assert!(outcome.distinct_addresses >= 150, "{summary}");
    assert_eq!(outcome.faults_run.len(), FAULTS.len(), "{summary}");
    let statuses = outcome.report.overall.statuses();
    for status in [200, 503, 504] {
        assert!(statuses.contains_key(&status), "no {status}: {summary}");
    }
    let last = outcome.samples.last().expect("samples");
    assert!(
        last.proxy.filter_requests >= outcome.report.requests() / 2,
        "{summary}"
    );
    assert!(
        last.proxy.circuits_opened > 0 && last.proxy.fail_fast > 0,
        "{summary}"
    );
    assert_eq!(
        last.proxy.shared_keys,
        Some(outcome.bound.keys as u64),
        "{summary}"
    );
    assert!(
        last.proxy.vm_memory_bytes.is_some_and(|v| v > 0),
        "{summary}"
    );

    let csv = std::fs::read_to_string(&outcome.csv).expect("the CSV");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(COLUMNS.join(",").as_str()));
    assert_eq!(lines.count(), outcome.samples.len());
    let svg = std::fs::read_to_string(&outcome.svg).expect("the plot");
    assert!(svg.starts_with("<svg"));
    let _ = std::fs::remove_dir_all(out);
}
