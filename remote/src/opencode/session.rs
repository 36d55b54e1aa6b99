//! `Session` (OpenCode's session info) and `SessionStatus`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Cost, Object, Tokens};

/// A session as OpenCode stores and lists it (`Session` in OpenCode's schema).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// `ses_…` (descending id).
    pub id: String,
    /// Random two-word slug.
    pub slug: String,
    /// OpenCode version that created it.
    pub version: String,
    /// The local OpenCode's project id (root commit hash of the project).
    #[serde(rename = "projectID")]
    pub project_id: String,
    /// Working directory (on the host).
    pub directory: String,
    /// Sub-path inside the project (always `""` here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The workspace the session belongs to.
    #[serde(
        rename = "workspaceID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub workspace_id: Option<String>,
    /// Parent session (sub-agent sessions).
    #[serde(rename = "parentID", default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Title.
    pub title: String,
    /// Agent last used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Model last used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<SessionModel>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Object>,
    /// Permission ruleset (`[{permission, pattern, action}]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<Value>,
    /// Changed-files summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// Share link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<Share>,
    /// Revert marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert: Option<Revert>,
    /// Total cost in dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    /// Total tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Tokens>,
    /// Timestamps (ms).
    pub time: SessionTime,
}

/// `Session.model`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionModel {
    /// Model id as the user chose it.
    pub id: String,
    /// Provider id.
    #[serde(rename = "providerID")]
    pub provider_id: String,
    /// Variant (`default`, reasoning levels…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// `Session.summary`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Lines added.
    pub additions: u64,
    /// Lines removed.
    pub deletions: u64,
    /// Files changed.
    pub files: u64,
    /// Per-file diffs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diffs: Option<Vec<FileDiff>>,
}

/// One changed file (`SnapshotFileDiff`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileDiff {
    /// Path relative to the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Unified diff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// Lines added.
    pub additions: u64,
    /// Lines removed.
    pub deletions: u64,
    /// `added`, `deleted` or `modified`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// `Session.share`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Share {
    /// The share URL.
    pub url: String,
}

/// `Session.revert`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revert {
    /// Message reverted to.
    #[serde(rename = "messageID")]
    pub message_id: String,
    /// Part reverted to.
    #[serde(rename = "partID", default, skip_serializing_if = "Option::is_none")]
    pub part_id: Option<String>,
    /// Snapshot hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Diff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// `Session.time`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionTime {
    /// Created (ms).
    pub created: u64,
    /// Last updated (ms).
    pub updated: u64,
    /// Compaction started (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compacting: Option<u64>,
    /// Archived (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<f64>,
}

/// `SessionStatus`: what a session is doing (bus-only, and `GET /session/status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Status {
    /// Nothing running.
    Idle,
    /// A prompt or command runs.
    Busy,
    /// Waiting to retry a model call.
    Retry {
        /// Attempt number, from 1.
        attempt: u32,
        /// Why (the provider's message).
        message: String,
        /// When the next attempt starts (epoch ms).
        next: u64,
    },
}
