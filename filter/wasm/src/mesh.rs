//! The core's [`Shared`] on proxy-wasm: shared data, and notifications over queues.
//!
//! Shared data is one store per VM id for all worker VMs of a proxy, with
//! compare-and-swap. A shared queue, though, delivers to the one VM that registered
//! it, so each VM registers its own queue, `c4mesh/<namespace>/events/<n>`, with n
//! claimed from a counter in shared data, and a notification is enqueued to every
//! other VM's queue. Notifications are rare (a circuit moves, a streak of 5xx
//! starts); requests never wait for them.
//!
//! Every shared-data call is also recorded in the VM's
//! [`Footprint`](c4mesh_filter_core::footprint::Footprint), which the tick reports as
//! the `shared_keys` and `shared_bytes` gauges: what the filter keeps in shared data,
//! measured where it lives.

use crate::abi;
use c4mesh_filter_core::footprint::Footprint;
use c4mesh_filter_core::shared::vm_counter_key;
use c4mesh_filter_core::{RouteId, Shared};
use std::cell::RefCell;
use std::rc::Rc;

/// The queues of the other VMs, resolved lazily.
#[derive(Debug)]
struct Peers {
    vm_id: String,
    namespace: u64,
    counter_key: String,
    own_index: Option<u32>,
    resolved: Vec<Option<u32>>,
}

/// A cheap handle on the proxy's shared data and on this VM's peers.
#[derive(Debug, Clone)]
pub struct ProxyShared {
    peers: Rc<RefCell<Peers>>,
    footprint: Rc<RefCell<Footprint>>,
}

impl ProxyShared {
    /// Claims an index among the VMs of this configuration and registers this VM's
    /// queue. Returns the handle and the queue id (for `on_queue_ready`).
    pub fn join(vm_id: String, namespace: u64) -> (ProxyShared, Option<u32>) {
        let counter_key = vm_counter_key(namespace);
        let mut footprint = Footprint::default();
        let own_index = claim_index(&counter_key, &mut footprint);
        let queue = own_index.and_then(|i| abi::register_queue(&queue_name(namespace, i)));
        let peers = Peers {
            vm_id,
            namespace,
            counter_key,
            own_index,
            resolved: Vec::new(),
        };
        (
            ProxyShared {
                peers: Rc::new(RefCell::new(peers)),
                footprint: Rc::new(RefCell::new(footprint)),
            },
            queue,
        )
    }

    /// The shared-data keys this VM has read or written, and their bytes.
    pub fn footprint(&self) -> (usize, usize) {
        let footprint = self.footprint.borrow();
        (footprint.keys(), footprint.bytes())
    }

    fn record(&self, key: &str, size: usize) {
        self.footprint.borrow_mut().record(key, size);
    }
}

fn queue_name(namespace: u64, index: u32) -> String {
    format!("c4mesh/{namespace:016x}/events/{index}")
}

/// Increments the VM counter with compare-and-swap; the value before is ours.
fn claim_index(key: &str, footprint: &mut Footprint) -> Option<u32> {
    for _ in 0..c4mesh_filter_core::shared::CAS_ATTEMPTS {
        let (current, cas) = match abi::shared_get(key) {
            Some((bytes, cas)) => (decode_u32(&bytes)?, cas),
            None => (0, 0),
        };
        let next = (current + 1).to_le_bytes();
        if abi::shared_set(key, &next, cas) {
            footprint.record(key, next.len());
            return Some(current);
        }
    }
    None
}

fn decode_u32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

impl Shared for ProxyShared {
    fn get(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        let found = abi::shared_get(key);
        if let Some((value, _)) = &found {
            self.record(key, value.len());
        }
        found
    }

    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> bool {
        let written = abi::shared_set(key, value, cas);
        if written {
            self.record(key, value.len());
        }
        written
    }

    fn notify(&mut self, route: RouteId) {
        let mut peers = self.peers.borrow_mut();
        let count = abi::shared_get(&peers.counter_key)
            .and_then(|(bytes, _)| decode_u32(&bytes))
            .unwrap_or(0);
        let message = (route as u32).to_le_bytes();
        for index in 0..count {
            if Some(index) == peers.own_index {
                continue;
            }
            let slot = index as usize;
            if peers.resolved.len() <= slot {
                peers.resolved.resize(slot + 1, None);
            }
            if peers.resolved[slot].is_none() {
                let name = queue_name(peers.namespace, index);
                peers.resolved[slot] = abi::resolve_queue(&peers.vm_id, &name);
            }
            if let Some(queue) = peers.resolved[slot] {
                if !abi::enqueue(queue, &message) {
                    // The VM behind it is gone; resolve again next time.
                    peers.resolved[slot] = None;
                }
            }
        }
    }
}

/// Decodes a queue message into the route it names.
pub fn route_of_message(message: &[u8]) -> Option<RouteId> {
    decode_u32(message).map(|r| r as RouteId)
}
