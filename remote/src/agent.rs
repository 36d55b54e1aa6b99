//! Runs on behalf of a session: today the user's `!shell` commands.

pub mod shell;
