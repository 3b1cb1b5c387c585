//! Which route a request belongs to, for the per-route statistics.
//!
//! The filter's default configuration is the one source of the six routes, and its
//! own [`RouteTable`] does the matching, so a path counts under the route the filter
//! would give it: segment-aware (`/api/v1/orders/7` is `orders`, `/api/v1/ordersX`
//! is not), longest prefix first, the query ignored. Anything else is `other`.

use c4mesh_filter_core::{Config, RouteTable};

/// The routes requests are counted under; index `len()` is `other`.
#[derive(Debug, Clone)]
pub struct Routes {
    names: Vec<String>,
    prefixes: Vec<String>,
    table: RouteTable,
}

/// The name of the catch-all route.
pub const OTHER: &str = "other";

impl Routes {
    /// The filter's default routes (customers, orders, products, payments,
    /// recommendations, saga).
    pub fn defaults() -> Routes {
        let routes = Config::defaults().routes;
        Routes::new(routes.into_iter().map(|r| (r.name, r.prefix)).collect())
    }

    /// Routes from `(name, prefix)` pairs, prefixes without a trailing `/`.
    pub fn new(routes: Vec<(String, String)>) -> Routes {
        let (names, prefixes): (Vec<_>, Vec<_>) = routes.into_iter().unzip();
        let table = RouteTable::new(prefixes.iter().map(String::as_str));
        Routes {
            names,
            prefixes,
            table,
        }
    }

    /// Number of named routes (`other` not included).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The route index of a request path; `len()` for `other`.
    pub fn classify(&self, path: &str) -> usize {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        self.table
            .lookup(path.as_bytes())
            .unwrap_or(self.names.len())
    }

    /// The name of route `index` (`other` past the named routes).
    pub fn name(&self, index: usize) -> &str {
        self.names.get(index).map_or(OTHER, String::as_str)
    }

    /// The prefix of route `index`, if it is a named route.
    pub fn prefix(&self, index: usize) -> Option<&str> {
        self.prefixes.get(index).map(String::as_str)
    }
}
