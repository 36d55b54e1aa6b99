//! The wire contract between `opencode-remote` (the local side) and `opencode-remote-stub`.
//!
//! The stub runs per SSH exec channel and talks over that channel's stdin/stdout:
//!
//! 1. a short length-prefixed bincode [`handshake`] (`Hello` → `Welcome`/`Refusal`),
//! 2. then HTTP/2 with prior knowledge carrying OpenCode's own HTTP API (JSON bodies, SSE) plus
//!    the few stub-specific routes in [`api`].
//!
//! This crate holds only data types and pure functions, so both binaries and the tests can use it
//! without pulling in an async runtime.
#![deny(missing_docs)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::indexing_slicing))]

pub mod api;
pub mod handshake;

pub use handshake::{PROTOCOL_VERSION, Version};
