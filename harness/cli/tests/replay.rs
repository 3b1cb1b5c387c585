//! `c4mesh_replay` against real hosts on loopback: simulated services for the loops,
//! bounds, errors and the stop flag, and a real Envoy with the filter for the mix and
//! for a run split over shards whose reports `c4mesh replay merge` adds up.

#[path = "common/command.rs"]
mod command;

use c4mesh_live::{Endpoint, Protocol, Settings};
use c4mesh_mesh::{Behaviour, Handler, LocalMesh, MeshOptions, Reply, Upstream, Wasm};
use c4mesh_replay::{self as replay, Load, Options, Progress, Report, Source};
use serde_json::json;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn options(target: SocketAddr, load: Load, count: Option<u64>) -> Options {
    let endpoint =
        Endpoint::parse(&format!("http://{target}"), Some("api.c4ang.com")).expect("endpoint");
    let mut options = Options::new(endpoint);
    options.load = load;
    options.count = count;
    options
}

fn run(options: &Options) -> Report {
    replay::run(options, &Arc::new(AtomicBool::new(false)), |_| {}).expect("replay runs")
}

fn closed(concurrency: usize) -> Load {
    Load::Closed { concurrency }
}

fn open(rate: f64) -> Load {
    Load::Open {
        rate_per_second: Some(rate),
    }
}

fn handler(f: impl Fn(&c4mesh_mesh::Attempt) -> Reply + Send + Sync + 'static) -> Handler {
    Arc::new(f)
}

fn respond(status: u16, delay: Duration) -> Reply {
    Reply::Respond {
        status,
        headers: Vec::new(),
        body: b"ok".to_vec(),
        delay,
    }
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).expect("writing a traffic file");
    path
}

#[test]
fn closed_loop_sends_exactly_the_count() {
    let host = Upstream::start("any", Behaviour::status(200)).expect("upstream");
    let report = run(&options(host.addr(), closed(4), Some(50)));
    assert_eq!(report.requests(), 50);
    assert_eq!(report.overall.responses(), 50);
    assert_eq!(host.attempts(), 50);
    assert!(report.complete);
    let json = report.to_json();
    assert_eq!(json["mode"], json!("closed"));
    assert_eq!(json["concurrency"], json!(4));
    assert_eq!(json["statuses"], json!({"200": 50}));
    assert_eq!(json["errors"], json!(0));
    // The mix spreads over the six routes: 50 = 9 + 9 + 8 + 8 + 8 + 8.
    let per_route: Vec<_> = report
        .routes()
        .map(|(name, stats)| (name.to_owned(), stats.requests()))
        .collect();
    assert_eq!(per_route.len(), 6, "{per_route:?}");
    assert!(
        per_route.iter().all(|(_, n)| *n == 8 || *n == 9),
        "{per_route:?}"
    );
    let paths: Vec<_> = host.seen().into_iter().map(|a| a.path).collect();
    assert!(paths.contains(&"/api/v1/saga/1".to_owned()), "{paths:?}");
    assert!(host
        .seen()
        .iter()
        .all(|a| a.header("host") == Some("api.c4ang.com")));
}

#[test]
fn open_loop_holds_its_rate_for_its_duration() {
    let host = Upstream::start("any", Behaviour::status(200)).expect("upstream");
    let mut options = options(host.addr(), open(200.0), None);
    options.duration = Some(Duration::from_secs(1));
    let mut calls = 0;
    let mut last = None;
    let report = replay::run(&options, &Arc::new(AtomicBool::new(false)), |p| {
        calls += 1;
        last = Some(*p);
    })
    .expect("replay runs");
    // Request i is due at i / 200 s: exactly 200 fall within the second.
    assert_eq!(report.requests(), 200);
    assert_eq!(host.attempts(), 200);
    assert!(report.complete);
    let rate = report.achieved_rate();
    assert!((180.0..=205.0).contains(&rate), "achieved {rate}/s");
    let seconds = report.duration.as_secs_f64();
    assert!((0.99..1.5).contains(&seconds), "took {seconds} s");
    let p50 = report.overall.latency_ms(0.5).expect("p50");
    assert!(p50 < 50.0, "p50 {p50} ms");
    // About ten progress calls a second, the last one with everything answered.
    assert!((5..=14).contains(&calls), "{calls} progress calls");
    let last: Progress = last.expect("progress was called");
    assert_eq!((last.sent, last.answered, last.errors), (200, 200, 0));
    assert_eq!(last.planned, Some(200));
    assert_eq!(last.fraction(), Some(1.0));
}

/// A host that serves one request at a time, 50 ms each: at 50 requests a second it
/// falls behind by 30 ms per request.
fn serial_host() -> Upstream {
    let lock = Arc::new(Mutex::new(()));
    Upstream::with_handler(
        "serial",
        handler(move |_| {
            let _serving = lock.lock().expect("lock");
            thread::sleep(Duration::from_millis(50));
            respond(200, Duration::ZERO)
        }),
    )
    .expect("upstream")
}

#[test]
fn open_loop_latency_counts_the_queue_a_slow_server_causes() {
    let host = serial_host();
    // Closed loop: one request at a time sees only the 50 ms service time...
    let report = run(&options(host.addr(), closed(1), Some(8)));
    let closed_max = report.overall.max_ms().expect("max");
    assert!(
        (45.0..300.0).contains(&closed_max),
        "closed max {closed_max} ms"
    );

    // ...while users arriving at 50/s queue behind each other. Request k is due at
    // 20k ms but done no earlier than 50(k + 1) ms: its latency is at least
    // 50 + 30k ms, which only a latency from the intended send time shows.
    let report = run(&options(host.addr(), open(50.0), Some(40)));
    assert_eq!(report.overall.responses(), 40);
    let p50 = report.overall.latency_ms(0.5).expect("p50");
    let max = report.overall.max_ms().expect("max");
    assert!(p50 >= 500.0, "open p50 {p50} ms");
    assert!(max >= 1100.0, "open max {max} ms");
    assert!(
        max > 10.0 * closed_max,
        "open max {max} vs closed {closed_max}"
    );
}

#[test]
fn statuses_are_counted_per_route() {
    let host = Upstream::with_handler(
        "mixed",
        handler(|attempt| {
            let status = if attempt.path.starts_with("/api/v1/orders/") {
                503
            } else {
                200
            };
            respond(status, Duration::ZERO)
        }),
    )
    .expect("upstream");
    let report = run(&options(host.addr(), closed(3), Some(60)));
    let json = report.to_json();
    assert_eq!(json["statuses"], json!({"200": 50, "503": 10}));
    assert_eq!(json["routes"]["orders"]["statuses"], json!({"503": 10}));
    for route in [
        "customers",
        "products",
        "payments",
        "recommendations",
        "saga",
    ] {
        assert_eq!(
            json["routes"][route]["statuses"],
            json!({"200": 10}),
            "{route}"
        );
    }
    assert_eq!(
        json["attempts"],
        json!({"seen": 0, "total": 0, "mean": null})
    );
}

#[test]
fn connect_errors_are_counted_when_nothing_listens() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let report = run(&options(addr, closed(2), Some(10)));
    let json = report.to_json();
    assert_eq!(json["requests"], json!(10));
    assert_eq!(json["responses"], json!(0));
    assert_eq!(json["errors"], json!(10));
    assert_eq!(json["error_kinds"], json!({"connect_refused": 10}));
    assert_eq!(json["latency_ms"]["p50"], json!(null));
    assert_eq!(json["complete"], json!(true));
    assert!(report.summary().contains("connect_refused: 10"));
}

#[test]
fn a_server_that_never_answers_times_out() {
    let host = Upstream::with_handler("hang", handler(|_| Reply::Hang)).expect("upstream");
    let mut options = options(host.addr(), closed(2), Some(2));
    options.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let report = run(&options);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(report.to_json()["error_kinds"], json!({"timeout": 2}));
}

#[test]
fn the_stop_flag_ends_a_long_run_with_a_partial_report() {
    let host = Upstream::start("any", Behaviour::status(200)).expect("upstream");
    // Open loop, a minute long: stopped from the progress hook once 20 are sent.
    let stop = Arc::new(AtomicBool::new(false));
    let mut options = options(host.addr(), open(100.0), None);
    options.duration = Some(Duration::from_secs(60));
    let started = Instant::now();
    let report = replay::run(&options, &stop, |p| {
        if p.sent >= 20 {
            stop.store(true, Ordering::SeqCst);
        }
    })
    .expect("replay runs");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!report.complete);
    let json = report.to_json();
    assert_eq!(json["complete"], json!(false));
    let requests = report.requests();
    assert!((20..100).contains(&requests), "{requests} requests");
    assert_eq!(report.overall.responses(), requests);
    assert!(report.summary().contains("stopped early"));

    // Closed loop with a huge count, stopped from another thread.
    let stop = Arc::new(AtomicBool::new(false));
    let setter = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            stop.store(true, Ordering::SeqCst);
        })
    };
    let options = self::options(host.addr(), closed(2), Some(10_000_000));
    let report = replay::run(&options, &stop, |_| {}).expect("replay runs");
    setter.join().expect("setter");
    assert!(!report.complete);
    assert!(report.requests() > 0);
    assert!(report.requests() < 10_000_000);
}

#[test]
fn a_stopped_run_waits_only_the_grace_for_requests_a_server_holds() {
    let host = Upstream::with_handler("hang", handler(|_| Reply::Hang)).expect("upstream");
    for load in [closed(3), open(50.0)] {
        let stop = Arc::new(AtomicBool::new(false));
        let mut options = options(host.addr(), load, Some(1_000));
        options.timeout = Duration::from_secs(30);
        let started = Instant::now();
        let report = replay::run(&options, &stop, |p| {
            if p.sent >= 3 {
                stop.store(true, Ordering::SeqCst);
            }
        })
        .expect("replay runs");
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "{load:?}: stopped after {took:?}"
        );
        assert!(!report.complete);
        assert_eq!(
            report.overall.requests(),
            0,
            "{load:?}: nothing was answered"
        );
        assert!(
            report.unfinished >= 3,
            "{load:?}: {} unfinished",
            report.unfinished
        );
    }
}

/// The longest a thread that asks to sleep [`PROBE_NAP`] oversleeps while `f` runs:
/// how late this machine wakes a thread that is due, at the moment of the run.
fn with_scheduling_delay<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    const PROBE_NAP: Duration = Duration::from_millis(5);
    let done = Arc::new(AtomicBool::new(false));
    let probe = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut worst = Duration::ZERO;
            while !done.load(Ordering::SeqCst) {
                let asleep = Instant::now();
                thread::sleep(PROBE_NAP);
                worst = worst.max(asleep.elapsed().saturating_sub(PROBE_NAP));
            }
            worst
        })
    };
    let value = f();
    done.store(true, Ordering::SeqCst);
    (value, probe.join().expect("the probe thread"))
}

/// Each request of the recorded file arrived at its offset (divided by `speed`): never
/// before it, and not later than the run's own lateness allows.
///
/// A request is sent at `start + offset / speed` at the earliest, and `start` is after
/// `before` (taken just before the run), so `arrival >= before + offset / speed` holds
/// exactly however loaded the machine is: a replay that sends early always fails it.
/// Lateness is where a busy machine shows (a worker thread preempted, the upstream's
/// thread woken late), so the upper bound is taken from the first request, due at 0
/// (which absorbs the run's start-up and first connection), plus a margin made of a
/// fixed 100 ms and twice the scheduling delay a probe thread measured during this
/// very run. On a quiet machine that is about 100 ms, well under the gaps this test
/// tells apart (ignoring `speed` makes the last request 225 ms late at speed 2); on a
/// loaded one the margin grows with the measured delay instead of failing. Requests
/// are matched by path, not by arrival order, which a stall may swap.
fn assert_recorded_offsets(
    arrivals: &[(String, Instant)],
    before: Instant,
    scheduling_delay: Duration,
    speed: f64,
) {
    let recorded = [
        ("/api/v1/orders/1", 0),
        ("/api/v1/payments", 150),
        ("/api/v1/saga/9", 300),
        ("/elsewhere", 450),
    ];
    assert_eq!(arrivals.len(), recorded.len(), "{arrivals:?}");
    let arrival = |path: &str| {
        arrivals
            .iter()
            .find(|(seen, _)| seen == path)
            .map(|&(_, at)| at)
            .unwrap_or_else(|| panic!("{path} never arrived: {arrivals:?}"))
    };
    let first = arrival(recorded[0].0);
    let margin = Duration::from_millis(100) + scheduling_delay * 2;
    for (path, at_ms) in recorded {
        let due = Duration::from_millis(at_ms).div_f64(speed);
        let at = arrival(path);
        assert!(
            at.duration_since(before) >= due,
            "{path} arrived {:?} after the run began, before its offset {due:?}",
            at.duration_since(before)
        );
        let late = at.duration_since(first).saturating_sub(due);
        assert!(
            late <= margin,
            "{path} arrived {late:?} after its offset {due:?} (counted from the first \
             request), more than the {margin:?} allowed with the {scheduling_delay:?} \
             scheduling delay measured during the run (speed {speed})"
        );
    }
}

#[test]
fn a_file_is_replayed_at_its_recorded_offsets() {
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&arrivals);
    let host = Upstream::with_handler(
        "recorder",
        handler(move |attempt| {
            let arrived = Instant::now();
            seen.lock()
                .expect("lock")
                .push((attempt.path.clone(), arrived));
            respond(200, Duration::ZERO)
        }),
    )
    .expect("upstream");
    let path = temp_file(
        "replay-recorded.jsonl",
        r#"# four requests, 150 ms apart
{"path": "/api/v1/orders/1", "at_ms": 0}
{"method": "POST", "path": "/api/v1/payments", "headers": {"x-test": "yes"}, "body": "{\"amount\": 5}", "at_ms": 150}
{"path": "/api/v1/saga/9", "at_ms": 300}

{"path": "/elsewhere", "at_ms": 450}
"#,
    );
    let mut options = options(
        host.addr(),
        Load::Open {
            rate_per_second: None,
        },
        None,
    );
    options.source = Source::File(path);
    let before = Instant::now();
    let (report, delay) = with_scheduling_delay(|| run(&options));
    assert_eq!(report.requests(), 4);
    assert!(report.complete);
    assert_recorded_offsets(&arrivals.lock().expect("lock"), before, delay, 1.0);
    let attempts = host.seen();
    let payment = attempts
        .iter()
        .find(|a| a.path == "/api/v1/payments")
        .expect("the POST arrived");
    assert_eq!(payment.method, "POST");
    assert_eq!(payment.header("x-test"), Some("yes"));
    assert_eq!(payment.body, br#"{"amount": 5}"#.to_vec());
    let names: Vec<_> = report.routes().map(|(n, _)| n.to_owned()).collect();
    assert_eq!(names, ["orders", "payments", "saga", "other"]);
    assert_eq!(report.to_json()["rate"], json!(null));

    // Twice as fast: the same requests, at half the offsets.
    arrivals.lock().expect("lock").clear();
    options.speed = 2.0;
    let before = Instant::now();
    let (report, delay) = with_scheduling_delay(|| run(&options));
    assert_eq!(report.requests(), 4);
    assert_recorded_offsets(&arrivals.lock().expect("lock"), before, delay, 2.0);
}

#[test]
fn connections_are_kept_alive_and_reused() {
    let host = Upstream::start("any", Behaviour::status(200)).expect("upstream");
    let report = run(&options(host.addr(), closed(4), Some(400)));
    assert_eq!(report.overall.responses(), 400);
    assert_eq!(host.attempts(), 400);
    assert!(
        host.connections() <= 4,
        "{} connections",
        host.connections()
    );
    assert_eq!(report.connections, host.connections());
    assert_eq!(report.to_json()["connections"], json!(host.connections()));

    // Fewer connections than clients: they wait for one, and none more is opened.
    let host = Upstream::start("any", Behaviour::status(200)).expect("upstream");
    let mut few = options(host.addr(), closed(8), Some(200));
    few.connections = Some(2);
    let report = run(&few);
    assert_eq!(report.overall.responses(), 200);
    assert!(
        host.connections() <= 2,
        "{} connections",
        host.connections()
    );
}

#[test]
fn worker_threads_share_the_run_and_its_connections() {
    let host = Upstream::start("any", Behaviour::status(200)).expect("upstream");
    let mut closed_run = options(host.addr(), closed(4), Some(300));
    closed_run.threads = 2;
    let report = run(&closed_run);
    assert_eq!(report.requests(), 300);
    assert_eq!(report.overall.responses(), 300);
    assert_eq!(host.attempts(), 300);
    assert!(
        host.connections() <= 4,
        "{} connections",
        host.connections()
    );

    let host = Upstream::start("any", Behaviour::status(200)).expect("upstream");
    let mut open_run = options(host.addr(), open(400.0), Some(200));
    open_run.threads = 3;
    let report = run(&open_run);
    assert_eq!(
        report.requests(),
        200,
        "every request once, whichever thread"
    );
    assert_eq!(host.attempts(), 200);
    assert!(report.complete);
}

/// The local mesh with the filter, serving HTTPS with a certificate for
/// api.c4ang.com signed by a CA of its own.
fn tls_mesh(name: &str) -> (LocalMesh, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let certificates = c4mesh_mesh::tls::generate(&dir, "api.c4ang.com").expect("certificates");
    let ca = certificates.ca.clone();
    let mesh = LocalMesh::start(MeshOptions {
        tls: Some(certificates),
        ..MeshOptions::gateway(Wasm::filter("").expect("filter"))
    })
    .expect("local mesh with HTTPS");
    (mesh, ca)
}

fn https_options(mesh: &LocalMesh, host: &str, settings: Settings, count: u64) -> Options {
    let url = mesh.envoy.tls_url().expect("an HTTPS listener");
    let mut options = Options::new(Endpoint::parse(&url, Some(host)).expect("endpoint"));
    options.settings = settings;
    options.load = closed(2);
    options.count = Some(count);
    options
}

#[test]
fn https_is_verified_for_the_requests_host_and_failures_are_counted_by_kind() {
    let (mesh, ca) = tls_mesh("replay-https");
    let trusted = Settings {
        cacert: Some(ca.clone()),
        ..Settings::default()
    };
    let report = run(&https_options(&mesh, "api.c4ang.com", trusted.clone(), 40));
    assert_eq!(
        report.to_json()["statuses"],
        json!({"200": 40}),
        "{:#}",
        report.to_json()
    );

    // Without the CA: refused, counted, no crash.
    let report = run(&https_options(
        &mesh,
        "api.c4ang.com",
        Settings::default(),
        6,
    ));
    assert_eq!(
        report.to_json()["error_kinds"],
        json!({"tls_unknown_ca": 6})
    );

    // --insecure: accepted whatever the certificate.
    let insecure = Settings {
        insecure: true,
        ..Settings::default()
    };
    let report = run(&https_options(&mesh, "api.c4ang.com", insecure, 6));
    assert_eq!(report.to_json()["statuses"], json!({"200": 6}));

    // Another name than the certificate's: refused even with the CA trusted.
    let report = run(&https_options(&mesh, "shop.c4ang.com", trusted, 6));
    assert_eq!(
        report.to_json()["error_kinds"],
        json!({"tls_name_mismatch": 6})
    );

    // Something that does not speak TLS at all.
    let plain = mesh.envoy.url().replace("http://", "https://");
    let mut options = Options::new(Endpoint::parse(&plain, Some("api.c4ang.com")).expect("url"));
    options.count = Some(3);
    let report = run(&options);
    assert_eq!(report.to_json()["error_kinds"], json!({"tls_handshake": 3}));
}

#[test]
fn http2_by_alpn_over_tls_and_by_prior_knowledge_in_clear_text() {
    let (mesh, ca) = tls_mesh("replay-h2");
    let h2_connections = || {
        mesh.envoy
            .stat("http.ingress.downstream_cx_http2_total")
            .expect("stats")
            .unwrap_or(0)
    };
    let trusted = Settings {
        cacert: Some(ca),
        ..Settings::default()
    };
    let mut alpn = https_options(&mesh, "api.c4ang.com", trusted, 60);
    alpn.load = closed(6);
    alpn.connections = Some(2);
    let report = run(&alpn);
    assert_eq!(report.to_json()["statuses"], json!({"200": 60}));
    assert_eq!(
        report.connections, 2,
        "six streams share two HTTP/2 connections"
    );
    assert_eq!(h2_connections(), 2, "ALPN picked h2");

    let mut h2c = options(mesh.envoy.listener, closed(4), Some(40));
    h2c.settings.protocol = Protocol::Http2;
    h2c.connections = Some(1);
    let report = run(&h2c);
    assert_eq!(report.to_json()["statuses"], json!({"200": 40}));
    assert_eq!(h2_connections(), 3, "one more, in clear text");

    let mut http1 = https_options(&mesh, "api.c4ang.com", alpn.settings.clone(), 10);
    http1.settings.protocol = Protocol::Http1;
    let report = run(&http1);
    assert_eq!(report.to_json()["statuses"], json!({"200": 10}));
    assert_eq!(h2_connections(), 3, "HTTP/1.1 when asked");
}

#[test]
fn access_log_lines_replay_and_cycle() {
    let host = Upstream::start("any", Behaviour::status(200)).expect("upstream");
    let path = temp_file(
        "replay-access.log",
        r#"{"start_time":"2024-05-01T12:00:00.000Z","method":"GET","path":"/api/v1/products/3","authority":"shop.c4ang.com","response_code":200}
{"start_time":"2024-05-01T12:00:00.020Z","method":"DELETE","path":"/api/v1/customers/4","authority":"api.c4ang.com","response_code":204}
"#,
    );
    let mut options = options(host.addr(), closed(1), Some(5));
    options.source = Source::File(path);
    let report = run(&options);
    assert_eq!(report.requests(), 5);
    let attempts = host.seen();
    let sent: Vec<_> = attempts
        .iter()
        .map(|a| {
            (
                a.method.as_str(),
                a.path.as_str(),
                a.header("host").unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        sent[..3],
        [
            ("GET", "/api/v1/products/3", "shop.c4ang.com"),
            ("DELETE", "/api/v1/customers/4", "api.c4ang.com"),
            ("GET", "/api/v1/products/3", "shop.c4ang.com"),
        ]
    );
}

#[test]
fn a_bad_file_is_an_error_before_anything_is_sent() {
    let path = temp_file(
        "replay-bad.jsonl",
        "{\"path\": \"/api/v1/orders/1\"}\n{\"path\": 7}\n",
    );
    let mut options = options("127.0.0.1:9".parse().expect("addr"), closed(1), None);
    options.source = Source::File(path);
    let err =
        replay::run(&options, &Arc::new(AtomicBool::new(false)), |_| {}).expect_err("bad line");
    let message = err.to_string();
    assert!(message.contains("replay-bad.jsonl:2: "), "{message}");
}

#[test]
fn the_mix_through_envoy_and_the_filter() {
    let mesh = LocalMesh::with_filter(r#"{"debug_headers": true}"#).expect("local mesh");
    let options = options(mesh.envoy.listener, closed(4), Some(120));
    let report = run(&options);
    let json = report.to_json();
    assert_eq!(json["statuses"], json!({"200": 120}), "{json:#}");
    assert_eq!(json["errors"], json!(0));
    let routes = json["routes"].as_object().expect("routes");
    let names: Vec<_> = routes.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "customers",
            "orders",
            "payments",
            "products",
            "recommendations",
            "saga"
        ]
    );
    for (name, stats) in routes {
        assert_eq!(stats["statuses"], json!({"200": 20}), "{name}");
    }
    assert_eq!(
        json["attempts"],
        json!({"seen": 120, "total": 120, "mean": 1.0})
    );
    for route in [
        "customers",
        "orders",
        "products",
        "payments",
        "recommendations",
        "saga",
    ] {
        assert_eq!(mesh.attempts(route), 20, "{route}");
    }
}

/// The latency histogram a report carries as `histograms.all`, decoded on its own.
fn histogram_of(report: &serde_json::Value) -> hdrhistogram::Histogram<u64> {
    use base64::Engine as _;
    let encoded = report["histograms"]["all"]
        .as_str()
        .expect("histograms.all");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .expect("a V2 histogram")
}

/// A latency in µs as the report writes it: milliseconds with 3 decimals.
fn ms_of(micros: u64) -> serde_json::Value {
    json!((micros as f64 / 1000.0 * 1000.0).round() / 1000.0)
}

#[test]
fn four_shards_merge_into_the_report_of_every_sample() {
    const SHARDS: u32 = 4;
    const RATE: f64 = 400.0;
    let mesh = LocalMesh::with_filter("{}").expect("local mesh");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("replay-shards");
    std::fs::create_dir_all(&dir).expect("report directory");
    // The four shards side by side, each given the total rate and its --shard.
    let runs: Vec<_> = (0..SHARDS)
        .map(|index| {
            let mut options = options(mesh.envoy.listener, open(RATE), None);
            options.duration = Some(Duration::from_secs(1));
            options.shard = replay::Shard::new(index, SHARDS).expect("shard");
            thread::spawn(move || run(&options))
        })
        .collect();
    let mut files = Vec::new();
    let mut shards = Vec::new();
    for (index, handle) in runs.into_iter().enumerate() {
        let report = handle.join().expect("a shard ran");
        let json = report.to_json();
        assert_eq!(json["rate"], json!(RATE / f64::from(SHARDS)), "{json:#}");
        assert_eq!(json["shard"], json!(format!("{index}/{SHARDS}")));
        assert_eq!(report.requests(), 100, "{json:#}");
        let file = dir.join(format!("shard-{index}.json"));
        let text = serde_json::to_string_pretty(&json).expect("report text");
        std::fs::write(&file, text).expect("writing a report");
        files.push(file);
        shards.push(json);
    }

    // Merged by the command, gated on the merged numbers.
    let paths: Vec<&str> = files.iter().map(|f| f.to_str().expect("path")).collect();
    let mut args = vec!["replay", "merge"];
    args.extend(&paths);
    args.extend(["--slo", "p99.9<10s", "--slo", "p50<1us", "--json"]);
    let (code, stdout, stderr) = command::c4mesh(&args);
    assert_eq!(code, 3, "the p50<1us gate fails: {stderr}");
    let merged: serde_json::Value = serde_json::from_str(&stdout).expect("merged JSON");
    let passes: Vec<_> = merged["slo"]
        .as_array()
        .expect("verdicts")
        .iter()
        .map(|v| v["pass"].clone())
        .collect();
    assert_eq!(passes, [json!(true), json!(false)]);

    // Its percentiles are those of one histogram of every sample, built here from
    // the four shards' own histograms.
    let mut every =
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("histogram");
    let mut max = 0;
    for shard in &shards {
        every.add(histogram_of(shard)).expect("same bounds");
        let shard_max = shard["latency_ms"]["max"].as_f64().expect("max");
        max = max.max((shard_max * 1000.0).round() as u64);
    }
    assert_eq!(every.len(), 400);
    assert_eq!(histogram_of(&merged), every);
    for (key, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)] {
        assert_eq!(
            merged["latency_ms"][key],
            ms_of(every.value_at_quantile(q).min(max)),
            "{key}"
        );
    }
    assert_eq!(merged["latency_ms"]["max"], ms_of(max));

    // Totals add up.
    let sum = |key: &str| -> u64 { shards.iter().map(|s| s[key].as_u64().expect(key)).sum() };
    for key in [
        "requests",
        "responses",
        "errors",
        "unfinished",
        "connections",
    ] {
        assert_eq!(merged[key], json!(sum(key)), "{key}");
    }
    assert_eq!(merged["requests"], json!(400));
    assert_eq!(merged["statuses"], json!({"200": 400}), "{merged:#}");
    let routes = [
        "customers",
        "orders",
        "payments",
        "products",
        "recommendations",
        "saga",
    ];
    for route in routes {
        let sent: u64 = shards
            .iter()
            .map(|s| s["routes"][route]["requests"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(merged["routes"][route]["requests"], json!(sent), "{route}");
    }
    let received: u64 = routes.iter().map(|route| mesh.attempts(route)).sum();
    assert_eq!(received, 400);

    // The rates are sums: the configured one, and the achieved one of each shard over
    // its own duration; the duration is the longest shard's.
    assert_eq!(merged["rate"], json!(RATE));
    let reports: Vec<(String, Report)> = files
        .iter()
        .map(|f| {
            (
                f.display().to_string(),
                replay::read_report(f).expect("reads"),
            )
        })
        .collect();
    let achieved: f64 = reports.iter().map(|(_, r)| r.achieved_rate()).sum();
    let library = replay::merge(&reports).expect("merges");
    assert_eq!(library.achieved_rate(), achieved);
    assert_eq!(
        merged["achieved_rate"],
        json!((achieved * 1000.0).round() / 1000.0)
    );
    let longest = reports
        .iter()
        .map(|(_, r)| r.duration)
        .max()
        .expect("reports");
    assert_eq!(library.duration, longest);
    assert_eq!(merged["merged"].as_array().map(Vec::len), Some(4));

    // A file that is not a report is named, with what is wrong.
    let log = dir.join("not-a-report.json");
    std::fs::write(&log, "sent 100 answered 100").expect("writing");
    let (code, _, stderr) =
        command::c4mesh(&["replay", "merge", paths[0], log.to_str().expect("path")]);
    assert_eq!(code, 1);
    assert!(stderr.contains("not-a-report.json: not JSON"), "{stderr}");
    let (code, _, stderr) = command::c4mesh(&["replay", "merge", paths[0], paths[0]]);
    assert_eq!(code, 1);
    assert!(stderr.contains("shard 0/4 again"), "{stderr}");
}
