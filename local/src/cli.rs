//! The subcommands of `opencode-remote`.

pub mod doctor;
pub mod setup;
