//! The four host functions the lean probe calls, each behind a wrapper that cannot
//! panic: a failure is the ABI status the host answered, kept as a number so that the
//! transcript shows it.
//!
//! Buffers the host returns were allocated by [`crate::proxy_on_memory_allocate`] as a
//! `Vec<u8>` of exactly the requested capacity; [`Answer`] takes them back, so they are
//! freed when the answer is dropped.

use std::ptr::null_mut;

/// The ABI's `NotFound`: no such header, property or map in this phase.
pub const NOT_FOUND: u32 = 1;
const OK: u32 = 0;

/// Header maps by ABI number.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Map {
    RequestHeaders = 0,
    ResponseHeaders = 2,
}

mod imports {
    #[link(wasm_import_module = "env")]
    extern "C" {
        pub fn proxy_log(level: u32, text: *const u8, text_len: usize) -> u32;
        pub fn proxy_get_header_map_value(
            map: u32,
            name: *const u8,
            name_len: usize,
            out: *mut *mut u8,
            out_len: *mut usize,
        ) -> u32;
        pub fn proxy_get_property(
            path: *const u8,
            path_len: usize,
            out: *mut *mut u8,
            out_len: *mut usize,
        ) -> u32;
        pub fn proxy_send_local_response(
            status: u32,
            details: *const u8,
            details_len: usize,
            body: *const u8,
            body_len: usize,
            pairs: *const u8,
            pairs_len: usize,
            grpc_status: i32,
        ) -> u32;
    }
}

/// What a host call that returns bytes answered: the bytes, or the status it failed with.
pub type Answer = Result<Vec<u8>, u32>;

/// Runs a host call with two out-pointers and owns whatever buffer it handed over.
fn returned(call: impl FnOnce(*mut *mut u8, *mut usize) -> u32) -> Answer {
    let mut data: *mut u8 = null_mut();
    let mut len: usize = 0;
    let status = call(&mut data, &mut len);
    let bytes = if data.is_null() {
        Vec::new()
    } else {
        // SAFETY: a non-null buffer comes from `proxy_on_memory_allocate(len)`, a
        // forgotten `Vec<u8>` of capacity `len`, now filled with `len` bytes.
        unsafe { Vec::from_raw_parts(data, len, len) }
    };
    if status == OK {
        Ok(bytes)
    } else {
        Err(status)
    }
}

/// Logs at info (level 2).
pub fn info(text: &str) {
    // SAFETY: pointer and length of a live string.
    unsafe { imports::proxy_log(2, text.as_ptr(), text.len()) };
}

pub fn header(map: Map, name: &str) -> Answer {
    // SAFETY: pointer and length of a live string; out-pointers to locals.
    returned(|out, out_len| unsafe {
        imports::proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), out, out_len)
    })
}

/// A property by its path, segments joined by NUL as the ABI wants them.
pub fn property(segments: &[&str]) -> Answer {
    let path = segments.join("\0");
    // SAFETY: pointer and length of a live string; out-pointers to locals.
    returned(|out, out_len| unsafe {
        imports::proxy_get_property(path.as_ptr(), path.len(), out, out_len)
    })
}

/// Asks for a local reply with one header; returns the host's status.
pub fn send_local_response(status: u32, header: (&str, &str), body: &str) -> u32 {
    let (name, value) = header;
    // One pair: the count, the two sizes, then name and value each ended by NUL.
    let mut pairs = Vec::with_capacity(12 + name.len() + value.len() + 2);
    for word in [1, name.len(), value.len()] {
        pairs.extend_from_slice(&(word as u32).to_le_bytes());
    }
    for text in [name, value] {
        pairs.extend_from_slice(text.as_bytes());
        pairs.push(0);
    }
    let details = "probe_lean";
    // SAFETY: pointers and lengths of live buffers.
    unsafe {
        imports::proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            pairs.as_ptr(),
            pairs.len(),
            -1,
        )
    }
}
