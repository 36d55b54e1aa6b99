//! End-to-end tests: real sshd, real binaries. One test binary (see Cargo.toml).
mod foundation;
mod workspace_api;
