//! `c4mesh`: the command line over the harness library.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc instead of the system allocator: replay's HTTP stack allocates a few times
/// per request, and glibc's malloc was an eighth of its instructions per request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "c4mesh",
    version,
    about = "Run, test and trust traffic policy in an Istio mesh"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one request through a proxy-wasm module in the harness and prints what the
    /// module logged, then the response status and headers the client got.
    Run(cli::run::RunArgs),
    /// Runs the conformance scenarios on the wasm target (the harness), the envoy
    /// target (a real Envoy) or a live gateway, and reports failures and disagreements.
    Conformance(cli::conformance::ConformanceArgs),
    /// Starts the local mesh on loopback: Envoy with the filter as the gateway, the six
    /// services simulated behind it, optional faults; prints its URLs.
    Up(cli::up::UpArgs),
    /// Sends traffic (a JSONL file or the built-in mix) to a gateway, open or closed
    /// loop, and reports latency percentiles, statuses, errors and attempts per route.
    Replay(cli::replay::ReplayArgs),
    /// Checks the deployed mesh through kubectl (pods 2/2, VirtualServices, Gateway,
    /// DestinationRules, WasmPlugins, mTLS, the NLB, a request) and prints each fix.
    Check(cli::check::CheckArgs),
    /// Writes the mesh's manifests (Kubernetes, Istio, Gateway API) generated from the
    /// filter's default configuration, or checks them with --check.
    Manifests(cli::manifests::ManifestsArgs),
    /// The demo: the local mesh in Envoy showing routing, local replies, an outage with
    /// and without the retry budget, the route circuit, and retries across hops.
    Demo(cli::demo::DemoArgs),
    /// Packages the filter as an OCI image layout Istio's WasmPlugin can pull, and
    /// pushes it to a registry with --push oci://HOST/REPO:TAG.
    Package(cli::package::PackageArgs),
    /// Writes c4mesh itself (a static binary) as a container image layout for the
    /// replay Job, and pushes it with --push oci://HOST/REPO:TAG.
    Image(cli::package::ImageArgs),
    /// Soaks the filter in a real Envoy (2 workers) for a bounded time under rotating
    /// faults and thousands of upstream addresses; samples its memory and shared data
    /// to a CSV and a plot, and fails unless memory stays flat and the keys bounded.
    Soak(cli::soak::SoakArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cli::run::command(args),
        Command::Conformance(args) => cli::conformance::command(args),
        Command::Up(args) => cli::up::command(args),
        Command::Replay(args) => cli::replay::command(args),
        Command::Check(args) => cli::check::command(args),
        Command::Manifests(args) => cli::manifests::manifests(args).map(|()| ExitCode::SUCCESS),
        Command::Demo(args) => cli::demo::command(args),
        Command::Package(args) => cli::package::package(args).map(|()| ExitCode::SUCCESS),
        Command::Image(args) => cli::package::image(args).map(|()| ExitCode::SUCCESS),
        Command::Soak(args) => cli::soak::command(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("c4mesh: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cli::run::parse_header;

    #[test]
    fn headers_parse_with_and_without_pseudo_names() {
        assert_eq!(
            parse_header("Host: api.c4ang.com").ok(),
            Some(("host".into(), "api.c4ang.com".into()))
        );
        assert_eq!(
            parse_header(":authority: a:80").ok(),
            Some((":authority".into(), "a:80".into()))
        );
        assert_eq!(
            parse_header("x: a: b").ok(),
            Some(("x".into(), "a: b".into()))
        );
        assert!(parse_header("no-colon").is_err());
        assert!(parse_header(": empty").is_err());
    }

    #[test]
    fn bad_arguments_name_the_flag() {
        let error =
            Cli::try_parse_from(["c4mesh", "run", "--wasm", "x.wasm", "-H", "bad", "GET", "/"])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
        assert!(error.contains("--header"), "{error}");
        let error = Cli::try_parse_from([
            "c4mesh",
            "run",
            "--wasm",
            "x.wasm",
            "--workers",
            "0",
            "GET",
            "/",
        ])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(error.contains("--workers"), "{error}");
        let error = Cli::try_parse_from([
            "c4mesh",
            "run",
            "--wasm",
            "x.wasm",
            "--upstream-status",
            "9",
            "GET",
            "/",
        ])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(error.contains("--upstream-status"), "{error}");
        for (flag, value) in [
            ("--rate", "0"),
            ("--duration", "forever"),
            ("--addresses", "0"),
        ] {
            let error = Cli::try_parse_from(["c4mesh", "soak", "--duration", "1m", flag, value])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains(flag), "{error}");
        }
    }

    #[test]
    fn replay_runs_with_a_target_and_merges_reports_beside_it() {
        let parsed = |args: &[&str]| Cli::try_parse_from(args).map_err(|e| e.to_string());
        assert!(parsed(&["c4mesh", "replay", "--target", "http://127.0.0.1:1"]).is_ok());
        assert!(parsed(&["c4mesh", "replay", "--target", "http://h", "--shard", "3/4"]).is_ok());
        assert!(
            parsed(&["c4mesh", "replay", "merge", "a.json", "b.json", "--slo", "p99<50ms"]).is_ok()
        );
        let error = parsed(&["c4mesh", "replay", "--target", "http://h", "--shard", "4/4"])
            .err()
            .unwrap_or_default();
        assert!(
            error.contains("--shard") && error.contains("'4/4'"),
            "{error}"
        );
        let error = parsed(&["c4mesh", "replay", "--target", "http://h", "--shard", "1-4"])
            .err()
            .unwrap_or_default();
        assert!(
            error.contains("--shard") && error.contains("'1-4'"),
            "{error}"
        );
        let error = parsed(&["c4mesh", "replay"]).err().unwrap_or_default();
        assert!(error.contains("--target"), "{error}");
        let error = parsed(&["c4mesh", "replay", "merge"])
            .err()
            .unwrap_or_default();
        assert!(error.contains("<REPORT>"), "{error}");
        let error = parsed(&[
            "c4mesh", "replay", "--target", "http://h", "merge", "a.json",
        ])
        .err()
        .unwrap_or_default();
        assert!(error.contains("merge"), "{error}");
    }
}
