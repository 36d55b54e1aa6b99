//! `Pty`: a terminal as OpenCode describes it (`GET /pty`, `pty.created`, `pty.updated`).

use serde::Serialize;

/// Whether the terminal's program still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PtyStatus {
    /// Running.
    Running,
    /// Its program ended.
    Exited,
}

/// One terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pty {
    /// `pty_…`
    pub id: String,
    /// Shown in the tab (`Terminal <last 4 of id>` unless given).
    pub title: String,
    /// The program.
    pub command: String,
    /// Its arguments (`-l` added for login shells).
    pub args: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// Running or exited.
    pub status: PtyStatus,
    /// The program's pid (also its process group and session).
    pub pid: u32,
    /// Exit code once exited.
    #[serde(rename = "exitCode", skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}
