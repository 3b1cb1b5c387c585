//! A real Prometheus beside the local mesh: it scrapes every proxy's
//! `/stats/prometheus` (the gateway's and each sidecar's admin port) with the rules the
//! caller gives it (the generated ones, in `c4mesh up --prometheus` and the tests), so
//! the filter's metrics, the recording rules and the alerts can be watched as an
//! operator's Prometheus would show them.
//!
//! Prometheus is the Debian package `prometheus` (installed by `scripts/setup.sh`),
//! found through `PROMETHEUS_BIN`, then `PATH`. It listens on 127.0.0.1 only and keeps
//! its data in a temporary directory removed when it stops.
//!
//! Each target carries the labels Istio's Prometheus gives a pod's metrics, `namespace`
//! and `pod`: the gateway is `istio-system/istio-ingressgateway`, the sidecar of pod
//! `order-service/0` is `ecommerce/order-service-0`, so the generated rules and the
//! dashboard's queries read the same here as in the cluster.
//!
//! Prometheus listens on port 0, so the kernel picks its port as it binds it and no
//! other process can take the port first; it then logs where it listens (`msg="Listening
//! on" address=127.0.0.1:PORT`, the bound address), and that line is where its port is
//! read back.

use crate::envoy::Envoy;
use crate::mesh::{LocalMesh, NAMESPACE};
use crate::Client;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Why Prometheus could not be found, started or asked something.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    #[error("{env}={} is not a file", bin.display())]
    NotAFile { env: String, bin: PathBuf },
    #[error(
        "{name} not found: run scripts/setup.sh (as root it installs the Debian \
         package prometheus), or `apt-get install prometheus`, or set {env}"
    )]
    NotInstalled { name: String, env: String },
    #[error("making a temporary directory for Prometheus's files")]
    Scratch(#[source] std::io::Error),
    #[error("preparing Prometheus's files in {}", path.display())]
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
    #[error("watching the Prometheus process")]
    Wait(#[source] std::io::Error),
    #[error("Prometheus exited ({status}):\n{log}")]
    Exited { status: ExitStatus, log: String },
    #[error("Prometheus not ready after {within:?}:\n{log}")]
    NotReady { within: Duration, log: String },
    #[error("GET {path} on Prometheus")]
    Request {
        path: String,
        #[source]
        source: crate::ClientError,
    },
    #[error("GET {path}: {status} {body}")]
    Refused {
        path: String,
        status: u16,
        body: Value,
    },
}

type Result<T, E = PrometheusError> = std::result::Result<T, E>;

/// A tool of the Debian package `prometheus`: the file named by the environment
/// variable `env`, else `name` on `PATH`; when missing, an error that says how to
/// install it.
fn prometheus_tool(env: &str, name: &str) -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os(env) {
        let bin = PathBuf::from(bin);
        if bin.is_file() {
            return Ok(bin);
        }
        return Err(PrometheusError::NotAFile {
            env: env.to_owned(),
            bin,
        });
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|bin| bin.is_file())
        .ok_or_else(|| PrometheusError::NotInstalled {
            name: name.to_owned(),
            env: env.to_owned(),
        })
}

/// The Prometheus binary: `PROMETHEUS_BIN`, else `prometheus` on `PATH`.
pub fn prometheus_binary() -> Result<PathBuf> {
    prometheus_tool("PROMETHEUS_BIN", "prometheus")
}

/// `promtool`, which checks and unit-tests rules: `PROMTOOL_BIN`, else on `PATH`.
pub fn promtool_binary() -> Result<PathBuf> {
    prometheus_tool("PROMTOOL_BIN", "promtool")
}

/// How the local Prometheus scrapes and evaluates.
#[derive(Debug, Clone)]
pub struct PrometheusConfig {
    pub scrape_interval: Duration,
    pub evaluation_interval: Duration,
    /// A rules file's text (`groups: ...`), loaded as is.
    pub rules: Option<String>,
}

impl Default for PrometheusConfig {
    /// Scrapes and evaluates every 5 s, no rules.
    fn default() -> PrometheusConfig {
        PrometheusConfig {
            scrape_interval: Duration::from_secs(5),
            evaluation_interval: Duration::from_secs(5),
            rules: None,
        }
    }
}

/// One proxy to scrape: its admin address and the pod it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub admin: SocketAddr,
    pub namespace: String,
    pub pod: String,
}

/// The targets of a mesh's proxies, named as [`LocalMesh::proxies`] names them
/// (`gateway`, `service/index`).
pub fn targets<'a>(proxies: impl IntoIterator<Item = (&'a str, &'a Envoy)>) -> Vec<Target> {
    proxies
        .into_iter()
        .map(|(name, envoy)| {
            let (namespace, pod) = match name {
                "gateway" => ("istio-system".to_owned(), "istio-ingressgateway".to_owned()),
                pod => (NAMESPACE.to_owned(), pod.replace('/', "-")),
            };
            Target {
                admin: envoy.admin,
                namespace,
                pod,
            }
        })
        .collect()
}

/// A running Prometheus, stopped on drop.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    /// Its configuration, data and log; removed on drop.
    dir: TempDir,
}

/// `1s`, `500ms`: a duration as Prometheus's configuration writes it.
fn prometheus_duration(d: Duration) -> String {
    match d.as_millis() {
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

impl Prometheus {
    /// Starts Prometheus on a loopback port the kernel picks, scraping `targets`, and
    /// waits until it is ready.
    pub fn start(config: &PrometheusConfig, targets: &[Target]) -> Result<Prometheus> {
        let binary = prometheus_binary()?;
        let scratch = tempfile::Builder::new()
            .prefix("c4mesh-prometheus-")
            .tempdir()
            .map_err(PrometheusError::Scratch)?;
        let dir = scratch.path().to_path_buf();
        let io = |path: PathBuf| move |source| PrometheusError::Files { path, source };
        std::fs::create_dir_all(dir.join("data")).map_err(io(dir.join("data")))?;
        let mut rule_files = Vec::new();
        if let Some(rules) = &config.rules {
            std::fs::write(dir.join("rules.yml"), rules).map_err(io(dir.join("rules.yml")))?;
            rule_files.push("rules.yml");
        }
        let scrape = prometheus_duration(config.scrape_interval);
        let static_configs: Vec<Value> = targets
            .iter()
            .map(|t| {
                json!({
                    "targets": [t.admin.to_string()],
                    "labels": {"namespace": t.namespace, "pod": t.pod},
                })
            })
            .collect();
        // JSON is YAML: Prometheus reads it as its configuration.
        let file = json!({
            "global": {
                "scrape_interval": scrape,
                "scrape_timeout": scrape,
                "evaluation_interval": prometheus_duration(config.evaluation_interval),
            },
            "rule_files": rule_files,
            "scrape_configs": [{
                "job_name": "envoy",
                "metrics_path": "/stats/prometheus",
                "static_configs": static_configs,
            }],
        });
        std::fs::write(dir.join("prometheus.yml"), file.to_string())
            .map_err(io(dir.join("prometheus.yml")))?;
        let log_path = dir.join("prometheus.log");
        let log = std::fs::File::create(&log_path).map_err(io(log_path.clone()))?;
        let log_too = log.try_clone().map_err(io(log_path))?;
        let child = Command::new(&binary)
            .current_dir(&dir)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(log_too)
            .stderr(log)
            .spawn()
            .map_err(|source| PrometheusError::Spawn {
                bin: binary.clone(),
                source,
            })?;
        let mut prometheus = Prometheus {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir: scratch,
        };
        prometheus.wait_ready(Duration::from_secs(30))?;
        Ok(prometheus)
    }

    fn wait_ready(&mut self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().map_err(PrometheusError::Wait)? {
                return Err(PrometheusError::Exited {
                    status,
                    log: self.log(),
                });
            }
            if self.addr.port() == 0 {
                if let Some(addr) = listening_on(&self.log()) {
                    self.addr = addr;
                }
            }
            let ready = self.addr.port() != 0
                && Client::new(self.addr)
                    .request("GET", "/-/ready", Some("localhost"), &[])
                    .is_ok_and(|r| r.status == 200);
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(PrometheusError::NotReady {
                    within,
                    log: self.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What Prometheus logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `data` of an HTTP API answer (`/api/v1/...`), failing on an error answer.
    pub fn api(&self, path: &str) -> Result<Value> {
        let request = |source| PrometheusError::Request {
            path: path.to_owned(),
            source,
        };
        let response = Client::new(self.addr)
            .request("GET", path, Some("localhost"), &[])
            .map_err(request)?;
        let body = response.json().map_err(request)?;
        if body["status"] != "success" {
            return Err(PrometheusError::Refused {
                path: path.to_owned(),
                status: response.status,
                body,
            });
        }
        Ok(body["data"].clone())
    }

    /// The instant vector of a PromQL query.
    pub fn query(&self, promql: &str) -> Result<Vec<Value>> {
        let data = self.api(&format!("/api/v1/query?query={}", percent_encode(promql)))?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// The alerts Prometheus holds, pending and firing.
    pub fn alerts(&self) -> Result<Vec<Value>> {
        let data = self.api("/api/v1/alerts")?;
        Ok(data["alerts"].as_array().cloned().unwrap_or_default())
    }

    /// The firing alerts of that name.
    pub fn firing(&self, alert: &str) -> Result<Vec<Value>> {
        Ok(self
            .alerts()?
            .into_iter()
            .filter(|a| a["labels"]["alertname"] == alert && a["state"] == "firing")
            .collect())
    }

    /// The health of each scrape target (`up`, `down`, `unknown`), by `namespace/pod`.
    pub fn target_health(&self) -> Result<Vec<(String, String)>> {
        let data = self.api("/api/v1/targets")?;
        Ok(data["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    format!(
                        "{}/{}",
                        t["labels"]["namespace"].as_str().unwrap_or_default(),
                        t["labels"]["pod"].as_str().unwrap_or_default()
                    ),
                    t["health"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where Prometheus says it listens: the address of its log's `msg="Listening on"` line
/// (logfmt), which is the bound one, port included.
fn listening_on(log: &str) -> Option<SocketAddr> {
    log.lines()
        .filter(|line| line.contains(r#"msg="Listening on""#))
        .find_map(|line| {
            line.split(' ')
                .find_map(|field| field.strip_prefix("address="))
                .and_then(|addr| addr.parse().ok())
        })
}

/// A query parameter's value, percent-encoded (everything but RFC 3986's unreserved).
fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, crate::envoy::QUERY_VALUE).to_string()
}

// === impl LocalMesh ===

impl LocalMesh {
    /// A Prometheus scraping every proxy of this mesh.
    pub fn prometheus(&self, config: &PrometheusConfig) -> Result<Prometheus> {
        Prometheus::start(config, &targets(self.proxies()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_durations_are_written_as_prometheus_reads_them() {
        assert_eq!(
            percent_encode("sum(rate(x{a=\"b\"}[1m])) > 0"),
            "sum%28rate%28x%7Ba%3D%22b%22%7D%5B1m%5D%29%29%20%3E%200"
        );
        assert_eq!(prometheus_duration(Duration::from_secs(1)), "1s");
        assert_eq!(prometheus_duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn the_port_is_read_from_the_listening_line() {
        let log = concat!(
            "ts=2026-12-07T14:01:04.274Z caller=web.go:503 level=info component=web ",
            "msg=\"Start listening for connections\" address=127.0.0.1:0\n",
            "ts=2026-12-07T14:01:04.291Z caller=tls_config.go:232 level=info component=web ",
            "msg=\"Listening on\" address=127.0.0.1:43291\n",
        );
        assert_eq!(
            listening_on(log),
            Some(SocketAddr::from(([127, 0, 0, 1], 43291)))
        );
        assert_eq!(
            listening_on(&log[..log.find("ts=2026-12-07T14:01:04.291Z").unwrap_or(0)]),
            None
        );
    }
}
