//! The host calls the filter makes, declared here so that none of them can trap.
//!
//! The `proxy-wasm` SDK's wrappers turn header bytes into `String` with `unwrap` and
//! panic on any status they do not expect; in Envoy a panic aborts the VM and fails
//! every request through it. The filter's calls go through these wrappers instead:
//! header names and values stay bytes, statuses are plain integers, and every failure
//! becomes `None` or `false`. Buffers the host allocated (through the SDK's
//! `proxy_on_memory_allocate`) are owned as `Vec<u8>` and freed on drop.

use std::ptr::{null, null_mut};

/// The ABI status for success.
const OK: u32 = 0;
/// A compare-and-swap token that no longer matches.
const CAS_MISMATCH: u32 = 8;

/// Header maps of the ABI.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Map {
    RequestHeaders = 0,
    ResponseHeaders = 2,
}

/// Log levels of the ABI.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Level {
    Info = 2,
    Warn = 3,
    Error = 4,
}

const PLUGIN_CONFIGURATION: u32 = 7;
const COUNTER: u32 = 0;
const GAUGE: u32 = 1;

mod host {
    #[link(wasm_import_module = "env")]
    extern "C" {
        pub fn proxy_log(level: u32, data: *const u8, size: usize) -> u32;
        pub fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
        pub fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
        pub fn proxy_get_buffer_bytes(
            kind: u32,
            start: usize,
            max: usize,
            data: *mut *mut u8,
            size: *mut usize,
        ) -> u32;
        pub fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
        pub fn proxy_get_header_map_value(
            map: u32,
            key: *const u8,
            key_size: usize,
            data: *mut *mut u8,
            size: *mut usize,
        ) -> u32;
        pub fn proxy_add_header_map_value(
            map: u32,
            key: *const u8,
            key_size: usize,
            value: *const u8,
            value_size: usize,
        ) -> u32;
        pub fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
        pub fn proxy_get_property(
            path: *const u8,
            path_size: usize,
            data: *mut *mut u8,
            size: *mut usize,
        ) -> u32;
        pub fn proxy_send_local_response(
            status: u32,
            details: *const u8,
            details_size: usize,
            body: *const u8,
            body_size: usize,
            headers: *const u8,
            headers_size: usize,
            grpc_status: i32,
        ) -> u32;
        pub fn proxy_get_shared_data(
            key: *const u8,
            key_size: usize,
            data: *mut *mut u8,
            size: *mut usize,
            cas: *mut u32,
        ) -> u32;
        pub fn proxy_set_shared_data(
            key: *const u8,
            key_size: usize,
            value: *const u8,
            value_size: usize,
            cas: u32,
        ) -> u32;
        pub fn proxy_register_shared_queue(name: *const u8, name_size: usize, id: *mut u32) -> u32;
        pub fn proxy_resolve_shared_queue(
            vm_id: *const u8,
            vm_id_size: usize,
            name: *const u8,
            name_size: usize,
            id: *mut u32,
        ) -> u32;
        pub fn proxy_enqueue_shared_queue(id: u32, value: *const u8, size: usize) -> u32;
        pub fn proxy_dequeue_shared_queue(id: u32, data: *mut *mut u8, size: *mut usize) -> u32;
        pub fn proxy_define_metric(
            kind: u32,
            name: *const u8,
            name_size: usize,
            id: *mut u32,
        ) -> u32;
        pub fn proxy_increment_metric(id: u32, offset: i64) -> u32;
        pub fn proxy_record_metric(id: u32, value: u64) -> u32;
    }
}

/// Takes ownership of a buffer the host allocated in guest memory.
fn owned(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        return Vec::new();
    }
    // SAFETY: the host filled `data` with `size` bytes allocated by the SDK's
    // `proxy_on_memory_allocate`, a boxed slice of exactly `size` bytes (align 1).
    unsafe { Vec::from_raw_parts(data, size, size) }
}

/// Runs a host call that returns a buffer; `None` unless it succeeded.
fn fetch(call: impl FnOnce(*mut *mut u8, *mut usize) -> u32) -> Option<Vec<u8>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    let status = call(&mut data, &mut size);
    let bytes = owned(data, size);
    (status == OK).then_some(bytes)
}

pub fn log(level: Level, message: &str) {
    // SAFETY: pointer and length of a live string.
    unsafe { host::proxy_log(level as u32, message.as_ptr(), message.len()) };
}

/// The proxy clock (O5), in milliseconds since the epoch; 0 if unavailable.
pub fn now_ms() -> u64 {
    let mut nanos = 0u64;
    // SAFETY: the host writes one u64.
    let status = unsafe { host::proxy_get_current_time_nanoseconds(&mut nanos) };
    if status == OK {
        nanos / 1_000_000
    } else {
        0
    }
}

pub fn set_tick_period_ms(period: u32) -> bool {
    // SAFETY: plain value.
    unsafe { host::proxy_set_tick_period_milliseconds(period) == OK }
}

/// The plugin configuration bytes (empty when there is none).
pub fn plugin_configuration(size: usize) -> Vec<u8> {
    // SAFETY: out-pointers to locals.
    fetch(|d, s| unsafe { host::proxy_get_buffer_bytes(PLUGIN_CONFIGURATION, 0, size, d, s) })
        .unwrap_or_default()
}

/// All pairs of a header map, serialised as the ABI defines (one host call).
pub fn header_pairs(map: Map) -> Vec<u8> {
    // SAFETY: out-pointers to locals.
    fetch(|d, s| unsafe { host::proxy_get_header_map_pairs(map as u32, d, s) }).unwrap_or_default()
}

pub fn header(map: Map, name: &str) -> Option<Vec<u8>> {
    // SAFETY: pointer and length of a live string; out-pointers to locals.
    fetch(|d, s| unsafe {
        host::proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), d, s)
    })
}

pub fn add_header(map: Map, name: &[u8], value: &[u8]) {
    // SAFETY: pointers and lengths of live slices.
    unsafe {
        host::proxy_add_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    };
}

pub fn remove_header(map: Map, name: &[u8]) {
    // SAFETY: pointer and length of a live slice.
    unsafe { host::proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) };
}

/// A property by its path segments (`["upstream", "address"]`), raw bytes.
pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    let mut serialized = Vec::with_capacity(64);
    for (i, segment) in path.iter().enumerate() {
        if i > 0 {
            serialized.push(0);
        }
        serialized.extend_from_slice(segment.as_bytes());
    }
    // SAFETY: pointer and length of a live vector; out-pointers to locals.
    fetch(|d, s| unsafe { host::proxy_get_property(serialized.as_ptr(), serialized.len(), d, s) })
}

/// Sends a local reply; the filter then stops the stream's iteration.
pub fn send_local_response(status: u32, headers: &[(&str, &str)], body: &[u8]) {
    let serialized = serialize_pairs(headers);
    // SAFETY: pointers and lengths of live buffers.
    unsafe {
        host::proxy_send_local_response(
            status,
            null(),
            0,
            body.as_ptr(),
            body.len(),
            serialized.as_ptr(),
            serialized.len(),
            -1,
        )
    };
}

/// Serialises header pairs: count, then (name size, value size) each, then the
/// NUL-terminated names and values.
fn serialize_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        4 + pairs
            .iter()
            .map(|(n, v)| 10 + n.len() + v.len())
            .sum::<usize>(),
    );
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (name, value) in pairs {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (name, value) in pairs {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out
}

pub fn shared_get(key: &str) -> Option<(Vec<u8>, u32)> {
    let mut cas = 0u32;
    // SAFETY: pointer and length of a live string; out-pointers to locals.
    let value = fetch(|d, s| unsafe {
        host::proxy_get_shared_data(key.as_ptr(), key.len(), d, s, &mut cas)
    })?;
    Some((value, cas))
}

/// Writes shared data; false on a CAS mismatch (or any other failure).
pub fn shared_set(key: &str, value: &[u8], cas: u32) -> bool {
    // SAFETY: pointers and lengths of live buffers.
    let status = unsafe {
        host::proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    };
    status == OK && status != CAS_MISMATCH
}

pub fn register_queue(name: &str) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: pointer and length of a live string; out-pointer to a local.
    let status = unsafe { host::proxy_register_shared_queue(name.as_ptr(), name.len(), &mut id) };
    (status == OK).then_some(id)
}

pub fn resolve_queue(vm_id: &str, name: &str) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: pointers and lengths of live strings; out-pointer to a local.
    let status = unsafe {
        host::proxy_resolve_shared_queue(
            vm_id.as_ptr(),
            vm_id.len(),
            name.as_ptr(),
            name.len(),
            &mut id,
        )
    };
    (status == OK).then_some(id)
}

pub fn enqueue(id: u32, value: &[u8]) -> bool {
    // SAFETY: pointer and length of a live slice.
    unsafe { host::proxy_enqueue_shared_queue(id, value.as_ptr(), value.len()) == OK }
}

pub fn dequeue(id: u32) -> Option<Vec<u8>> {
    // SAFETY: out-pointers to locals.
    fetch(|d, s| unsafe { host::proxy_dequeue_shared_queue(id, d, s) })
}

pub fn define_counter(name: &str) -> Option<u32> {
    define_metric(COUNTER, name)
}

pub fn define_gauge(name: &str) -> Option<u32> {
    define_metric(GAUGE, name)
}

fn define_metric(kind: u32, name: &str) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: pointer and length of a live string; out-pointer to a local.
    let status = unsafe { host::proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) };
    (status == OK).then_some(id)
}

pub fn increment_metric(id: u32, by: u64) {
    // SAFETY: plain values.
    unsafe { host::proxy_increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX)) };
}

pub fn record_metric(id: u32, value: u64) {
    // SAFETY: plain values.
    unsafe { host::proxy_record_metric(id, value) };
}
