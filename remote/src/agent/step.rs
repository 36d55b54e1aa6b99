//! One step of a turn: one model call and the tools it asks for, recorded as one assistant
//! message (AGENT.md §3): `step-start`, reasoning and text parts stored empty then whole (the
//! characters travel as `message.part.delta`), tool parts `pending` → `running` → `completed`
//! or `error`, then `step-finish` with tokens and cost, and the message completed. An abort
//! ends the step without `step-finish`, the message carrying `MessageAbortedError`.

use std::collections::HashMap;

use protocol::gateway::{
    Failure, FailureKind, FinishReason, ModelEvent, ModelInfo, ModelRequest, Reply, Request, Usage,
};
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::opencode::event::BusEvent;
use crate::opencode::message::{ApiErrorData, AssistantMessage, Message, MessageError, ModelRef};
use crate::opencode::part::{
    Part, PartKind, PatchPart, ReasoningPart, Span, StepFinishPart, StepStartPart, TextPart,
    ToolState,
};
use crate::opencode::session::Status;
use crate::opencode::{CacheTokens, Cost, Object, Tokens};
use crate::session::ids::{self, Order};
use crate::session::record::Recorder;

use super::Agent;
use super::snapshot::Snapshots;
use super::tools::{self, Done};

mod calls;

/// How a step ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// The model called tools: their results go back to it.
    Tools,
    /// The model finished its answer.
    Stop,
    /// The user rejected a permission: the turn stops here.
    Rejected,
    /// The turn was aborted.
    Aborted,
    /// The model call failed; the message carries the error.
    Failed(MessageError),
}

/// A recorded step.
#[derive(Debug)]
pub struct Step {
    /// How it ended.
    pub end: End,
    /// Its assistant message, final.
    pub message: AssistantMessage,
    /// Its parts, final, in order.
    pub parts: Vec<Part>,
    /// Seq of the message's last update.
    pub last_seq: u64,
    /// The work tree's snapshots as the step began and ended (git work trees only).
    pub snapshots: (Option<String>, Option<String>),
}

/// What a step is asked to do.
#[derive(Debug)]
pub struct Call<'a> {
    /// The user message being answered.
    pub parent_id: &'a str,
    /// Agent name.
    pub agent: &'a str,
    /// The model.
    pub model: &'a ModelRef,
    /// The request, minus nothing: system, conversation, tools, options.
    pub request: ModelRequest,
    /// The agent's permission rules.
    pub rules: std::sync::Arc<super::rules::Rules>,
    /// Snapshots of the work tree, when it is a git one.
    pub snapshots: Option<&'a Snapshots>,
}

/// A text or reasoning part being streamed.
#[derive(Debug)]
struct Open {
    id: String,
    text: String,
    start: u64,
}

/// A tool call being streamed or run.
#[derive(Debug)]
struct Calling {
    part_id: String,
    name: String,
    raw: String,
    input: Object,
    start: u64,
    /// Its final part once written.
    done: bool,
}

/// Everything the stream produced so far.
struct Stream<'a> {
    agent: &'a Agent,
    rules: std::sync::Arc<super::rules::Rules>,
    recorder: &'a Recorder,
    message: AssistantMessage,
    cancel: CancellationToken,
    started: bool,
    text: Option<Open>,
    reasoning: Option<Open>,
    calls: Vec<String>,
    calling: HashMap<String, Calling>,
    tasks: JoinSet<(String, Part, Done)>,
    parts: Vec<Part>,
    /// The provider's usage report, if it sent one.
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    info: Option<ModelInfo>,
    /// The work tree's snapshot as the step began.
    before: Option<String>,
}

impl Agent {
    /// Runs one step.
    ///
    /// # Errors
    ///
    /// Only when the log cannot be written.
    pub(super) async fn step(
        &self,
        recorder: &Recorder,
        call: Call<'_>,
        cancel: &CancellationToken,
    ) -> Result<Step, ApiError> {
        let session_id = recorder.session_id().to_owned();
        let message = AssistantMessage {
            variant: call.model.variant.clone(),
            ..AssistantMessage::begun(
                ids::new("msg", Order::Ascending),
                session_id,
                call.parent_id.to_owned(),
                call.agent,
                call.model,
                &self.directory.to_string_lossy(),
                ids::now_ms(),
            )
        };
        recorder.message(Message::Assistant(message.clone()))?;
        let before = match call.snapshots {
            Some(snapshots) => snapshots.track().await,
            None => None,
        };
        let mut stream = Stream {
            agent: self,
            rules: call.rules.clone(),
            recorder,
            message,
            cancel: cancel.child_token(),
            started: false,
            text: None,
            reasoning: None,
            calls: Vec::new(),
            calling: HashMap::new(),
            tasks: JoinSet::new(),
            parts: Vec::new(),
            usage: None,
            finish: None,
            info: None,
            before,
        };
        let failure = match self.gateway.request(Request::Model(call.request)).await {
            Err(err) => Some(MessageError::UnknownError {
                message: err.to_string(),
            }),
            Ok(mut answer) => loop {
                let reply = tokio::select! {
                    biased;
                    () = cancel.cancelled() => break None,
                    reply = answer.next() => reply,
                };
                match reply {
                    None => {
                        break Some(MessageError::UnknownError {
                            message: "the laptop's answer ended early (the connection to the bridge dropped)".into(),
                        });
                    }
                    Some(Reply::End) => break None,
                    Some(Reply::Error(failure)) => break Some(message_error(&failure)),
                    Some(Reply::Model(event)) => stream.event(event)?,
                    Some(other) => {
                        tracing::warn!(?other, "unexpected reply to a model request");
                    }
                }
            },
        };
        stream.close_open()?;
        // The tools run to their end (an abort stops them quickly).
        let mut rejected = false;
        while let Some(joined) = stream.tasks.join_next().await {
            let Ok((call_id, part, done)) = joined else {
                continue;
            };
            if let Done::Failed { rejected: true, .. } = done {
                rejected = true;
            }
            stream.put(part);
            if let Some(calling) = stream.calling.get_mut(&call_id) {
                calling.done = true;
            }
        }
        let aborted = cancel.is_cancelled();
        stream.close_calls(if aborted {
            tools::ABORTED
        } else {
            "Tool call did not complete"
        })?;
        if aborted {
            return stream.end(End::Aborted, MessageError::aborted("Aborted"));
        }
        if let Some(error) = failure {
            return stream.end(End::Failed(error.clone()), error);
        }
        let (after, changed) = match (call.snapshots, &stream.before) {
            (Some(snapshots), Some(before)) => match snapshots.track().await {
                Some(after) => {
                    let changed = snapshots.changed(before, &after).await;
                    (Some(after), changed)
                }
                None => (None, Vec::new()),
            },
            _ => (None, Vec::new()),
        };
        stream.finish(rejected, after, changed)
    }
}

impl Stream<'_> {
    fn session_id(&self) -> &str {
        self.recorder.session_id()
    }

    fn new_part(&self, kind: PartKind) -> Part {
        self.recorder.new_part(&self.message.id, kind)
    }

    /// Records `part` and keeps it (replacing an earlier state).
    fn put(&mut self, part: Part) {
        if let Err(err) = self.recorder.part(part.clone()) {
            tracing::warn!(%err, "cannot record a part");
        }
        match self.parts.iter_mut().find(|p| p.id == part.id) {
            Some(existing) => *existing = part,
            None => self.parts.push(part),
        }
    }

    fn start(&mut self) {
        if !self.started {
            self.started = true;
            let part = self.new_part(PartKind::StepStart(StepStartPart {
                snapshot: self.before.clone(),
            }));
            self.put(part);
        }
    }

    fn delta(&self, part_id: &str, delta: String) {
        self.agent.sessions.bus().emit(&BusEvent::PartDelta {
            session_id: self.session_id().to_owned(),
            message_id: self.message.id.clone(),
            part_id: part_id.to_owned(),
            field: "text".into(),
            delta,
        });
    }

    fn event(&mut self, event: ModelEvent) -> Result<(), ApiError> {
        match event {
            // The step starts with the provider's first output, as the AI SDK's `start-step`
            // does: a request the provider refuses leaves the message without parts (§6.5).
            ModelEvent::Started(info) => self.info = Some(info),
            ModelEvent::Retrying {
                attempt,
                message,
                next_ms,
            } => {
                self.agent.sessions.bus().emit(&BusEvent::SessionStatus {
                    session_id: self.session_id().to_owned(),
                    status: Status::Retry {
                        attempt,
                        message,
                        next: ids::now_ms() + next_ms,
                    },
                });
            }
            ModelEvent::ReasoningDelta(delta) => {
                self.start();
                if self.reasoning.is_none() {
                    let open = Open {
                        id: ids::new("prt", Order::Ascending),
                        text: String::new(),
                        start: ids::now_ms(),
                    };
                    self.put(self.reasoning_part(&open, None, None));
                    self.reasoning = Some(open);
                }
                if let Some(open) = &mut self.reasoning {
                    open.text.push_str(&delta);
                    let id = open.id.clone();
                    self.delta(&id, delta);
                }
            }
            ModelEvent::ReasoningEnd { signature } => {
                if let Some(open) = self.reasoning.take() {
                    let part = self.reasoning_part(&open, Some(ids::now_ms()), signature);
                    self.put(part);
                }
            }
            ModelEvent::TextDelta(delta) => {
                self.start();
                if self.text.is_none() {
                    let open = Open {
                        id: ids::new("prt", Order::Ascending),
                        text: String::new(),
                        start: ids::now_ms(),
                    };
                    self.put(self.text_part(&open, None));
                    self.text = Some(open);
                }
                if let Some(open) = &mut self.text {
                    open.text.push_str(&delta);
                    let id = open.id.clone();
                    self.delta(&id, delta);
                }
            }
            ModelEvent::TextEnd => {
                if let Some(open) = self.text.take() {
                    let part = self.text_part(&open, Some(ids::now_ms()));
                    self.put(part);
                }
            }
            ModelEvent::ToolCallStart { id, name } => {
                self.start();
                let calling = Calling {
                    part_id: ids::new("prt", Order::Ascending),
                    name,
                    raw: String::new(),
                    input: Object::new(),
                    start: 0,
                    done: false,
                };
                let part = self.tool_part(
                    &id,
                    &calling,
                    ToolState::Pending {
                        input: Object::new(),
                        raw: String::new(),
                    },
                );
                self.put(part);
                self.calls.push(id.clone());
                self.calling.insert(id, calling);
            }
            ModelEvent::ToolCallDelta { id, arguments } => {
                if let Some(calling) = self.calling.get_mut(&id) {
                    calling.raw.push_str(&arguments);
                }
            }
            ModelEvent::ToolCallEnd { id } => self.run_tool(&id),
            ModelEvent::Usage(usage) => self.usage = Some(usage),
            ModelEvent::Finish(reason) => self.finish = Some(reason),
        }
        Ok(())
    }

    fn text_part(&self, open: &Open, end: Option<u64>) -> Part {
        Part {
            id: open.id.clone(),
            ..self.new_part(PartKind::Text(TextPart {
                text: open.text.clone(),
                time: Some(Span {
                    start: open.start,
                    end,
                }),
                ..TextPart::default()
            }))
        }
    }

    fn reasoning_part(&self, open: &Open, end: Option<u64>, signature: Option<String>) -> Part {
        let metadata = signature.map(|signature| {
            let mut map = Object::new();
            map.insert("signature".into(), Value::String(signature));
            map
        });
        Part {
            id: open.id.clone(),
            ..self.new_part(PartKind::Reasoning(ReasoningPart {
                text: open.text.clone(),
                metadata,
                time: Span {
                    start: open.start,
                    end,
                },
            }))
        }
    }

    /// Stores the streamed text and reasoning as they stand.
    fn close_open(&mut self) -> Result<(), ApiError> {
        if let Some(open) = self.reasoning.take() {
            let part = self.reasoning_part(&open, Some(ids::now_ms()), None);
            self.put(part);
        }
        if let Some(open) = self.text.take() {
            let part = self.text_part(&open, Some(ids::now_ms()));
            self.put(part);
        }
        Ok(())
    }

    /// The message ends with `error` and no `step-finish`.
    fn end(mut self, end: End, error: MessageError) -> Result<Step, ApiError> {
        self.message.error = Some(error);
        self.message.time.completed = Some(ids::now_ms());
        let row = self
            .recorder
            .message(Message::Assistant(self.message.clone()))?;
        Ok(Step {
            end,
            message: self.message,
            parts: self.parts,
            last_seq: row.seq,
            snapshots: (self.before, None),
        })
    }

    /// `step-finish` (with the snapshot `after` the step), the message's finish, tokens and
    /// cost, a `patch` part naming the files `changed`, then its completion.
    fn finish(
        mut self,
        rejected: bool,
        after: Option<String>,
        changed: Vec<String>,
    ) -> Result<Step, ApiError> {
        let usage = self.usage.unwrap_or_default();
        let mut tokens = tokens(&usage);
        if self.usage.is_none() {
            // The provider reported no usage: OpenCode then has no total either.
            tokens.total = None;
        }
        let cost = self
            .info
            .as_ref()
            .map_or(0.0, |info| cost(&usage, &info.cost));
        let called = !self.calls.is_empty();
        let reason = match self.finish {
            Some(FinishReason::Stop) if called => "tool-calls",
            Some(FinishReason::Stop) => "stop",
            Some(FinishReason::ToolCalls) => "tool-calls",
            Some(FinishReason::Length) => "length",
            Some(FinishReason::ContentFilter) => "content-filter",
            Some(FinishReason::Other) | None if called => "tool-calls",
            Some(FinishReason::Other) | None => "other",
        };
        self.start();
        let part = self.new_part(PartKind::StepFinish(StepFinishPart {
            reason: reason.to_owned(),
            snapshot: after.clone(),
            cost: Cost(cost),
            tokens: tokens.clone(),
        }));
        self.put(part);
        self.message.finish = Some(reason.to_owned());
        self.message.tokens = tokens;
        self.message.cost = Cost(cost);
        self.recorder
            .message(Message::Assistant(self.message.clone()))?;
        if let Some(before) = self.before.clone().filter(|_| !changed.is_empty()) {
            let part = self.new_part(PartKind::Patch(PatchPart {
                hash: before,
                files: changed,
            }));
            self.put(part);
        }
        self.message.time.completed = Some(ids::now_ms());
        let row = self
            .recorder
            .message(Message::Assistant(self.message.clone()))?;
        let end = if rejected {
            End::Rejected
        } else if called {
            End::Tools
        } else {
            End::Stop
        };
        Ok(Step {
            end,
            message: self.message,
            parts: self.parts,
            last_seq: row.seq,
            snapshots: (self.before, after),
        })
    }
}

/// OpenCode's token counts from a normalised usage.
fn tokens(usage: &Usage) -> Tokens {
    Tokens {
        total: Some(
            usage.input + usage.output + usage.reasoning + usage.cache_read + usage.cache_write,
        ),
        input: usage.input,
        output: usage.output,
        reasoning: usage.reasoning,
        cache: CacheTokens {
            read: usage.cache_read,
            write: usage.cache_write,
        },
    }
}

/// Cost in dollars, from prices per million tokens (reasoning is billed as output).
fn cost(usage: &Usage, price: &protocol::gateway::Cost) -> f64 {
    (usage.input as f64 * price.input
        + (usage.output + usage.reasoning) as f64 * price.output
        + usage.cache_read as f64 * price.cache_read
        + usage.cache_write as f64 * price.cache_write)
        / 1_000_000.0
}

/// The message error OpenCode shows for a failed model call.
pub fn message_error(failure: &Failure) -> MessageError {
    match failure.kind {
        FailureKind::ContextOverflow => MessageError::ContextOverflowError {
            message: failure.message.clone(),
            response_body: failure.response_body.clone(),
        },
        FailureKind::Api
        | FailureKind::Auth
        | FailureKind::UnknownModel
        | FailureKind::BadRequest => MessageError::ApiError(ApiErrorData {
            message: failure.message.clone(),
            status_code: failure.status,
            is_retryable: failure.retryable,
            response_headers: (!failure.response_headers.is_empty())
                .then(|| failure.response_headers.iter().cloned().collect()),
            response_body: failure.response_body.clone(),
            metadata: failure
                .url
                .as_ref()
                .map(|url| [("url".to_owned(), url.clone())].into_iter().collect()),
        }),
        _ => MessageError::UnknownError {
            message: failure.message.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_cost_should_follow_opencodes_accounting() {
        // AGENT.md §4: 901 input, 15 output, 5 reasoning, 100 cached → total 1021, $0.000991.
        let usage = Usage {
            input: 901,
            output: 15,
            reasoning: 5,
            cache_read: 100,
            cache_write: 0,
        };
        let t = tokens(&usage);
        assert_eq!(t.total, Some(1021));
        let price = protocol::gateway::Cost {
            input: 1.0,
            output: 2.0,
            cache_read: 0.5,
            cache_write: 0.0,
        };
        assert!((cost(&usage, &price) - 0.000991).abs() < 1e-12);
    }
}
