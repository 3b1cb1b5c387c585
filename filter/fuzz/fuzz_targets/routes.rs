//! The route table against a linear scan of R3: a prefix P matches X iff X == P or X
//! starts with P + "/", the longest match wins, "/" matches every path.
#![no_main]

use c4mesh_filter_core::RouteTable;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    prefixes: Vec<Vec<u8>>,
    paths: Vec<Vec<u8>>,
}

/// Segments from a small alphabet, so that prefixes and paths share them.
fn spell(units: &[u8]) -> String {
    const SEGMENTS: &[&str] = &["api", "v1", "orders", "o", "x", "", "orders2", "a.b", "%2f"];
    let mut out = String::new();
    for &u in units.iter().take(6) {
        out.push('/');
        out.push_str(SEGMENTS[usize::from(u) % SEGMENTS.len()]);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn linear(prefixes: &[String], path: &[u8]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (id, prefix) in prefixes.iter().enumerate() {
        let p = prefix.as_bytes();
        let matches = prefix == "/"
            || path == p
            || (path.starts_with(p) && path.get(p.len()) == Some(&b'/'));
        if matches && best.is_none_or(|b| prefixes[b].len() < prefix.len()) {
            best = Some(id);
        }
    }
    best
}

fuzz_target!(|input: Input| {
    let mut prefixes: Vec<String> = Vec::new();
    for units in input.prefixes.iter().take(64) {
        let prefix = spell(units);
        // A configuration names each prefix once, and a prefix ends without "/".
        if !prefixes.contains(&prefix) && (prefix == "/" || !prefix.ends_with('/')) {
            prefixes.push(prefix);
        }
    }
    let table = RouteTable::new(prefixes.iter().map(String::as_str));
    for units in input.paths.iter().take(16) {
        let path = spell(units);
        assert_eq!(
            table.lookup(path.as_bytes()),
            linear(&prefixes, path.as_bytes()),
            "{path} with prefixes {prefixes:?}"
        );
    }
});
