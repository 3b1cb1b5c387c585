//! Simulated service hosts: HTTP/1.1 on loopback, answering as told, counting attempts.
//!
//! Each host answers every request with its current [`Behaviour`] (status, optional
//! delay) and a JSON body naming itself, and records each attempt (path and headers),
//! so tests can count upstream attempts per request and see what the filter sent.

use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// How a host answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Behaviour {
    pub status: u16,
    pub delay: Duration,
}

impl Behaviour {
    pub fn status(status: u16) -> Behaviour {
        Behaviour {
            status,
            delay: Duration::ZERO,
        }
    }
}

/// One request as the host received it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Attempt {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct State {
    behaviour: Mutex<Behaviour>,
    attempts: AtomicU64,
    seen: Mutex<Vec<Attempt>>,
    stop: AtomicBool,
}

/// A running host; stops when dropped.
pub struct Upstream {
    addr: SocketAddr,
    state: Arc<State>,
}

/// Most attempts kept for inspection (counting goes on past it).
const KEEP: usize = 10_000;

impl Upstream {
    pub fn start(name: &str, behaviour: Behaviour) -> Result<Upstream> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding an upstream")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            behaviour: Mutex::new(behaviour),
            attempts: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let accept_state = Arc::clone(&state);
        let name = name.to_owned();
        thread::Builder::new()
            .name(format!("upstream {name}"))
            .spawn(move || accept_loop(listener, accept_state, name))?;
        Ok(Upstream { addr, state })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set(&self, behaviour: Behaviour) {
        if let Ok(mut b) = self.state.behaviour.lock() {
            *b = behaviour;
        }
    }

    pub fn set_status(&self, status: u16) {
        self.set(Behaviour::status(status));
    }

    /// Attempts received so far.
    pub fn attempts(&self) -> u64 {
        self.state.attempts.load(Ordering::SeqCst)
    }

    /// The attempts received so far (the first 10,000).
    pub fn seen(&self) -> Vec<Attempt> {
        self.state
            .seen
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(100));
    }
}

fn accept_loop(listener: TcpListener, state: Arc<State>, name: String) {
    for stream in listener.incoming() {
        if state.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            continue;
        };
        let state = Arc::clone(&state);
        let name = name.clone();
        let _ = thread::Builder::new().spawn(move || {
            let _ = serve(stream, &state, &name);
        });
    }
}

fn serve(stream: TcpStream, state: &State, name: &str) -> Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        if state.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((n, v)) = header.split_once(':') {
                let (n, v) = (n.trim().to_ascii_lowercase(), v.trim().to_owned());
                if n == "content-length" {
                    length = v.parse().unwrap_or(0);
                }
                headers.push((n, v));
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        state.attempts.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut seen) = state.seen.lock() {
            if seen.len() < KEEP {
                seen.push(Attempt {
                    path: path.clone(),
                    headers,
                });
            }
        }
        let behaviour = state
            .behaviour
            .lock()
            .map(|b| *b)
            .unwrap_or(Behaviour::status(500));
        if !behaviour.delay.is_zero() {
            thread::sleep(behaviour.delay);
        }
        let body = serde_json::json!({"service": name, "path": path}).to_string();
        let response = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
            behaviour.status,
            reason(behaviour.status),
            body.len(),
            body
        );
        writer.write_all(response.as_bytes())?;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
