//! Handlers per OpenCode area, one signature for all (`async fn(Req) -> Result<Response<Body>,
//! ApiError>`, routed by the table in [`crate::http`]): decode the request, call a room, encode
//! the answer.

pub mod diag;
pub mod event;
pub mod file;
pub mod gateway;
pub mod permission;
pub mod pty;
pub mod question;
pub mod session;
pub mod skill;
pub mod startup;
pub mod vcs;
