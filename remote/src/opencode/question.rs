//! `QuestionRequest`: what the `question` tool asks the user (bus `question.asked`,
//! `GET /question` items) and the answers.

use serde::{Deserialize, Serialize};

use super::permission::ToolRef;

/// A pending question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionRequest {
    /// `que_…`
    pub id: String,
    /// The session asking.
    #[serde(rename = "sessionID")]
    pub session_id: String,
    /// The questions, in order.
    pub questions: Vec<QuestionInfo>,
    /// The tool call waiting for the answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolRef>,
}

/// One question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionInfo {
    /// The whole question.
    pub question: String,
    /// A short label.
    pub header: String,
    /// The choices.
    pub options: Vec<QuestionOption>,
    /// Several choices allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiple: Option<bool>,
    /// A typed answer allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<bool>,
}

/// One choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionOption {
    /// What the user picks.
    pub label: String,
    /// What it means.
    pub description: String,
}
