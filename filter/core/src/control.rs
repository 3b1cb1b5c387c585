//! Control headers (R5): what a client may never set.
//!
//! `x-c4-*` headers are the filter's own signals to the router and the services, and
//! the Envoy headers below let a request choose its own retries and timeouts. Both are
//! stripped from every request before anything else, so a client can never raise its
//! own retries or timeouts.

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
