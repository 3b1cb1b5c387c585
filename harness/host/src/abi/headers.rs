//! Header and trailer maps: `proxy_{get,set}_header_map_pairs`,
//! `proxy_{get,add,replace,remove}_header_map_value`, `proxy_get_header_map_size`.
//!
//! Which map a call reaches depends on where the stream is (see [`crate::state`]):
//! a map outside its window reads as empty through `get_header_map_pairs` and answers
//! `BadArgument` to every other call, exactly as Envoy answers for a null map; in
//! `on_log` (Envoy's access-log phase) `get_header_map_value` answers `NotFound` for it
//! instead, as Envoy does, e.g. for the response headers of a stream reset before any
//! response. The HTTP
//! callout maps are readable from any context of the VM while
//! `on_http_call_response` runs, and never writable.

use super::{answer, map_type, memory, pairs, Fail, Status};
use crate::http::HeaderMap;
use crate::state::HostState;
use wasmtime::{Caller, Linker};

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: Caller<'_, HostState>, map: u32, ptr_ptr: u32, size_ptr: u32| {
            answer(get_pairs(&mut c, map, ptr_ptr, size_ptr))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut c: Caller<'_, HostState>, map: u32, ptr: u32, size: u32| {
            answer(set_pairs(&mut c, map, ptr, size))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: Caller<'_, HostState>,
         map: u32,
         key: u32,
         key_size: u32,
         ptr_ptr: u32,
         size_ptr: u32| {
            answer(get_value(&mut c, map, key, key_size, ptr_ptr, size_ptr))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut c: Caller<'_, HostState>,
         map: u32,
         key: u32,
         key_size: u32,
         value: u32,
         value_size: u32| {
            answer(modify(
                &mut c,
                map,
                key,
                key_size,
                Some((value, value_size)),
                Edit::Add,
            ))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut c: Caller<'_, HostState>,
         map: u32,
         key: u32,
         key_size: u32,
         value: u32,
         value_size: u32| {
            answer(modify(
                &mut c,
                map,
                key,
                key_size,
                Some((value, value_size)),
                Edit::Replace,
            ))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: Caller<'_, HostState>, map: u32, key: u32, key_size: u32| {
            answer(modify(&mut c, map, key, key_size, None, Edit::Remove))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_size",
        |mut c: Caller<'_, HostState>, map: u32, size_ptr: u32| {
            answer(get_size(&mut c, map, size_ptr))
        },
    )?;
    Ok(())
}

/// The map a read reaches, if any.
pub(crate) fn readable(state: &HostState, map: u32) -> Option<&HeaderMap> {
    match map {
        map_type::CALL_RESPONSE_HEADERS => return state.callout.as_ref().map(|c| &c.headers),
        map_type::CALL_RESPONSE_TRAILERS => return state.callout.as_ref().map(|c| &c.trailers),
        _ => {}
    }
    let stream = state.stream()?;
    let live = stream.live;
    match map {
        map_type::REQUEST_HEADERS if stream.in_log || live.request_headers => {
            Some(&stream.request.headers)
        }
        map_type::REQUEST_TRAILERS if live.request_trailers => stream.request.trailers.as_ref(),
        map_type::RESPONSE_HEADERS if stream.in_log => stream.response.sent_headers.as_ref(),
        map_type::RESPONSE_HEADERS if live.response_headers => Some(&stream.response.headers),
        map_type::RESPONSE_TRAILERS if stream.in_log => stream.response.sent_trailers.as_ref(),
        map_type::RESPONSE_TRAILERS if live.response_trailers => stream.response.trailers.as_ref(),
        _ => None,
    }
}

/// The map a write reaches, if any.
fn writable(state: &mut HostState, map: u32) -> Option<&mut HeaderMap> {
    let stream = state.stream_mut()?;
    let live = stream.live;
    match map {
        map_type::REQUEST_HEADERS if live.request_headers => Some(&mut stream.request.headers),
        map_type::REQUEST_TRAILERS if live.request_trailers => stream.request.trailers.as_mut(),
        map_type::RESPONSE_HEADERS if live.response_headers => Some(&mut stream.response.headers),
        map_type::RESPONSE_TRAILERS if live.response_trailers => stream.response.trailers.as_mut(),
        _ => None,
    }
}

fn check_type(map: u32) -> Result<(), Fail> {
    if map > map_type::MAX {
        return Err(Status::BadArgument.into());
    }
    Ok(())
}

fn get_pairs(
    c: &mut Caller<'_, HostState>,
    map: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> Result<(), Fail> {
    check_type(map)?;
    let size = match readable(c.data(), map) {
        Some(m) if !m.is_empty() => pairs::encoded_size(m.iter()),
        _ => 0,
    };
    memory::copy_out_with(c, size, ptr_ptr, size_ptr, |out, state| {
        if let Some(m) = readable(state, map) {
            pairs::encode_into(m.iter(), out);
        }
    })
}

fn set_pairs(c: &mut Caller<'_, HostState>, map: u32, ptr: u32, size: u32) -> Result<(), Fail> {
    check_type(map)?;
    let bytes = memory::read(c, ptr, size)?;
    let target = writable(c.data_mut(), map).ok_or(Status::BadArgument)?;
    *target = HeaderMap::from_pairs(pairs::decode(&bytes));
    Ok(())
}

fn get_value(
    c: &mut Caller<'_, HostState>,
    map: u32,
    key: u32,
    key_size: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> Result<(), Fail> {
    check_type(map)?;
    // Where the value is: its index among the map's headers, and its size.
    let found = memory::with_bytes(c, key, key_size, |key, state| {
        readable(state, map).map(|m| {
            m.iter()
                .position(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|i| (i, m.iter().nth(i).map_or(0, |(_, v)| v.len())))
        })
    })?;
    let (index, size) = match found {
        Some(found) => found.ok_or(Status::NotFound)?,
        // In `on_log` a map the stream never had (no response after a reset) is only
        // absent: Envoy's `getHeaderMapValue` answers NotFound in its access-log phase.
        None if c.data().stream().is_some_and(|s| s.in_log) => return Err(Status::NotFound.into()),
        None => return Err(Status::BadArgument.into()),
    };
    memory::copy_out_with(c, size, ptr_ptr, size_ptr, |out, state| {
        if let Some((_, v)) = readable(state, map).and_then(|m| m.iter().nth(index)) {
            out.copy_from_slice(v);
        }
    })
}

#[derive(Clone, Copy)]
enum Edit {
    Add,
    Replace,
    Remove,
}

fn modify(
    c: &mut Caller<'_, HostState>,
    map: u32,
    key: u32,
    key_size: u32,
    value: Option<(u32, u32)>,
    edit: Edit,
) -> Result<(), Fail> {
    check_type(map)?;
    let value = value.unwrap_or((0, 0));
    memory::with_two(c, (key, key_size), value, |key, value, state| {
        let target = writable(state, map).ok_or(Status::BadArgument)?;
        match edit {
            Edit::Add => target.add(key, value),
            Edit::Replace => target.set(key, value),
            Edit::Remove => target.remove(key),
        }
        Ok(())
    })?
}

fn get_size(c: &mut Caller<'_, HostState>, map: u32, size_ptr: u32) -> Result<(), Fail> {
    check_type(map)?;
    let size = writable(c.data_mut(), map)
        .map(|m| m.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>())
        .ok_or(Status::BadArgument)?;
    memory::write_u32(c, size_ptr, u32::try_from(size).unwrap_or(u32::MAX))
}
