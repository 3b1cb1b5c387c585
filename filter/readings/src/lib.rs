//! Independent readings of a request path: how the servers and decoders behind the
//! filter could resolve it.
//!
//! R2 says no path may pass that Envoy or the application could resolve to another
//! route than the filter did. The filter's check refuses without normalising; this
//! crate is the other side, written to be obviously correct rather than fast: each
//! reading decodes and resolves a path the way one kind of server does, and a path the
//! filter accepts must route the same under all of them. The filter's property tests
//! and the `path` fuzz target use it as their oracle.

/// One way of reading a path, with what it resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub who: &'static str,
    pub path: Vec<u8>,
}

/// Every reading of `path` (the part before `?`/`#`).
pub fn readings(path: &[u8]) -> Vec<Reading> {
    let once = percent_decode(path);
    vec![
        Reading {
            who: "RFC 3986 normaliser (unreserved decoded, dot segments removed, slashes merged)",
            path: merge_slashes(&remove_dot_segments(&decode_unreserved(path))),
        },
        Reading {
            who: "application: percent-decoded once, \\ as /",
            path: resolve(&once, Separators::SlashAndBackslash),
        },
        Reading {
            who: "application: percent-decoded twice, \\ as /",
            path: resolve(&percent_decode(&once), Separators::SlashAndBackslash),
        },
        Reading {
            who: "lenient decoder: %uXXXX and overlong UTF-8 accepted, \\ as /",
            path: resolve(&lenient_decode(path), Separators::SlashAndBackslash),
        },
        Reading {
            who: "servlet container: ;parameters stripped, then decoded",
            path: resolve(&percent_decode(&strip_parameters(path)), Separators::Slash),
        },
    ]
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

fn hex_pair(bytes: &[u8], at: usize) -> Option<u8> {
    Some(hex(*bytes.get(at)?)? * 16 + hex(*bytes.get(at + 1)?)?)
}

/// Every well-formed `%XX` decoded; anything else kept as it is.
pub fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    decode_where(bytes, |_| true)
}

/// RFC 3986 6.2.2.2: percent-encoded unreserved characters decoded, the rest kept.
fn decode_unreserved(bytes: &[u8]) -> Vec<u8> {
    decode_where(bytes, |b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Each well-formed `%XX` whose byte `decode` accepts, decoded; the rest kept.
fn decode_where(bytes: &[u8], decode: impl Fn(u8) -> bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(b) = hex_pair(bytes, i + 1).filter(|&b| decode(b)) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// RFC 3986 5.2.4, step by step as the RFC writes it.
fn remove_dot_segments(input: &[u8]) -> Vec<u8> {
    let mut input = input.to_vec();
    let mut output: Vec<u8> = Vec::new();
    while !input.is_empty() {
        if input.starts_with(b"../") {
            input.drain(..3);
        } else if input.starts_with(b"./") || input.starts_with(b"/./") {
            // A: "./" removed; B: "/./" becomes "/".
            input.drain(..2);
        } else if input == b"/." {
            input = b"/".to_vec();
        } else if input.starts_with(b"/../") || input == b"/.." {
            if input == b"/.." {
                input = b"/".to_vec();
            } else {
                input.drain(..3);
            }
            if let Some(last) = output.iter().rposition(|&b| b == b'/') {
                output.truncate(last);
            } else {
                output.clear();
            }
        } else if input == b"." || input == b".." {
            input.clear();
        } else {
            let start = usize::from(input[0] == b'/');
            let end = input[start..]
                .iter()
                .position(|&b| b == b'/')
                .map_or(input.len(), |p| p + start);
            output.extend(input.drain(..end));
        }
    }
    output
}

fn merge_slashes(path: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(path.len());
    for &b in path {
        if !(b == b'/' && out.last() == Some(&b'/')) {
            out.push(b);
        }
    }
    out
}

/// Decodes like the lenient decoders of old web servers: `%XX`, `%uXXXX` (a UTF-16
/// code unit), and UTF-8 sequences read for their value even when overlong, so
/// `%c0%ae` and `%e0%80%ae` are `.` and `%c0%af` is `/`.
pub fn lenient_decode(bytes: &[u8]) -> Vec<u8> {
    let mut units = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(b) = hex_pair(bytes, i + 1) {
                units.push(u32::from(b));
                i += 3;
                continue;
            }
            if matches!(bytes.get(i + 1), Some(b'u' | b'U')) {
                let digits: Option<Vec<u8>> = (i + 2..i + 6)
                    .map(|j| bytes.get(j).and_then(|&b| hex(b)))
                    .collect();
                if let Some(digits) = digits {
                    let unit = digits.iter().fold(0u32, |n, &d| n * 16 + u32::from(d));
                    // A code point, not a byte: marked so it is not read as UTF-8.
                    units.push(unit | 0x8000_0000);
                    i += 6;
                    continue;
                }
            }
        }
        units.push(u32::from(bytes[i]));
        i += 1;
    }
    let mut out = Vec::with_capacity(units.len());
    let mut j = 0;
    while j < units.len() {
        let unit = units[j];
        if unit & 0x8000_0000 != 0 {
            push_code_point(&mut out, unit & 0x7fff_ffff);
            j += 1;
            continue;
        }
        let (len, lead_bits) = match unit {
            0xc0..=0xdf => (2, unit & 0x1f),
            0xe0..=0xef => (3, unit & 0x0f),
            0xf0..=0xf7 => (4, unit & 0x07),
            _ => (1, unit),
        };
        let continuation = units.get(j + 1..j + len).filter(|rest| {
            len > 1
                && rest
                    .iter()
                    .all(|&u| u & 0x8000_0000 == 0 && u & 0xc0 == 0x80)
        });
        match continuation {
            Some(rest) => {
                let value = rest.iter().fold(lead_bits, |v, &u| v << 6 | (u & 0x3f));
                push_code_point(&mut out, value);
                j += len;
            }
            None => {
                out.push(u8::try_from(unit & 0xff).unwrap_or(b'?'));
                j += 1;
            }
        }
    }
    out
}

fn push_code_point(out: &mut Vec<u8>, value: u32) {
    match char::from_u32(value) {
        Some(c) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        None => out.push(b'?'),
    }
}

/// Each segment's `;` parameters removed, as servlet containers do before decoding.
fn strip_parameters(path: &[u8]) -> Vec<u8> {
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
    out
}

#[derive(Clone, Copy)]
enum Separators {
    Slash,
    SlashAndBackslash,
}

/// Resolves a decoded path as an application's router does: split into segments,
/// empty and `.` segments skipped, `..` going up.
fn resolve(path: &[u8], separators: Separators) -> Vec<u8> {
    let is_separator =
        |b: &u8| *b == b'/' || (matches!(separators, Separators::SlashAndBackslash) && *b == b'\\');
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in path.split(is_separator) {
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for segment in segments {
        out.push(b'/');
        out.extend_from_slice(segment);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &str, who: &str) -> String {
        let reading = readings(path.as_bytes())
            .into_iter()
            .find(|r| r.who.starts_with(who))
            .map(|r| r.path)
            .unwrap_or_default();
        String::from_utf8_lossy(&reading).into_owned()
    }

    #[test]
    fn each_reading_resolves_its_own_tricks() {
        assert_eq!(read("/a/b/../c", "RFC"), "/a/c");
        assert_eq!(read("/a/%2e%2E/c", "RFC"), "/c");
        assert_eq!(read("/a//b/./c/", "RFC"), "/a/b/c/");
        assert_eq!(read("/a/b/..", "RFC"), "/a/");
        assert_eq!(read("/a%2fb/../c", "RFC"), "/c");
        assert_eq!(
            read("/a/%2e%2e%2fc", "application: percent-decoded once"),
            "/c"
        );
        assert_eq!(read("/a\\..\\c", "application: percent-decoded once"), "/c");
        assert_eq!(
            read("/a/%252e%252e/c", "application: percent-decoded twice"),
            "/c"
        );
        assert_eq!(read("/a/%c0%ae%c0%ae/c", "lenient"), "/c");
        assert_eq!(read("/a/%e0%80%ae%e0%80%ae/c", "lenient"), "/c");
        assert_eq!(read("/a/%u002e%u002e/c", "lenient"), "/c");
        assert_eq!(read("/a/b%c0%af..%c0%af..%c0%afc", "lenient"), "/c");
        assert_eq!(read("/a/caf%C3%A9", "lenient"), "/a/café");
        assert_eq!(read("/a/..;x/c", "servlet"), "/c");
        assert_eq!(read("/a/b;x=1/c", "servlet"), "/a/b/c");
    }
}
