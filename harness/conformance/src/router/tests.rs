use super::*;
use crate::scenario::OutlierDetection;

fn route() -> RouteEntry {
    RouteEntry {
        service: 0,
        retry_on: "5xx,reset,connect-failure,refused-stream".into(),
        num_retries: 3,
        timeout: Duration::from_secs(10),
        per_try_timeout: None,
        retriable_status_codes: Vec::new(),
    }
}

#[test]
fn retry_kinds_follow_envoy() {
    let five_xx = RetryOn::parse("5xx");
    assert!(five_xx.retries(Outcome::Status(500), [0; 4]));
    assert!(five_xx.retries(Outcome::Reset, [0; 4]));
    assert!(five_xx.retries(Outcome::PerTryTimeout, [0; 4]));
    assert!(!five_xx.retries(Outcome::Status(409), [0; 4]));
    let gateway = RetryOn::parse("gateway-error");
    assert!(gateway.retries(Outcome::Status(503), [0; 4]));
    assert!(!gateway.retries(Outcome::Status(500), [0; 4]));
    let reset = RetryOn::parse("reset");
    assert!(reset.retries(Outcome::Reset, [0; 4]));
    assert!(!reset.retries(Outcome::Status(503), [0; 4]));
    assert!(RetryOn::parse("retriable-4xx").retries(Outcome::Status(409), [0; 4]));
    assert!(!RetryOn::parse("unknown-kind").any());
    let istio = RetryOn::parse(c4mesh_mesh::istio::retry::DEFAULT_RETRY_ON);
    assert!(istio.retries(Outcome::Status(503), [503, 0, 0, 0]));
    assert!(!istio.retries(Outcome::Status(500), [503, 0, 0, 0]));
    assert!(!istio.retries(Outcome::Status(503), [0; 4]));
    assert!(
        istio.retries(Outcome::ConnectFailure, [0; 4]),
        "a refused connection is"
    );
    assert!(
        !istio.retries(Outcome::Reset, [503, 0, 0, 0]),
        "a reset after connecting is not a connect failure"
    );
}

#[test]
fn request_headers_override_the_route_policy() {
    let r = route();
    let headers = |name: &str| match name {
        "x-envoy-max-retries" => Some("1".to_owned()),
        "x-envoy-retry-on" => Some("retriable-4xx".to_owned()),
        "x-envoy-upstream-rq-timeout-ms" => Some("250".to_owned()),
        _ => None,
    };
    let policy = Policy::for_request(&r, headers);
    assert_eq!(policy.retries, 1);
    assert!(policy.retry_on.retries(Outcome::Status(409), [0; 4]));
    assert!(policy.retry_on.retries(Outcome::Status(503), [0; 4]));
    assert_eq!(policy.timeout, Duration::from_millis(250));
    assert!(policy.retry_after(Outcome::Status(503), 0));
    assert!(!policy.retry_after(Outcome::Status(503), 1));
    // Without any retry condition there are no retries, whatever the count says.
    let mut plain = route();
    plain.retry_on = String::new();
    assert_eq!(Policy::for_request(&plain, |_| None).retries, 0);
}

#[test]
fn backoff_is_jittered_exponential_and_capped() {
    let mut rng = Rng::new(3);
    for _ in 0..1000 {
        assert!(backoff(1, &mut rng) < Duration::from_millis(25));
        assert!(backoff(2, &mut rng) < Duration::from_millis(75));
        assert!(backoff(3, &mut rng) < Duration::from_millis(175));
        assert!(backoff(9, &mut rng) <= Duration::from_millis(250));
    }
}

#[test]
fn retries_avoid_hosts_already_tried() {
    let mut cluster = Cluster::new(2, 1, None, 50.0);
    let now = Duration::ZERO;
    let first = cluster.pick(0, &[], now).unwrap_or(9);
    let second = cluster.pick(0, &[first], now).unwrap_or(9);
    assert_ne!(first, second);
    // Round robin goes on from where it was.
    assert_eq!(cluster.pick(0, &[], now), Some(first));
}

fn detection(max_percent: u32) -> OutlierDetection {
    OutlierDetection {
        consecutive_5xx: 5,
        interval: Duration::from_secs(1),
        base_ejection: Duration::from_secs(30),
        max_ejection_percent: max_percent,
    }
}

#[test]
fn outlier_detection_ejects_one_of_two_only_when_the_percentage_allows() {
    let now = Duration::from_millis(100);
    let mut allowed = Cluster::new(2, 1, Some(detection(50)), 0.0);
    for _ in 0..5 {
        allowed.record(0, Outcome::Status(503), now);
    }
    assert!((0..10).all(|_| allowed.pick(0, &[], now) == Some(1)));
    // Back after base x 1 at the next sweep.
    assert!((0..4).any(|_| allowed.pick(0, &[], Duration::from_secs(31)) == Some(0)));

    let mut capped = Cluster::new(2, 1, Some(detection(10)), 0.0);
    for _ in 0..5 {
        capped.record(0, Outcome::Reset, now);
    }
    assert!((0..4).any(|_| capped.pick(0, &[], now) == Some(0)));

    let mut reset = Cluster::new(2, 1, Some(detection(50)), 0.0);
    for outcome in [503, 503, 503, 503, 200, 503] {
        reset.record(0, Outcome::Status(outcome), now);
    }
    assert!((0..4).any(|_| reset.pick(0, &[], now) == Some(0)));
}

#[test]
fn with_istio_panic_threshold_zero_a_fully_ejected_cluster_has_no_host() {
    let now = Duration::from_millis(100);
    let eject_both = |cluster: &mut Cluster| {
        for host in [0, 1] {
            for _ in 0..5 {
                cluster.record(host, Outcome::Status(503), now);
            }
        }
    };
    let mut istio = Cluster::new(2, 1, Some(detection(100)), 0.0);
    eject_both(&mut istio);
    assert_eq!(istio.pick(0, &[], now), None, "503 no healthy upstream");
    // Envoy's default threshold (50%) routes to every host instead.
    let mut envoy_default = Cluster::new(2, 1, Some(detection(100)), 50.0);
    eject_both(&mut envoy_default);
    assert!(envoy_default.pick(0, &[], now).is_some());
}
