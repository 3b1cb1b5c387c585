//! Stream control and the rest of the general ABI: `proxy_continue_stream`,
//! `proxy_close_stream`, `proxy_send_local_response`, `proxy_set_effective_context`,
//! `proxy_done`, `proxy_call_foreign_function`, `proxy_get_status`,
//! `proxy_clear_route_cache`, and the ABI 0.1 names some SDKs still import.
//!
//! Stream effects (continue, local reply, reset) are recorded and applied by the driver
//! when the callback returns, as Envoy defers them; a local reply also turns the
//! callback's own result into Pause. The harness registers no foreign functions and
//! never waits on `proxy_done`, so those answer `NotFound` as Envoy does for an unknown
//! function or a context that is not closing.

use super::{answer, memory, pairs, stream_type, Fail, Status};
use crate::http::{HeaderMap, LocalReply};
use crate::state::{Deferred, HostState};
use wasmtime::{Caller, Linker};

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_continue_stream",
        |mut c: Caller<'_, HostState>, stream: u32| answer(continue_stream(c.data_mut(), stream)),
    )?;
    linker.func_wrap(
        "env",
        "proxy_continue_request",
        |mut c: Caller<'_, HostState>| answer(continue_stream(c.data_mut(), stream_type::REQUEST)),
    )?;
    linker.func_wrap(
        "env",
        "proxy_continue_response",
        |mut c: Caller<'_, HostState>| answer(continue_stream(c.data_mut(), stream_type::RESPONSE)),
    )?;
    linker.func_wrap(
        "env",
        "proxy_close_stream",
        |mut c: Caller<'_, HostState>, stream: u32| answer(close_stream(c.data_mut(), stream)),
    )?;
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: Caller<'_, HostState>,
         status: u32,
         details: u32,
         details_size: u32,
         body: u32,
         body_size: u32,
         headers: u32,
         headers_size: u32,
         grpc_status: i32| {
            answer(send_local_response(
                &mut c,
                status,
                (details, details_size),
                (body, body_size),
                (headers, headers_size),
                grpc_status,
            ))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_effective_context",
        |mut c: Caller<'_, HostState>, id: u32| {
            let state = c.data_mut();
            if !state.is_context(id) {
                return Ok(Status::BadArgument as u32);
            }
            state.effective = Some(id);
            Ok(Status::Ok as u32)
        },
    )?;
    linker.func_wrap("env", "proxy_done", |_: Caller<'_, HostState>| {
        Ok(Status::NotFound as u32)
    })?;
    linker.func_wrap(
        "env",
        "proxy_clear_route_cache",
        |_: Caller<'_, HostState>| Ok(Status::Ok as u32),
    )?;
    linker.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |c: Caller<'_, HostState>,
         name: u32,
         name_size: u32,
         args: u32,
         args_size: u32,
         _results: u32,
         _results_size: u32| { answer(call_foreign(&c, name, name_size, args, args_size)) },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_status",
        |mut c: Caller<'_, HostState>, code_ptr: u32, ptr_ptr: u32, size_ptr: u32| {
            answer(get_status(&mut c, code_ptr, ptr_ptr, size_ptr))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_configuration",
        |mut c: Caller<'_, HostState>, ptr_ptr: u32, size_ptr: u32| {
            let state = c.data();
            let config = if state.configuring {
                state.plugin.configuration.clone()
            } else {
                state.plugin.vm_configuration.clone()
            };
            answer(memory::copy_out(&mut c, &config, ptr_ptr, size_ptr))
        },
    )?;
    Ok(())
}

fn continue_stream(state: &mut HostState, stream: u32) -> Result<(), Fail> {
    let response = match stream {
        stream_type::REQUEST => false,
        stream_type::RESPONSE => true,
        _ => return Err(Status::BadArgument.into()),
    };
    let context = state.context();
    if state.streams.contains_key(&context) {
        state
            .deferred
            .push(Deferred::Continue { context, response });
    }
    Ok(())
}

fn close_stream(state: &mut HostState, stream: u32) -> Result<(), Fail> {
    if stream > stream_type::MAX {
        return Err(Status::BadArgument.into());
    }
    let context = state.context();
    if stream <= stream_type::RESPONSE && state.streams.contains_key(&context) {
        state.deferred.push(Deferred::Reset { context });
    }
    Ok(())
}

fn send_local_response(
    c: &mut Caller<'_, HostState>,
    status: u32,
    details: (u32, u32),
    body: (u32, u32),
    headers: (u32, u32),
    grpc_status: i32,
) -> Result<(), Fail> {
    let details = memory::read(c, details.0, details.1)?;
    let body = memory::read(c, body.0, body.1)?;
    let headers = memory::read(c, headers.0, headers.1)?;
    let state = c.data_mut();
    let context = state.context();
    if state.streams.contains_key(&context) {
        state.deferred.push(Deferred::LocalReply {
            context,
            reply: LocalReply {
                status,
                details: String::from_utf8_lossy(&details).into_owned(),
                body,
                headers: HeaderMap::from_pairs(pairs::decode(&headers)),
                grpc_status,
            },
        });
    }
    state.stop_iteration = true;
    Ok(())
}

fn call_foreign(
    c: &Caller<'_, HostState>,
    name: u32,
    name_size: u32,
    args: u32,
    args_size: u32,
) -> Result<(), Fail> {
    memory::read(c, name, name_size)?;
    memory::read(c, args, args_size)?;
    Err(Status::NotFound.into())
}

fn get_status(
    c: &mut Caller<'_, HostState>,
    code_ptr: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> Result<(), Fail> {
    let (code, message) = c.data().status.clone();
    memory::write_u32(c, code_ptr, code)?;
    memory::copy_out(c, &message, ptr_ptr, size_ptr)
}
