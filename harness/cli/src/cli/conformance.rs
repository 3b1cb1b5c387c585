//! `c4mesh conformance`: the scenarios on the chosen targets, a table or JSON, and an
//! exit status that fails on any failed expectation or disagreement.

use anyhow::{bail, Context, Result};
use c4mesh_conformance::{self as conformance, report, scenario, suite, Options, Target};
use std::io::Write as _;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ConformanceArgs {
    /// A target: wasm, envoy, or url=http[s]://HOST[:PORT] (repeatable; default wasm
    /// and envoy).
    #[arg(long = "target", value_name = "wasm|envoy|url=URL", value_parser = parse_target)]
    targets: Vec<Target>,
    /// The Host header for the url target, in place of the scenarios' api.c4ang.com.
    #[arg(long, value_name = "H")]
    host: Option<String>,
    /// For an https:// url target: also trust the certificates in this PEM file.
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// For an https:// url target: accept any certificate.
    #[arg(long)]
    insecure: bool,
    /// A folder of scenario files (*.yaml, searched recursively) to run instead of the
    /// suite built into c4mesh.
    #[arg(long, value_name = "DIR")]
    scenarios: Option<PathBuf>,
    /// The proxy-wasm module under test (default: the filter built into c4mesh).
    #[arg(long, value_name = "PATH")]
    wasm: Option<PathBuf>,
    /// A folder of Istio YAML (an operator's VirtualServices, DestinationRules, ...)
    /// laid over every scenario's resources before the translation.
    #[arg(long, value_name = "DIR")]
    istio: Option<PathBuf>,
    /// Only scenarios whose file path or name contains this text.
    #[arg(long, value_name = "TEXT")]
    only: Option<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// How many scenarios run at a time, each with its own Envoys and ports (default:
    /// the number of cores). The report is in file order whatever the number.
    #[arg(long, value_name = "N", value_parser = parse_jobs)]
    jobs: Option<NonZeroUsize>,
}

fn parse_jobs(value: &str) -> Result<NonZeroUsize, String> {
    let jobs: usize = value
        .parse()
        .map_err(|_| "a number of scenarios at a time".to_owned())?;
    NonZeroUsize::new(jobs).ok_or_else(|| "at least one scenario runs at a time".into())
}

fn parse_target(value: &str) -> Result<Target, String> {
    match value {
        "wasm" => Ok(Target::Wasm),
        "envoy" => Ok(Target::Envoy),
        other => match other.strip_prefix("url=") {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(Target::Url {
                    base: url.to_owned(),
                    host: None,
                    settings: c4mesh_live::Settings::default(),
                })
            }
            Some(url) => Err(format!(
                "{url}: the url target takes an http:// or https:// URL"
            )),
            None => Err(format!(
                "{other}: expected wasm, envoy or url=http[s]://HOST[:PORT]"
            )),
        },
    }
}

pub fn command(args: ConformanceArgs) -> Result<ExitCode> {
    let mut targets = if args.targets.is_empty() {
        vec![Target::Wasm, Target::Envoy]
    } else {
        args.targets
    };
    let url = targets.iter().any(|t| matches!(t, Target::Url { .. }));
    if args.host.is_some() && !url {
        bail!("--host applies to the url target: add --target url=http://...");
    }
    if (args.cacert.is_some() || args.insecure) && !url {
        bail!("--cacert and --insecure apply to the url target: add --target url=https://...");
    }
    for target in &mut targets {
        if let Target::Url { host, settings, .. } = target {
            host.clone_from(&args.host);
            settings.cacert.clone_from(&args.cacert);
            settings.insecure = args.insecure;
        }
    }
    let wasm = super::module_file(args.wasm.as_deref())?;
    let (mut scenarios, origin) = match &args.scenarios {
        Some(dir) => (scenario::load_dir(dir)?, dir.display().to_string()),
        None => (suite::load("")?, "the built-in suite".to_owned()),
    };
    if let Some(dir) = &args.istio {
        for scenario in &mut scenarios {
            scenario.istio_dir = Some(dir.clone());
            // Bad resources are refused before anything runs, with file, line and field.
            scenario::istio_resources(scenario)?;
        }
    }
    if let Some(only) = &args.only {
        scenarios.retain(|s| {
            s.name.contains(only.as_str()) || s.file.display().to_string().contains(only.as_str())
        });
    }
    let kinds: Vec<_> = targets.iter().map(Target::kind).collect();
    scenarios.retain(|s| s.targets.iter().any(|t| kinds.contains(t)));
    if scenarios.is_empty() {
        bail!("no scenario in {origin} runs on the chosen targets");
    }
    let options = Options {
        scenarios,
        targets,
        wasm,
        jobs: args.jobs.unwrap_or_else(Options::default_jobs),
    };
    let json = args.json;
    // Output errors (a closed pipe) do not stop the run: its exit status still counts.
    let mut out = std::io::stdout();
    let suite = conformance::run(&options, |scenario| {
        if !json {
            let _ = write!(out, "{}", report::table_lines(scenario));
            let _ = out.flush();
        }
    });
    let mut out = std::io::stdout();
    if json {
        let text = serde_json::to_string_pretty(&suite.json()).context("writing the report")?;
        let _ = writeln!(out, "{text}");
    } else {
        let _ = writeln!(out, "{}", suite.summary_line());
    }
    Ok(if suite.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
