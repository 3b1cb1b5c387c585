//! A proxy-wasm HTTP filter that traps on purpose: a request whose path contains
//! `/trap` makes it execute `unreachable`, as a filter with a bug would. Every other
//! request gets `x-trap-module: passed` on its way upstream, so a test can tell a
//! request the module handled from one Envoy let through without it (fail open).

// A Wasm program: empty when built for the host.
#![cfg(target_arch = "wasm32")]

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(TrapRoot) });
}}

struct TrapRoot;

impl Context for TrapRoot {}

impl RootContext for TrapRoot {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(TrapStream))
    }
}

struct TrapStream;

impl Context for TrapStream {}

impl HttpContext for TrapStream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let path = self.get_http_request_header(":path").unwrap_or_default();
        if path.contains("/trap") {
            trap();
        }
        self.add_http_request_header("x-trap-module", "passed");
        Action::Continue
    }
}

/// A Wasm trap (`unreachable`).
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}
