//! Handlers per OpenCode area: decode the request, call a room, encode the answer.

pub mod diag;
pub mod files;
pub mod opencode;
