//! What the Envoy benchmarks share: the Envoys they compare (one worker routing
//! `/api/v1/products` to a fast upstream, without Wasm, with the no-op module, with the
//! filter, and with another build when `C4MESH_BENCH_VARIANT` names one) and the load
//! they send (`c4mesh replay`, every answer a 200).

use anyhow::{bail, Context, Result};
use c4mesh_mesh::envoy::{EnvoyConfig, ServiceRoute};
use c4mesh_mesh::Wasm;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

/// The Envoys to compare, by name, in the order the reports print them. The filter
/// runs with the configuration the generated gateway WasmPlugin carries; a variant
/// (`C4MESH_BENCH_VARIANT`, a module path) with `C4MESH_BENCH_VARIANT_CONFIG` (JSON,
/// empty by default), for example the filter without the `proxy_applies` statement.
/// `C4MESH_BENCH_ONLY` (names, comma-separated: `variant`, `c4mesh filter`) keeps only
/// those, for a split measured build by build.
pub fn modules() -> Result<Vec<(&'static str, Wasm)>> {
    let gateway = c4mesh_manifests::gateway_plugin_config()
        .context("the generated gateway plugin's configuration")?;
    let mut modules = vec![
        ("no wasm", Wasm::None),
        ("no-op module", Wasm::noop()?),
        ("c4mesh filter", Wasm::filter(&gateway.to_string())?),
    ];
    if let Some(path) = std::env::var_os("C4MESH_BENCH_VARIANT") {
        modules.push((
            "variant",
            Wasm::Module {
                path: path.into(),
                config: std::env::var("C4MESH_BENCH_VARIANT_CONFIG").unwrap_or_default(),
            },
        ));
    }
    if let Ok(only) = std::env::var("C4MESH_BENCH_ONLY") {
        let wanted: Vec<&str> = only.split(',').map(str::trim).collect();
        modules.retain(|(name, _)| wanted.contains(name));
    }
    Ok(modules)
}

/// The generated mesh's ingress gateway (its routes, retry policies and
/// DestinationRules as Istio translates them) on one Envoy worker, with `wasm` in its
/// Wasm filter and `upstream` behind the products route.
pub fn products_envoy(upstream: SocketAddr, wasm: Wasm) -> Result<EnvoyConfig> {
    EnvoyConfig::gateway(
        1,
        wasm,
        vec![ServiceRoute {
            name: "product-service".into(),
            prefix: "/api/v1/products".into(),
            hosts: vec![upstream],
        }],
    )
    .context("the products gateway's configuration")
}

/// `c4mesh replay` (built next to the running binary) sending `GET
/// /api/v1/products/1` for `api.c4ang.com`.
pub struct Replay {
    c4mesh: PathBuf,
    traffic: PathBuf,
    /// Holds the traffic file; removed when the replay is dropped.
    _scratch: tempfile::TempDir,
}

impl Replay {
    pub fn new() -> Result<Replay> {
        let exe = std::env::current_exe().context("locating this binary")?;
        let c4mesh = exe.with_file_name("c4mesh");
        if !c4mesh.is_file() {
            bail!(
                "{} not found: build it first (cargo build --release -p c4mesh)",
                c4mesh.display()
            );
        }
        let scratch = tempfile::Builder::new()
            .prefix("c4mesh-envoy-bench-")
            .tempdir()
            .context("a temporary directory for the traffic file")?;
        let traffic = scratch.path().join("traffic.jsonl");
        std::fs::write(
            &traffic,
            "{\"method\": \"GET\", \"path\": \"/api/v1/products/1\"}\n",
        )
        .with_context(|| format!("writing {}", traffic.display()))?;
        Ok(Replay {
            c4mesh,
            traffic,
            _scratch: scratch,
        })
    }

    /// One run against `url` with `schedule` (`--concurrency N --count M`, ...), on
    /// CPU `cpu` if given; its JSON report, after checking that every answer was 200.
    pub fn run(&self, url: &str, schedule: &[&str], cpu: Option<u32>) -> Result<serde_json::Value> {
        let mut command = match cpu {
            Some(cpu) => {
                let mut command = Command::new("taskset");
                command.args(["-c", &cpu.to_string()]).arg(&self.c4mesh);
                command
            }
            None => Command::new(&self.c4mesh),
        };
        let output = command
            .args([
                "replay",
                "--target",
                url,
                "--host",
                "api.c4ang.com",
                "--json",
            ])
            .arg("--file")
            .arg(&self.traffic)
            .args(schedule)
            .output()
            .with_context(|| format!("running {} replay", self.c4mesh.display()))?;
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).with_context(|| {
                format!(
                    "replay printed no report: {}",
                    String::from_utf8_lossy(&output.stderr)
                )
            })?;
        let number = |pointer: &str| report.pointer(pointer).and_then(serde_json::Value::as_f64);
        if number("/statuses/200").is_none() || number("/statuses/200") != number("/requests") {
            bail!("not every answer was 200 (Envoy or the upstream failed): {report}");
        }
        Ok(report)
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.traffic);
    }
}
