//! `--cacert` trusted as curl trusts it, through the `c4mesh` binary against a real
//! TLS server on loopback: the deployment guide's own `openssl req -x509` certificate
//! (CA:TRUE, no subjectAltName) is trusted by `replay`, `check` and the conformance
//! `url` target with one warning per run; a wrong name, another CA and an expired
//! certificate are still refused, each with its kind.

use super::command::c4mesh;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

/// A folder of its own under the target's temporary directory.
fn folder(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("trust-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a folder");
    dir
}

/// A key and certificate pair on disk.
struct Pair {
    cert: PathBuf,
    key: PathBuf,
}

/// The deployment guide's recipe, word for word, plus `extra` arguments, run in
/// `dir`: `tls.crt` and `tls.key`.
fn guide_recipe(dir: &Path, subject: &str, extra: &[&str]) -> Pair {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args([
            "req", "-x509", "-newkey", "rsa:4096", "-keyout", "tls.key", "-out", "tls.crt",
            "-days", "365", "-nodes", "-subj", subject,
        ])
        .args(extra)
        .output()
        .expect("running openssl (install it)");
    assert!(
        output.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Pair {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    }
}

/// `openssl req -x509 -newkey rsa:4096 -keyout tls.key -out tls.crt -days 365 -nodes
/// -subj "/CN=api.c4ang.com"`, made once per test run (a 4096-bit key takes a while).
fn guide_certificate() -> &'static Pair {
    static PAIR: OnceLock<Pair> = OnceLock::new();
    PAIR.get_or_init(|| guide_recipe(&folder("guide"), "/CN=api.c4ang.com", &[]))
}

fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).expect("writing a PEM file");
    path
}

/// A CA made with rcgen, written as `NAME-ca.pem`.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: PathBuf,
}

fn ca(dir: &Path, name: &str) -> Ca {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().expect("a CA key");
    let cert = params.self_signed(&key).expect("a CA certificate");
    Ca {
        pem: write(dir, &format!("{name}-ca.pem"), &cert.pem()),
        issuer: Issuer::new(params, key),
    }
}

/// A server certificate for `names` (subjectAltName) and CN `cn`, signed by `ca`.
fn leaf(dir: &Path, name: &str, ca: &Ca, names: &[&str], cn: &str, expired: bool) -> Pair {
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("names");
    params.distinguished_name.push(DnType::CommonName, cn);
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().expect("a key");
    let cert = params.signed_by(&key, &ca.issuer).expect("signing");
    Pair {
        cert: write(dir, &format!("{name}.crt"), &cert.pem()),
        key: write(dir, &format!("{name}.key"), &key.serialize_pem()),
    }
}

/// A TLS server on loopback answering every request with 200, on a thread of its own
/// until dropped.
struct TlsServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsServer {
    fn start(pair: &Pair) -> TlsServer {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pair.cert)
            .expect("the certificate file")
            .collect::<Result<_, _>>()
            .expect("certificates");
        let key = PrivateKeyDer::from_pem_file(&pair.key).expect("the key file");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a server configuration");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("bound address");
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let tcp = tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => match accepted {
                            Ok((tcp, _)) => tcp,
                            Err(_) => continue,
                        },
                    };
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        // A client that refuses the certificate ends the handshake.
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let answer = hyper::service::service_fn(|_request| async {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::from_static(b"{}"),
                            )))
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), answer)
                            .await;
                    });
                }
            });
        });
        TlsServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// `c4mesh replay` of `count` requests over 4 connections; its JSON report and stderr.
fn replay(
    server: &TlsServer,
    host: &str,
    cacert: &Path,
    count: u64,
) -> (serde_json::Value, String) {
    let count = count.to_string();
    let (code, stdout, stderr) = c4mesh(&[
        "replay",
        "--target",
        &server.url(),
        "--host",
        host,
        "--cacert",
        path(cacert),
        "--count",
        &count,
        "--concurrency",
        "4",
        "--connections",
        "4",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("replay exited {code} without a JSON report ({e}): {stdout}\n{stderr}")
    });
    (report, stderr)
}

fn warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect()
}

const GUIDE_WARNING: &str = "warning: trusting api.c4ang.com's self-signed certificate from \
     --cacert {FILE} (CA:TRUE, no subjectAltName: matched its CN); a public certificate \
     needs a subjectAltName DNS entry and a CA chain";

#[test]
fn replay_trusts_the_guides_certificate_with_one_warning() {
    let guide = guide_certificate();
    let server = TlsServer::start(guide);
    let (report, stderr) = replay(&server, "api.c4ang.com", &guide.cert, 40);
    assert_eq!(report["statuses"], json!({"200": 40}), "{report}\n{stderr}");
    assert_eq!(report["errors"], json!(0), "{report}");
    // Four connections, one warning.
    assert_eq!(
        warnings(&stderr),
        [GUIDE_WARNING.replace("{FILE}", path(&guide.cert))],
        "{stderr}"
    );
}

/// `c4mesh check`'s request (the cluster's objects an empty list): its line and stderr.
fn check_request(server: &TlsServer, host: &str, cacert: &Path) -> (String, String) {
    let dir = folder(&format!("check-{host}"));
    let objects = write(
        &dir,
        "objects.json",
        r#"{"apiVersion": "v1", "kind": "List", "items": []}"#,
    );
    let (_, stdout, stderr) = c4mesh(&[
        "check",
        "--from",
        path(&objects),
        "--gateway",
        &server.url(),
        "--host",
        host,
        "--cacert",
        path(cacert),
    ]);
    let request = stdout
        .lines()
        .find(|l| l.contains("a request through the gateway reaches a service"))
        .unwrap_or_else(|| panic!("no request line: {stdout}\n{stderr}"));
    (request.to_owned(), stderr)
}

#[test]
fn check_trusts_the_guides_certificate_for_its_request() {
    let guide = guide_certificate();
    let server = TlsServer::start(guide);
    let (request, stderr) = check_request(&server, "api.c4ang.com", &guide.cert);
    assert!(request.starts_with("PASS"), "{request}\n{stderr}");
    assert!(request.ends_with("(Host: api.c4ang.com): 200"), "{request}");
    assert_eq!(
        warnings(&stderr),
        [GUIDE_WARNING.replace("{FILE}", path(&guide.cert))],
        "{stderr}"
    );

    // The same request for a name the certificate does not carry is refused by kind.
    let (request, _) = check_request(&server, "shop.c4ang.com", &guide.cert);
    assert!(request.starts_with("FAIL"), "{request}");
    assert!(request.contains("tls_name_mismatch"), "{request}");
}

#[test]
fn the_url_target_trusts_the_guides_certificate() {
    let guide = guide_certificate();
    let server = TlsServer::start(guide);
    let dir = folder("url-target");
    let scenarios = dir.join("scenarios");
    std::fs::create_dir_all(&scenarios).expect("a scenarios folder");
    for name in ["one", "two"] {
        write(
            &scenarios,
            &format!("{name}.yaml"),
            &format!(
                "name: scenario {name} reaches the gateway over TLS\n\
                 rules: [R1]\n\
                 targets: [url]\n\
                 steps:\n  - request: {{path: /api/v1/products/1}}\n    expect: {{status: 200}}\n"
            ),
        );
    }
    // The url target loads no module; the option only has to name a file.
    let unused = write(&dir, "unused.wasm", "");
    let target = format!("url={}", server.url());
    let (code, stdout, stderr) = c4mesh(&[
        "conformance",
        "--target",
        &target,
        "--cacert",
        path(&guide.cert),
        "--scenarios",
        path(&scenarios),
        "--wasm",
        path(&unused),
        "--json",
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(!stdout.contains("tls_"), "{stdout}");
    // Two scenarios, each with a client of its own: one warning.
    assert_eq!(
        warnings(&stderr),
        [GUIDE_WARNING.replace("{FILE}", path(&guide.cert))],
        "{stderr}"
    );
}

#[test]
fn the_guides_recipe_with_a_subject_alt_name_is_trusted_too() {
    let dir = folder("guide-san");
    let pair = guide_recipe(
        &dir,
        "/CN=api.c4ang.com",
        &["-addext", "subjectAltName=DNS:api.c4ang.com"],
    );
    let server = TlsServer::start(&pair);
    let (report, stderr) = replay(&server, "api.c4ang.com", &pair.cert, 8);
    assert_eq!(report["statuses"], json!({"200": 8}), "{report}\n{stderr}");
    assert_eq!(
        warnings(&stderr),
        [format!(
            "warning: trusting api.c4ang.com's self-signed certificate from --cacert {} \
             (CA:TRUE); a public certificate needs a CA chain",
            path(&pair.cert)
        )],
        "{stderr}"
    );
}

#[test]
fn a_ca_signed_certificate_without_subject_alt_name_is_matched_by_its_cn() {
    let dir = folder("cn-only");
    let authority = ca(&dir, "gateway");
    let pair = leaf(&dir, "cn-only", &authority, &[], "api.c4ang.com", false);
    let server = TlsServer::start(&pair);
    let (report, stderr) = replay(&server, "api.c4ang.com", &authority.pem, 8);
    assert_eq!(report["statuses"], json!({"200": 8}), "{report}\n{stderr}");
    assert_eq!(
        warnings(&stderr),
        [
            "warning: trusting api.c4ang.com's certificate by its CN (no subjectAltName); a \
          public certificate needs a subjectAltName DNS entry"
        ],
        "{stderr}"
    );
    // Its CN names one host only.
    let (report, _) = replay(&server, "shop.c4ang.com", &authority.pem, 4);
    assert_eq!(
        report["error_kinds"],
        json!({"tls_name_mismatch": 4}),
        "{report}"
    );
}

/// Asserts that `replay` gets no answer but `kind` for `host`, trusting `cacert`, and
/// warns of nothing.
fn assert_refused(server: &TlsServer, host: &str, cacert: &Path, kind: &str) {
    let (report, stderr) = replay(server, host, cacert, 4);
    assert_eq!(report["error_kinds"], json!({ kind: 4 }), "{report}");
    assert_eq!(warnings(&stderr), Vec::<&str>::new(), "{stderr}");
}

#[test]
fn a_wrong_name_another_ca_and_an_expired_certificate_are_still_refused_by_kind() {
    let dir = folder("refused");
    let host = "api.c4ang.com";

    // The guide's recipe for another name.
    let other_name = guide_recipe(&dir, "/CN=shop.example.com", &[]);
    let server = TlsServer::start(&other_name);
    assert_refused(&server, host, &other_name.cert, "tls_name_mismatch");
    drop(server);

    // The guide's certificate, with another self-signed certificate as --cacert.
    let server = TlsServer::start(guide_certificate());
    assert_refused(&server, host, &other_name.cert, "tls_unknown_ca");
    drop(server);

    // A certificate signed by another CA than the one trusted, also without
    // subjectAltName (its CN is then never looked at).
    let trusted = ca(&dir, "trusted");
    let other = ca(&dir, "other");
    for (name, names) in [("other-ca", &[host][..]), ("other-ca-cn", &[][..])] {
        let server = TlsServer::start(&leaf(&dir, name, &other, names, host, false));
        assert_refused(&server, host, &trusted.pem, "tls_unknown_ca");
    }

    // An expired certificate, signed by the trusted CA or given itself as --cacert.
    let expired = leaf(&dir, "expired", &trusted, &[host], host, true);
    let server = TlsServer::start(&expired);
    assert_refused(&server, host, &trusted.pem, "tls_expired");
    assert_refused(&server, host, &expired.cert, "tls_expired");
}
