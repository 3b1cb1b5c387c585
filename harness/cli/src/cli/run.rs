//! `c4mesh run`: one request through any proxy-wasm module, for trying a filter before
//! it reaches the mesh.

use anyhow::{bail, Context, Result};
use c4mesh_host::run::{run, RunOptions};
use c4mesh_host::LogLevel;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The proxy-wasm module (.wasm; default: the filter built into c4mesh).
    #[arg(long, value_name = "PATH")]
    wasm: Option<PathBuf>,
    /// Plugin configuration: JSON text, or @FILE to read it from a file.
    #[arg(long, value_name = "JSON|@FILE", value_parser = parse_config)]
    config: Option<Config>,
    /// Worker VMs to start (each runs on_vm_start and on_configure).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
    /// Status the simulated upstream answers.
    #[arg(long, value_name = "CODE", default_value_t = 200, value_parser = clap::value_parser!(u16).range(100..=599))]
    upstream_status: u16,
    /// A request header, as 'name: value' (repeatable); 'host: ...' sets the authority.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// A request body.
    #[arg(long, value_name = "TEXT")]
    body: Option<String>,
    /// Lowest log level printed: trace, debug, info, warn, error, critical.
    #[arg(long, default_value = "info", value_parser = parse_level)]
    log_level: LogLevel,
    /// Also print the response body.
    #[arg(long)]
    show_body: bool,
    /// The plugin's name, as the module reads it in the property `plugin_name`.
    #[arg(long, value_name = "NAME", default_value = "c4mesh")]
    name: String,
    /// A cluster the proxy has, which the module's HTTP callouts may name (repeatable;
    /// a callout to any other cluster answers BadArgument, as in Envoy).
    #[arg(long = "cluster", value_name = "NAME")]
    clusters: Vec<String>,
    /// Request method.
    #[arg(value_name = "METHOD")]
    method: String,
    /// Request path, with any query.
    #[arg(value_name = "PATH")]
    path: String,
}

#[derive(Clone)]
struct Config(Vec<u8>);

fn parse_config(value: &str) -> Result<Config, String> {
    match value.strip_prefix('@') {
        Some(file) => std::fs::read(file)
            .map(Config)
            .map_err(|e| format!("cannot read {file}: {e}")),
        None => Ok(Config(value.as_bytes().to_vec())),
    }
}

pub fn parse_header(value: &str) -> Result<(String, String), String> {
    // A pseudo-header (":authority: x") has its separator after the name's own colon.
    let search_from = usize::from(value.starts_with(':'));
    let Some(at) = value[search_from..].find(':').map(|i| i + search_from) else {
        return Err("expected 'name: value'".into());
    };
    let name = value[..at].trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err("expected 'name: value' with a header name before the colon".into());
    }
    Ok((name.to_ascii_lowercase(), value[at + 1..].trim().to_owned()))
}

fn parse_level(value: &str) -> Result<LogLevel, String> {
    value.parse()
}

pub fn command(args: RunArgs) -> Result<ExitCode> {
    if !args.path.starts_with('/') && args.path != "*" {
        bail!("PATH must start with '/' (got {:?})", args.path);
    }
    let wasm = super::module_file(args.wasm.as_deref())?;
    let options = RunOptions {
        wasm: wasm.clone(),
        config: args.config.map(|c| c.0).unwrap_or_default(),
        workers: usize::from(args.workers),
        upstream_status: args.upstream_status,
        method: args.method.to_ascii_uppercase(),
        path: args.path,
        headers: args.headers,
        body: args.body.map(String::into_bytes),
        log_level: args.log_level,
        name: args.name,
        clusters: args.clusters,
    };
    let report = run(&options).with_context(|| format!("running {}", wasm.display()))?;
    for line in &report.logs {
        println!("{} {}", line.level, line.message);
    }
    for fault in &report.faults {
        eprintln!("c4mesh: {fault}");
    }
    if !report.configured {
        eprintln!(
            "c4mesh: the module rejected its configuration (proxy_on_configure returned false)"
        );
        return Ok(ExitCode::from(2));
    }
    match &report.response {
        Some(response) => {
            let status = response
                .status_code()
                .map_or_else(|| "?".to_owned(), |s| s.to_string());
            println!("HTTP {status}");
            for (name, value) in response.headers.to_strings() {
                if !name.starts_with(':') {
                    println!("{name}: {value}");
                }
            }
            if args.show_body {
                println!();
                println!("{}", String::from_utf8_lossy(&response.body.concat()));
            }
        }
        None if report.paused => println!("(no response: the module left the request paused)"),
        None => println!("(no response)"),
    }
    Ok(if report.faults.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
