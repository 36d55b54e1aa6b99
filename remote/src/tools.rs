//! Execution on the host, with no HTTP and no events: child processes, shell commands, the
//! file system (confined listing, reading, search, fuzzy find) and git.

pub mod diff;
pub mod edit;
pub mod find;
pub mod fs;
pub mod git;
pub mod js;
pub mod patch;
pub mod procs;
pub mod read;
pub mod search;
pub mod shell;
pub mod truncate;
pub mod vcs;
