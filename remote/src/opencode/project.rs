//! What the TUI asks when a workspace is the current one: `Path`, `Project`, the project's
//! directories, and the (empty, on a host) provider lists and capabilities.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::session::Session;

/// `GET /path`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathInfo {
    /// The user's home.
    pub home: String,
    /// State directory.
    pub state: String,
    /// Config directory.
    pub config: String,
    /// The git work tree (else the directory).
    pub worktree: String,
    /// The directory served.
    pub directory: String,
}

/// `GET /project/current`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    /// The project id (the local OpenCode's, or `global`).
    pub id: String,
    /// The git work tree (else the directory).
    pub worktree: String,
    /// `git` inside a repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcs: Option<String>,
    /// Created and updated (ms).
    pub time: ProjectTime,
    /// Sandboxes (none).
    pub sandboxes: Vec<String>,
}

/// `Project.time`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProjectTime {
    /// Created (ms).
    pub created: u64,
    /// Updated (ms).
    pub updated: u64,
}

/// One entry of `GET /project/:id/directories`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Directory {
    /// The directory.
    pub directory: String,
}

/// A session in `GET /experimental/session`, with its project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalSession {
    /// The session.
    #[serde(flatten)]
    pub info: Session,
    /// Its project.
    pub project: ProjectSummary,
}

/// `ProjectSummary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectSummary {
    /// Project id.
    pub id: String,
    /// Work tree.
    pub worktree: String,
}

/// `GET /config/providers` (user-level: answered from the laptop; empty on the host).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigProviders {
    /// Usable providers.
    pub providers: Vec<Value>,
    /// Default model per provider.
    pub default: serde_json::Map<String, Value>,
}

/// `GET /provider` (user-level: answered from the laptop; empty on the host).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderList {
    /// All providers.
    pub all: Vec<Value>,
    /// Default model per provider.
    pub default: serde_json::Map<String, Value>,
    /// Connected provider ids.
    pub connected: Vec<String>,
}

/// `GET /experimental/capabilities`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Sub-agents running in the background.
    #[serde(rename = "backgroundSubagents")]
    pub background_subagents: bool,
}

/// `GET /experimental/console`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Console {
    /// Providers managed by an OpenCode console.
    #[serde(rename = "consoleManagedProviders")]
    pub console_managed_providers: Vec<String>,
    /// Organisations to switch to.
    #[serde(rename = "switchableOrgCount")]
    pub switchable_org_count: u32,
}
