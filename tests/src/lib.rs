//! Test harness: a real OpenSSH sshd per test, the built binaries, a bridge child process, and
//! HTTP helpers.
pub mod bins;
pub mod bridge;
pub mod http;
pub mod sshd;
