use super::*;

#[test]
fn every_metric_of_the_filter_is_described() {
    let metrics = metrics().expect("every core metric has a description");
    assert_eq!(
        metrics.len(),
        ROUTE_COUNTERS.len() + 1 + GLOBAL_COUNTERS.len() + GLOBAL_GAUGES.len()
    );
    assert!(metrics.iter().all(|m| !m.help.is_empty()));
}

#[test]
fn envoy_names_filter_stats_without_its_namespace_and_prefix() {
    assert_eq!(
        prometheus_name("wasmcustom.c4mesh.route.orders.requests_total"),
        "c4mesh_route_orders_requests_total"
    );
    assert_eq!(
        prometheus_name("c4mesh.route.order-v2.circuit_open"),
        "c4mesh_route_order_v2_circuit_open"
    );
    let gauge = metrics()
        .expect("metrics")
        .into_iter()
        .find(|m| m.name == "circuit_open")
        .expect("the gauge");
    assert_eq!(gauge.series("saga"), "c4mesh_route_saga_circuit_open");
}

#[test]
fn the_annotation_includes_the_filter_stats_and_reads_back_as_proxy_config() {
    let annotation = proxy_config_annotation().expect("annotation");
    assert_eq!(
        annotation,
        "proxyStatsMatcher:\n  inclusionPrefixes:\n  - wasmcustom.c4mesh\n"
    );
    let typed: ProxyConfig = serde_saphyr::from_str(&annotation).expect("typed");
    assert_eq!(typed.proxy_stats_matcher.inclusion_prefixes, [STATS_PREFIX]);
    assert_eq!(includes_filter_stats(&annotation), Ok(true));
    for covering in ["wasm", "wasmcustom.", "wasmcustom.c4mesh."] {
        let value = format!("proxyStatsMatcher: {{inclusionPrefixes: [{covering:?}]}}");
        assert_eq!(includes_filter_stats(&value), Ok(true), "{value}");
    }
    for missing in [
        "proxyStatsMatcher: {inclusionPrefixes: [wasmcustom.c4mesh.route]}",
        "proxyStatsMatcher: {inclusionPrefixes: [cluster.outbound]}",
        "concurrency: 2",
        "{}",
    ] {
        assert_eq!(includes_filter_stats(missing), Ok(false), "{missing}");
    }
    assert!(includes_filter_stats("- a list").is_err());
    assert!(includes_filter_stats("{unclosed").is_err());
}

#[test]
fn the_filter_series_of_an_expression_are_found() {
    assert_eq!(
        filter_series(
            "sum(rate(c4mesh_route_orders_requests_total[1m])) - c4mesh_route:requests:rate1m \
             / not_c4mesh_x + c4mesh_bad_path_total"
        ),
        [
            "c4mesh_route_orders_requests_total",
            "c4mesh_route:requests:rate1m",
            "c4mesh_bad_path_total"
        ]
    );
    assert!(filter_series("up").is_empty());
}
