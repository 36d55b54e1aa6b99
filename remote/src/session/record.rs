//! Recording a run as OpenCode's durable events, and `!shell` commands as the exact sequence a
//! real OpenCode server writes for them (SPEC §8): user message, its synthetic text part,
//! assistant message, tool part `running` (again with the output as it streams), assistant
//! message completed, tool part `completed` or `error`.

use std::sync::Arc;

use crate::error::ApiError;
use crate::opencode::Object;
use crate::opencode::event::{Row, SyncEvent};
use crate::opencode::message::{
    AssistantMessage, Created, Message, MessageError, ModelRef, UserMessage,
};
use crate::opencode::part::{Finished, Part, PartKind, Started, TextPart, ToolPart, ToolState};
use crate::opencode::session::Session;
use crate::session::ids::{self, Order};
use crate::session::store::{INTERRUPTED_MESSAGE, INTERRUPTED_TOOL, Store};

/// Writes one session's events.
#[derive(Debug, Clone)]
pub struct Recorder {
    store: Arc<Store>,
    session_id: String,
}

impl Recorder {
    /// A recorder for `session_id` (which must exist in `store`).
    pub fn new(store: Arc<Store>, session_id: &str) -> Recorder {
        Recorder {
            store,
            session_id: session_id.to_owned(),
        }
    }

    /// The session.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn append(&self, event: &SyncEvent) -> Result<Row, ApiError> {
        self.store
            .append(&self.session_id, event)
            .map_err(ApiError::internal)
    }

    /// `message.updated.1`
    ///
    /// # Errors
    ///
    /// When the log cannot be written.
    pub fn message(&self, message: Message) -> Result<Row, ApiError> {
        self.append(&SyncEvent::MessageUpdated(message))
    }

    /// `message.part.updated.1`
    ///
    /// # Errors
    ///
    /// When the log cannot be written.
    pub fn part(&self, part: Part) -> Result<Row, ApiError> {
        self.append(&SyncEvent::PartUpdated {
            part,
            time: ids::now_ms(),
        })
    }

    /// `session.updated.1`
    ///
    /// # Errors
    ///
    /// When the log cannot be written.
    pub fn session(&self, info: Session) -> Result<Row, ApiError> {
        self.append(&SyncEvent::SessionUpdated(info))
    }

    /// A new part of `message_id` with a fresh id.
    pub fn new_part(&self, message_id: &str, kind: PartKind) -> Part {
        Part {
            id: ids::new("prt", Order::Ascending),
            message_id: message_id.to_owned(),
            session_id: self.session_id.clone(),
            kind,
        }
    }
}

/// What a `!shell` command was started with.
#[derive(Debug, Clone)]
pub struct ShellStart {
    /// Agent name.
    pub agent: String,
    /// The command line.
    pub command: String,
    /// The model of the session (OpenCode records one even for shell commands).
    pub model: ModelRef,
    /// Id for the user message, when the client chose one.
    pub message_id: Option<String>,
    /// Working directory (also the project root).
    pub directory: String,
}

/// How a `!shell` command ended.
#[derive(Debug, Clone)]
pub enum ShellEnd {
    /// It ran; `output` already says how it exited.
    Completed {
        /// Output (capped) with the exit note.
        output: String,
        /// Exit code (`None` when killed by a signal).
        exit: Option<i32>,
    },
    /// The user aborted it.
    Aborted {
        /// Output until then.
        output: String,
    },
    /// The stub is going away (the connection to the host ended) while it ran.
    Interrupted {
        /// Output until then.
        output: String,
    },
    /// It could not run (refused, failed to start).
    Failed {
        /// Why, as the user reads it.
        message: String,
    },
}

/// A `!shell` command being recorded.
#[derive(Debug)]
pub struct ShellRecord {
    recorder: Recorder,
    assistant: AssistantMessage,
    part: Part,
    input: Object,
    start: u64,
    last_output: String,
}

impl ShellRecord {
    /// Writes the first four events: user message, its synthetic text, the assistant message
    /// and the `running` tool part.
    ///
    /// # Errors
    ///
    /// When the log cannot be written.
    pub fn start(recorder: Recorder, start: &ShellStart) -> Result<ShellRecord, ApiError> {
        let session_id = recorder.session_id().to_owned();
        let user_id = start
            .message_id
            .clone()
            .filter(|id| ids::is_valid(id, "msg"))
            .unwrap_or_else(|| ids::new("msg", Order::Ascending));
        recorder.message(Message::User(UserMessage {
            id: user_id.clone(),
            session_id: session_id.clone(),
            time: Created {
                created: ids::now_ms(),
            },
            format: None,
            summary: None,
            agent: start.agent.clone(),
            model: ModelRef {
                variant: None,
                ..start.model.clone()
            },
            system: None,
            tools: None,
        }))?;
        recorder.part(recorder.new_part(
            &user_id,
            PartKind::Text(TextPart {
                text: "The following tool was executed by the user".into(),
                synthetic: Some(true),
                ..TextPart::default()
            }),
        ))?;
        let assistant = AssistantMessage::begun(
            ids::new("msg", Order::Ascending),
            session_id,
            user_id,
            &start.agent,
            &start.model,
            &start.directory,
            ids::now_ms(),
        );
        recorder.message(Message::Assistant(assistant.clone()))?;
        let started = ids::now_ms();
        let mut input = Object::new();
        input.insert("command".into(), start.command.clone().into());
        let part = recorder.new_part(
            &assistant.id,
            PartKind::Tool(ToolPart {
                call_id: call_id(),
                tool: "bash".into(),
                state: ToolState::Running {
                    input: input.clone(),
                    title: None,
                    metadata: None,
                    time: Started { start: started },
                },
                metadata: None,
            }),
        );
        recorder.part(part.clone())?;
        Ok(ShellRecord {
            recorder,
            assistant,
            part,
            input,
            start: started,
            last_output: String::new(),
        })
    }

    /// The assistant message holding the tool part.
    pub fn message_id(&self) -> &str {
        &self.assistant.id
    }

    /// The tool call id.
    pub fn call_id(&self) -> &str {
        match &self.part.kind {
            PartKind::Tool(tool) => &tool.call_id,
            _ => "",
        }
    }

    /// Records the output so far on the running part (when it changed). A failure to log it
    /// is only reported: the final part carries the output anyway.
    pub fn output(&mut self, output: &str) {
        if output == self.last_output || output.is_empty() {
            return;
        }
        if let PartKind::Tool(tool) = &mut self.part.kind {
            let mut metadata = Object::new();
            metadata.insert("output".into(), output.into());
            tool.state = ToolState::Running {
                input: self.input.clone(),
                title: None,
                metadata: Some(metadata),
                time: Started { start: self.start },
            };
        }
        if let Err(err) = self.recorder.part(self.part.clone()) {
            tracing::warn!(%err, "cannot log streaming output");
        }
        output.clone_into(&mut self.last_output);
    }

    /// Writes the last two events (assistant completed, tool part finished) and returns the
    /// assistant message, the tool part and the seq of the last event.
    ///
    /// # Errors
    ///
    /// When the log cannot be written.
    pub fn finish(mut self, end: ShellEnd) -> Result<(AssistantMessage, Part, u64), ApiError> {
        let now = ids::now_ms();
        self.assistant.time.completed = Some(now);
        match end {
            ShellEnd::Aborted { .. } => {
                self.assistant.error = Some(MessageError::aborted("Aborted"));
            }
            ShellEnd::Interrupted { .. } => {
                self.assistant.error = Some(MessageError::aborted(INTERRUPTED_MESSAGE));
            }
            _ => {}
        }
        self.recorder
            .message(Message::Assistant(self.assistant.clone()))?;
        let time = Finished {
            start: self.start,
            end: now,
            compacted: None,
        };
        let input = self.input.clone();
        let state = match end {
            ShellEnd::Completed { output, exit } => {
                let mut metadata = Object::new();
                metadata.insert("output".into(), output.clone().into());
                metadata.insert("exit".into(), exit.into());
                ToolState::Completed {
                    input,
                    output,
                    title: String::new(),
                    metadata,
                    time,
                    attachments: None,
                }
            }
            ShellEnd::Aborted { output } => {
                let mut metadata = Object::new();
                metadata.insert("output".into(), output.into());
                ToolState::Error {
                    input,
                    error: "Command aborted by the user".into(),
                    metadata: Some(metadata),
                    time,
                }
            }
            ShellEnd::Interrupted { output } => {
                let mut metadata = Object::new();
                metadata.insert("output".into(), output.into());
                ToolState::Error {
                    input,
                    error: INTERRUPTED_TOOL.into(),
                    metadata: Some(metadata),
                    time,
                }
            }
            ShellEnd::Failed { message } => ToolState::Error {
                input,
                error: message,
                metadata: None,
                time,
            },
        };
        if let PartKind::Tool(tool) = &mut self.part.kind {
            tool.state = state;
        }
        let last = self.recorder.part(self.part.clone())?;
        Ok((self.assistant, self.part, last.seq))
    }
}

/// A call id like OpenCode's own shell calls: 26 characters of Crockford base32.
pub fn call_id() -> String {
    const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut bytes = [0u8; 26];
    if getrandom::fill(&mut bytes).is_err() {
        return ids::new("call", Order::Ascending);
    }
    bytes
        .iter()
        .map(|b| CROCKFORD[usize::from(*b) % 32] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_should_look_like_opencodes() {
        let id = call_id();
        assert_eq!(id.len(), 26);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        );
    }
}
