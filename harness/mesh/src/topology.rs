//! The mesh beyond the gateway: which services call which, and the calls each pod of a
//! calling service makes through its own sidecar for every request it serves.
//!
//! How those sidecars route and retry is not described here: every proxy's
//! configuration comes from the translation of the mesh's Istio resources
//! ([`crate::istio`]), the sidecar's virtual hosts included.

use crate::Client;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

/// The port every service of the mesh listens on (its Kubernetes Service port).
pub const SERVICE_PORT: u16 = 8080;

/// The pass-through destination of a sidecar: anything that is not a mesh service.
pub const EXTERNAL: &str = "external";

/// The request header a simulated service sets on the calls it makes: which pod called
/// (`service/index`). Attempts without it came from the entry proxy.
pub const CALLER: &str = "x-mesh-caller";

/// The authority a service's clients use to call it.
pub fn call_authority(service: &str, namespace: &str) -> String {
    format!("{service}.{namespace}.svc.cluster.local:{SERVICE_PORT}")
}

/// Which services call which, in call order, for each request they serve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    pub calls: BTreeMap<String, Vec<String>>,
}

/// What is wrong with a topology.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("unknown service {0:?}")]
    UnknownService(String),
    #[error("{0} calls itself")]
    SelfCall(String),
    #[error("the calls form a cycle through {0}")]
    Cycle(String),
}

impl Topology {
    /// Parses `caller=callee,callee2=other` pairs (the `--calls` flag): each
    /// `caller=callee` adds one call; a caller's calls keep their order.
    pub fn parse(text: &str) -> Result<Topology, String> {
        let mut topology = Topology::default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (caller, callee) = pair
                .split_once('=')
                .ok_or_else(|| format!("expected CALLER=CALLEE, got {pair:?}"))?;
            let (caller, callee) = (caller.trim(), callee.trim());
            if caller.is_empty() || callee.is_empty() {
                return Err(format!("expected CALLER=CALLEE, got {pair:?}"));
            }
            topology
                .calls
                .entry(caller.to_owned())
                .or_default()
                .push(callee.to_owned());
        }
        Ok(topology)
    }

    /// Checks that every service is known and that no call chain loops.
    pub fn validate(&self, services: &[String]) -> Result<(), TopologyError> {
        let known = |s: &String| services.contains(s) && s != EXTERNAL;
        for (caller, callees) in &self.calls {
            if !known(caller) {
                return Err(TopologyError::UnknownService(caller.clone()));
            }
            for callee in callees {
                if !known(callee) {
                    return Err(TopologyError::UnknownService(callee.clone()));
                }
                if callee == caller {
                    return Err(TopologyError::SelfCall(caller.clone()));
                }
            }
        }
        for start in self.calls.keys() {
            let mut path = vec![start.as_str()];
            self.walk(&mut path)?;
        }
        Ok(())
    }

    fn walk<'a>(&'a self, path: &mut Vec<&'a str>) -> Result<(), TopologyError> {
        let Some(last) = path.last().copied() else {
            return Ok(());
        };
        for callee in self.callees(last) {
            if path.contains(&callee.as_str()) {
                return Err(TopologyError::Cycle(callee.clone()));
            }
            path.push(callee);
            self.walk(path)?;
            path.pop();
        }
        Ok(())
    }

    /// The services `service` calls, in order.
    pub fn callees(&self, service: &str) -> &[String] {
        self.calls.get(service).map_or(&[], Vec::as_slice)
    }

    /// The calls pod `index` of `service` makes, if it calls others: each callee by its
    /// fully qualified authority in `namespace`, at the path `path_of` gives it.
    pub fn pod_calls(
        &self,
        service: &str,
        index: usize,
        namespace: &str,
        path_of: impl Fn(&str) -> String,
    ) -> Option<PodCalls> {
        self.calls_out(service).then(|| PodCalls {
            pod: format!("{service}/{index}"),
            sidecar: Arc::new(OnceLock::new()),
            targets: self
                .callees(service)
                .iter()
                .map(|callee| CallTarget {
                    service: callee.clone(),
                    authority: call_authority(callee, namespace),
                    path: path_of(callee),
                })
                .collect(),
        })
    }

    /// Whether a service calls others (its pods need sidecars).
    pub fn calls_out(&self, service: &str) -> bool {
        !self.callees(service).is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

/// One call a service makes: to whom, under which authority and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallTarget {
    pub service: String,
    pub authority: String,
    pub path: String,
}

/// The calls one pod of a calling service makes for each request it serves, through
/// its own sidecar (whose address is known once the sidecar has started).
#[derive(Debug, Clone)]
pub struct PodCalls {
    /// The calling pod, `service/index` (sent as [`CALLER`]).
    pub pod: String,
    pub sidecar: Arc<OnceLock<SocketAddr>>,
    pub targets: Vec<CallTarget>,
}

impl PodCalls {
    /// Makes every call in order, passing `headers` on; `false` as soon as one fails
    /// (a 5xx answer, or none at all), when the service answers 503 itself.
    pub fn run(&self, headers: &[(&str, &str)]) -> bool {
        let Some(sidecar) = self.sidecar.get() else {
            return false;
        };
        let client = Client::new(*sidecar);
        let mut sent: Vec<(&str, &str)> = headers.to_vec();
        sent.push((CALLER, &self.pod));
        self.targets.iter().all(|target| {
            client
                .request("GET", &target.path, Some(&target.authority), &sent)
                .is_ok_and(|response| response.status < 500)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> Vec<String> {
        ["order-service", "payment-service", "saga-tracker"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn calls_parse_in_order_and_cycles_are_refused() {
        let t = Topology::parse("order-service=payment-service, payment-service=saga-tracker")
            .unwrap_or_default();
        assert_eq!(t.callees("order-service"), ["payment-service"]);
        assert!(t.calls_out("payment-service"));
        assert!(!t.calls_out("saga-tracker"));
        assert_eq!(t.validate(&services()), Ok(()));
        assert!(Topology::parse("order-service").is_err());
        let cycle = Topology::parse("order-service=payment-service,payment-service=order-service")
            .unwrap_or_default();
        assert!(matches!(
            cycle.validate(&services()),
            Err(TopologyError::Cycle(_))
        ));
        let unknown = Topology::parse("order-service=nope").unwrap_or_default();
        assert_eq!(
            unknown.validate(&services()),
            Err(TopologyError::UnknownService("nope".into()))
        );
    }
}
