//! Thousands of distinct upstream addresses over a run, from a bounded pool of real
//! HTTP servers on 127.0.0.1.
//!
//! The filter keys its per-host state by `upstream.address` (`ip:port`), so what
//! could grow its shared data is the number of distinct addresses it sees, not the
//! number of servers at once. The pool keeps `live` servers, each a listener on
//! 127.0.0.1 on a port the kernel picks; each turn retires the oldest few and starts
//! as many new ones, so new `127.0.0.1:port` addresses keep arriving while the open
//! sockets stay bounded. Requests name an address through Envoy's
//! `x-envoy-original-dst-host` header (the clusters are `ORIGINAL_DST`), picked among
//! the live ones when each request falls due; a retired server is no longer picked,
//! and keeps serving for [`DRAIN`] so that requests already on their way to it are
//! answered, then closes, its connections with it (as a pod that goes away).
//!
//! Two servers stay for the whole run, a pair as the mesh's two replicas are, and a
//! quarter of the requests go to them: spread over dozens of short-lived addresses,
//! no address would see enough requests in a row for the per-host signal to fire,
//! while the pair (one of them bad under the bad-host fault) has hosts ejected
//! again and again.

use super::faults::{Answer, FaultState};
use super::Error;
use c4mesh_mesh::upstream::{Attempt, Handler, Reply, Upstream};
use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a retired server keeps answering before it closes.
pub const DRAIN: Duration = Duration::from_secs(2);

/// The servers a request may name: the resident pair, and the rotating ones.
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub pair: Vec<SocketAddr>,
    pub rotating: Vec<SocketAddr>,
}

/// The live servers' addresses, read by the request generator.
pub type Picks = Arc<RwLock<Live>>;

/// Servers that stay for the whole run (serials 0 and 1: one good, one bad).
const PAIR: usize = 2;

/// The rotating pool.
pub struct Addresses {
    pair: Vec<Upstream>,
    /// Oldest first.
    live: VecDeque<Upstream>,
    draining: VecDeque<(Instant, Upstream)>,
    picks: Picks,
    seen: HashSet<SocketAddr>,
    next_serial: u64,
    faults: Arc<FaultState>,
    prefixes: Arc<Vec<String>>,
}

impl Addresses {
    /// `live` servers answering as `faults` says for the routes of `prefixes`.
    pub fn start(
        live: usize,
        faults: Arc<FaultState>,
        prefixes: Vec<String>,
    ) -> Result<Addresses, Error> {
        let mut pool = Addresses {
            pair: Vec::new(),
            live: VecDeque::new(),
            draining: VecDeque::new(),
            picks: Arc::default(),
            seen: HashSet::new(),
            next_serial: 0,
            faults,
            prefixes: Arc::new(prefixes),
        };
        for _ in 0..PAIR {
            let upstream = pool.server()?;
            pool.pair.push(upstream);
        }
        for _ in 0..live.max(1) {
            let upstream = pool.server()?;
            pool.live.push_back(upstream);
        }
        pool.publish();
        Ok(pool)
    }

    /// Where the generator reads the live addresses.
    pub fn picks(&self) -> Picks {
        Arc::clone(&self.picks)
    }

    /// Retires the `count` oldest servers, starts `count` new ones, and closes those
    /// retired more than [`DRAIN`] ago.
    pub fn turn(&mut self, count: usize) -> Result<(), Error> {
        let now = Instant::now();
        for _ in 0..count.min(self.live.len()) {
            if let Some(upstream) = self.live.pop_front() {
                self.draining.push_back((now, upstream));
            }
        }
        for _ in 0..count {
            let upstream = self.server()?;
            self.live.push_back(upstream);
        }
        self.publish();
        while self
            .draining
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= DRAIN)
        {
            self.draining.pop_front();
        }
        Ok(())
    }

    /// Distinct addresses served so far.
    pub fn distinct(&self) -> usize {
        self.seen.len()
    }

    /// Servers open now, the pair and draining ones included.
    pub fn open(&self) -> usize {
        self.pair.len() + self.live.len() + self.draining.len()
    }

    /// A new server on 127.0.0.1 with the next serial number.
    fn server(&mut self) -> Result<Upstream, Error> {
        let serial = self.next_serial;
        self.next_serial += 1;
        let (faults, prefixes) = (Arc::clone(&self.faults), Arc::clone(&self.prefixes));
        let handler: Handler = Arc::new(move |attempt: &Attempt| {
            let route = prefixes.iter().position(|p| {
                attempt.path.strip_prefix(p.as_str()).is_some_and(|rest| {
                    rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')
                })
            });
            match faults.answer(serial, route) {
                Answer::Status(status) => Reply::Respond {
                    status,
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: format!("{{\"upstream\":{serial}}}").into_bytes(),
                    delay: Duration::ZERO,
                },
                Answer::Reset => Reply::Reset {
                    delay: Duration::ZERO,
                },
                Answer::Hang => Reply::Hang,
            }
        });
        let upstream = Upstream::with_handler("soak", handler).map_err(Error::Upstream)?;
        self.seen.insert(upstream.addr());
        Ok(upstream)
    }

    fn publish(&self) {
        let live = Live {
            pair: self.pair.iter().map(Upstream::addr).collect(),
            rotating: self.live.iter().map(Upstream::addr).collect(),
        };
        if let Ok(mut picks) = self.picks.write() {
            *picks = live;
        }
    }
}

/// The address for request `i`: one request in four to the pair, the others to the
/// rotating servers, chosen by a hash of `i` so that every route meets every address
/// (a plain `i % len` would tie routes to addresses when a count shares a factor
/// with the number of routes).
pub fn pick(picks: &Picks, i: u64) -> Option<SocketAddr> {
    let live = picks.read().ok()?;
    let spread = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    let from = if spread.is_multiple_of(4) && !live.pair.is_empty() {
        &live.pair
    } else {
        &live.rotating
    };
    if from.is_empty() {
        return None;
    }
    from.get((spread / 4 % from.len() as u64) as usize).copied()
}
