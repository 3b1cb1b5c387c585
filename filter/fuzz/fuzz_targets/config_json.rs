//! The configuration parser on the default document with arbitrary edits (values of
//! any JSON type, unknown and known keys): never panics, refuses with a reason, and
//! what it accepts parses the same again.
#![no_main]

use c4mesh_fuzz::{Edit, Vocabulary};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static VOCABULARY: OnceLock<Vocabulary> = OnceLock::new();

fuzz_target!(|edits: Vec<Edit>| {
    let vocabulary = VOCABULARY.get_or_init(Vocabulary::new);
    let document = vocabulary.edited(&edits);
    let Ok(bytes) = serde_json::to_vec(&document) else {
        return;
    };
    match c4mesh_filter_core::Config::parse(&bytes) {
        Ok(_) => assert!(
            c4mesh_filter_core::Config::parse(&bytes).is_ok(),
            "accepted once, refused the second time"
        ),
        Err(error) => assert!(!error.reason.is_empty(), "a refusal without a reason"),
    }
});
