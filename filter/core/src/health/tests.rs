use super::*;

const POLICY: OutlierPolicy = OutlierPolicy {
    consecutive_5xx: 5,
    base_ejection_ms: 30_000,
    max_ejection_ms: 300_000,
};

fn fail(host: &str) -> Outcome<'_> {
    Outcome {
        failure: true,
        host: Some(host.as_bytes()),
        probe: false,
    }
}

fn ok(host: &str) -> Outcome<'_> {
    Outcome {
        failure: false,
        host: Some(host.as_bytes()),
        probe: false,
    }
}

#[test]
fn o1_a_host_is_ejected_after_consecutive_5xx_and_reset_by_success() {
    let mut h = RouteHealth::default();
    for _ in 0..4 {
        assert_eq!(h.record(0, &POLICY, fail("10.0.0.1:80")).ejection, None);
    }
    h.record(0, &POLICY, ok("10.0.0.1:80"));
    for _ in 0..4 {
        assert_eq!(h.record(1, &POLICY, fail("10.0.0.1:80")).ejection, None);
    }
    let signals = h.record(2, &POLICY, fail("10.0.0.1:80"));
    assert_eq!(
        signals.ejection,
        Some(Ejection {
            host: b"10.0.0.1:80".to_vec(),
            consecutive: 5,
            ejected_for_ms: 30_000
        })
    );
}

#[test]
fn o1_one_bad_host_of_two_is_signalled_without_opening_the_circuit() {
    let mut h = RouteHealth::default();
    let mut ejections = 0;
    for i in 0..20 {
        let s = h.record(i, &POLICY, fail("10.0.0.1:80"));
        ejections += usize::from(s.ejection.is_some());
        let s = h.record(i, &POLICY, ok("10.0.0.2:80"));
        assert_eq!(s.opened_for_ms, None);
    }
    assert_eq!(ejections, 1, "no second ejection while the first lasts");
    assert_eq!(h.circuit, Circuit::Closed);
}

#[test]
fn o1_ejections_grow_while_chained_and_are_capped() {
    let mut h = RouteHealth::default();
    let mut now = 0;
    let mut periods = Vec::new();
    for _ in 0..12 {
        loop {
            if let Some(e) = h.record(now, &POLICY, fail("h:1")).ejection {
                periods.push(e.ejected_for_ms);
                now += e.ejected_for_ms;
                break;
            }
        }
    }
    assert_eq!(&periods[..4], &[30_000, 60_000, 90_000, 120_000]);
    assert_eq!(*periods.last().unwrap(), 300_000, "capped at max_ejection");
    // After more than max_ejection of quiet, n starts again at 1.
    now += 300_001;
    let e = (0..5).find_map(|_| h.record(now, &POLICY, fail("h:1")).ejection);
    assert_eq!(e.map(|e| e.ejected_for_ms), Some(30_000));
}

#[test]
fn o1_host_table_is_capped() {
    let mut h = RouteHealth::default();
    for i in 0..100u64 {
        h.record(i, &POLICY, fail(&format!("10.0.0.{i}:80")));
        h.record(i, &POLICY, ok("10.0.0.250:80"));
    }
    assert_eq!(h.hosts.len(), MAX_HOSTS);
    assert!(h.hosts.iter().any(|x| x.address == b"10.0.0.99:80"));
    assert!(h.hosts.iter().any(|x| x.address == b"10.0.0.250:80"));
}

#[test]
fn o1_a_full_table_of_the_longest_addresses_encodes_to_the_stated_maximum() {
    let mut h = RouteHealth::default();
    for i in 0..40u64 {
        let address = format!("{i}-{}", "a".repeat(200));
        h.record(i, &POLICY, fail(&address));
    }
    assert_eq!(h.hosts.len(), MAX_HOSTS);
    assert_eq!(h.encode().len(), RouteHealth::MAX_ENCODED);
}

#[test]
fn o2_five_consecutive_5xx_from_any_host_open_the_circuit() {
    let mut h = RouteHealth::default();
    for i in 0..4 {
        let host = if i % 2 == 0 { "a:1" } else { "b:1" };
        assert_eq!(h.record(0, &POLICY, fail(host)).opened_for_ms, None);
    }
    h.record(0, &POLICY, ok("a:1"));
    for _ in 0..4 {
        h.record(0, &POLICY, fail("b:1"));
    }
    assert_eq!(h.circuit, Circuit::Closed, "a success resets the count");
    let signals = h.record(1_000, &POLICY, fail("a:1"));
    assert_eq!(signals.opened_for_ms, Some(30_000));
    assert_eq!(h.circuit, Circuit::Open { until_ms: 31_000 });
    assert_eq!(
        h.admit(1_000, 11_000),
        Admission::FailFast { retry_after_s: 30 }
    );
    assert_eq!(
        h.admit(30_001, 11_000),
        Admission::FailFast { retry_after_s: 1 }
    );
    assert_eq!(h.view().circuit.label(1_000), "open");
}

#[test]
fn o2_local_outcomes_without_host_still_count_for_the_route() {
    // Envoy's own 503 (no healthy upstream, overflow) has no upstream address.
    let mut h = RouteHealth::default();
    let envoy_503 = Outcome {
        failure: true,
        host: None,
        probe: false,
    };
    for _ in 0..5 {
        h.record(0, &POLICY, envoy_503);
    }
    assert!(h.circuit.is_open());
}

#[test]
fn o3_one_probe_at_a_time_success_closes_failure_reopens_longer() {
    let mut h = RouteHealth::default();
    for _ in 0..5 {
        h.record(0, &POLICY, fail("a:1"));
    }
    assert_eq!(h.admit(30_000, 11_000), Admission::Probe);
    assert_eq!(h.view().circuit.label(30_000), "half-open");
    assert_eq!(
        h.admit(30_001, 11_000),
        Admission::FailFast { retry_after_s: 1 }
    );
    // The probe fails: reopened for twice the base.
    let probe_fail = Outcome {
        failure: true,
        host: Some(b"a:1"),
        probe: true,
    };
    assert_eq!(
        h.record(30_010, &POLICY, probe_fail).opened_for_ms,
        Some(60_000)
    );
    assert_eq!(
        h.admit(89_000, 11_000),
        Admission::FailFast { retry_after_s: 2 }
    );
    assert_eq!(h.admit(90_010, 11_000), Admission::Probe);
    let probe_ok = Outcome {
        failure: false,
        host: Some(b"a:1"),
        probe: true,
    };
    let signals = h.record(90_020, &POLICY, probe_ok);
    assert!(signals.closed);
    assert_eq!(h.circuit, Circuit::Closed);
    assert_eq!(h.openings, 0, "closing resets n");
    for _ in 0..5 {
        h.record(100_000, &POLICY, fail("a:1"));
    }
    assert_eq!(h.circuit, Circuit::Open { until_ms: 130_000 });
}

#[test]
fn o3_a_probe_without_response_frees_the_slot_and_a_lost_probe_expires() {
    let mut h = RouteHealth::default();
    for _ in 0..5 {
        h.record(0, &POLICY, fail("a:1"));
    }
    assert_eq!(h.admit(30_000, 11_000), Admission::Probe);
    h.release_probe(30_005);
    assert_eq!(h.admit(30_006, 11_000), Admission::Probe);
    // Nobody reports on this probe: after its deadline the slot is taken again.
    assert_eq!(
        h.admit(41_005, 11_000),
        Admission::FailFast { retry_after_s: 1 }
    );
    assert_eq!(h.admit(41_006, 11_000), Admission::Probe);
}

#[test]
fn o3_late_responses_do_not_move_the_circuit() {
    let mut h = RouteHealth::default();
    for _ in 0..5 {
        h.record(0, &POLICY, fail("a:1"));
    }
    let before = h.circuit;
    h.record(10, &POLICY, ok("a:1"));
    h.record(10, &POLICY, fail("a:1"));
    assert_eq!(h.circuit, before);
}

#[test]
fn off_switch_records_nothing() {
    let off = OutlierPolicy {
        consecutive_5xx: 0,
        ..POLICY
    };
    let mut h = RouteHealth::default();
    for _ in 0..100 {
        assert_eq!(h.record(0, &off, fail("a:1")), Signals::default());
    }
    assert_eq!(h, RouteHealth::default());
}

#[test]
fn view_reports_streaks_and_encoding_round_trips() {
    let mut h = RouteHealth::default();
    assert!(!h.view().streak);
    h.record(0, &POLICY, fail("10.0.0.1:8080"));
    assert!(h.view().streak);
    h.record(0, &POLICY, ok("10.0.0.2:8080"));
    assert!(h.view().streak, "host 1 still has a count");
    h.record(0, &POLICY, ok("10.0.0.1:8080"));
    assert!(!h.view().streak);
    for _ in 0..5 {
        h.record(7, &POLICY, fail("[::1]:8080"));
    }
    let bytes = h.encode();
    assert_eq!(RouteHealth::decode(&bytes), Some(h.clone()));
    assert_eq!(RouteHealth::decode(&bytes[..bytes.len() - 1]), None);
    assert_eq!(RouteHealth::decode(b""), None);
}

#[test]
fn cached_view_decides_alone_only_when_it_can() {
    let open = HealthView {
        circuit: Circuit::Open { until_ms: 2_500 },
        streak: false,
    };
    assert_eq!(
        open.admit(0),
        Some(Admission::FailFast { retry_after_s: 3 })
    );
    assert_eq!(open.admit(2_500), None);
    assert_eq!(HealthView::default().admit(0), Some(Admission::Admit));
    let counting = HealthView {
        circuit: Circuit::Closed,
        streak: true,
    };
    assert_eq!(
        counting.admit(0),
        None,
        "a running count is checked in shared data"
    );
    let half_open = HealthView {
        circuit: Circuit::HalfOpen {
            probe_deadline_ms: 10,
        },
        streak: false,
    };
    assert_eq!(half_open.admit(0), None);
}
