use super::*;

fn err(json: &str) -> String {
    Config::parse(json.as_bytes()).unwrap_err().to_string()
}

#[test]
fn empty_absent_and_written_out_defaults_are_the_same() {
    let defaults = Config::defaults();
    assert_eq!(Config::parse(b"").unwrap(), defaults);
    assert_eq!(Config::parse(b"  \n").unwrap(), defaults);
    assert_eq!(Config::parse(b"{}").unwrap(), defaults);
    assert_eq!(
        Config::parse(DEFAULT_CONFIG_JSON.as_bytes()).unwrap(),
        defaults
    );
}

#[test]
fn defaults_are_the_mesh_of_the_spec() {
    let c = Config::defaults();
    assert!(c.hosts.any);
    assert_eq!(c.hosts.exact, vec!["api.c4ang.com"]);
    assert_eq!(c.unmatched, Unmatched::Reject);
    assert!(!c.debug_headers);
    let names: Vec<_> = c
        .routes
        .iter()
        .map(|r| (r.name.as_str(), r.prefix.as_str(), r.service.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("customers", "/api/v1/customers", "customer-service"),
            ("orders", "/api/v1/orders", "order-service"),
            ("products", "/api/v1/products", "product-service"),
            ("payments", "/api/v1/payments", "payment-service"),
            (
                "recommendations",
                "/api/v1/recommendations",
                "recommendation-service"
            ),
            ("saga", "/api/v1/saga", "saga-tracker"),
        ]
    );
    for r in &c.routes {
        assert_eq!(r.methods, None);
        assert_eq!(r.timeout_ms, 10_000);
        assert_eq!(
            r.retry,
            RetryPolicy {
                attempts: 3,
                timeout_ms: 10_000,
                retry_on: "5xx,reset,connect-failure,refused-stream".into()
            }
        );
        assert_eq!(
            r.budget,
            Some(BudgetPolicy {
                ratio_ppm: 200_000,
                min_per_second_ppm: 10_000_000,
                window_ms: 10_000
            })
        );
        assert_eq!(r.budget.unwrap().reserve_ppm(), 100_000_000);
        assert_eq!(
            r.outlier,
            OutlierPolicy {
                consecutive_5xx: 5,
                base_ejection_ms: 30_000,
                max_ejection_ms: 300_000
            }
        );
    }
}

#[test]
fn mode_and_namespace_default_to_the_gateway_of_ecommerce() {
    let c = Config::defaults();
    assert_eq!(c.mode, Mode::Gateway);
    assert_eq!(c.namespace, "ecommerce");
    assert_eq!(c.destinations, Destinations::default());
    assert!(
        !DEFAULT_CONFIG_JSON.contains("\"mode\"") && !DEFAULT_CONFIG_JSON.contains("namespace"),
        "the shipped document stays the SPEC's"
    );
    assert_eq!(Config::parse(br#"{"mode": "gateway"}"#).unwrap(), c);
}

#[test]
fn sidecar_mode_groups_the_routes_by_destination() {
    let c = Config::parse(br#"{"mode": "sidecar", "namespace": "shop", "retry": {"attempts": 2}}"#)
        .unwrap();
    assert_eq!(c.mode, Mode::Sidecar);
    assert_eq!(c.namespace, "shop");
    assert_eq!(c.routes.len(), 6);
    assert_eq!(c.routes[3].retry.attempts, 2);
    let payments = c
        .destinations
        .lookup(Some(b"payment-service.shop.svc.cluster.local:8080"))
        .unwrap();
    assert_eq!(payments.route(b"/anything"), 3);
    assert!(c
        .destinations
        .lookup(Some(b"payment-service.ecommerce"))
        .is_none());
    // hosts and unmatched are still validated, though only the gateway uses them.
    assert!(Config::parse(br#"{"mode": "sidecar", "unmatched": "drop"}"#).is_err());
}

#[test]
fn the_sidecar_document_is_sidecar_mode_with_istio_s_in_mesh_retries() {
    let c = Config::parse(SIDECAR_CONFIG_JSON.as_bytes()).unwrap();
    assert_eq!(c.mode, Mode::Sidecar);
    assert_eq!(c.namespace, DEFAULT_NAMESPACE);
    for r in &c.routes {
        assert_eq!(r.retry.attempts, 2);
        assert_eq!(
            r.retry.retry_on,
            "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
        );
    }
    assert_eq!(c.routes.len(), Config::defaults().routes.len());
}

#[test]
fn istio_in_mesh_retry_conditions_are_known() {
    let c = Config::parse(
        br#"{"retry": {"retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"}}"#,
    )
    .unwrap();
    assert_eq!(
        c.routes[0].retry.retry_on,
        "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    );
    let c = Config::parse(
        br#"{"retry": {"retry_on": "deadline-exceeded, internal, resource-exhausted"}}"#,
    )
    .unwrap();
    assert_eq!(
        c.routes[0].retry.retry_on,
        "deadline-exceeded,internal,resource-exhausted"
    );
}

#[test]
fn partial_objects_inherit_field_by_field() {
    let c = Config::parse(br#"{"retry": {"attempts": 2}, "outlier": {"base_ejection": "2s"}}"#)
        .unwrap();
    let r = &c.routes[0];
    assert_eq!(r.retry.attempts, 2);
    assert_eq!(r.retry.timeout_ms, 10_000);
    assert_eq!(r.outlier.base_ejection_ms, 2_000);
    assert_eq!(r.outlier.consecutive_5xx, 5);
    assert_eq!(c.routes.len(), 6);
}

#[test]
fn routes_override_retry_budget_outlier_methods_and_timeout() {
    let c = Config::parse(
        br#"{
          "retry": {"attempts": 2, "timeout": "5s"},
          "retry_budget": {"ratio": 0.5},
          "routes": [
            {"name": "a", "prefix": "/a", "service": "s", "retry": {"attempts": 1}, "timeout": "250ms",
             "methods": ["GET", "GET", "POST"], "retry_budget": {"window": "1m"}, "outlier": {"consecutive_5xx": 3}},
            {"name": "b", "prefix": "/b/", "service": "s", "retry_budget": null, "outlier": {"consecutive_5xx": 0}},
            {"name": "c", "prefix": "/", "service": "s"}
          ]}"#,
    )
    .unwrap();
    let (a, b, root) = (&c.routes[0], &c.routes[1], &c.routes[2]);
    assert_eq!(a.retry.attempts, 1);
    assert_eq!(a.retry.timeout_ms, 5_000, "inherits the top-level retry");
    assert_eq!(a.timeout_ms, 250);
    assert_eq!(a.methods.as_ref().unwrap().allow_header, "GET, POST");
    let budget = a.budget.unwrap();
    assert_eq!((budget.ratio_ppm, budget.window_ms), (500_000, 60_000));
    assert_eq!(a.outlier.consecutive_5xx, 3);
    assert_eq!(a.outlier.base_ejection_ms, 30_000);
    assert_eq!(
        b.prefix, "/b",
        "a trailing slash is the same segment prefix"
    );
    assert_eq!(b.budget, None);
    assert!(!b.outlier.enabled());
    assert_eq!(
        b.timeout_ms, 5_000,
        "route timeout defaults to its retry timeout"
    );
    assert_eq!(root.prefix, "/");
    assert_eq!(c.table.lookup(b"/b/x"), Some(1));
    assert_eq!(c.table.lookup(b"/zzz"), Some(2));
}

#[test]
fn null_budget_switches_it_off_unless_a_route_brings_its_own() {
    let c = Config::parse(
        br#"{"retry_budget": null, "routes": [
            {"name": "a", "prefix": "/a", "service": "s"},
            {"name": "b", "prefix": "/b", "service": "s", "retry_budget": {"ratio": 0.1}}]}"#,
    )
    .unwrap();
    assert_eq!(c.routes[0].budget, None);
    let b = c.routes[1].budget.unwrap();
    assert_eq!(b.ratio_ppm, 100_000);
    assert_eq!(
        b.min_per_second_ppm, 10_000_000,
        "rest from the default budget"
    );
}

#[test]
fn the_proxy_statement_and_the_route_header_are_off_unless_given() {
    let defaults = Config::defaults();
    assert!(!defaults.route_header);
    assert_eq!(defaults.proxy_applies, ProxyApplies::default());
    let config =
        Config::parse(br#"{"proxy_applies": ["timeout", "retries"], "route_header": true}"#)
            .unwrap();
    assert!(config.route_header);
    assert_eq!(
        config.proxy_applies,
        ProxyApplies {
            retries: true,
            timeout: true
        }
    );
    assert_eq!(
        Config::parse(br#"{"proxy_applies": []}"#).unwrap(),
        defaults
    );
}

#[test]
fn every_invalid_case_names_its_field() {
    let cases: &[(&str, &str)] = &[
        (
            "{",
            "invalid JSON: EOF while parsing an object at line 1 column 1",
        ),
        ("[]", "expected an object, got an array"),
        (r#"{"hostz": []}"#, "hostz: unknown field"),
        (
            r#"{"hosts": "api"}"#,
            "hosts: expected an array, got a string",
        ),
        (r#"{"hosts": []}"#, "hosts: must list at least one host"),
        (
            r#"{"hosts": ["api.c4ang.com:443"]}"#,
            "hosts[0]: must be \"*\", \"*.domain\" or a host name without port",
        ),
        (r#"{"hosts": ["*."]}"#, "hosts[0]: must be"),
        (
            r#"{"unmatched": "drop"}"#,
            "unmatched: must be \"reject\" or \"pass\", got \"drop\"",
        ),
        (
            r#"{"mode": "x"}"#,
            "mode: must be \"gateway\" or \"sidecar\", got \"x\"",
        ),
        (r#"{"mode": 1}"#, "mode: expected a string, got an integer"),
        (
            r#"{"route_header": "yes"}"#,
            "route_header: expected a boolean, got a string",
        ),
        (
            r#"{"proxy_applies": "retries"}"#,
            "proxy_applies: expected an array, got a string",
        ),
        (
            r#"{"proxy_applies": ["retries", "budget"]}"#,
            "proxy_applies[1]: must be \"retries\" or \"timeout\", got \"budget\"",
        ),
        (
            r#"{"proxy_applies": ["timeout", "timeout"]}"#,
            "proxy_applies[1]: listed twice",
        ),
        (r#"{"mode": null}"#, "mode: expected a string, got null"),
        (
            r#"{"namespace": "Ecommerce"}"#,
            "namespace: must be a Kubernetes namespace (1 to 63 of a-z, 0-9 and '-', starting and ending with a letter or digit), got \"Ecommerce\"",
        ),
        (r#"{"namespace": ""}"#, "namespace: must be a Kubernetes namespace"),
        (r#"{"namespace": "-shop"}"#, "namespace: must be a Kubernetes namespace"),
        (r#"{"namespace": "shop-"}"#, "namespace: must be a Kubernetes namespace"),
        (r#"{"namespace": "ecommerce.svc"}"#, "namespace: must be a Kubernetes namespace"),
        (
            r#"{"namespace": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#,
            "namespace: must be a Kubernetes namespace",
        ),
        (r#"{"namespace": 7}"#, "namespace: expected a string, got an integer"),
        (
            r#"{"mode": "sidecar", "routes": [{"name": "a", "prefix": "/a", "service": "Order-Service"}]}"#,
            "routes[0].service: must be a Kubernetes service name in sidecar mode (1 to 63 of a-z, 0-9 and '-', starting with a letter, ending with a letter or digit), got \"Order-Service\"",
        ),
        (
            r#"{"mode": "sidecar", "routes": [{"name": "a", "prefix": "/a", "service": "order-service.ecommerce"}]}"#,
            "routes[0].service: must be a Kubernetes service name in sidecar mode",
        ),
        (
            r#"{"mode": "sidecar", "routes": [{"name": "a", "prefix": "/a", "service": "10"}]}"#,
            "routes[0].service: must be a Kubernetes service name in sidecar mode",
        ),
        (
            r#"{"debug_headers": 1}"#,
            "debug_headers: expected a boolean, got an integer",
        ),
        (
            r#"{"retry_budget": {"ratio": 1.5}}"#,
            "retry_budget.ratio: must be within [0, 1], got 1.5",
        ),
        (
            r#"{"retry_budget": {"ratio": -0.1}}"#,
            "retry_budget.ratio: must be within [0, 1], got -0.1",
        ),
        (
            r#"{"retry_budget": {"ratio": "0.2"}}"#,
            "retry_budget.ratio: expected a number, got a string",
        ),
        (
            r#"{"retry_budget": {"min_retries_per_second": -1}}"#,
            "retry_budget.min_retries_per_second: must be within [0, 1000000], got -1",
        ),
        (
            r#"{"retry_budget": {"window": "0s"}}"#,
            "retry_budget.window: must be at least 1ms, got \"0s\"",
        ),
        (
            r#"{"retry_budget": {"window": 10}}"#,
            "retry_budget.window: expected a duration string such as \"10s\", got an integer",
        ),
        (
            r#"{"retry_budget": {"windw": "1s"}}"#,
            "retry_budget.windw: unknown field",
        ),
        (
            r#"{"retry_budget": 3}"#,
            "retry_budget: expected an object, got an integer",
        ),
        (
            r#"{"retry": {"attempts": 11}}"#,
            "retry.attempts: must be within [0, 10], got 11",
        ),
        (
            r#"{"retry": {"attempts": 2.5}}"#,
            "retry.attempts: expected an integer, got a number",
        ),
        (
            r#"{"retry": {"timeout": "10"}}"#,
            "retry.timeout: must be a duration such as",
        ),
        (
            r#"{"retry": {"retry_on": "5xx,teapot"}}"#,
            "retry.retry_on: unknown retry condition \"teapot\"",
        ),
        (
            r#"{"outlier": {"consecutive_5xx": -1}}"#,
            "outlier.consecutive_5xx: must be within [0, 10000], got -1",
        ),
        (
            r#"{"outlier": {"base_ejection": "1m", "max_ejection": "30s"}}"#,
            "outlier.max_ejection: must be at least base_ejection (1m), got 30s",
        ),
        (
            r#"{"routes": {}}"#,
            "routes: expected an array, got an object",
        ),
        (
            r#"{"routes": [{"prefix": "/a", "service": "s"}]}"#,
            "routes[0].name: is required",
        ),
        (
            r#"{"routes": [{"name": "a", "service": "s"}]}"#,
            "routes[0].prefix: is required",
        ),
        (
            r#"{"routes": [{"name": "a", "prefix": "/a"}]}"#,
            "routes[0].service: is required",
        ),
        (
            r#"{"routes": [{"name": "a.b", "prefix": "/a", "service": "s"}]}"#,
            "routes[0].name: must be 1 to 64 letters, digits, '-' or '_', got \"a.b\"",
        ),
        (
            r#"{"routes": [{"name": "a", "prefix": "", "service": "s"}]}"#,
            "routes[0].prefix: must not be empty",
        ),
        (
            r#"{"routes": [{"name": "a", "prefix": "api", "service": "s"}]}"#,
            "routes[0].prefix: must start with '/', got \"api\"",
        ),
        (
            r#"{"routes": [{"name": "a", "prefix": "/a/../b", "service": "s"}]}"#,
            "routes[0].prefix: must be a plain path",
        ),
        (
            r#"{"routes": [{"name": "a", "prefix": "/a?x", "service": "s"}]}"#,
            "routes[0].prefix: must be a plain path",
        ),
        (
            r#"{"routes": [{"name": "a", "prefix": "/a", "service": ""}]}"#,
            "routes[0].service: must not be empty",
        ),
        (
            r#"{"routes": [{"name": "a", "prefix": "/a", "service": "s"}, {"name": "a", "prefix": "/b", "service": "s"}]}"#,
            "routes[1].name: duplicate route name \"a\" (also routes[0])",
        ),
        (
            r#"{"routes": [{"name": "a", "prefix": "/a", "service": "s"}, {"name": "b", "prefix": "/a/", "service": "s"}]}"#,
            "routes[1].prefix: duplicate prefix \"/a\" (also routes[0])",
        ),
        (
            r#"{"routes": [{"name": "a", "prefix": "/a", "service": "s", "methods": []}]}"#,
            "routes[0].methods: must list at least one method",
        ),
        (
            r#"{"routes": [{"name": "a", "prefix": "/a", "service": "s", "methods": ["get"]}]}"#,
            "routes[0].methods[0]: must be an upper-case HTTP method",
        ),
        (
            r#"{"routes": [{"name": "a", "prefix": "/a", "service": "s", "timeout": "0ms"}]}"#,
            "routes[0].timeout: must be at least 1ms",
        ),
        (
            r#"{"routes": [{"name": "a", "prefix": "/a", "service": "s", "retry": {"attempts": 99}}]}"#,
            "routes[0].retry.attempts: must be within [0, 10], got 99",
        ),
        (
            r#"{"routes": [{"name": "a", "prefix": "/a", "service": "s", "retry_budget": {"ratio": 2}}]}"#,
            "routes[0].retry_budget.ratio: must be within [0, 1], got 2",
        ),
        (
            r#"{"routes": [{"name": "a", "prefix": "/a", "service": "s", "outlier": {"consecutive_5xx": "5"}}]}"#,
            "routes[0].outlier.consecutive_5xx: expected an integer, got a string",
        ),
        (
            r#"{"routes": [{"name": "a", "prefix": "/a", "service": "s", "weight": 1}]}"#,
            "routes[0].weight: unknown field",
        ),
        (
            r#"{"routes": [7]}"#,
            "routes[0]: expected an object, got an integer",
        ),
    ];
    for (json, expected) in cases {
        let message = err(json);
        assert!(
            message.starts_with(expected),
            "{json}\n  gave:     {message}\n  expected: {expected}"
        );
    }
}

#[test]
fn no_configuration_panics() {
    // Odd but well-formed inputs: every one is accepted or rejected, never a panic.
    for json in [
        "null",
        "0",
        "\"\"",
        "{\"routes\": [{}]}",
        "{\"retry\": null}",
        "{\"outlier\": null}",
        "{\"retry_budget\": {\"ratio\": 1e308}}",
        "{\"retry\": {\"attempts\": 18446744073709551615}}",
        "{\"routes\": [{\"name\": \"a\", \"prefix\": \"/\\u0000\", \"service\": \"s\"}]}",
        "\u{feff}{}",
        "{\"retry\": {\"timeout\": \"99999999999999999999h\"}}",
    ] {
        let _ = Config::parse(json.as_bytes());
    }
    assert!(Config::parse(&[0xff, 0xfe, b'{']).is_err());
}
