//! R2 against its oracle: a path the filter accepts routes the same under every
//! independent reading (RFC 3986 normaliser, percent-decoders strict and lenient,
//! servlet container); the check never panics.
#![no_main]

use c4mesh_filter_core::path::{route, route_part};
use c4mesh_filter_core::RouteTable;
use c4mesh_fuzz::MESH_PREFIXES;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static TABLE: OnceLock<RouteTable> = OnceLock::new();

fuzz_target!(|target: &[u8]| {
    let table = TABLE.get_or_init(|| RouteTable::new(MESH_PREFIXES.iter().copied()));
    let Ok(routed) = route(target, |p| table.lookup(p)) else {
        return;
    };
    let path = route_part(target);
    for reading in c4mesh_path_readings::readings(path) {
        assert_eq!(
            table.lookup(&reading.path),
            routed,
            "{:?} routes differently for {}: {:?}",
            String::from_utf8_lossy(target),
            reading.who,
            String::from_utf8_lossy(&reading.path)
        );
    }
});
