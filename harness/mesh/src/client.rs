//! A raw HTTP/1.1 client: the tests need to send what a well-behaved client would not
//! (non-UTF-8 header bytes, huge headers, no Host), which `hyper` and the `http` types
//! refuse to build, so requests are written as bytes here. Responses are read with
//! `httparse` (heads and chunk sizes), the parser `hyper` itself uses.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Why an exchange gave no response, or a response could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {addr}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("sending the request")]
    Write(#[source] std::io::Error),
    #[error("reading the response")]
    Read(#[source] std::io::Error),
    /// The connection closed before a whole response head (the count of bytes read is
    /// all there is to say).
    #[error("no complete response head in {0} bytes")]
    NoHead(usize),
    #[error("bad response head")]
    Head(#[source] httparse::Error),
    /// A head `httparse` read whole but without a status code.
    #[error("response head without a status")]
    NoStatus,
    /// `httparse`'s chunk-size error is a unit struct that is not a
    /// `std::error::Error`, so there is no cause to keep.
    #[error("bad chunk size")]
    ChunkSize,
    #[error("chunk of {0} bytes")]
    ChunkTooLarge(u64),
    /// The connection closed before the last chunk of a chunked body.
    #[error("truncated chunked body")]
    TruncatedChunks,
    /// Only [`Client::send_raw_or_abort`] gives up; this says a read ended without
    /// a response when no deadline was set.
    #[error("no response, and no deadline to give up at")]
    NoResponse,
    #[error("body is not JSON: {body}")]
    Json {
        body: String,
        #[source]
        source: serde_json::Error,
    },
}

type Result<T, E = ClientError> = std::result::Result<T, E>;

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
        serde_json::from_slice(&self.body).map_err(|source| ClientError::Json {
            body: String::from_utf8_lossy(&self.body).into_owned(),
            source,
        })
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
        self.exchange(raw, None)?.ok_or(ClientError::NoResponse)
    }

    /// Like [`Client::send_raw`], but the client gives up `patience` after writing:
    /// if the response is not complete by then it closes the connection (a client
    /// reset, to the proxy) and returns `None`.
    pub fn send_raw_or_abort(&self, raw: &[u8], patience: Duration) -> Result<Option<Response>> {
        self.exchange(raw, Some(patience))
    }

    fn exchange(&self, raw: &[u8], patience: Option<Duration>) -> Result<Option<Response>> {
        let mut stream = TcpStream::connect(self.addr).map_err(|source| ClientError::Connect {
            addr: self.addr,
            source,
        })?;
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .map_err(ClientError::Read)?;
        stream.write_all(raw).map_err(ClientError::Write)?;
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
                stream
                    .set_read_timeout(Some(left.min(READ_TIMEOUT)))
                    .map_err(ClientError::Read)?;
            }
            let n = match stream.read(&mut buffer) {
                Ok(n) => n,
                Err(e) if give_up.is_some() && is_timeout(&e) => continue,
                Err(e) => return Err(ClientError::Read(e)),
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

/// Most header lines a response head may have.
const MAX_HEADERS: usize = 256;

/// A response head as `httparse` reads it, and the bytes that follow it.
struct Head<'a> {
    status: u16,
    /// Lower-case names; values read as UTF-8 with replacement.
    headers: Vec<(String, String)>,
    rest: &'a [u8],
}

/// The response head at the start of `bytes`; `None` while it is incomplete.
fn head(bytes: &[u8]) -> Result<Option<Head<'_>>> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let length = match response.parse(bytes).map_err(ClientError::Head)? {
        httparse::Status::Complete(length) => length,
        httparse::Status::Partial => return Ok(None),
    };
    let status = response.code.ok_or(ClientError::NoStatus)?;
    let headers = owned_headers(response.headers);
    Ok(Some(Head {
        status,
        headers,
        rest: &bytes[length..],
    }))
}

/// Headers as `httparse` read them, owned: lower-case names, values read as UTF-8
/// with replacement and trimmed.
pub(crate) fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_owned(),
            )
        })
        .collect()
}

/// An interim response, which a final one follows (101 switches protocols: final).
fn interim(status: u16) -> bool {
    (100..200).contains(&status) && status != 101
}

/// The final response's head, interim (1xx) heads skipped; `None` while incomplete.
fn final_head(mut bytes: &[u8]) -> Result<Option<Head<'_>>> {
    loop {
        let Some(head) = head(bytes)? else {
            return Ok(None);
        };
        if !interim(head.status) {
            return Ok(Some(head));
        }
        bytes = head.rest;
    }
}

/// A whole response read from raw bytes: interim (1xx) responses skipped, the body
/// cut to its `content-length` or de-chunked.
pub fn parse_response(bytes: &[u8]) -> Result<Response> {
    let Head {
        status,
        headers,
        rest,
    } = final_head(bytes)?.ok_or(ClientError::NoHead(bytes.len()))?;
    let mut body = rest.to_vec();
    if chunked(&headers) {
        body = dechunk(rest)?.ok_or(ClientError::TruncatedChunks)?;
    } else if let Some(length) = content_length(&headers) {
        body.truncate(length);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn chunked(headers: &[(String, String)]) -> bool {
    header(headers, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
}

fn content_length(headers: &[(String, String)]) -> Option<usize> {
    header(headers, "content-length").and_then(|v| v.parse().ok())
}

/// Whether `bytes` hold a whole response whose length its head gives.
fn complete(bytes: &[u8]) -> bool {
    let Ok(Some(Head {
        status,
        headers,
        rest: body,
    })) = final_head(bytes)
    else {
        return false;
    };
    if status == 101 || status == 204 || status == 304 {
        return true;
    }
    if chunked(&headers) {
        return matches!(dechunk(body), Ok(Some(_)));
    }
    content_length(&headers).is_some_and(|n| body.len() >= n)
}

/// A chunked body de-chunked by `httparse`'s chunk-size reader; `None` until the last
/// chunk and the end of the trailers are there.
fn dechunk(mut bytes: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    loop {
        let (consumed, size) =
            match httparse::parse_chunk_size(bytes).map_err(|_| ClientError::ChunkSize)? {
                httparse::Status::Complete(sized) => sized,
                httparse::Status::Partial => return Ok(None),
            };
        bytes = &bytes[consumed..];
        let Ok(size) = usize::try_from(size) else {
            return Err(ClientError::ChunkTooLarge(size));
        };
        if size == 0 {
            // Trailers, if any, end with an empty line.
            let ended = bytes.starts_with(b"\r\n") || bytes.windows(4).any(|w| w == b"\r\n\r\n");
            return Ok(ended.then_some(body));
        }
        if bytes.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&bytes[..size]);
        bytes = &bytes[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_is_read_past_interim_heads_and_de_chunked() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        let response = parse_response(raw).expect("a response");
        assert_eq!((response.status, &response.body[..]), (200, &b"hi"[..]));
    }

    #[test]
    fn what_cannot_be_read_says_which_part_failed() {
        let error = parse_response(b"HTTP/1.1 200").expect_err("a partial head");
        assert!(matches!(error, ClientError::NoHead(12)), "{error:?}");
        let error = parse_response(b"HTTP/1.1 2x0 OK\r\n\r\n").expect_err("a bad status");
        assert!(matches!(error, ClientError::Head(_)), "{error:?}");
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        let error = parse_response(&[&chunked[..], b"zz\r\n"].concat()).expect_err("bad size");
        assert!(matches!(error, ClientError::ChunkSize), "{error:?}");
        let error = parse_response(&[&chunked[..], b"5\r\nab"].concat()).expect_err("truncated");
        assert!(matches!(error, ClientError::TruncatedChunks), "{error:?}");
        let not_json = Response {
            status: 200,
            headers: Vec::new(),
            body: b"<html>".to_vec(),
        };
        let error = not_json.json().expect_err("not JSON");
        assert!(matches!(error, ClientError::Json { ref body, .. } if body == "<html>"));
    }
}
