//! One connection to an endpoint, HTTP/1.1 or HTTP/2, and the exchanges on it.
//!
//! A connection is kept and reused (keep-alive on HTTP/1.1, streams on HTTP/2): a
//! load generator that opened a connection per request would measure the handshakes
//! and fill the client's port range with TIME_WAIT sockets. hyper frames the requests;
//! a response counts as complete when its last body byte has arrived, which is where
//! its latency ends.

use super::tls::{self, TlsConfigError};
use super::{Answer, Endpoint, ErrorKind, Protocol, Settings};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Response headers that carry an attempt count (parsed names: a lookup by `&str`
/// would parse the name again for every response).
static C4_ATTEMPTS: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static("x-c4-attempts");
static ENVOY_ATTEMPT_COUNT: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static("x-envoy-attempt-count");

/// The HTTP/1.1 read buffer's size (hyper's adaptive strategy starts at this size).
const READ_BUFFER: usize = 8192;

/// The request type the connections send.
pub type Request = hyper::Request<Full<Bytes>>;

/// What is needed to open connections to one endpoint (shared by every connection).
#[derive(Clone)]
pub struct Dialer {
    pub endpoint: Arc<Endpoint>,
    tls: Option<TlsConnector>,
    protocol: Protocol,
    connect_timeout: std::time::Duration,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("endpoint", &self.endpoint)
            .field("tls", &self.tls.is_some())
            .field("protocol", &self.protocol)
            .finish()
    }
}

impl Dialer {
    pub fn new(endpoint: Endpoint, settings: &Settings) -> Result<Dialer, TlsConfigError> {
        let tls = if endpoint.is_tls() {
            Some(TlsConnector::from(tls::client_config(settings)?))
        } else {
            None
        };
        Ok(Dialer {
            endpoint: Arc::new(endpoint),
            tls,
            protocol: settings.protocol,
            connect_timeout: settings.connect_timeout,
        })
    }

    /// The same endpoint and TLS configuration, with requests naming `host`.
    pub fn with_host(&self, host: &str) -> Dialer {
        let mut endpoint = (*self.endpoint).clone();
        endpoint.host = host.to_owned();
        Dialer {
            endpoint: Arc::new(endpoint),
            ..self.clone()
        }
    }

    /// Whether connections speak HTTP/2 for sure (h2c); over TLS ALPN decides.
    pub fn prior_knowledge_h2(&self) -> bool {
        self.tls.is_none() && self.protocol == Protocol::Http2
    }

    /// Opens a connection: TCP, TLS if the endpoint is https, the HTTP handshake. The
    /// connection's driver runs as a task on the current tokio runtime.
    pub async fn connect(&self) -> Result<Connection, ErrorKind> {
        let tcp =
            tokio::time::timeout(self.connect_timeout, TcpStream::connect(self.endpoint.addr))
                .await
                .map_err(|_| ErrorKind::ConnectTimeout)?
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
                    std::io::ErrorKind::TimedOut => ErrorKind::ConnectTimeout,
                    _ => ErrorKind::Connect,
                })?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => {
                let h2 = self.protocol == Protocol::Http2;
                handshake(TokioIo::new(tcp), h2).await
            }
            Some(connector) => {
                let name = tls::server_name(self.endpoint.server_name())?;
                let stream =
                    tokio::time::timeout(self.connect_timeout, connector.connect(name, tcp))
                        .await
                        .map_err(|_| ErrorKind::ConnectTimeout)?
                        .map_err(|e| tls::classify(&e))?;
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                handshake(TokioIo::new(stream), h2).await
            }
        }
    }

    /// A request for this endpoint: origin-form with `Host` on HTTP/1.1; absolute
    /// (scheme and `:authority`) on HTTP/2. A `host` header among `headers` names the
    /// request's host instead of the endpoint's.
    pub fn request(
        &self,
        h2: bool,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Result<Request, ErrorKind> {
        Ok(self.template(h2, method, path, headers)?.request(body))
    }

    /// The parsed parts of a request, built once and stamped out for each send: a
    /// load generator re-sends the same requests, and parsing the method, URI and
    /// headers again each time would be most of its own cost.
    pub fn template(
        &self,
        h2: bool,
        method: &str,
        path: &str,
        headers: &[(String, String)],
    ) -> Result<Template, ErrorKind> {
        let own_host = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.as_str());
        let host = own_host.unwrap_or(&self.endpoint.host);
        let method =
            hyper::Method::from_bytes(method.as_bytes()).map_err(|_| ErrorKind::BadRequest)?;
        let uri: hyper::Uri = if h2 {
            format!("{}://{host}{path}", self.endpoint.scheme.as_str()).parse()
        } else {
            path.parse()
        }
        .map_err(|_| ErrorKind::BadRequest)?;
        let mut map = hyper::HeaderMap::with_capacity(headers.len() + 1);
        if !h2 {
            let value =
                hyper::header::HeaderValue::from_str(host).map_err(|_| ErrorKind::BadRequest)?;
            map.insert(hyper::header::HOST, value);
        }
        for (name, value) in headers {
            // The client frames the request and names the host itself.
            if ["host", "content-length", "transfer-encoding", "connection"]
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h))
            {
                continue;
            }
            let name = hyper::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ErrorKind::BadRequest)?;
            let value =
                hyper::header::HeaderValue::from_str(value).map_err(|_| ErrorKind::BadRequest)?;
            map.append(name, value);
        }
        Ok(Template {
            method,
            uri,
            headers: map,
            version: if h2 {
                hyper::Version::HTTP_2
            } else {
                hyper::Version::HTTP_11
            },
        })
    }
}

/// A request's parsed parts (see [`Dialer::template`]).
#[derive(Debug, Clone)]
pub struct Template {
    method: hyper::Method,
    uri: hyper::Uri,
    headers: hyper::HeaderMap,
    version: hyper::Version,
}

impl Template {
    /// A request with these parts and `body`.
    pub fn request(&self, body: Bytes) -> Request {
        let mut request = hyper::Request::new(Full::new(body));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        request
    }
}

async fn handshake<T>(io: TokioIo<T>, h2: bool) -> Result<Connection, ErrorKind>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if h2 {
        let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| of_hyper(&e))?;
        tokio::spawn(connection);
        Ok(Connection::H2(sender))
    } else {
        // A read buffer of one fixed size: hyper's adaptive sizing costs more per
        // response than it saves on the small answers an API gives.
        let (sender, connection) = http1::Builder::new()
            .read_buf_exact_size(Some(READ_BUFFER))
            .handshake(io)
            .await
            .map_err(|e| of_hyper(&e))?;
        tokio::spawn(connection);
        Ok(Connection::H1(sender))
    }
}

/// An open connection.
pub enum Connection {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// A whole response, for checks that look at headers and body.
#[derive(Debug, Clone)]
pub struct FullResponse {
    pub status: u16,
    /// Lower-case names, in order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl FullResponse {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Connection {
    pub fn is_h2(&self) -> bool {
        matches!(self, Connection::H2(_))
    }

    /// Whether another request may go on this connection.
    pub fn usable(&self) -> bool {
        match self {
            Connection::H1(sender) => !sender.is_closed(),
            Connection::H2(sender) => !sender.is_closed(),
        }
    }

    /// Another handle on an HTTP/2 connection (its streams are multiplexed).
    pub fn share(&self) -> Option<Connection> {
        match self {
            Connection::H2(sender) => Some(Connection::H2(sender.clone())),
            Connection::H1(_) => None,
        }
    }

    async fn exchange(
        &mut self,
        request: Request,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ErrorKind> {
        match self {
            Connection::H1(sender) => {
                sender.ready().await.map_err(|e| of_hyper(&e))?;
                sender.send_request(request).await.map_err(|e| of_hyper(&e))
            }
            Connection::H2(sender) => {
                sender.ready().await.map_err(|e| of_hyper(&e))?;
                sender.send_request(request).await.map_err(|e| of_hyper(&e))
            }
        }
    }

    /// Sends `request` and reads the whole response, keeping its status and attempts.
    pub async fn send(&mut self, request: Request) -> Result<Answer, ErrorKind> {
        let response = self.exchange(request).await?;
        let attempts = response
            .headers()
            .get(&C4_ATTEMPTS)
            .or_else(|| response.headers().get(&ENVOY_ATTEMPT_COUNT))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let status = response.status().as_u16();
        let mut body = response.into_body();
        // A body of known length ends with its last byte, without waiting for the
        // connection to say so.
        while !body.is_end_stream() {
            match body.frame().await {
                Some(frame) => frame.map_err(|e| of_hyper(&e))?,
                None => break,
            };
        }
        Ok(Answer { status, attempts })
    }

    /// Sends `request` and returns the whole response.
    pub async fn fetch(&mut self, request: Request) -> Result<FullResponse, ErrorKind> {
        let response = self.exchange(request).await?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| of_hyper(&e))?
            .to_bytes();
        Ok(FullResponse {
            status,
            headers,
            body,
        })
    }
}

/// What a hyper error means for the report.
fn of_hyper(error: &hyper::Error) -> ErrorKind {
    if error.is_timeout() {
        return ErrorKind::Timeout;
    }
    if error.is_parse() || error.is_parse_status() {
        return ErrorKind::BadResponse;
    }
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe => ErrorKind::Reset,
                std::io::ErrorKind::UnexpectedEof => ErrorKind::Closed,
                std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
                _ => ErrorKind::Io,
            };
        }
        if inner.is::<h2::Error>() {
            return ErrorKind::Reset;
        }
        source = inner.source();
    }
    if error.is_incomplete_message() || error.is_closed() || error.is_canceled() {
        return ErrorKind::Closed;
    }
    ErrorKind::Io
}
