//! Shared queues: `proxy_register_shared_queue`, `proxy_resolve_shared_queue`,
//! `proxy_enqueue_shared_queue`, `proxy_dequeue_shared_queue`, and the
//! `on_queue_ready` notifications they cause.
//!
//! As in Envoy, a queue is named by VM id and name and has one token for the whole
//! proxy. Registering again keeps the token and the data but moves the notifications to
//! the registering VM's root context (the last registrant wins); resolving needs the
//! same VM id, and an empty VM id names the caller's own. An enqueue does not call into any VM: it posts a notification that the
//! driver delivers after the current callback, as Envoy posts it to the owner's thread.

use super::{answer, memory, Fail, Status};
use crate::state::{lock, HostState};
use std::collections::{HashMap, VecDeque};
use wasmtime::{Caller, Linker};

#[derive(Debug)]
struct Queue {
    items: VecDeque<Vec<u8>>,
    worker: usize,
    context: u32,
}

/// The shared queues of one proxy.
#[derive(Debug)]
pub struct SharedQueues {
    tokens: HashMap<(String, String), u32>,
    queues: HashMap<u32, Queue>,
    next_token: u32,
    /// Notifications to deliver: (worker, root context, token).
    ready: VecDeque<(usize, u32, u32)>,
}

impl Default for SharedQueues {
    fn default() -> SharedQueues {
        SharedQueues {
            tokens: HashMap::new(),
            queues: HashMap::new(),
            next_token: 1,
            ready: VecDeque::new(),
        }
    }
}

// === impl SharedQueues ===

impl SharedQueues {
    pub fn register(&mut self, vm_id: &str, name: &str, worker: usize, context: u32) -> u32 {
        let key = (vm_id.to_owned(), name.to_owned());
        let token = match self.tokens.get(&key) {
            Some(token) => *token,
            None => {
                let token = self.next_token;
                self.next_token = self.next_token.wrapping_add(1).max(1);
                self.tokens.insert(key, token);
                token
            }
        };
        let queue = self.queues.entry(token).or_insert_with(|| Queue {
            items: VecDeque::new(),
            worker,
            context,
        });
        queue.worker = worker;
        queue.context = context;
        token
    }

    pub fn resolve(&self, vm_id: &str, name: &str) -> Option<u32> {
        self.tokens
            .get(&(vm_id.to_owned(), name.to_owned()))
            .copied()
    }

    pub fn enqueue(&mut self, token: u32, value: Vec<u8>) -> Result<(), Status> {
        let queue = self.queues.get_mut(&token).ok_or(Status::NotFound)?;
        queue.items.push_back(value);
        self.ready.push_back((queue.worker, queue.context, token));
        Ok(())
    }

    pub fn dequeue(&mut self, token: u32) -> Result<Vec<u8>, Status> {
        let queue = self.queues.get_mut(&token).ok_or(Status::NotFound)?;
        queue.items.pop_front().ok_or(Status::Empty)
    }

    /// Items waiting in a queue.
    pub fn len(&self, token: u32) -> usize {
        self.queues.get(&token).map_or(0, |q| q.items.len())
    }

    /// The next notification to deliver.
    pub(crate) fn next_ready(&mut self) -> Option<(usize, u32, u32)> {
        self.ready.pop_front()
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_register_shared_queue",
        |mut c: Caller<'_, HostState>, name: u32, name_size: u32, token_ptr: u32| {
            answer(register(&mut c, name, name_size, token_ptr))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: Caller<'_, HostState>,
         vm_id: u32,
         vm_id_size: u32,
         name: u32,
         name_size: u32,
         token_ptr: u32| {
            answer(resolve(
                &mut c, vm_id, vm_id_size, name, name_size, token_ptr,
            ))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        |mut c: Caller<'_, HostState>, token: u32, ptr_ptr: u32, size_ptr: u32| {
            answer(dequeue(&mut c, token, ptr_ptr, size_ptr))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        |mut c: Caller<'_, HostState>, token: u32, value: u32, value_size: u32| {
            answer(enqueue(&mut c, token, value, value_size))
        },
    )?;
    Ok(())
}

fn register(
    c: &mut Caller<'_, HostState>,
    name: u32,
    name_size: u32,
    token_ptr: u32,
) -> Result<(), Fail> {
    let name = memory::read(c, name, name_size)?;
    let state = c.data();
    let token = lock(&state.shared.queues).register(
        &state.plugin.vm_id,
        &String::from_utf8_lossy(&name),
        state.worker,
        state.root_id,
    );
    memory::write_u32(c, token_ptr, token)
}

fn resolve(
    c: &mut Caller<'_, HostState>,
    vm_id: u32,
    vm_id_size: u32,
    name: u32,
    name_size: u32,
    token_ptr: u32,
) -> Result<(), Fail> {
    let vm_id = memory::read(c, vm_id, vm_id_size)?;
    let name = memory::read(c, name, name_size)?;
    let state = c.data();
    let vm_id = if vm_id.is_empty() {
        state.plugin.vm_id.clone()
    } else {
        String::from_utf8_lossy(&vm_id).into_owned()
    };
    let token = lock(&state.shared.queues)
        .resolve(&vm_id, &String::from_utf8_lossy(&name))
        .ok_or(Status::NotFound)?;
    memory::write_u32(c, token_ptr, token)
}

fn dequeue(
    c: &mut Caller<'_, HostState>,
    token: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> Result<(), Fail> {
    let value = lock(&c.data().shared.queues).dequeue(token)?;
    memory::copy_out(c, &value, ptr_ptr, size_ptr)
}

fn enqueue(
    c: &mut Caller<'_, HostState>,
    token: u32,
    value: u32,
    value_size: u32,
) -> Result<(), Fail> {
    let value = memory::read(c, value, value_size)?;
    lock(&c.data().shared.queues).enqueue(token, value)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_queue_semantics() {
        let mut queues = SharedQueues::default();
        assert_eq!(queues.resolve("vm", "q"), None);
        let token = queues.register("vm", "q", 0, 1);
        assert_ne!(token, 0);
        assert_eq!(
            queues.register("vm", "q", 1, 1),
            token,
            "same token on re-registration"
        );
        assert_eq!(queues.resolve("vm", "q"), Some(token));
        assert_eq!(
            queues.resolve("other", "q"),
            None,
            "resolution needs the same VM id"
        );
        assert_eq!(queues.dequeue(token), Err(Status::Empty));
        assert_eq!(queues.dequeue(999), Err(Status::NotFound));
        assert_eq!(queues.enqueue(999, b"x".to_vec()), Err(Status::NotFound));
        queues.enqueue(token, b"m".to_vec()).expect("enqueue");
        assert_eq!(
            queues.next_ready(),
            Some((1, 1, token)),
            "delivered to the last registrant"
        );
        assert_eq!(queues.dequeue(token), Ok(b"m".to_vec()));
    }
}
