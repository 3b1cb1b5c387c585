//! One HTTP/1.1 exchange on its own connection, under one deadline.
//!
//! Written by hand rather than with a client library because the replay must know
//! *why* a request failed (refused, timed out, reset, closed early), must stop
//! reading the moment the response is complete (its end is the latency's end), and
//! must never wait past the deadline, whatever the server does.

use super::source::Request;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Why a request got no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// Nothing listens at the target.
    ConnectRefused,
    /// No connection within the deadline.
    ConnectTimeout,
    /// Connecting failed otherwise.
    Connect,
    /// Connected, but the response was not complete by the deadline.
    Timeout,
    /// The peer reset the connection.
    Reset,
    /// The peer closed the connection before the response was complete.
    Closed,
    /// What came back is not an HTTP/1.x response.
    BadResponse,
    /// Another I/O error.
    Io,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Connect => "connect_error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Closed => "closed",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::Io => "io_error",
        }
    }

    fn of(error: &io::Error) -> ErrorKind {
        match error.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ErrorKind::Timeout,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => ErrorKind::Reset,
            io::ErrorKind::UnexpectedEof => ErrorKind::Closed,
            _ => ErrorKind::Io,
        }
    }
}

/// What the replay keeps of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `x-c4-attempts`, else `x-envoy-attempt-count`, when present.
    pub attempts: Option<u64>,
}

/// The bytes of `request`, with `host` unless it has a Host header of its own.
pub fn encode(request: &Request, host: &str) -> Vec<u8> {
    let mut raw = format!("{} {} HTTP/1.1\r\n", request.method, request.path).into_bytes();
    let own_host = request
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("host"));
    if !own_host {
        raw.extend_from_slice(format!("host: {host}\r\n").as_bytes());
    }
    for (name, value) in &request.headers {
        // The replay frames the request itself.
        if ["content-length", "transfer-encoding", "connection"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
        {
            continue;
        }
        raw.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    let bodiless = ["GET", "HEAD", "DELETE", "OPTIONS"]
        .iter()
        .any(|m| request.method.eq_ignore_ascii_case(m));
    if !request.body.is_empty() || !bodiless {
        raw.extend_from_slice(format!("content-length: {}\r\n", request.body.len()).as_bytes());
    }
    raw.extend_from_slice(b"connection: close\r\n\r\n");
    raw.extend_from_slice(&request.body);
    raw
}

/// Sends `raw` to `addr` on a new connection and reads the response, all within
/// `timeout`. `head` says the request was a HEAD (so the response has no body).
pub fn exchange(
    addr: SocketAddr,
    raw: &[u8],
    head: bool,
    timeout: Duration,
) -> Result<Answer, ErrorKind> {
    let deadline = Instant::now() + timeout;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(ErrorKind::Timeout)
    };
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| match e.kind() {
        io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ErrorKind::ConnectTimeout,
        _ => ErrorKind::Connect,
    })?;
    let _ = stream.set_nodelay(true);
    stream
        .set_write_timeout(Some(remaining()?))
        .map_err(|e| ErrorKind::of(&e))?;
    stream.write_all(raw).map_err(|e| ErrorKind::of(&e))?;
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        stream
            .set_read_timeout(Some(remaining()?))
            .map_err(|e| ErrorKind::of(&e))?;
        let n = match stream.read(&mut buffer) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ErrorKind::of(&e)),
        };
        let closed = n == 0;
        bytes.extend_from_slice(&buffer[..n]);
        match state(&bytes, head, closed)? {
            State::Done(answer) => return Ok(answer),
            State::More if closed => return Err(ErrorKind::Closed),
            State::More => {}
        }
    }
}

/// Whether a response is complete in `bytes`.
#[derive(Debug, PartialEq, Eq)]
pub enum State {
    Done(Answer),
    More,
}

/// Parses what has arrived; `closed` says the peer has closed (ending a body that
/// runs to the close).
pub fn state(bytes: &[u8], head: bool, closed: bool) -> Result<State, ErrorKind> {
    let mut rest = bytes;
    loop {
        let Some(end) = find(rest, b"\r\n\r\n") else {
            if rest.len() > 64 * 1024 {
                return Err(ErrorKind::BadResponse);
            }
            return Ok(State::More);
        };
        let text = String::from_utf8_lossy(&rest[..end]);
        let body = &rest[end + 4..];
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut words = status_line.split(' ');
        let version = words.next().unwrap_or_default();
        let status: u16 = words
            .next()
            .and_then(|s| s.parse().ok())
            .filter(|s| (100..600).contains(s))
            .ok_or(ErrorKind::BadResponse)?;
        if !version.starts_with("HTTP/1.") {
            return Err(ErrorKind::BadResponse);
        }
        let headers: Vec<(String, &str)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim()))
            .collect();
        let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        if (100..200).contains(&status) {
            // An interim response (100 Continue, 103 Early Hints): the real one follows.
            rest = body;
            continue;
        }
        let answer = Answer {
            status,
            attempts: header("x-c4-attempts")
                .or_else(|| header("x-envoy-attempt-count"))
                .and_then(|v| v.parse().ok()),
        };
        if head || status == 204 || status == 304 {
            return Ok(State::Done(answer));
        }
        if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            return match chunked_end(body)? {
                true => Ok(State::Done(answer)),
                false => Ok(State::More),
            };
        }
        if let Some(length) = header("content-length") {
            let length: usize = length.parse().map_err(|_| ErrorKind::BadResponse)?;
            return Ok(if body.len() >= length {
                State::Done(answer)
            } else {
                State::More
            });
        }
        // No framing: the body runs until the server closes.
        return Ok(if closed {
            State::Done(answer)
        } else {
            State::More
        });
    }
}

/// Whether a chunked body is complete (last chunk and trailers seen).
fn chunked_end(mut body: &[u8]) -> Result<bool, ErrorKind> {
    loop {
        let Some(line_end) = find(body, b"\r\n") else {
            return Ok(false);
        };
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| ErrorKind::BadResponse)?;
        body = &body[line_end + 2..];
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(line_end) = find(body, b"\r\n") else {
                    return Ok(false);
                };
                if line_end == 0 {
                    return Ok(true);
                }
                body = &body[line_end + 2..];
            }
        }
        if body.len() < size + 2 {
            return Ok(false);
        }
        body = &body[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
