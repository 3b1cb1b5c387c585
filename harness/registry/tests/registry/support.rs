//! Shared by the registry tests: a real registry (Debian's `docker-registry`, CNCF
//! distribution) on a free loopback port with its own configuration and storage in a
//! temporary folder, `skopeo` to look at what it holds, and a small valid Wasm module.
//!
//! The tools are required, not optional: a missing one fails the test with the command
//! that installs it (`scripts/setup.sh` does, as root).

use c4mesh_registry::{Reference, Transport};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The one user of an authenticating registry, and its password.
pub const USER: &str = "c4mesh";
pub const PASSWORD: &str = "mesh-push-secret";
/// `htpasswd -Bbn c4mesh mesh-push-secret` (apache2-utils): distribution reads bcrypt
/// entries only.
const HTPASSWD: &str = "c4mesh:$2y$05$Bv6Lep9LDQjLJ5IEd3dPiOfwzN30zCndlSOu/U2Ws1ni7TfkHdAZq\n";

/// The registry is on loopback, over plain HTTP.
pub const TRANSPORT: Transport = Transport::PlainHttp;

/// The path of `tool` on `PATH`, or a failure that says how to install it.
pub fn require(tool: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(tool))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{tool} is not installed; these tests need a real registry and skopeo: \
             run scripts/setup.sh as root, or apt-get install docker-registry skopeo"
        )
    })
}

/// A running `docker-registry`, stopped and its storage removed when dropped.
pub struct Registry {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    /// A registry anyone may push to.
    pub fn open() -> Registry {
        Self::start(false)
    }

    /// A registry that takes only [`USER`] with [`PASSWORD`] (HTTP basic, htpasswd).
    pub fn with_password() -> Registry {
        Self::start(true)
    }

    fn start(authenticate: bool) -> Registry {
        let binary = require("docker-registry");
        let mut last_log = String::new();
        // The port is found free, then handed to the registry; another process may
        // take it in between, so a registry that exits at once is started again.
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("a temporary folder");
            let port = free_port();
            let config = config(dir.path(), port, authenticate);
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).expect("the registry configuration");
            if authenticate {
                std::fs::write(dir.path().join("htpasswd"), HTPASSWD).expect("htpasswd");
            }
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
            let child = Command::new(&binary)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
            let mut registry = Registry { child, port, dir };
            match registry.wait_until_ready(Duration::from_secs(15)) {
                Ok(()) => return registry,
                Err(log) => last_log = log,
            }
        }
        panic!("docker-registry did not answer /v2/ on loopback; its log:\n{last_log}");
    }

    /// Waits until `GET /v2/` answers; on failure, the registry's log.
    fn wait_until_ready(&mut self, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(self.log());
            }
            if let Some(status) = http_status(self.port, "/v2/") {
                // 200 when open, 401 with a basic challenge when authenticating.
                if status == 200 || status == 401 {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(self.log())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// `HOST:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `oci://127.0.0.1:PORT/{repository_and_tag}`.
    pub fn reference(&self, repository_and_tag: &str) -> Reference {
        format!("oci://{}/{repository_and_tag}", self.host())
            .parse()
            .expect("a valid reference")
    }

    /// `docker://127.0.0.1:PORT/{repository_and_tag}`, skopeo's name for it.
    pub fn docker(&self, repository_and_tag: &str) -> String {
        format!("docker://{}/{repository_and_tag}", self.host())
    }

    /// A folder for the test's files, removed with the registry.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        dir
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, port: u16, authenticate: bool) -> String {
    let mut config = format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: c4mesh-registry-tests\n",
        dir.join("storage").display()
    );
    if authenticate {
        config.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: c4mesh-tests\n    path: {}\n",
            dir.join("htpasswd").display()
        ));
    }
    config
}

/// A port nothing listens on now: bound at 0 and read back.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    listener.local_addr().expect("its address").port()
}

/// The status of `GET path`, if anything answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Runs `skopeo args...`, failing the test with its stderr if it fails.
pub fn skopeo(args: &[&str]) -> Output {
    let binary = require("skopeo");
    let output = Command::new(&binary)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running skopeo: {e}"));
    assert!(
        output.status.success(),
        "skopeo {}: {}\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `skopeo inspect [--raw] ARGS` as JSON.
pub fn skopeo_json(args: &[&str]) -> serde_json::Value {
    let output = skopeo(args);
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "skopeo {} printed no JSON ({e}):\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The manifest `skopeo inspect --raw ARGS` prints, and its digest as
/// `skopeo manifest-digest` computes it. (`skopeo inspect` without `--raw` reads the
/// config as a container's and refuses an artifact such as a Wasm image.)
pub fn skopeo_raw_manifest(args: &[&str], scratch: &Path) -> (serde_json::Value, String) {
    let mut inspect = vec!["inspect", "--raw"];
    inspect.extend_from_slice(args);
    let raw = skopeo(&inspect).stdout;
    let path = scratch.join("manifest.json");
    std::fs::write(&path, &raw).expect("the raw manifest");
    let digest = skopeo(&["manifest-digest", &path.display().to_string()]).stdout;
    let manifest = serde_json::from_slice(&raw).expect("a JSON manifest");
    (manifest, String::from_utf8_lossy(&digest).trim().to_owned())
}

/// A small valid proxy-wasm module: memory, the ABI version marker and a start.
pub fn wasm_module() -> Vec<u8> {
    wat::parse_str(
        r#"(module
             (memory (export "memory") 1)
             (func (export "proxy_abi_version_0_2_1"))
             (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 0)
             (func (export "_start")))"#,
    )
    .expect("valid WAT")
}
