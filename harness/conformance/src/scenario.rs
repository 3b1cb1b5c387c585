//! The scenario format: what a conformance file says, read from YAML.
//!
//! A scenario is data, not code: the filter's configuration, the upstreams' fault
//! profiles and how they change over time, the traffic, and what must be observed.
//! The same file runs on every target it declares, so it can only say what each target
//! can observe the same way: statuses, headers and bodies the client gets, which
//! service and how many attempts each request caused (recorded by the simulated
//! upstreams), metrics and log lines of the filter. Timing is in scenario time:
//! virtual on the `wasm` target, wall time on `envoy` and `url`.
//!
//! Errors name the file, the line and the field path (`steps[2].expect.status`), so a
//! scenario author never has to guess. The format is documented in
//! `docs/scenarios.md`, and `harness/conformance/suite/scenario.schema.json` describes it for
//! editors and for validation.

use super::Error;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A conformance scenario, as read from its file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// One line saying what is checked.
    pub name: String,
    /// The SPEC rule ids the scenario covers (`R2`, `B5`, `O3`, `2.1`, `2.5`...).
    pub rules: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Targets the scenario runs on (default `wasm` and `envoy`).
    #[serde(default = "default_targets")]
    pub targets: Vec<TargetKind>,
    /// The plugin configuration as a JSON object; absent: empty (the defaults).
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// The plugin configuration as raw text, for malformed JSON.
    #[serde(default)]
    pub config_text: Option<String>,
    /// The seed of every random choice (error rates, latencies, back-off jitter).
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default)]
    pub mesh: Mesh,
    /// Services calling each other through their pods' sidecars (SPEC 3.4); absent:
    /// the entry proxy alone in front of the services.
    #[serde(default)]
    pub topology: Option<TopologySpec>,
    /// Istio resources laid over the generated ones before the translation (SPEC 3.4):
    /// a resource of the same kind, namespace and name replaces the generated one, any
    /// other is added (VirtualServices bound to `mesh`, the operator's own
    /// VirtualService or DestinationRule, ...).
    #[serde(default)]
    pub istio: Vec<serde_json::Value>,
    /// Changes of upstream behaviour over scenario time.
    #[serde(default)]
    pub upstreams: Vec<FaultChange>,
    /// Traffic, in order; each step starts when the previous one has finished, or at its
    /// `at` if that is later.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Checked after the last step, once the filter's metrics have been flushed.
    #[serde(default)]
    pub finally: Option<Final>,
    /// The configuration must be rejected (2.1): checked instead of traffic.
    #[serde(default)]
    pub rejected: Option<Rejection>,
    /// Where the scenario came from (set when loaded).
    #[serde(skip)]
    pub file: PathBuf,
    /// An operator's folder of Istio YAML laid over the scenario's resources last
    /// (`--istio DIR`).
    #[serde(skip)]
    pub istio_dir: Option<PathBuf>,
}

fn default_targets() -> Vec<TargetKind> {
    vec![TargetKind::Wasm, TargetKind::Envoy]
}

fn default_seed() -> u64 {
    1
}

/// Where a scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The harness host in wasmtime, with the emulated router and simulated upstreams
    /// in virtual time.
    Wasm,
    /// A real Envoy with the filter, the simulated upstreams served on loopback.
    Envoy,
    /// A live gateway: request-level expectations only.
    Url,
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetKind::Wasm => "wasm",
            TargetKind::Envoy => "envoy",
            TargetKind::Url => "url",
        })
    }
}

/// The mesh under the filter: proxy workers, hosts per service, Envoy outlier
/// detection on the clusters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mesh {
    /// Worker threads of the proxy (worker VMs of the filter).
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Hosts per service.
    #[serde(default = "default_hosts")]
    pub hosts: usize,
    /// The clusters' per-try timeout (none by default, as Istio without `perTryTimeout`).
    #[serde(default, deserialize_with = "optional_duration")]
    pub per_try_timeout: Option<Duration>,
    /// Replaces the generated DestinationRules' outlier detection.
    #[serde(default)]
    pub outlier_detection: Option<OutlierDetection>,
    /// `meshConfig.pathNormalization.normalization`: `base` (Istio's default: paths
    /// normalised before any filter) or `none` (the filter sees paths as sent).
    #[serde(default)]
    pub path_normalization: PathNormalization,
    /// Which gateway is the entry proxy: the Istio `Gateway`'s ingress gateway, or the
    /// proxy Istio deploys for the Gateway API `Gateway` (its HTTPRoutes and plugin).
    #[serde(default)]
    pub gateway: GatewayKind,
}

/// The entry gateway of a scenario.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GatewayKind {
    #[default]
    Istio,
    GatewayApi,
}

/// The path normalisation modes the emulated proxies model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathNormalization {
    #[default]
    Base,
    None,
}

impl Default for Mesh {
    fn default() -> Mesh {
        Mesh {
            workers: default_workers(),
            hosts: default_hosts(),
            per_try_timeout: None,
            outlier_detection: None,
            path_normalization: PathNormalization::Base,
            gateway: GatewayKind::Istio,
        }
    }
}

fn default_workers() -> usize {
    2
}

fn default_hosts() -> usize {
    2
}

/// The mesh beyond the entry proxy: who calls whom, and which proxies run the filter.
///
/// Each pod of a calling service has its own sidecar (its own VMs, shared data,
/// budgets and circuits) routing by destination authority under Istio's in-mesh retry
/// policy. A service that calls others does so for each request it serves, in order,
/// and answers 503 when a call fails (5xx or no response).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologySpec {
    /// A calling service and the services it calls, in call order.
    pub calls: BTreeMap<String, Vec<String>>,
    /// Which proxies run the filter (default `all`).
    #[serde(default)]
    pub filter_at: FilterAt,
    /// The sidecars' plugin configuration (default: the mesh's sidecar configuration,
    /// `c4mesh_filter_core::config::SIDECAR_CONFIG_JSON`).
    #[serde(default)]
    pub sidecar_config: Option<serde_json::Value>,
}

/// Which proxies of a topology run the filter; the others run without Wasm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterAt {
    /// The gateway and every sidecar.
    #[default]
    All,
    Gateway,
    Sidecars,
    /// Istio alone.
    None,
}

impl FilterAt {
    pub fn gateway(self) -> bool {
        matches!(self, FilterAt::All | FilterAt::Gateway)
    }

    pub fn sidecars(self) -> bool {
        matches!(self, FilterAt::All | FilterAt::Sidecars)
    }
}

/// Envoy cluster outlier detection (the DestinationRule's `outlierDetection`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierDetection {
    pub consecutive_5xx: u32,
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    #[serde(deserialize_with = "duration")]
    pub base_ejection: Duration,
    pub max_ejection_percent: u32,
}

/// From `at` on, some hosts of a service answer differently.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultChange {
    #[serde(default, deserialize_with = "duration")]
    pub at: Duration,
    pub service: String,
    /// One host (0-based); absent: every host of the service.
    #[serde(default)]
    pub host: Option<usize>,
    #[serde(flatten)]
    pub profile: Profile,
}

/// How a host answers each attempt.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The status of every answer (default 200).
    #[serde(default)]
    pub status: Option<u16>,
    /// Statuses of successive attempts; the last repeats.
    #[serde(default)]
    pub statuses: Option<Vec<u16>>,
    /// Fraction of attempts answered with `error_status` (seeded).
    #[serde(default)]
    pub error_rate: Option<f64>,
    /// The status of the errors `error_rate` picks (default 503).
    #[serde(default)]
    pub error_status: Option<u16>,
    /// Time before the answer: `20ms`, or `{min: 5ms, max: 50ms}` (uniform, seeded).
    #[serde(default)]
    pub latency: Option<Latency>,
    /// Close the connection without answering.
    #[serde(default)]
    pub reset: bool,
    /// Never answer (until the proxy gives up on the attempt).
    #[serde(default)]
    pub hang: bool,
    /// The host's pod is gone: every connection to it is refused (Envoy's
    /// `connect-failure`), and it records no attempts. Only from `at: 0s` on, for the
    /// whole scenario.
    #[serde(default)]
    pub down: bool,
}

/// Upstream latency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    Fixed(Duration),
    Uniform { min: Duration, max: Duration },
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Latency, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Range {
            min: String,
            max: String,
        }
        #[derive(Deserialize)]
        #[serde(
            untagged,
            expecting = "expected a duration such as 20ms, or {min: 5ms, max: 50ms}"
        )]
        enum Wire {
            Fixed(String),
            Range(Range),
        }
        let latency = match Wire::deserialize(deserializer)? {
            Wire::Fixed(text) => parse_duration(&text).map(Latency::Fixed),
            Wire::Range(Range { min, max }) => parse_duration(&min).and_then(|min| {
                let max = parse_duration(&max)?;
                if min > max {
                    return Err("latency: min must not exceed max".to_owned());
                }
                Ok(Latency::Uniform { min, max })
            }),
        };
        latency.map_err(de::Error::custom)
    }
}

/// A step of traffic: one request, or the same request repeated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default)]
    pub name: Option<String>,
    /// Do not start before this scenario time.
    #[serde(default, deserialize_with = "optional_duration")]
    pub at: Option<Duration>,
    pub request: RequestSpec,
    #[serde(default)]
    pub repeat: Option<Repeat>,
    /// What every response of the step must show.
    #[serde(default)]
    pub expect: Option<Expect>,
    /// What the step's responses must show together.
    #[serde(default)]
    pub aggregate: Option<Aggregate>,
}

/// The request a client sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    #[serde(default = "default_method")]
    pub method: String,
    pub path: String,
    /// The Host header; `null` sends none. Default `api.c4ang.com`.
    #[serde(default = "default_host", deserialize_with = "nullable_string")]
    pub host: Option<String>,
    /// Extra headers, in order.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    /// The client closes its connection this long after sending if no response has
    /// come by then (a client reset, to the proxy).
    #[serde(default, deserialize_with = "optional_duration")]
    pub abort_after: Option<Duration>,
}

fn default_method() -> String {
    "GET".into()
}

fn default_host() -> Option<String> {
    Some("api.c4ang.com".into())
}

/// Repetition: a count or a duration, at a rate (open loop) or as fast as `concurrency`
/// clients can (closed loop).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    #[serde(default)]
    pub count: Option<usize>,
    #[serde(default, deserialize_with = "optional_duration")]
    pub duration: Option<Duration>,
    /// Requests per second; absent: closed loop.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Requests in flight at most (default: 1 in a closed loop, 16 at a rate).
    #[serde(default)]
    pub concurrency: Option<usize>,
}

/// Expectations on each response of a step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The status, or any of a list.
    #[serde(default)]
    pub status: Option<OneOrMany<u16>>,
    /// Response headers with these exact values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub headers_present: Vec<String>,
    #[serde(default)]
    pub headers_absent: Vec<String>,
    /// Fields of the JSON body with these values.
    #[serde(default)]
    pub body: Option<serde_json::Map<String, serde_json::Value>>,
    /// The service whose host answered the final attempt; `none` for no upstream.
    #[serde(default)]
    pub service: Option<String>,
    /// Upstream attempts the request caused.
    #[serde(default)]
    pub attempts: Option<Bound>,
    /// Headers the upstream received (on the first attempt), with these values.
    #[serde(default)]
    pub upstream_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub upstream_headers_absent: Vec<String>,
    /// No response: the client gave up at the request's `abort_after` (instead of the
    /// usual check that every request was answered).
    #[serde(default)]
    pub aborted: bool,
}

/// Expectations on a step's responses together.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    /// Responses per status.
    #[serde(default)]
    pub statuses: BTreeMap<u16, Bound>,
    /// Responses per `x-c4-reason`.
    #[serde(default)]
    pub reasons: BTreeMap<String, Bound>,
    /// Upstream attempts of the step.
    #[serde(default)]
    pub attempts: Option<Bound>,
    /// Upstream attempts per request of the step.
    #[serde(default)]
    pub attempts_per_request: Option<Bound>,
    /// Upstream attempts per host of the step, keyed `service/index`.
    #[serde(default)]
    pub hosts: BTreeMap<String, Bound>,
    /// Attempts at a service (or `service/index`) per request of the step, counting
    /// every hop: the per-hop amplification of a topology.
    #[serde(default)]
    pub attempts_per_request_at: BTreeMap<String, Bound>,
}

/// Checked at the end of the scenario.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Final {
    /// Filter metrics by name (`c4mesh.route.orders.requests_total`).
    #[serde(default)]
    pub metrics: BTreeMap<String, Bound>,
    /// Upstream attempts over the whole scenario, keyed `service` or `service/index`.
    #[serde(default)]
    pub attempts: BTreeMap<String, Bound>,
    /// Substrings that some line the filter logged must contain.
    #[serde(default)]
    pub logs: Vec<String>,
    /// Substrings that no line the filter logged may contain.
    #[serde(default)]
    pub logs_absent: Vec<String>,
    /// Each proxy of a topology: `gateway`, a pod's sidecar `service/index`, or
    /// `service` for the sum (metrics) or union (logs) over its pods' sidecars.
    #[serde(default)]
    pub proxies: BTreeMap<String, ProxyExpect>,
}

impl Final {
    /// Whether any check reads the filter's metrics, which lag traffic by up to a tick
    /// (SPEC 2.5) and so must be waited for; attempts and log lines need no wait.
    pub fn reads_metrics(&self) -> bool {
        !self.metrics.is_empty() || self.proxies.values().any(|p| !p.metrics.is_empty())
    }
}

/// What one proxy of a topology must show at the end.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyExpect {
    #[serde(default)]
    pub metrics: BTreeMap<String, Bound>,
    #[serde(default)]
    pub logs: Vec<String>,
    #[serde(default)]
    pub logs_absent: Vec<String>,
}

/// The configuration must be rejected, with a log line naming the field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    /// A substring of the filter's error line.
    pub log: String,
}

/// A single value or a list of accepted values.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged, expecting = "expected a value or a list of values")]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: PartialEq> OneOrMany<T> {
    pub fn accepts(&self, value: &T) -> bool {
        match self {
            OneOrMany::One(one) => one == value,
            OneOrMany::Many(many) => many.contains(value),
        }
    }
}

impl<T: fmt::Display> fmt::Display for OneOrMany<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OneOrMany::One(one) => write!(f, "{one}"),
            OneOrMany::Many(many) => {
                let all: Vec<String> = many.iter().map(ToString::to_string).collect();
                write!(f, "one of {}", all.join(", "))
            }
        }
    }
}

/// A number expected exactly (`3`) or within bounds (`{min: 1, max: 4.5}`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Bound {
    pub fn exactly(value: f64) -> Bound {
        Bound {
            min: Some(value),
            max: Some(value),
        }
    }

    pub fn holds(&self, value: f64) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value <= max)
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.min, self.max) {
            (Some(a), Some(b)) if a == b => write!(f, "= {a}"),
            (Some(a), Some(b)) => write!(f, "in [{a}, {b}]"),
            (Some(a), None) => write!(f, ">= {a}"),
            (None, Some(b)) => write!(f, "<= {b}"),
            (None, None) => write!(f, "any"),
        }
    }
}

impl<'de> Deserialize<'de> for Bound {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Bound, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Range {
            #[serde(default)]
            min: Option<f64>,
            #[serde(default)]
            max: Option<f64>,
        }
        #[derive(Deserialize)]
        #[serde(
            untagged,
            expecting = "expected a number, or {min: N, max: N} with at least one bound"
        )]
        enum Wire {
            Exact(f64),
            Range(Range),
        }
        match Wire::deserialize(deserializer)? {
            Wire::Exact(value) => Ok(Bound::exactly(value)),
            Wire::Range(Range {
                min: None,
                max: None,
            }) => Err(de::Error::custom(
                "a number, or {min: N, max: N} with at least one bound",
            )),
            Wire::Range(Range { min, max }) => Ok(Bound { min, max }),
        }
    }
}

/// Parses `250ms`, `2s`, `1.5s`, `1m` (the filter's spelling).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    c4mesh_filter_core::duration::parse_millis(text).map(Duration::from_millis)
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(de::Error::custom)
}

fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(Some)
}

fn nullable_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(deserializer)
}

// === Loading ===

/// Reads one scenario file.
pub fn load(path: &Path) -> Result<Scenario, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses scenario text; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<Scenario, Error> {
    let file = path.display().to_string();
    let mut field = String::new();
    let mut scenario: Scenario = serde_saphyr::with_deserializer_from_str(text, |deserializer| {
        serde_path_to_error::deserialize(deserializer).map_err(|error| {
            field = error.path().to_string();
            error.into_inner()
        })
    })
    .map_err(|error| Error::Scenario {
        file: file.clone(),
        line: c4mesh_mesh::yaml::line(&error),
        field: if field == "." {
            String::new()
        } else {
            std::mem::take(&mut field)
        },
        message: c4mesh_mesh::yaml::message(&error),
    })?;
    scenario.file = path.to_path_buf();
    if let Err(Error::Scenario { field, message, .. }) = istio_resources(&scenario) {
        let needle = field.split('.').next().unwrap_or("istio").to_owned();
        return Err(Error::Scenario {
            file,
            line: locate(text, "istio:").or_else(|| locate(text, &needle)),
            field,
            message,
        });
    }
    check(&scenario).map_err(|(field, needle, message)| Error::Scenario {
        file,
        line: needle.and_then(|n| locate(text, &n)),
        field,
        message,
    })?;
    Ok(scenario)
}

/// The first line containing `needle` (1-based).
fn locate(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

/// A semantic error: the field path, a text to find its line by, and the reason.
type Problem = (String, Option<String>, String);

/// What the types cannot say: consistency between fields.
fn check(scenario: &Scenario) -> Result<(), Problem> {
    let problem = |field: &str, needle: Option<&str>, message: String| -> Problem {
        (field.to_owned(), needle.map(str::to_owned), message)
    };
    if scenario.rules.is_empty() {
        return Err(problem(
            "rules",
            Some("rules:"),
            "must name at least one rule id".into(),
        ));
    }
    if scenario.targets.is_empty() {
        return Err(problem(
            "targets",
            Some("targets:"),
            "must name at least one target".into(),
        ));
    }
    if scenario.config.is_some() && scenario.config_text.is_some() {
        return Err(problem(
            "config_text",
            Some("config_text:"),
            "give either config or config_text, not both".into(),
        ));
    }
    if let Some(config) = &scenario.config {
        if !config.is_object() {
            return Err(problem(
                "config",
                Some("config:"),
                "must be a mapping (the plugin configuration object)".into(),
            ));
        }
    }
    if !(1..=16).contains(&scenario.mesh.workers) {
        return Err(problem(
            "mesh.workers",
            Some("workers:"),
            format!("must be within [1, 16], got {}", scenario.mesh.workers),
        ));
    }
    if !(1..=8).contains(&scenario.mesh.hosts) {
        return Err(problem(
            "mesh.hosts",
            Some("hosts:"),
            format!("must be within [1, 8], got {}", scenario.mesh.hosts),
        ));
    }
    if scenario.rejected.is_some() && !scenario.steps.is_empty() {
        return Err(problem(
            "steps",
            Some("steps:"),
            "a scenario whose configuration is rejected sends no traffic".into(),
        ));
    }
    if scenario.rejected.is_none() && scenario.steps.is_empty() {
        return Err(problem(
            "steps",
            None,
            "must have at least one step (or `rejected`)".into(),
        ));
    }
    let services = services_of(scenario);
    if let Some(topology) = &scenario.topology {
        check_topology(scenario, topology, &services)?;
    }
    for (i, change) in scenario.upstreams.iter().enumerate() {
        let field = format!("upstreams[{i}]");
        if !services.contains(&change.service) {
            return Err(problem(
                &format!("{field}.service"),
                Some(&format!("service: {}", change.service)),
                format!(
                    "unknown service {:?} (the configuration routes to: {})",
                    change.service,
                    services.join(", ")
                ),
            ));
        }
        if change.profile.down && !change.at.is_zero() {
            return Err(problem(
                &format!("{field}.down"),
                Some("down:"),
                "a host is down from the start (at: 0s) to the end of the scenario".into(),
            ));
        }
        if let Some(host) = change.host {
            if host >= scenario.mesh.hosts {
                return Err(problem(
                    &format!("{field}.host"),
                    Some(&format!("host: {host}")),
                    format!(
                        "must be below mesh.hosts ({}), got {host}",
                        scenario.mesh.hosts
                    ),
                ));
            }
        }
        check_profile(&change.profile).map_err(|(name, message)| {
            let at = if name.is_empty() {
                field.clone()
            } else {
                format!("{field}.{name}")
            };
            problem(&at, Some(&format!("service: {}", change.service)), message)
        })?;
    }
    let url = scenario.targets.contains(&TargetKind::Url);
    if url && !scenario.upstreams.is_empty() {
        return Err(problem(
            "targets",
            Some("targets:"),
            "the url target cannot control upstreams: drop `url` or the upstream changes".into(),
        ));
    }
    for (i, step) in scenario.steps.iter().enumerate() {
        let field = format!("steps[{i}]");
        // A path not starting with '/' is legitimate input (R2); an empty one cannot be sent.
        if step.request.path.is_empty() {
            return Err(problem(
                &format!("{field}.request.path"),
                Some("path:"),
                "must not be empty".into(),
            ));
        }
        if let Some(repeat) = &step.repeat {
            let at = format!("{field}.repeat");
            match (repeat.count, repeat.duration) {
                (None, None) => {
                    return Err(problem(
                        &at,
                        Some("repeat:"),
                        "needs count or duration".into(),
                    ))
                }
                (Some(_), Some(_)) => {
                    return Err(problem(
                        &at,
                        Some("repeat:"),
                        "give count or duration, not both".into(),
                    ))
                }
                (Some(0), _) | (Some(10_001..), _) => {
                    return Err(problem(
                        &format!("{field}.repeat.count"),
                        Some("count:"),
                        "must be within [1, 10000]".into(),
                    ))
                }
                _ => {}
            }
            if repeat.duration.is_some() && repeat.rate.is_none() {
                return Err(problem(
                    &format!("{field}.repeat.rate"),
                    Some("duration:"),
                    "a duration needs a rate".into(),
                ));
            }
            if let Some(rate) = repeat.rate {
                if !(rate > 0.0 && rate <= 2000.0) {
                    return Err(problem(
                        &format!("{field}.repeat.rate"),
                        Some("rate:"),
                        format!("must be within (0, 2000] requests per second, got {rate}"),
                    ));
                }
            }
            if let Some(concurrency) = repeat.concurrency.filter(|c| !(1..=64).contains(c)) {
                return Err(problem(
                    &format!("{field}.repeat.concurrency"),
                    Some("concurrency:"),
                    format!("must be within [1, 64], got {concurrency}"),
                ));
            }
        }
        if step.request.abort_after.is_some_and(|d| d.is_zero()) {
            return Err(problem(
                &format!("{field}.request.abort_after"),
                Some("abort_after:"),
                "must be longer than 0s".into(),
            ));
        }
        if let Some(expect) = &step.expect {
            check_aborted(expect, &step.request).map_err(|(name, message)| {
                problem(
                    &format!("{field}.expect.{name}"),
                    Some(&format!("{name}:")),
                    message,
                )
            })?;
            if let Some(service) = &expect.service {
                if service != "none" && !services.contains(service) {
                    return Err(problem(
                        &format!("{field}.expect.service"),
                        Some(&format!("service: {service}")),
                        format!("unknown service {service:?}"),
                    ));
                }
            }
        }
        if let Some(aggregate) = &step.aggregate {
            for key in aggregate.hosts.keys() {
                check_host_key(key, &services, scenario.mesh.hosts).map_err(|m| {
                    problem(&format!("{field}.aggregate.hosts.{key}"), Some(key), m)
                })?;
            }
            for key in aggregate.attempts_per_request_at.keys() {
                check_host_key(key, &services, scenario.mesh.hosts).map_err(|m| {
                    problem(
                        &format!("{field}.aggregate.attempts_per_request_at.{key}"),
                        Some(key),
                        m,
                    )
                })?;
            }
        }
    }
    if let Some(finally) = &scenario.finally {
        for key in finally.attempts.keys() {
            check_host_key(key, &services, scenario.mesh.hosts)
                .map_err(|m| problem(&format!("finally.attempts.{key}"), Some(key), m))?;
        }
        for key in finally.proxies.keys() {
            check_proxy_key(scenario, key)
                .map_err(|m| problem(&format!("finally.proxies.{key}"), Some(key), m))?;
        }
        if url
            && (!finally.metrics.is_empty()
                || !finally.proxies.is_empty()
                || !finally.attempts.is_empty()
                || !finally.logs.is_empty()
                || !finally.logs_absent.is_empty())
        {
            return Err(problem(
                "finally",
                Some("finally:"),
                "the url target cannot see metrics, attempts or logs: drop `url` or these checks"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// An `aborted` expectation needs a client that gives up, and has no response to
/// check: the field at fault and why.
fn check_aborted(expect: &Expect, request: &RequestSpec) -> Result<(), (&'static str, String)> {
    if !expect.aborted {
        return Ok(());
    }
    if request.abort_after.is_none() {
        return Err((
            "aborted",
            "needs request.abort_after (when the client gives up)".into(),
        ));
    }
    let response_fields = [
        ("status", expect.status.is_some()),
        ("headers", !expect.headers.is_empty()),
        ("headers_present", !expect.headers_present.is_empty()),
        ("headers_absent", !expect.headers_absent.is_empty()),
        ("body", expect.body.is_some()),
    ];
    match response_fields.iter().find(|(_, given)| *given) {
        Some((name, _)) => Err((
            name,
            "an aborted request has no response to check: drop it or `aborted`".into(),
        )),
        None => Ok(()),
    }
}

/// A topology's own consistency: known services, no cycles, a gateway in front.
fn check_topology(
    scenario: &Scenario,
    topology: &TopologySpec,
    services: &[String],
) -> Result<(), Problem> {
    let problem = |field: &str, needle: &str, message: String| -> Problem {
        (field.to_owned(), Some(needle.to_owned()), message)
    };
    let calls = c4mesh_mesh::Topology {
        calls: topology.calls.clone(),
    };
    calls.validate(services).map_err(|e| {
        problem(
            "topology.calls",
            "calls:",
            format!("{e} (the configuration routes to: {})", services.join(", ")),
        )
    })?;
    if topology.calls.values().any(Vec::is_empty) {
        return Err(problem(
            "topology.calls",
            "calls:",
            "every calling service must list at least one service".into(),
        ));
    }
    if mesh_config(scenario).mode != c4mesh_filter_core::config::Mode::Gateway {
        return Err(problem(
            "topology",
            "topology:",
            "a topology starts at the gateway: `config` must be in gateway mode".into(),
        ));
    }
    if let Some(config) = &topology.sidecar_config {
        let text = config.to_string();
        if !config.is_object() {
            return Err(problem(
                "topology.sidecar_config",
                "sidecar_config:",
                "must be a mapping (the plugin configuration object)".into(),
            ));
        }
        match c4mesh_filter_core::Config::parse(text.as_bytes()) {
            Ok(parsed) if parsed.mode == c4mesh_filter_core::config::Mode::Sidecar => {}
            Ok(_) => {
                return Err(problem(
                    "topology.sidecar_config.mode",
                    "sidecar_config:",
                    "must be \"sidecar\"".into(),
                ))
            }
            Err(error) => {
                return Err(problem(
                    "topology.sidecar_config",
                    "sidecar_config:",
                    error.to_string(),
                ))
            }
        }
    }
    if scenario.targets.contains(&TargetKind::Url) {
        return Err(problem(
            "targets",
            "targets:",
            "the url target cannot run a topology: drop `url` or the topology".into(),
        ));
    }
    Ok(())
}

/// A `finally.proxies` key: `gateway`, or a calling service or one of its pods.
fn check_proxy_key(scenario: &Scenario, key: &str) -> Result<(), String> {
    let Some(topology) = &scenario.topology else {
        return Err("proxies need a topology".into());
    };
    if key == "gateway" {
        return Ok(());
    }
    let (service, host) = match key.split_once('/') {
        Some((s, h)) => (s, Some(h)),
        None => (key, None),
    };
    if !topology.calls.contains_key(service) {
        return Err(format!(
            "must be gateway, or a calling service ({}) or one of its pods (service/index)",
            topology
                .calls
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    match host.map(str::parse::<usize>) {
        None => Ok(()),
        Some(Ok(h)) if h < scenario.mesh.hosts => Ok(()),
        Some(_) => Err(format!(
            "pod must be an index below mesh.hosts ({})",
            scenario.mesh.hosts
        )),
    }
}

/// A profile's own consistency: the field at fault and why.
fn check_profile(profile: &Profile) -> Result<(), (&'static str, String)> {
    let kinds = [
        profile.status.is_some(),
        profile.statuses.is_some(),
        profile.error_rate.is_some(),
        profile.reset,
        profile.hang,
        profile.down,
    ]
    .iter()
    .filter(|k| **k)
    .count();
    if kinds > 1 {
        return Err((
            "",
            "give one of status, statuses, error_rate, reset, hang, down".into(),
        ));
    }
    let valid = |s: u16| (200..=599).contains(&s);
    if let Some(status) = profile.status.filter(|s| !valid(*s)) {
        return Err(("status", format!("must be within [200, 599], got {status}")));
    }
    if let Some(statuses) = &profile.statuses {
        if statuses.is_empty() || statuses.iter().any(|s| !valid(*s)) {
            return Err((
                "statuses",
                "must be a non-empty list of statuses within [200, 599]".into(),
            ));
        }
    }
    if let Some(rate) = profile.error_rate {
        if !(0.0..=1.0).contains(&rate) {
            return Err(("error_rate", format!("must be within [0, 1], got {rate}")));
        }
    }
    if profile.error_status.is_some() && profile.error_rate.is_none() {
        return Err(("error_status", "needs error_rate".into()));
    }
    Ok(())
}

fn check_host_key(key: &str, services: &[String], hosts: usize) -> Result<(), String> {
    let (service, host) = match key.split_once('/') {
        Some((s, h)) => (s, Some(h)),
        None => (key, None),
    };
    if !services.iter().any(|s| s == service) {
        return Err(format!("unknown service {service:?}"));
    }
    if let Some(host) = host {
        match host.parse::<usize>() {
            Ok(h) if h < hosts => {}
            _ => {
                return Err(format!(
                    "host must be an index below mesh.hosts ({hosts}), got {host:?}"
                ))
            }
        }
    }
    Ok(())
}

/// The plugin configuration text the scenario gives the filter.
pub fn config_bytes(scenario: &Scenario) -> Vec<u8> {
    match (&scenario.config, &scenario.config_text) {
        (_, Some(text)) => text.clone().into_bytes(),
        (Some(value), None) => value.to_string().into_bytes(),
        (None, None) => Vec::new(),
    }
}

/// The filter configuration the mesh is built from: the scenario's when it is valid,
/// else the defaults (a rejected configuration still needs a mesh to be refused by).
pub fn mesh_config(scenario: &Scenario) -> c4mesh_filter_core::config::Config {
    c4mesh_filter_core::config::Config::parse(&config_bytes(scenario))
        .unwrap_or_else(|_| c4mesh_filter_core::config::Config::defaults())
}

/// The services the configuration routes to, in route order, without repeats; and
/// [`c4mesh_mesh::topology::EXTERNAL`], the pass-through destination, when a sidecar
/// is in the mesh.
pub fn services_of(scenario: &Scenario) -> Vec<String> {
    let config = mesh_config(scenario);
    let mut services = c4mesh_mesh::istio::generated::services(&config);
    if config.mode == c4mesh_filter_core::config::Mode::Sidecar || scenario.topology.is_some() {
        services.push(c4mesh_mesh::topology::EXTERNAL.to_owned());
    }
    services
}

/// The Istio resources of a scenario's mesh: the generated manifests for its gateway
/// and sidecar plugin configurations, with the scenario's `mesh` settings applied
/// (`per_try_timeout` on every gateway route's retries, `outlier_detection` on every
/// DestinationRule), then its `istio` resources laid over them.
pub fn istio_resources(scenario: &Scenario) -> Result<c4mesh_mesh::istio::Resources, Error> {
    let file = scenario.file.display().to_string();
    let fail = |field: String, message: String| Error::Scenario {
        file: file.clone(),
        line: None,
        field,
        message,
    };
    let gateway = match c4mesh_filter_core::config::Config::parse(&config_bytes(scenario)) {
        Ok(_) => String::from_utf8_lossy(&config_bytes(scenario)).into_owned(),
        Err(_) => String::new(),
    };
    let sidecar = scenario
        .topology
        .as_ref()
        .map(|t| String::from_utf8_lossy(&sidecar_config_bytes(t)).into_owned())
        .unwrap_or_default();
    let mut resources = c4mesh_mesh::istio::generated::resources(&gateway, &sidecar)
        .map_err(|e| fail("config".into(), super::describe(&e)))?;
    if let Some(per_try) = scenario.mesh.per_try_timeout {
        for vs in &mut resources.virtual_services {
            for http in &mut vs.spec.http {
                if let Some(retries) = &mut http.retries {
                    retries.per_try_timeout = Some(format!("{}s", per_try.as_secs_f64()));
                }
            }
        }
    }
    if let Some(outlier) = &scenario.mesh.outlier_detection {
        for rule in &mut resources.destination_rules {
            let policy = rule
                .spec
                .traffic_policy
                .get_or_insert_with(Default::default);
            policy.outlier_detection = Some(c4mesh_mesh::istio::resources::OutlierDetection {
                consecutive_5xx_errors: Some(outlier.consecutive_5xx),
                interval: Some(format!("{}s", outlier.interval.as_secs_f64())),
                base_ejection_time: Some(format!("{}s", outlier.base_ejection.as_secs_f64())),
                max_ejection_percent: Some(outlier.max_ejection_percent),
                ..Default::default()
            });
        }
    }
    for (index, document) in scenario.istio.iter().enumerate() {
        let text = serde_saphyr::to_string(document)
            .map_err(|e| fail(format!("istio[{index}]"), e.to_string()))?;
        let top = c4mesh_mesh::istio::Resources::parse(
            &format!("istio[{index}]"),
            &text,
            c4mesh_mesh::mesh::NAMESPACE,
        )
        .map_err(|e| {
            fail(
                format!("istio[{index}].{}", e.field),
                format!("{} {}", e.kind, e.reason),
            )
        })?;
        resources.overlay(top);
    }
    if let Some(dir) = &scenario.istio_dir {
        let top = c4mesh_mesh::istio::Resources::read_dir(dir, c4mesh_mesh::mesh::NAMESPACE)
            .map_err(|e| Error::Scenario {
                file: e.file.clone(),
                line: Some(e.line),
                field: e.field.clone(),
                message: format!("{} {}", e.kind, e.reason),
            })?;
        resources.overlay(top);
    }
    Ok(resources)
}

/// The sidecars' plugin configuration text in a topology.
pub fn sidecar_config_bytes(topology: &TopologySpec) -> Vec<u8> {
    match &topology.sidecar_config {
        Some(value) => value.to_string().into_bytes(),
        None => c4mesh_filter_core::config::SIDECAR_CONFIG_JSON
            .as_bytes()
            .to_vec(),
    }
}

/// Every `*.yaml` scenario under `dir`, recursively, in path order.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, Error> {
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(Error::NoScenarios(dir.to_path_buf()));
    }
    files.iter().map(|f| load(f)).collect()
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), Error> {
    let io = |source: std::io::Error| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
