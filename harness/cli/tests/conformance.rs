//! The conformance suite (`harness/conformance/suite/`, built into the binary) on both targets, as `cargo test` runs
//! it: everything passes and the targets agree; a wrong filter fails; the command
//! prints the report it promises, the same with scenarios run side by side.
//!
//! The suite's Envoy scenarios run in wall time, so the tests of this binary take turns:
//! each runs as many scenarios at once as its `jobs` say, and no more are added to the
//! CPU by another test.

use c4mesh_conformance::{self as conformance, scenario, suite, Options, Target};
use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

#[path = "common/command.rs"]
mod command;
use command::c4mesh;

fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn filter() -> PathBuf {
    c4mesh_guests::FILTER.file().expect("the filter's file")
}

#[test]
fn the_suite_passes_on_wasm_and_envoy_and_the_targets_agree() {
    let _serial = one_at_a_time();
    let scenarios = suite::load("").expect("the suite loads");
    assert!(scenarios.len() >= 40, "only {} scenarios", scenarios.len());
    let covered: BTreeSet<&str> = scenarios
        .iter()
        .flat_map(|s| s.rules.iter().map(String::as_str))
        .collect();
    for rule in [
        "R1", "R2", "R3", "R4", "R5", "R6", "R7", "B1", "B2", "B3", "B4", "B5", "O1", "O2", "O3",
        "O4", "O5", "2.1", "2.5", "S1", "S2", "S3", "S4", "S5",
    ] {
        assert!(covered.contains(rule), "no scenario covers {rule}");
    }
    let both = scenarios
        .iter()
        .filter(|s| {
            s.targets.contains(&scenario::TargetKind::Wasm)
                && s.targets.contains(&scenario::TargetKind::Envoy)
        })
        .count();
    assert_eq!(
        both,
        scenarios.len(),
        "every scenario runs on wasm and envoy"
    );
    let options = Options {
        scenarios,
        targets: vec![Target::Wasm, Target::Envoy],
        wasm: filter(),
        jobs: Options::default_jobs(),
    };
    let suite = conformance::run(&options, |report| {
        if !report.passed() {
            eprint!("{}", conformance::report::table_lines(report));
        }
    });
    println!("{}", suite.summary_line());
    assert_eq!(suite.failed(), 0, "{}", suite.summary_line());
    assert_eq!(suite.disagreements(), 0, "{}", suite.summary_line());
    assert!(suite.expectations() >= 400, "{}", suite.summary_line());
}

#[test]
fn a_filter_that_does_nothing_fails_the_suite() {
    let _serial = one_at_a_time();
    let scenarios = suite::load("").expect("the suite loads");
    let options = Options {
        scenarios,
        targets: vec![Target::Wasm],
        wasm: c4mesh_guests::NOOP.file().expect("the no-op module's file"),
        jobs: Options::default_jobs(),
    };
    let suite = conformance::run(&options, |_| {});
    let failed: Vec<&str> = suite
        .scenarios
        .iter()
        .filter(|s| !s.passed())
        .map(|s| s.name.as_str())
        .collect();
    println!(
        "{} ({} scenarios failed)",
        suite.summary_line(),
        failed.len()
    );
    assert!(!suite.passed());
    for expected in [
        "an outage of order-service costs at most the B5 bound with the budget",
        "raw dot segments get 400 bad_path",
        "five consecutive 5xx open the route circuit, which then fails fast",
        "a budget ratio above 1 is rejected naming retry_budget.ratio",
    ] {
        assert!(
            failed.contains(&expected),
            "{expected:?} passed with a no-op module"
        );
    }
}

#[test]
fn the_command_prints_a_json_summary_and_fails_on_a_wrong_module() {
    let _serial = one_at_a_time();
    let filter = filter();
    let (code, stdout, stderr) = c4mesh(&[
        "conformance",
        "--target",
        "wasm",
        "--json",
        "--wasm",
        filter.to_str().unwrap_or_default(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    let summary = &report["summary"];
    assert!(
        summary["scenarios"].as_u64().unwrap_or(0) >= 40,
        "{summary}"
    );
    assert!(
        summary["expectations"].as_u64().unwrap_or(0) > 0,
        "{summary}"
    );
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(summary["disagreements"], 0, "{summary}");
    let first = &report["scenarios"][0]["expectations"][0];
    assert_eq!(first["targets"]["wasm"]["outcome"], "pass", "{first}");

    let noop = c4mesh_guests::NOOP.file().expect("the no-op module's file");
    let (code, stdout, _) = c4mesh(&[
        "conformance",
        "--target",
        "wasm",
        "--json",
        "--wasm",
        noop.to_str().unwrap_or_default(),
    ]);
    assert_ne!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert!(report["summary"]["failed"].as_u64().unwrap_or(0) > 0);
}

#[test]
fn bad_scenarios_and_arguments_are_named() {
    let _serial = one_at_a_time();
    let dir_dir = tempfile::Builder::new()
        .prefix("c4mesh-scenarios-")
        .tempdir()
        .expect("a temporary directory");
    let dir = dir_dir.path().join("c4mesh-scenarios");
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("broken.yaml"),
        "name: broken\nrules: [R1]\nsteps:\n  - request: {path: /a}\n    expect: {statuz: 200}\n",
    )
    .expect("write");
    let filter = filter();
    let (code, _, stderr) = c4mesh(&[
        "conformance",
        "--target",
        "wasm",
        "--scenarios",
        dir.to_str().unwrap_or_default(),
        "--wasm",
        filter.to_str().unwrap_or_default(),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("broken.yaml:5: steps[0].expect"),
        "{stderr}"
    );
    assert!(stderr.contains("statuz"), "{stderr}");
    let (code, _, stderr) = c4mesh(&["conformance", "--target", "nginx"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--target"), "{stderr}");
    let (code, _, stderr) = c4mesh(&["conformance", "--jobs", "0"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--jobs"), "{stderr}");
}

#[test]
fn scenarios_run_side_by_side_report_what_a_serial_run_does() {
    let _serial = one_at_a_time();
    let filter = filter();
    let report = |jobs: &str| {
        let (code, stdout, stderr) = c4mesh(&[
            "conformance",
            "--scenarios",
            "harness/conformance/suite/cost",
            "--json",
            "--jobs",
            jobs,
            "--wasm",
            filter.to_str().unwrap_or_default(),
        ]);
        assert_eq!(code, 0, "--jobs {jobs}: {stderr}");
        let mut report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
        let summary = report["summary"].as_object_mut().expect("a summary object");
        assert_eq!(
            summary.remove("jobs"),
            Some(jobs.parse::<u64>().expect("a number").into())
        );
        summary.remove("wall_seconds");
        summary.remove("elapsed_seconds");
        // What Envoy observed is counted in wall time and may differ by a request or two
        // from one run to the next, serial or not; its outcome may not.
        for scenario in report["scenarios"].as_array_mut().into_iter().flatten() {
            for row in scenario["expectations"]
                .as_array_mut()
                .into_iter()
                .flatten()
            {
                if let Some(envoy) = row["targets"]["envoy"].as_object_mut() {
                    envoy.remove("observed");
                }
            }
        }
        report
    };
    let serial = report("1");
    assert!(
        serial["summary"]["scenarios"].as_u64().unwrap_or(0) >= 5,
        "{}",
        serial["summary"]
    );
    assert_eq!(
        serial["summary"]["targets"],
        serde_json::json!(["wasm", "envoy"])
    );
    assert_eq!(report("3"), serial);
}

#[test]
fn the_url_target_checks_a_live_gateway_and_sees_what_a_client_sees() {
    let _serial = one_at_a_time();
    // A gateway run by someone else: the local mesh with the filter's defaults, serving
    // HTTP and HTTPS (its certificate names api.c4ang.com, signed by its own CA).
    let certs_dir = tempfile::Builder::new()
        .prefix("c4mesh-url-target-")
        .tempdir()
        .expect("a temporary directory");
    let certs = certs_dir.path().join("c4mesh-url-target");
    let certificates = c4mesh_mesh::tls::generate(&certs, "api.c4ang.com").expect("certificates");
    let ca = certificates.ca.clone();
    let gateway = c4mesh_mesh::LocalMesh::start(c4mesh_mesh::mesh::MeshOptions {
        tls: Some(certificates),
        ..c4mesh_mesh::mesh::MeshOptions::gateway(c4mesh_mesh::Wasm::filter("").expect("filter"))
    })
    .expect("local mesh");
    let scenarios: Vec<_> = suite::load("")
        .expect("scenarios load")
        .into_iter()
        .filter(|s| s.targets.contains(&scenario::TargetKind::Url))
        .collect();
    assert!(
        scenarios.len() >= 5,
        "only {} url scenarios",
        scenarios.len()
    );
    let trusted = c4mesh_live::Settings {
        cacert: Some(ca),
        ..c4mesh_live::Settings::default()
    };
    let https = gateway.envoy.tls_url().expect("the gateway serves HTTPS");
    let options = Options {
        scenarios,
        targets: vec![Target::Url {
            base: gateway.envoy.url(),
            host: None,
            settings: c4mesh_live::Settings::default(),
        }],
        wasm: filter(),
        jobs: NonZeroUsize::MIN,
    };
    let show = |report: &conformance::report::ScenarioReport| {
        if !report.passed() {
            eprint!("{}", conformance::report::table_lines(report));
        }
    };
    let suite = conformance::run(&options, show);
    println!("http: {}", suite.summary_line());
    assert!(suite.passed(), "{}", suite.summary_line());
    let over_tls = Options {
        targets: vec![Target::Url {
            base: https.clone(),
            host: None,
            settings: trusted,
        }],
        ..options.clone()
    };
    let suite = conformance::run(&over_tls, show);
    println!("https: {}", suite.summary_line());
    assert!(suite.passed(), "{}", suite.summary_line());

    // Without trusting the gateway's CA, nothing gets through, and the report says why.
    let untrusted = Options {
        targets: vec![Target::Url {
            base: https,
            host: None,
            settings: c4mesh_live::Settings::default(),
        }],
        ..options.clone()
    };
    let suite = conformance::run(&untrusted, |_| {});
    assert!(!suite.passed());
    let json = suite.json().to_string();
    assert!(json.contains("tls_unknown_ca"), "{json}");

    // Against a gateway without the filter, the same scenarios fail.
    drop(gateway);
    let bare = c4mesh_mesh::LocalMesh::start(c4mesh_mesh::mesh::MeshOptions {
        workers: 1,
        ..c4mesh_mesh::mesh::MeshOptions::gateway(c4mesh_mesh::Wasm::None)
    })
    .expect("local mesh without Wasm");
    let options = Options {
        targets: vec![Target::Url {
            base: bare.envoy.url(),
            host: Some("api.c4ang.com".into()),
            settings: c4mesh_live::Settings::default(),
        }],
        ..options
    };
    let suite = conformance::run(&options, |_| {});
    assert!(suite.failed() > 0, "{}", suite.summary_line());
    let _ = std::fs::remove_dir_all(certs);
}
