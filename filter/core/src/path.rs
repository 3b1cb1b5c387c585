//! Path safety (R2): refuse every path whose route could be read two ways.
//!
//! The filter matches the raw path; Envoy may normalise it (RFC 3986, merged slashes)
//! and the application may percent-decode it, strip `;` parameters and resolve dot
//! segments. A path on which these readings could disagree about the route is refused
//! with 400 `bad_path` instead of being normalised here: a normaliser in the filter
//! would be a third reading to keep in step with the other two.
//!
//! Refused, in raw or percent-encoded form: a path not starting with `/`; `//`; dot
//! segments (`.`, `..`, also before a `;` parameter as in `..;`); empty segments with
//! parameters (`/;x/`); `\`; `/`, `\` encoded; control characters and NUL; a
//! double-encoded byte (`%25` followed by two hex digits); any percent-encoded
//! unreserved character (`%2e`, `%41`...), which no correct client needs to encode
//! and which normalisers decode; a `%` not followed by two hex digits (`%zz`, a
//! trailing `%`, the non-standard `%u002e`); and bytes, raw or percent-encoded, that are
//! not well-formed UTF-8 (lenient decoders have read the overlong `%c0%ae` as `.`).
//! Only the part before `?` or `#` is examined.

/// Why a path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute,
    EmptySegment,
    DotSegment,
    Backslash,
    EncodedSeparator,
    ControlCharacter,
    DoubleEncoding,
    EncodedUnreserved,
    MalformedEncoding,
    NotUtf8,
    ParameterInPrefix,
}

impl PathError {
    pub fn as_str(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "path must start with '/'",
            PathError::EmptySegment => "empty path segment",
            PathError::DotSegment => "dot segment",
            PathError::Backslash => "backslash",
            PathError::EncodedSeparator => "encoded '/' or '\\'",
            PathError::ControlCharacter => "control character",
            PathError::DoubleEncoding => "double percent-encoding",
            PathError::EncodedUnreserved => "percent-encoded unreserved character",
            PathError::MalformedEncoding => "'%' not followed by two hex digits",
            PathError::NotUtf8 => "not well-formed UTF-8 (overlong or broken sequence)",
            PathError::ParameterInPrefix => "';' parameter that changes the route",
        }
    }
}

/// The part of a request target that routing looks at: everything before `?` or `#`.
pub fn route_part(target: &[u8]) -> &[u8] {
    match target.iter().position(|&b| b == b'?' || b == b'#') {
        Some(end) => &target[..end],
        None => target,
    }
}

/// Checks a request target; returns the routed part (before `?`/`#`) when it is safe.
pub fn check(target: &[u8]) -> Result<&[u8], PathError> {
    let path = route_part(target);
    if path.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let mut segment_start = 1;
    let mut utf8 = Utf8::default();
    let mut i = 1;
    while i < path.len() {
        match path[i] {
            b'/' => {
                check_segment(&path[segment_start..i])?;
                if path[i - 1] == b'/' {
                    return Err(PathError::EmptySegment);
                }
                segment_start = i + 1;
            }
            b'\\' => return Err(PathError::Backslash),
            b if b < 0x20 || b == 0x7f => return Err(PathError::ControlCharacter),
            b'%' => {
                let decoded = hex_pair(path, i + 1).ok_or(PathError::MalformedEncoding)?;
                check_encoded(decoded, path, i + 3)?;
                utf8.push(decoded)?;
                i += 3;
                continue;
            }
            _ => {}
        }
        utf8.push(path[i])?;
        i += 1;
    }
    check_segment(&path[segment_start..])?;
    utf8.finish()?;
    Ok(path)
}

/// R2 whole: what `lookup` (a route table's) finds for a request target, when the
/// target is safe and its `;` parameters do not change the answer.
pub fn route<T: PartialEq>(target: &[u8], lookup: impl Fn(&[u8]) -> T) -> Result<T, PathError> {
    let path = check(target)?;
    let found = lookup(path);
    match without_parameters(path) {
        Some(stripped) if lookup(&stripped) != found => Err(PathError::ParameterInPrefix),
        _ => Ok(found),
    }
}

/// The path with each segment's `;` parameters removed, as servlet containers route
/// it; `None` when it has none (the common case, without allocating). Where the two
/// route differently (`/api/v1/orders;x/1` is unmatched as sent and an order once
/// stripped) the request is refused: see [`PathError::ParameterInPrefix`].
pub fn without_parameters(path: &[u8]) -> Option<Vec<u8>> {
    if !path.contains(&b';') {
        return None;
    }
    let mut out = Vec::with_capacity(path.len());
    for (n, segment) in path.split(|&b| b == b'/').enumerate() {
        if n > 0 {
            out.push(b'/');
        }
        let end = segment
            .iter()
            .position(|&b| b == b';')
            .unwrap_or(segment.len());
        out.extend_from_slice(&segment[..end]);
    }
    Some(out)
}

/// The UTF-8 check over the path's bytes as decoded (raw, or from `%XX`), without
/// allocating: a multi-byte sequence is collected and checked by the standard
/// library's validator, which refuses overlong forms, surrogates and values past
/// U+10FFFF.
#[derive(Default)]
struct Utf8 {
    sequence: [u8; 4],
    have: usize,
    need: usize,
}

impl Utf8 {
    fn push(&mut self, byte: u8) -> Result<(), PathError> {
        if self.need == 0 {
            self.need = match byte {
                0x00..=0x7f => return Ok(()),
                0xc2..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf4 => 4,
                _ => return Err(PathError::NotUtf8),
            };
            self.sequence[0] = byte;
            self.have = 1;
            return Ok(());
        }
        if byte & 0xc0 != 0x80 {
            return Err(PathError::NotUtf8);
        }
        self.sequence[self.have] = byte;
        self.have += 1;
        if self.have == self.need {
            self.need = 0;
            if std::str::from_utf8(&self.sequence[..self.have]).is_err() {
                return Err(PathError::NotUtf8);
            }
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), PathError> {
        if self.need == 0 {
            Ok(())
        } else {
            Err(PathError::NotUtf8)
        }
    }
}

fn check_encoded(decoded: u8, path: &[u8], after: usize) -> Result<(), PathError> {
    match decoded {
        b'/' | b'\\' => Err(PathError::EncodedSeparator),
        b if b < 0x20 || b == 0x7f => Err(PathError::ControlCharacter),
        b'%' if hex_pair(path, after).is_some() => Err(PathError::DoubleEncoding),
        b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => {
            Err(PathError::EncodedUnreserved)
        }
        _ => Ok(()),
    }
}

/// A segment is refused when, before any `;` parameter, it is `.` or `..`, or empty
/// while carrying parameters (`/;x/` reads as `//` once parameters are stripped).
fn check_segment(segment: &[u8]) -> Result<(), PathError> {
    let (name, has_params) = match segment.iter().position(|&b| b == b';') {
        Some(end) => (&segment[..end], true),
        None => (segment, false),
    };
    match name {
        b"." | b".." => Err(PathError::DotSegment),
        b"" if has_params => Err(PathError::EmptySegment),
        _ => Ok(()),
    }
}

fn hex_pair(bytes: &[u8], at: usize) -> Option<u8> {
    let hi = hex_digit(*bytes.get(at)?)?;
    let lo = hex_digit(*bytes.get(at + 1)?)?;
    Some(hi << 4 | lo)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_pass_and_the_query_is_not_routed() {
        for ok in [
            "/",
            "/api/v1/orders",
            "/api/v1/orders/",
            "/api/v1/orders/123?x=../../y",
            "/api/v1/orders/a.b/c..d/...",
            "/api/v1/orders/123;v=1",
            "/api/v1/orders/caf%C3%A9",
            "/api/v1/search/a%20b",
            "/api/v1/orders#/../x",
            "/api/v1/100%25",
            "/api/v1/orders/\u{65e5}\u{672c}",
        ] {
            assert!(check(ok.as_bytes()).is_ok(), "{ok} refused");
        }
        assert_eq!(check(b"/a/b?c=d").unwrap(), b"/a/b");
        assert_eq!(check(b"/a/b#frag").unwrap(), b"/a/b");
    }

    #[test]
    fn every_listed_trick_is_refused() {
        use PathError::*;
        let cases: &[(&str, PathError)] = &[
            ("", NotAbsolute),
            ("api/v1/orders", NotAbsolute),
            ("*", NotAbsolute),
            ("?/api", NotAbsolute),
            ("//api/v1/orders", EmptySegment),
            ("/api//v1/orders", EmptySegment),
            ("/api/v1/orders//", EmptySegment),
            ("/api/v1/orders/../payments", DotSegment),
            ("/api/v1/orders/./x", DotSegment),
            ("/api/v1/orders/.", DotSegment),
            ("/api/v1/orders/..", DotSegment),
            ("/api/v1/orders/..;/payments", DotSegment),
            ("/api/v1/orders/.;x/payments", DotSegment),
            ("/api/v1/orders/;x/payments", EmptySegment),
            ("/api/v1/orders/%2e%2e/payments", EncodedUnreserved),
            ("/api/v1/orders/%2E%2E/payments", EncodedUnreserved),
            ("/api/v1/orders/.%2e/payments", EncodedUnreserved),
            ("/api/v1/orders/%2e", EncodedUnreserved),
            ("/api/v1/orders%2f..%2fpayments", EncodedSeparator),
            ("/api/v1/orders%2F..", EncodedSeparator),
            ("/api/v1/orders%5c..", EncodedSeparator),
            ("/api/v1/orders%5C..", EncodedSeparator),
            ("/api/v1/orders\\..\\payments", Backslash),
            ("/api/v1/orders/%c0%ae%c0%ae/payments", NotUtf8),
            ("/api/v1/orders/%C0%AE", NotUtf8),
            ("/api/v1/orders/%e0%80%ae", NotUtf8),
            ("/api/v1/orders/%ed%a0%80", NotUtf8),
            ("/api/v1/orders/%f4%90%80%80", NotUtf8),
            ("/api/v1/orders/caf%C3", NotUtf8),
            ("/api/v1/orders/caf%C3/x", NotUtf8),
            ("/api/v1/orders/%u002e%u002e/payments", MalformedEncoding),
            ("/api/v1/orders/%", MalformedEncoding),
            ("/api/v1/orders/%2", MalformedEncoding),
            ("/api/v1/orders/%zz", MalformedEncoding),
            ("/api/v1/orders%00", ControlCharacter),
            ("/api/v1/orders/\x00", ControlCharacter),
            ("/api/v1/orders/\t", ControlCharacter),
            ("/api/v1/orders/\x7f", ControlCharacter),
            ("/api/v1/orders%0d%0a", ControlCharacter),
            ("/api/v1/orders/%252e%252e/payments", DoubleEncoding),
            ("/api/v1/orders%252f", DoubleEncoding),
            ("/api/v1/%63ustomers", EncodedUnreserved),
        ];
        for (path, why) in cases {
            assert_eq!(check(path.as_bytes()), Err(*why), "{path:?}");
        }
        // `;` parameters that servlet containers strip before routing may not change
        // the route (found by the `path` fuzz target).
        let table = crate::routes::RouteTable::new(["/api/v1/orders", "/api/v1/orders/archive"]);
        let lookup = |p: &[u8]| table.lookup(p);
        for (path, want) in [
            ("/api/v1/orders;api/v1/oyments", Err(ParameterInPrefix)),
            ("/api/v1/orders;x", Err(ParameterInPrefix)),
            ("/api;x/v1/orders/1", Err(ParameterInPrefix)),
            ("/api/v1/orders/archive;x/1", Err(ParameterInPrefix)),
            ("/api/v1/orders/1;v=2", Ok(Some(0))),
            ("/api/v1/orders/archive/1;v=2", Ok(Some(1))),
            ("/other;x/1", Ok(None)),
        ] {
            assert_eq!(route(path.as_bytes(), lookup), want, "{path}");
        }
        // Raw bytes that are not UTF-8, as an HTTP/1.1 client can send them.
        for raw in [
            &b"/api/v1/orders/\xc0\xae\xc0\xae/x"[..],
            b"/api/v1/orders/\xff",
            b"/api/v1/orders/\xe2\x82",
        ] {
            assert_eq!(check(raw), Err(PathError::NotUtf8), "{raw:?}");
        }
    }
}

#[cfg(test)]
mod properties {
    //! R2 and R3 together: no path the filter accepts can be read as another route by
    //! a normaliser (Envoy's RFC 3986 normalisation, merged slashes) or an application
    //! (percent-decoding, `\` as `/`, `;` parameters stripped, dot segments resolved).

    use super::*;
    use crate::routes::RouteTable;
    use c4mesh_path_readings::readings;
    use proptest::prelude::*;

    /// Segments that are names, tricks, or pieces of tricks.
    const SEGMENTS: &[&str] = &[
        "api",
        "v1",
        "orders",
        "payments",
        "saga",
        "x",
        "..",
        ".",
        "",
        "%2e%2e",
        "%2E%2e",
        ".%2e",
        "%2e",
        "..;",
        "..;x=1",
        ".;",
        ";x",
        "a;b",
        "%2f",
        "a%2Fb",
        "..%2f..",
        "a%5cb",
        "a\\b",
        "..\\..",
        "%252e%252e",
        "%25",
        "%00",
        "a%0a",
        "%41",
        "v%31",
        "?x=/..",
        "#/..",
        "%",
        "%2",
        "%zz",
        "%20",
        "%c0%ae%c0%ae",
        "%C0%AE",
        "%c0%af",
        "%e0%80%ae",
        "%u002e%u002e",
        "%u002f",
        "caf%C3%A9",
        "%C3",
        "..%c0%af..",
        "orders;x",
        "v1;a=b",
        "api;",
    ];

    fn table() -> RouteTable {
        RouteTable::new(["/api/v1/orders", "/api/v1/payments", "/api/v1/saga", "/api"])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn accepted_paths_route_the_same_under_every_reading(
            segments in proptest::collection::vec(proptest::sample::select(SEGMENTS), 1..8)
        ) {
            let target: Vec<u8> = format!("/{}", segments.join("/")).into_bytes();
            let table = table();
            if let Ok(routed) = route(&target, |p| table.lookup(p)) {
                let path = route_part(&target);
                for reading in readings(path) {
                    prop_assert_eq!(
                        table.lookup(&reading.path),
                        routed,
                        "{:?} routes differently for {}: {:?}",
                        String::from_utf8_lossy(&target),
                        reading.who,
                        String::from_utf8_lossy(&reading.path)
                    );
                }
            }
        }

        #[test]
        fn check_never_panics(target in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = check(&target);
        }
    }
}
