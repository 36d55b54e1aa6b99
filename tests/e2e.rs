//! End-to-end tests: real sshd, real binaries, real OpenCode. One test binary (see Cargo.toml).
mod foundation;
mod opencode;
mod setup;
mod workspace_api;
