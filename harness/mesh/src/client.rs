//! A raw HTTP/1.1 client: the tests need to send what a well-behaved client would not
//! (non-UTF-8 header bytes, huge headers, no Host), so requests are written by hand.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
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
        let mut stream = TcpStream::connect(self.addr)
            .with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        stream.write_all(raw)?;
        let mut bytes = Vec::new();
        let mut buffer = [0u8; 16 * 1024];
        loop {
            let n = stream.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&buffer[..n]);
            if complete(&bytes) {
                break;
            }
        }
        parse_response(&bytes)
    }
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
