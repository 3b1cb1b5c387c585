use super::*;
use crate::health::Circuit;
use crate::metrics::MetricUpdate;
use crate::path::PathError;

fn worker(json: &str) -> (Worker, MemoryShared) {
    let config = Config::parse(json.as_bytes()).unwrap();
    let mut shared = MemoryShared::default();
    let mut worker = Worker::new(config, 7);
    worker.init_shared(&mut shared);
    (worker, shared)
}

/// Two workers of one proxy: one configuration, one shared store, a handle each.
fn two_workers(json: &str) -> ((Worker, MemoryShared), (Worker, MemoryShared)) {
    let config = Config::parse(json.as_bytes()).unwrap();
    let shared = MemoryShared::default();
    let (mut s1, mut s2) = (shared.handle(), shared.handle());
    let mut w1 = Worker::new(config.clone(), 1);
    let mut w2 = Worker::new(config, 1);
    w1.init_shared(&mut s1);
    w2.init_shared(&mut s2);
    ((w1, s1), (w2, s2))
}

fn get<'a>(path: &'a str) -> Request<'a> {
    Request {
        method: b"GET",
        path: path.as_bytes(),
        authority: Some(b"api.c4ang.com"),
    }
}

fn forward(verdict: Verdict) -> Ticket {
    match verdict {
        Verdict::Forward(ticket) => ticket,
        other => panic!("expected a forward, got {other:?}"),
    }
}

fn reason(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Reply(reply) => reply.reason.as_str(),
        other => panic!("expected a local reply, got {other:?}"),
    }
}

fn metrics(worker: &mut Worker) -> Vec<MetricUpdate> {
    let mut out = Vec::new();
    worker.drain_metrics(|m| out.push(m));
    out
}

use crate::shared::MemoryShared;

#[test]
fn r3_r6_each_default_prefix_routes_to_its_route() {
    let (mut w, mut s) = worker("");
    for (i, prefix) in [
        "/api/v1/customers",
        "/api/v1/orders",
        "/api/v1/products",
        "/api/v1/payments",
        "/api/v1/recommendations",
        "/api/v1/saga",
    ]
    .iter()
    .enumerate()
    {
        let ticket = forward(w.on_request(&get(&format!("{prefix}/1?x=y")), 0, &mut s));
        assert_eq!(ticket.route, i);
        let headers = w.route_headers(&ticket, true);
        assert_eq!(headers.timeout_ms, Some("10000"));
        assert_eq!(headers.max_retries, Some("3"));
        assert_eq!(headers.route, None, "x-c4-route only when asked for");
    }
    assert_eq!(w.route(5).service, "saga-tracker");
}

#[test]
fn r1_unknown_host_and_r7_unmatched() {
    let (mut w, mut s) = worker(r#"{"hosts": ["api.c4ang.com"]}"#);
    let mut request = get("/api/v1/orders");
    request.authority = Some(b"evil.example");
    assert_eq!(reason(w.on_request(&request, 0, &mut s)), "unknown_host");
    request.authority = None;
    assert_eq!(reason(w.on_request(&request, 0, &mut s)), "unknown_host");
    request.authority = Some(b"API.c4ang.com:443");
    forward(w.on_request(&request, 0, &mut s));
    assert_eq!(
        reason(w.on_request(&get("/api/v1/ordersX"), 0, &mut s)),
        "no_route"
    );
    assert_eq!(
        reason(w.on_request(&get("/healthz"), 0, &mut s)),
        "no_route"
    );

    let (mut w, mut s) = worker(r#"{"unmatched": "pass"}"#);
    assert_eq!(w.on_request(&get("/healthz"), 0, &mut s), Verdict::Pass);
}

#[test]
fn r2_bad_paths_are_refused_before_routing() {
    let (mut w, mut s) = worker(r#"{"unmatched": "pass"}"#);
    for bad in [
        "/api/v1/orders/../payments",
        "/api/v1/orders%2f",
        "api/v1/orders",
        "/a//b",
    ] {
        assert_eq!(
            reason(w.on_request(&get(bad), 0, &mut s)),
            "bad_path",
            "{bad}"
        );
    }
    let verdict = w.on_request(&get("/x/%2e%2e/y"), 0, &mut s);
    assert_eq!(
        verdict,
        Verdict::Reply(LocalReply {
            reason: Reason::BadPath(PathError::EncodedUnreserved),
            route: None
        })
    );
}

#[test]
fn r4_methods_limit_a_route_and_the_reply_lists_them() {
    let (mut w, mut s) = worker(
        r#"{"routes": [{"name": "orders", "prefix": "/api/v1/orders", "service": "order-service", "methods": ["GET", "POST"]}]}"#,
    );
    let mut request = get("/api/v1/orders");
    request.method = b"DELETE";
    let Verdict::Reply(reply) = w.on_request(&request, 0, &mut s) else {
        panic!("DELETE was forwarded");
    };
    assert_eq!(reply.status(), 405);
    let headers = reply.headers(w.config());
    assert!(headers.contains(&("allow", "GET, POST".to_owned())));
    assert!(headers.contains(&("x-c4-reason", "method_not_allowed".to_owned())));
    assert!(headers.contains(&("content-type", "application/json".to_owned())));
    assert_eq!(
        reply.body(w.config()),
        r#"{"error":"method_not_allowed","route":"orders","allow":["GET","POST"]}"#
    );
    request.method = b"POST";
    forward(w.on_request(&request, 0, &mut s));
}

#[test]
fn r6_what_the_proxy_applies_is_left_out_and_the_route_name_is_sent_only_when_asked() {
    let (mut w, mut s) = worker(r#"{"proxy_applies": ["retries", "timeout"]}"#);
    let ticket = forward(w.on_request(&get("/api/v1/orders/1"), 0, &mut s));
    assert_eq!(ticket.granted, Some(3));
    assert_eq!(
        w.route_headers(&ticket, true),
        RouteHeaders::default(),
        "a healthy request is not changed"
    );

    // A grant below the route's retries is still set; the timeout is not.
    let short = Ticket {
        granted: Some(1),
        ..ticket
    };
    let headers = w.route_headers(&short, true);
    assert_eq!(headers.max_retries, Some("1"));
    assert_eq!(headers.timeout_ms, None);
    let none = Ticket {
        granted: Some(0),
        ..ticket
    };
    assert_eq!(w.route_headers(&none, true).max_retries, Some("0"));

    // Only the retries stated: the timeout header stays.
    let (mut w, mut s) = worker(r#"{"proxy_applies": ["retries"], "route_header": true}"#);
    let ticket = forward(w.on_request(&get("/api/v1/orders/1"), 0, &mut s));
    let headers = w.route_headers(&ticket, true);
    assert_eq!(headers.timeout_ms, Some("10000"));
    assert_eq!(headers.max_retries, None);
    assert_eq!(headers.route, Some("orders"));
    assert_eq!(
        w.route_headers(&ticket, false).route,
        None,
        "near the header limit"
    );

    // Without the statement both headers are always set.
    let (mut w, mut s) = worker("");
    let ticket = forward(w.on_request(&get("/api/v1/orders/1"), 0, &mut s));
    let headers = w.route_headers(&ticket, true);
    assert_eq!(
        (headers.timeout_ms, headers.max_retries),
        (Some("10000"), Some("3"))
    );
}

#[test]
fn b_budget_off_sets_no_max_retries() {
    let (mut w, mut s) = worker(r#"{"retry_budget": null}"#);
    let ticket = forward(w.on_request(&get("/api/v1/orders"), 0, &mut s));
    assert_eq!(ticket.granted, None);
    assert_eq!(w.route_headers(&ticket, true).max_retries, None);
    assert!(!w.needs_attempt_count(&ticket));
}

#[test]
fn b2_b3_grants_shrink_in_an_outage_and_refunds_keep_healthy_traffic_whole() {
    let (mut w, mut s) = worker(r#"{"outlier": {"consecutive_5xx": 0}}"#);
    // Healthy: every request gets 3 and uses none.
    for i in 0..1_000 {
        let t = forward(w.on_request(&get("/api/v1/orders"), i, &mut s));
        assert_eq!(t.granted, Some(3));
        w.on_response(&t, 200, Some(1), None, i, &mut s);
    }
    // Outage: every attempt fails, each request uses what it was granted.
    let mut attempts = 0;
    let n = 2_000u64;
    for i in 0..n {
        let now = 1_000 + i * 5; // 10 s
        let t = forward(w.on_request(&get("/api/v1/orders"), now, &mut s));
        let k = u64::from(t.granted.unwrap());
        attempts += 1 + k;
        w.on_response(&t, 503, Some(1 + k), None, now, &mut s);
    }
    let bound = n as f64 * 1.2 + 10.0 * (10.0 + 10.0) + 3.0;
    assert!(attempts as f64 <= bound, "{attempts} attempts > {bound}");
    let exhausted = metrics(&mut w)
        .into_iter()
        .any(|m| matches!(m, MetricUpdate::Route(1, RouteCounter::BudgetExhausted, n) if n > 0));
    assert!(exhausted);
}

#[test]
fn b3_missing_attempt_count_keeps_the_reservation() {
    let (mut w, mut s) = worker(r#"{"retry_budget": {"ratio": 0, "min_retries_per_second": 0.3}}"#);
    // Reserve of 3 retries (0.3/s over 10 s).
    let t = forward(w.on_request(&get("/api/v1/orders"), 0, &mut s));
    assert_eq!(t.granted, Some(3));
    w.on_response(&t, 200, None, None, 1, &mut s);
    let t = forward(w.on_request(&get("/api/v1/orders"), 2, &mut s));
    assert_eq!(t.granted, Some(0), "the unreported reservation stays spent");
}

#[test]
fn b4_two_workers_share_one_reserve() {
    let json = r#"{"retry_budget": {"ratio": 0, "min_retries_per_second": 1}, "outlier": {"consecutive_5xx": 0}}"#;
    let ((mut w1, mut s1), (mut w2, mut s2)) = two_workers(json);
    // 10 retries per window in total; both workers spend all they can.
    let mut spent = 0;
    for i in 0..40 {
        let (w, s) = if i % 2 == 0 {
            (&mut w1, &mut s1)
        } else {
            (&mut w2, &mut s2)
        };
        let t = forward(w.on_request(&get("/api/v1/orders"), i, s));
        let k = t.granted.unwrap();
        spent += k;
        w.on_response(&t, 503, Some(u64::from(1 + k)), None, i, s);
    }
    assert_eq!(spent, 10, "the reserve is split, not doubled");
}

#[test]
fn b4_idle_workers_give_capacity_back_after_a_cool_down() {
    let json = r#"{"retry_budget": {"ratio": 0, "min_retries_per_second": 1}, "outlier": {"consecutive_5xx": 0}}"#;
    let ((mut w1, mut s1), (mut w2, mut s2)) = two_workers(json);
    // Four requests in flight on w1 need 12 retries: it leases all 10.
    let in_flight: Vec<Ticket> = (0..4)
        .map(|i| forward(w1.on_request(&get("/api/v1/orders"), i, &mut s1)))
        .collect();
    for t in &in_flight {
        w1.on_response(t, 200, Some(1), None, 4, &mut s1);
    }
    // w1 holds all the capacity; w2 gets none.
    let t = forward(w2.on_request(&get("/api/v1/orders"), 5, &mut s2));
    assert_eq!(t.granted, Some(0));
    w1.on_tick(10_010, &mut s1);
    // Given back at 10 s, usable again one window later.
    let t = forward(w2.on_request(&get("/api/v1/orders"), 15_000, &mut s2));
    assert_eq!(t.granted, Some(0));
    let t = forward(w2.on_request(&get("/api/v1/orders"), 20_100, &mut s2));
    assert_eq!(t.granted, Some(3));
}

#[test]
fn o2_o3_circuit_opens_fails_fast_probes_and_closes_across_workers() {
    let json = r#"{"outlier": {"base_ejection": "2s"}}"#;
    let ((mut w1, mut s1), (mut w2, mut s2)) = two_workers(json);
    for i in 0..5 {
        let t = forward(w1.on_request(&get("/api/v1/orders"), i, &mut s1));
        let signals = w1.on_response(&t, 503, Some(1), Some(b"10.0.0.1:80"), i, &mut s1);
        assert_eq!(signals.opened_for_ms.is_some(), i == 4);
    }
    assert_eq!(
        s1.notified,
        vec![1, 1],
        "streak start and circuit open are pushed"
    );
    // w2 learns through the notification.
    assert_eq!(w2.circuit_label(1, 10), "closed");
    w2.refresh(1, &mut s2);
    let Verdict::Reply(reply) = w2.on_request(&get("/api/v1/orders"), 10, &mut s2) else {
        panic!("forwarded while open");
    };
    assert_eq!(reply.status(), 503);
    assert!(reply
        .headers(w2.config())
        .contains(&("retry-after", "2".to_owned())));
    assert_eq!(w2.circuit_label(1, 10), "open");
    // Other routes are unaffected.
    forward(w2.on_request(&get("/api/v1/payments"), 10, &mut s2));
    // After the open period one probe at a time, across workers.
    let probe = forward(w2.on_request(&get("/api/v1/orders"), 2_004, &mut s2));
    assert!(probe.probe);
    assert_eq!(
        reason(w1.on_request(&get("/api/v1/orders"), 2_005, &mut s1)),
        "circuit_open"
    );
    let signals = w2.on_response(&probe, 200, Some(1), Some(b"10.0.0.1:80"), 2_010, &mut s2);
    assert!(signals.closed);
    w1.refresh(1, &mut s1);
    let t = forward(w1.on_request(&get("/api/v1/orders"), 2_011, &mut s1));
    assert!(!t.probe);
    let gauge: Vec<_> = metrics(&mut w1)
        .into_iter()
        .filter(|m| matches!(m, MetricUpdate::CircuitOpen(1, _)))
        .collect();
    assert_eq!(gauge, vec![MetricUpdate::CircuitOpen(1, false)]);
}

#[test]
fn o3_a_probe_reset_frees_the_slot() {
    let (mut w, mut s) = worker(r#"{"outlier": {"base_ejection": "1s"}}"#);
    for i in 0..5 {
        let t = forward(w.on_request(&get("/api/v1/saga"), i, &mut s));
        w.on_response(&t, 502, Some(1), None, i, &mut s);
    }
    let probe = forward(w.on_request(&get("/api/v1/saga"), 1_010, &mut s));
    assert!(probe.probe);
    assert_eq!(
        reason(w.on_request(&get("/api/v1/saga"), 1_011, &mut s)),
        "circuit_open"
    );
    w.on_end_without_response(&probe, None, 1_012, &mut s);
    assert!(forward(w.on_request(&get("/api/v1/saga"), 1_013, &mut s)).probe);
}

#[test]
fn o1_host_signal_needs_the_address_only_when_it_can_matter() {
    let (mut w, mut s) = worker("");
    let t = forward(w.on_request(&get("/api/v1/orders"), 0, &mut s));
    assert!(!w.needs_health_update(&t, 200), "healthy: no address read");
    assert!(w.needs_health_update(&t, 503));
    w.on_response(&t, 503, Some(4), Some(b"10.0.0.1:80"), 0, &mut s);
    assert!(w.needs_health_update(&t, 200), "a streak is running");
    let mut ejections = Vec::new();
    for i in 1..10 {
        let t = forward(w.on_request(&get("/api/v1/orders"), i, &mut s));
        let signals = w.on_response(&t, 503, Some(1), Some(b"10.0.0.1:80"), i, &mut s);
        ejections.extend(signals.ejection);
        let t = forward(w.on_request(&get("/api/v1/orders"), i, &mut s));
        w.on_response(&t, 200, Some(1), Some(b"10.0.0.2:80"), i, &mut s);
    }
    assert_eq!(ejections.len(), 1);
    assert_eq!(ejections[0].host, b"10.0.0.1:80");
    assert_eq!(ejections[0].consecutive, 5);
    assert_eq!(ejections[0].ejected_for_ms, 30_000);
    assert_eq!(w.circuit_label(1, 10), "closed");
}

#[test]
fn metrics_count_per_route_and_globally() {
    let (mut w, mut s) = worker(r#"{"hosts": ["api.c4ang.com"]}"#);
    let t = forward(w.on_request(&get("/api/v1/orders"), 0, &mut s));
    w.on_response(&t, 200, Some(2), None, 0, &mut s);
    w.on_request(&get("/nope"), 0, &mut s);
    w.on_request(&get("/a/../b"), 0, &mut s);
    let mut request = get("/api/v1/orders");
    request.authority = Some(b"x");
    w.on_request(&request, 0, &mut s);
    let updates = metrics(&mut w);
    for expected in [
        MetricUpdate::Route(1, RouteCounter::Requests, 1),
        MetricUpdate::Route(1, RouteCounter::RetriesGranted, 3),
        MetricUpdate::Route(1, RouteCounter::RetriesUsed, 1),
        MetricUpdate::Global(GlobalCounter::NoRoute, 1),
        MetricUpdate::Global(GlobalCounter::BadPath, 1),
        MetricUpdate::Global(GlobalCounter::UnknownHost, 1),
        MetricUpdate::CircuitOpen(1, false),
    ] {
        assert!(
            updates.contains(&expected),
            "{expected:?} missing from {updates:?}"
        );
    }
    assert!(metrics(&mut w).is_empty(), "drained");
}

#[test]
fn circuit_view_follows_only_through_shared_state() {
    let (mut w, mut s) = worker("");
    assert_eq!(w.routes[0].view.circuit, Circuit::Closed);
    w.refresh(0, &mut s);
    w.refresh(99, &mut s);
    assert_eq!(w.routes[0].view.circuit, Circuit::Closed);
}

#[test]
fn o2_a_worker_that_knows_a_count_runs_fails_fast_without_a_notification() {
    let ((mut w1, mut s1), (mut w2, mut s2)) = two_workers("");
    let t = forward(w1.on_request(&get("/api/v1/orders"), 0, &mut s1));
    w1.on_response(&t, 503, Some(4), None, 0, &mut s1);
    assert_eq!(s1.notified, vec![1], "the count starting is pushed");
    w2.refresh(1, &mut s2);
    for i in 1..5 {
        let t = forward(w1.on_request(&get("/api/v1/orders"), i, &mut s1));
        w1.on_response(&t, 503, Some(4), None, i, &mut s1);
    }
    // The opening's notification has not reached w2; its next request still fails fast.
    assert_eq!(
        reason(w2.on_request(&get("/api/v1/orders"), 6, &mut s2)),
        "circuit_open"
    );
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    type Step = (
        Vec<u8>,
        Vec<u8>,
        Option<Vec<u8>>,
        u32,
        Option<u64>,
        Option<Vec<u8>>,
        u64,
    );

    /// Authorities: arbitrary bytes, or a spelling of a mesh service with noise.
    fn authority() -> impl Strategy<Value = Option<Vec<u8>>> {
        proptest::option::of(prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..32),
            "(order-service|saga-tracker|SAGA-TRACKER)(\\.ecommerce(\\.svc(\\.cluster\\.local)?)?)?\\.?(:[0-9]{0,5})?"
                .prop_map(String::into_bytes),
        ])
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        proptest::collection::vec(
            (
                proptest::collection::vec(any::<u8>(), 0..8),
                proptest::collection::vec(any::<u8>(), 0..64),
                authority(),
                0u32..700,
                proptest::option::of(0u64..20),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..80)),
                0u64..5_000,
            ),
            1..40,
        )
    }

    fn drive(json: &str, requests: Vec<Step>) {
        let (mut w, mut s) = worker(json);
        let mut now = 0;
        for (method, path, authority, status, attempts, host, step) in requests {
            now += step;
            let request = Request {
                method: &method,
                path: &path,
                authority: authority.as_deref(),
            };
            if let Verdict::Forward(t) = w.on_request(&request, now, &mut s) {
                if status % 7 == 0 {
                    w.on_end_without_response(&t, attempts, now, &mut s);
                } else {
                    w.on_response(&t, status, attempts, host.as_deref(), now, &mut s);
                }
            }
            w.on_tick(now, &mut s);
        }
        w.drain_metrics(|_| {});
    }

    proptest! {
        /// 2.7: whatever the request bytes and whatever the responses, no panic.
        #[test]
        fn on_any_request_and_response(requests in steps()) {
            drive(r#"{"unmatched": "pass", "outlier": {"base_ejection": "1s"}}"#, requests);
        }

        /// The same in sidecar mode.
        #[test]
        fn on_any_call_from_a_sidecar(requests in steps()) {
            drive(r#"{"mode": "sidecar", "outlier": {"base_ejection": "1s"}}"#, requests);
        }
    }
}

mod sidecar {
    use super::*;

    /// The sidecar plugin's configuration: Istio's in-mesh retries.
    const SIDECAR: &str = r#"{"mode": "sidecar", "retry": {"attempts": 2}}"#;

    fn call<'a>(authority: &'a str, path: &'a str) -> Request<'a> {
        Request {
            method: b"GET",
            path: path.as_bytes(),
            authority: Some(authority.as_bytes()),
        }
    }

    #[test]
    fn s1_s3_a_call_to_a_mesh_service_is_routed_by_its_destination() {
        let (mut w, mut s) = worker(SIDECAR);
        let ticket = forward(w.on_request(
            &call(
                "payment-service.ecommerce.svc.cluster.local:8080",
                "/pay?x=1",
            ),
            0,
            &mut s,
        ));
        assert_eq!(w.route(ticket.route).name, "payments");
        let headers = w.route_headers(&ticket, true);
        assert_eq!(headers.max_retries, Some("2"));
        assert_eq!(headers.timeout_ms, Some("10000"));
        assert!(!ticket.probe);
        let ticket = forward(w.on_request(&call("SAGA-TRACKER", "/api/v1/saga/1"), 0, &mut s));
        assert_eq!(w.route(ticket.route).name, "saga");
        let updates = metrics(&mut w);
        assert!(updates.contains(&MetricUpdate::Route(3, RouteCounter::Requests, 1)));
        assert!(updates.contains(&MetricUpdate::Route(5, RouteCounter::Requests, 1)));
    }

    #[test]
    fn s2_other_destinations_pass_untouched_and_uncounted() {
        let (mut w, mut s) = worker(SIDECAR);
        for authority in [
            "api.stripe.com",
            "order-service.other",
            "order-service.ecommerce.svc.cluster",
            "istiod.istio-system.svc:15012",
            "10.0.0.1:8080",
        ] {
            assert_eq!(
                w.on_request(&call(authority, "/api/v1/orders"), 0, &mut s),
                Verdict::Pass,
                "{authority}"
            );
        }
        let mut request = call("", "/api/v1/orders");
        request.authority = None;
        assert_eq!(w.on_request(&request, 0, &mut s), Verdict::Pass);
        assert!(metrics(&mut w)
            .iter()
            .all(|m| matches!(m, MetricUpdate::CircuitOpen(_, false))));
    }

    #[test]
    fn s1_hosts_and_unmatched_are_gateway_settings() {
        let (mut w, mut s) =
            worker(r#"{"mode": "sidecar", "hosts": ["api.c4ang.com"], "unmatched": "reject"}"#);
        let ticket = forward(w.on_request(&call("order-service", "/healthz"), 0, &mut s));
        assert_eq!(
            w.route(ticket.route).name,
            "orders",
            "the service's first route"
        );
        assert_eq!(
            w.on_request(&call("api.c4ang.com", "/api/v1/orders"), 0, &mut s),
            Verdict::Pass
        );
    }

    #[test]
    fn r2_a_bad_path_to_a_mesh_service_is_refused_and_elsewhere_passes() {
        let (mut w, mut s) = worker(SIDECAR);
        assert_eq!(
            w.on_request(
                &call("order-service", "/api/v1/orders/../payments"),
                0,
                &mut s
            ),
            Verdict::Reply(LocalReply {
                reason: Reason::BadPath(PathError::DotSegment),
                route: None
            })
        );
        assert_eq!(
            w.on_request(
                &call("example.com", "/api/v1/orders/../payments"),
                0,
                &mut s
            ),
            Verdict::Pass
        );
        let updates = metrics(&mut w);
        assert!(updates.contains(&MetricUpdate::Global(GlobalCounter::BadPath, 1)));
    }

    #[test]
    fn o2_the_circuit_opens_per_destination() {
        let (mut w, mut s) = worker(r#"{"mode": "sidecar", "outlier": {"base_ejection": "2s"}}"#);
        for i in 0..5 {
            // Any path to the service counts for its route.
            let path = if i % 2 == 0 {
                "/api/v1/saga/1"
            } else {
                "/other"
            };
            let t = forward(w.on_request(&call("saga-tracker.ecommerce", path), i, &mut s));
            let signals = w.on_response(&t, 503, Some(3), Some(b"10.0.0.9:80"), i, &mut s);
            assert_eq!(signals.opened_for_ms.is_some(), i == 4);
        }
        let Verdict::Reply(reply) = w.on_request(&call("saga-tracker", "/x"), 10, &mut s) else {
            panic!("forwarded while open");
        };
        assert_eq!(reply.status(), 503);
        assert_eq!(reply.route, Some(5));
        assert_eq!(w.circuit_label(5, 10), "open");
        // Other destinations are unaffected, and calls outside the mesh still pass.
        forward(w.on_request(&call("payment-service", "/pay"), 10, &mut s));
        assert_eq!(
            w.on_request(&call("saga-tracker.other", "/x"), 10, &mut s),
            Verdict::Pass
        );
        let probe = forward(w.on_request(&call("saga-tracker", "/x"), 2_004, &mut s));
        assert!(probe.probe);
        assert!(
            w.on_response(&probe, 200, Some(1), Some(b"10.0.0.9:80"), 2_010, &mut s)
                .closed
        );
    }

    #[test]
    fn b2_grants_follow_the_destination_s_budget() {
        let (mut w, mut s) = worker(
            r#"{"mode": "sidecar", "retry": {"attempts": 2},
                "retry_budget": {"ratio": 0, "min_retries_per_second": 0.3},
                "outlier": {"consecutive_5xx": 0}}"#,
        );
        // A reserve of 3 retries per window for each destination.
        let grants: Vec<_> = (0..3)
            .map(|i| {
                let t = forward(w.on_request(&call("order-service", "/api/v1/orders"), i, &mut s));
                w.on_response(
                    &t,
                    503,
                    Some(1 + u64::from(t.granted.unwrap())),
                    None,
                    i,
                    &mut s,
                );
                t.granted
            })
            .collect();
        assert_eq!(grants, [Some(2), Some(1), Some(0)]);
        let t = forward(w.on_request(&call("payment-service", "/api/v1/payments"), 3, &mut s));
        assert_eq!(t.granted, Some(2), "another destination has its own budget");
        let t = forward(w.on_request(&call("order-service", "/elsewhere"), 4, &mut s));
        assert_eq!(
            t.granted,
            Some(0),
            "any path spends the destination's budget"
        );
    }

    #[test]
    fn r4_methods_hold_for_a_destination() {
        let (mut w, mut s) = worker(
            r#"{"mode": "sidecar", "routes": [{"name": "orders", "prefix": "/api/v1/orders", "service": "order-service", "methods": ["GET"]}]}"#,
        );
        let mut request = call("order-service", "/other");
        request.method = b"POST";
        assert_eq!(
            reason(w.on_request(&request, 0, &mut s)),
            "method_not_allowed"
        );
    }
}
