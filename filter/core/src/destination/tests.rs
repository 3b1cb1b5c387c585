use super::*;
use crate::config::{Config, Mode};

/// The default routes in sidecar mode, plus a second route of `order-service`
/// written after the others.
fn sidecar() -> Config {
    let config = Config::parse(
        br#"{"mode": "sidecar", "routes": [
          {"name": "customers", "prefix": "/api/v1/customers", "service": "customer-service"},
          {"name": "orders",    "prefix": "/api/v1/orders",    "service": "order-service"},
          {"name": "payments",  "prefix": "/api/v1/payments",  "service": "payment-service"},
          {"name": "archive",   "prefix": "/api/v1/orders/archive", "service": "order-service"}
        ]}"#,
    )
    .unwrap();
    assert_eq!(config.mode, Mode::Sidecar);
    config
}

/// The route a call with this authority and path takes; `None` when the authority
/// names no destination.
fn route(config: &Config, authority: Option<&str>, path: &str) -> Option<RouteId> {
    config
        .destinations
        .lookup(authority.map(str::as_bytes))
        .map(|destination| destination.route(path.as_bytes()))
}

/// Every authority in `authorities` gives `expected` for `path`.
fn each_gives(c: &Config, authorities: &[&str], path: &str, expected: Option<RouteId>) {
    for authority in authorities {
        assert_eq!(route(c, Some(authority), path), expected, "{authority}");
    }
}

#[test]
fn every_spelling_of_a_service_names_it() {
    let spellings = [
        "payment-service",
        "payment-service.ecommerce",
        "payment-service.ecommerce.svc",
        "payment-service.ecommerce.svc.cluster.local",
        "payment-service:8080",
        "payment-service.ecommerce:80",
        "payment-service.ecommerce.svc:8080",
        "payment-service.ecommerce.svc.cluster.local:8080",
        "PAYMENT-SERVICE.Ecommerce.SVC.Cluster.Local",
        "Payment-Service:8080",
        "payment-service.",
        "payment-service.ecommerce.svc.cluster.local.",
        "payment-service.ecommerce.svc.cluster.local.:443",
    ];
    each_gives(&sidecar(), &spellings, "/api/v1/payments/1", Some(2));
}

#[test]
fn anything_else_is_no_destination() {
    let c = sidecar();
    let others = [
        "order-service.other",
        "order-service.other.svc.cluster.local",
        "order-service.ecommerce.svc.cluster",
        "order-service.ecommerce.svc.cluster.local.evil",
        "order-service.ecommerce.sv",
        "order-service.ecommerc",
        "order-service..ecommerce",
        "evil.order-service",
        "evil.order-service.ecommerce",
        "order-servicex",
        "xorder-service",
        "order",
        "api.c4ang.com",
        "10.0.0.1",
        "10.0.0.1:8080",
        "[::1]:8080",
        "[fd00::1]",
        "",
        ":8080",
        ".",
        "istiod.istio-system.svc:15012",
        "a-name-longer-than-any-label-can-be-so-it-never-reaches-the-lookup-at-all",
    ];
    each_gives(&c, &others, "/api/v1/orders", None);
    assert_eq!(route(&c, None, "/api/v1/orders"), None);
}

#[test]
fn the_namespace_is_the_configured_one() {
    let c = Config::parse(br#"{"mode": "sidecar", "namespace": "shop"}"#).unwrap();
    assert_eq!(route(&c, Some("order-service.shop.svc"), "/"), Some(1));
    assert_eq!(route(&c, Some("order-service.ecommerce.svc"), "/"), None);
    assert_eq!(
        route(&c, Some("order-service"), "/"),
        Some(1),
        "the bare name is the caller's namespace"
    );
}

#[test]
fn the_path_picks_among_one_service_s_routes_else_its_first() {
    let c = sidecar();
    let orders = Some("order-service.ecommerce");
    assert_eq!(route(&c, orders, "/api/v1/orders/7"), Some(1));
    assert_eq!(route(&c, orders, "/api/v1/orders/archive/7"), Some(3));
    assert_eq!(route(&c, orders, "/api/v1/orders/archived"), Some(1));
    assert_eq!(route(&c, orders, "/healthz"), Some(1), "the first route");
    assert_eq!(
        route(&c, orders, "/API/v1/orders/archive"),
        Some(1),
        "prefixes match case-sensitively"
    );
    assert_eq!(
        route(&c, orders, "/api/v1/payments/1"),
        Some(1),
        "another service's prefix does not leave the destination"
    );
}

#[test]
fn the_first_route_is_the_first_in_configuration_order() {
    let c = Config::parse(
        br#"{"mode": "sidecar", "routes": [
          {"name": "deep", "prefix": "/a/b", "service": "svc"},
          {"name": "root", "prefix": "/", "service": "svc"},
          {"name": "other", "prefix": "/c", "service": "other"}
        ]}"#,
    )
    .unwrap();
    assert_eq!(route(&c, Some("svc"), "/a/b/c"), Some(0));
    assert_eq!(route(&c, Some("svc"), "/x"), Some(1), "the root prefix");
    assert_eq!(route(&c, Some("other"), "/x"), Some(2));
}

#[test]
fn gateway_mode_has_no_destinations() {
    let c = Config::defaults();
    assert_eq!(route(&c, Some("order-service"), "/api/v1/orders"), None);
}

#[test]
fn names_follow_kubernetes() {
    for ok in [
        "a",
        "ecommerce",
        "istio-system",
        "0",
        "a1-b2",
        &"x".repeat(63),
    ] {
        assert!(is_dns_label(ok), "{ok}");
    }
    for bad in [
        "",
        "-a",
        "a-",
        "Ecommerce",
        "a.b",
        "a_b",
        "a b",
        "ä",
        &"x".repeat(64),
    ] {
        assert!(!is_dns_label(bad), "{bad}");
    }
    assert!(is_service_name("order-service"));
    assert!(!is_service_name("10"));
    assert!(!is_service_name("1-service"));
}
