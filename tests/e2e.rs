//! End-to-end tests: real sshd, real binaries, real OpenCode. One test binary (see Cargo.toml).
mod foundation;
mod opencode;
mod workspace_api;
