//! Callouts: `proxy_http_call`, and the gRPC calls, which the harness does not carry.
//!
//! An HTTP call is checked as Envoy checks it (readable memory, a known cluster,
//! `:method`, `:path` and `:authority` present, a timeout that fits a signed 32-bit
//! integer), then queued; the driver asks the proxy's callout handler for the answer and
//! calls `on_http_call_response` on the VM's root context after the current callback,
//! never inside it. gRPC calls answer `ParseFailure` for a service that is not a
//! protobuf message, as Envoy does, and `InternalFailure` otherwise; stream operations
//! on unknown tokens answer `BadArgument`, as Envoy 1.40 does.

use super::{answer, memory, pairs, Fail, Status};
use crate::http::{HeaderMap, HttpCall};
use crate::state::{HostState, PendingCall};
use wasmtime::{Caller, Linker};

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_http_call",
        |mut c: Caller<'_, HostState>,
         uri: u32,
         uri_size: u32,
         headers: u32,
         headers_size: u32,
         body: u32,
         body_size: u32,
         trailers: u32,
         trailers_size: u32,
         timeout: u32,
         token_ptr: u32| {
            answer(http_call(
                &mut c,
                (uri, uri_size),
                (headers, headers_size),
                (body, body_size),
                (trailers, trailers_size),
                timeout,
                token_ptr,
            ))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_call",
        |c: Caller<'_, HostState>,
         service: u32,
         service_size: u32,
         name: u32,
         name_size: u32,
         method: u32,
         method_size: u32,
         metadata: u32,
         metadata_size: u32,
         message: u32,
         message_size: u32,
         _timeout: u32,
         _token_ptr: u32| {
            answer(grpc(
                &c,
                &[
                    (service, service_size),
                    (name, name_size),
                    (method, method_size),
                    (metadata, metadata_size),
                    (message, message_size),
                ],
            ))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_stream",
        |c: Caller<'_, HostState>,
         service: u32,
         service_size: u32,
         name: u32,
         name_size: u32,
         method: u32,
         method_size: u32,
         metadata: u32,
         metadata_size: u32,
         _token_ptr: u32| {
            answer(grpc(
                &c,
                &[
                    (service, service_size),
                    (name, name_size),
                    (method, method_size),
                    (metadata, metadata_size),
                ],
            ))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_send",
        |c: Caller<'_, HostState>, _token: u32, message: u32, message_size: u32, _end: u32| {
            answer(memory::read(&c, message, message_size).and(Err(Status::BadArgument.into())))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_cancel",
        |_: Caller<'_, HostState>, _token: u32| Ok(Status::BadArgument as u32),
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_close",
        |_: Caller<'_, HostState>, _token: u32| Ok(Status::BadArgument as u32),
    )?;
    Ok(())
}

fn http_call(
    c: &mut Caller<'_, HostState>,
    uri: (u32, u32),
    headers: (u32, u32),
    body: (u32, u32),
    trailers: (u32, u32),
    timeout: u32,
    token_ptr: u32,
) -> Result<(), Fail> {
    let cluster = memory::read(c, uri.0, uri.1)?;
    let body = memory::read(c, body.0, body.1)?;
    let headers = memory::read(c, headers.0, headers.1)?;
    let trailers = memory::read(c, trailers.0, trailers.1)?;
    // Envoy writes the token slot first, to fail before starting anything.
    memory::write_u32(c, token_ptr, 0)?;
    if i32::try_from(timeout).is_err() {
        return Err(Status::BadArgument.into());
    }
    let cluster = String::from_utf8_lossy(&cluster).into_owned();
    let headers = HeaderMap::from_pairs(pairs::decode(&headers));
    let trailers = HeaderMap::from_pairs(pairs::decode(&trailers));
    let state = c.data_mut();
    if !state.shared.clusters.contains(&cluster) {
        return Err(Status::BadArgument.into());
    }
    if [":path", ":method", ":authority"]
        .iter()
        .any(|h| !headers.contains(h))
    {
        return Err(Status::BadArgument.into());
    }
    let mut token = state.next_call_token;
    while token == 0 || state.calls.iter().any(|p| p.call.token == token) {
        token = token.wrapping_add(1);
    }
    state.next_call_token = token.wrapping_add(1);
    let now = state.shared.clock.now_nanos();
    state.calls.push(PendingCall {
        call: HttpCall {
            worker: state.worker,
            token,
            cluster,
            headers,
            body,
            trailers,
            timeout_ms: timeout,
        },
        deadline: (timeout > 0).then(|| now.saturating_add(u64::from(timeout) * 1_000_000)),
        answer: None,
    });
    memory::write_u32(c, token_ptr, token)
}

fn grpc(c: &Caller<'_, HostState>, args: &[(u32, u32)]) -> Result<(), Fail> {
    let mut service = Vec::new();
    for (i, (ptr, size)) in args.iter().enumerate() {
        let bytes = memory::read(c, *ptr, *size)?;
        if i == 0 {
            service = bytes;
        }
    }
    if !is_protobuf(&service) {
        return Err(Status::ParseFailure.into());
    }
    Err(Status::InternalFailure.into())
}

/// Whether `bytes` walk as protobuf wire format.
fn is_protobuf(mut bytes: &[u8]) -> bool {
    fn varint(bytes: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = bytes.split_first()?;
            *bytes = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    while !bytes.is_empty() {
        let Some(tag) = varint(&mut bytes) else {
            return false;
        };
        if tag >> 3 == 0 {
            return false;
        }
        let skip = match tag & 7 {
            0 => {
                if varint(&mut bytes).is_none() {
                    return false;
                }
                0
            }
            1 => 8,
            2 => match varint(&mut bytes).and_then(|n| usize::try_from(n).ok()) {
                Some(n) => n,
                None => return false,
            },
            5 => 4,
            _ => return false,
        };
        if skip > bytes.len() {
            return false;
        }
        bytes = &bytes[skip..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::is_protobuf;

    #[test]
    fn protobuf_wire_format() {
        assert!(is_protobuf(b""));
        assert!(is_protobuf(&[0x0a, 0x03, b'a', b'b', b'c']));
        assert!(!is_protobuf(&[0xff, 0xff, 0xff]));
        assert!(!is_protobuf(&[0x0a, 0x09, b'a']));
    }
}
