//! Test harness: a real OpenSSH sshd per test, and helpers to find the built binaries.
pub mod bins;
pub mod sshd;
