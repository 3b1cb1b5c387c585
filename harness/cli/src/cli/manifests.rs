//! `c4mesh manifests`: the mesh's Kubernetes, Istio and Gateway API objects generated
//! from the filter's defaults, and `c4mesh manifests replay-job`: the Indexed Job that
//! replays traffic from inside the cluster in shards.

use anyhow::{bail, Context, Result};
use c4mesh_manifests::{generate, replay_job, MeshOptions, ReplayJobOptions};
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ManifestsArgs {
    #[command(subcommand)]
    generate: Option<Generate>,
    /// Where the manifests go.
    #[arg(long, value_name = "DIR", default_value = "manifests")]
    out: PathBuf,
    /// The filter module whose sha256 the WasmPlugins carry.
    #[arg(long, value_name = "PATH")]
    wasm: Option<PathBuf>,
    /// Write nothing; fail if DIR differs from a fresh generation.
    #[arg(long)]
    check: bool,
}

#[derive(clap::Subcommand)]
enum Generate {
    /// Writes the Kubernetes Indexed Job (and ConfigMap, with --file) that runs
    /// `c4mesh replay` in N pods, each sending its shard of the load, to stdout.
    ReplayJob(ReplayJobArgs),
}

#[derive(clap::Args)]
struct ReplayJobArgs {
    /// Pods sending at once, each its share of the load.
    #[arg(long, value_name = "N")]
    shards: u32,
    /// Requests per second over all shards; leave it out when the replay arguments
    /// pace the load (-- --concurrency N, or -- --recorded with --file).
    #[arg(long, value_name = "RPS")]
    rate: Option<f64>,
    /// How long each shard sends (30s, 10m, 1h).
    #[arg(long, value_name = "DURATION")]
    duration: String,
    /// The image with c4mesh on its PATH (an ECR URI, pinned by digest in practice).
    #[arg(long, value_name = "IMAGE")]
    image: Option<String>,
    /// The gateway URL (default: the ingress gateway's in-cluster Service).
    #[arg(long, value_name = "URL")]
    target: Option<String>,
    /// The Host header requests carry.
    #[arg(long, value_name = "H")]
    host: Option<String>,
    /// The Job's namespace.
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// The Job's (and ConfigMap's) name.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// JSONL traffic to replay, carried in a ConfigMap (default: the built-in mix).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// More `c4mesh replay` arguments, after `--` (e.g. -- --slo 'p99<50ms').
    #[arg(last = true, value_name = "REPLAY ARGS")]
    replay_args: Vec<String>,
}

fn replay_job_yaml(args: ReplayJobArgs) -> Result<String> {
    let mut options = ReplayJobOptions::new(args.shards, args.rate, &args.duration);
    let set = |field: &mut String, value: Option<String>| {
        if let Some(value) = value {
            *field = value;
        }
    };
    set(&mut options.image, args.image);
    set(&mut options.target, args.target);
    set(&mut options.host, args.host);
    set(&mut options.namespace, args.namespace);
    set(&mut options.name, args.name);
    if let Some(file) = &args.file {
        options.traffic = Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("--file {}: cannot read it", file.display()))?,
        );
    }
    options.extra_args = args.replay_args;
    // The library's errors begin with the option's name, which is the flag's.
    let job = replay_job(&options).map_err(|e| match e.option() {
        "traffic" => anyhow::anyhow!("--file: {e}"),
        "extra_args" => anyhow::anyhow!("the replay arguments after --: {e}"),
        _ => anyhow::anyhow!("--{e}"),
    })?;
    Ok(job.yaml()?)
}

pub fn manifests(args: ManifestsArgs) -> Result<()> {
    if let Some(Generate::ReplayJob(job)) = args.generate {
        print!("{}", replay_job_yaml(job)?);
        return Ok(());
    }
    let module = super::module_bytes(args.wasm.as_deref())?;
    let manifests = generate(&MeshOptions::for_module(&module))?;
    if args.check {
        let differ = manifests.differences(&args.out);
        if !differ.is_empty() {
            bail!(
                "{} differ from a fresh generation: {} (run `c4mesh manifests`)",
                args.out.display(),
                differ.join(", ")
            );
        }
        println!("{} is up to date", args.out.display());
    } else {
        manifests.write(&args.out)?;
        println!(
            "wrote {} files to {}",
            manifests.files.len(),
            args.out.display()
        );
    }
    Ok(())
}
