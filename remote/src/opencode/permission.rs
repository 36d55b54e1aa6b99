//! `PermissionRequest` and the user's reply.

use serde::{Deserialize, Serialize};

use super::Object;

/// A pending permission request (bus `permission.asked`, `GET /permission` items).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermissionRequest {
    /// `per_…`
    pub id: String,
    /// The session asking.
    #[serde(rename = "sessionID")]
    pub session_id: String,
    /// The permission (`external_directory`, `bash`, `edit`, `read`, …).
    pub permission: String,
    /// What is asked for (paths, command patterns).
    pub patterns: Vec<String>,
    /// Details shown in the prompt (`parentDir`, `filepath`, `command`, …).
    pub metadata: Object,
    /// What an `always` reply approves from now on.
    pub always: Vec<String>,
    /// The tool call waiting for the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolRef>,
}

/// A tool call, by message and call id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRef {
    /// The assistant message holding the tool part.
    #[serde(rename = "messageID")]
    pub message_id: String,
    /// The model's call id.
    #[serde(rename = "callID")]
    pub call_id: String,
}

/// The user's answer to a permission request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reply {
    /// Allow this one call.
    Once,
    /// Allow, and everything matching `always` from now on.
    Always,
    /// Refuse.
    Reject,
}

impl Reply {
    /// Parses OpenCode's reply strings (also the legacy `response` values).
    pub fn parse(text: &str) -> Option<Reply> {
        match text {
            "once" => Some(Reply::Once),
            "always" => Some(Reply::Always),
            "reject" => Some(Reply::Reject),
            _ => None,
        }
    }

    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Reply::Once => "once",
            Reply::Always => "always",
            Reply::Reject => "reject",
        }
    }
}
