//! Messages: `UserMessage`, `AssistantMessage` and the errors an assistant message can end with.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::session::FileDiff;
use super::{Cost, Tokens};

/// A message of a session, tagged by `role`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message {
    /// What the user sent.
    User(UserMessage),
    /// One step of the assistant's answer.
    Assistant(AssistantMessage),
}

impl Message {
    /// `msg_…`
    pub fn id(&self) -> &str {
        match self {
            Message::User(message) => &message.id,
            Message::Assistant(message) => &message.id,
        }
    }
}

/// A message with its parts: what `/session/:id/shell` and `/session/:id/message` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WithParts {
    /// The message.
    pub info: Message,
    /// Its parts.
    pub parts: Vec<super::part::Part>,
}

/// The model a user message asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    /// Provider id.
    #[serde(rename = "providerID")]
    pub provider_id: String,
    /// Model id (the key in the provider's models, not the API id).
    #[serde(rename = "modelID")]
    pub model_id: String,
    /// Variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// `UserMessage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserMessage {
    /// `msg_…`
    pub id: String,
    /// Its session.
    #[serde(rename = "sessionID")]
    pub session_id: String,
    /// `{created}`.
    pub time: Created,
    /// Requested output format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Value>,
    /// Changes made while answering it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<UserSummary>,
    /// Agent name.
    pub agent: String,
    /// Model.
    pub model: ModelRef,
    /// Extra system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Tools switched on or off for this prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<serde_json::Map<String, Value>>,
}

/// `UserMessage.time`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Created {
    /// Created (ms).
    pub created: u64,
}

/// `UserMessage.summary`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserSummary {
    /// Title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Files changed while answering.
    pub diffs: Vec<FileDiff>,
}

/// `AssistantMessage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    /// `msg_…`
    pub id: String,
    /// The user message it answers.
    #[serde(rename = "parentID")]
    pub parent_id: String,
    /// Agent mode (the agent name).
    pub mode: String,
    /// Agent name.
    pub agent: String,
    /// Working directory and project root.
    pub path: MessagePath,
    /// Cost in dollars.
    pub cost: Cost,
    /// Tokens.
    pub tokens: Tokens,
    /// Model id (as the user chose it).
    #[serde(rename = "modelID")]
    pub model_id: String,
    /// Provider id.
    #[serde(rename = "providerID")]
    pub provider_id: String,
    /// Timestamps.
    pub time: AssistantTime,
    /// Its session.
    #[serde(rename = "sessionID")]
    pub session_id: String,
    /// Why the model stopped (`stop`, `tool-calls`, `length`, …); absent on errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish: Option<String>,
    /// How the step failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<MessageError>,
    /// A summary (compaction) message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<bool>,
    /// Structured output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured: Option<Value>,
    /// Variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl AssistantMessage {
    /// A new assistant message answering `parent_id`, started at `created`: nothing spent,
    /// nothing finished, in `directory` (its working directory and root).
    pub fn begun(
        id: String,
        session_id: String,
        parent_id: String,
        agent: &str,
        model: &ModelRef,
        directory: &str,
        created: u64,
    ) -> AssistantMessage {
        AssistantMessage {
            id,
            parent_id,
            mode: agent.to_owned(),
            agent: agent.to_owned(),
            path: MessagePath {
                cwd: directory.to_owned(),
                root: directory.to_owned(),
            },
            cost: Cost::default(),
            tokens: Tokens::default(),
            model_id: model.model_id.clone(),
            provider_id: model.provider_id.clone(),
            time: AssistantTime {
                created,
                completed: None,
            },
            session_id,
            finish: None,
            error: None,
            summary: None,
            structured: None,
            variant: None,
        }
    }
}

/// `AssistantMessage.path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePath {
    /// Working directory.
    pub cwd: String,
    /// Project root.
    pub root: String,
}

/// `AssistantMessage.time`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AssistantTime {
    /// Created (ms).
    pub created: u64,
    /// Completed (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
}

/// How an assistant message failed (`name` + `data`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", content = "data")]
pub enum MessageError {
    /// The user (or a lost connection) stopped it.
    MessageAbortedError {
        /// Why.
        message: String,
    },
    /// The provider answered with an error.
    #[serde(rename = "APIError")]
    ApiError(ApiErrorData),
    /// The provider refused the credentials.
    ProviderAuthError {
        /// The provider.
        #[serde(rename = "providerID")]
        provider_id: String,
        /// Its message.
        message: String,
    },
    /// The model's output hit the length limit.
    MessageOutputLengthError {},
    /// The conversation no longer fits the model's context.
    ContextOverflowError {
        /// The provider's message.
        message: String,
        /// The provider's answer.
        #[serde(
            rename = "responseBody",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        response_body: Option<String>,
    },
    /// Anything else.
    UnknownError {
        /// What happened.
        message: String,
    },
}

impl MessageError {
    /// The abort error OpenCode records when a turn is stopped.
    pub fn aborted(message: impl Into<String>) -> MessageError {
        MessageError::MessageAbortedError {
            message: message.into(),
        }
    }
}

/// `APIError.data`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiErrorData {
    /// The provider's message.
    pub message: String,
    /// HTTP status.
    #[serde(
        rename = "statusCode",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub status_code: Option<u16>,
    /// Whether retrying may help.
    #[serde(rename = "isRetryable")]
    pub is_retryable: bool,
    /// Response headers.
    #[serde(
        rename = "responseHeaders",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub response_headers: Option<std::collections::BTreeMap<String, String>>,
    /// Response body.
    #[serde(
        rename = "responseBody",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub response_body: Option<String>,
    /// E.g. `{url}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_should_round_trip_opencodes_shapes() {
        let assistant = json!({"id":"msg_1","parentID":"msg_0","role":"assistant","mode":"build","agent":"build",
            "path":{"cwd":"/p","root":"/p"},"cost":0.000991,
            "tokens":{"total":1021,"input":901,"output":15,"reasoning":5,"cache":{"write":0,"read":100}},
            "modelID":"m","providerID":"p","time":{"created":1,"completed":2},"sessionID":"ses_1","finish":"tool-calls"});
        let parsed: Message = serde_json::from_value(assistant.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), assistant);
        let aborted = MessageError::aborted("Aborted");
        assert_eq!(
            serde_json::to_value(aborted).unwrap(),
            json!({"name":"MessageAbortedError","data":{"message":"Aborted"}})
        );
        let user = json!({"id":"msg_0","sessionID":"ses_1","role":"user","time":{"created":1},"agent":"build",
            "model":{"providerID":"p","modelID":"m"}});
        let parsed: Message = serde_json::from_value(user.clone()).unwrap();
        assert_eq!(parsed.id(), "msg_0");
        assert_eq!(serde_json::to_value(&parsed).unwrap(), user);
    }
}
