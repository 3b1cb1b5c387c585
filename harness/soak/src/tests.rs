use super::faults::{self, decide, phase_at, phase_length, Answer, Fault, FAULTS};
use super::sample::{self, reading, rss_bytes, Sample, COLUMNS};
use super::verdict::{judge, Limits};
use super::*;
use c4mesh_mesh::envoy::parse_stats;

#[test]
fn phases_put_every_fault_on_every_route_over_thirty_phases() {
    let length = Duration::from_secs(2);
    let mut pairs = BTreeSet::new();
    for p in 0..30u64 {
        let phase = phase_at(Duration::from_millis(p * 2000 + 1999), length, 6);
        assert_eq!(phase.index, p);
        pairs.insert((phase.fault.label(), phase.route));
    }
    assert_eq!(pairs.len(), 30);
}

#[test]
fn phases_shorten_so_every_fault_runs_in_the_first_third() {
    let run = Duration::from_secs(30);
    let length = phase_length(run, Duration::from_secs(5), Duration::from_secs(1));
    assert_eq!(length, Duration::from_secs(2));
    assert!(length * FAULTS.len() as u32 <= run / 3);
    let long = phase_length(
        Duration::from_secs(600),
        Duration::from_secs(5),
        Duration::from_secs(1),
    );
    assert_eq!(long, Duration::from_secs(5));
}

#[test]
fn each_fault_answers_as_named_and_only_on_its_route() {
    assert_eq!(decide(Fault::Unavailable, 0, 0), Answer::Status(503));
    assert_eq!(decide(Fault::Reset, 0, 0), Answer::Reset);
    assert_eq!(decide(Fault::Hang, 0, 0), Answer::Hang);
    assert_eq!(decide(Fault::BadHost, 3, 0), Answer::Status(503));
    assert_eq!(decide(Fault::BadHost, 4, 0), Answer::Status(200));
    let failed = (0..10_000)
        .filter(|&n| decide(Fault::ErrorRate(300), 0, n) == Answer::Status(503))
        .count();
    assert!((2_800..3_200).contains(&failed), "{failed}");

    let state = faults::FaultState::default();
    assert_eq!(
        state.answer(1, Some(2)),
        Answer::Status(200),
        "before any phase"
    );
    state.enter(phase_at(Duration::ZERO, Duration::from_secs(1), 6));
    assert_eq!(state.answer(1, Some(0)), Answer::Status(503));
    assert_eq!(state.answer(1, Some(1)), Answer::Status(200));
    assert_eq!(state.answer(1, None), Answer::Status(200));
    assert_eq!(state.attempts(), 4);
}

#[test]
fn the_original_dst_patch_makes_every_cluster_take_the_header() {
    let mut bootstrap = json!({"static_resources": {"clusters": [
        {"name": "a", "lb_policy": "ROUND_ROBIN", "load_assignment": {}},
        {"name": "b", "lb_policy": "ROUND_ROBIN", "load_assignment": {}}
    ]}});
    original_dst_clusters(&mut bootstrap);
    for cluster in bootstrap["static_resources"]["clusters"]
        .as_array()
        .expect("clusters")
    {
        assert_eq!(cluster["type"], "ORIGINAL_DST");
        assert_eq!(cluster["lb_policy"], "CLUSTER_PROVIDED");
        assert_eq!(
            cluster["original_dst_lb_config"]["http_header_name"],
            ORIGINAL_DST_HEADER
        );
        assert!(cluster.get("load_assignment").is_none());
    }
}

#[test]
fn requests_name_their_upstream_and_spread_over_the_pool() {
    let routes = Routes::defaults();
    let address: std::net::SocketAddr = "127.0.0.1:4321".parse().expect("an address");
    let r = request(&routes, 7, Some(address));
    assert_eq!(
        r.headers,
        [(ORIGINAL_DST_HEADER.to_owned(), "127.0.0.1:4321".to_owned())]
    );
    assert!(request(&routes, 7, None).headers.is_empty());
    // 30 rotating addresses and the pair, six routes: every route meets every
    // address, and about a quarter of the requests go to the pair, half to each.
    let address = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let picks: addresses::Picks = Arc::new(std::sync::RwLock::new(addresses::Live {
        pair: vec![address(1000), address(1001)],
        rotating: (0..30).map(|p| address(2000 + p)).collect(),
    }));
    let mut pairs = BTreeSet::new();
    let mut to_pair = [0u64; 2];
    for i in 0..24_000u64 {
        let a = addresses::pick(&picks, i).expect("a pick");
        pairs.insert((i % 6, a.port()));
        if a.port() < 2000 {
            to_pair[usize::from(a.port() - 1000)] += 1;
        }
    }
    assert_eq!(pairs.len(), 6 * 32);
    for n in to_pair {
        assert!((2_700..3_300).contains(&n), "{to_pair:?}");
    }
}

#[test]
fn stats_and_proc_status_become_a_reading() {
    let stats = parse_stats(
        r#"{"stats": [
            {"name": "wasmcustom.c4mesh.vm_memory_bytes", "value": 2228224},
            {"name": "wasmcustom.c4mesh.shared_keys", "value": 13},
            {"name": "wasmcustom.c4mesh.shared_bytes", "value": 4000},
            {"name": "wasmcustom.c4mesh.route.orders.requests_total", "value": 10},
            {"name": "wasmcustom.c4mesh.route.saga.requests_total", "value": 5},
            {"name": "wasmcustom.c4mesh.route.saga.fail_fast_total", "value": 2},
            {"name": "server.memory_allocated", "value": 9000000},
            {"name": "cluster.order-service.membership_total", "value": 7},
            {"name": "cluster.saga-tracker.membership_total", "value": 3},
            {"name": "server.version_text", "value": "1.40.0"},
            {"histograms": {"supported_quantiles": [0, 25], "computed_quantiles": []}}
        ]}"#,
    )
    .expect("JSON stats");
    let r = reading(&stats, "Name:\tenvoy\nVmRSS:\t   51200 kB\nThreads: 9\n");
    assert_eq!(r.vm_memory_bytes, Some(2_228_224));
    assert_eq!((r.shared_keys, r.shared_bytes), (Some(13), Some(4000)));
    assert_eq!((r.filter_requests, r.fail_fast), (15, 2));
    assert_eq!(r.envoy_upstream_hosts, 10);
    assert_eq!(r.envoy_rss_bytes, 51_200 * 1024);
    assert_eq!(r.envoy_heap_bytes, 9_000_000);
    assert_eq!(rss_bytes("VmHWM: 1 kB\n"), None);
    let missing = reading(&BTreeMap::new(), "");
    assert_eq!(missing.vm_memory_bytes, None);
}

fn at(seconds: u64, vm: u64, rss: u64, keys: u64) -> Sample {
    Sample {
        elapsed: Duration::from_secs(seconds),
        proxy: sample::ProxyReading {
            vm_memory_bytes: Some(vm),
            envoy_rss_bytes: rss,
            shared_keys: Some(keys),
            shared_bytes: Some(1000),
            ..sample::ProxyReading::default()
        },
        ..Sample::default()
    }
}

fn all_faults() -> BTreeSet<&'static str> {
    FAULTS.iter().map(|f| f.label()).collect()
}

const BOUND: Bound = Bound {
    keys: 13,
    bytes: 10_000,
};

#[test]
fn flat_memory_and_a_fixed_key_set_pass() {
    let samples: Vec<Sample> = (0..=30)
        .map(|t| at(t, 2 << 20, (40 << 20) + (t % 3) * 100_000, 13))
        .collect();
    let checks = judge(
        &samples,
        Duration::from_secs(30),
        BOUND,
        &all_faults(),
        &Limits::default(),
    );
    assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
}

#[test]
fn growing_memory_a_growing_key_set_or_a_missing_fault_fail() {
    let run = Duration::from_secs(30);
    let failed = |samples: &[Sample], faults: &BTreeSet<&'static str>| -> Vec<&'static str> {
        judge(samples, run, BOUND, faults, &Limits::default())
            .into_iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect()
    };
    // A VM leaking 64 KiB a second.
    let leaking: Vec<Sample> = (0..=30)
        .map(|t| at(t, (2 << 20) + t * 65_536, 40 << 20, 13))
        .collect();
    assert_eq!(failed(&leaking, &all_faults()), ["filter VM memory flat"]);
    // Envoy growing 1 MiB a second.
    let bloating: Vec<Sample> = (0..=30)
        .map(|t| at(t, 2 << 20, (40 << 20) + (t << 20), 13))
        .collect();
    assert_eq!(failed(&bloating, &all_faults()), ["Envoy RSS flat"]);
    // A key per host.
    let spreading: Vec<Sample> = (0..=30).map(|t| at(t, 2 << 20, 40 << 20, 13 + t)).collect();
    assert_eq!(
        failed(&spreading, &all_faults()),
        ["shared-data keys bounded"]
    );
    // No gauges at all: nothing to judge is a failure, not a pass.
    let silent: Vec<Sample> = (0..=30)
        .map(|t| Sample {
            elapsed: Duration::from_secs(t),
            proxy: sample::ProxyReading {
                envoy_rss_bytes: 40 << 20,
                ..sample::ProxyReading::default()
            },
            ..Sample::default()
        })
        .collect();
    assert_eq!(
        failed(&silent, &all_faults()),
        [
            "filter VM memory flat",
            "shared-data keys bounded",
            "shared-data bytes bounded"
        ]
    );
    let flat: Vec<Sample> = (0..=30).map(|t| at(t, 2 << 20, 40 << 20, 13)).collect();
    let mut some = all_faults();
    some.remove("hang");
    assert_eq!(failed(&flat, &some), ["every fault ran"]);
    assert_eq!(
        failed(&flat[..3], &all_faults()),
        [
            "samples in the first and the last third",
            "filter VM memory flat",
            "Envoy RSS flat"
        ]
    );
}

#[test]
fn the_csv_has_a_header_and_a_row_per_sample_with_matching_columns() {
    let samples = vec![at(0, 1, 2, 3), at(2, 4, 5, 6)];
    let text = sample::csv(&samples);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], COLUMNS.join(","));
    for line in &lines[1..] {
        assert_eq!(line.split(',').count(), COLUMNS.len());
    }
    let mut quiet = at(4, 0, 0, 0);
    quiet.proxy.vm_memory_bytes = None;
    assert!(
        quiet.row().contains(",,"),
        "an absent gauge is an empty cell"
    );
}

#[test]
fn the_plot_is_an_svg_with_a_line_per_series() {
    let samples: Vec<Sample> = (0..10).map(|t| at(t, 2 << 20, 40 << 20, 13)).collect();
    let svg = plot::svg(&samples, (13, 10_000));
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 10);
    assert_eq!(svg.matches("stroke-dasharray").count(), 2, "the two bounds");
}

#[test]
fn a_failed_write_keeps_its_io_error_as_the_source() {
    let path = std::path::Path::new("/nonexistent/c4mesh-soak/soak.csv");
    let error = super::write(path, "x").expect_err("no such directory");
    assert!(matches!(&error, Error::Write { path: p, .. } if p == path));
    let source = std::error::Error::source(&error).expect("a source");
    assert_eq!(
        source
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind),
        Some(std::io::ErrorKind::NotFound)
    );
}
