//! Shared by the host's integration tests: the workspace's probe module built on first
//! use, small test guests in WAT, and transcripts as lines.

use c4mesh_host::{LogRecord, Proxy, ProxyBuilder};
use std::path::PathBuf;

/// A module of the workspace (`c4mesh_filter`, `c4mesh_abi_probe`...), built once per
/// test run.
pub fn wasm_module(name: &str) -> PathBuf {
    c4mesh_mesh::envoy::module(name).unwrap_or_else(|e| panic!("{e:#}"))
}

pub fn probe_wasm() -> PathBuf {
    wasm_module("c4mesh_abi_probe")
}

/// A proxy builder for a WAT guest.
pub fn wat_proxy(source: &str) -> ProxyBuilder {
    let bytes = wat::parse_str(source).expect("valid WAT");
    Proxy::builder().wasm_bytes(bytes)
}

/// Log records as `level message` lines.
pub fn lines(logs: &[LogRecord]) -> Vec<String> {
    logs.iter()
        .map(|l| format!("{} {}", l.level, l.message))
        .collect()
}

/// A minimal proxy-wasm guest: on request headers it reads `x-fault` and loops
/// forever (`loop`), traps (`trap`), or grows its memory past any limit (`memory`);
/// otherwise it logs `ok` and continues. It also imports a host function no host has,
/// and calls it at start, refusing to start unless it answers Unimplemented (12).
pub const FAULT_GUEST: &str = r#"
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_from_the_future" (func $future (param i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 16) "x-fault")
  (data (i32.const 32) "ok")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (i32.eq (call $future (i32.const 7)) (i32.const 12)))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param i32 i32) (result i32)
    (local $first i32)
    (if (i32.eqz (call $get (i32.const 0) (i32.const 16) (i32.const 7) (i32.const 64) (i32.const 68)))
      (then
        (local.set $first (i32.load8_u (i32.load (i32.const 64))))
        (if (i32.eq (local.get $first) (i32.const 108)) (then (loop $forever (br $forever))))
        (if (i32.eq (local.get $first) (i32.const 116)) (then unreachable))
        (if (i32.eq (local.get $first) (i32.const 109))
          (then
            (if (i32.eq (memory.grow (i32.const 60000)) (i32.const -1)) (then unreachable))))))
    (drop (call $log (i32.const 2) (i32.const 32) (i32.const 2)))
    (i32.const 0))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))
"#;
