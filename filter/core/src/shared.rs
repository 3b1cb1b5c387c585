//! What workers share: proxy-wasm shared data and change notifications.
//!
//! The core reads and writes shared values through [`Shared`], so the budget and
//! health rules, compare-and-swap loops included, run natively in tests and benches
//! with [`MemoryShared`] and in the proxy with the glue's implementation.

use crate::footprint::Footprint;
use crate::routes::RouteId;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Compare-and-swap attempts before a conflict is resolved conservatively.
pub const CAS_ATTEMPTS: usize = 8;

/// The counter the VMs of one configuration claim their queue indices from (the
/// glue's; named here with the other keys, which [`crate::footprint::bound`] counts).
pub fn vm_counter_key(namespace: u64) -> String {
    format!("c4mesh/{namespace:016x}/vms")
}

/// Shared data with Envoy's semantics, plus notifying the other workers.
pub trait Shared {
    /// A key's value and CAS token; `None` when absent.
    fn get(&mut self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Writes when `cas` is 0 or still the key's token (an absent key is always
    /// written). Returns false on a CAS mismatch.
    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> bool;
    /// Tells the other workers that a route's shared health changed.
    fn notify(&mut self, route: RouteId);
}

#[derive(Debug, Default)]
struct Store {
    values: HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
}

/// Shared data in memory with Envoy's CAS rules; clones share one store. Each handle
/// records the notifications sent through it.
#[derive(Debug, Clone, Default)]
pub struct MemoryShared {
    store: Rc<RefCell<Store>>,
    pub notified: Vec<RouteId>,
}

impl MemoryShared {
    /// Every key in the store with its value's size.
    pub fn footprint(&self) -> Footprint {
        let mut footprint = Footprint::default();
        for (key, (value, _)) in &self.store.borrow().values {
            footprint.record(key, value.len());
        }
        footprint
    }

    /// Another handle on the same store, with its own notification list.
    pub fn handle(&self) -> MemoryShared {
        MemoryShared {
            store: Rc::clone(&self.store),
            notified: Vec::new(),
        }
    }
}

impl Shared for MemoryShared {
    fn get(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.store.borrow().values.get(key).cloned()
    }

    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> bool {
        let mut store = self.store.borrow_mut();
        store.next_cas = store.next_cas.wrapping_add(1).max(1);
        let next = store.next_cas;
        match store.values.get_mut(key) {
            Some(entry) if cas != 0 && entry.1 != cas => false,
            Some(entry) => {
                *entry = (value.to_vec(), next);
                true
            }
            None => {
                store.values.insert(key.to_owned(), (value.to_vec(), next));
                true
            }
        }
    }

    fn notify(&mut self, route: RouteId) {
        self.notified.push(route);
    }
}
