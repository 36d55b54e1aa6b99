//! End-to-end tests: real sshd, real binaries, real OpenCode. One test binary (see Cargo.toml).
mod agent;
mod agent_turns;
mod arm64;
mod config_cli;
mod differential;
mod foundation;
mod gateway;
mod h2_abuse;
mod jump;
mod layout;
mod old_kernel;
mod opencode;
mod password;
mod setup;
mod terminal;
mod workspace_api;
