//! The host functions as raw imports, returning the status as a number.
//!
//! The SDK's wrappers panic on any status they do not expect, which is right for a
//! filter and useless for a probe: the probe wants to see exactly what the host answers
//! to calls a well-behaved filter never makes (bad map types, bad pointers, unknown ids).
//! These declarations name the same imports as the SDK, with plain integer types.

#![allow(clashing_extern_declarations)]

use std::ptr::null_mut;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, data: *const u8, size: usize) -> u32;
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        data: *const u8,
        data_size: usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_set_header_map_pairs(map_type: u32, data: *const u8, size: usize) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key: *const u8,
        key_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key: *const u8, key_size: usize) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_add_header_map_value(
        map_type: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(
        path: *const u8,
        path_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key: *const u8,
        key_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_register_shared_queue(name: *const u8, name_size: usize, return_id: *mut u32) -> u32;
    fn proxy_resolve_shared_queue(
        vm_id: *const u8,
        vm_id_size: usize,
        name: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_dequeue_shared_queue(
        queue_id: u32,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_enqueue_shared_queue(queue_id: u32, value: *const u8, value_size: usize) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_close_stream(stream_type: u32) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_http_call(
        upstream: *const u8,
        upstream_size: usize,
        headers: *const u8,
        headers_size: usize,
        body: *const u8,
        body_size: usize,
        trailers: *const u8,
        trailers_size: usize,
        timeout: u32,
        return_token: *mut u32,
    ) -> u32;
    fn proxy_grpc_call(
        upstream: *const u8,
        upstream_size: usize,
        service: *const u8,
        service_size: usize,
        method: *const u8,
        method_size: usize,
        metadata: *const u8,
        metadata_size: usize,
        message: *const u8,
        message_size: usize,
        timeout: u32,
        return_token: *mut u32,
    ) -> u32;
    fn proxy_grpc_stream(
        upstream: *const u8,
        upstream_size: usize,
        service: *const u8,
        service_size: usize,
        method: *const u8,
        method_size: usize,
        metadata: *const u8,
        metadata_size: usize,
        return_token: *mut u32,
    ) -> u32;
    fn proxy_grpc_send(token: u32, message: *const u8, message_size: usize, end: bool) -> u32;
    fn proxy_grpc_cancel(token: u32) -> u32;
    fn proxy_grpc_close(token: u32) -> u32;
    fn proxy_get_status(
        return_code: *mut u32,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_call_foreign_function(
        name: *const u8,
        name_size: usize,
        arguments: *const u8,
        arguments_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_done() -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_get_metric(metric_id: u32, return_value: *mut u64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
}

/// An address past any linear memory a module of this size can have.
pub const BAD_PTR: usize = 0xFFFF_FFF0;

/// What a call that returns bytes answered: its status, and the bytes when the host
/// wrote a non-null pointer.
pub struct Answer {
    pub status: u32,
    pub data: Option<Vec<u8>>,
}

impl Answer {
    /// `status` alone, or `status size=N "text"` with the bytes escaped.
    pub fn show(&self) -> String {
        match &self.data {
            None => format!("{} null", self.status),
            Some(d) => format!("{} {:?}", self.status, String::from_utf8_lossy(d)),
        }
    }
}

fn take(status: u32, ptr: *mut u8, size: usize) -> Answer {
    let data = if ptr.is_null() {
        None
    } else {
        // SAFETY: the host allocated `size` bytes through `proxy_on_memory_allocate`,
        // which hands out a boxed slice of exactly that size.
        Some(unsafe { Vec::from_raw_parts(ptr, size, size) })
    };
    Answer { status, data }
}

pub fn log(level: u32, message: &str) -> u32 {
    unsafe { proxy_log(level, message.as_ptr(), message.len()) }
}

pub fn log_raw(level: u32, ptr: usize, size: usize) -> u32 {
    unsafe { proxy_log(level, ptr as *const u8, size) }
}

pub fn get_log_level() -> (u32, u32) {
    let mut level = 99;
    let status = unsafe { proxy_get_log_level(&mut level) };
    (status, level)
}

pub fn get_time() -> (u32, u64) {
    let mut t = 0;
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut t) };
    (status, t)
}

pub fn get_time_bad_ptr() -> u32 {
    unsafe { proxy_get_current_time_nanoseconds(BAD_PTR as *mut u64) }
}

pub fn set_tick(period: u32) -> u32 {
    unsafe { proxy_set_tick_period_milliseconds(period) }
}

pub fn get_buffer(buffer_type: u32, start: usize, max: usize) -> Answer {
    let (mut p, mut s) = (null_mut(), 0);
    let status = unsafe { proxy_get_buffer_bytes(buffer_type, start, max, &mut p, &mut s) };
    take(status, p, s)
}

pub fn set_buffer(buffer_type: u32, start: usize, size: usize, data: &[u8]) -> u32 {
    unsafe { proxy_set_buffer_bytes(buffer_type, start, size, data.as_ptr(), data.len()) }
}

pub fn get_pairs(map_type: u32) -> Answer {
    let (mut p, mut s) = (null_mut(), 0);
    let status = unsafe { proxy_get_header_map_pairs(map_type, &mut p, &mut s) };
    take(status, p, s)
}

pub fn set_pairs(map_type: u32, data: &[u8]) -> u32 {
    unsafe { proxy_set_header_map_pairs(map_type, data.as_ptr(), data.len()) }
}

pub fn set_pairs_raw(map_type: u32, ptr: usize, size: usize) -> u32 {
    unsafe { proxy_set_header_map_pairs(map_type, ptr as *const u8, size) }
}

pub fn get_header(map_type: u32, key: &str) -> Answer {
    let (mut p, mut s) = (null_mut(), 0);
    let status =
        unsafe { proxy_get_header_map_value(map_type, key.as_ptr(), key.len(), &mut p, &mut s) };
    take(status, p, s)
}

pub fn get_header_bad_key(map_type: u32) -> u32 {
    let (mut p, mut s) = (null_mut(), 0);
    unsafe { proxy_get_header_map_value(map_type, BAD_PTR as *const u8, 64, &mut p, &mut s) }
}

pub fn get_header_bad_return(map_type: u32, key: &str) -> u32 {
    let mut s = 0;
    unsafe {
        proxy_get_header_map_value(
            map_type,
            key.as_ptr(),
            key.len(),
            BAD_PTR as *mut *mut u8,
            &mut s,
        )
    }
}

pub fn remove_header(map_type: u32, key: &str) -> u32 {
    unsafe { proxy_remove_header_map_value(map_type, key.as_ptr(), key.len()) }
}

pub fn replace_header(map_type: u32, key: &str, value: &str) -> u32 {
    unsafe {
        proxy_replace_header_map_value(
            map_type,
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
        )
    }
}

pub fn add_header(map_type: u32, key: &str, value: &str) -> u32 {
    unsafe {
        proxy_add_header_map_value(
            map_type,
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
        )
    }
}

/// A property path from its segments, NUL-separated as the SDK sends it.
pub fn path(segments: &[&str]) -> Vec<u8> {
    segments.join("\0").into_bytes()
}

pub fn get_property(segments: &[&str]) -> Answer {
    let path = path(segments);
    let (mut p, mut s) = (null_mut(), 0);
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut p, &mut s) };
    take(status, p, s)
}

pub fn set_property(segments: &[&str], value: &[u8]) -> u32 {
    let path = path(segments);
    unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) }
}

pub fn get_shared(key: &str) -> (Answer, u32) {
    let (mut p, mut s, mut cas) = (null_mut(), 0, 0);
    let status =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut p, &mut s, &mut cas) };
    (take(status, p, s), cas)
}

pub fn set_shared(key: &str, value: &[u8], cas: u32) -> u32 {
    unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) }
}

pub fn set_shared_bad_key() -> u32 {
    unsafe { proxy_set_shared_data(BAD_PTR as *const u8, 64, BAD_PTR as *const u8, 0, 0) }
}

pub fn register_queue(name: &str) -> (u32, u32) {
    let mut id = 0;
    let status = unsafe { proxy_register_shared_queue(name.as_ptr(), name.len(), &mut id) };
    (status, id)
}

pub fn resolve_queue(vm_id: &str, name: &str) -> (u32, u32) {
    let mut id = 0;
    let status = unsafe {
        proxy_resolve_shared_queue(
            vm_id.as_ptr(),
            vm_id.len(),
            name.as_ptr(),
            name.len(),
            &mut id,
        )
    };
    (status, id)
}

pub fn dequeue(queue_id: u32) -> Answer {
    let (mut p, mut s) = (null_mut(), 0);
    let status = unsafe { proxy_dequeue_shared_queue(queue_id, &mut p, &mut s) };
    take(status, p, s)
}

pub fn enqueue(queue_id: u32, value: &[u8]) -> u32 {
    unsafe { proxy_enqueue_shared_queue(queue_id, value.as_ptr(), value.len()) }
}

pub fn continue_stream(stream_type: u32) -> u32 {
    unsafe { proxy_continue_stream(stream_type) }
}

pub fn close_stream(stream_type: u32) -> u32 {
    unsafe { proxy_close_stream(stream_type) }
}

pub fn send_local_response(status: u32, details: &str, body: &[u8], headers: &[u8]) -> u32 {
    unsafe {
        proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    }
}

pub fn http_call(upstream: &str, headers: &[u8], body: &[u8], timeout: u32) -> (u32, u32) {
    let trailers = serialize(&[]);
    let mut token = 0;
    let status = unsafe {
        proxy_http_call(
            upstream.as_ptr(),
            upstream.len(),
            headers.as_ptr(),
            headers.len(),
            body.as_ptr(),
            body.len(),
            trailers.as_ptr(),
            trailers.len(),
            timeout,
            &mut token,
        )
    };
    (status, token)
}

pub fn grpc_call(service: &[u8]) -> u32 {
    grpc_call_at(service.as_ptr(), service.len())
}

fn grpc_call_at(service: *const u8, service_size: usize) -> u32 {
    let metadata = serialize(&[]);
    let mut token = 0;
    unsafe {
        proxy_grpc_call(
            service,
            service_size,
            "svc".as_ptr(),
            3,
            "m".as_ptr(),
            1,
            metadata.as_ptr(),
            metadata.len(),
            "x".as_ptr(),
            1,
            1000,
            &mut token,
        )
    }
}

pub fn grpc_stream(service: &[u8]) -> u32 {
    let metadata = serialize(&[]);
    let mut token = 0;
    unsafe {
        proxy_grpc_stream(
            service.as_ptr(),
            service.len(),
            "svc".as_ptr(),
            3,
            "m".as_ptr(),
            1,
            metadata.as_ptr(),
            metadata.len(),
            &mut token,
        )
    }
}

pub fn grpc_send(token: u32) -> u32 {
    unsafe { proxy_grpc_send(token, "x".as_ptr(), 1, false) }
}

pub fn grpc_cancel(token: u32) -> u32 {
    unsafe { proxy_grpc_cancel(token) }
}

pub fn grpc_close(token: u32) -> u32 {
    unsafe { proxy_grpc_close(token) }
}

pub fn get_status() -> (Answer, u32) {
    let (mut code, mut p, mut s) = (99, null_mut(), 0);
    let status = unsafe { proxy_get_status(&mut code, &mut p, &mut s) };
    (take(status, p, s), code)
}

pub fn set_effective_context(context_id: u32) -> u32 {
    unsafe { proxy_set_effective_context(context_id) }
}

pub fn call_foreign(name: &str) -> Answer {
    let (mut p, mut s) = (null_mut(), 0);
    let status = unsafe {
        proxy_call_foreign_function(name.as_ptr(), name.len(), "".as_ptr(), 0, &mut p, &mut s)
    };
    take(status, p, s)
}

pub fn done() -> u32 {
    unsafe { proxy_done() }
}

pub fn define_metric(metric_type: u32, name: &str) -> (u32, u32) {
    let mut id = 0;
    let status = unsafe { proxy_define_metric(metric_type, name.as_ptr(), name.len(), &mut id) };
    (status, id)
}

pub fn get_metric(id: u32) -> (u32, u64) {
    let mut v = 0;
    let status = unsafe { proxy_get_metric(id, &mut v) };
    (status, v)
}

pub fn record_metric(id: u32, value: u64) -> u32 {
    unsafe { proxy_record_metric(id, value) }
}

pub fn increment_metric(id: u32, offset: i64) -> u32 {
    unsafe { proxy_increment_metric(id, offset) }
}

/// A header map in the ABI's encoding: count, then (key size, value size) pairs, then
/// each key and value NUL-terminated.
pub fn serialize(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// The pairs of a serialized map; `None` when the bytes do not hold a whole map.
pub fn deserialize(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let word = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = word(0)?;
    let mut sizes = Vec::with_capacity(count.min(1024));
    for i in 0..count {
        sizes.push((word(4 + i * 8)?, word(8 + i * 8)?));
    }
    let mut at = 4 + count * 8;
    let mut pairs = Vec::with_capacity(sizes.len());
    for (ks, vs) in sizes {
        let k = bytes.get(at..at + ks)?;
        at += ks + 1;
        let v = bytes.get(at..at + vs)?;
        at += vs + 1;
        pairs.push((
            String::from_utf8_lossy(k).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        ));
    }
    Some(pairs)
}

/// Calls with one pointer outside linear memory ([`BAD_PTR`]) and every other argument
/// valid, so the answer says which argument the host checks, and when.
pub mod bad {
    use super::*;

    const IN: *const u8 = BAD_PTR as *const u8;
    const OUT: *mut u8 = BAD_PTR as *mut u8;

    pub fn get_log_level() -> u32 {
        unsafe { proxy_get_log_level(OUT.cast()) }
    }

    pub fn get_status() -> u32 {
        let (mut p, mut s) = (null_mut(), 0);
        unsafe { proxy_get_status(OUT.cast(), &mut p, &mut s) }
    }

    pub fn call_foreign_name() -> u32 {
        let (mut p, mut s) = (null_mut(), 0);
        unsafe { proxy_call_foreign_function(IN, 8, "".as_ptr(), 0, &mut p, &mut s) }
    }

    pub fn get_pairs_return(map_type: u32) -> u32 {
        let mut s = 0;
        unsafe { proxy_get_header_map_pairs(map_type, OUT.cast(), &mut s) }
    }

    pub fn add_header_key(map_type: u32) -> u32 {
        unsafe { proxy_add_header_map_value(map_type, IN, 8, "v".as_ptr(), 1) }
    }

    pub fn add_header_value(map_type: u32) -> u32 {
        unsafe { proxy_add_header_map_value(map_type, "x-bad".as_ptr(), 5, IN, 8) }
    }

    pub fn replace_header_value(map_type: u32) -> u32 {
        unsafe { proxy_replace_header_map_value(map_type, "x-bad".as_ptr(), 5, IN, 8) }
    }

    pub fn remove_header_key(map_type: u32) -> u32 {
        unsafe { proxy_remove_header_map_value(map_type, IN, 8) }
    }

    pub fn get_buffer_return(buffer_type: u32) -> u32 {
        let mut s = 0;
        unsafe { proxy_get_buffer_bytes(buffer_type, 0, 100, OUT.cast(), &mut s) }
    }

    pub fn get_buffer_size_return(buffer_type: u32) -> u32 {
        let mut p = null_mut();
        unsafe { proxy_get_buffer_bytes(buffer_type, 0, 100, &mut p, OUT.cast()) }
    }

    pub fn set_buffer_data(buffer_type: u32) -> u32 {
        unsafe { proxy_set_buffer_bytes(buffer_type, 0, 0, IN, 8) }
    }

    pub fn get_property_path() -> u32 {
        let (mut p, mut s) = (null_mut(), 0);
        unsafe { proxy_get_property(IN, 8, &mut p, &mut s) }
    }

    pub fn get_property_return(segments: &[&str]) -> u32 {
        let path = path(segments);
        let mut s = 0;
        unsafe { proxy_get_property(path.as_ptr(), path.len(), OUT.cast(), &mut s) }
    }

    pub fn set_property_value() -> u32 {
        let path = path(&["probe_bad_key"]);
        unsafe { proxy_set_property(path.as_ptr(), path.len(), IN, 8) }
    }

    pub fn get_shared_key() -> u32 {
        let (mut p, mut s, mut cas) = (null_mut(), 0, 0);
        unsafe { proxy_get_shared_data(IN, 8, &mut p, &mut s, &mut cas) }
    }

    pub fn get_shared_return(key: &str) -> u32 {
        let (mut s, mut cas) = (0, 0);
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), OUT.cast(), &mut s, &mut cas) }
    }

    pub fn get_shared_cas_return(key: &str) -> u32 {
        let (mut p, mut s) = (null_mut(), 0);
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut p, &mut s, OUT.cast()) }
    }

    pub fn set_shared_value(key: &str) -> u32 {
        unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), IN, 8, 0) }
    }

    pub fn register_queue_name() -> u32 {
        let mut id = 0;
        unsafe { proxy_register_shared_queue(IN, 8, &mut id) }
    }

    pub fn register_queue_return(name: &str) -> u32 {
        unsafe { proxy_register_shared_queue(name.as_ptr(), name.len(), OUT.cast()) }
    }

    pub fn resolve_queue_vm_id(name: &str) -> u32 {
        let mut id = 0;
        unsafe { proxy_resolve_shared_queue(IN, 8, name.as_ptr(), name.len(), &mut id) }
    }

    pub fn resolve_queue_return(vm_id: &str, name: &str) -> u32 {
        unsafe {
            proxy_resolve_shared_queue(
                vm_id.as_ptr(),
                vm_id.len(),
                name.as_ptr(),
                name.len(),
                OUT.cast(),
            )
        }
    }

    pub fn dequeue_return(queue_id: u32) -> u32 {
        let mut s = 0;
        unsafe { proxy_dequeue_shared_queue(queue_id, OUT.cast(), &mut s) }
    }

    pub fn enqueue_value(queue_id: u32) -> u32 {
        unsafe { proxy_enqueue_shared_queue(queue_id, IN, 8) }
    }

    pub fn send_local_response_details() -> u32 {
        let headers = serialize(&[]);
        unsafe {
            proxy_send_local_response(
                500,
                IN,
                8,
                "".as_ptr(),
                0,
                headers.as_ptr(),
                headers.len(),
                -1,
            )
        }
    }

    pub fn send_local_response_headers() -> u32 {
        unsafe { proxy_send_local_response(500, "d".as_ptr(), 1, "".as_ptr(), 0, IN, 8, -1) }
    }

    pub fn define_metric_name() -> u32 {
        let mut id = 0;
        unsafe { proxy_define_metric(0, IN, 8, &mut id) }
    }

    pub fn define_metric_return(name: &str) -> u32 {
        unsafe { proxy_define_metric(0, name.as_ptr(), name.len(), OUT.cast()) }
    }

    pub fn get_metric_return(id: u32) -> u32 {
        unsafe { proxy_get_metric(id, OUT.cast()) }
    }

    /// `proxy_http_call` with the pointer of argument `which` (cluster, headers, body,
    /// trailers, token) outside memory.
    pub fn http_call(cluster: &str, headers: &[u8], which: &str) -> u32 {
        let trailers = serialize(&[]);
        let mut token = 0;
        let pick = |name: &str, ptr: *const u8| if which == name { IN } else { ptr };
        unsafe {
            proxy_http_call(
                pick("cluster", cluster.as_ptr()),
                cluster.len(),
                pick("headers", headers.as_ptr()),
                headers.len(),
                pick("body", "b".as_ptr()),
                1,
                pick("trailers", trailers.as_ptr()),
                trailers.len(),
                1000,
                if which == "token" {
                    OUT.cast()
                } else {
                    &mut token
                },
            )
        }
    }

    pub fn grpc_call_service() -> u32 {
        grpc_call_at(IN, 8)
    }
}
