//! Guest memory: checked reads and writes, and allocation through the guest.
//!
//! Every pointer a guest passes is untrusted. Reads and writes go through checked
//! slicing of the linear memory and answer `InvalidMemoryAccess` when a range does not
//! fit, as Envoy does; nothing here can fault the host. Memory the host hands to the
//! guest (a header value, a body) is allocated by the guest's own allocator through
//! `proxy_on_memory_allocate` (or `malloc`), so the guest can free it as its own.

use super::{Fail, Status};
use crate::state::HostState;
use wasmtime::{AsContext, AsContextMut, Caller, Memory};

fn memory(caller: &Caller<'_, HostState>) -> Result<Memory, Fail> {
    caller
        .data()
        .memory
        .ok_or(Fail::Status(Status::InvalidMemoryAccess))
}

fn range(ptr: u32, len: u32, size: usize) -> Result<std::ops::Range<usize>, Fail> {
    let start = ptr as usize;
    let end = start
        .checked_add(len as usize)
        .ok_or(Status::InvalidMemoryAccess)?;
    if end > size {
        return Err(Status::InvalidMemoryAccess.into());
    }
    Ok(start..end)
}

/// A copy of `len` bytes at `ptr`.
pub(crate) fn read(caller: &Caller<'_, HostState>, ptr: u32, len: u32) -> Result<Vec<u8>, Fail> {
    let memory = memory(caller)?;
    let data = memory.data(caller.as_context());
    let r = range(ptr, len, data.len())?;
    Ok(data[r].to_vec())
}

/// Runs `f` on the bytes at `ptr` and the host state, without copying.
pub(crate) fn with_bytes<R>(
    caller: &mut Caller<'_, HostState>,
    ptr: u32,
    len: u32,
    f: impl FnOnce(&[u8], &mut HostState) -> R,
) -> Result<R, Fail> {
    let memory = memory(caller)?;
    let (data, state) = memory.data_and_store_mut(caller.as_context_mut());
    let r = range(ptr, len, data.len())?;
    Ok(f(&data[r], state))
}

/// Writes `bytes` at `ptr`.
pub(crate) fn write(
    caller: &mut Caller<'_, HostState>,
    ptr: u32,
    bytes: &[u8],
) -> Result<(), Fail> {
    let memory = memory(caller)?;
    let data = memory.data_mut(caller.as_context_mut());
    let len = u32::try_from(bytes.len()).map_err(|_| Status::InvalidMemoryAccess)?;
    let r = range(ptr, len, data.len())?;
    data[r].copy_from_slice(bytes);
    Ok(())
}

pub(crate) fn write_u32(
    caller: &mut Caller<'_, HostState>,
    ptr: u32,
    value: u32,
) -> Result<(), Fail> {
    write(caller, ptr, &value.to_le_bytes())
}

pub(crate) fn write_u64(
    caller: &mut Caller<'_, HostState>,
    ptr: u32,
    value: u64,
) -> Result<(), Fail> {
    write(caller, ptr, &value.to_le_bytes())
}

/// Allocates `size` bytes in the guest; `InvalidMemoryAccess` if the guest cannot.
pub(crate) fn allocate(caller: &mut Caller<'_, HostState>, size: u32) -> Result<u32, Fail> {
    let alloc = caller
        .data()
        .alloc
        .clone()
        .ok_or(Status::InvalidMemoryAccess)?;
    let ptr = alloc.call(&mut *caller, size)?;
    if ptr == 0 {
        return Err(Status::InvalidMemoryAccess.into());
    }
    Ok(ptr)
}

/// Hands `bytes` to the guest: allocates them in guest memory and writes the pointer
/// and size to `ptr_ptr` and `size_ptr`. Empty bytes are a null pointer and size 0,
/// without an allocation, as Envoy's `copyToPointerSize`.
pub(crate) fn copy_out(
    caller: &mut Caller<'_, HostState>,
    bytes: &[u8],
    ptr_ptr: u32,
    size_ptr: u32,
) -> Result<(), Fail> {
    let size = u32::try_from(bytes.len()).map_err(|_| Status::InvalidMemoryAccess)?;
    let mut ptr = 0;
    if size > 0 {
        ptr = allocate(caller, size)?;
        write(caller, ptr, bytes)?;
    }
    write_u32(caller, ptr_ptr, ptr)?;
    write_u32(caller, size_ptr, size)?;
    Ok(())
}

/// Hands `size` bytes to the guest that `fill` writes straight into its memory, from
/// the host state, without a copy on the host side; pointer and size as
/// [`copy_out`] writes them.
pub(crate) fn copy_out_with(
    caller: &mut Caller<'_, HostState>,
    size: usize,
    ptr_ptr: u32,
    size_ptr: u32,
    fill: impl FnOnce(&mut [u8], &HostState),
) -> Result<(), Fail> {
    let size = u32::try_from(size).map_err(|_| Status::InvalidMemoryAccess)?;
    let mut ptr = 0;
    if size > 0 {
        ptr = allocate(caller, size)?;
        let memory = memory(caller)?;
        let (data, state) = memory.data_and_store_mut(caller.as_context_mut());
        let r = range(ptr, size, data.len())?;
        fill(&mut data[r], state);
    }
    write_u32(caller, ptr_ptr, ptr)?;
    write_u32(caller, size_ptr, size)?;
    Ok(())
}

/// Runs `f` on two byte ranges of guest memory and the host state, without copying.
pub(crate) fn with_two<R>(
    caller: &mut Caller<'_, HostState>,
    a: (u32, u32),
    b: (u32, u32),
    f: impl FnOnce(&[u8], &[u8], &mut HostState) -> R,
) -> Result<R, Fail> {
    let memory = memory(caller)?;
    let (data, state) = memory.data_and_store_mut(caller.as_context_mut());
    let ra = range(a.0, a.1, data.len())?;
    let rb = range(b.0, b.1, data.len())?;
    Ok(f(&data[ra], &data[rb], state))
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn ranges_are_checked() {
        assert_eq!(range(0, 0, 0).ok(), Some(0..0));
        assert_eq!(range(10, 5, 15).ok(), Some(10..15));
        assert!(range(10, 6, 15).is_err());
        assert!(range(u32::MAX, u32::MAX, usize::MAX).is_ok() || usize::BITS < 64);
        assert!(
            range(16, 0, 15).is_err(),
            "an empty range past the end is still outside"
        );
    }
}
