//! `proxy_log` and `proxy_get_log_level`.
//!
//! Log lines are the main thing a person reads from a filter, and the only way the ABI
//! probe reports, so they are kept in order with their level and worker. Lines below the
//! proxy's log level are dropped, as Envoy drops them below the `wasm` logger's level
//! (`info` unless configured), and `proxy_get_log_level` answers that level.

use super::{answer, memory, Fail, Status};
use crate::state::HostState;
use std::fmt;
use wasmtime::{Caller, Linker};

/// Log levels of the ABI, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

impl LogLevel {
    pub fn from_u32(level: u32) -> Option<LogLevel> {
        Some(match level {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }

    /// The lower-case name: trace, debug, info, warn, error, critical.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<LogLevel, String> {
        [
            LogLevel::Trace,
            LogLevel::Debug,
            LogLevel::Info,
            LogLevel::Warn,
            LogLevel::Error,
            LogLevel::Critical,
        ]
        .into_iter()
        .find(|l| l.name() == s.to_ascii_lowercase())
        .ok_or_else(|| {
            format!("unknown log level {s:?} (trace, debug, info, warn, error, critical)")
        })
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_log",
        |mut c: Caller<'_, HostState>, level: u32, ptr: u32, len: u32| {
            answer(log(&mut c, level, ptr, len))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_log_level",
        |mut c: Caller<'_, HostState>, ptr: u32| {
            let level = c.data().shared.log_level as u32;
            answer(memory::write_u32(&mut c, ptr, level))
        },
    )?;
    Ok(())
}

fn log(c: &mut Caller<'_, HostState>, level: u32, ptr: u32, len: u32) -> Result<(), Fail> {
    let level = LogLevel::from_u32(level).ok_or(Status::BadArgument)?;
    memory::with_bytes(c, ptr, len, |message, state| {
        state.log(level, String::from_utf8_lossy(message).into_owned());
    })
}
