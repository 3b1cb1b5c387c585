//! Time: `proxy_set_tick_period_milliseconds` and `proxy_get_current_time_nanoseconds`.
//!
//! The tick belongs to the VM's root context, as in Envoy: the first tick comes one
//! period after it is set, the next one period after that, and a period of 0 stops it.
//! Ticks fire when the driver moves the proxy clock ([`crate::Proxy::advance`]), so a
//! test decides exactly when housekeeping runs.

use super::{answer, memory};
use crate::state::HostState;
use wasmtime::{Caller, Linker};

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: Caller<'_, HostState>, period: u32| {
            let state = c.data_mut();
            let now = state.shared.clock.now_nanos();
            state.tick.period_ms = period;
            state.tick.next_at =
                (period > 0).then(|| now.saturating_add(u64::from(period) * 1_000_000));
            Ok(0u32)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: Caller<'_, HostState>, ptr: u32| {
            let now = c.data().shared.clock.now_nanos();
            answer(memory::write_u64(&mut c, ptr, now))
        },
    )?;
    Ok(())
}
