//! Execution on the host, with no HTTP and no events: child processes, shell commands, the
//! file system (confined listing, reading, search, fuzzy find) and git.
//!
//! The execution half of the agent's tools lives here too, one module per tool, each knowing
//! nothing of sessions, permissions or events (the adapters in `agent` add those) and each
//! matching the texts OpenCode 1.18.33's tools produce byte for byte:
//! - [`read`], [`glob`], [`grep`]: the read-only tools;
//! - [`edit`], [`patch`]: `edit` (and its diff and BOM helpers, which `write` reuses) and
//!   `apply_patch`, computed without writing;
//! - [`diff`]: the unified diffs and line counts those tools attach, as jsdiff makes them;
//! - [`truncate`]: the limits on what a tool returns, and the bash output tail;
//! - [`js`]: the JavaScript string and path rules the texts depend on.

pub mod diff;
pub mod edit;
pub mod find;
pub mod fs;
pub mod git;
pub mod glob;
pub mod grep;
pub mod html;
pub mod js;
pub mod patch;
pub mod procs;
pub mod read;
pub mod search;
pub mod shell;
pub mod truncate;
pub mod vcs;
