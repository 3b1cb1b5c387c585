//! Routing by destination (S1): which route a call from one service to another takes.
//!
//! ## Why the destination and not the host and path
//!
//! In sidecar mode the filter runs on the outbound side of every pod's proxy, between a
//! service and the services it calls. There the authority is not a public host name but
//! the name of the service being called, and the retry budget and the circuit exist to
//! protect that service: they belong to the destination whatever path the caller uses.
//! So the destination picks the route's service, the path only picks among that
//! service's routes (R3), and a path that matches none of them still takes the
//! service's first route instead of escaping its budget and circuit.
//!
//! ## Spellings
//!
//! Cluster DNS resolves a service of the filter's namespace as `<service>` (through the
//! pod's search path), `<service>.<namespace>`, `<service>.<namespace>.svc` and
//! `<service>.<namespace>.svc.cluster.local`. Exactly these name a destination, in any
//! letter case, with or without `:port` and a trailing `.`. Everything else (another
//! namespace, an external host, an IP address, a partial suffix such as
//! `.svc.cluster`) is not a destination of the mesh and passes untouched (S2).
//!
//! ## Cost
//!
//! A destination is looked up on every outbound request, so nothing is allocated: the
//! authority's first label is lower-cased into a stack buffer (a service name is one
//! DNS label, at most 63 bytes) and looked up in a hash map of services; the rest of
//! the authority is compared with the namespace in place.

use crate::authority::host_of;
use crate::config::Route;
use crate::routes::{Fnv, RouteId, RouteTable};
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

/// The longest DNS label, so the longest service or namespace name.
pub const MAX_LABEL: usize = 63;

/// What may follow `<service>.<namespace>` in a destination's authority.
const NAMESPACE_SUFFIXES: [&[u8]; 3] = [b"", b".svc", b".svc.cluster.local"];

/// Whether `name` is one DNS label as Kubernetes writes it (RFC 1123): 1 to 63 of
/// `a-z`, `0-9` and `-`, starting and ending with a letter or digit. Namespaces are
/// such names.
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=MAX_LABEL).contains(&bytes.len())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Whether `name` can be a Service's name (RFC 1035): a DNS label that starts with a
/// letter. So no IP address can ever name a destination.
pub fn is_service_name(name: &str) -> bool {
    is_dns_label(name) && name.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
}

/// The destination services of the mesh, as seen from one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Destinations {
    /// Lower case.
    namespace: Box<[u8]>,
    /// Keyed by the lower-case service name.
    by_service: HashMap<Box<[u8]>, Destination, BuildHasherDefault<Fnv>>,
}

/// One destination service and its routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The service's first route in configuration order: a path none of its
    /// prefixes match takes it.
    first: RouteId,
    /// The service's routes by prefix, answering with configuration indices.
    table: RouteTable,
}

// === impl Destinations ===

impl Destinations {
    /// Groups the routes by service. `namespace` and the services are validated names
    /// ([`is_dns_label`], [`is_service_name`]); they are compared without case anyway.
    pub fn new(namespace: &str, routes: &[Route]) -> Destinations {
        let mut by_service = HashMap::default();
        for (first, route) in routes.iter().enumerate() {
            let service: Box<[u8]> = route.service.to_ascii_lowercase().into_bytes().into();
            if by_service.contains_key(&service) {
                continue;
            }
            let table = RouteTable::with_ids(
                routes
                    .iter()
                    .enumerate()
                    .skip(first)
                    .filter(|(_, other)| other.service.eq_ignore_ascii_case(&route.service))
                    .map(|(id, other)| (id, other.prefix.as_str())),
            );
            by_service.insert(service, Destination { first, table });
        }
        Destinations {
            namespace: namespace.to_ascii_lowercase().into_bytes().into(),
            by_service,
        }
    }

    /// The destination a request's authority (`:authority`, else `host`; `None` when
    /// both are absent) names, if it names one of the mesh's services.
    pub fn lookup(&self, authority: Option<&[u8]>) -> Option<&Destination> {
        let host = host_of(authority?);
        let (service, rest) = match host.iter().position(|&b| b == b'.') {
            Some(dot) => (&host[..dot], Some(&host[dot + 1..])),
            None => (host, None),
        };
        let mut key = [0u8; MAX_LABEL];
        let key = key.get_mut(..service.len())?;
        key.copy_from_slice(service);
        key.make_ascii_lowercase();
        let destination = self.by_service.get(&*key)?;
        match rest {
            None => Some(destination),
            Some(rest) if self.is_namespace_domain(rest) => Some(destination),
            Some(_) => None,
        }
    }

    /// Whether what follows `<service>.` is `<namespace>`, `<namespace>.svc` or
    /// `<namespace>.svc.cluster.local`, in any case.
    fn is_namespace_domain(&self, rest: &[u8]) -> bool {
        let Some((namespace, suffix)) = rest.split_at_checked(self.namespace.len()) else {
            return false;
        };
        namespace.eq_ignore_ascii_case(&self.namespace)
            && NAMESPACE_SUFFIXES
                .iter()
                .any(|known| suffix.eq_ignore_ascii_case(known))
    }
}

// === impl Destination ===

impl Destination {
    /// The route for a path (the part before `?`) to this destination: the longest
    /// matching prefix of its routes (R3), else its first route.
    pub fn route(&self, path: &[u8]) -> RouteId {
        self.table.lookup(path).unwrap_or(self.first)
    }
}

#[cfg(test)]
mod tests;
