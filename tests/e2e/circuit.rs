//! O1-O3 and the metrics that report them.

use crate::local_reply;
use c4mesh_mesh::{Behaviour, LocalMesh};
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn circuit_opens_after_five_5xx_fails_fast_probes_once_and_closes() {
    // The open period is long enough for a loaded machine to see it; the test waits it out.
    let mesh = LocalMesh::with_filter(r#"{"outlier": {"base_ejection": "4s"}}"#).unwrap();
    let client = mesh.client();
    mesh.set_status("saga", 503);
    for i in 0..5 {
        let r = client.get("/api/v1/saga/1", &[]).unwrap();
        assert_eq!(r.status, 503, "request {i}");
        assert_eq!(
            r.header("x-c4-reason"),
            None,
            "request {i} reached the service"
        );
    }
    let opened = Instant::now();
    let upstream_before = mesh.attempts("saga");
    for _ in 0..4 {
        let r = client.get("/api/v1/saga/1", &[]).unwrap();
        if r.header("x-c4-reason").is_none() {
            panic!("not failed fast: {r:?}\n{}", mesh.envoy.log());
        }
        local_reply(&r, 503, "circuit_open");
        let retry_after: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=4).contains(&retry_after), "retry-after {retry_after}");
    }
    assert_eq!(
        mesh.attempts("saga"),
        upstream_before,
        "fail fast sends nothing upstream"
    );
    assert_eq!(
        client.get("/api/v1/orders/1", &[]).unwrap().status,
        200,
        "other routes are unaffected"
    );

    // Half-open: the service recovers but answers slowly; three requests at once,
    // exactly one goes upstream as the probe.
    mesh.set(
        "saga",
        Behaviour {
            status: 200,
            delay: Duration::from_millis(500),
        },
    );
    thread::sleep(Duration::from_millis(4_100).saturating_sub(opened.elapsed()));
    let concurrent: Vec<_> = (0..3)
        .map(|i| {
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(i * 50));
                client.get("/api/v1/saga/1", &[]).unwrap()
            })
        })
        .collect();
    let statuses: Vec<u16> = concurrent
        .into_iter()
        .map(|t| t.join().unwrap().status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(mesh.attempts("saga"), upstream_before + 1, "one probe");
    // The probe succeeded: closed.
    for _ in 0..4 {
        assert_eq!(client.get("/api/v1/saga/1", &[]).unwrap().status, 200);
    }
    let envoy = &mesh.envoy;
    let wait = Duration::from_secs(3);
    envoy
        .wait_stat(
            "wasmcustom.c4mesh.route.saga.circuit_opened_total",
            wait,
            |v| v == 1,
        )
        .unwrap();
    envoy
        .wait_stat("wasmcustom.c4mesh.route.saga.fail_fast_total", wait, |v| {
            v == 6
        })
        .unwrap();
    envoy
        .wait_stat("wasmcustom.c4mesh.route.saga.circuit_open", wait, |v| {
            v == 0
        })
        .unwrap();
    envoy
        .wait_stat("wasmcustom.c4mesh.route.saga.requests_total", wait, |v| {
            v == 5 + 4 + 3 + 4
        })
        .unwrap();
    envoy
        .wait_stat(
            "wasmcustom.c4mesh.route.saga.local_replies_total",
            wait,
            |v| v == 6,
        )
        .unwrap();
    let log = envoy.log();
    assert!(log.contains("circuit route=saga opened_for=4s"), "{log}");
    assert!(log.contains("circuit route=saga closed"), "{log}");
}

#[test]
fn one_bad_host_of_two_is_signalled_and_the_circuit_stays_closed() {
    // One attempt per request, so the filter sees the bad host's own 5xx.
    let mesh = LocalMesh::with_filter(r#"{"retry": {"attempts": 0}}"#).unwrap();
    let client = mesh.client();
    let [bad, good] = mesh.service("orders");
    bad.set_status(503);
    let mut failures = 0;
    for _ in 0..24 {
        let r = client.get("/api/v1/orders/1", &[]).unwrap();
        assert_ne!(r.header("x-c4-reason"), Some("circuit_open"));
        failures += usize::from(r.status == 503);
    }
    assert!(failures >= 5, "the bad host answered {failures} times");
    assert!(good.attempts() > 0);
    let line = format!(
        "outlier route=orders host={} consecutive_5xx=5 ejected_for=30s",
        bad.addr()
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while !mesh.envoy.log().contains(&line) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    let log = mesh.envoy.log();
    assert!(log.contains(&line), "no `{line}` in:\n{log}");
    assert!(
        !log.contains(&format!("host={} ", good.addr())),
        "the good host was signalled"
    );
    let envoy = &mesh.envoy;
    envoy
        .wait_stat(
            "wasmcustom.c4mesh.route.orders.host_ejections_total",
            Duration::from_secs(3),
            |v| v >= 1,
        )
        .unwrap();
    assert_eq!(
        envoy
            .stat("wasmcustom.c4mesh.route.orders.circuit_opened_total")
            .unwrap(),
        Some(0)
    );
}
