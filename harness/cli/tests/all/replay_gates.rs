//! `c4mesh replay`'s gates (`--slo`) and abort guard (`--abort-on`), run as the
//! operator runs them: the built binary against a simulated service on loopback, and
//! against the local mesh in Envoy for the guard.

use crate::command::c4mesh;
use c4mesh_live::Endpoint;
use c4mesh_mesh::{Attempt, LocalMesh, Reply, Upstream};
use c4mesh_replay::{self as replay, Load, Options, Routes};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// A service on loopback answering every path as `reply` says.
fn service(reply: impl Fn(&str) -> (u16, Duration) + Send + Sync + 'static) -> Upstream {
    let handler = Arc::new(move |attempt: &Attempt| {
        let (status, delay) = reply(&attempt.path);
        Reply::Respond {
            status,
            headers: Vec::new(),
            body: b"ok".to_vec(),
            delay,
        }
    });
    Upstream::with_handler("any", handler).expect("a service on loopback")
}

/// A service on loopback answering paths under `prefix` with `status` after `delay`,
/// and every other path with a 200 at once.
fn service_where(prefix: &'static str, status: u16, delay: Duration) -> Upstream {
    service(move |path| {
        if path.starts_with(prefix) {
            (status, delay)
        } else {
            (200, Duration::ZERO)
        }
    })
}

/// `c4mesh replay --target http://ADDR ARGS --json`: its exit status and report.
fn replay_json(target: &str, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["replay", "--target", target];
    all.extend_from_slice(args);
    all.push("--json");
    let (code, stdout, stderr) = c4mesh(&all);
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout {stdout:?}, stderr {stderr}"));
    (code, report)
}

/// `c4mesh replay --target TARGET RUN --slo GATE... --json`.
fn judge(target: &str, run: &[&str], gates: &[&str]) -> (i32, Value) {
    let mut args = run.to_vec();
    for gate in gates {
        args.extend(["--slo", gate]);
    }
    replay_json(target, &args)
}

/// The `pass` of each verdict, in order.
fn passes(report: &Value) -> Vec<bool> {
    report["slo"]
        .as_array()
        .unwrap_or_else(|| panic!("no slo in {report:#}"))
        .iter()
        .map(|verdict| verdict["pass"].as_bool().expect("pass"))
        .collect()
}

fn observed(report: &Value, index: usize) -> f64 {
    report["slo"][index]["observed"]
        .as_f64()
        .unwrap_or_else(|| panic!("no observed value in {report:#}"))
}

#[test]
fn slos_that_hold_exit_0_with_their_verdicts_in_the_report() {
    let host = service(|_| (200, Duration::ZERO));
    let target = format!("http://{}", host.addr());
    let (code, report) = judge(
        &target,
        &["--count", "60", "--concurrency", "3"],
        &["p99<2s", "errors<1%", "max<=10000ms"],
    );
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(passes(&report), [true, true, true], "{report:#}");
    assert_eq!(report["slo"][0]["expr"], json!("p99<2s"));
    assert_eq!(report["slo"][0]["unit"], json!("ms"));
    assert!(observed(&report, 0) < 2000.0, "{report:#}");
    assert_eq!(report["slo"][1]["unit"], json!("%"));
    assert_eq!(observed(&report, 1), 0.0);
    assert_eq!(report["aborted"], Value::Null);
}

#[test]
fn a_latency_slo_that_fails_exits_3_and_says_so_in_the_report_and_the_table() {
    let host = service(|_| (200, Duration::from_millis(20)));
    let target = format!("http://{}", host.addr());
    let args = [
        "--count",
        "20",
        "--concurrency",
        "4",
        "--slo",
        "p50<5ms",
        "--slo",
        "p99.9<5s",
    ];
    let (code, report) = replay_json(&target, &args);
    assert_eq!(code, 3, "{report:#}");
    assert_eq!(passes(&report), [false, true], "{report:#}");
    assert!(observed(&report, 0) >= 20.0, "{report:#}");
    assert_eq!(report["complete"], json!(true));

    let mut text_args = vec!["replay", "--target", &target];
    text_args.extend_from_slice(&args);
    let (code, stdout, stderr) = c4mesh(&text_args);
    assert_eq!(code, 3, "{stderr}");
    assert!(stdout.contains("slo: 1 passed, 1 failed"), "{stdout}");
    assert!(stdout.contains("  FAIL  p50<5ms   observed "), "{stdout}");
    assert!(stdout.contains("  pass  p99.9<5s  observed "), "{stdout}");
}

#[test]
fn a_route_slo_judges_that_routes_requests_alone() {
    // Payments are slow, everything else is quick.
    let host = service_where("/api/v1/payments", 200, Duration::from_millis(150));
    let target = format!("http://{}", host.addr());
    let (code, report) = judge(
        &target,
        &["--count", "60", "--concurrency", "6"],
        &[
            "route=payments:p99<100ms",
            "route=orders:p99<100ms",
            "route=payments:p50>=150ms",
            "route=other:p99<1s",
        ],
    );
    assert_eq!(code, 3, "{report:#}");
    // No request fell under `other`: a gate with nothing to judge by fails.
    assert_eq!(passes(&report), [false, true, true, false], "{report:#}");
    assert!(observed(&report, 0) >= 150.0, "{report:#}");
    assert!(observed(&report, 1) < 100.0, "{report:#}");
    assert_eq!(report["slo"][3]["observed"], Value::Null);

    let (code, report) = judge(&target, &["--count", "12"], &["route=orders:p99<100ms"]);
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn an_error_slo_counts_5xx_and_transport_errors() {
    // The saga tracker fails: one request in six of the mix.
    let host = service_where("/api/v1/saga", 503, Duration::ZERO);
    let target = format!("http://{}", host.addr());
    let (code, report) = judge(
        &target,
        &["--count", "60", "--concurrency", "3"],
        &[
            "errors<20%",
            "errors<=10%",
            "route=saga:errors>=100%",
            "route=orders:errors<0.1%",
        ],
    );
    assert_eq!(code, 3, "{report:#}");
    assert_eq!(passes(&report), [true, false, true, true], "{report:#}");
    assert_eq!(observed(&report, 0), 16.667);
    assert_eq!(observed(&report, 2), 100.0);
    assert_eq!(report["errors"], json!(0), "5xx are responses, not errors");

    let (code, report) = replay_json(&target, &["--count", "12", "--slo", "errors<=20%"]);
    assert_eq!(code, 0, "{report:#}");

    // Nothing listens: every request is a transport error, and no latency was seen.
    let free = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let closed = format!("http://{}", free.local_addr().expect("address"));
    drop(free);
    let (code, report) = judge(&closed, &["--count", "5"], &["errors<100%", "p99<1s"]);
    assert_eq!(code, 3, "{report:#}");
    assert_eq!(passes(&report), [false, false], "{report:#}");
    assert_eq!(observed(&report, 0), 100.0);
    assert_eq!(report["slo"][1]["observed"], Value::Null);
}

#[test]
fn bad_gates_are_refused_naming_the_flag_and_the_text() {
    let cases = [
        ("--slo", "p99<50", "missing unit after \"50\""),
        ("--slo", "p95<50ms", "unknown metric \"p95\""),
        ("--slo", "route=billing:p99<1s", "unknown route \"billing\""),
        ("--slo", "errors<1", "percentage"),
        ("--abort-on", "errors>5%", "missing window"),
        ("--abort-on", "p99>50ms/10s", "error rate"),
    ];
    for (flag, text, says) in cases {
        let (code, stdout, stderr) = c4mesh(&[
            "replay",
            "--target",
            "http://127.0.0.1:9",
            "--count",
            "1",
            flag,
            text,
        ]);
        assert_eq!(code, 2, "{flag} {text}: {stdout}{stderr}");
        assert!(stderr.contains(flag), "{stderr}");
        assert!(stderr.contains(&format!("'{text}'")), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    let (_, help, _) = c4mesh(&["replay", "--help"]);
    assert!(help.contains("3 when an --slo failed"), "{help}");
    assert!(help.contains("4 when --abort-on stopped the run"), "{help}");
}

#[test]
fn a_stopped_run_still_judges_its_gates() {
    let host = service(|_| (200, Duration::ZERO));
    let endpoint =
        Endpoint::parse(&format!("http://{}", host.addr()), Some("api.c4ang.com")).expect("url");
    let mut options = Options::new(endpoint);
    options.load = Load::Open {
        rate_per_second: Some(100.0),
    };
    options.duration = Some(Duration::from_secs(30));
    options.slos = vec![
        "p99<5s".parse().expect("gate"),
        "errors<1%".parse().expect("gate"),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let interrupt = Arc::clone(&stop);
    let started = Instant::now();
    let report = replay::run(&options, &stop, |_| {
        if started.elapsed() > Duration::from_millis(500) {
            interrupt.store(true, Ordering::SeqCst);
        }
    })
    .expect("runs");
    assert!(!report.complete);
    assert!(report.aborted.is_none(), "Ctrl-C is not the guard");
    let verdicts: Vec<_> = report
        .slo
        .iter()
        .map(|v| (v.expr.as_str(), v.pass))
        .collect();
    assert_eq!(verdicts, [("p99<5s", true), ("errors<1%", true)]);
}

#[test]
fn the_abort_guard_stops_sending_when_the_mesh_fails_and_says_why() {
    let mesh = LocalMesh::with_filter("").expect("local mesh");
    let table = Routes::defaults();
    let routes: Vec<&str> = (0..table.len()).map(|i| table.name(i)).collect();
    let sent_to_services = || routes.iter().map(|r| mesh.attempts(r)).sum::<u64>();
    let target = mesh.envoy.url();
    let run = thread::spawn(move || {
        c4mesh(&[
            "replay",
            "--target",
            &target,
            "--rate",
            "100",
            "--duration",
            "30s",
            "--abort-on",
            "errors>5%/2s",
            "--json",
        ])
    });
    // Two healthy seconds, then every service fails.
    thread::sleep(Duration::from_secs(2));
    let healthy = sent_to_services();
    for route in &routes {
        mesh.set_status(route, 503);
    }
    let failing_since = Instant::now();
    let (code, stdout, stderr) = run.join().expect("the replay thread");
    let stopped_after = failing_since.elapsed();

    assert_eq!(code, 4, "{stdout}{stderr}");
    assert!(healthy >= 100, "{healthy} requests before the failure");
    // Sending stopped within the window (2 s), plus the grace for requests in
    // flight (1 s) and a margin for a busy machine, of a 30 s run.
    assert!(
        stopped_after < Duration::from_millis(4500),
        "ended {stopped_after:?} after the failure began"
    );
    let report: Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["complete"], json!(false), "{report:#}");
    let aborted = &report["aborted"];
    let reason = aborted["reason"].as_str().expect("a reason");
    assert!(reason.starts_with("errors "), "{reason}");
    assert!(reason.contains("% > 5% over the last 2 s at "), "{reason}");
    assert_eq!(aborted["rule"], json!("errors>5%/2s"));
    assert!(
        aborted["error_rate"].as_f64().expect("rate") > 5.0,
        "{report:#}"
    );
    assert!(aborted["requests"].as_u64().expect("requests") >= 20);
    let at = aborted["at_s"].as_f64().expect("at_s");
    assert!((1.5..6.0).contains(&at), "tripped at {at} s");
    let sent = report["requests"].as_u64().expect("requests");
    assert!(sent < 700, "{sent} requests sent of a planned 3,000");
    let after = sent_to_services();
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        after,
        sent_to_services(),
        "nothing is sent once the command has ended"
    );
}
