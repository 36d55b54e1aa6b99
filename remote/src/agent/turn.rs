//! A turn: steps until the model stops calling tools (AGENT.md §3), with `session.status`
//! busy → idle and `session.idle` around it, the session's cost and token totals after each
//! step, and the end OpenCode shows for an abort or a failed model call (`session.error`).
//!
//! Prompts that arrive while the turn runs are stored at once; the turn answers them before it
//! ends, so a queued prompt is never left unanswered.

use protocol::gateway::{ModelOptions, ModelRequest};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::opencode::event::BusEvent;
use crate::opencode::message::{AssistantMessage, Message, ModelRef, UserSummary, WithParts};
use crate::opencode::part::Part;
use crate::opencode::session::{FileDiff, Status};
use crate::opencode::{Cost, Tokens};
use crate::session::history;
use crate::session::record::Recorder;

use super::Agent;
use super::rules::Action;
use super::snapshot::Snapshots;
use super::step::{Call, End, Step};
use super::{request, skills, system, tools};

/// Steps a turn may take before it stops by itself.
const MAX_STEPS: usize = 500;

/// What a turn answers with.
#[derive(Debug, Clone)]
pub struct TurnStart {
    /// Agent name.
    pub agent: String,
    /// The model.
    pub model: ModelRef,
    /// Extra system prompt from the request.
    pub system: Option<String>,
    /// Model variant.
    pub variant: Option<String>,
}

/// The last assistant message of a turn, as `POST /session/:id/message` returns it.
#[derive(Debug)]
pub struct Outcome {
    /// The message.
    pub info: AssistantMessage,
    /// Its parts.
    pub parts: Vec<Part>,
    /// Seq of its last update (the fence).
    pub last_seq: u64,
}

impl Agent {
    /// Runs a turn of the session `recorder` writes, until the model is done, the user
    /// rejects a permission, the call fails or `cancel` fires.
    ///
    /// # Errors
    ///
    /// When the log cannot be read or written.
    pub(super) async fn turn(
        &self,
        recorder: Recorder,
        start: TurnStart,
        cancel: &CancellationToken,
    ) -> Result<Outcome, ApiError> {
        let session_id = recorder.session_id().to_owned();
        let bus = self.sessions.bus().clone();
        let status = |status| {
            bus.emit(&BusEvent::SessionStatus {
                session_id: session_id.clone(),
                status,
            });
        };
        status(Status::Busy);
        let result = self.steps(&recorder, &start, cancel).await;
        match &result {
            Ok(step) => match &step.end {
                End::Aborted => bus.emit(&BusEvent::SessionError {
                    session_id: session_id.clone(),
                    error: crate::opencode::message::MessageError::aborted("Aborted"),
                }),
                End::Failed(error) => bus.emit(&BusEvent::SessionError {
                    session_id: session_id.clone(),
                    error: error.clone(),
                }),
                _ => {}
            },
            Err(err) => tracing::error!(session = %session_id, %err, "the turn failed"),
        }
        status(Status::Idle);
        bus.emit(&BusEvent::SessionIdle {
            session_id: session_id.clone(),
        });
        let step = result?;
        Ok(Outcome {
            info: step.message,
            parts: step.parts,
            last_seq: step.last_seq,
        })
    }

    async fn steps(
        &self,
        recorder: &Recorder,
        start: &TurnStart,
        cancel: &CancellationToken,
    ) -> Result<Step, ApiError> {
        let worktree = self.worktree().await;
        let snapshots = self.snapshots(worktree.as_deref());
        let mut prompt = None;
        let result = self
            .step_loop(
                recorder,
                start,
                cancel,
                worktree.as_deref(),
                snapshots.as_ref(),
                &mut prompt,
            )
            .await;
        if let Some(prompt) = prompt {
            self.summarize(recorder, snapshots.as_ref(), prompt).await;
        }
        result
    }

    async fn step_loop(
        &self,
        recorder: &Recorder,
        start: &TurnStart,
        cancel: &CancellationToken,
        worktree: Option<&std::path::Path>,
        snapshots: Option<&Snapshots>,
        prompt: &mut Option<Prompt>,
    ) -> Result<Step, ApiError> {
        let env = system::Env {
            directory: &self.directory,
            worktree: worktree.unwrap_or(&self.directory),
            git: worktree.is_some(),
        };
        let instructions = {
            let (directory, root) = (self.directory.clone(), env.worktree.to_path_buf());
            tokio::task::spawn_blocking(move || system::instructions(&directory, &root))
                .await
                .unwrap_or_default()
        };
        let rules = std::sync::Arc::new(self.rules(&start.agent).await);
        let skills: Vec<_> = self
            .skills()
            .await
            .into_iter()
            .filter(|skill| !matches!(rules.evaluate("skill", &skill.name).0, Action::Deny))
            .collect();
        let guidance = skills::guidance(&skills);
        let mut last = None;
        for _ in 0..MAX_STEPS {
            let conversation = self.conversation(recorder).await?;
            let Some(parent_id) = conversation.iter().rev().find_map(|m| match &m.info {
                Message::User(user) => Some(user.id.clone()),
                Message::Assistant(_) => None,
            }) else {
                return Err(ApiError::BadRequest(
                    "the session has no prompt to answer".into(),
                ));
            };
            if prompt.as_ref().is_none_or(|p| p.id != parent_id) {
                // A prompt begins (the first, or one stored while the last ran): the one
                // before gets its summary, this one an empty one to start with, as OpenCode's.
                if let Some(done) = prompt.take() {
                    self.summarize(recorder, snapshots, done).await;
                }
                self.user_summary(recorder, &parent_id, Vec::new()).await;
                *prompt = Some(Prompt {
                    id: parent_id.clone(),
                    first: None,
                    last: None,
                });
            }
            let disabled = disabled_tools(&conversation);
            let tools = tools::specs(&start.model.model_id, &|name| {
                disabled.contains(&name.to_owned()) || rules.disabled(name)
            });
            let offered_skills = guidance
                .as_deref()
                .filter(|_| tools.iter().any(|tool| tool.name == "skill"));
            let request = ModelRequest {
                provider_id: start.model.provider_id.clone(),
                model_id: start.model.model_id.clone(),
                system: system::prompt(
                    &start.model.provider_id,
                    &start.model.model_id,
                    &env,
                    offered_skills,
                    &instructions,
                    start.system.as_deref(),
                ),
                messages: request::messages(&conversation),
                tools,
                options: ModelOptions {
                    reasoning_effort: start.variant.clone().filter(|v| v != "default"),
                    session_id: Some(recorder.session_id().to_owned()),
                    ..ModelOptions::default()
                },
            };
            let call = Call {
                parent_id: &parent_id,
                agent: &start.agent,
                model: &start.model,
                request,
                rules: rules.clone(),
                snapshots,
            };
            let step = self.step(recorder, call, cancel).await?;
            if let Some(prompt) = prompt.as_mut() {
                let (before, after) = &step.snapshots;
                prompt.first = prompt.first.take().or_else(|| before.clone());
                prompt.last = after.clone().or_else(|| prompt.last.take());
            }
            self.add_totals(recorder, &step.message)?;
            match step.end {
                End::Tools if !cancel.is_cancelled() => {
                    last = Some(step);
                    continue;
                }
                End::Stop => {
                    // A prompt stored while this step ran is answered now.
                    let newer = self
                        .conversation(recorder)
                        .await?
                        .last()
                        .is_some_and(|m| matches!(m.info, Message::User(_)));
                    if newer && !cancel.is_cancelled() {
                        last = Some(step);
                        continue;
                    }
                    return Ok(step);
                }
                _ => return Ok(step),
            }
        }
        last.ok_or_else(|| ApiError::internal(anyhow::anyhow!("the turn took no step")))
    }

    /// The session's messages now.
    async fn conversation(&self, recorder: &Recorder) -> Result<Vec<WithParts>, ApiError> {
        let store = recorder.store().clone();
        let session_id = recorder.session_id().to_owned();
        let rows = tokio::task::spawn_blocking(move || store.rows(&session_id))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        Ok(history::fold(rows))
    }

    /// Gives `prompt`'s user message the changes its steps made, from the first snapshot to
    /// the last.
    async fn summarize(&self, recorder: &Recorder, snapshots: Option<&Snapshots>, prompt: Prompt) {
        let diffs = match (snapshots, &prompt.first, &prompt.last) {
            (Some(snapshots), Some(first), Some(last)) => snapshots.diffs(first, last).await,
            _ => Vec::new(),
        };
        self.user_summary(recorder, &prompt.id, diffs).await;
    }

    /// Records the user message `id` with `summary.diffs` set to `diffs`, when they changed.
    async fn user_summary(&self, recorder: &Recorder, id: &str, diffs: Vec<FileDiff>) {
        let Ok(conversation) = self.conversation(recorder).await else {
            return;
        };
        let Some(mut user) = conversation.into_iter().find_map(|m| match m.info {
            Message::User(user) if user.id == id => Some(user),
            _ => None,
        }) else {
            return;
        };
        if user.summary.as_ref().is_some_and(|s| s.diffs == diffs) {
            return;
        }
        user.summary = Some(UserSummary {
            diffs,
            ..user.summary.unwrap_or_default()
        });
        if let Err(err) = recorder.message(Message::User(user)) {
            tracing::warn!(%err, "cannot record a prompt's summary");
        }
    }

    /// Adds a finished step's cost and tokens to the session's totals.
    fn add_totals(&self, recorder: &Recorder, message: &AssistantMessage) -> Result<(), ApiError> {
        if message.cost.0 == 0.0 && message.tokens.total.unwrap_or(0) == 0 {
            return Ok(());
        }
        let Some(mut info) = recorder.store().info(recorder.session_id()) else {
            return Ok(());
        };
        let cost = info.cost.unwrap_or_default();
        info.cost = Some(Cost(cost.0 + message.cost.0));
        let mut tokens = info.tokens.unwrap_or_default();
        tokens.add(&message.tokens);
        tokens.total = None;
        info.tokens = Some(Tokens { ..tokens });
        info.time.updated = crate::session::ids::now_ms();
        recorder.session(info)?;
        Ok(())
    }

    /// The git worktree root, when the workspace is in one.
    pub(super) async fn worktree(&self) -> Option<std::path::PathBuf> {
        let output = crate::tools::git::git(
            &self.directory,
            &self.procs,
            &["rev-parse", "--show-toplevel"],
        )
        .await?;
        let text = String::from_utf8(output).ok()?.trim().to_owned();
        (!text.is_empty()).then(|| std::path::PathBuf::from(text))
    }
}

/// The prompt being answered, and the snapshots around its steps.
struct Prompt {
    /// Its user message.
    id: String,
    /// Before its first step.
    first: Option<String>,
    /// After its last finished step.
    last: Option<String>,
}

/// Tools the last prompt switched off (`tools: {"bash": false}`).
fn disabled_tools(conversation: &[WithParts]) -> Vec<String> {
    conversation
        .iter()
        .rev()
        .find_map(|m| match &m.info {
            Message::User(user) => Some(user.tools.clone().unwrap_or_default()),
            Message::Assistant(_) => None,
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, on)| on.as_bool() == Some(false))
        .map(|(name, _)| name)
        .collect()
}
