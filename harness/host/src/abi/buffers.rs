//! Bodies and other buffers: `proxy_get_buffer_bytes`, `proxy_set_buffer_bytes`,
//! `proxy_get_buffer_status`.
//!
//! A body is writable only while its callback holds it; elsewhere it reads as empty and
//! refuses writes, as Envoy's null body buffer does. Writes follow Envoy's buffer
//! rules, which are not a general splice: `(0, 0)` prepends, `(0, len >= size)`
//! replaces the whole body, a start at or past the end appends, anything else is
//! `BadArgument`. Configurations and the callout body are read-only.

use super::{answer, buffer_type, memory, Fail, Status};
use crate::state::HostState;
use wasmtime::{Caller, Linker};

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: Caller<'_, HostState>,
         buffer: u32,
         start: u32,
         length: u32,
         ptr_ptr: u32,
         size_ptr: u32| {
            answer(get_bytes(&mut c, buffer, start, length, ptr_ptr, size_ptr))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: Caller<'_, HostState>,
         buffer: u32,
         start: u32,
         length: u32,
         ptr: u32,
         size: u32| { answer(set_bytes(&mut c, buffer, start, length, ptr, size)) },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_buffer_status",
        |mut c: Caller<'_, HostState>, buffer: u32, length_ptr: u32, flags_ptr: u32| {
            answer(get_status(&mut c, buffer, length_ptr, flags_ptr))
        },
    )?;
    Ok(())
}

/// What a buffer type reaches.
enum Buffer<'a> {
    /// A body the filter holds now.
    Live(&'a [u8]),
    /// Readable, not writable.
    Const(&'a [u8]),
    /// Envoy's null buffer: empty, not writable.
    Null,
}

impl Buffer<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Buffer::Live(b) | Buffer::Const(b) => b,
            Buffer::Null => &[],
        }
    }
}

fn lookup(state: &HostState, buffer: u32) -> Result<Buffer<'_>, Fail> {
    if buffer > buffer_type::MAX {
        return Err(Status::BadArgument.into());
    }
    let stream = state.stream();
    Ok(match buffer {
        buffer_type::REQUEST_BODY => match stream {
            Some(s) if s.live.request_body => Buffer::Live(&s.request.body),
            _ => Buffer::Null,
        },
        buffer_type::RESPONSE_BODY => match stream {
            Some(s) if s.live.response_body => Buffer::Live(&s.response.body),
            _ => Buffer::Null,
        },
        buffer_type::CALL_RESPONSE_BODY => match &state.callout {
            Some(callout) => Buffer::Const(&callout.body),
            None => return Err(Status::NotFound.into()),
        },
        buffer_type::VM_CONFIGURATION => Buffer::Const(&state.plugin.vm_configuration),
        buffer_type::PLUGIN_CONFIGURATION if state.configuring => {
            Buffer::Const(&state.plugin.configuration)
        }
        buffer_type::PLUGIN_CONFIGURATION => return Err(Status::NotFound.into()),
        _ => Buffer::Null,
    })
}

fn get_bytes(
    c: &mut Caller<'_, HostState>,
    buffer: u32,
    start: u32,
    length: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> Result<(), Fail> {
    let slice = {
        let found = lookup(c.data(), buffer)?;
        let bytes = found.bytes();
        let start = (start as usize).min(bytes.len());
        let end = start.saturating_add(length as usize).min(bytes.len());
        bytes[start..end].to_vec()
    };
    if slice.is_empty() {
        // Envoy writes nothing for an empty range.
        return Ok(());
    }
    memory::copy_out(c, &slice, ptr_ptr, size_ptr)
}

fn set_bytes(
    c: &mut Caller<'_, HostState>,
    buffer: u32,
    start: u32,
    length: u32,
    ptr: u32,
    size: u32,
) -> Result<(), Fail> {
    lookup(c.data(), buffer)?;
    let data = memory::read(c, ptr, size)?;
    let state = c.data_mut();
    let writable = match lookup(state, buffer)? {
        Buffer::Live(_) => true,
        Buffer::Const(_) | Buffer::Null => false,
    };
    if !writable {
        return Err(Status::BadArgument.into());
    }
    let stream = state.stream_mut().ok_or(Status::BadArgument)?;
    let body = if buffer == buffer_type::REQUEST_BODY {
        &mut stream.request.body
    } else {
        &mut stream.response.body
    };
    splice(body, start as usize, length as usize, &data)
}

/// Envoy's `Buffer::copyFrom` on a live body.
pub(crate) fn splice(
    body: &mut Vec<u8>,
    start: usize,
    length: usize,
    data: &[u8],
) -> Result<(), Fail> {
    if start == 0 {
        if length == 0 {
            body.splice(0..0, data.iter().copied());
            return Ok(());
        }
        if length >= body.len() {
            body.clear();
            body.extend_from_slice(data);
            return Ok(());
        }
        return Err(Status::BadArgument.into());
    }
    if start >= body.len() {
        body.extend_from_slice(data);
        return Ok(());
    }
    Err(Status::BadArgument.into())
}

fn get_status(
    c: &mut Caller<'_, HostState>,
    buffer: u32,
    length_ptr: u32,
    flags_ptr: u32,
) -> Result<(), Fail> {
    let length = lookup(c.data(), buffer)?.bytes().len();
    memory::write_u32(c, length_ptr, u32::try_from(length).unwrap_or(u32::MAX))?;
    memory::write_u32(c, flags_ptr, 0)
}

#[cfg(test)]
mod tests {
    use super::splice;

    fn apply(start: usize, length: usize, data: &[u8]) -> Option<String> {
        let mut body = b"hello body".to_vec();
        splice(&mut body, start, length, data).ok()?;
        Some(String::from_utf8_lossy(&body).into_owned())
    }

    #[test]
    fn prepend_replace_append_as_envoy() {
        assert_eq!(apply(0, 0, b"<<").as_deref(), Some("<<hello body"));
        assert_eq!(apply(0, 10, b"new").as_deref(), Some("new"));
        assert_eq!(apply(0, 99, b"new").as_deref(), Some("new"));
        assert_eq!(apply(10, 0, b">>").as_deref(), Some("hello body>>"));
        assert_eq!(apply(50, 3, b">>").as_deref(), Some("hello body>>"));
    }

    #[test]
    fn a_splice_in_the_middle_is_refused() {
        assert_eq!(apply(3, 2, b"x"), None);
        assert_eq!(apply(0, 4, b"x"), None);
    }
}
