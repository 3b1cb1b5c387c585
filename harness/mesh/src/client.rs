//! A raw HTTP/1.1 client: the tests need to send what a well-behaved client would not
//! (non-UTF-8 header bytes, huge headers, no Host), so requests are written by hand.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The value of a header in a list of (name, value) pairs, by case-insensitive name.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A response as the client saw it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("body is not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends requests to one listener, one connection per request.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub addr: SocketAddr,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr }
    }

    /// `GET path` with `Host: api.c4ang.com` and extra headers.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<Response> {
        self.request("GET", path, Some("api.c4ang.com"), headers)
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        host: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Response> {
        let mut raw = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
        if let Some(host) = host {
            raw.extend_from_slice(format!("host: {host}\r\n").as_bytes());
        }
        for (name, value) in headers {
            raw.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        raw.extend_from_slice(b"connection: close\r\n\r\n");
        self.send_raw(&raw)
    }

    /// Writes `raw` as is and reads the response: until its body is complete, or until
    /// the server closes when the response does not say how long it is. (Waiting for
    /// the close would add Envoy's delayed-close timeout to some responses.)
    pub fn send_raw(&self, raw: &[u8]) -> Result<Response> {
        self.exchange(raw, None)?
            .ok_or_else(|| anyhow!("no response, and no deadline to give up at"))
    }

    /// Like [`Client::send_raw`], but the client gives up `patience` after writing:
    /// if the response is not complete by then it closes the connection (a client
    /// reset, to the proxy) and returns `None`.
    pub fn send_raw_or_abort(&self, raw: &[u8], patience: Duration) -> Result<Option<Response>> {
        self.exchange(raw, Some(patience))
    }

    fn exchange(&self, raw: &[u8], patience: Option<Duration>) -> Result<Option<Response>> {
        let mut stream = TcpStream::connect(self.addr)
            .with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.write_all(raw)?;
        let give_up = patience.map(|p| Instant::now() + p);
        let mut bytes = Vec::new();
        let mut buffer = [0u8; 16 * 1024];
        loop {
            if let Some(at) = give_up {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let _ = stream.shutdown(Shutdown::Both);
                    return Ok(None);
                }
                stream.set_read_timeout(Some(left.min(READ_TIMEOUT)))?;
            }
            let n = match stream.read(&mut buffer) {
                Ok(n) => n,
                Err(e) if give_up.is_some() && is_timeout(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&buffer[..n]);
            if complete(&bytes) {
                break;
            }
        }
        parse_response(&bytes).map(Some)
    }
}

/// Longest a read waits for the server.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// A read that ran into its timeout (`WouldBlock` on Unix, `TimedOut` on Windows).
fn is_timeout(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

impl Client {
    /// Sends `n` GETs of `path`, `concurrency` at a time; returns the statuses seen
    /// (in no particular order) and the seconds it took.
    pub fn storm(&self, path: &str, n: usize, concurrency: usize) -> (Vec<u16>, f64) {
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let senders: Vec<_> = (0..concurrency)
            .map(|_| {
                let (client, next, path) = (*self, Arc::clone(&next), path.to_owned());
                thread::spawn(move || {
                    let mut statuses = Vec::new();
                    while next.fetch_add(1, Ordering::SeqCst) < n {
                        statuses.push(client.get(&path, &[]).map_or(0, |r| r.status));
                    }
                    statuses
                })
            })
            .collect();
        let statuses = senders
            .into_iter()
            .flat_map(|s| s.join().unwrap_or_default())
            .collect();
        (statuses, started.elapsed().as_secs_f64())
    }
}

/// A whole response read from raw bytes: interim (1xx) responses skipped, the body
/// cut to its `content-length` or de-chunked.
pub fn parse_response(mut bytes: &[u8]) -> Result<Response> {
    let end = loop {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| anyhow!("no complete response head in {} bytes", bytes.len()))?;
        let interim = bytes.starts_with(b"HTTP/1.1 1") || bytes.starts_with(b"HTTP/1.0 1");
        if !interim {
            break end;
        }
        bytes = &bytes[end + 4..];
    };
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let Some((n, v)) = line.split_once(':') else {
            bail!("bad header line {line:?}");
        };
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let mut body = bytes[end + 4..].to_vec();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body)?;
    } else if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.truncate(length);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Whether `bytes` hold a whole response whose length its head gives.
fn complete(bytes: &[u8]) -> bool {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let body = &bytes[end + 4..];
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status.starts_with('1') || status == "204" || status == "304" {
        return true;
    }
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name.trim() {
            "content-length" => {
                return value.trim().parse::<usize>().is_ok_and(|n| body.len() >= n);
            }
            "transfer-encoding" if value.contains("chunked") => {
                return body.ends_with(b"0\r\n\r\n") && dechunk(body).is_ok();
            }
            _ => {}
        }
    }
    false
}

fn dechunk(mut bytes: &[u8]) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = bytes
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("truncated chunk size"))?;
        let size_text = String::from_utf8_lossy(&bytes[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if bytes.len() < size + 2 {
            bail!("truncated chunk");
        }
        body.extend_from_slice(&bytes[..size]);
        bytes = &bytes[size + 2..];
    }
}
