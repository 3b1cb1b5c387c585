//! The `c4mesh` command line: `run`, `manifests`, `package`, `up`, `replay`, `check`.

use crate::command::c4mesh;
use crate::support::probe_wasm;

#[test]
fn run_prints_logs_then_the_response() {
    let wasm = probe_wasm();
    let (code, stdout, stderr) = c4mesh(&[
        "run",
        "--wasm",
        wasm.to_str().unwrap_or_default(),
        "--config",
        "{}",
        "-H",
        "host: api.c4ang.com",
        "--upstream-status",
        "404",
        "GET",
        "/probe/plain",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "info probe-start: on_vm_start size=0 vm_configuration=0 null"
    );
    assert!(
        lines.contains(&"info probe: /probe/plain on_http_request_headers headers=5 end=true"),
        "{stdout}"
    );
    let status = lines
        .iter()
        .position(|l| *l == "HTTP 404")
        .expect("status line");
    assert!(lines[..status]
        .iter()
        .all(|l| l.split_once(' ').is_some_and(|(level, _)| level == "info")));
    assert!(
        lines[status + 1..].contains(&"x-probe-added: yes"),
        "{stdout}"
    );
}

#[test]
fn run_answers_with_a_body_as_an_upstream_does() {
    let wasm = probe_wasm();
    let (code, stdout, stderr) = c4mesh(&[
        "run",
        "--wasm",
        wasm.to_str().unwrap_or_default(),
        "--show-body",
        "GET",
        "/probe/plain",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("info probe: /probe/plain on_http_response_headers headers=3 end=false"),
        "{stdout}"
    );
    assert!(
        stdout.contains("info probe: /probe/plain on_http_response_body size=44 end=false"),
        "{stdout}"
    );
    assert!(
        stdout.contains("info probe: /probe/plain on_http_response_body size=0 end=true"),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"{"path":"/probe/plain","service":"upstream"}"#),
        "{stdout}"
    );
}

#[test]
fn run_names_the_plugin_and_its_clusters() {
    let wasm = probe_wasm();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--wasm",
            wasm.to_str().unwrap_or_default(),
            "--config",
            r#"{"probe":true}"#,
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["POST", "/probe/full"]);
        let (code, stdout, stderr) = c4mesh(&args);
        assert_eq!(code, 0, "{stderr}");
        stdout
    };
    let stdout = run(&["--name", "my-plugin"]);
    assert!(
        stdout.contains(r#"info probe: get_property plugin_name -> 0 "my-plugin""#),
        "{stdout}"
    );
    // Without the cluster, a callout is refused at once and never answered, as in Envoy.
    assert!(
        stdout.contains("info probe: http_call -> ok=false nonzero=false"),
        "{stdout}"
    );
    assert!(!stdout.contains("on_http_call_response"), "{stdout}");
    let stdout = run(&["--cluster", "probe"]);
    assert!(
        stdout.contains(r#"info probe: get_property plugin_name -> 0 "c4mesh""#),
        "{stdout}"
    );
    assert!(
        stdout.contains("info probe: http_call -> ok=true nonzero=true"),
        "{stdout}"
    );
    assert!(
        stdout.contains("info probe: call get_header :status -> 0 \"503\""),
        "{stdout}"
    );
}

#[test]
fn bad_arguments_name_the_flag() {
    let (code, _, stderr) = c4mesh(&["run", "--wasm", "x.wasm", "--workers", "zero", "GET", "/"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--workers"), "{stderr}");
    let (code, _, stderr) = c4mesh(&["run", "--wasm", "/nonexistent.wasm", "GET", "/"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("/nonexistent.wasm"), "{stderr}");
}

#[test]
fn manifests_check_passes_on_the_checked_in_tree_and_fails_on_an_edit() {
    let wasm = crate::support::filter_wasm();
    let wasm = wasm.to_str().unwrap_or_default();
    let checked_in = crate::support::workspace_root().join("manifests");
    let (code, stdout, stderr) = c4mesh(&[
        "manifests",
        "--check",
        "--wasm",
        wasm,
        "--out",
        checked_in.to_str().unwrap_or_default(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    let copy_dir = tempfile::Builder::new()
        .prefix("c4mesh-manifests-")
        .tempdir()
        .expect("a temporary directory");
    let copy = copy_dir.path().join("c4mesh-manifests");
    let _ = std::fs::remove_dir_all(&copy);
    let (code, _, stderr) = c4mesh(&[
        "manifests",
        "--wasm",
        wasm,
        "--out",
        copy.to_str().unwrap_or_default(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let namespace = copy.join("namespace.yaml");
    let text = std::fs::read_to_string(&namespace).expect("namespace.yaml written");
    std::fs::write(&namespace, text.replace("ecommerce", "shop")).expect("edit");
    let (code, _, stderr) = c4mesh(&[
        "manifests",
        "--check",
        "--wasm",
        wasm,
        "--out",
        copy.to_str().unwrap_or_default(),
    ]);
    let _ = std::fs::remove_dir_all(&copy);
    assert_ne!(code, 0);
    assert!(stderr.contains("namespace.yaml"), "{stderr}");
}

#[test]
fn package_writes_an_oci_layout_and_prints_its_digest() {
    let wasm = crate::support::filter_wasm();
    let out_dir = tempfile::Builder::new()
        .prefix("c4mesh-oci-")
        .tempdir()
        .expect("a temporary directory");
    let out = out_dir.path().join("c4mesh-oci");
    let _ = std::fs::remove_dir_all(&out);
    let (code, stdout, stderr) = c4mesh(&[
        "package",
        "--wasm",
        wasm.to_str().unwrap_or_default(),
        "--out",
        out.to_str().unwrap_or_default(),
    ]);
    let layout = out.join("oci-layout").is_file() && out.join("index.json").is_file();
    let _ = std::fs::remove_dir_all(&out);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("image   sha256:"), "{stdout}");
    assert!(layout, "no OCI layout written");
}

/// `c4mesh up` running in the background; killed when dropped.
struct Up {
    child: std::process::Child,
    gateway: String,
    /// The HTTPS listener and the CA file that signed its certificate.
    https: String,
    ca: String,
    /// Kept open: the command goes on printing after the gateway line.
    _stdout: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Up {
    fn start(args: &[&str]) -> Up {
        use std::io::{BufRead, BufReader};
        use std::sync::atomic::{AtomicUsize, Ordering};
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let wasm = crate::support::filter_wasm();
        let certs = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "up-certs-{}",
            STARTED.fetch_add(1, Ordering::SeqCst)
        ));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_c4mesh"))
            .args(["up", "--for", "30s", "--wasm"])
            .arg(&wasm)
            .arg("--certs")
            .arg(&certs)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting c4mesh up");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut printed = Vec::new();
        loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    use std::io::Read;
                    let _ = err.read_to_string(&mut stderr);
                }
                let _ = child.wait();
                panic!("c4mesh up ended before printing the gateway: {printed:?}\n{stderr}");
            };
            printed.push(line.clone());
            if let Some(url) = line.strip_prefix("gateway  ") {
                let gateway = url.split_whitespace().next().unwrap_or_default().to_owned();
                // The HTTPS line follows: `https    URL   (Host: ..., CA: FILE)`.
                let https_line = lines.next().and_then(Result::ok).unwrap_or_default();
                let https = https_line
                    .strip_prefix("https")
                    .and_then(|rest| rest.split_whitespace().next())
                    .unwrap_or_default()
                    .to_owned();
                let ca = https_line
                    .split("CA: ")
                    .nth(1)
                    .map(|rest| rest.trim_end_matches(')').to_owned())
                    .unwrap_or_default();
                return Up {
                    child,
                    gateway,
                    https,
                    ca,
                    _stdout: lines,
                };
            }
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.gateway
            .trim_start_matches("http://")
            .parse()
            .expect("gateway address")
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn up_serves_the_local_mesh_with_its_faults_and_prints_its_urls() {
    let up = Up::start(&["--fault", "order-service=503"]);
    let client = c4mesh_mesh::Client::new(up.addr());
    let orders = client.get("/api/v1/orders/1", &[]).expect("orders");
    let products = client.get("/api/v1/products/1", &[]).expect("products");
    let unknown = client.get("/nothing", &[]).expect("no route");
    assert_eq!(orders.status, 503);
    assert_eq!(products.status, 200);
    assert_eq!(unknown.header("x-c4-reason"), Some("no_route"));
}

#[test]
fn up_with_calls_routes_each_pods_calls_through_its_sidecar() {
    // order-service calls payment-service, which fails: orders answers 503 too.
    let up = Up::start(&[
        "--calls",
        "order-service=payment-service",
        "--fault",
        "payment-service=503",
    ]);
    let client = c4mesh_mesh::Client::new(up.addr());
    let orders = client.get("/api/v1/orders/1", &[]).expect("orders");
    let products = client.get("/api/v1/products/1", &[]).expect("products");
    assert_eq!(
        orders.status, 503,
        "the order pod's call to payments failed"
    );
    assert_eq!(products.status, 200);
    let healthy = Up::start(&["--calls", "order-service=payment-service"]);
    let client = c4mesh_mesh::Client::new(healthy.addr());
    let orders = client.get("/api/v1/orders/1", &[]).expect("orders");
    assert_eq!(orders.status, 200);
}

#[test]
fn replay_reports_the_mix_through_the_local_mesh() {
    let up = Up::start(&[
        "--config",
        r#"{"debug_headers": true}"#,
        "--fault",
        "saga-tracker=500",
    ]);
    let (code, stdout, stderr) = c4mesh(&[
        "replay",
        "--target",
        &up.gateway,
        "--count",
        "60",
        "--concurrency",
        "4",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(report["responses"], 60, "{report}");
    assert_eq!(report["complete"], true);
    assert_eq!(
        report["routes"]["orders"]["statuses"]["200"], 10,
        "{report}"
    );
    // saga-tracker fails: five failures open its circuit, the rest fail fast.
    assert_eq!(report["routes"]["saga"]["responses"], 10, "{report}");
    assert_eq!(
        report["routes"]["saga"]["statuses"]["200"],
        serde_json::Value::Null,
        "{report}"
    );
    assert!(report["latency_ms"]["p99"].as_f64().is_some(), "{report}");
    let (code, stdout, _) = c4mesh(&[
        "replay",
        "--target",
        &up.gateway,
        "--rate",
        "100",
        "--duration",
        "1s",
    ]);
    assert_eq!(code, 0);
    assert!(stdout.contains("open loop at 100/s"), "{stdout}");
    assert!(stdout.contains("p99"), "{stdout}");
}

#[test]
fn replay_names_bad_arguments() {
    let (code, _, stderr) = c4mesh(&["replay", "--target", "ftp://x", "--count", "1"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("--target: ftp://x: expected http://"),
        "{stderr}"
    );
    let (code, _, stderr) = c4mesh(&[
        "replay",
        "--target",
        "http://127.0.0.1:9",
        "--rate",
        "0",
        "--count",
        "1",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--rate"), "{stderr}");
    let (code, _, stderr) = c4mesh(&[
        "replay",
        "--target",
        "http://127.0.0.1:9",
        "--recorded",
        "--count",
        "1",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--file"), "{stderr}");
}

#[test]
fn up_names_a_bad_fault() {
    let (code, _, stderr) = c4mesh(&["up", "--fault", "order-service=9"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--fault"), "{stderr}");
    let wasm = crate::support::filter_wasm();
    let (code, _, stderr) = c4mesh(&[
        "up",
        "--wasm",
        wasm.to_str().unwrap_or_default(),
        "--fault",
        "nope=503",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("unknown service \"nope\""), "{stderr}");
    let (code, _, stderr) = c4mesh(&["up", "--calls", "order-service"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--calls"), "{stderr}");
    let (code, _, stderr) = c4mesh(&[
        "up",
        "--wasm",
        wasm.to_str().unwrap_or_default(),
        "--calls",
        "order-service=nope",
    ]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("--calls: unknown service \"nope\""),
        "{stderr}"
    );
}

/// The generated manifests as a healthy cluster would show them: pods with their
/// sidecar and the NLB's address first, then every generated file.
fn cluster_state(nlb: &str) -> String {
    let mut state = String::new();
    // The pods carry what the generated manifests give them: the stats inclusion.
    let annotations = serde_json::to_string(
        &c4mesh_manifests::observability::pod_annotations().expect("the pod annotations"),
    )
    .expect("json");
    for service in ["customer-service", "order-service", "saga-tracker"] {
        state.push_str(&format!(
            "---\nkind: Pod\nmetadata: {{name: {service}-0, namespace: ecommerce, annotations: {annotations}}}\nstatus:\n  phase: Running\n  containerStatuses: [{{name: app, ready: true}}, {{name: istio-proxy, ready: true}}]\n"
        ));
    }
    state.push_str(&format!(
        "---\nkind: Pod\nmetadata: {{name: istio-ingressgateway-0, namespace: istio-system, labels: {{istio: ingressgateway}}, annotations: {annotations}}}\nstatus:\n  phase: Running\n  containerStatuses: [{{name: istio-proxy, ready: true}}]\n"
    ));
    state.push_str(&format!(
        "---\nkind: Service\nmetadata: {{name: istio-ingressgateway, namespace: istio-system}}\nspec: {{type: LoadBalancer}}\nstatus: {{loadBalancer: {{ingress: [{{hostname: \"{nlb}\"}}]}}}}\n"
    ));
    let generated = c4mesh_manifests::generate(&c4mesh_manifests::MeshOptions::for_module(&[]))
        .expect("generating the manifests");
    for text in generated.files.values() {
        state.push_str("---\n");
        state.push_str(text);
    }
    state
}

#[test]
fn check_passes_a_healthy_cluster_and_sends_its_request_through_the_gateway() {
    let up = Up::start(&[]);
    let file_dir = tempfile::Builder::new()
        .prefix("c4mesh-cluster-")
        .tempdir()
        .expect("a temporary directory");
    let file = file_dir.path().join("c4mesh-cluster.yaml");
    std::fs::write(
        &file,
        cluster_state("k8s-istio-abc.elb.us-east-1.amazonaws.com"),
    )
    .expect("write");
    let (code, stdout, stderr) = c4mesh(&[
        "check",
        "--from",
        file.to_str().unwrap_or_default(),
        "--gateway",
        &up.gateway,
    ]);
    let _ = std::fs::remove_file(&file);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("11 checks, 0 failed"), "{stdout}");
    assert!(
        stdout.contains("PASS  POST and PATCH retried only before the service received them"),
        "{stdout}"
    );
    assert!(
        stdout.contains("PASS  a request through the gateway reaches a service"),
        "{stdout}"
    );

    // The same request over HTTPS: verified against the gateway's CA, refused without it.
    let file_dir = tempfile::Builder::new()
        .prefix("c4mesh-cluster-tls-")
        .tempdir()
        .expect("a temporary directory");
    let file = file_dir.path().join("c4mesh-cluster-tls.yaml");
    std::fs::write(
        &file,
        cluster_state("k8s-istio-abc.elb.us-east-1.amazonaws.com"),
    )
    .expect("write");
    let from = file.to_str().unwrap_or_default();
    let (code, stdout, stderr) = c4mesh(&[
        "check",
        "--from",
        from,
        "--gateway",
        &up.https,
        "--cacert",
        &up.ca,
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "GET {}/api/v1/products/1 (Host: api.c4ang.com): 200",
            up.https
        )),
        "{stdout}"
    );
    let (code, stdout, _) = c4mesh(&["check", "--from", from, "--gateway", &up.https]);
    assert_ne!(code, 0);
    assert!(stdout.contains("tls_unknown_ca"), "{stdout}");
    // Without --gateway, --https sends to the NLB's hostname on port 443.
    let (_, stdout, _) = c4mesh(&["check", "--from", from, "--https"]);
    let _ = std::fs::remove_file(&file);
    assert!(
        stdout.contains("https://k8s-istio-abc.elb.us-east-1.amazonaws.com"),
        "{stdout}"
    );
}

#[test]
fn replay_speaks_https_and_http2_to_the_local_mesh() {
    let up = Up::start(&[]);
    let (code, stdout, stderr) = c4mesh(&[
        "replay",
        "--target",
        &up.https,
        "--cacert",
        &up.ca,
        "--count",
        "30",
        "--concurrency",
        "3",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(
        report["statuses"],
        serde_json::json!({"200": 30}),
        "{report:#}"
    );
    let (code, stdout, stderr) = c4mesh(&[
        "replay",
        "--target",
        &up.gateway,
        "--http2",
        "--connections",
        "1",
        "--count",
        "20",
        "--concurrency",
        "4",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(
        report["statuses"],
        serde_json::json!({"200": 20}),
        "{report:#}"
    );
    assert_eq!(report["connections"], serde_json::json!(1));
    let (code, _, stderr) = c4mesh(&[
        "replay",
        "--target",
        &up.https,
        "--cacert",
        "/nonexistent.pem",
        "--count",
        "1",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--cacert /nonexistent.pem"), "{stderr}");
    let (code, _, stderr) = c4mesh(&[
        "replay",
        "--target",
        &up.gateway,
        "--insecure",
        "--count",
        "1",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("https://"), "{stderr}");
}

#[test]
fn check_names_what_is_missing_with_its_fix() {
    let file_dir = tempfile::Builder::new()
        .prefix("c4mesh-bare-")
        .tempdir()
        .expect("a temporary directory");
    let file = file_dir.path().join("c4mesh-bare.yaml");
    let namespace = crate::support::workspace_root().join("manifests/namespace.yaml");
    std::fs::copy(namespace, &file).expect("copy");
    let (code, stdout, _) = c4mesh(&[
        "check",
        "--from",
        file.to_str().unwrap_or_default(),
        "--no-request",
    ]);
    let _ = std::fs::remove_file(&file);
    assert_ne!(code, 0);
    assert!(
        stdout.contains("FAIL  pods running with their sidecar (2/2): no pods"),
        "{stdout}"
    );
    assert!(stdout.contains("15017"), "{stdout}");
    // Without resources nothing retries unsafely and no plugin grants anything.
    assert!(stdout.contains("10 checks, 8 failed"), "{stdout}");
    let (code, _, stderr) = c4mesh(&["check", "--from", "/nonexistent/state.json"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("--from /nonexistent/state.json"),
        "{stderr}"
    );
}

/// The operator's VirtualServices and DestinationRules as their guide writes them.
const OPERATOR_ISTIO: &str = "harness/cli/tests/data/operator-istio";

#[test]
fn conformance_with_istio_runs_the_scenarios_on_the_operators_own_mesh() {
    let wasm = crate::support::filter_wasm();
    // Proxies without the filter run the no-op module beside it.
    let run = |only: &str, istio: Option<&str>| {
        let mut args = vec![
            "conformance",
            "--target",
            "wasm",
            "--scenarios",
            "harness/conformance/suite/hops",
            "--wasm",
            wasm.to_str().unwrap_or_default(),
            "--only",
            only,
        ];
        if let Some(dir) = istio {
            args.extend(["--istio", dir]);
        }
        c4mesh(&args)
    };
    let generated = "three hops without the filter on the generated mesh";
    let (code, stdout, stderr) = run(generated, None);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // The guide's VirtualServices retry 3 times without retryOn: never a 503, so the
    // gateway's 4 attempts per user request become 1.
    let (code, stdout, _) = run(generated, Some(OPERATOR_ISTIO));
    assert_ne!(code, 0, "{stdout}");
    assert!(
        stdout.contains("attempts at order-service per request = 4")
            && stdout.contains("observed 1"),
        "{stdout}"
    );
    let (code, stdout, stderr) = run("three hops under the operator", Some(OPERATOR_ISTIO));
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn a_bad_istio_resource_is_refused_with_file_line_and_field() {
    let wasm = crate::support::filter_wasm();
    let (code, stdout, stderr) = c4mesh(&[
        "conformance",
        "--target",
        "wasm",
        "--wasm",
        wasm.to_str().unwrap_or_default(),
        "--istio",
        "harness/cli/tests/data/bad-istio",
    ]);
    assert_ne!(code, 0, "{stdout}");
    assert!(
        stderr.contains("harness/cli/tests/data/bad-istio/virtual-service.yaml:13")
            && stderr.contains("spec.http[0].retries.attempts"),
        "{stderr}"
    );
    let (code, _, stderr) = c4mesh(&[
        "up",
        "--wasm",
        wasm.to_str().unwrap_or_default(),
        "--istio",
        "harness/cli/tests/data/bad-istio",
        "--for",
        "1s",
    ]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("virtual-service.yaml:13")
            && stderr.contains("spec.http[0].retries.attempts"),
        "{stderr}"
    );
}

#[test]
fn up_with_istio_runs_the_local_mesh_on_the_operators_resources() {
    let attempts = |extra: &[&str]| {
        let mut args = vec![
            "--fault",
            "order-service=503",
            "--config",
            r#"{"debug_headers": true}"#,
        ];
        args.extend_from_slice(extra);
        let up = Up::start(&args);
        let response = c4mesh_mesh::Client::new(up.addr())
            .get("/api/v1/orders/1", &[])
            .expect("orders");
        assert_eq!(response.status, 503);
        response.header("x-c4-attempts").map(str::to_owned)
    };
    // The generated routes retry 5xx for GET: 4 attempts; the guide's retry no 503.
    assert_eq!(attempts(&[]).as_deref(), Some("4"));
    // `up` runs in the harness folder here; the operator's folder by its full path.
    let operator = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/operator-istio");
    assert_eq!(attempts(&["--istio", operator]).as_deref(), Some("1"));
}
