//! `c4mesh check`: the deployed mesh checked the way its operator would, each check
//! printed with what was seen and, on failure, the fix.

use anyhow::{bail, Context, Result};
use c4mesh_check::{self as check, Finding};
use c4mesh_live::{BlockingClient, Endpoint, Settings};
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
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).map_err(|e| {
        let line = c4mesh_mesh::yaml::line(&e).map_or(String::new(), |l| format!(":{l}"));
        anyhow::anyhow!(
            "{origin}{line}: neither JSON nor YAML: {}",
            c4mesh_mesh::yaml::message(&e)
        )
    })?;
    Ok(docs.into_iter().filter(|doc| !doc.is_null()).collect())
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
    let output = kubectl(args)
        .args(["get", check::RESOURCES, "--all-namespaces", "-o", "json"])
        .output()
        .context("running kubectl (install it and point it at the cluster, or give --from FILE)")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!("{}", kubectl_failure(&stderr, reaches(args)));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(check::objects(documents(&text, "kubectl output")?))
}

/// kubectl with the cluster the operator named.
fn kubectl(args: &CheckArgs) -> Command {
    let mut kubectl = Command::new("kubectl");
    if let Some(config) = &args.kubeconfig {
        kubectl.arg("--kubeconfig").arg(config);
    }
    if let Some(context) = &args.context {
        kubectl.args(["--context", context]);
    }
    kubectl
}

/// Whether kubectl reaches an API server at all, by the exit status of the cheapest
/// request there is (the server's `/version`); kubectl's error text is not read.
fn reaches(args: &CheckArgs) -> bool {
    kubectl(args)
        .args(["get", "--raw", "/version", "--request-timeout", "5s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// One line for a failed `kubectl get`: kubectl may repeat a discovery error for every
/// resource type before its verdict, its last line, which is the one kept; a cluster it
/// cannot reach gets what to pass instead.
fn kubectl_failure(stderr: &str, reachable: bool) -> String {
    let verdict = stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("no message");
    if reachable {
        format!("kubectl get failed: {verdict}")
    } else {
        format!(
            "kubectl reaches no cluster ({verdict}): pass --kubeconfig PATH and --context NAME \
             for the EKS cluster, or --from FILE with the output of \
             `kubectl get {} --all-namespaces -o json`",
            check::RESOURCES
        )
    }
}

fn send(url: &str, host: &str, settings: &Settings) -> Finding {
    let path = "/api/v1/products/1";
    let endpoint = match Endpoint::parse(url, Some(host)) {
        Ok(endpoint) => endpoint,
        Err(e) => return check::request(None, None, c4mesh_live::describe(&e)),
    };
    let mut client = match BlockingClient::new(endpoint, settings) {
        Ok(client) => client,
        Err(e) => {
            let e = c4mesh_live::describe(&e);
            return check::request(None, None, format!("GET {url}{path}: {e}"));
        }
    };
    match client.get(path, Duration::from_secs(10)) {
        Ok(response) => {
            let reason = response.header("x-c4-reason");
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

#[cfg(test)]
mod tests {
    use super::{kubectl, kubectl_failure, reaches, CheckArgs};
    use clap::Parser as _;

    /// The arguments of `c4mesh check` as parsed from a command line.
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        check: CheckArgs,
    }

    /// A kubeconfig whose only cluster is a loopback port nothing listens on.
    fn unreachable_cluster(dir: &std::path::Path) -> CheckArgs {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a loopback port")
            .port();
        let config = dir.join("kubeconfig");
        std::fs::write(
            &config,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: nobody\nusers:\n- name: nobody\n  user:\n    token: none\ncurrent-context: gone\n"
            ),
        )
        .expect("kubeconfig written");
        Cli::try_parse_from(["check", "--kubeconfig", &config.display().to_string()])
            .expect("check arguments")
            .check
    }

    #[test]
    fn an_unreachable_cluster_is_one_line_saying_what_to_pass() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let args = unreachable_cluster(dir.path());
        let output = kubectl(&args)
            .args(["get", "pods", "--request-timeout", "5s"])
            .output()
            .expect("kubectl runs (this test needs kubectl on PATH)");
        assert!(!output.status.success());
        assert!(!reaches(&args), "a closed port is no cluster");
        let message = kubectl_failure(&String::from_utf8_lossy(&output.stderr), false);
        assert_eq!(message.lines().count(), 1, "{message}");
        assert!(
            message.starts_with("kubectl reaches no cluster ("),
            "{message}"
        );
        assert!(message.contains("--kubeconfig PATH"), "{message}");
        assert!(message.contains("--from FILE"), "{message}");
    }

    #[test]
    fn a_reachable_cluster_keeps_kubectl_s_last_line_as_the_verdict() {
        let message = kubectl_failure(
            "E1129 21:57:18.668160   29054 memcache.go:265] discovery failed\n\
             error: the server doesn't have a resource type \"wasmplugins\"\n\n",
            true,
        );
        assert_eq!(
            message,
            "kubectl get failed: error: the server doesn't have a resource type \"wasmplugins\""
        );
    }
}
