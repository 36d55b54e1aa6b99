//! Message parts and the tool state machine (pending → running → completed | error).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Cost, Object, Tokens};

/// A part of a message: the ids every part has, and what kind it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// `prt_…`
    pub id: String,
    /// Its message.
    #[serde(rename = "messageID")]
    pub message_id: String,
    /// Its session.
    #[serde(rename = "sessionID")]
    pub session_id: String,
    /// The kind, with its own fields (`type` on the wire).
    #[serde(flatten)]
    pub kind: PartKind,
}

/// The kinds of parts, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum PartKind {
    /// Text from the user or the model.
    Text(TextPart),
    /// The model's reasoning.
    Reasoning(ReasoningPart),
    /// A tool call.
    Tool(ToolPart),
    /// A step began.
    StepStart(StepStartPart),
    /// A step ended.
    StepFinish(StepFinishPart),
    /// Files a step changed.
    Patch(PatchPart),
    /// An attached file.
    File(FilePart),
}

/// `TextPart` (without the common ids).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextPart {
    /// The text (empty while it streams as deltas).
    pub text: String,
    /// Written by OpenCode, not by the user or the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<bool>,
    /// Not sent to the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<bool>,
    /// Streaming start and end (model text only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Span>,
    /// Provider metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Object>,
}

/// `ReasoningPart` (without the common ids).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReasoningPart {
    /// The reasoning text.
    pub text: String,
    /// Provider metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Object>,
    /// Streaming start and end.
    pub time: Span,
}

/// Start and (once done) end of something, in ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// Start (ms).
    pub start: u64,
    /// End (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<u64>,
}

/// `ToolPart` (without the common ids).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolPart {
    /// The call id the model gave.
    #[serde(rename = "callID")]
    pub call_id: String,
    /// Tool name.
    pub tool: String,
    /// Where the call is.
    pub state: ToolState,
    /// Provider metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Object>,
}

/// The tool state machine, tagged by `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum ToolState {
    /// The model started the call; its arguments are still streaming.
    Pending {
        /// Always `{}` while pending.
        input: Object,
        /// Raw arguments so far.
        raw: String,
    },
    /// Arguments complete; the tool runs (or waits for a permission).
    Running {
        /// The arguments.
        input: Object,
        /// Title shown while running.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// Live metadata (e.g. output so far).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<Object>,
        /// `{start}`.
        time: Started,
    },
    /// Done; `output` went back to the model.
    Completed {
        /// The arguments.
        input: Object,
        /// Text for the model.
        output: String,
        /// Title shown.
        title: String,
        /// Tool-specific metadata.
        metadata: Object,
        /// Start and end.
        time: Finished,
        /// Files the tool attached.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attachments: Option<Vec<Value>>,
    },
    /// Failed; `error` went back to the model.
    Error {
        /// The arguments.
        input: Object,
        /// The error text.
        error: String,
        /// Tool-specific metadata.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<Object>,
        /// Start and end.
        time: Finished,
    },
}

impl ToolState {
    /// The arguments in any state.
    pub fn input(&self) -> &Object {
        match self {
            ToolState::Pending { input, .. }
            | ToolState::Running { input, .. }
            | ToolState::Completed { input, .. }
            | ToolState::Error { input, .. } => input,
        }
    }

    /// When it started running (`None` while pending).
    pub fn start(&self) -> Option<u64> {
        match self {
            ToolState::Pending { .. } => None,
            ToolState::Running { time, .. } => Some(time.start),
            ToolState::Completed { time, .. } | ToolState::Error { time, .. } => Some(time.start),
        }
    }

    /// Whether the call is over.
    pub fn is_finished(&self) -> bool {
        matches!(self, ToolState::Completed { .. } | ToolState::Error { .. })
    }
}

/// `{start}` of a running tool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Started {
    /// Start (ms).
    pub start: u64,
}

/// `{start, end}` of a finished tool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    /// Start (ms).
    pub start: u64,
    /// End (ms).
    pub end: u64,
    /// When its output was compacted away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compacted: Option<u64>,
}

/// `StepStartPart` (without the common ids).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepStartPart {
    /// Snapshot (git tree hash) of the work tree before the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

/// `StepFinishPart` (without the common ids).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepFinishPart {
    /// Finish reason (`tool-calls`, `stop`, …).
    pub reason: String,
    /// Snapshot after the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Cost of the step.
    pub cost: Cost,
    /// Tokens of the step.
    pub tokens: Tokens,
}

/// `PatchPart` (without the common ids).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PatchPart {
    /// Snapshot before the step.
    pub hash: String,
    /// Absolute paths of the files changed.
    pub files: Vec<String>,
}

/// `FilePart` (without the common ids).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilePart {
    /// MIME type.
    pub mime: String,
    /// File name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// `file://…` or `data:…` URL.
    pub url: String,
    /// Where it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parts_should_round_trip_opencodes_shapes() {
        for part in [
            json!({"id":"prt_1","messageID":"msg_1","sessionID":"ses_1","type":"text","text":"hi","synthetic":true}),
            json!({"id":"prt_2","messageID":"msg_1","sessionID":"ses_1","type":"tool","tool":"write","callID":"call_1",
                   "state":{"status":"pending","input":{},"raw":""}}),
            json!({"id":"prt_2","messageID":"msg_1","sessionID":"ses_1","type":"tool","tool":"bash","callID":"c",
                   "state":{"status":"completed","input":{"command":"ls"},"output":"x","title":"ls",
                            "metadata":{"exit":0},"time":{"start":1,"end":2}}}),
            json!({"id":"prt_3","messageID":"msg_1","sessionID":"ses_1","type":"step-finish","reason":"stop",
                   "cost":0,"tokens":{"input":1,"output":2,"reasoning":0,"cache":{"read":0,"write":0}}}),
            json!({"id":"prt_4","messageID":"msg_1","sessionID":"ses_1","type":"step-start","snapshot":"abc"}),
            json!({"id":"prt_5","messageID":"msg_1","sessionID":"ses_1","type":"reasoning","text":"","time":{"start":1}}),
        ] {
            let parsed: Part = serde_json::from_value(part.clone()).unwrap();
            assert_eq!(serde_json::to_value(&parsed).unwrap(), part);
        }
    }
}
