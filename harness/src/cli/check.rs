//! `c4mesh check`: the deployed mesh checked the way its operator would, each check
//! printed with what was seen and, on failure, the fix.

use anyhow::{bail, Context, Result};
use c4mesh::check::{self, Finding};
use c4mesh::live::{BlockingClient, Endpoint, Settings};
use serde::Deserialize;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The kubeconfig kubectl uses (default: kubectl's own default).
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context.
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// Read the cluster's objects from a file (`kubectl get ... -A -o json` output, or
    /// YAML documents) instead of asking kubectl.
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
    /// The API host.
    #[arg(long, value_name = "HOST", default_value = "api.c4ang.com")]
    host: String,
    /// Send the request to this URL (http:// or https://) instead of the NLB's hostname.
    #[arg(long, value_name = "URL")]
    gateway: Option<String>,
    /// Send the request to the NLB over HTTPS (port 443, the Gateway's
    /// ecommerce-tls-cert, verified for --host).
    #[arg(long)]
    https: bool,
    /// Also trust the certificates in this PEM file (a self-signed ecommerce-tls-cert).
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Accept any certificate.
    #[arg(long)]
    insecure: bool,
    /// Do not send a request through the gateway.
    #[arg(long)]
    no_request: bool,
}

fn documents(text: &str, origin: &str) -> Result<Vec<serde_json::Value>> {
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        return Ok(vec![value]);
    }
    let mut docs = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_json::Value::deserialize(doc)
            .with_context(|| format!("{origin}: document {} is neither JSON nor YAML", i + 1))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn cluster_objects(args: &CheckArgs) -> Result<Vec<serde_json::Value>> {
    if let Some(file) = &args.from {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("--from {}", file.display()))?;
        return Ok(check::objects(documents(
            &text,
            &file.display().to_string(),
        )?));
    }
    let mut kubectl = Command::new("kubectl");
    if let Some(config) = &args.kubeconfig {
        kubectl.arg("--kubeconfig").arg(config);
    }
    if let Some(context) = &args.context {
        kubectl.args(["--context", context]);
    }
    kubectl.args(["get", check::RESOURCES, "--all-namespaces", "-o", "json"]);
    let output = kubectl
        .output()
        .context("running kubectl (install it and point it at the cluster, or give --from FILE)")?;
    if !output.status.success() {
        bail!(
            "kubectl get failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(check::objects(documents(&text, "kubectl output")?))
}

fn send(url: &str, host: &str, settings: &Settings) -> Finding {
    let path = "/api/v1/products/1";
    let endpoint = match Endpoint::parse(url, Some(host)) {
        Ok(endpoint) => endpoint,
        Err(e) => return check::request(None, None, e),
    };
    let mut client = match BlockingClient::new(endpoint, settings) {
        Ok(client) => client,
        Err(e) => return check::request(None, None, format!("GET {url}{path}: {e}")),
    };
    match client.get(path, Duration::from_secs(10)) {
        Ok(response) => {
            let reason = c4mesh_mesh::client::header(&response.headers, "x-c4-reason");
            check::request(
                Some(response.status),
                reason,
                format!(
                    "GET {url}{path} (Host: {host}): {}{}",
                    response.status,
                    reason.map_or_else(String::new, |r| format!(", x-c4-reason {r}"))
                ),
            )
        }
        Err(kind) => check::request(
            None,
            None,
            format!("GET {url}{path} (Host: {host}): {kind}"),
        ),
    }
}

pub fn command(args: CheckArgs) -> Result<ExitCode> {
    let objects = cluster_objects(&args)?;
    let mut findings = check::run(&objects, &args.host);
    if !args.no_request {
        let url = args.gateway.clone().or_else(|| {
            let scheme = if args.https { "https" } else { "http" };
            check::load_balancer(&objects)
                .1
                .map(|hostname| format!("{scheme}://{hostname}"))
        });
        let settings = Settings {
            cacert: args.cacert.clone(),
            insecure: args.insecure,
            ..Settings::default()
        };
        findings.push(match url {
            Some(url) => send(&url, &args.host, &settings),
            None => check::request(None, None, "no NLB address to send to".into()),
        });
    }
    let mut out = std::io::stdout();
    for finding in &findings {
        let mark = if finding.pass { "PASS" } else { "FAIL" };
        let _ = writeln!(out, "{mark}  {}: {}", finding.check, finding.detail);
        if !finding.pass {
            for fix in finding.fix.lines() {
                let _ = writeln!(out, "      fix: {fix}");
            }
        }
    }
    let failed = findings.iter().filter(|f| !f.pass).count();
    let _ = writeln!(out, "{} checks, {failed} failed", findings.len());
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
