//! The subcommands of `c4mesh`, one module each; `main.rs` only parses and dispatches.

pub mod check;
pub mod conformance;
pub mod demo;
pub mod manifests;
pub mod replay;
pub mod run;
pub mod soak;
pub mod up;
