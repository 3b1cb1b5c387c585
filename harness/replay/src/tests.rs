//! Unit tests of the parts that need no network: file parsing, route
//! classification, plans, and the report's shape. The loops are tested against
//! real hosts in `harness/cli/tests/replay.rs`.

use super::load::Plan;
use super::merge::{merge, read_report, MergeError, ReportError};
use super::report::{Mode, Report, Stats};
use super::routes::Routes;
use super::shard::{Shard, ShardError};
use super::slo::{Guard, Slo};
use super::source::{self, mix_request, parse, parse_rfc3339, ReplayRequest, Source, Traffic};
use super::{Error, Load, Options, OptionsError, Progress};
use c4mesh_live::{Answer, Endpoint, ErrorKind};
use serde_json::json;
use std::time::Duration;

fn ms(n: u64) -> Option<Duration> {
    Some(Duration::from_millis(n))
}

#[test]
fn request_lines_parse_with_defaults_and_skip_comments() {
    let text = r#"
# a comment
{"path": "/api/v1/orders/1"}

{"method": "POST", "path": "/api/v1/payments", "headers": {"x-a": "1", "content-type": "application/json"}, "body": "{\"amount\":5}"}
"#;
    let requests = parse("traffic.jsonl", text).expect("parses");
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0], ReplayRequest::get("/api/v1/orders/1"));
    assert_eq!(requests[1].method, "POST");
    assert_eq!(
        requests[1].headers,
        vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-a".to_owned(), "1".to_owned())
        ]
    );
    assert_eq!(requests[1].body, br#"{"amount":5}"#.to_vec());
    assert_eq!(requests[1].at, None);
}

#[test]
fn request_lines_keep_at_ms_offsets_sorted() {
    let text = r#"{"path": "/a", "at_ms": 250}
{"path": "/b", "at_ms": 0}
{"path": "/c", "at_ms": 100.5}"#;
    let requests = parse("t.jsonl", text).expect("parses");
    let paths: Vec<_> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/b", "/c", "/a"]);
    assert_eq!(requests[0].at, ms(0));
    assert_eq!(requests[1].at, Some(Duration::from_micros(100_500)));
    assert_eq!(requests[2].at, ms(250));
}

#[test]
fn access_log_lines_get_offsets_from_the_earliest_start_time() {
    // Istio's default JSON access-log format (abridged), written in end order.
    let text = r#"{"start_time":"2024-05-01T12:00:00.350Z","method":"POST","path":"/api/v1/orders","authority":"api.c4ang.com","response_code":201,"duration":3,"upstream_host":"10.0.0.1:8080"}
{"start_time":"2024-05-01T12:00:00.100Z","method":"GET","path":"/api/v1/customers/7?full=1","authority":"api.c4ang.com","response_code":200}
{"start_time":"2024-05-01T14:00:00.200+02:00","method":"GET","path":"/api/v1/saga/3","authority":"-","response_code":503}"#;
    let requests = parse("access.log", text).expect("parses");
    let summary: Vec<_> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.at))
        .collect();
    assert_eq!(
        summary,
        [
            ("GET", "/api/v1/customers/7?full=1", ms(0)),
            ("GET", "/api/v1/saga/3", ms(100)),
            ("POST", "/api/v1/orders", ms(250)),
        ]
    );
    assert_eq!(
        requests[0].headers,
        vec![("host".to_owned(), "api.c4ang.com".to_owned())]
    );
    // `"-"` is Envoy's "no value": no Host header of its own.
    assert!(requests[1].headers.is_empty());
}

#[test]
fn an_access_log_line_without_start_time_is_recognised_by_response_code() {
    let text =
        r#"{"method":"GET","path":"/api/v1/products/1","response_code":200,"bytes_sent":12}"#;
    let requests = parse("a.log", text).expect("parses");
    assert_eq!(requests, vec![ReplayRequest::get("/api/v1/products/1")]);
}

fn line_error(text: &str) -> String {
    match parse("traffic.jsonl", text) {
        Err(err @ (Error::Line { .. } | Error::LineJson { .. })) => c4mesh_live::describe(&err),
        other => panic!("expected a line error, got {other:?}"),
    }
}

#[test]
fn a_bad_line_names_file_and_line() {
    let good = r#"{"path": "/api/v1/orders/1"}"#;
    let message = line_error(&format!("{good}\n# note\n\n{good}\n{{not json\n"));
    assert!(
        message.starts_with("traffic.jsonl:5: invalid JSON"),
        "{message}"
    );

    let message = line_error(&format!("{good}\n{{\"pth\": \"/x\", \"path\": \"/y\"}}"));
    assert!(message.starts_with("traffic.jsonl:2: "), "{message}");
    assert!(message.contains("unknown field `pth`"), "{message}");

    let message = line_error("[1, 2]");
    assert_eq!(message, "traffic.jsonl:1: expected a JSON object");

    let message = line_error(r#"{"method": "GET"}"#);
    assert!(message.contains("no \"path\""), "{message}");

    let message = line_error(r#"{"path": "/x", "at_ms": -5}"#);
    assert!(message.starts_with("traffic.jsonl:1: at_ms"), "{message}");

    let message = line_error(r#"{"path": "/x", "headers": {"x-a": "1\r\nx-injected: 1"}}"#);
    assert!(message.contains("line break"), "{message}");

    let message = line_error(r#"{"path": "no-slash"}"#);
    assert!(message.starts_with("traffic.jsonl:1: path"), "{message}");

    let message = line_error(r#"{"method": "GET", "path": "/x", "start_time": "yesterday"}"#);
    assert!(message.contains("start_time: \"yesterday\""), "{message}");
}

#[test]
fn offsets_are_all_or_nothing() {
    let text = "{\"path\": \"/a\", \"at_ms\": 0}\n{\"path\": \"/b\"}\n";
    let message = line_error(text);
    assert!(
        message.starts_with("traffic.jsonl:2: no time offset"),
        "{message}"
    );
    assert!(message.contains("line 1 has one"), "{message}");
}

#[test]
fn a_file_with_no_requests_is_an_error() {
    let err = parse("empty.jsonl", "# nothing\n\n").expect_err("empty");
    assert!(matches!(err, Error::NoRequests { .. }));
    assert!(err.to_string().starts_with("empty.jsonl: no requests"));
    let missing =
        source::read_file(std::path::Path::new("/nonexistent/t.jsonl")).expect_err("missing file");
    assert!(missing.to_string().starts_with("/nonexistent/t.jsonl: "));
}

#[test]
fn rfc3339_times() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_rfc3339("2024-05-01T12:00:00.123Z"),
        Some(1_714_564_800_123_000)
    );
    assert_eq!(
        parse_rfc3339("2024-05-01T14:00:00.123456789+02:00"),
        Some(1_714_564_800_123_456)
    );
    assert_eq!(
        parse_rfc3339("2024-05-01t11:30:00.123-00:30"),
        Some(1_714_564_800_123_000)
    );
    assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Some(-1_000_000));
    assert_eq!(
        parse_rfc3339("2000-02-29T00:00:00Z"),
        Some(951_782_400_000_000)
    );
    for bad in [
        "",
        "2024-05-01",
        "2024-05-01T12:00:00",
        "2024-13-01T12:00:00Z",
        "2024-05-01T12:00:00.Z",
        "2024-05-01T12:00:00Zjunk",
        "2024-05-01T25:00:00Z",
        "2024/05/01T12:00:00Z",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad}");
    }
}

#[test]
fn routes_are_classified_segment_aware() {
    let routes = Routes::defaults();
    let name = |path: &str| routes.name(routes.classify(path)).to_owned();
    assert_eq!(routes.len(), 6);
    for route in [
        "customers",
        "orders",
        "products",
        "payments",
        "recommendations",
        "saga",
    ] {
        assert_eq!(name(&format!("/api/v1/{route}")), route);
        assert_eq!(name(&format!("/api/v1/{route}/42")), route);
        assert_eq!(name(&format!("/api/v1/{route}?page=2")), route);
        assert_eq!(name(&format!("/api/v1/{route}/1/items?x=/y")), route);
    }
    for other in [
        "/api/v1/ordersX",
        "/api/v1/orders-x/1",
        "/api/v1",
        "/",
        "/api/v2/orders",
    ] {
        assert_eq!(name(other), "other", "{other}");
    }
}

#[test]
fn the_mix_is_round_robin_and_deterministic() {
    let routes = Routes::defaults();
    let paths: Vec<_> = (0..8).map(|n| mix_request(&routes, n).path).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/customers/1",
            "/api/v1/orders/1",
            "/api/v1/products/1",
            "/api/v1/payments/1",
            "/api/v1/recommendations/1",
            "/api/v1/saga/1",
            "/api/v1/customers/2",
            "/api/v1/orders/2",
        ]
    );
    let traffic = Traffic::new(&Source::Mix, &routes).expect("mix");
    let names: Vec<_> = (0..6).map(|i| routes.name(traffic.item(i).route)).collect();
    assert_eq!(
        names,
        [
            "customers",
            "orders",
            "products",
            "payments",
            "recommendations",
            "saga"
        ]
    );
    assert_eq!(traffic.len(), None);
    assert!(!traffic.has_offsets());
}

#[test]
fn recorded_offsets_cycle_at_the_files_average_rate() {
    let routes = Routes::defaults();
    let mut requests = vec![
        ReplayRequest::get("/a"),
        ReplayRequest::get("/b"),
        ReplayRequest::get("/c"),
    ];
    for (request, at) in requests.iter_mut().zip([0, 100, 200]) {
        request.at = ms(at);
    }
    let traffic = Traffic::from_requests(&requests, &routes);
    assert!(traffic.has_offsets());
    let offsets: Vec<_> = (0..7).map(|i| traffic.offset(i)).collect();
    assert_eq!(
        offsets,
        [ms(0), ms(100), ms(200), ms(300), ms(400), ms(500), ms(600)]
    );
    let plain = Traffic::from_requests(&[ReplayRequest::get("/a")], &routes);
    assert!(!plain.has_offsets());
    assert_eq!(plain.offset(0), None);
}

fn answer(status: u16, attempts: Option<u64>) -> Result<Answer, ErrorKind> {
    Ok(Answer { status, attempts })
}

#[test]
fn stats_give_percentiles_in_ms_statuses_and_attempts() {
    let mut stats = Stats::new();
    assert_eq!(stats.latency_ms(0.5), None);
    for i in 1..=100u64 {
        stats.record_response(
            Duration::from_micros(i * 1000),
            Answer {
                status: if i <= 95 { 200 } else { 503 },
                attempts: (i % 2 == 0).then_some(if i == 100 { 3 } else { 1 }),
            },
        );
    }
    stats.record_error(ErrorKind::Timeout);
    let p50 = stats.latency_ms(0.5).expect("p50");
    assert!((49.9..=50.1).contains(&p50), "{p50}");
    let p99 = stats.latency_ms(0.99).expect("p99");
    assert!((98.9..=99.1).contains(&p99), "{p99}");
    let max = stats.max_ms().expect("max");
    assert!((99.9..=100.1).contains(&max), "{max}");
    assert_eq!(stats.requests(), 101);
    let json = stats.to_json();
    assert_eq!(json["statuses"], json!({"200": 95, "503": 5}));
    assert_eq!(json["error_kinds"], json!({"timeout": 1}));
    assert_eq!(
        json["attempts"],
        json!({"seen": 50, "total": 52, "mean": 1.04})
    );
    assert_eq!(json["responses"], json!(100));
    assert_eq!(json["errors"], json!(1));
    let keys: Vec<_> = json["latency_ms"]
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, ["max", "p50", "p90", "p99", "p99.9"]);
}

#[test]
fn the_report_has_a_stable_shape() {
    let routes = Routes::defaults();
    let endpoint = Endpoint::parse("http://127.0.0.1:8080", Some("api.c4ang.com")).expect("url");
    let mut report = Report::new(&endpoint, Mode::Open { rate: Some(200.0) }, &routes);
    let orders = routes.classify("/api/v1/orders/1");
    let other = routes.classify("/nowhere");
    report.record(orders, Duration::from_micros(1500), answer(200, Some(1)));
    report.record(orders, Duration::from_micros(2500), answer(503, Some(4)));
    report.record(other, Duration::from_micros(900), answer(404, None));
    report.record(orders, Duration::ZERO, Err(ErrorKind::ConnectRefused));
    report.duration = Duration::from_millis(2000);
    let json = report.to_json();
    let keys: Vec<_> = json.as_object().expect("object").keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "aborted",
            "achieved_rate",
            "attempts",
            "complete",
            "connections",
            "duration_s",
            "duration_us",
            "error_kinds",
            "errors",
            "histograms",
            "host",
            "latency_ms",
            "merged",
            "mode",
            "rate",
            "requests",
            "responses",
            "routes",
            "shard",
            "slo",
            "statuses",
            "target",
            "unfinished",
        ]
    );
    assert_eq!(json["slo"], json!([]));
    assert_eq!(json["aborted"], json!(null));
    assert_eq!(json["target"], json!("http://127.0.0.1:8080"));
    assert_eq!(json["mode"], json!("open"));
    assert_eq!(json["rate"], json!(200.0));
    assert_eq!(json["complete"], json!(true));
    assert_eq!(json["duration_s"], json!(2.0));
    assert_eq!(json["requests"], json!(4));
    assert_eq!(json["achieved_rate"], json!(2.0));
    assert_eq!(json["statuses"], json!({"200": 1, "404": 1, "503": 1}));
    assert_eq!(
        json["attempts"],
        json!({"seen": 2, "total": 5, "mean": 2.5})
    );
    let route_names: Vec<_> = json["routes"]
        .as_object()
        .expect("routes")
        .keys()
        .cloned()
        .collect();
    assert_eq!(route_names, ["orders", "other"]);
    let orders = &json["routes"]["orders"];
    assert_eq!(orders["requests"], json!(3));
    assert_eq!(orders["error_kinds"], json!({"connect_refused": 1}));
    assert_eq!(orders["latency_ms"]["max"], json!(2.5));
    assert_eq!(json["routes"]["other"]["attempts"]["mean"], json!(null));
    // The same report gives the same text.
    assert_eq!(report.to_json().to_string(), json.to_string());

    let summary = report.summary();
    assert!(
        summary.contains("4 requests to http://127.0.0.1:8080"),
        "{summary}"
    );
    assert!(summary.contains("open loop at 200/s"), "{summary}");
    assert!(
        summary.contains("200: 1, 404: 1, 503: 1, connect_refused: 1"),
        "{summary}"
    );
    assert!(summary.contains("p50 "), "{summary}");

    let closed = Report::new(&endpoint, Mode::Closed { concurrency: 8 }, &routes);
    let json = closed.to_json();
    assert_eq!(json["mode"], json!("closed"));
    assert_eq!(json["concurrency"], json!(8));
    assert!(json.get("rate").is_none());
    assert_eq!(json["latency_ms"]["p99"], json!(null));
    assert_eq!(json["routes"], json!({}));
}

#[test]
fn plans_reject_runs_that_mean_nothing() {
    let routes = Routes::defaults();
    let mix = Traffic::new(&Source::Mix, &routes).expect("mix");
    let options = |load: Load, count: Option<u64>| {
        let mut options = Options::new(Endpoint::parse("http://127.0.0.1:1", None).expect("url"));
        options.load = load;
        options.count = count;
        options
    };
    let error = |o: &Options, t: &Traffic| match Plan::new(o, t) {
        Err(err) => err,
        Ok(plan) => panic!("expected an error, got {plan:?}"),
    };
    assert_eq!(
        error(&options(Load::Closed { concurrency: 2 }, None), &mix),
        OptionsError::NoBound
    );
    assert_eq!(
        error(&options(Load::Closed { concurrency: 0 }, Some(1)), &mix),
        OptionsError::Concurrency
    );
    let no_rate = Load::Open {
        rate_per_second: None,
    };
    assert_eq!(
        error(&options(no_rate, Some(1)), &mix),
        OptionsError::NoOffsets
    );
    let zero_rate = Load::Open {
        rate_per_second: Some(0.0),
    };
    assert_eq!(
        error(&options(zero_rate, Some(1)), &mix),
        OptionsError::Rate(0.0)
    );
    // A file without a bound is sent once; with offsets, no rate is needed.
    let mut timed = ReplayRequest::get("/a");
    timed.at = ms(5);
    let file = Traffic::from_requests(&[timed], &routes);
    assert!(Plan::new(&options(no_rate, None), &file).is_ok());
    let mut zero = options(Load::Closed { concurrency: 2 }, Some(1));
    zero.connections = Some(0);
    assert_eq!(error(&zero, &mix), OptionsError::Connections);
    let mut slow = options(no_rate, None);
    slow.speed = 0.0;
    assert_eq!(error(&slow, &file), OptionsError::Speed(0.0));
    // A shard with nothing of the run to send.
    let shard = Shard::new(3, 4).expect("shard");
    let mut few_clients = options(Load::Closed { concurrency: 3 }, Some(8));
    few_clients.shard = shard;
    assert_eq!(
        error(&few_clients, &mix),
        OptionsError::ShardWithoutClients {
            shard,
            concurrency: 3
        }
    );
    let mut few_requests = options(Load::Closed { concurrency: 4 }, Some(3));
    few_requests.shard = shard;
    assert_eq!(
        error(&few_requests, &mix),
        OptionsError::ShardWithoutCount { shard, count: 3 }
    );
    let short = Traffic::from_requests(
        &[ReplayRequest::get("/a"), ReplayRequest::get("/b")],
        &routes,
    );
    assert!(matches!(
        short.shard(shard),
        Err(OptionsError::ShardWithoutRequests { requests: 2, .. })
    ));
}

#[test]
fn a_shard_sends_its_share_of_the_rate_the_clients_and_the_count() {
    let routes = Routes::defaults();
    let mix = Traffic::new(&Source::Mix, &routes).expect("mix");
    let plan = |load: Load, count: Option<u64>, index: u32| {
        let mut options = Options::new(Endpoint::parse("http://127.0.0.1:1", None).expect("url"));
        options.load = load;
        options.count = count;
        options.shard = Shard::new(index, 4).expect("shard");
        Plan::new(&options, &mix).expect("plan")
    };
    let open = Load::Open {
        rate_per_second: Some(1000.0),
    };
    for index in 0..4 {
        assert_eq!(
            plan(open, Some(10), index).mode(),
            Mode::Open { rate: Some(250.0) }
        );
    }
    let clients: Vec<Mode> = (0..4)
        .map(|i| plan(Load::Closed { concurrency: 10 }, Some(100), i).mode())
        .collect();
    assert_eq!(
        clients,
        [3, 3, 2, 2].map(|concurrency| Mode::Closed { concurrency })
    );
}

#[test]
fn a_shard_of_a_file_takes_every_nth_request_at_its_recorded_offset() {
    let routes = Routes::defaults();
    let requests: Vec<ReplayRequest> = (0..6u64)
        .map(|i| {
            let mut request = ReplayRequest::get(&format!("/api/v1/orders/{i}"));
            request.at = ms(i * 100);
            request
        })
        .collect();
    let whole = Traffic::from_requests(&requests, &routes);
    let shard = Traffic::from_requests(&requests, &routes)
        .shard(Shard::new(1, 2).expect("shard"))
        .expect("lines");
    assert_eq!(shard.len(), Some(3));
    let paths: Vec<String> = (0..3).map(|i| shard.item(i).request.path.clone()).collect();
    assert_eq!(
        paths,
        ["/api/v1/orders/1", "/api/v1/orders/3", "/api/v1/orders/5"]
    );
    // Each keeps its recorded time, and the second pass starts a whole file later.
    let offsets: Vec<_> = (0..6).map(|i| shard.offset(i)).collect();
    assert_eq!(
        offsets,
        [ms(100), ms(300), ms(500), ms(700), ms(900), ms(1100)]
    );
    assert_eq!(whole.offset(7), ms(700));
}

#[test]
fn progress_fraction_takes_the_nearer_bound() {
    let progress = Progress {
        sent: 30,
        answered: 20,
        errors: 5,
        elapsed: Duration::from_secs(1),
        planned: Some(100),
        planned_duration: Some(Duration::from_secs(2)),
    };
    assert_eq!(progress.fraction(), Some(0.5));
    let by_count = Progress {
        planned_duration: None,
        ..progress
    };
    assert_eq!(by_count.fraction(), Some(0.25));
    let unbounded = Progress {
        planned: None,
        planned_duration: None,
        ..progress
    };
    assert_eq!(unbounded.fraction(), None);
}

#[test]
fn verdicts_and_the_guards_reason_are_in_the_json_and_the_summary() {
    let routes = Routes::defaults();
    let endpoint = Endpoint::parse("http://127.0.0.1:8080", Some("api.c4ang.com")).expect("url");
    let mut report = Report::new(&endpoint, Mode::Closed { concurrency: 2 }, &routes);
    let orders = routes.classify("/api/v1/orders/1");
    let payments = routes.classify("/api/v1/payments/1");
    for _ in 0..6 {
        report.record(orders, Duration::from_millis(3), answer(200, None));
    }
    report.record(orders, Duration::from_millis(3), answer(502, None));
    report.record(payments, Duration::from_millis(250), answer(200, None));
    report.record(payments, Duration::ZERO, Err(ErrorKind::Reset));
    report.record(orders, Duration::from_millis(3), answer(404, None));
    let gates: Vec<Slo> = [
        "p50<10ms",
        "route=payments:p99<200ms",
        "errors<=20%",
        "route=customers:errors<1%",
    ]
    .iter()
    .map(|text| text.parse().expect("gate"))
    .collect();
    report.slo = gates.iter().map(|gate| gate.evaluate(&report)).collect();
    // 10 finished: a 502 and a reset fail, the 404 does not.
    assert_eq!(report.overall.failed(), 2);
    let json = report.to_json();
    assert_eq!(
        json["slo"],
        json!([
            // The histogram keeps 3 significant digits: 3 ms reads as 3.001.
            {"expr": "p50<10ms", "observed": 3.001, "unit": "ms", "pass": true},
            {"expr": "route=payments:p99<200ms", "observed": 250.0, "unit": "ms", "pass": false},
            {"expr": "errors<=20%", "observed": 20.0, "unit": "%", "pass": true},
            {"expr": "route=customers:errors<1%", "observed": null, "unit": "%", "pass": false},
        ])
    );
    assert!(!report.slo_passed());

    let mut guard = Guard::new("errors>5%/10s".parse().expect("rule"));
    report.aborted = guard.observe(Duration::from_millis(12_345), 40, 15);
    assert!(report.aborted.is_some());
    let json = report.to_json();
    assert_eq!(
        json["aborted"],
        json!({
            "reason": "errors 37.5% > 5% over the last 10 s at 12.3 s",
            "rule": "errors>5%/10s",
            "error_rate": 37.5,
            "requests": 40,
            "failed": 15,
            "window_s": 10.0,
            "at_s": 12.345,
        })
    );
    let summary = report.summary();
    assert!(
        summary.contains("\naborted: errors 37.5% > 5% over the last 10 s at 12.3 s\n"),
        "{summary}"
    );
    assert!(summary.contains("slo: 2 passed, 2 failed\n"), "{summary}");
    assert!(
        summary.contains("  FAIL  route=payments:p99<200ms   observed 250.000 ms\n"),
        "{summary}"
    );
    assert!(
        summary.contains("  FAIL  route=customers:errors<1%  nothing to judge by\n"),
        "{summary}"
    );
}

/// A report of `latencies` (ms) on the orders route, at `rate`, as shard `shard`.
fn shard_report(shard: Option<Shard>, rate: f64, latencies: &[u64], seconds: u64) -> Report {
    let routes = Routes::defaults();
    let endpoint = Endpoint::parse("http://127.0.0.1:8080", Some("api.c4ang.com")).expect("url");
    let mut report = Report::new(&endpoint, Mode::Open { rate: Some(rate) }, &routes);
    let orders = routes.classify("/api/v1/orders/1");
    for &ms in latencies {
        let status = if ms > 40 { 503 } else { 200 };
        report.record(
            orders,
            Duration::from_micros(ms * 1000 + 7),
            answer(status, Some(1)),
        );
    }
    report.record(orders, Duration::ZERO, Err(ErrorKind::Reset));
    report.duration = Duration::from_millis(seconds * 1000 + 3);
    report.connections = 2;
    report.shard = shard;
    report
}

#[test]
fn a_report_reads_back_from_its_json_with_its_histograms() {
    let report = shard_report(
        Some(Shard::new(1, 2).expect("shard")),
        50.0,
        &[1, 5, 9, 60],
        2,
    );
    let json = report.to_json();
    let back = Report::from_json(&json).expect("reads back");
    assert_eq!(back.to_json(), json);
    assert_eq!(back.overall.histogram(), report.overall.histogram());
    assert_eq!(back.duration, report.duration);
    assert_eq!(back.shard, report.shard);
    assert_eq!(json["shard"], json!("1/2"));
    assert_eq!(json["duration_us"], json!(2_003_000));
    assert!(json["histograms"]["all"].is_string());
    assert!(json["histograms"]["routes"]["orders"].is_string());
    assert_eq!(json["merged"], json!([]));
}

#[test]
fn merged_reports_have_every_samples_percentiles_and_summed_counts_and_rates() {
    let a = shard_report(
        Some(Shard::new(0, 2).expect("shard")),
        50.0,
        &[1, 2, 3, 50],
        2,
    );
    let b = shard_report(
        Some(Shard::new(1, 2).expect("shard")),
        50.0,
        &[4, 5, 6, 7, 8, 90],
        3,
    );
    let named = [
        (
            "a.json".to_owned(),
            Report::from_json(&a.to_json()).expect("a"),
        ),
        (
            "b.json".to_owned(),
            Report::from_json(&b.to_json()).expect("b"),
        ),
    ];
    let merged = merge(&named).expect("merges");
    // One report that recorded every sample.
    let all = shard_report(None, 100.0, &[1, 2, 3, 50, 4, 5, 6, 7, 8, 90], 2);
    for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
        assert_eq!(
            merged.overall.latency_micros(q),
            all.overall.latency_micros(q),
            "q {q}"
        );
    }
    assert_eq!(merged.overall.histogram(), all.overall.histogram());
    assert_eq!(merged.overall.max_micros(), Some(90_007));
    assert_eq!(merged.overall.responses(), 10);
    assert_eq!(merged.overall.errors(), 2);
    let json = merged.to_json();
    assert_eq!(json["statuses"], json!({"200": 8, "503": 2}));
    assert_eq!(json["error_kinds"], json!({"reset": 2}));
    assert_eq!(json["connections"], json!(4));
    assert_eq!(json["rate"], json!(100.0));
    assert_eq!(json["shard"], json!(null));
    assert_eq!(json["duration_s"], json!(3.003));
    assert_eq!(
        merged.achieved_rate(),
        a.achieved_rate() + b.achieved_rate()
    );
    assert_eq!(json["merged"][1]["shard"], json!("1/2"));
    assert_eq!(json["merged"][0]["file"], json!("a.json"));
    assert_eq!(json["routes"]["orders"]["requests"], json!(12));
    // The merged report merges again, as one part.
    assert!(Report::from_json(&json).is_ok());
    assert!(
        merged.summary().contains("merged from 2 reports"),
        "{}",
        merged.summary()
    );
}

fn report_error(json: &serde_json::Value) -> ReportError {
    match Report::from_json(json) {
        Err(err) => err,
        Ok(_) => panic!("expected an error"),
    }
}

#[test]
fn a_bad_report_names_the_field_and_what_is_wrong() {
    let good = shard_report(None, 10.0, &[1, 2], 1).to_json();
    let mut missing = good.clone();
    missing
        .as_object_mut()
        .expect("object")
        .remove("duration_us");
    assert!(matches!(
        report_error(&missing),
        ReportError::Field { field, .. } if field == "duration_us"
    ));
    let mut garbled = good.clone();
    garbled["histograms"]["routes"]["orders"] = json!("!!!");
    assert!(matches!(
        report_error(&garbled),
        ReportError::Base64 { field, .. } if field == "histograms.routes.orders"
    ));
    let mut not_hdr = good.clone();
    not_hdr["histograms"]["all"] = json!("AAAA");
    assert!(matches!(
        report_error(&not_hdr),
        ReportError::Histogram { field, .. } if field == "histograms.all"
    ));
    let mut miscounted = good.clone();
    miscounted["responses"] = json!(5);
    assert!(matches!(
        report_error(&miscounted),
        ReportError::Count {
            held: 2,
            responses: 5,
            ..
        }
    ));
    let mut status = good.clone();
    status["routes"]["orders"]["statuses"] = json!({"ok": 2});
    assert!(matches!(
        report_error(&status),
        ReportError::Field { field, .. } if field == "routes.orders.statuses.ok"
    ));
    let mut shard = good;
    shard["shard"] = json!("4/4");
    assert!(matches!(
        report_error(&shard),
        ReportError::Shard {
            source: ShardError::Beyond { index: 4, count: 4 },
            ..
        }
    ));
}

#[test]
fn reports_of_different_runs_do_not_merge() {
    assert!(matches!(merge(&[]), Err(MergeError::Nothing)));
    let shard = |i, n| Some(Shard::new(i, n).expect("shard"));
    let named = |reports: Vec<Report>| -> Vec<(String, Report)> {
        reports
            .into_iter()
            .enumerate()
            .map(|(i, r)| (format!("{i}.json"), r))
            .collect()
    };
    let twice = named(vec![
        shard_report(shard(1, 4), 10.0, &[1], 1),
        shard_report(shard(1, 4), 10.0, &[1], 1),
    ]);
    assert!(matches!(
        merge(&twice),
        Err(MergeError::Duplicate { file, first, .. }) if file == "1.json" && first == "0.json"
    ));
    let counts = named(vec![
        shard_report(shard(0, 4), 10.0, &[1], 1),
        shard_report(shard(1, 2), 10.0, &[1], 1),
    ]);
    assert!(matches!(
        merge(&counts),
        Err(MergeError::Mismatch {
            what: "is shard",
            ..
        })
    ));
    let mut elsewhere = shard_report(shard(1, 4), 10.0, &[1], 1);
    elsewhere.target = "http://127.0.0.1:9090".to_owned();
    let targets = named(vec![shard_report(shard(0, 4), 10.0, &[1], 1), elsewhere]);
    assert!(matches!(
        merge(&targets),
        Err(MergeError::Mismatch {
            what: "targets",
            ..
        })
    ));
    let mut closed = shard_report(shard(1, 4), 10.0, &[1], 1);
    closed.mode = Mode::Closed { concurrency: 2 };
    let paced = named(vec![shard_report(shard(0, 4), 10.0, &[1], 1), closed]);
    let err = merge(&paced).err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("1.json: runs closed loop, but 0.json has open loop at a rate: not shards of one run")
    );
}

#[test]
fn unreadable_and_non_json_files_are_named() {
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let dir = scratch.path();
    let missing = dir.join("missing.json");
    assert!(matches!(
        read_report(&missing),
        Err(MergeError::Read { file, .. }) if file.ends_with("missing.json")
    ));
    let log = dir.join("log.json");
    std::fs::write(&log, "sent 10 answered 10").expect("write");
    let err = read_report(&log).err();
    assert!(matches!(&err, Some(MergeError::Json { file, .. }) if file.ends_with("log.json")));
    let empty = dir.join("empty.json");
    std::fs::write(&empty, "{}").expect("write");
    let err = read_report(&empty).err();
    assert!(matches!(
        &err,
        Some(MergeError::Report {
            source: ReportError::Field { .. },
            ..
        })
    ));
}
