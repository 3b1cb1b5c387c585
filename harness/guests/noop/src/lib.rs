//! A proxy-wasm HTTP filter that does nothing.
//!
//! It is the baseline of every cost-per-request figure (SPEC 2.6): Envoy already
//! pays for a Wasm module by merely calling into it on every stream, so the c4mesh
//! filter is measured against this module, not against Envoy without Wasm.

// A Wasm program: empty when built for the host.
#![cfg(target_arch = "wasm32")]

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(NoopRoot) });
}}

struct NoopRoot;

impl Context for NoopRoot {}

impl RootContext for NoopRoot {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(NoopStream))
    }
}

struct NoopStream;

impl Context for NoopStream {}

impl HttpContext for NoopStream {}
