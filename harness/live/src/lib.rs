//! The client for gateways the harness does not run: one HTTP stack (tokio, hyper,
//! rustls) for `c4mesh replay`, the conformance `url` target and `c4mesh check`'s
//! request through the NLB.
//!
//! ## Why the address and the name are separate
//!
//! An operator reaches the NLB by its AWS hostname or an IP, while every request must
//! name `api.c4ang.com`: the Gateway routes by that name and its certificate is issued
//! for it. So an [`Endpoint`] connects to the target URL's address and puts the
//! request's host everywhere a name counts: the `Host` header (`:authority` on HTTP/2),
//! TLS SNI and certificate verification — what curl does with `--connect-to`.
//!
//! ## Why errors have kinds
//!
//! A load test against a live gateway has to say *why* a request got no answer: a
//! refused connection, an unknown certificate authority and a name mismatch are three
//! different operator mistakes. [`ErrorKind`] names each; the replay report counts
//! them, and no failure stops a run.
//!
//! ## Layout
//!
//! - [`endpoint`]: the target URL and the request's host.
//! - [`tls`]: rustls client configuration (`--cacert`, `--insecure`, ALPN).
//! - [`trust`]: a `--cacert` file trusted as curl trusts it, and the warnings that say
//!   what a public certificate would need.
//! - [`connection`]: one HTTP/1.1 or HTTP/2 connection and its exchanges.
//! - [`blocking`]: one request at a time from synchronous code (check, conformance).
//! - [`raw`]: bytes as given, for requests no HTTP library would send.

pub mod blocking;
pub mod connection;
pub mod endpoint;
pub mod raw;
pub mod tls;
pub mod trust;

pub use blocking::{BlockingClient, BlockingClientError};
pub use connection::{Connection, FullResponse};
pub use endpoint::{Endpoint, EndpointError, Scheme};
pub use tls::TlsConfigError;
pub use trust::{CacertError, TrustWarning, Warnings};

use std::path::PathBuf;
use std::time::Duration;

/// An error and each of its causes, on one line (`outer: cause: root cause`), for
/// reports and findings that hold text.
pub fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}

/// Why a request got no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// Nothing listens at the target.
    ConnectRefused,
    /// No connection within the deadline.
    ConnectTimeout,
    /// Connecting failed otherwise.
    Connect,
    /// The server's certificate is not signed by a trusted authority.
    TlsUnknownCa,
    /// The server's certificate does not name the request's host.
    TlsNameMismatch,
    /// The server's certificate has expired or is not valid yet.
    TlsExpired,
    /// The server's certificate is unusable otherwise (a CA certificate presented
    /// as the server's, a wrong key usage, ...).
    TlsBadCertificate,
    /// The TLS handshake failed otherwise (refused, no common protocol, not TLS).
    TlsHandshake,
    /// Connected, but the response was not complete by the deadline.
    Timeout,
    /// The peer reset the connection (or the HTTP/2 stream).
    Reset,
    /// The peer closed the connection before the response was complete.
    Closed,
    /// What came back is not an HTTP response.
    BadResponse,
    /// The request could not be expressed (an invalid method, path or header).
    BadRequest,
    /// Another I/O error.
    Io,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Connect => "connect_error",
            ErrorKind::TlsUnknownCa => "tls_unknown_ca",
            ErrorKind::TlsNameMismatch => "tls_name_mismatch",
            ErrorKind::TlsExpired => "tls_expired",
            ErrorKind::TlsBadCertificate => "tls_bad_certificate",
            ErrorKind::TlsHandshake => "tls_handshake",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Closed => "closed",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Io => "io_error",
        }
    }

    /// A sentence for people: what happened and what usually fixes it.
    pub fn explain(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connection refused: nothing listens at the target",
            ErrorKind::ConnectTimeout => "no connection within the timeout",
            ErrorKind::Connect => "could not connect",
            ErrorKind::TlsUnknownCa => {
                "the certificate is not signed by a trusted authority (give --cacert FILE, or --insecure)"
            }
            ErrorKind::TlsNameMismatch => {
                "the certificate does not name the request's host (check --host)"
            }
            ErrorKind::TlsExpired => "the certificate has expired or is not valid yet",
            ErrorKind::TlsBadCertificate => {
                "the certificate cannot serve a server (a CA certificate, a wrong key usage)"
            }
            ErrorKind::TlsHandshake => "the TLS handshake failed",
            ErrorKind::Timeout => "no complete response within the timeout",
            ErrorKind::Reset => "the connection was reset",
            ErrorKind::Closed => "the connection closed before the response was complete",
            ErrorKind::BadResponse => "the answer is not HTTP",
            ErrorKind::BadRequest => "the request cannot be sent as HTTP",
            ErrorKind::Io => "an I/O error",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.as_str(), self.explain())
    }
}

/// What a load test keeps of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `x-c4-attempts`, else `x-envoy-attempt-count`, when present.
    pub attempts: Option<u64>,
}

/// Which HTTP version to speak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 in clear text; over TLS whatever ALPN picks (h2 or http/1.1).
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only: h2c with prior knowledge in clear text, h2 by ALPN over TLS.
    Http2,
}

/// How to reach an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Also trust the certificates in this PEM file (as curl does: see [`trust`]).
    pub cacert: Option<PathBuf>,
    /// Accept any certificate (for self-signed test gateways).
    pub insecure: bool,
    pub protocol: Protocol,
    /// Longest a connection may take to establish (TCP and TLS).
    pub connect_timeout: Duration,
    /// Where trust given as curl gives it is reported (default: standard error, once
    /// per distinct warning for this value and its clones).
    pub warnings: Warnings,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            cacert: None,
            insecure: false,
            protocol: Protocol::Auto,
            connect_timeout: Duration::from_secs(10),
            warnings: Warnings::default(),
        }
    }
}
