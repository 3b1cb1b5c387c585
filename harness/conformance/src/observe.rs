//! What a target observed of one scenario: the same shape on every target, so that the
//! expectations are checked by one piece of code and can only disagree where the
//! targets really behaved differently.

use super::upstreams::AttemptRecord;
use std::collections::BTreeMap;
use std::fmt;

/// One request and what the client got.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The conformance request id (the `x-conformance-request` header).
    pub id: u64,
    /// The step it belongs to.
    pub step: usize,
    /// The response, or why there was none.
    pub response: Result<Reply, NoReply>,
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq)]
pub enum NoReply {
    /// The client gave up at its `abort_after` and closed the connection.
    Aborted,
    /// The exchange failed otherwise: a reset, a refused connection, a broken reply.
    Failed(String),
}

impl fmt::Display for NoReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoReply::Aborted => f.write_str("aborted by the client"),
            NoReply::Failed(message) => f.write_str(message),
        }
    }
}

/// A response as the client saw it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        c4mesh_mesh::client::header(&self.headers, name)
    }
}

/// Everything a target observed.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Whether the filter accepted its configuration.
    pub configured: bool,
    pub exchanges: Vec<Exchange>,
    /// Every upstream attempt, in arrival order (empty on the `url` target).
    pub attempts: Vec<AttemptRecord>,
    /// The filter's metrics by name without Envoy's `wasmcustom.` prefix.
    pub metrics: BTreeMap<String, f64>,
    /// The filter's log messages.
    pub logs: Vec<String>,
    /// Whether attempts, metrics and logs are visible (not on the `url` target).
    pub sees_upstreams: bool,
    /// In a topology, each proxy by name: `gateway` and each pod's sidecar
    /// (`service/index`).
    pub proxies: BTreeMap<String, ProxyObserved>,
}

/// What one proxy of a topology showed.
#[derive(Debug, Clone, Default)]
pub struct ProxyObserved {
    /// The filter's metrics by name without Envoy's `wasmcustom.` prefix.
    pub metrics: BTreeMap<String, f64>,
    /// The filter's log messages.
    pub logs: Vec<String>,
}

impl Observed {
    /// What a target saw of a mesh of proxies: the entry proxy (`gateway`) gives the
    /// scenario-level metrics, every proxy's log lines are searched by `finally.logs`.
    pub fn of_proxies(
        configured: bool,
        exchanges: Vec<Exchange>,
        attempts: Vec<AttemptRecord>,
        proxies: BTreeMap<String, ProxyObserved>,
    ) -> Observed {
        Observed {
            configured,
            exchanges,
            attempts,
            metrics: proxies
                .get("gateway")
                .map(|entry| entry.metrics.clone())
                .unwrap_or_default(),
            logs: proxies.values().flat_map(|p| p.logs.clone()).collect(),
            sees_upstreams: true,
            proxies,
        }
    }

    pub fn attempts_of(&self, request: u64) -> impl Iterator<Item = &AttemptRecord> {
        self.attempts
            .iter()
            .filter(move |a| a.request == Some(request))
    }
}
