//! Sessions: the durable per-session event log OpenCode replicates from, the event bus behind
//! the SSE streams, OpenCode-format ids, session records and which sessions are busy.

pub mod bus;
pub mod ids;
pub mod info;
pub mod store;
