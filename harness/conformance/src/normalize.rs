//! Envoy's path normalisation as Istio configures it (`normalize_path: true`, no slash
//! merging, escaped slashes kept; `c4mesh_mesh::istio::translate::connection_manager`),
//! for the emulated proxies of the wasm target: the connection manager rewrites `:path`
//! before any filter sees it, so on Istio `/api/v1/orders/../payments` reaches the filter
//! as `/api/v1/payments`.
//!
//! Envoy does this with Chromium's URL canonicaliser; the rules here are what Envoy 1.40
//! does, read off a real Envoy one path at a time (the table in the tests is that
//! transcript):
//!
//! - the query (from `?`) is left alone; a `#` anywhere is refused (400);
//! - slashes are kept as they are (no merging), and `\` is a separator like `/`;
//! - a segment that is `.` or `..`, each dot raw or `%2e`, is a dot segment; so is one
//!   whose raw dots are followed by `;` (`..;x` is `..`, the rest dropped);
//! - in other segments `%XX` of an unreserved character (`A-Z a-z 0-9 - . _ ~`) is
//!   decoded, other escapes and stray `%` are kept as written, `%00` is refused, and
//!   `"`, `<`, `>`, `` ` ``, `{`, `}`, `|`, `^` and space are escaped;
//! - dot segments are resolved (never above the root); a dot segment at the end leaves
//!   a trailing slash;
//! - control characters and bytes above 0x7e never get this far: Envoy's HTTP/1 codec
//!   refuses them (400) first.
//!
//! `None` means Envoy answers 400 itself, before any filter.

/// The path as Envoy's connection manager passes it on, or `None` for its 400.
pub fn normalize(target: &str) -> Option<String> {
    if target.contains('#') {
        return None;
    }
    let (path, query) = match target.find('?') {
        Some(i) => target.split_at(i),
        None => (target, ""),
    };
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') || bytes.iter().any(|b| *b < 0x20 || *b > 0x7e) {
        return None;
    }
    let trimmed = &path[1..];
    let mut out: Vec<String> = Vec::new();
    let segments: Vec<&str> = trimmed.split(['/', '\\']).collect();
    let last = segments.len().saturating_sub(1);
    for (index, segment) in segments.iter().enumerate() {
        match dots(segment) {
            Some(up) => {
                if up {
                    out.pop();
                }
                if index == last {
                    out.push(String::new());
                }
            }
            None => out.push(canonical(segment)?),
        }
    }
    Some(format!("/{}{query}", out.join("/")))
}

/// `Some(false)` for a `.` segment, `Some(true)` for `..`, `None` otherwise.
fn dots(segment: &str) -> Option<bool> {
    let lower = segment.to_ascii_lowercase();
    match lower.as_str() {
        "." | "%2e" => return Some(false),
        ".." | ".%2e" | "%2e." | "%2e%2e" => return Some(true),
        _ => {}
    }
    // Raw dots, then parameters: `..;x`, `.;`.
    if segment.starts_with("..;") {
        return Some(true);
    }
    if segment.starts_with(".;") {
        return Some(false);
    }
    None
}

/// A segment's characters as Envoy writes them; `None` for `%00`.
///
/// Written by hand on purpose: Envoy decodes only escapes of unreserved characters,
/// keeps every other escape as written and escapes a few raw bytes, which no general
/// percent-decoder (the `percent-encoding` crate among them) reproduces.
fn canonical(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(0) => return None,
                Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') => {
                    out.push(char::from(c));
                    i += 3;
                }
                Some(_) => {
                    out.push_str(&segment[i..i + 3]);
                    i += 3;
                }
                None => {
                    out.push('%');
                    i += 1;
                }
            }
            continue;
        }
        if matches!(
            b,
            b'"' | b'<' | b'>' | b'`' | b'{' | b'}' | b'|' | b'^' | b' '
        ) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    /// What Envoy 1.40 passed upstream for each path (`normalize_path: true`,
    /// `merge_slashes: false`, `KEEP_UNCHANGED`), or `None` for its 400.
    const ENVOY: &[(&str, Option<&str>)] = &[
        ("/api/v1/orders/../payments/1", Some("/api/v1/payments/1")),
        ("/api/v1/orders/./1", Some("/api/v1/orders/1")),
        ("/api/v1/orders/1/..", Some("/api/v1/orders/")),
        ("/api/v1/orders/1/.", Some("/api/v1/orders/1/")),
        ("/api/v1/orders/%2e%2e/payments", Some("/api/v1/payments")),
        ("/api/v1/orders/%2E%2E/payments", Some("/api/v1/payments")),
        ("/api/v1/orders/.%2e/payments", Some("/api/v1/payments")),
        ("/api/v1/orders/%2e/1", Some("/api/v1/orders/1")),
        ("/api/v1/orders/1%00", None),
        ("/api/v1/orders/%00/1", None),
        ("/api/v1/orders/..;/payments", Some("/api/v1/payments")),
        ("//api/v1/orders/1", Some("//api/v1/orders/1")),
        ("/api/v1//orders/1", Some("/api/v1//orders/1")),
        ("/api/v1/orders%2F1", Some("/api/v1/orders%2F1")),
        (
            "/api/v1/orders%2f..%2fpayments",
            Some("/api/v1/orders%2f..%2fpayments"),
        ),
        ("/api/v1/orders/%5C1", Some("/api/v1/orders/%5C1")),
        (
            "/api/v1/orders/%5c..%5cpayments",
            Some("/api/v1/orders/%5c..%5cpayments"),
        ),
        (
            "/api/v1/orders/%c0%ae%c0%ae/payments",
            Some("/api/v1/orders/%c0%ae%c0%ae/payments"),
        ),
        (
            "/api/v1/orders/%u002e%u002e/payments",
            Some("/api/v1/orders/%u002e%u002e/payments"),
        ),
        ("/api/v1/orders/%zz", Some("/api/v1/orders/%zz")),
        ("/api/v1/orders/1%", Some("/api/v1/orders/1%")),
        ("/api/v1/orders/1;v=2", Some("/api/v1/orders/1;v=2")),
        ("/api/v1/orders/caf%C3%A9", Some("/api/v1/orders/caf%C3%A9")),
        ("/api/v1/orders;x/1", Some("/api/v1/orders;x/1")),
        ("/api/v1/customers/%2e%2e/x", Some("/api/v1/x")),
        ("/api/v1/orders/%41b", Some("/api/v1/orders/Ab")),
        ("/api/v1/orders/a\\b", Some("/api/v1/orders/a/b")),
        ("/a/b/../../../c", Some("/c")),
        ("/api/v1/orders/1?x=/../y", Some("/api/v1/orders/1?x=/../y")),
        ("/a/..;x/b", Some("/b")),
        ("/a/.;/b", Some("/a/b")),
        ("/a/%2e%2e;/b", Some("/a/..;/b")),
        ("/a/.../b", Some("/a/.../b")),
        ("/a/%2e./b", Some("/b")),
        ("/a/%7e%7E", Some("/a/~~")),
        ("/a/%2d%5f", Some("/a/-_")),
        ("/a/%20", Some("/a/%20")),
        ("/a/%3b", Some("/a/%3b")),
        ("/a/x%2e", Some("/a/x.")),
        ("/%2e%2e/a", Some("/a")),
        ("/a/b/..%2f", Some("/a/b/..%2f")),
        ("/a/%252e%252e/b", Some("/a/%252e%252e/b")),
        ("/a/%", Some("/a/%")),
        ("/a/%g0", Some("/a/%g0")),
        ("/a/%A", Some("/a/%A")),
        ("/a/..%00", None),
        ("/a/%01", Some("/a/%01")),
        ("///a", Some("///a")),
        ("//a//b", Some("//a//b")),
        ("/a/;/b", Some("/a/;/b")),
        ("/a/..;", Some("/")),
        ("/a/b/;..", Some("/a/b/;..")),
        ("/a/%2E", Some("/a/")),
        ("/a/%2e%2E%2e", Some("/a/...")),
        ("/a/{", Some("/a/%7B")),
        ("/a/\"", Some("/a/%22")),
        ("/a/|", Some("/a/%7C")),
        ("/a/^", Some("/a/%5E")),
        ("/a/`", Some("/a/%60")),
        ("/a/<", Some("/a/%3C")),
        ("/a/>", Some("/a/%3E")),
        ("/a/}", Some("/a/%7D")),
        ("/a/'", Some("/a/'")),
        ("/a/*:@[", Some("/a/*:@[")),
        ("/..", Some("/")),
        ("/../a", Some("/a")),
        ("/.", Some("/")),
        ("/a/%2e%2e%2f", Some("/a/..%2f")),
        ("/a/..;b=1/c", Some("/c")),
        ("/a/.%2e;/b", Some("/a/..;/b")),
        ("/a/%2e;/b", Some("/a/.;/b")),
        ("/a/..;/", Some("/")),
        ("/a/..;%2f/b", Some("/b")),
        ("/a/x/..;", Some("/a/")),
        ("/a/b/%2E%2e/c", Some("/a/c")),
        ("/a/b#frag", None),
        ("/a/./b/../c", Some("/a/c")),
        ("/a/b/..?x", Some("/a/?x")),
        ("/a?b/../c", Some("/a?b/../c")),
        ("a/b", None),
        ("/a/\u{1}", None),
    ];

    #[test]
    fn paths_are_normalised_as_envoy_does() {
        for (path, expected) in ENVOY {
            assert_eq!(normalize(path).as_deref(), *expected, "{path}");
        }
    }
}
