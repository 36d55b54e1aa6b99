//! The wire contract between `opencode-remote` (the local side) and `opencode-remote-stub`.
//!
//! The stub runs per SSH exec channel and talks over that channel's stdin/stdout:
//!
//! 1. a short length-prefixed bincode [`handshake`] (`Hello` → `Welcome`/`Refusal`),
//! 2. then HTTP/2 with prior knowledge carrying OpenCode's own HTTP API (JSON bodies, SSE) plus
//!    the few stub-specific routes in [`api`],
//! 3. and on the same connection the reverse road of [`gateway`]: model calls, web fetches and
//!    the user's OpenCode setup, asked by the stub and performed by the bridge on the laptop.
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
pub mod gateway;
pub mod handshake;

pub use handshake::{PROTOCOL_VERSION, Version};
