//! Host matching (R1): which authorities this proxy serves.
//!
//! The authority is compared without its `:port` and trailing `.`, case-insensitively,
//! and without allocating: it arrives on every request.

use crate::config::HostPatterns;

/// The host part of an authority: no `:port`, no trailing `.`; brackets kept on IPv6.
pub fn host_of(authority: &[u8]) -> &[u8] {
    let host = if authority.first() == Some(&b'[') {
        match authority.iter().position(|&b| b == b']') {
            Some(close) => &authority[..=close],
            None => authority,
        }
    } else {
        match authority.iter().position(|&b| b == b':') {
            Some(colon) => &authority[..colon],
            None => authority,
        }
    };
    host.strip_suffix(b".").unwrap_or(host)
}

impl HostPatterns {
    /// Whether a request's authority (`:authority`, else `host`; `None` when both are
    /// absent) is served. An absent authority matches only `*`.
    pub fn matches(&self, authority: Option<&[u8]>) -> bool {
        if self.any {
            return true;
        }
        let Some(authority) = authority else {
            return false;
        };
        let host = host_of(authority);
        self.exact
            .iter()
            .any(|name| host.eq_ignore_ascii_case(name.as_bytes()))
            || self.suffixes.iter().any(|suffix| {
                host.len() > suffix.len()
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(exact: &[&str], suffixes: &[&str], any: bool) -> HostPatterns {
        HostPatterns {
            any,
            exact: exact.iter().map(|s| s.to_string()).collect(),
            suffixes: suffixes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn port_and_trailing_dot_are_ignored_and_case_too() {
        let hosts = patterns(&["api.c4ang.com"], &[], false);
        for ok in [
            "api.c4ang.com",
            "API.C4ang.Com",
            "api.c4ang.com:443",
            "api.c4ang.com.",
            "api.c4ang.com.:80",
        ] {
            assert!(hosts.matches(Some(ok.as_bytes())), "{ok}");
        }
        for bad in [
            "c4ang.com",
            "api.c4ang.com.evil",
            "xapi.c4ang.com",
            "",
            "api.c4ang.co",
        ] {
            assert!(!hosts.matches(Some(bad.as_bytes())), "{bad}");
        }
        assert!(!hosts.matches(None));
    }

    #[test]
    fn wildcards_need_at_least_one_label() {
        let hosts = patterns(&[], &[".c4ang.com"], false);
        assert!(hosts.matches(Some(b"api.c4ang.com")));
        assert!(hosts.matches(Some(b"a.b.c4ang.com:8080")));
        assert!(!hosts.matches(Some(b"c4ang.com")));
        assert!(!hosts.matches(Some(b".c4ang.com")));
        assert!(!hosts.matches(Some(b"evilc4ang.com")));
    }

    #[test]
    fn star_matches_everything_even_no_authority() {
        let hosts = patterns(&[], &[], true);
        assert!(hosts.matches(Some(b"anything")));
        assert!(hosts.matches(None));
    }

    #[test]
    fn ipv6_literals_keep_their_brackets() {
        assert_eq!(host_of(b"[::1]:8080"), b"[::1]");
        assert_eq!(host_of(b"[::1]"), b"[::1]");
        assert_eq!(host_of(b"10.0.0.1:80"), b"10.0.0.1");
    }
}
