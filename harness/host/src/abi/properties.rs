//! `proxy_get_property` and `proxy_set_property`.
//!
//! A property path arrives as NUL-separated segments (`request\0path`). Resolution
//! follows Envoy's: the first segment picks an attribute family, the rest walk into
//! it; a string leaf with segments left is `NotFound`, an empty path is
//! `SerializationFailure`. Per-stream attributes (`request.*`, `response.*`,
//! `upstream.*`, `source.*`, ...) exist only in stream contexts. Values the caller set
//! on the stream ([`crate::Properties`]) win over what the host derives from the
//! stream's headers; values the filter wrote with `proxy_set_property` live under
//! their own names, as Envoy's filter state does.

use super::{answer, memory, Fail, Status};
use crate::http::HeaderMap;
use crate::properties::Value;
use crate::state::{HostState, Stream};
use std::borrow::Cow;
use wasmtime::{Caller, Linker};

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: Caller<'_, HostState>, path: u32, path_size: u32, ptr_ptr: u32, size_ptr: u32| {
            answer(get(&mut c, path, path_size, ptr_ptr, size_ptr))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_property",
        |mut c: Caller<'_, HostState>, path: u32, path_size: u32, value: u32, value_size: u32| {
            answer(set(&mut c, path, path_size, value, value_size))
        },
    )?;
    Ok(())
}

fn get(
    c: &mut Caller<'_, HostState>,
    path: u32,
    path_size: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> Result<(), Fail> {
    let value = memory::with_bytes(c, path, path_size, |path, state| resolve(state, path))??;
    memory::copy_out(c, &value, ptr_ptr, size_ptr)
}

fn set(
    c: &mut Caller<'_, HostState>,
    path: u32,
    path_size: u32,
    value: u32,
    value_size: u32,
) -> Result<(), Fail> {
    let path = memory::read(c, path, path_size)?;
    let value = memory::read(c, value, value_size)?;
    let stream = c.data_mut().stream_mut().ok_or(Status::NotFound)?;
    stream.filter_state.insert(path, value);
    Ok(())
}

/// The encoded value at a NUL-separated path.
pub(crate) fn resolve(state: &HostState, path: &[u8]) -> Result<Vec<u8>, Fail> {
    if path.is_empty() {
        return Err(Status::SerializationFailure.into());
    }
    let raw = path.strip_suffix(&[0]).unwrap_or(path);
    // Segments borrow the path: text only where it is not UTF-8 (checked with the
    // standard library's word-at-a-time check first, which is cheaper than a lossy
    // conversion that finds nothing to replace).
    let texts: Vec<Cow<'_, str>> = raw
        .split(|b| *b == 0)
        .map(|segment| match std::str::from_utf8(segment) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(segment),
        })
        .collect();
    let top = raw.split(|b| *b == 0).next().unwrap_or_default();
    let deeper = texts.len() > 1;
    let stream = state.stream();
    if let Some(stream) = stream.filter(|s| !s.properties.is_empty()) {
        if let Some(value) = stream.properties.get(&texts.join(".")) {
            return Ok(value.encode());
        }
    }
    let plugin = &state.plugin;
    let value = match texts[0].as_ref() {
        "plugin_name" => leaf(deeper, || Value::String(plugin.name.clone())),
        "plugin_root_id" => leaf(deeper, || Value::String(plugin.root_id.clone())),
        "plugin_vm_id" => leaf(deeper, || Value::String(plugin.vm_id.clone())),
        "node" => match texts.get(1).map(AsRef::as_ref) {
            None => Some(Value::Message(plugin.node.encode())),
            Some("id") if texts.len() == 2 && !plugin.node.id.is_empty() => {
                Some(Value::String(plugin.node.id.clone()))
            }
            Some("cluster") if texts.len() == 2 && !plugin.node.cluster.is_empty() => {
                Some(Value::String(plugin.node.cluster.clone()))
            }
            _ => None,
        },
        family
        @ ("request" | "response" | "upstream" | "source" | "destination" | "connection") => {
            let stream = stream.ok_or(Status::NotFound)?;
            stream_attribute(state, stream, family, &texts[1..])
        }
        "route_name" | "cluster_name" => stream
            .map(|_| leaf(deeper, || Value::String(String::new())))
            .unwrap_or(None),
        _ => {
            let stream = stream.ok_or(Status::NotFound)?;
            match stream.filter_state.get(top) {
                Some(bytes) if !deeper => Some(Value::Bytes(bytes.clone())),
                _ => None,
            }
        }
    };
    value
        .map(|v| v.encode())
        .ok_or(Fail::Status(Status::NotFound))
}

fn leaf(deeper: bool, value: impl FnOnce() -> Value) -> Option<Value> {
    (!deeper).then(value)
}

fn text(bytes: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(bytes).into_owned())
}

/// A header map as a CEL map: one entry per name, repeated values joined with `,`.
fn header_map(map: &HeaderMap, rest: &[Cow<'_, str>]) -> Option<Value> {
    match rest {
        [] => {
            let mut entries: Vec<(String, String)> = Vec::new();
            for (k, v) in map.to_strings() {
                match entries.iter_mut().find(|(name, _)| *name == k) {
                    Some((_, value)) => {
                        value.push(',');
                        value.push_str(&v);
                    }
                    None => entries.push((k, v)),
                }
            }
            Some(Value::Map(entries))
        }
        [name] => {
            let values = map.get_all(name);
            if values.is_empty() {
                return None;
            }
            let joined: Vec<u8> = values.join(&b","[..]);
            Some(text(&joined))
        }
        _ => None,
    }
}

fn stream_attribute(
    state: &HostState,
    stream: &Stream,
    family: &str,
    rest: &[Cow<'_, str>],
) -> Option<Value> {
    // Attributes read from the request headers exist while the filter holds them and
    // in `on_log`, as in Envoy, whose pointer to them is gone once they went on.
    let empty = HeaderMap::new();
    let request = if stream.in_log || stream.live.request_headers {
        &stream.request.headers
    } else {
        &empty
    };
    let header = |name: &str| request.get(name).map(text);
    let (field, deeper) = match rest.split_first() {
        Some((field, deeper)) => (field.as_ref(), deeper),
        None => return None,
    };
    if !deeper.is_empty()
        && !matches!(
            (family, field),
            ("request" | "response", "headers" | "trailers")
        )
    {
        return None;
    }
    match (family, field) {
        ("request", "path") => header(":path"),
        ("request", "url_path") => request
            .get(":path")
            .map(|p| text(p.split(|b| *b == b'?').next().unwrap_or(p))),
        ("request", "query") => {
            request
                .get(":path")
                .map(|p| match p.iter().position(|b| *b == b'?') {
                    Some(at) => text(&p[at + 1..]),
                    None => Value::String(String::new()),
                })
        }
        ("request", "host") => header(":authority"),
        ("request", "scheme") => header(":scheme"),
        ("request", "method") => header(":method"),
        ("request", "referer") => header("referer"),
        ("request", "useragent") => header("user-agent"),
        ("request", "id") => header("x-request-id"),
        ("request", "protocol") => Some(Value::String("HTTP/1.1".into())),
        ("request", "time") => Some(Value::Timestamp(
            i64::try_from(stream.started_nanos).unwrap_or(i64::MAX),
        )),
        ("request", "size") => {
            let length = request
                .get_str("content-length")
                .and_then(|v| v.parse::<i64>().ok());
            let received = stream.request.sent_body.len()
                + stream.request.body.len()
                + stream.request.held_body.len();
            Some(Value::Int(
                length.unwrap_or(i64::try_from(received).unwrap_or(i64::MAX)),
            ))
        }
        ("request", "headers") if stream.in_log || stream.live.request_headers => {
            header_map(request, deeper)
        }
        ("response", _) if stream.response.phase == crate::state::Phase::Idle => None,
        ("response", "code") => {
            let headers = stream
                .response
                .sent_headers
                .as_ref()
                .unwrap_or(&stream.response.headers);
            headers
                .get_str(":status")
                .and_then(|s| s.parse::<i64>().ok())
                .map(Value::Int)
        }
        ("response", "code_details") => stream.details.clone().map(Value::String),
        ("response", "headers") if stream.in_log => stream
            .response
            .sent_headers
            .as_ref()
            .and_then(|h| header_map(h, deeper)),
        ("response", "headers") if stream.live.response_headers => {
            header_map(&stream.response.headers, deeper)
        }
        ("response", "trailers") => stream
            .response
            .trailers
            .as_ref()
            .and_then(|t| header_map(t, deeper)),
        ("response", "size") => Some(Value::Int(
            i64::try_from(stream.response.sent_body.len()).unwrap_or(i64::MAX),
        )),
        ("response", "flags") => Some(Value::Uint(0)),
        ("upstream", "request_attempt_count") => {
            Some(Value::Uint(u64::from(stream.upstream_reached)))
        }
        ("upstream" | "source" | "destination", "address") => {
            address(state, stream, family).map(Value::String)
        }
        ("upstream" | "source" | "destination", "port") => {
            let address = address(state, stream, family)?;
            let (_, port) = address.rsplit_once(':')?;
            port.parse::<i64>().ok().map(Value::Int)
        }
        ("connection", "mtls") => Some(Value::Bool(false)),
        ("connection", "id") => Some(Value::Uint(u64::from(state.context()))),
        _ => None,
    }
}

/// `source.address`, `destination.address` or `upstream.address`: what the caller
/// set on the stream, else the host's own: the client's port from the context id, the
/// listener, and the proxy's upstream once the request reached it.
fn address(state: &HostState, stream: &Stream, family: &str) -> Option<String> {
    let set = match family {
        "source" => stream.properties.get("source.address"),
        "destination" => stream.properties.get("destination.address"),
        _ => stream.properties.get("upstream.address"),
    };
    if let Some(Value::String(address)) = set {
        return Some(address.clone());
    }
    match family {
        "source" => Some(format!("127.0.0.1:{}", 40_000 + state.context() % 20_000)),
        "destination" => Some("127.0.0.1:10000".to_owned()),
        _ => stream
            .upstream_reached
            .then(|| state.shared.upstream_address.clone()),
    }
}
