//! The local gateway serves HTTPS as the Gateway's port 443 does: a certificate for
//! `api.c4ang.com` that chains to the CA made at start, ALPN choosing `h2` or
//! `http/1.1`; the plain port keeps answering HTTP/1.1 and takes h2c; the proxy keeps
//! its upstream connections alive.
//!
//! These tests start a real Envoy (`ENVOY_BIN`, the project's `.venv`, or `PATH`) and
//! use `openssl` and `curl` as the clients people would check the gateway with.

use c4mesh_mesh::mesh::MeshOptions;
use c4mesh_mesh::{tls, LocalMesh, Wasm};
use std::net::SocketAddr;
use std::process::{Command, Output};

const HOST: &str = "api.c4ang.com";

/// A gateway without Wasm serving HTTPS with certificates of its own; the certificate
/// directory is removed when dropped.
struct Mesh {
    mesh: LocalMesh,
    /// Dropped after the mesh (fields drop in order).
    dir: tempfile::TempDir,
}

impl Mesh {
    fn start(name: &str) -> Mesh {
        let dir = tempfile::Builder::new()
            .prefix(&format!("c4mesh-tls-test-{name}-"))
            .tempdir()
            .expect("a temporary directory");
        let certificates = tls::generate(dir.path(), HOST).expect("certificates");
        let mesh = LocalMesh::start(MeshOptions {
            tls: Some(certificates),
            ..MeshOptions::gateway(Wasm::None)
        })
        .unwrap_or_else(|e| panic!("starting the local mesh: {e:#}"));
        Mesh { mesh, dir }
    }

    fn https(&self) -> SocketAddr {
        self.mesh.envoy.tls_listener.expect("an HTTPS listener")
    }

    fn ca(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }
}

/// Runs a client tool with no input; fails the test clearly when it is missing.
fn run(tool: &str, args: &[&str]) -> Output {
    Command::new(tool)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {tool} (is it installed?): {e}"))
}

/// `openssl s_client`'s handshake report, checking the certificate for `name`.
fn handshake(mesh: &Mesh, name: &str, alpn: &str) -> String {
    let connect = mesh.https().to_string();
    let ca = mesh.ca();
    let output = run(
        "openssl",
        &[
            "s_client",
            "-connect",
            &connect,
            "-servername",
            HOST,
            "-verify_hostname",
            name,
            "-CAfile",
            &ca,
            "-alpn",
            alpn,
        ],
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn https_verifies_for_the_host_and_alpn_picks_h2_or_http1() {
    let mesh = Mesh::start("alpn");
    let h2 = handshake(&mesh, HOST, "h2");
    assert!(h2.contains("Verify return code: 0 (ok)"), "{h2}");
    assert!(h2.contains("ALPN protocol: h2"), "{h2}");
    assert!(h2.contains(tls::CA_NAME), "the chain names the CA: {h2}");
    let http1 = handshake(&mesh, HOST, "http/1.1");
    assert!(http1.contains("Verify return code: 0 (ok)"), "{http1}");
    assert!(http1.contains("ALPN protocol: http/1.1"), "{http1}");

    // The plain listener still answers HTTP/1.1.
    let response = mesh
        .mesh
        .client()
        .get("/api/v1/orders/1", &[])
        .expect("a response");
    assert_eq!(response.status, 200);
    assert_eq!(response.json().expect("JSON")["service"], "order-service");
}

#[test]
fn a_client_naming_another_host_sees_a_name_mismatch() {
    let mesh = Mesh::start("names");
    for other in ["localhost", "127.0.0.1", "www.c4ang.com"] {
        let report = handshake(&mesh, other, "h2");
        assert!(
            report.contains("Verify return code: 62 (hostname mismatch)"),
            "{other}: {report}"
        );
    }
}

/// `curl` with `args`, printing the HTTP version and status of its one response.
fn curl(args: &[&str]) -> String {
    let mut all = vec!["--silent", "--show-error", "--output", "/dev/null"];
    all.extend_from_slice(&["--write-out", "%{http_version} %{response_code}"]);
    all.extend_from_slice(args);
    let output = run("curl", &all);
    assert!(
        output.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn both_listeners_speak_http2_and_http1() {
    let mesh = Mesh::start("h2");
    let plain = format!("{}/api/v1/products/1", mesh.mesh.envoy.url());
    let host = format!("host: {HOST}");
    assert_eq!(
        curl(&["--http2-prior-knowledge", "-H", &host, &plain]),
        "2 200"
    );
    assert_eq!(curl(&["--http1.1", "-H", &host, &plain]), "1.1 200");

    let port = mesh.https().port();
    let https = format!("https://{HOST}:{port}/api/v1/products/1");
    let resolve = format!("{HOST}:{port}:127.0.0.1");
    let ca = mesh.ca();
    let tls = ["--cacert", &ca, "--resolve", &resolve];
    assert_eq!(curl(&[&tls[..], &["--http2", &https]].concat()), "2 200");
    assert_eq!(
        curl(&[&tls[..], &["--http1.1", &https]].concat()),
        "1.1 200"
    );
    assert_eq!(
        mesh.mesh.envoy.tls_url(),
        Some(format!("https://127.0.0.1:{port}"))
    );
}

#[test]
fn the_gateway_keeps_its_upstream_connections_alive() {
    let mesh = Mesh::start("keep-alive");
    let client = mesh.mesh.client();
    for _ in 0..20 {
        let response = client.get("/api/v1/orders/1", &[]).expect("a response");
        assert_eq!(response.status, 200);
    }
    assert_eq!(mesh.mesh.attempts("orders"), 20);
    // At most one connection per worker (2) to each host (2): one request at a time
    // never needs a second.
    let connections = mesh.mesh.connections("orders");
    assert!((1..=4).contains(&connections), "{connections} connections");
}
