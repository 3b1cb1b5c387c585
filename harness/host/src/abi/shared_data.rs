//! Shared data: `proxy_get_shared_data`, `proxy_set_shared_data`.
//!
//! One store per proxy, keyed by VM id and then key, shared by every worker, with
//! Envoy's compare-and-swap rules: a set with cas 0 is unconditional; a set with a
//! non-zero cas fails with `CasMismatch` only when the key exists and its cas differs;
//! every successful set gives the value a new cas from one process-wide counter that
//! never yields 0. Filters build budgets and circuits across workers on exactly these
//! rules, so they are kept to the letter.

use super::{answer, memory, Fail, Status};
use crate::state::{lock, HostState};
use std::collections::HashMap;
use wasmtime::{Caller, Linker};

/// One VM id's data: key to (value, cas).
type VmData = HashMap<Vec<u8>, (Vec<u8>, u32)>;

/// The shared key-value store of one proxy.
#[derive(Debug)]
pub struct SharedData {
    data: HashMap<String, VmData>,
    next_cas: u32,
}

impl Default for SharedData {
    fn default() -> SharedData {
        SharedData {
            data: HashMap::new(),
            next_cas: 1,
        }
    }
}

// === impl SharedData ===

impl SharedData {
    /// The value and cas of `key` in `vm_id`'s data.
    pub fn get(&self, vm_id: &str, key: &[u8]) -> Option<(&[u8], u32)> {
        let (value, cas) = self.data.get(vm_id)?.get(key)?;
        Some((value, *cas))
    }

    /// Sets `key`; `cas` 0 is unconditional.
    pub fn set(&mut self, vm_id: &str, key: &[u8], value: &[u8], cas: u32) -> Result<(), Status> {
        if let Some((_, current)) = self.get(vm_id, key) {
            if cas != 0 && cas != current {
                return Err(Status::CasMismatch);
            }
        }
        let next = self.bump();
        self.data
            .entry(vm_id.to_owned())
            .or_default()
            .insert(key.to_vec(), (value.to_vec(), next));
        Ok(())
    }

    /// Every key of `vm_id`'s data.
    pub fn keys(&self, vm_id: &str) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = self
            .data
            .get(vm_id)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }

    fn bump(&mut self) -> u32 {
        let cas = self.next_cas;
        self.next_cas = self.next_cas.wrapping_add(1);
        if self.next_cas == 0 {
            self.next_cas = 1;
        }
        cas
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: Caller<'_, HostState>,
         key: u32,
         key_size: u32,
         ptr_ptr: u32,
         size_ptr: u32,
         cas_ptr: u32| { answer(get(&mut c, key, key_size, ptr_ptr, size_ptr, cas_ptr)) },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: Caller<'_, HostState>,
         key: u32,
         key_size: u32,
         value: u32,
         value_size: u32,
         cas: u32| { answer(set(&mut c, key, key_size, value, value_size, cas)) },
    )?;
    Ok(())
}

fn get(
    c: &mut Caller<'_, HostState>,
    key: u32,
    key_size: u32,
    ptr_ptr: u32,
    size_ptr: u32,
    cas_ptr: u32,
) -> Result<(), Fail> {
    let found = memory::with_bytes(c, key, key_size, |key, state| {
        let data = lock(&state.shared.shared_data);
        data.get(&state.plugin.vm_id, key)
            .map(|(v, cas)| (v.to_vec(), cas))
    })?;
    let (value, cas) = found.ok_or(Status::NotFound)?;
    memory::copy_out(c, &value, ptr_ptr, size_ptr)?;
    memory::write_u32(c, cas_ptr, cas)
}

fn set(
    c: &mut Caller<'_, HostState>,
    key: u32,
    key_size: u32,
    value: u32,
    value_size: u32,
    cas: u32,
) -> Result<(), Fail> {
    let key = memory::read(c, key, key_size)?;
    let value = memory::read(c, value, value_size)?;
    let state = c.data();
    let mut data = lock(&state.shared.shared_data);
    data.set(&state.plugin.vm_id, &key, &value, cas)
        .map_err(Fail::Status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_rules_as_envoy() {
        let mut data = SharedData::default();
        assert!(data.get("vm", b"k").is_none());
        assert_eq!(data.set("vm", b"k", b"one", 0), Ok(()));
        let (_, cas1) = data.get("vm", b"k").expect("set");
        assert_ne!(cas1, 0);
        assert_eq!(data.set("vm", b"k", b"two", cas1), Ok(()));
        let (value, cas2) = data.get("vm", b"k").expect("set");
        assert_eq!(value, b"two");
        assert_ne!(cas2, cas1);
        assert_eq!(
            data.set("vm", b"k", b"three", cas1),
            Err(Status::CasMismatch)
        );
        assert_eq!(
            data.get("vm", b"k").map(|(_, c)| c),
            Some(cas2),
            "a mismatch changes nothing"
        );
        assert_eq!(
            data.set("vm", b"new", b"x", 12_345),
            Ok(()),
            "no mismatch on a missing key"
        );
        assert!(
            data.get("other", b"k").is_none(),
            "VM ids do not share data"
        );
    }

    #[test]
    fn cas_never_wraps_to_zero() {
        let mut data = SharedData {
            data: HashMap::new(),
            next_cas: u32::MAX,
        };
        data.set("vm", b"a", b"", 0).expect("set");
        data.set("vm", b"b", b"", 0).expect("set");
        assert_eq!(data.get("vm", b"a").map(|(_, c)| c), Some(u32::MAX));
        assert_eq!(data.get("vm", b"b").map(|(_, c)| c), Some(1));
    }
}
