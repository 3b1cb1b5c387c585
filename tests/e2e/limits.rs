//! 2.7: a client is never refused because of what the filter adds. Envoy's codecs
//! refuse a request with more than 100 headers (431); every proxy a request crosses
//! adds some of its own, and the next one counts them. Here a gateway forwards to an
//! Envoy standing in for the pod's inbound sidecar, with Envoy's default limits; the
//! gateway with the filter must pass every request the gateway with the no-op module
//! passes, header count for header count.

use c4mesh_mesh::envoy::{EnvoyConfig, ServiceRoute};
use c4mesh_mesh::{Behaviour, Client, Envoy, Upstream, Wasm};
use std::net::SocketAddr;

fn one_service(wasm: Wasm, host: SocketAddr) -> EnvoyConfig {
    EnvoyConfig::gateway(
        1,
        wasm,
        vec![ServiceRoute {
            name: "order-service".into(),
            prefix: "/api/v1/orders".into(),
            hosts: vec![host],
        }],
    )
    .expect("the gateway's plan")
}

/// The most client headers (besides `host` and `connection`) with which a request
/// through `gateway` is still answered 200, and the statuses by header count.
fn most_headers_served(gateway: &Envoy) -> (usize, Vec<(usize, u16)>) {
    let client = Client::new(gateway.listener);
    let names: Vec<String> = (0..100).map(|i| format!("x-client-{i}")).collect();
    let mut statuses = Vec::new();
    let mut most = 0;
    for count in 80..=100 {
        let headers: Vec<(&str, &str)> = names[..count].iter().map(|n| (n.as_str(), "v")).collect();
        let status = client
            .get("/api/v1/orders/1", &headers)
            .expect("a response")
            .status;
        statuses.push((count, status));
        if status == 200 {
            most = count;
        }
    }
    (most, statuses)
}

#[test]
fn the_filter_adds_no_header_that_gets_a_request_refused_downstream() {
    let service = Upstream::start("order-service", Behaviour::status(200)).expect("upstream");
    let sidecar =
        Envoy::start(&one_service(Wasm::None, service.addr())).expect("the inbound sidecar");
    let noop = Envoy::start(&one_service(
        Wasm::noop().expect("no-op module"),
        sidecar.listener,
    ))
    .expect("gateway with the no-op module");
    // The route header asked for: the one header the filter adds that leaves the proxy.
    let filter = Envoy::start(&one_service(
        Wasm::filter(r#"{"route_header": true}"#).expect("filter"),
        sidecar.listener,
    ))
    .expect("gateway with the filter");

    let (noop_most, noop_statuses) = most_headers_served(&noop);
    let (filter_most, filter_statuses) = most_headers_served(&filter);
    // The limit is really reached within the range tried, by both.
    assert!(
        noop_most < 100 && noop_statuses.iter().any(|(_, s)| *s == 431),
        "the no-op gateway never met the limit: {noop_statuses:?}"
    );
    assert_eq!(
        filter_statuses, noop_statuses,
        "with the filter (served up to {filter_most} headers) against the no-op module (up to {noop_most})"
    );

    // Below the limit the filter still names the route to the service.
    let client = Client::new(filter.listener);
    assert_eq!(
        client
            .get("/api/v1/orders/1", &[])
            .expect("a response")
            .status,
        200
    );
    let seen = service.seen();
    let last = seen.last().expect("the service saw requests");
    assert_eq!(last.header("x-c4-route"), Some("orders"));
}
