//! The route table (R3): segment-aware longest-prefix match on the raw path.
//!
//! A prefix `P` matches `X` iff `X == P` or `X` starts with `P/`. So the candidates
//! for a path are the path itself and its cuts at each `/`; the longest candidate that
//! is a configured prefix wins. With prefixes in a hash map that is one lookup per
//! segment (bounded by the longest prefix), whatever the number of routes, and the
//! match borrows the path: nothing is allocated per request.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Index of a route in the configuration's route list.
pub type RouteId = usize;

/// Prefixes to route indices.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteTable {
    by_prefix: HashMap<Box<[u8]>, RouteId, BuildHasherDefault<Fnv>>,
    /// Length of the longest prefix: no cut beyond it can match.
    longest: usize,
    /// The route with prefix `/`, which matches every path.
    root: Option<RouteId>,
}

impl RouteTable {
    /// Builds the table from prefixes in route order (already validated, no trailing
    /// `/` except for the root prefix `/`).
    pub fn new<'a>(prefixes: impl IntoIterator<Item = &'a str>) -> RouteTable {
        RouteTable::with_ids(prefixes.into_iter().enumerate())
    }

    /// Builds the table from `(route id, prefix)` pairs: a table over some of the
    /// configuration's routes (one destination's, in sidecar mode) that still answers
    /// with their configuration indices.
    pub fn with_ids<'a>(routes: impl IntoIterator<Item = (RouteId, &'a str)>) -> RouteTable {
        let mut table = RouteTable::default();
        for (id, prefix) in routes {
            if prefix == "/" {
                table.root = Some(id);
            } else {
                table.longest = table.longest.max(prefix.len());
                table.by_prefix.insert(prefix.as_bytes().into(), id);
            }
        }
        table
    }

    /// The route for a path (the part before `?`), longest prefix first.
    pub fn lookup(&self, path: &[u8]) -> Option<RouteId> {
        if path.len() <= self.longest {
            if let Some(&id) = self.by_prefix.get(path) {
                return Some(id);
            }
        }
        let mut end = path.len().min(self.longest + 1);
        while let Some(slash) = path[..end].iter().rposition(|&b| b == b'/') {
            if slash == 0 {
                break;
            }
            if let Some(&id) = self.by_prefix.get(&path[..slash]) {
                return Some(id);
            }
            end = slash;
        }
        self.root
    }
}

/// FNV-1a: short keys, no DoS concern (keys come from the configuration).
#[derive(Default)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        RouteTable::new([
            "/api/v1/customers",
            "/api/v1/orders",
            "/api/v1/orders/archive",
            "/api/v1/saga",
        ])
    }

    #[test]
    fn segment_aware_longest_prefix() {
        let t = table();
        assert_eq!(t.lookup(b"/api/v1/customers"), Some(0));
        assert_eq!(t.lookup(b"/api/v1/customers/42"), Some(0));
        assert_eq!(t.lookup(b"/api/v1/customers/"), Some(0));
        assert_eq!(t.lookup(b"/api/v1/customersX"), None);
        assert_eq!(t.lookup(b"/api/v1/orders/archive/7"), Some(2));
        assert_eq!(t.lookup(b"/api/v1/orders/archived"), Some(1));
        assert_eq!(t.lookup(b"/api/v1/orders"), Some(1));
        assert_eq!(t.lookup(b"/api/v1"), None);
        assert_eq!(t.lookup(b"/"), None);
        assert_eq!(
            t.lookup(b"/API/v1/orders"),
            None,
            "matching is case-sensitive"
        );
        assert_eq!(t.lookup(b"/api/v1/saga/a/b/c/d/e/f/g/h"), Some(3));
    }

    #[test]
    fn root_prefix_catches_the_rest() {
        let t = RouteTable::new(["/api/v1/orders", "/"]);
        assert_eq!(t.lookup(b"/api/v1/orders/1"), Some(0));
        assert_eq!(t.lookup(b"/healthz"), Some(1));
        assert_eq!(t.lookup(b"/"), Some(1));
    }

    #[test]
    fn a_table_over_some_routes_answers_with_their_ids() {
        let t = RouteTable::with_ids([(3, "/api/v1/orders"), (7, "/api/v1/orders/archive")]);
        assert_eq!(t.lookup(b"/api/v1/orders/1"), Some(3));
        assert_eq!(t.lookup(b"/api/v1/orders/archive/1"), Some(7));
        assert_eq!(t.lookup(b"/api/v1/payments"), None);
    }

    #[test]
    fn a_thousand_routes_still_match_exactly() {
        let prefixes: Vec<String> = (0..1000).map(|i| format!("/svc{i}/v1")).collect();
        let t = RouteTable::new(prefixes.iter().map(String::as_str));
        assert_eq!(t.lookup(b"/svc999/v1/items/3"), Some(999));
        assert_eq!(t.lookup(b"/svc5/v1"), Some(5));
        assert_eq!(t.lookup(b"/svc5/v2"), None);
    }
}
