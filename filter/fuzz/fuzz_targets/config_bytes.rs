//! The configuration parser on arbitrary bytes: never panics, and every refusal says
//! why.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Err(error) = c4mesh_filter_core::Config::parse(bytes) {
        assert!(!error.reason.is_empty(), "a refusal without a reason");
    }
});
