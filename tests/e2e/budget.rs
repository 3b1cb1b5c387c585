//! B5: an outage behind the budget, against the same outage without it.

use c4mesh_mesh::LocalMesh;
use std::time::Duration;

#[test]
fn b5_outage_is_bounded_by_the_budget_and_four_fold_without_it() {
    const N: usize = 1000;
    // Outlier off in both, so only the budget differs.
    let with_budget = LocalMesh::with_filter(r#"{"outlier": {"consecutive_5xx": 0}}"#).unwrap();
    let without =
        LocalMesh::with_filter(r#"{"outlier": {"consecutive_5xx": 0}, "retry_budget": null}"#)
            .unwrap();
    for mesh in [&with_budget, &without] {
        mesh.set_status("payments", 503);
    }
    let (statuses, t) = with_budget.client().storm("/api/v1/payments/charge", N, 16);
    assert!(
        statuses.iter().all(|s| *s == 503),
        "every request fails: {statuses:?}"
    );
    let attempts = with_budget.attempts("payments");
    let (statuses, t_without) = without.client().storm("/api/v1/payments/charge", N, 16);
    assert!(
        statuses.iter().all(|s| *s == 503),
        "every request fails: {statuses:?}"
    );
    let attempts_without = without.attempts("payments");

    let bound = N as f64 * 1.2 + 10.0 * (t + 10.0) + 3.0;
    println!(
        "B5 outage, {N} requests: with the budget {attempts} upstream attempts ({:.2} per request) over {t:.1} s, bound {bound:.0}; \
         without it {attempts_without} ({:.2} per request) over {t_without:.1} s",
        attempts as f64 / N as f64,
        attempts_without as f64 / N as f64
    );
    assert!(
        attempts as f64 <= bound,
        "{attempts} attempts exceed the bound {bound:.0}"
    );
    assert!(attempts > N as u64, "the budget still grants some retries");
    assert!(
        attempts_without as f64 >= 3.5 * N as f64,
        "without the budget every request should take about 4 attempts: {attempts_without}"
    );
    with_budget
        .envoy
        .wait_stat(
            "wasmcustom.c4mesh.route.payments.budget_exhausted_total",
            Duration::from_secs(3),
            |v| v > 0,
        )
        .unwrap();
    let used = with_budget
        .envoy
        .wait_stat(
            "wasmcustom.c4mesh.route.payments.retries_used_total",
            Duration::from_secs(3),
            |v| v == attempts - N as u64,
        )
        .unwrap();
    assert_eq!(
        used,
        attempts - N as u64,
        "retries_used_total counts the retries that reached upstream"
    );
}
