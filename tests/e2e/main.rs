//! The filter in a real Envoy 1.40 (2 workers) with real loopback upstreams.
//!
//! Each test starts its own mesh (ports and Envoy base ids are unique), so they run in
//! parallel. Envoy is required: a missing Envoy fails the tests with the fix.

mod budget;
mod circuit;
mod failure;
mod hops;
mod limits;
mod observability;
mod robustness;
mod routing;
mod soak;
mod updates;

use c4mesh_mesh::Response;

/// The JSON `error` of a local reply, checking the reply's shape on the way.
fn local_reply(response: &Response, status: u16, reason: &str) {
    assert_eq!(response.status, status, "{response:?}");
    assert_eq!(response.header("x-c4-reason"), Some(reason), "{response:?}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json().expect("local reply body");
    assert_eq!(body["error"], reason, "{body}");
}
