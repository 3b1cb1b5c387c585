//! `c4mesh replay` from inside the cluster: an Indexed Job of N shards, and a ConfigMap
//! for the traffic file.
//!
//! ## Why a Job, and why Indexed
//!
//! A load generator on a laptop measures its own uplink as much as the gateway. Pods in
//! the cluster reach the ingress gateway's Service directly ([`in_cluster_gateway`]),
//! and N of them add up to a load no single client sends. Each pod must know which
//! share is its own: an Indexed Job numbers its pods `0..N` and keeps that number
//! through retries, so shard `I` of `N` is a fact of the pod rather than something the
//! shards agree on. The replay command itself splits the load: every pod is given the
//! totals (`--rate`, or a closed loop's `--concurrency`; `--count`) and `--shard I/N`
//! (0-based `I`) and sends its share; of a traffic file, every N-th request, at its
//! recorded time with `--recorded`.
//!
//! ## What the extra arguments may say
//!
//! Any `c4mesh replay` argument replay can shard, and only a check of what cannot work
//! in a pod: a flag the Job sets itself (`--target`, `--shard`, `--json`, ...), a flag
//! that names a file on the operator's machine (`--file`, `--cacert`: the pod has the
//! image's binary and the ConfigMap's traffic, nothing else), two paces at once (the
//! rate with `--concurrency` or `--recorded`), `--recorded` without a traffic file,
//! and a `--concurrency` or `--count` smaller than the shards, which would leave a
//! shard with no client or no request (replay refuses that shard, and the Job fails).
//! Those are refused when the Job is written, not as a failed pod after it is applied.
//!
//! ## How the index reaches the command
//!
//! The Job controller writes each pod's index into its annotation
//! `batch.kubernetes.io/job-completion-index`. The container declares the variable
//! `JOB_COMPLETION_INDEX` from that annotation through the downward API, and its args
//! say `--shard $(JOB_COMPLETION_INDEX)/N`: the kubelet expands `$(NAME)` in args from
//! the container's environment. (On Kubernetes 1.33 the controller adds the same
//! variable to a container that lacks it, from the pod's index label; declaring it makes
//! the manifest say where the value comes from, and the controller leaves a declared
//! one alone.) Every other `$` in the args is doubled, `$$` being the kubelet's escape,
//! so operator text such as an `--slo` expression reaches the command as written.
//!
//! ## Reports
//!
//! The pods run `replay --json`: the report is the container's standard output, and
//! `kubectl logs` of each pod is its shard's report (the progress line is drawn only on
//! a terminal, which a pod has not). There is no volume to copy from: a finished pod's
//! files cannot be reached with `kubectl cp`, its log can. `c4mesh replay merge` joins
//! the N reports (docs/deploy.md).
//!
//! ## Failures
//!
//! `restartPolicy: Never` and `backoffLimitPerIndex: 1`: a shard that crashed (exit 1,
//! an evicted pod) is started once more, alone, while the others run on. A shard that
//! finished with a verdict is not retried (`podFailurePolicy`, `FailIndex`): a gate
//! failed (exit 3), the abort guard stopped it (exit 4), or its arguments were refused
//! (exit 2); running it again would send its share a second time, after the others. The
//! Job then ends `Failed` with the shard in `status.failedIndexes`, its report still in
//! its log. There is no Job-wide `backoffLimit` (under `backoffLimitPerIndex` it
//! defaults to the largest int32): reached, it would stop the shards still running and
//! lose their reports.
//!
//! ## Outside the mesh, with its own core
//!
//! The pods are labelled `sidecar.istio.io/inject: "false"`: the load enters through the
//! gateway as a client's does, with no proxy of its own in front of it and no sidecar to
//! keep a finished pod running. Requests equal limits (Guaranteed QoS), so a shard is
//! neither squeezed by its neighbours nor evicted first, which the report would show as
//! the gateway's latency; one core holds `replay`'s default single event loop.

use crate::objects::{yaml_documents, INGRESS_GATEWAY_NAMESPACE, INGRESS_GATEWAY_SERVICE};
use crate::Error;
use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, EnvVar, EnvVarSource,
    ObjectFieldSelector, PodSpec, PodTemplateSpec, ResourceRequirements, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// The `app.kubernetes.io/name` of the Job, its pods and its ConfigMap.
pub const APP_NAME: &str = "c4mesh-replay";
/// The pod annotation the Job controller writes each pod's index into.
pub const COMPLETION_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// The variable the shard argument names, declared from [`COMPLETION_INDEX_ANNOTATION`].
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// The container's name (the pod failure policy names it too).
pub const CONTAINER: &str = "replay";
/// Where the traffic file is mounted in the pods.
pub const TRAFFIC_PATH: &str = "/etc/c4mesh-replay/traffic.jsonl";
const TRAFFIC_DIR: &str = "/etc/c4mesh-replay";
const TRAFFIC_KEY: &str = "traffic.jsonl";
/// Most shards a Job may have: Kubernetes' limit on an Indexed Job's parallelism.
pub const MAX_SHARDS: u32 = 100_000;
/// Most bytes a ConfigMap's data may hold (Kubernetes refuses larger ones).
pub const MAX_TRAFFIC_BYTES: usize = 1024 * 1024;
/// Exit statuses of `c4mesh replay` that are a verdict, not a crash: bad arguments,
/// a failed `--slo`, a run stopped by `--abort-on`. Such a shard is not retried.
pub const VERDICT_EXIT_CODES: [i32; 3] = [2, 3, 4];

/// The ingress gateway's Service by its cluster DNS name, on its HTTP port (80): the
/// Service `istio-system/istio-ingressgateway` the generated manifests write.
pub fn in_cluster_gateway() -> String {
    format!("http://{INGRESS_GATEWAY_SERVICE}.{INGRESS_GATEWAY_NAMESPACE}.svc.cluster.local")
}

/// What a replay Job runs. [`ReplayJobOptions::new`] gives the defaults of all but the
/// load.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayJobOptions {
    /// The Job's name, and its ConfigMap's (default `c4mesh-replay`).
    pub name: String,
    /// Where the Job runs (default `ecommerce`).
    pub namespace: String,
    /// The image with `c4mesh` on its `PATH` (default `c4mesh:<version>`; an ECR URI,
    /// best by digest, in practice).
    pub image: String,
    /// Pods sending at once, each a share of the load (at least 1).
    pub shards: u32,
    /// Requests per second over all shards; the replay command splits it. `None` when
    /// the extra arguments pace the load instead: `--concurrency N` (a closed loop of N
    /// clients over all shards) or `--recorded` (the traffic file's own times).
    pub rate: Option<f64>,
    /// How long each shard sends (`30s`, `10m`, `1h`).
    pub duration: String,
    /// The gateway (default [`in_cluster_gateway`]).
    pub target: String,
    /// The host requests name (default `api.c4ang.com`).
    pub host: String,
    /// More `c4mesh replay` arguments, as given (`--slo`, `p99<50ms`, `--abort-on`, ...).
    pub extra_args: Vec<String>,
    /// JSONL traffic, put into the ConfigMap and replayed from [`TRAFFIC_PATH`];
    /// without it, the built-in mix over the six routes (and no ConfigMap).
    pub traffic: Option<String>,
    /// CPU each shard requests and is limited to (default `1`).
    pub cpu: String,
    /// Memory each shard requests and is limited to (default `256Mi`).
    pub memory: String,
}

impl ReplayJobOptions {
    /// `shards` pods sending `rate` requests per second between them for `duration`
    /// (`None`: paced by the extra arguments), through the in-cluster gateway, with the
    /// image of this version.
    pub fn new(shards: u32, rate: impl Into<Option<f64>>, duration: &str) -> ReplayJobOptions {
        ReplayJobOptions {
            name: APP_NAME.into(),
            namespace: "ecommerce".into(),
            image: format!("c4mesh:{}", env!("CARGO_PKG_VERSION")),
            shards,
            rate: rate.into(),
            duration: duration.into(),
            target: in_cluster_gateway(),
            host: "api.c4ang.com".into(),
            extra_args: Vec::new(),
            traffic: None,
            cpu: "1".into(),
            memory: "256Mi".into(),
        }
    }
}

/// An option a replay Job cannot be made from; [`ReplayJobError::option`] names the
/// field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplayJobError {
    #[error("shards must be between 1 and {MAX_SHARDS} (the most pods an Indexed Job runs at once), got {0}")]
    Shards(u32),
    #[error("rate must be a positive number of requests per second, got {0}")]
    Rate(f64),
    #[error("duration {reason}")]
    Duration { text: String, reason: String },
    #[error("target must be an http:// or https:// URL, got {0:?}")]
    Target(String),
    #[error("host must be a host name such as api.c4ang.com, got {0:?}")]
    Host(String),
    #[error("image must name an image (c4mesh:0.1.0, an ECR URI), got {0:?}")]
    Image(String),
    #[error("{option} must be a DNS label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit), got {value:?}")]
    Label { option: &'static str, value: String },
    #[error("{option} must be a Kubernetes quantity such as {example}, got {value:?}")]
    Quantity {
        option: &'static str,
        value: String,
        example: &'static str,
    },
    #[error("rate is needed, unless the replay arguments pace the load with --concurrency (a closed loop) or --recorded (the traffic file's times)")]
    NoPace,
    #[error("extra_args: {arg} {reason}")]
    ExtraArg { arg: String, reason: &'static str },
    #[error("extra_args: {flag} {total} is split over the {shards} shards and would leave a shard with none: give at least {shards}")]
    Split {
        flag: &'static str,
        total: u64,
        shards: u32,
    },
    #[error("traffic is empty: leave it out to replay the built-in mix")]
    EmptyTraffic,
    #[error("traffic is {0} bytes, more than a ConfigMap holds ({MAX_TRAFFIC_BYTES})")]
    TrafficTooLarge(usize),
}

impl ReplayJobError {
    /// The field of [`ReplayJobOptions`] that was refused.
    pub fn option(&self) -> &'static str {
        match self {
            ReplayJobError::Shards(_) => "shards",
            ReplayJobError::Rate(_) | ReplayJobError::NoPace => "rate",
            ReplayJobError::Duration { .. } => "duration",
            ReplayJobError::Target(_) => "target",
            ReplayJobError::Host(_) => "host",
            ReplayJobError::Image(_) => "image",
            ReplayJobError::Label { option, .. } | ReplayJobError::Quantity { option, .. } => {
                option
            }
            ReplayJobError::ExtraArg { .. } | ReplayJobError::Split { .. } => "extra_args",
            ReplayJobError::EmptyTraffic | ReplayJobError::TrafficTooLarge(_) => "traffic",
        }
    }
}

/// The objects to apply: the ConfigMap (with a traffic file) and the Job.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayJob {
    pub config_map: Option<ConfigMap>,
    pub job: Job,
}

impl ReplayJob {
    /// One YAML stream, the ConfigMap first, under a header that says how to collect
    /// the reports.
    pub fn yaml(&self) -> Result<String, Error> {
        let meta = &self.job.metadata;
        let name = meta.name.as_deref().unwrap_or_default();
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        let shards = self
            .job
            .spec
            .as_ref()
            .and_then(|spec| spec.completions)
            .unwrap_or_default();
        let mut out = format!(
            "# Generated by `c4mesh manifests replay-job`: {shards} shard(s) of `c4mesh replay`.\n\
             # Each shard prints its JSON report on standard output. Once the Job is done\n\
             # (kubectl -n {namespace} wait --for=condition=complete job/{name}), the log of each\n\
             # pod labelled batch.kubernetes.io/job-name={name} that exited 0, 3 or 4 is a report;\n\
             # `c4mesh replay merge` joins them (docs/deploy.md, \"Load from inside the cluster\").\n"
        );
        if let Some(config_map) = &self.config_map {
            out.push_str(&yaml_documents("replay config map", &[config_map])?);
        }
        out.push_str(&yaml_documents("replay job", &[&self.job])?);
        Ok(out)
    }
}

/// The Job (and ConfigMap) that run `c4mesh replay` as `options.shards` shards; see the
/// module notes for why each setting.
pub fn replay_job(options: &ReplayJobOptions) -> Result<ReplayJob, ReplayJobError> {
    check(options)?;
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), APP_NAME.to_owned()),
        (
            "app.kubernetes.io/instance".to_owned(),
            options.name.clone(),
        ),
    ]);
    let meta = ObjectMeta {
        name: Some(options.name.clone()),
        namespace: Some(options.namespace.clone()),
        labels: Some(labels.clone()),
        ..Default::default()
    };
    let config_map = options.traffic.as_ref().map(|traffic| ConfigMap {
        metadata: meta.clone(),
        data: Some(BTreeMap::from([(TRAFFIC_KEY.to_owned(), traffic.clone())])),
        ..Default::default()
    });

    let mut args: Vec<String> = vec![
        "replay".into(),
        "--target".into(),
        escape(&options.target),
        "--host".into(),
        escape(&options.host),
        "--duration".into(),
        escape(&options.duration),
        "--shard".into(),
        format!("$({COMPLETION_INDEX_ENV})/{}", options.shards),
    ];
    if let Some(rate) = options.rate {
        args.extend(["--rate".into(), rate.to_string()]);
    }
    if config_map.is_some() {
        args.extend(["--file".into(), TRAFFIC_PATH.into()]);
    }
    args.push("--json".into());
    args.extend(options.extra_args.iter().map(|arg| escape(arg)));

    let quantities = BTreeMap::from([
        ("cpu".to_owned(), Quantity(options.cpu.clone())),
        ("memory".to_owned(), Quantity(options.memory.clone())),
    ]);
    let container = Container {
        name: CONTAINER.into(),
        image: Some(options.image.clone()),
        command: Some(vec!["c4mesh".into()]),
        args: Some(args),
        env: Some(vec![EnvVar {
            name: COMPLETION_INDEX_ENV.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: format!("metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(quantities.clone()),
            limits: Some(quantities),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: config_map.as_ref().map(|_| {
            vec![VolumeMount {
                name: "traffic".into(),
                mount_path: TRAFFIC_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            }]
        }),
        ..Default::default()
    };
    let mut pod_labels = labels;
    pod_labels.insert("sidecar.istio.io/inject".into(), "false".into());
    let shards =
        i32::try_from(options.shards).map_err(|_| ReplayJobError::Shards(options.shards))?;
    let job = Job {
        metadata: meta,
        spec: Some(JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(shards),
            parallelism: Some(shards),
            backoff_limit_per_index: Some(1),
            pod_failure_policy: Some(PodFailurePolicy {
                rules: vec![PodFailurePolicyRule {
                    action: "FailIndex".into(),
                    on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                        container_name: Some(CONTAINER.into()),
                        operator: "In".into(),
                        values: VERDICT_EXIT_CODES.to_vec(),
                    }),
                    ..Default::default()
                }],
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    automount_service_account_token: Some(false),
                    containers: vec![container],
                    volumes: options.traffic.as_ref().map(|_| {
                        vec![Volume {
                            name: "traffic".into(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: options.name.clone(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }]
                    }),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(ReplayJob { config_map, job })
}

/// `$` doubled: the kubelet turns `$$` back into `$` and expands no `$(NAME)` in it.
fn escape(arg: &str) -> String {
    arg.replace('$', "$$")
}

// === Checks ===

/// Flags the Job sets itself, and what sets them instead.
const OWN_FLAGS: [(&str, &str); 6] = [
    ("--target", "is the option target"),
    ("--host", "is the option host"),
    ("--rate", "is the option rate"),
    ("--duration", "is the option duration"),
    ("--shard", "is set by the Job from each pod's index"),
    (
        "--json",
        "is set by the Job: the reports are collected as JSON",
    ),
];

/// Flags that name a file on the machine the command runs on: a pod has only the
/// image's binary and the ConfigMap's traffic.
const FILE_FLAGS: [(&str, &str); 2] = [
    (
        "--file",
        "names a file the pods do not have: give it as the option traffic (replay-job's own --file), which the Job mounts from its ConfigMap",
    ),
    (
        "--cacert",
        "names a file the pods do not have: use --insecure for a gateway with a self-signed certificate",
    ),
];

/// The flags that pace the load instead of the option rate: a closed loop's clients,
/// split over the shards, and a traffic file's recorded times, its requests dealt.
const CONCURRENCY: &str = "--concurrency";
const RECORDED: &str = "--recorded";
/// Flags whose total replay splits over the shards: each shard must get at least one.
const SPLIT_FLAGS: [&str; 2] = [CONCURRENCY, "--count"];

fn check(options: &ReplayJobOptions) -> Result<(), ReplayJobError> {
    if options.shards == 0 || options.shards > MAX_SHARDS {
        return Err(ReplayJobError::Shards(options.shards));
    }
    if let Some(rate) = options
        .rate
        .filter(|rate| !(*rate > 0.0 && rate.is_finite()))
    {
        return Err(ReplayJobError::Rate(rate));
    }
    let duration_error = |reason: String| ReplayJobError::Duration {
        text: options.duration.clone(),
        reason,
    };
    match c4mesh_filter_core::duration::parse_millis(&options.duration) {
        Ok(0) => {
            return Err(duration_error(format!(
                "must be at least 1ms, got {:?}",
                options.duration
            )))
        }
        Ok(_) => {}
        Err(reason) => return Err(duration_error(reason)),
    }
    let rest = options
        .target
        .strip_prefix("http://")
        .or_else(|| options.target.strip_prefix("https://"));
    if !rest.is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/') && plain(rest)) {
        return Err(ReplayJobError::Target(options.target.clone()));
    }
    if options.host.is_empty() || options.host.contains('/') || !plain(&options.host) {
        return Err(ReplayJobError::Host(options.host.clone()));
    }
    if options.image.is_empty() || !plain(&options.image) {
        return Err(ReplayJobError::Image(options.image.clone()));
    }
    for (option, value) in [("name", &options.name), ("namespace", &options.namespace)] {
        if !dns_label(value) {
            return Err(ReplayJobError::Label {
                option,
                value: value.clone(),
            });
        }
    }
    for (option, value, example) in [
        ("cpu", &options.cpu, "1 or 500m"),
        ("memory", &options.memory, "256Mi or 1Gi"),
    ] {
        if !quantity(value) {
            return Err(ReplayJobError::Quantity {
                option,
                value: value.clone(),
                example,
            });
        }
    }
    check_extra_args(options)?;
    match &options.traffic {
        Some(traffic) if traffic.trim().is_empty() => Err(ReplayJobError::EmptyTraffic),
        Some(traffic) if traffic.len() > MAX_TRAFFIC_BYTES => {
            Err(ReplayJobError::TrafficTooLarge(traffic.len()))
        }
        _ => Ok(()),
    }
}

/// The extra arguments: none the Job sets itself or that names a file, one pace (the
/// option rate, `--concurrency` or `--recorded`), and a share for every shard of the
/// totals replay splits. Anything else replay checks itself, in each pod.
fn check_extra_args(options: &ReplayJobOptions) -> Result<(), ReplayJobError> {
    let args = &options.extra_args;
    let refuse = |arg: &str, reason: &'static str| ReplayJobError::ExtraArg {
        arg: arg.to_owned(),
        reason,
    };
    for arg in args {
        let flag = flag_of(arg);
        let refused = OWN_FLAGS
            .iter()
            .chain(&FILE_FLAGS)
            .find(|(own, _)| *own == flag);
        if let Some((_, reason)) = refused {
            return Err(refuse(arg, reason));
        }
    }
    let given = |flag: &str| args.iter().find(|arg| flag_of(arg) == flag);
    match (options.rate, given(CONCURRENCY), given(RECORDED)) {
        (None, None, None) => return Err(ReplayJobError::NoPace),
        (Some(_), Some(arg), _) => {
            return Err(refuse(
                arg,
                "makes a closed loop, the option rate an open one: give one of them",
            ))
        }
        (Some(_), None, Some(arg)) => {
            return Err(refuse(
                arg,
                "sends at the traffic file's recorded times, which the option rate would replace: leave the rate out",
            ))
        }
        (None, Some(_), Some(arg)) => {
            return Err(refuse(
                arg,
                "is an open loop, --concurrency a closed one: give one of them",
            ))
        }
        (None, None, Some(arg)) if options.traffic.is_none() => {
            return Err(refuse(
                arg,
                "replays a traffic file's recorded times: give the option traffic",
            ))
        }
        _ => {}
    }
    for flag in SPLIT_FLAGS {
        let Some(at) = args.iter().position(|arg| flag_of(arg) == flag) else {
            continue;
        };
        let value = match args[at].split_once('=') {
            Some((_, value)) => Some(value),
            None => args.get(at + 1).map(String::as_str),
        };
        let total = value
            .and_then(|value| value.parse::<u64>().ok())
            .ok_or_else(|| refuse(&args[at], "needs a whole number"))?;
        if total < u64::from(options.shards) {
            return Err(ReplayJobError::Split {
                flag,
                total,
                shards: options.shards,
            });
        }
    }
    Ok(())
}

/// The flag of an argument written `--flag` or `--flag=value`.
fn flag_of(arg: &str) -> &str {
    arg.split_once('=').map_or(arg, |(flag, _)| flag)
}

/// Printable and without spaces.
fn plain(text: &str) -> bool {
    text.chars().all(|c| c.is_ascii_graphic())
}

/// An RFC 1123 label, as Kubernetes requires of namespaces and of a Job's name (its
/// pods carry it as a label value).
fn dns_label(text: &str) -> bool {
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    text.len() <= 63
        && text.starts_with(alphanumeric)
        && text.ends_with(alphanumeric)
        && text.chars().all(|c| alphanumeric(c) || c == '-')
}

/// A positive Kubernetes quantity in plain notation: a decimal number and an optional
/// SI suffix (`500m`, `1`, `1.5`, `256Mi`, `1G`).
fn quantity(text: &str) -> bool {
    const SUFFIXES: [&str; 14] = [
        "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    SUFFIXES.contains(&suffix)
        && number.split('.').count() <= 2
        && !number.starts_with('.')
        && !number.ends_with('.')
        && number.parse::<f64>().is_ok_and(|n| n > 0.0)
}

#[cfg(test)]
mod tests;
