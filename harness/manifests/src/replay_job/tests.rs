//! The replay Job's shape and the options it refuses. (Its validity against the
//! Kubernetes schema is tested in `tests/replay_job.rs`.)

use super::*;

fn spec(job: &ReplayJob) -> &JobSpec {
    job.job.spec.as_ref().unwrap()
}

fn container(job: &ReplayJob) -> &Container {
    &spec(job).template.spec.as_ref().unwrap().containers[0]
}

fn args(job: &ReplayJob) -> Vec<String> {
    container(job).args.clone().unwrap()
}

/// The value that follows `flag` in the args.
fn after(args: &[String], flag: &str) -> String {
    let at = args.iter().position(|a| a == flag).expect(flag);
    args[at + 1].clone()
}

#[test]
fn n_shards_are_n_completions_run_at_once() {
    for shards in [1, 8, 100] {
        let job = replay_job(&ReplayJobOptions::new(shards, 40_000.0, "10m")).unwrap();
        let spec = spec(&job);
        assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
        assert_eq!(spec.completions, Some(shards as i32));
        assert_eq!(spec.parallelism, Some(shards as i32));
        assert_eq!(
            after(&args(&job), "--shard"),
            format!("$(JOB_COMPLETION_INDEX)/{shards}")
        );
    }
}

#[test]
fn the_shard_argument_names_the_completion_index() {
    let job = replay_job(&ReplayJobOptions::new(8, 40_000.0, "10m")).unwrap();
    let env = container(&job).env.clone().unwrap();
    let index: Vec<&EnvVar> = env
        .iter()
        .filter(|e| e.name == COMPLETION_INDEX_ENV)
        .collect();
    assert_eq!(index.len(), 1);
    let field = index[0]
        .value_from
        .as_ref()
        .and_then(|from| from.field_ref.as_ref())
        .unwrap();
    assert_eq!(
        field.field_path,
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    );
    assert!(after(&args(&job), "--shard").starts_with("$(JOB_COMPLETION_INDEX)/"));
}

#[test]
fn the_pods_replay_the_total_rate_and_print_json() {
    let job = replay_job(&ReplayJobOptions::new(8, 40_000.0, "10m")).unwrap();
    let args = args(&job);
    assert_eq!(container(&job).command, Some(vec!["c4mesh".to_owned()]));
    assert_eq!(args[0], "replay");
    assert_eq!(
        after(&args, "--target"),
        "http://istio-ingressgateway.istio-system.svc.cluster.local"
    );
    assert_eq!(after(&args, "--host"), "api.c4ang.com");
    assert_eq!(
        after(&args, "--rate"),
        "40000",
        "the total: replay splits it"
    );
    assert_eq!(after(&args, "--duration"), "10m");
    assert!(args.contains(&"--json".to_owned()));
    assert!(!args.contains(&"--file".to_owned()), "the built-in mix");
    assert_eq!(
        replay_job(&ReplayJobOptions::new(3, 0.5, "30s"))
            .map(|job| after(&self::args(&job), "--rate"))
            .unwrap(),
        "0.5"
    );
}

#[test]
fn pods_run_once_outside_the_mesh_with_guaranteed_resources() {
    let job = replay_job(&ReplayJobOptions::new(2, 100.0, "1m")).unwrap();
    let template = &spec(&job).template;
    let pod = template.spec.as_ref().unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let labels = template.metadata.as_ref().unwrap().labels.clone().unwrap();
    assert_eq!(labels["app.kubernetes.io/name"], "c4mesh-replay");
    assert_eq!(labels["sidecar.istio.io/inject"], "false");
    assert_eq!(
        job.job.metadata.labels.clone().unwrap()["app.kubernetes.io/name"],
        "c4mesh-replay"
    );
    let resources = container(&job).resources.clone().unwrap();
    assert_eq!(resources.requests, resources.limits);
    assert_eq!(resources.requests.unwrap()["cpu"], Quantity("1".into()));

    let spec = spec(&job);
    assert_eq!(spec.backoff_limit_per_index, Some(1));
    assert_eq!(spec.backoff_limit, None);
    let rule = &spec.pod_failure_policy.as_ref().unwrap().rules[0];
    assert_eq!(rule.action, "FailIndex");
    let codes = rule.on_exit_codes.as_ref().unwrap();
    assert_eq!(codes.container_name.as_deref(), Some(CONTAINER));
    assert_eq!(codes.values, [2, 3, 4]);
}

#[test]
fn a_traffic_file_goes_into_the_config_map_and_is_mounted() {
    let traffic = "{\"method\": \"GET\", \"path\": \"/api/v1/products/1\"}\n";
    let job = replay_job(&ReplayJobOptions {
        traffic: Some(traffic.into()),
        ..ReplayJobOptions::new(4, 1000.0, "2m")
    })
    .unwrap();
    let config_map = job.config_map.clone().unwrap();
    assert_eq!(config_map.metadata.name.as_deref(), Some("c4mesh-replay"));
    assert_eq!(config_map.data.unwrap()["traffic.jsonl"], traffic);
    assert_eq!(after(&args(&job), "--file"), TRAFFIC_PATH);
    let pod = spec(&job).template.spec.clone().unwrap();
    let volume = &pod.volumes.unwrap()[0];
    assert_eq!(volume.config_map.as_ref().unwrap().name, "c4mesh-replay");
    let mount = &container(&job).volume_mounts.clone().unwrap()[0];
    assert_eq!(mount.name, volume.name);
    assert_eq!(
        format!("{}/{TRAFFIC_KEY}", mount.mount_path),
        TRAFFIC_PATH,
        "the key's file is where --file points"
    );

    let without = replay_job(&ReplayJobOptions::new(4, 1000.0, "2m")).unwrap();
    assert!(without.config_map.is_none());
    assert!(spec(&without)
        .template
        .spec
        .as_ref()
        .unwrap()
        .volumes
        .is_none());
}

#[test]
fn extra_args_follow_as_written_with_dollars_escaped() {
    let job = replay_job(&ReplayJobOptions {
        extra_args: vec![
            "--slo".into(),
            "p99<50ms".into(),
            "--abort-on=errors>5%/10s".into(),
            "$(HOME)".into(),
        ],
        ..ReplayJobOptions::new(2, 100.0, "1m")
    })
    .unwrap();
    let args = args(&job);
    assert_eq!(
        args[args.len() - 4..],
        ["--slo", "p99<50ms", "--abort-on=errors>5%/10s", "$$(HOME)"]
    );
}

#[test]
fn the_yaml_holds_the_config_map_then_the_job() {
    let job = replay_job(&ReplayJobOptions {
        traffic: Some("{}\n".into()),
        ..ReplayJobOptions::new(8, 40_000.0, "10m")
    })
    .unwrap();
    let text = job.yaml().unwrap();
    assert!(text.starts_with("# Generated by `c4mesh manifests replay-job`: 8 shard(s)"));
    let kinds: Vec<String> = serde_saphyr::from_multiple::<serde_json::Value>(&text)
        .unwrap()
        .into_iter()
        .map(|value| value["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["ConfigMap", "Job"]);
}

/// The option each bad value is refused for.
fn refused(options: ReplayJobOptions) -> ReplayJobError {
    replay_job(&options).unwrap_err()
}

#[test]
fn bad_options_are_refused_naming_the_option() {
    let base = || ReplayJobOptions::new(8, 40_000.0, "10m");
    let cases: Vec<(ReplayJobOptions, &str)> = vec![
        (
            ReplayJobOptions {
                shards: 0,
                ..base()
            },
            "shards",
        ),
        (
            ReplayJobOptions {
                shards: 100_001,
                ..base()
            },
            "shards",
        ),
        (
            ReplayJobOptions {
                rate: 0.0,
                ..base()
            },
            "rate",
        ),
        (
            ReplayJobOptions {
                rate: f64::NAN,
                ..base()
            },
            "rate",
        ),
        (
            ReplayJobOptions {
                duration: "ten minutes".into(),
                ..base()
            },
            "duration",
        ),
        (
            ReplayJobOptions {
                duration: "10".into(),
                ..base()
            },
            "duration",
        ),
        (
            ReplayJobOptions {
                duration: "0s".into(),
                ..base()
            },
            "duration",
        ),
        (
            ReplayJobOptions {
                duration: "2d".into(),
                ..base()
            },
            "duration",
        ),
        (
            ReplayJobOptions {
                target: "istio-ingressgateway".into(),
                ..base()
            },
            "target",
        ),
        (
            ReplayJobOptions {
                target: "http://".into(),
                ..base()
            },
            "target",
        ),
        (
            ReplayJobOptions {
                host: "".into(),
                ..base()
            },
            "host",
        ),
        (
            ReplayJobOptions {
                image: "".into(),
                ..base()
            },
            "image",
        ),
        (
            ReplayJobOptions {
                image: "c4mesh 0.1".into(),
                ..base()
            },
            "image",
        ),
        (
            ReplayJobOptions {
                name: "Replay".into(),
                ..base()
            },
            "name",
        ),
        (
            ReplayJobOptions {
                namespace: "-x".into(),
                ..base()
            },
            "namespace",
        ),
        (
            ReplayJobOptions {
                namespace: "a".repeat(64),
                ..base()
            },
            "namespace",
        ),
        (
            ReplayJobOptions {
                cpu: "one".into(),
                ..base()
            },
            "cpu",
        ),
        (
            ReplayJobOptions {
                memory: "256MB".into(),
                ..base()
            },
            "memory",
        ),
        (
            ReplayJobOptions {
                memory: "0".into(),
                ..base()
            },
            "memory",
        ),
        (
            ReplayJobOptions {
                extra_args: vec!["--rate".into(), "9".into()],
                ..base()
            },
            "extra_args",
        ),
        (
            ReplayJobOptions {
                extra_args: vec!["--shard=0/2".into()],
                ..base()
            },
            "extra_args",
        ),
        (
            ReplayJobOptions {
                extra_args: vec!["--concurrency".into(), "4".into()],
                ..base()
            },
            "extra_args",
        ),
        (
            ReplayJobOptions {
                traffic: Some(" \n".into()),
                ..base()
            },
            "traffic",
        ),
        (
            ReplayJobOptions {
                traffic: Some("x".repeat(MAX_TRAFFIC_BYTES + 1)),
                ..base()
            },
            "traffic",
        ),
    ];
    for (options, option) in cases {
        let error = refused(options);
        assert_eq!(error.option(), option, "{error}");
        assert!(
            error.to_string().starts_with(option),
            "the message names the option first: {error}"
        );
    }
}

#[test]
fn errors_say_what_was_given() {
    let error = refused(ReplayJobOptions::new(0, 1.0, "1m"));
    assert_eq!(error, ReplayJobError::Shards(0));
    assert_eq!(
        error.to_string(),
        "shards must be between 1 and 100000 (the most pods an Indexed Job runs at once), got 0"
    );
    let error = refused(ReplayJobOptions::new(1, 1.0, "ten"));
    assert_eq!(
        error.to_string(),
        "duration must be a duration such as \"250ms\", \"10s\" or \"5m\", got \"ten\""
    );
    let error = refused(ReplayJobOptions {
        extra_args: vec!["--json".into()],
        ..ReplayJobOptions::new(1, 1.0, "1m")
    });
    assert_eq!(
        error.to_string(),
        "extra_args: --json is set by the Job: the reports are collected as JSON"
    );
}

#[test]
fn good_values_pass() {
    for (cpu, memory) in [("500m", "1Gi"), ("2", "512Mi"), ("1.5", "1G")] {
        replay_job(&ReplayJobOptions {
            cpu: cpu.into(),
            memory: memory.into(),
            target: "https://nlb.example.elb.amazonaws.com:443".into(),
            name: "replay-2".into(),
            image: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/c4mesh@sha256:0123".into(),
            extra_args: vec!["--insecure".into(), "--count".into(), "1000".into()],
            ..ReplayJobOptions::new(MAX_SHARDS, 1.0, "1.5s")
        })
        .unwrap();
    }
}
