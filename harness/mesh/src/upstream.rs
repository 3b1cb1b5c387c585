//! Simulated service hosts: HTTP/1.1 on loopback, answering as told, counting attempts.
//!
//! A host answers each attempt as its [`Handler`] decides (a status after a delay, a
//! disconnect, or no answer at all), or, started with a [`Behaviour`], with a status the
//! test changes at run time. Every attempt is recorded (method, path, headers, body), so
//! tests can count upstream attempts per request and see what the proxy sent.
//!
//! Connections are kept alive as HTTP/1.1 says: a host answers request after request
//! on one connection until the peer closes it or asks to (`connection: close`). It
//! counts the connections it accepted, so tests can tell a proxy that reuses its
//! upstream connections from one that opens a connection per attempt.
//!
//! A host that is dropped closes its connections at once, idle keep-alive ones
//! included, as a pod that goes away does: the proxy sees them close instead of
//! keeping them (and the host they belong to) until a read timeout.

use crate::topology::PodCalls;

/// Why a simulated service could not start.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("binding an upstream on 127.0.0.1")]
    Bind(#[source] std::io::Error),
    #[error("starting the thread that accepts the upstream's connections")]
    Thread(#[source] std::io::Error),
}

type Result<T, E = UpstreamError> = std::result::Result<T, E>;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
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
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Attempt {
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::client::header(&self.headers, name)
    }
}

/// What a host does with one attempt.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answer after `delay`.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        delay: Duration,
    },
    /// Close the connection without answering, after `delay`.
    Reset { delay: Duration },
    /// Never answer; the connection stays open until the peer closes it.
    Hang,
}

/// Decides each attempt's reply; called on the connection's thread.
pub type Handler = Arc<dyn Fn(&Attempt) -> Reply + Send + Sync>;

struct State {
    handler: Handler,
    attempts: AtomicU64,
    connections: AtomicU64,
    seen: Mutex<Vec<Attempt>>,
    stop: AtomicBool,
    /// The connections open now, by the number of their accept, to close on drop.
    open: Mutex<HashMap<u64, TcpStream>>,
}

/// A running host; stops when dropped.
pub struct Upstream {
    addr: SocketAddr,
    state: Arc<State>,
    behaviour: Arc<Mutex<Behaviour>>,
}

/// Most attempts kept for inspection (counting goes on past it).
const KEEP: usize = 10_000;

/// Longest a hanging attempt holds its connection.
const HANG_LIMIT: Duration = Duration::from_secs(60);

impl Upstream {
    /// A host answering with a [`Behaviour`] the test changes with [`Upstream::set`],
    /// and a JSON body naming the host and the path.
    pub fn start(name: &str, behaviour: Behaviour) -> Result<Upstream> {
        Upstream::calling(name, behaviour, None)
    }

    /// Like [`Upstream::start`], for a pod that calls other services through its
    /// sidecar before it answers: when its behaviour is a success it makes every call
    /// in order, and answers 503 if one fails.
    pub fn calling(name: &str, behaviour: Behaviour, calls: Option<PodCalls>) -> Result<Upstream> {
        let current = Arc::new(Mutex::new(behaviour));
        let shared = Arc::clone(&current);
        let host = name.to_owned();
        let handler: Handler = Arc::new(move |attempt: &Attempt| {
            let behaviour = shared.lock().map(|b| *b).unwrap_or(Behaviour::status(500));
            let body = serde_json::json!({"service": host, "path": attempt.path}).to_string();
            let failed = (200..300).contains(&behaviour.status)
                && calls.as_ref().is_some_and(|calls| !calls.run(&[]));
            Reply::Respond {
                status: if failed { 503 } else { behaviour.status },
                headers: vec![("content-type".into(), "application/json".into())],
                body: body.into_bytes(),
                delay: behaviour.delay,
            }
        });
        let mut upstream = Upstream::with_handler(name, handler)?;
        upstream.behaviour = current;
        Ok(upstream)
    }

    /// A host whose every reply `handler` decides.
    pub fn with_handler(name: &str, handler: Handler) -> Result<Upstream> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(UpstreamError::Bind)?;
        let addr = listener.local_addr().map_err(UpstreamError::Bind)?;
        let state = Arc::new(State {
            handler,
            attempts: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            open: Mutex::new(HashMap::new()),
        });
        let accept_state = Arc::clone(&state);
        thread::Builder::new()
            .name(format!("upstream {name}"))
            .spawn(move || accept_loop(listener, accept_state))
            .map_err(UpstreamError::Thread)?;
        Ok(Upstream {
            addr,
            state,
            behaviour: Arc::new(Mutex::new(Behaviour::status(200))),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the answers of a host started with [`Upstream::start`].
    pub fn set(&self, behaviour: Behaviour) {
        if let Ok(mut b) = self.behaviour.lock() {
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

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
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
        if let Ok(mut open) = self.state.open.lock() {
            for (_, stream) in open.drain() {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

fn accept_loop(listener: TcpListener, state: Arc<State>) {
    for stream in listener.incoming() {
        if state.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            continue;
        };
        let number = state.connections.fetch_add(1, Ordering::SeqCst);
        if let (Ok(clone), Ok(mut open)) = (stream.try_clone(), state.open.lock()) {
            open.insert(number, clone);
        }
        let state = Arc::clone(&state);
        let _ = thread::Builder::new().spawn(move || {
            let _ = serve(stream, &state);
            if let Ok(mut open) = state.open.lock() {
                open.remove(&number);
            }
        });
    }
}

/// Most header lines a request head may have before [`head`] makes room for more.
const HEADER_SLOTS: usize = 64;

/// What the host reads from one connection: the stream, and the bytes read off it
/// that no request has taken yet (a pipelined request's, say).
struct Incoming {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Incoming {
    fn new(stream: TcpStream) -> Incoming {
        Incoming {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Reads what the peer sent next into the buffer; `false` when it closed.
    fn fill(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// The next request, head and `content-length` body; `None` when the peer
    /// closed the connection before a whole head.
    fn next_attempt(&mut self) -> std::io::Result<Option<Attempt>> {
        let (mut attempt, head_length, body_length) = loop {
            if let Some(head) = head(&self.buffer)? {
                break head;
            }
            if !self.fill()? {
                return Ok(None);
            }
        };
        let end = head_length + body_length;
        while self.buffer.len() < end {
            if !self.fill()? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        attempt.body = self.buffer[head_length..end].to_vec();
        self.buffer.drain(..end);
        Ok(Some(attempt))
    }
}

/// The request head at the start of `bytes`, read by `httparse`: the attempt without
/// its body, the head's length and the body's (`content-length`, else none). `None`
/// while the head is incomplete.
///
/// The parser is told to be as lenient as the proxy may be: header lines that are
/// not `name: value` are skipped, and runs of spaces in the request line accepted.
/// Values that are not UTF-8 are read with replacement characters.
fn head(bytes: &[u8]) -> std::io::Result<Option<(Attempt, usize, usize)>> {
    let mut slots = vec![httparse::EMPTY_HEADER; HEADER_SLOTS];
    loop {
        let mut request = httparse::Request::new(&mut slots);
        let parsed = httparse::ParserConfig::default()
            .allow_multiple_spaces_in_request_line_delimiters(true)
            .ignore_invalid_headers_in_requests(true)
            .parse_request(&mut request, bytes);
        let head_length = match parsed {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                let more = slots.len() * 2;
                slots = vec![httparse::EMPTY_HEADER; more];
                continue;
            }
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        };
        let headers = crate::client::owned_headers(request.headers);
        let body_length = headers
            .iter()
            .rev()
            .find(|(name, _)| name == "content-length")
            .map_or(0, |(_, value)| value.parse().unwrap_or(0));
        let attempt = Attempt {
            method: request.method.unwrap_or_default().to_owned(),
            path: request.path.unwrap_or_default().to_owned(),
            headers,
            body: Vec::new(),
        };
        return Ok(Some((attempt, head_length, body_length)));
    }
}

fn serve(stream: TcpStream, state: &State) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut incoming = Incoming::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        if state.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let Some(attempt) = incoming.next_attempt()? else {
            return Ok(());
        };
        state.attempts.fetch_add(1, Ordering::SeqCst);
        let close = attempt
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let reply = (state.handler)(&attempt);
        if let Ok(mut seen) = state.seen.lock() {
            if seen.len() < KEEP {
                seen.push(attempt);
            }
        }
        match reply {
            Reply::Respond {
                status,
                headers,
                body,
                delay,
            } => {
                if !delay.is_zero() {
                    thread::sleep(delay);
                }
                let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
                for (name, value) in &headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                if close {
                    head.push_str("connection: close\r\n");
                }
                head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
                writer.write_all(head.as_bytes())?;
                writer.write_all(&body)?;
                if close {
                    return Ok(());
                }
            }
            Reply::Reset { delay } => {
                if !delay.is_zero() {
                    thread::sleep(delay);
                }
                // Dropping the socket closes it before any response byte: to the
                // proxy, a disconnect before headers.
                return Ok(());
            }
            Reply::Hang => {
                // Hold the connection until the proxy gives up on it.
                writer.set_read_timeout(Some(HANG_LIMIT))?;
                let mut sink = [0u8; 512];
                while matches!(incoming.stream.read(&mut sink), Ok(n) if n > 0) {}
                return Ok(());
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    /// Reads one response (head and a `content-length` body) off `reader`.
    fn read_response(reader: &mut BufReader<TcpStream>) -> (String, Vec<String>) {
        let mut status = String::new();
        reader.read_line(&mut status).expect("a status line");
        let mut headers = Vec::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("a header line");
            let line = line.trim_end().to_ascii_lowercase();
            if line.is_empty() {
                break;
            }
            if let Some(n) = line.strip_prefix("content-length: ") {
                length = n.parse().expect("a length");
            }
            headers.push(line);
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("the body");
        (status.trim_end().to_owned(), headers)
    }

    /// A connection to `host`: its writing half and a reader, reads bounded to 5 s.
    fn connect(host: &Upstream) -> (TcpStream, BufReader<TcpStream>) {
        let stream = TcpStream::connect(host.addr()).expect("connected");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a timeout");
        let writer = stream.try_clone().expect("a clone");
        (writer, BufReader::new(stream))
    }

    #[test]
    fn a_connection_is_kept_alive_across_requests_until_the_client_asks_to_close() {
        let host = Upstream::start("keep-alive", Behaviour::status(200)).expect("a host");
        let (mut writer, mut reader) = connect(&host);
        for n in 1..=3 {
            write!(writer, "GET /{n} HTTP/1.1\r\nhost: h\r\n\r\n").expect("sent");
            let (status, headers) = read_response(&mut reader);
            assert_eq!(status, "HTTP/1.1 200 OK");
            assert!(!headers.iter().any(|h| h.starts_with("connection:")));
        }
        write!(
            writer,
            "GET /4 HTTP/1.1\r\nhost: h\r\nConnection: close\r\n\r\n"
        )
        .expect("sent");
        let (_, headers) = read_response(&mut reader);
        assert!(headers.contains(&"connection: close".to_owned()));
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).expect("closed by the host");
        assert!(rest.is_empty());
        assert_eq!((host.attempts(), host.connections()), (4, 1));

        TcpStream::connect(host.addr()).expect("connected again");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while host.connections() < 2 && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(host.connections(), 2);
    }

    #[test]
    fn pipelined_requests_are_read_whole_bodies_and_all_headers_included() {
        let host = Upstream::start("pipelined", Behaviour::status(200)).expect("a host");
        let (mut writer, mut reader) = connect(&host);
        let many: String = (0..100).map(|i| format!("x-{i}: {i}\r\n")).collect();
        write!(
            writer,
            "POST /a HTTP/1.1\r\nhost: h\r\ncontent-length: 5\r\n{many}\r\nhelloPOST /b HTTP/1.1\r\nhost: h\r\nContent-Length: 2\r\nno colon here\r\n\r\nhi"
        )
        .expect("sent");
        for _ in 0..2 {
            let (status, _) = read_response(&mut reader);
            assert_eq!(status, "HTTP/1.1 200 OK");
        }
        let seen = host.seen();
        let bodies: Vec<_> = seen
            .iter()
            .map(|a| (a.path.as_str(), &a.body[..]))
            .collect();
        assert_eq!(bodies, [("/a", &b"hello"[..]), ("/b", &b"hi"[..])]);
        assert_eq!(seen[0].header("x-99"), Some("99"));
        assert_eq!(seen[1].headers.len(), 2, "{:?}", seen[1].headers);
    }

    #[test]
    fn a_head_httparse_refuses_is_invalid_data() {
        let error = head(b"GET / HTTP/9.9\r\n\r\n").expect_err("a bad version");
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
        assert!(matches!(head(b"GET / HTTP/1.1\r\nhost"), Ok(None)));
    }

    #[test]
    fn a_dropped_host_closes_its_idle_connections() {
        let host = Upstream::start("going away", Behaviour::status(200)).expect("a host");
        let (mut writer, mut reader) = connect(&host);
        write!(writer, "GET / HTTP/1.1\r\nhost: h\r\n\r\n").expect("sent");
        let (status, _) = read_response(&mut reader);
        assert_eq!(status, "HTTP/1.1 200 OK");
        drop(host);
        let mut rest = Vec::new();
        let closed = reader.read_to_end(&mut rest);
        assert!(
            matches!(closed, Ok(0)),
            "closed at once, not after the read timeout: {closed:?}"
        );
    }
}
