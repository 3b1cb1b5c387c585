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
                rate: Some(0.0),
                ..base()
            },
            "rate",
        ),
        (
            ReplayJobOptions {
                rate: Some(f64::NAN),
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

/// The extra arguments of `options`, as the pods run them, after the Job's own.
fn extra(options: ReplayJobOptions) -> Result<Vec<String>, ReplayJobError> {
    let given = options.extra_args.len();
    let args = args(&replay_job(&options)?);
    Ok(args[args.len() - given..].to_vec())
}

#[test]
fn what_replay_shards_is_passed_on_to_every_pod() {
    let closed = || ReplayJobOptions {
        extra_args: vec!["--concurrency".into(), "64".into()],
        ..ReplayJobOptions::new(8, None, "10m")
    };
    let job = replay_job(&closed()).unwrap();
    assert!(!args(&job).contains(&"--rate".to_owned()), "a closed loop");
    assert_eq!(after(&args(&job), "--concurrency"), "64", "the total");
    assert_eq!(extra(closed()).unwrap(), ["--concurrency", "64"]);

    let recorded = ReplayJobOptions {
        traffic: Some("{\"path\": \"/api/v1/orders/1\", \"at_ms\": 0}\n".into()),
        extra_args: vec!["--recorded".into(), "--speed=2".into()],
        ..ReplayJobOptions::new(8, None, "10m")
    };
    let job = replay_job(&recorded).unwrap();
    let pod_args = args(&job);
    assert_eq!(after(&pod_args, "--file"), TRAFFIC_PATH);
    assert!(!pod_args.contains(&"--rate".to_owned()), "the file's times");
    assert!(pod_args.contains(&"--recorded".to_owned()));

    // A count is split too, at a rate or in a closed loop; --threads and
    // --connections are each pod's own.
    for options in [
        ReplayJobOptions::new(8, 400.0, "10m"),
        ReplayJobOptions::new(8, None, "10m"),
    ] {
        let mut args = vec!["--count=8", "--threads", "2", "--connections", "16"];
        if options.rate.is_none() {
            args.push("--concurrency=8");
        }
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let given = ReplayJobOptions {
            extra_args: args.clone(),
            ..options
        };
        assert_eq!(extra(given).unwrap(), args);
    }
}

#[test]
fn what_cannot_work_in_a_job_is_refused_naming_the_flag() {
    let refusal = |rate: Option<f64>, extra_args: &[&str], traffic: Option<&str>| {
        refused(ReplayJobOptions {
            extra_args: extra_args.iter().map(|&arg| arg.to_owned()).collect(),
            traffic: traffic.map(str::to_owned),
            ..ReplayJobOptions::new(8, rate, "10m")
        })
        .to_string()
    };
    let file = Some("{\"path\": \"/a\", \"at_ms\": 0}\n");
    let rate = Some(400.0);
    // The rate, the extra arguments and the traffic given, and the start of the message
    // they are refused with.
    type Case<'a> = (Option<f64>, &'a [&'a str], Option<&'a str>, &'a str);
    let cases: [Case; 10] = [
        (
            None,
            &[],
            None,
            "rate is needed, unless the replay arguments pace the load with --concurrency \
             (a closed loop) or --recorded (the traffic file's times)",
        ),
        (
            rate,
            &["--concurrency", "64"],
            None,
            "extra_args: --concurrency makes a closed loop, the option rate an open one: \
             give one of them",
        ),
        (
            rate,
            &["--recorded"],
            file,
            "extra_args: --recorded sends at the traffic file's recorded times, which the \
             option rate would replace: leave the rate out",
        ),
        (
            None,
            &["--concurrency=8", "--recorded"],
            file,
            "extra_args: --recorded is an open loop, --concurrency a closed one: give one of \
             them",
        ),
        (
            None,
            &["--recorded"],
            None,
            "extra_args: --recorded replays a traffic file's recorded times: give the \
             option traffic",
        ),
        (
            None,
            &["--concurrency", "7"],
            None,
            "extra_args: --concurrency 7 is split over the 8 shards and would leave a shard \
             with none: give at least 8",
        ),
        (
            rate,
            &["--count=3"],
            None,
            "extra_args: --count 3 is split over the 8 shards and would leave a shard with \
             none: give at least 8",
        ),
        (
            rate,
            &["--count"],
            None,
            "extra_args: --count needs a whole number",
        ),
        (
            rate,
            &["--file", "t.jsonl"],
            None,
            "extra_args: --file names a file the pods do not have",
        ),
        (
            rate,
            &["--cacert=ca.pem"],
            None,
            "extra_args: --cacert=ca.pem names a file the pods do not have",
        ),
    ];
    for (rate, extra_args, traffic, message) in cases {
        let refusal = refusal(rate, extra_args, traffic);
        assert!(refusal.starts_with(message), "{refusal}");
    }
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
            extra_args: vec!["--insecure".into(), "--count".into(), "1000000".into()],
            ..ReplayJobOptions::new(MAX_SHARDS, 1.0, "1.5s")
        })
        .unwrap();
    }
}
