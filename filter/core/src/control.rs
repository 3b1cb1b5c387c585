//! Control headers (R5): what a client may never set, and what the filter adds.
//!
//! `x-c4-*` headers are the filter's own signals to the router and the services, and
//! the Envoy headers below let a request choose its own retries and timeouts. Both are
//! stripped from every request before anything else, so a client can never raise its
//! own retries or timeouts.
//!
//! Of the headers the filter adds (R6, B2) only `x-c4-route` leaves the proxy: the
//! router consumes the others. Every proxy on the way adds headers of its own, and each
//! hop's codec refuses a request with more than Envoy's limit (431), so on a request
//! already near that limit the filter leaves `x-c4-route` out rather than be the header
//! that gets it refused further on (2.7).

/// Envoy's router control headers: the request headers through which a request sets
/// its own retries and timeouts (Envoy's router reads them and does not forward them).
pub const ENVOY_CONTROL: &[&[u8]] = &[
    b"x-envoy-max-retries",
    b"x-envoy-retry-on",
    b"x-envoy-retry-grpc-on",
    b"x-envoy-retriable-status-codes",
    b"x-envoy-retriable-header-names",
    b"x-envoy-upstream-rq-timeout-ms",
    b"x-envoy-upstream-rq-per-try-timeout-ms",
    b"x-envoy-hedge-on-per-try-timeout",
];

/// Envoy's default limit on the headers of a request (`max_headers_count`): a codec
/// answers 431 to a request with more.
pub const ENVOY_MAX_HEADERS: usize = 100;

/// Headers left for the proxies a request still crosses to add their own: in an Istio
/// mesh `x-forwarded-for`, `x-forwarded-proto`, `x-request-id`, the attempt count, the
/// expected timeout, peer metadata (two), the client certificate, tracing (up to six)
/// and `host` from `:authority` — fifteen at most.
pub const PROXY_HEADROOM: usize = 16;

/// Whether `x-c4-route` may be added to a request carrying `headers` headers (without
/// pseudo-headers, after R5's removals) and still leave [`PROXY_HEADROOM`] below
/// [`ENVOY_MAX_HEADERS`].
pub fn route_header_fits(headers: usize) -> bool {
    headers.saturating_add(1 + PROXY_HEADROOM) <= ENVOY_MAX_HEADERS
}

/// Whether a request header must be removed before the request goes on.
pub fn is_control_header(name: &[u8]) -> bool {
    if name.len() >= 5 && name[..5].eq_ignore_ascii_case(b"x-c4-") {
        return true;
    }
    name.len() >= 16
        && name[..8].eq_ignore_ascii_case(b"x-envoy-")
        && ENVOY_CONTROL.iter().any(|h| name.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_header_is_left_out_only_near_the_limit() {
        assert!(route_header_fits(0));
        assert!(route_header_fits(83));
        assert!(!route_header_fits(84));
        assert!(!route_header_fits(ENVOY_MAX_HEADERS));
        assert!(!route_header_fits(usize::MAX - 20));
    }

    #[test]
    fn strips_own_and_envoy_control_headers_only() {
        for name in [
            "x-c4-route",
            "X-C4-Anything",
            "x-envoy-max-retries",
            "x-envoy-retry-on",
            "x-envoy-retry-grpc-on",
            "x-envoy-retriable-status-codes",
            "x-envoy-retriable-header-names",
            "x-envoy-upstream-rq-timeout-ms",
            "X-Envoy-Upstream-Rq-Per-Try-Timeout-Ms",
            "x-envoy-hedge-on-per-try-timeout",
        ] {
            assert!(is_control_header(name.as_bytes()), "{name}");
        }
        for name in [
            "x-c4",
            "x-envoy-expected-rq-timeout-ms",
            "x-envoy-attempt-count",
            "x-envoy-original-path",
            "x-request-id",
            "host",
            ":path",
            "",
        ] {
            assert!(!is_control_header(name.as_bytes()), "{name}");
        }
    }
}
