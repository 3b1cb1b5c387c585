//! `c4mesh up`: the local mesh on loopback — a real Envoy with the filter as the
//! gateway, the six services simulated behind it (two hosts each), optional faults —
//! for trying the filter by hand or replaying traffic against it.
//!
//! The gateway serves HTTP and, as the Gateway's port 443 with `ecommerce-tls-cert`
//! does, HTTPS: a CA and a certificate for `api.c4ang.com` are made at start and
//! written to `--certs`, so clients can trust the CA and check the name as they would
//! through the NLB.
//!
//! With `--prometheus`, a real Prometheus on 127.0.0.1 scrapes every proxy's
//! `/stats/prometheus` with the generated rules (`manifests/observability/`) loaded:
//! the filter's metrics, the recording rules and the alerts as an operator's
//! Prometheus shows them, with a short interval (`--scrape-interval`, also the rules'
//! evaluation interval).

use anyhow::{bail, Context, Result};
use c4mesh_conformance::envoy_target::{Gateway, Started};
use c4mesh_conformance::scenario::{
    self, FaultChange, FilterAt, Mesh, Profile, Scenario, TargetKind, TopologySpec,
};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct UpArgs {
    /// The filter module (default: the c4mesh filter's release build).
    #[arg(long, value_name = "PATH")]
    wasm: Option<PathBuf>,
    /// Plugin configuration: JSON text, or @FILE (default: empty, the mesh's defaults).
    #[arg(long, value_name = "JSON|@FILE")]
    config: Option<String>,
    /// Envoy worker threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    workers: u16,
    /// A fault: SERVICE[/HOST]=STATUS|reset|hang|error:RATE, optionally @LATENCY
    /// (e.g. order-service=503, payment-service/0=reset, product-service=200@50ms,
    /// saga-tracker=error:0.3). Repeatable.
    #[arg(long = "fault", value_name = "SERVICE[/HOST]=WHAT[@LATENCY]", value_parser = parse_fault)]
    faults: Vec<FaultChange>,
    /// Services calling each other through their pods' sidecars, CALLER=CALLEE pairs
    /// (e.g. order-service=payment-service,payment-service=saga-tracker): each pod of a
    /// calling service gets a sidecar Envoy (the filter in sidecar mode, Istio's
    /// in-mesh retries) and calls through it for every request it serves.
    #[arg(long, value_name = "CALLER=CALLEE,...", value_parser = c4mesh_mesh::Topology::parse)]
    calls: Option<c4mesh_mesh::Topology>,
    /// Which proxies run the filter when --calls is given: all, gateway, sidecars, none.
    #[arg(long, value_name = "WHERE", default_value = "all", value_parser = parse_filter_at)]
    filter_at: FilterAt,
    /// A folder of Istio YAML (an operator's VirtualServices, DestinationRules, ...)
    /// laid over the generated manifests before the proxies are built from them.
    #[arg(long, value_name = "DIR")]
    istio: Option<PathBuf>,
    /// Where to write the HTTPS listener's CA (ca.pem), certificate (cert.pem) and key
    /// (key.pem), made at start (default: a new directory under the system's temporary
    /// directory, named after the process, removed when --for ends).
    #[arg(long = "certs", value_name = "DIR")]
    certs: Option<PathBuf>,
    /// Start a Prometheus (the Debian package `prometheus`) on 127.0.0.1 that scrapes
    /// every proxy's /stats/prometheus with the generated rules and alerts loaded, and
    /// print its URL.
    #[arg(long)]
    prometheus: bool,
    /// With --prometheus: how often it scrapes the proxies and evaluates the rules.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = scenario::parse_duration)]
    scrape_interval: Duration,
    /// Stop after this long (e.g. 30s, 10m); default: until interrupted.
    #[arg(long = "for", value_name = "DURATION", value_parser = scenario::parse_duration)]
    run_for: Option<Duration>,
}

/// The host the Gateway serves, and the HTTPS certificate's only name.
const HOST: &str = "api.c4ang.com";

fn parse_filter_at(text: &str) -> Result<FilterAt, String> {
    match text {
        "all" => Ok(FilterAt::All),
        "gateway" => Ok(FilterAt::Gateway),
        "sidecars" => Ok(FilterAt::Sidecars),
        "none" => Ok(FilterAt::None),
        other => Err(format!(
            "expected all, gateway, sidecars or none, got {other:?}"
        )),
    }
}

fn parse_fault(text: &str) -> Result<FaultChange, String> {
    let (target, what) = text
        .split_once('=')
        .ok_or("expected SERVICE[/HOST]=WHAT, e.g. order-service=503")?;
    let (service, host) = match target.split_once('/') {
        Some((service, host)) => (
            service,
            Some(
                host.parse::<usize>()
                    .map_err(|_| format!("{host:?} is not a host index"))?,
            ),
        ),
        None => (target, None),
    };
    let (kind, latency) = match what.split_once('@') {
        Some((kind, latency)) => (kind, Some(latency)),
        None => (what, None),
    };
    let mut profile = Profile::default();
    match kind {
        "reset" => profile.reset = true,
        "hang" => profile.hang = true,
        _ => match kind.strip_prefix("error:") {
            Some(rate) => {
                let rate: f64 = rate
                    .parse()
                    .map_err(|_| format!("{rate:?} is not a rate"))?;
                if !(0.0..=1.0).contains(&rate) {
                    return Err(format!("error rate must be within [0, 1], got {rate}"));
                }
                profile.error_rate = Some(rate);
            }
            None => {
                let status: u16 = kind
                    .parse()
                    .ok()
                    .filter(|s| (200..=599).contains(s))
                    .ok_or_else(|| {
                        format!("{kind:?}: expected a status 200-599, reset, hang or error:RATE")
                    })?;
                profile.status = Some(status);
            }
        },
    }
    if let Some(latency) = latency {
        profile.latency = Some(scenario::Latency::Fixed(scenario::parse_duration(latency)?));
    }
    Ok(FaultChange {
        at: Duration::ZERO,
        service: service.to_owned(),
        host,
        profile,
    })
}

pub fn command(args: UpArgs) -> Result<ExitCode> {
    let wasm = super::module_file(args.wasm.as_deref())?;
    if args.scrape_interval.is_zero() {
        bail!("--scrape-interval must be above 0");
    }
    let config_text = match &args.config {
        Some(text) => match text.strip_prefix('@') {
            Some(file) => std::fs::read_to_string(file)
                .with_context(|| format!("--config: reading {file}"))?,
            None => text.clone(),
        },
        None => String::new(),
    };
    let mut mesh = Scenario {
        name: "local mesh".into(),
        rules: Vec::new(),
        description: None,
        targets: vec![TargetKind::Envoy],
        config: None,
        config_text: Some(config_text),
        seed: 1,
        mesh: Mesh {
            workers: usize::from(args.workers),
            ..Mesh::default()
        },
        topology: args.calls.map(|calls| TopologySpec {
            calls: calls.calls,
            filter_at: args.filter_at,
            sidecar_config: None,
        }),
        istio: Vec::new(),
        istio_dir: args.istio.clone(),
        upstreams: Vec::new(),
        steps: Vec::new(),
        finally: None,
        rejected: None,
        file: PathBuf::from("(command line)"),
    };
    let services = scenario::services_of(&mesh);
    if let Some(topology) = &mesh.topology {
        let calls = c4mesh_mesh::Topology {
            calls: topology.calls.clone(),
        };
        if let Err(error) = calls.validate(&services) {
            bail!(
                "--calls: {error} (the configuration routes to: {})",
                services.join(", ")
            );
        }
    }
    for fault in &args.faults {
        if !services.contains(&fault.service) {
            bail!(
                "--fault: unknown service {:?} (the configuration routes to: {})",
                fault.service,
                services.join(", ")
            );
        }
        if fault.host.is_some_and(|h| h >= mesh.mesh.hosts) {
            bail!(
                "--fault: {} has hosts 0 to {}",
                fault.service,
                mesh.mesh.hosts - 1
            );
        }
    }
    mesh.upstreams = args.faults;
    let certs = match args.certs.clone() {
        Some(dir) => dir,
        // Kept on purpose: `c4mesh up` prints `CA: DIR/ca.pem` for clients to trust while
        // it serves, and it stops by a signal, with no drop to run; the CA's key is never
        // written, so what stays behind signs nothing.
        None => tempfile::Builder::new()
            .prefix("c4mesh-up-")
            .tempdir()
            .context("--certs: a temporary directory for the HTTPS certificates")?
            .keep(),
    };
    let certificates = c4mesh_mesh::tls::generate(&certs, HOST).with_context(|| {
        format!(
            "--certs: making the HTTPS certificates in {}",
            certs.display()
        )
    })?;
    let gateway = match Gateway::start_serving(&mesh, &wasm, Some(certificates.listener()))? {
        Started::Serving(gateway) => gateway,
        Started::Refused(log) => bail!("Envoy refused the filter's configuration:\n{log}"),
    };
    gateway.begin();
    let url = gateway.envoy.url();
    // Output errors (a reader that went away) must not stop the mesh.
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "c4mesh local mesh: Envoy with {} ({} workers)",
        wasm.display(),
        args.workers
    );
    let _ = writeln!(out, "gateway  {url}   (Host: {HOST})");
    if let Some(https) = gateway.envoy.tls_url() {
        let _ = writeln!(
            out,
            "https    {https}   (Host: {HOST}, CA: {})",
            certificates.ca.display()
        );
    }
    let _ = writeln!(out, "admin    http://{}", gateway.envoy.admin);
    for (pod, sidecar) in &gateway.sidecars {
        let _ = writeln!(
            out,
            "sidecar  {pod:<20} http://{}  (admin http://{})",
            sidecar.listener, sidecar.admin
        );
    }
    for (service, host, addr) in gateway.hosts() {
        let _ = writeln!(out, "{:<28} http://{addr}", format!("{service}/{host}"));
    }
    // Kept until the mesh stops.
    let _prometheus = if args.prometheus {
        let config = c4mesh_mesh::PrometheusConfig {
            scrape_interval: args.scrape_interval,
            evaluation_interval: args.scrape_interval,
            rules: Some(c4mesh_manifests::observability::rules_file()?),
        };
        let proxies = std::iter::once(("gateway", &gateway.envoy))
            .chain(gateway.sidecars.iter().map(|(pod, e)| (pod.as_str(), e)));
        let prometheus =
            c4mesh_mesh::Prometheus::start(&config, &c4mesh_mesh::prometheus::targets(proxies))
                .context("--prometheus")?;
        let _ = writeln!(
            out,
            "prometheus {}   (scrapes every {:?}; alerts {}/alerts, targets {}/targets)",
            prometheus.url(),
            args.scrape_interval,
            prometheus.url(),
            prometheus.url()
        );
        Some(prometheus)
    } else {
        None
    };
    let _ = writeln!(out, "try      curl -H 'host: {HOST}' {url}/api/v1/orders/1");
    if let Some(https) = gateway.envoy.tls_listener {
        let port = https.port();
        let _ = writeln!(
            out,
            "try      curl --cacert {} --resolve {HOST}:{port}:{} https://{HOST}:{port}/api/v1/orders/1",
            certificates.ca.display(),
            https.ip()
        );
    }
    match args.run_for {
        Some(duration) => {
            let _ = writeln!(out, "serving for {duration:?}");
            let _ = out.flush();
            std::thread::sleep(duration);
            if args.certs.is_none() {
                // Made for this run only: nothing can use them once the gateway stops.
                let _ = std::fs::remove_dir_all(&certificates.dir);
            }
        }
        None => {
            let _ = writeln!(out, "serving until interrupted (Ctrl-C)");
            let _ = out.flush();
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
