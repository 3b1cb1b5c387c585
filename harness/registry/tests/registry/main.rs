//! Integration tests of the registry crate against a real registry, compiled as one
//! binary.
//!
//! - `wasm`: the filter's Wasm image pushed from its layout, as skopeo sees it, pulled
//!   back; references and layouts refused before connecting.
//! - `auth`: credentials from a docker config file; wrong or missing ones refused.
//! - `cli_image`: the CLI's container image, on disk and pushed.

mod auth;
mod cli_image;
mod support;
mod wasm;
