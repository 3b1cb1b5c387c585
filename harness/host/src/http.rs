//! HTTP messages as the host holds them: header maps with Envoy's rules, requests and
//! responses, local replies and HTTP callouts.
//!
//! ## Header maps
//!
//! A filter sees header maps through `proxy_get_header_map_*` and changes them through
//! `proxy_add/replace/remove_header_map_value`. What it observes must be what Envoy
//! shows, or a filter that passes here fails in the mesh, so [`HeaderMap`] keeps
//! Envoy's rules: names are lower-cased, pseudo-headers (`:path`, ...) stay before the
//! others, adding appends a value, replacing removes every value and appends the new one
//! at the end, a lookup returns the first value. Values are bytes: a client may send
//! anything, and the filter must cope.

use std::fmt;
use std::sync::Arc;

/// Header names and values in order, as Envoy keeps them.
///
/// Names and values sit back to back in one buffer, each entry a range of it. Copies
/// of a map share the buffer until one of them is written to, which then copies it:
/// the host keeps what went past the filter, a test's `Exchange` gets the request and
/// the response, and a test sends one request many times, all without copying the
/// headers (a request cycle through the no-op module allocated 14 times, now 5).
#[derive(Clone, Default)]
pub struct HeaderMap {
    /// `None` until the first write, so an empty map allocates nothing.
    buffer: Option<Arc<Buffer>>,
}

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

/// What an empty map reads.
static EMPTY: Buffer = Buffer {
    bytes: Vec::new(),
    entries: Vec::new(),
};

/// One header: the name at `start..name_end` of the buffer, the value up to `end`.
#[derive(Clone, Copy, Debug)]
struct Entry {
    start: u32,
    name_end: u32,
    end: u32,
}

// === impl Buffer ===

impl Buffer {
    /// Room for a typical message's headers, or for a few more than `from` holds:
    /// a buffer is made to be written to, so it should not grow at the first write.
    fn with_room(from: &Buffer) -> Buffer {
        let mut bytes = Vec::with_capacity(from.bytes.len().max(256) + 256);
        bytes.extend_from_slice(&from.bytes);
        let mut entries = Vec::with_capacity(from.entries.len().max(8) + 8);
        entries.extend_from_slice(&from.entries);
        Buffer { bytes, entries }
    }

    fn name(&self, e: &Entry) -> &[u8] {
        &self.bytes[e.start as usize..e.name_end as usize]
    }

    fn value(&self, e: &Entry) -> &[u8] {
        &self.bytes[e.name_end as usize..e.end as usize]
    }
}

impl Clone for Buffer {
    /// The copy a write to a shared map makes.
    fn clone(&self) -> Buffer {
        Buffer::with_room(self)
    }
}

// === impl HeaderMap ===

impl HeaderMap {
    pub fn new() -> HeaderMap {
        HeaderMap::default()
    }

    /// The map with `(name, value)` pairs added in order.
    pub fn from_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.add(k.as_ref(), v.as_ref());
        }
        map
    }

    fn buffer(&self) -> &Buffer {
        self.buffer.as_deref().unwrap_or(&EMPTY)
    }

    /// The buffer to write to, copied first if another map shares it.
    fn buffer_mut(&mut self) -> &mut Buffer {
        let shared = self
            .buffer
            .get_or_insert_with(|| Arc::new(Buffer::with_room(&EMPTY)));
        Arc::make_mut(shared)
    }

    pub fn len(&self) -> usize {
        self.buffer().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buffer().entries.is_empty()
    }

    /// The first value of `name` (any case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.get_bytes(name.as_bytes())
    }

    /// The first value of `name` as text, if it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of `name`, in order.
    pub fn get_all(&self, name: &str) -> Vec<&[u8]> {
        self.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
            .collect()
    }

    pub(crate) fn get_bytes(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Appends a value (pseudo-headers go after the last pseudo-header).
    pub fn add(&mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let (name, value) = (name.as_ref(), value.as_ref());
        let buffer = self.buffer_mut();
        let start = buffer.bytes.len();
        buffer.bytes.extend_from_slice(name);
        buffer.bytes[start..].make_ascii_lowercase();
        let name_end = buffer.bytes.len();
        buffer.bytes.extend_from_slice(value);
        let entry = Entry {
            start: offset(start),
            name_end: offset(name_end),
            end: offset(buffer.bytes.len()),
        };
        if name.first() == Some(&b':') {
            let at = buffer
                .entries
                .iter()
                .take_while(|e| buffer.bytes.get(e.start as usize) == Some(&b':'))
                .count();
            buffer.entries.insert(at, entry);
        } else {
            buffer.entries.push(entry);
        }
    }

    /// Removes every value of `name`, then appends `value`.
    pub fn set(&mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.remove(name.as_ref());
        self.add(name, value);
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: impl AsRef<[u8]>) {
        let name = name.as_ref();
        if !self.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
            return;
        }
        let old = std::mem::take(self);
        for (k, v) in old.iter().filter(|(k, _)| !k.eq_ignore_ascii_case(name)) {
            self.add(k, v);
        }
    }

    /// Builder form of [`HeaderMap::add`].
    pub fn with(mut self, name: &str, value: &str) -> HeaderMap {
        self.add(name, value);
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
        let buffer = self.buffer();
        buffer
            .entries
            .iter()
            .map(move |e| (buffer.name(e), buffer.value(e)))
    }

    /// The pairs as (lossy) text, for assertions and printing.
    pub fn to_strings(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }
}

/// A position in a map's buffer; maps stay far below 4 GiB (Envoy caps headers at
/// 60 KiB by default, 8 MiB at most).
fn offset(at: usize) -> u32 {
    u32::try_from(at).unwrap_or(u32::MAX)
}

impl PartialEq for HeaderMap {
    fn eq(&self, other: &HeaderMap) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for HeaderMap {}

impl fmt::Debug for HeaderMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.to_strings()).finish()
    }
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(K, V)> for HeaderMap {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> HeaderMap {
        HeaderMap::from_pairs(iter)
    }
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>, const N: usize> From<[(K, V); N]> for HeaderMap {
    fn from(pairs: [(K, V); N]) -> HeaderMap {
        HeaderMap::from_pairs(pairs)
    }
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> From<Vec<(K, V)>> for HeaderMap {
    fn from(pairs: Vec<(K, V)>) -> HeaderMap {
        HeaderMap::from_pairs(pairs)
    }
}

/// A request as a client sends it: what reaches the proxy from downstream.
#[derive(Debug, Clone, Default)]
pub struct DownstreamRequest {
    pub headers: HeaderMap,
    /// Body chunks, each delivered as one `on_http_request_body`.
    pub body: Vec<Vec<u8>>,
    pub trailers: Option<HeaderMap>,
}

impl DownstreamRequest {
    /// `METHOD path` for `authority`, with `:scheme http`, as Envoy's codec presents an
    /// HTTP/1.1 request.
    pub fn new(method: &str, path: &str, authority: &str) -> DownstreamRequest {
        DownstreamRequest {
            headers: HeaderMap::from_pairs([
                (":authority", authority),
                (":path", path),
                (":method", method),
                (":scheme", "http"),
            ]),
            body: Vec::new(),
            trailers: None,
        }
    }

    pub fn get(path: &str) -> DownstreamRequest {
        DownstreamRequest::new("GET", path, "localhost")
    }

    pub fn header(mut self, name: &str, value: &str) -> DownstreamRequest {
        self.headers.add(name, value);
        self
    }

    /// Adds a body chunk.
    pub fn body(mut self, chunk: impl AsRef<[u8]>) -> DownstreamRequest {
        self.body.push(chunk.as_ref().to_vec());
        self
    }

    pub fn trailers(mut self, trailers: HeaderMap) -> DownstreamRequest {
        self.trailers = Some(trailers);
        self
    }
}

/// A response as an upstream sends it.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub headers: HeaderMap,
    pub body: Vec<Vec<u8>>,
    pub trailers: Option<HeaderMap>,
}

impl Response {
    /// `status` with no body.
    pub fn status(status: u16) -> Response {
        // The digits written here rather than formatted into a String: upstreams in
        // tests and benchmarks build one response per request.
        let mut digits = [0u8; 5];
        let mut at = digits.len();
        let mut rest = status;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        Response {
            headers: HeaderMap::from_pairs([(&b":status"[..], &digits[at..])]),
            body: Vec::new(),
            trailers: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.add(name, value);
        self
    }

    /// Adds a body chunk and sets `content-length` to the whole body.
    pub fn body(mut self, chunk: impl AsRef<[u8]>) -> Response {
        self.body.push(chunk.as_ref().to_vec());
        let length: usize = self.body.iter().map(Vec::len).sum();
        self.headers.set("content-length", length.to_string());
        self
    }

    pub fn trailers(mut self, trailers: HeaderMap) -> Response {
        self.trailers = Some(trailers);
        self
    }

    /// The `:status` as a number.
    pub fn status_code(&self) -> Option<u16> {
        self.headers.get_str(":status").and_then(|s| s.parse().ok())
    }
}

/// A local reply as the filter asked for it with `proxy_send_local_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    pub details: String,
    pub body: Vec<u8>,
    pub headers: HeaderMap,
    pub grpc_status: i32,
}

impl LocalReply {
    /// The response headers Envoy builds for it: `:status`, the filter's headers, then
    /// `content-length` and (unless the filter set one) `content-type: text/plain` when
    /// there is a body.
    pub(crate) fn response_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::from_pairs([(":status", self.status.to_string())]);
        for (k, v) in self.headers.iter() {
            headers.add(k, v);
        }
        if !self.body.is_empty() {
            headers.set("content-length", self.body.len().to_string());
            if !headers.contains("content-type") {
                headers.add("content-type", "text/plain");
            }
        }
        headers
    }
}

/// An HTTP callout made with `proxy_http_call`.
#[derive(Debug, Clone)]
pub struct HttpCall {
    pub worker: usize,
    pub token: u32,
    pub cluster: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: HeaderMap,
    pub timeout_ms: u32,
}

/// How a callout ends.
#[derive(Debug, Clone)]
pub enum CallOutcome {
    /// The upstream answered.
    Response(Response),
    /// The connection was reset: `on_http_call_response` with no headers, and
    /// `proxy_get_status` answering BrokenConnection ("reset"), as Envoy does.
    Reset,
    /// No answer yet: resolve it later with `Proxy::resolve_http_call`, or let it time
    /// out (Envoy then answers 504 "upstream request timeout").
    Pending,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_cased_and_lookups_ignore_case() {
        let mut map = HeaderMap::new();
        map.add("X-Trace", "1");
        assert_eq!(map.get("x-trace"), Some(&b"1"[..]));
        assert_eq!(map.get("X-TRACE"), Some(&b"1"[..]));
        assert_eq!(map.to_strings()[0].0, "x-trace");
    }

    #[test]
    fn pseudo_headers_stay_first() {
        let mut map = HeaderMap::from_pairs([(":path", "/"), ("host", "a")]);
        map.add(":method", "GET");
        let names: Vec<String> = map.to_strings().into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, [":path", ":method", "host"]);
    }

    #[test]
    fn add_appends_and_get_returns_the_first_value() {
        let mut map = HeaderMap::new();
        map.add("x-multi", "a");
        map.add("x-multi", "b");
        assert_eq!(map.get_str("x-multi"), Some("a"));
        assert_eq!(map.get_all("x-multi").len(), 2);
    }

    #[test]
    fn status_digits() {
        for code in [0, 7, 42, 200, 503, 65535] {
            assert_eq!(Response::status(code).status_code(), Some(code));
        }
    }

    #[test]
    fn copies_are_independent() {
        let original = HeaderMap::from_pairs([(":path", "/"), ("x", "1")]);
        let mut copy = original.clone();
        copy.add("y", "2");
        copy.set("x", "3");
        assert_eq!(original.to_strings().len(), 2);
        assert_eq!(original.get_str("x"), Some("1"));
        assert_eq!(copy.get_str("x"), Some("3"));
        assert_eq!(copy.get_str("y"), Some("2"));
        assert!(HeaderMap::new().is_empty());
    }

    #[test]
    fn set_removes_every_value_and_appends() {
        let mut map =
            HeaderMap::from_pairs([("content-type", "a"), ("x", "1"), ("content-type", "b")]);
        map.set("content-type", "c");
        assert_eq!(
            map.to_strings(),
            [
                ("x".into(), "1".into()),
                ("content-type".into(), "c".into())
            ]
        );
    }

    #[test]
    fn local_reply_headers_follow_envoy() {
        let reply = LocalReply {
            status: 403,
            details: "d".into(),
            body: b"denied".to_vec(),
            headers: HeaderMap::from_pairs([
                ("x-local", "1"),
                ("content-type", "application/json"),
            ]),
            grpc_status: -1,
        };
        let names: Vec<(String, String)> = reply.response_headers().to_strings();
        assert_eq!(
            names,
            [
                (":status".into(), "403".into()),
                ("x-local".into(), "1".into()),
                ("content-type".into(), "application/json".into()),
                ("content-length".into(), "6".into()),
            ]
        );
        let plain = LocalReply {
            headers: HeaderMap::new(),
            ..reply
        };
        assert_eq!(
            plain.response_headers().get_str("content-type"),
            Some("text/plain")
        );
    }
}
