//! The module's exports: exactly the callbacks the filter uses, and no others.
//!
//! ## Why the filter owns its exports
//!
//! Envoy (proxy-wasm-cpp-host, `src/context.cc`) calls a module's stream callback only
//! when the module exports it, and every call into the VM costs Envoy instructions on
//! every request. The `proxy-wasm` SDK's dispatcher exports all 27 callbacks, and any
//! module that links the crate exports them (they are `#[no_mangle]` items of the
//! crate), so a healthy request through an SDK module enters the VM for the stream's
//! creation, its request and response headers, each response body chunk, `on_log`,
//! `on_done` and `on_delete`. The filter's decisions need four of those:
//!
//! - `proxy_on_context_create`: which plugin (root context) a stream belongs to;
//!   several plugins of one module can share a VM, each with its own configuration.
//! - `proxy_on_request_headers`: the decision (R1-R7, S1-S3, O2-O3, B2).
//! - `proxy_on_response_headers`: the accounting (B3, O1-O4) and the debug headers.
//! - `proxy_on_log`: the end of every stream, the one without a response included
//!   (a client reset: B3's settlement and O3's probe slot); the stream's state is
//!   freed here.
//!
//! and the root's `proxy_on_vm_start`, `proxy_on_configure`, `proxy_on_tick` and
//! `proxy_on_queue_ready`. Host calls go through [`crate::abi`], which the filter also
//! owns so that none of them can panic. Buffers the host returns are allocated by
//! [`proxy_on_memory_allocate`] as `Vec<u8>` of exactly the requested capacity, which
//! [`crate::abi`] takes back with `Vec::from_raw_parts`.

use crate::root::Root;
use crate::stream::Stream;
use std::cell::RefCell;
use std::collections::HashMap;

/// The filter's answer to a headers callback: go on, or stop (after a local reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Action {
    Continue = 0,
    Pause = 1,
}

/// Every live context of this VM.
#[derive(Default)]
struct Contexts {
    /// Root contexts (one per plugin sharing this VM) by id.
    roots: Vec<(u32, Root)>,
    /// Streams by context id, from creation to `on_log`.
    streams: HashMap<u32, Stream>,
}

impl Contexts {
    fn root(&mut self, id: u32) -> &mut Root {
        let at = match self.roots.iter().position(|(r, _)| *r == id) {
            Some(at) => at,
            None => {
                self.roots.push((id, Root::default()));
                self.roots.len() - 1
            }
        };
        &mut self.roots[at].1
    }
}

thread_local! {
    static CONTEXTS: RefCell<Contexts> = RefCell::new(Contexts::default());
}

fn with<R>(f: impl FnOnce(&mut Contexts) -> R) -> R {
    CONTEXTS.with(|contexts| f(&mut contexts.borrow_mut()))
}

/// The ABI this module speaks: proxy-wasm 0.2.1.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Memory for a buffer the host hands over; the filter owns it from then on.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    // `with_capacity` of a byte vector allocates exactly `size` bytes.
    let mut buffer: Vec<u8> = Vec::with_capacity(size);
    let pointer = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    pointer
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, root_context_id: u32) {
    with(|contexts| {
        if root_context_id == 0 {
            contexts.root(context_id);
        } else {
            let active = contexts.root(root_context_id).active();
            contexts.streams.insert(context_id, Stream::new(active));
        }
    });
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(root_context_id: u32, _vm_configuration_size: usize) -> u32 {
    with(|contexts| contexts.root(root_context_id).on_vm_start());
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(
    root_context_id: u32,
    plugin_configuration_size: usize,
) -> u32 {
    let configured = with(|contexts| {
        contexts
            .root(root_context_id)
            .on_configure(plugin_configuration_size)
    });
    u32::from(configured)
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(root_context_id: u32) {
    with(|contexts| contexts.root(root_context_id).on_tick());
}

#[no_mangle]
pub extern "C" fn proxy_on_queue_ready(root_context_id: u32, queue_id: u32) {
    with(|contexts| contexts.root(root_context_id).on_queue_ready(queue_id));
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(context_id: u32, _headers: usize, _end: u32) -> u32 {
    on_stream(context_id, Stream::on_request_headers) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(context_id: u32, _headers: usize, _end: u32) -> u32 {
    on_stream(context_id, Stream::on_response_headers) as u32
}

/// Runs a headers callback on a live stream; an unknown one goes on untouched.
fn on_stream(context_id: u32, callback: fn(&mut Stream) -> Action) -> Action {
    with(|contexts| {
        contexts
            .streams
            .get_mut(&context_id)
            .map_or(Action::Continue, callback)
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_log(context_id: u32) {
    // Removed first: the stream is over whatever its last callback does.
    if let Some(stream) = with(|contexts| contexts.streams.remove(&context_id)) {
        stream.on_log();
    }
}
