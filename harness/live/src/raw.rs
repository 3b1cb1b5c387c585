//! Requests sent as raw bytes, over TCP or TLS, read until the server closes.
//!
//! Only for what no HTTP library sends on purpose: the conformance scenarios that
//! check the filter's path rules send raw backslashes, control bytes and requests
//! without a Host header, which `hyper` and the `http` types refuse to build, so the
//! request is bytes. The response is read by `httparse`, `hyper`'s own parser. The
//! request carries `connection: close`, so the response ends at the close.

use super::{tls, Endpoint, ErrorKind, Settings};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Writes `raw` to the endpoint and returns every byte the server sent until it
/// closed, within `timeout`.
pub fn exchange(
    endpoint: &Endpoint,
    settings: &Settings,
    raw: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, ErrorKind> {
    let deadline = Instant::now() + timeout;
    let tcp = TcpStream::connect_timeout(&endpoint.addr, settings.connect_timeout).map_err(
        |e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
            std::io::ErrorKind::TimedOut => ErrorKind::ConnectTimeout,
            _ => ErrorKind::Connect,
        },
    )?;
    tcp.set_read_timeout(Some(timeout))
        .map_err(|_| ErrorKind::Io)?;
    tcp.set_write_timeout(Some(timeout))
        .map_err(|_| ErrorKind::Io)?;
    if !endpoint.is_tls() {
        return talk(tcp, raw, deadline, |e| of_io(&e));
    }
    let config = tls::client_config(&Settings {
        protocol: super::Protocol::Http1,
        ..settings.clone()
    })
    .map_err(|_| ErrorKind::TlsHandshake)?;
    let name = tls::server_name(endpoint.server_name())?;
    let session = rustls::ClientConnection::new(Arc::clone(&config), name)
        .map_err(|_| ErrorKind::TlsHandshake)?;
    let stream = rustls::StreamOwned::new(session, tcp);
    talk(stream, raw, deadline, |e| {
        if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
            tls::classify(&e)
        } else {
            of_io(&e)
        }
    })
}

/// A response read until the close: status, headers (lower-case names) and body
/// (de-chunked when chunked, else cut to its `content-length`), interim (1xx)
/// responses skipped. Heads and chunk sizes are read by `httparse`.
pub fn parse(mut bytes: &[u8]) -> Result<super::FullResponse, ErrorKind> {
    let (status, headers) = loop {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut slots);
        let httparse::Status::Complete(length) =
            response.parse(bytes).map_err(|_| ErrorKind::BadResponse)?
        else {
            return Err(ErrorKind::BadResponse);
        };
        let status = response.code.ok_or(ErrorKind::BadResponse)?;
        let headers: Vec<(String, String)> = response
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).trim().to_owned(),
                )
            })
            .collect();
        bytes = &bytes[length..];
        if !(100..200).contains(&status) || status == 101 {
            break (status, headers);
        }
    };
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let body =
        if value("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            dechunk(bytes)?
        } else if let Some(length) = value("content-length").and_then(|v| v.parse::<usize>().ok()) {
            bytes[..length.min(bytes.len())].to_vec()
        } else {
            bytes.to_vec()
        };
    Ok(super::FullResponse {
        status,
        headers,
        body: body.into(),
    })
}

/// Most header lines a response head may have.
const MAX_HEADERS: usize = 256;

/// A chunked body, read to its last chunk (trailers are dropped).
fn dechunk(mut bytes: &[u8]) -> Result<Vec<u8>, ErrorKind> {
    let mut body = Vec::new();
    loop {
        let httparse::Status::Complete((consumed, size)) =
            httparse::parse_chunk_size(bytes).map_err(|_| ErrorKind::BadResponse)?
        else {
            return Err(ErrorKind::BadResponse);
        };
        bytes = &bytes[consumed..];
        let size = usize::try_from(size).map_err(|_| ErrorKind::BadResponse)?;
        if size == 0 {
            return Ok(body);
        }
        let chunk = bytes.get(..size).ok_or(ErrorKind::BadResponse)?;
        body.extend_from_slice(chunk);
        bytes = bytes.get(size + 2..).ok_or(ErrorKind::BadResponse)?;
    }
}

fn talk<S: Read + Write>(
    mut stream: S,
    raw: &[u8],
    deadline: Instant,
    kind: impl Fn(std::io::Error) -> ErrorKind,
) -> Result<Vec<u8>, ErrorKind> {
    stream.write_all(raw).map_err(&kind)?;
    stream.flush().map_err(&kind)?;
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        if Instant::now() >= deadline {
            return Err(ErrorKind::Timeout);
        }
        match stream.read(&mut buffer) {
            Ok(0) => return Ok(bytes),
            Ok(n) => bytes.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A TLS peer that closes without close_notify has still sent everything.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !bytes.is_empty() => {
                return Ok(bytes)
            }
            Err(e) => return Err(kind(e)),
        }
    }
}

fn of_io(error: &std::io::Error) -> ErrorKind {
    match error.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => ErrorKind::Timeout,
        std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::BrokenPipe => ErrorKind::Reset,
        std::io::ErrorKind::UnexpectedEof => ErrorKind::Closed,
        _ => ErrorKind::Io,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_with_their_framing() {
        let plain = parse(
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\nX-C4-Reason: no_route\r\n\r\nokextra",
        )
        .expect("parses");
        assert_eq!(plain.status, 404);
        assert_eq!(
            plain.headers[1],
            ("x-c4-reason".to_owned(), "no_route".to_owned())
        );
        assert_eq!(&plain.body[..], b"ok");
        let chunked = parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n")
            .expect("parses");
        assert_eq!((chunked.status, &chunked.body[..]), (200, &b"abc"[..]));
        assert_eq!(
            parse(b"SSH-2.0\r\n\r\n").err(),
            Some(ErrorKind::BadResponse)
        );
    }
}
