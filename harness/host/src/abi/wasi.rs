//! The WASI preview 1 functions a `wasm32-wasip1` module imports, as a proxy offers
//! them.
//!
//! A proxy-wasm module has no files, arguments or sockets: stdout and stderr go to the
//! log (info and error, as Envoy maps them, one trailing newline dropped), clocks read
//! the proxy clock, `random_get` draws from a seeded generator (deterministic runs), the
//! environment is the plugin's. File calls answer `EBADF`, the rest `ENOSYS`, and
//! `proc_exit` ends the callback with a trap that names the exit code. Every function
//! is defined under both `wasi_snapshot_preview1` and `wasi_unstable`.

use super::memory;
use super::Fail;
use crate::state::HostState;
use crate::LogLevel;
use wasmtime::{Caller, Linker};

pub const SUCCESS: u32 = 0;
pub const EBADF: u32 = 8;
pub const EFAULT: u32 = 21;
pub const EINVAL: u32 = 28;
pub const ENOSYS: u32 = 52;
pub const ENOTSUP: u32 = 58;
pub const ESPIPE: u32 = 70;

fn errno(result: Result<(), Fail>) -> wasmtime::Result<u32> {
    match result {
        Ok(()) => Ok(SUCCESS),
        Err(Fail::Status(_)) => Ok(EFAULT),
        Err(Fail::Trap(e)) => Err(e),
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    for module in ["wasi_snapshot_preview1", "wasi_unstable"] {
        linker.func_wrap(
            module,
            "fd_write",
            |mut c: Caller<'_, HostState>, fd: u32, iovs: u32, count: u32, written: u32| {
                fd_write(&mut c, fd, iovs, count, written)
            },
        )?;
        linker.func_wrap(
            module,
            "fd_read",
            |_: Caller<'_, HostState>, _: u32, _: u32, _: u32, _: u32| Ok(ENOSYS),
        )?;
        linker.func_wrap(
            module,
            "fd_seek",
            |_: Caller<'_, HostState>, fd: u32, _: i64, _: u32, _: u32| {
                Ok(if fd <= 2 { ESPIPE } else { EBADF })
            },
        )?;
        linker.func_wrap(module, "fd_close", |_: Caller<'_, HostState>, fd: u32| {
            Ok(if fd <= 2 { SUCCESS } else { EBADF })
        })?;
        linker.func_wrap(module, "fd_sync", |_: Caller<'_, HostState>, fd: u32| {
            Ok(if fd <= 2 { SUCCESS } else { EBADF })
        })?;
        linker.func_wrap(
            module,
            "fd_fdstat_get",
            |mut c: Caller<'_, HostState>, fd: u32, stat: u32| {
                if fd != 1 && fd != 2 {
                    return Ok(EBADF);
                }
                // filetype 0, flags 0, rights: fd_write (bit 6) only.
                let mut bytes = [0u8; 24];
                bytes[8] = 64;
                errno(memory::write(&mut c, stat, &bytes))
            },
        )?;
        linker.func_wrap(
            module,
            "fd_fdstat_set_flags",
            |_: Caller<'_, HostState>, _: u32, _: u32| Ok(ENOSYS),
        )?;
        linker.func_wrap(
            module,
            "fd_prestat_get",
            |_: Caller<'_, HostState>, _: u32, _: u32| Ok(EBADF),
        )?;
        linker.func_wrap(
            module,
            "fd_prestat_dir_name",
            |_: Caller<'_, HostState>, _: u32, _: u32, _: u32| Ok(EBADF),
        )?;
        linker.func_wrap(
            module,
            "environ_sizes_get",
            |mut c: Caller<'_, HostState>, count_ptr: u32, size_ptr: u32| {
                let env = c.data().plugin.env.clone();
                let size: usize = env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
                errno(
                    memory::write_u32(&mut c, count_ptr, env.len() as u32)
                        .and_then(|()| memory::write_u32(&mut c, size_ptr, size as u32)),
                )
            },
        )?;
        linker.func_wrap(
            module,
            "environ_get",
            |mut c: Caller<'_, HostState>, array: u32, buffer: u32| {
                errno(environ_get(&mut c, array, buffer))
            },
        )?;
        linker.func_wrap(
            module,
            "args_sizes_get",
            |mut c: Caller<'_, HostState>, count_ptr: u32, size_ptr: u32| {
                errno(
                    memory::write_u32(&mut c, count_ptr, 0)
                        .and_then(|()| memory::write_u32(&mut c, size_ptr, 0)),
                )
            },
        )?;
        linker.func_wrap(
            module,
            "args_get",
            |_: Caller<'_, HostState>, _: u32, _: u32| Ok(SUCCESS),
        )?;
        linker.func_wrap(
            module,
            "clock_time_get",
            |mut c: Caller<'_, HostState>, id: u32, _precision: i64, ptr: u32| {
                let clock = &c.data().shared.clock;
                let now = match id {
                    0 => clock.now_nanos(),
                    1 => clock.monotonic_nanos(),
                    2 | 3 => return Ok(ENOTSUP),
                    _ => return Ok(EINVAL),
                };
                errno(memory::write_u64(&mut c, ptr, now))
            },
        )?;
        linker.func_wrap(
            module,
            "clock_res_get",
            |mut c: Caller<'_, HostState>, id: u32, ptr: u32| {
                if id > 1 {
                    return Ok(if id <= 3 { ENOTSUP } else { EINVAL });
                }
                errno(memory::write_u64(&mut c, ptr, 1))
            },
        )?;
        linker.func_wrap(
            module,
            "random_get",
            |mut c: Caller<'_, HostState>, ptr: u32, len: u32| {
                let mut bytes = Vec::with_capacity(len as usize);
                while bytes.len() < len as usize {
                    bytes.extend_from_slice(&c.data_mut().next_random().to_le_bytes());
                }
                bytes.truncate(len as usize);
                errno(memory::write(&mut c, ptr, &bytes))
            },
        )?;
        linker.func_wrap(module, "sched_yield", |_: Caller<'_, HostState>| {
            Ok(SUCCESS)
        })?;
        linker.func_wrap(
            module,
            "poll_oneoff",
            |_: Caller<'_, HostState>, _: u32, _: u32, _: u32, _: u32| Ok(ENOSYS),
        )?;
        linker.func_wrap(
            module,
            "proc_exit",
            |_: Caller<'_, HostState>, code: u32| -> wasmtime::Result<()> {
                Err(wasmtime::Error::msg(format!(
                    "the module called proc_exit({code})"
                )))
            },
        )?;
    }
    Ok(())
}

/// Envoy's `writev` for stdout (info) and stderr (error); other descriptors are EBADF.
fn fd_write(
    c: &mut Caller<'_, HostState>,
    fd: u32,
    iovs: u32,
    count: u32,
    written: u32,
) -> wasmtime::Result<u32> {
    let level = match fd {
        1 => LogLevel::Info,
        2 => LogLevel::Error,
        _ => return Ok(EBADF),
    };
    let mut text = Vec::new();
    for i in 0..count {
        let Some(at) = i.checked_mul(8).and_then(|o| iovs.checked_add(o)) else {
            return Ok(EFAULT);
        };
        let Ok(iov) = memory::read(c, at, 8) else {
            return Ok(EFAULT);
        };
        let buf = u32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
        let len = u32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
        if len == 0 {
            continue;
        }
        match memory::read(c, buf, len) {
            Ok(bytes) => text.extend_from_slice(&bytes),
            Err(_) => return Ok(EFAULT),
        }
    }
    let total = text.len();
    if total > 0 {
        if text.last() == Some(&b'\n') {
            text.pop();
        }
        c.data()
            .log(level, String::from_utf8_lossy(&text).into_owned());
    }
    errno(memory::write_u32(
        c,
        written,
        u32::try_from(total).unwrap_or(u32::MAX),
    ))
}

fn environ_get(c: &mut Caller<'_, HostState>, mut array: u32, mut buffer: u32) -> Result<(), Fail> {
    let env = c.data().plugin.env.clone();
    for (k, v) in env {
        memory::write_u32(c, array, buffer)?;
        let mut entry = format!("{k}={v}").into_bytes();
        entry.push(0);
        memory::write(c, buffer, &entry)?;
        buffer = buffer.wrapping_add(entry.len() as u32);
        array = array.wrapping_add(4);
    }
    Ok(())
}
