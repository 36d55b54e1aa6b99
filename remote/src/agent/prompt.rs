//! `POST /session/:id/message` and `/prompt_async`: the user's prompt is stored as OpenCode
//! stores it (user message, its parts, the session's agent and model), then a turn starts in
//! the background unless the session is already busy (the running turn answers it when it
//! reaches the end of its current work, as OpenCode's loop does).

use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::opencode::message::{Created, Message, ModelRef, UserMessage};
use crate::opencode::part::{FilePart, PartKind, TextPart};
use crate::opencode::session::SessionModel;
use crate::session::ids::{self, Order};
use crate::session::limits;
use crate::session::record::Recorder;

use super::Agent;
use super::title;
use super::turn::{Outcome, TurnStart};

/// Agent used when the prompt names none.
pub const DEFAULT_AGENT: &str = "build";

/// The body OpenCode sends (SPEC §6; AGENT.md §2).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prompt {
    /// Id for the user message (the TUI picks one).
    #[serde(default, rename = "messageID")]
    pub message_id: Option<String>,
    /// The model; else the session's.
    #[serde(default)]
    pub model: Option<PromptModel>,
    /// The agent (`build`, `plan`…); else the session's, else `build`.
    #[serde(default)]
    pub agent: Option<String>,
    /// Store the message without answering it.
    #[serde(default, rename = "noReply")]
    pub no_reply: Option<bool>,
    /// Tools switched on or off for this prompt.
    #[serde(default)]
    pub tools: Option<Map<String, Value>>,
    /// Structured output format (kept on the message).
    #[serde(default)]
    pub format: Option<Value>,
    /// Extra system prompt.
    #[serde(default)]
    pub system: Option<String>,
    /// Model variant (reasoning effort preset).
    #[serde(default)]
    pub variant: Option<String>,
    /// What the user wrote and attached.
    pub parts: Vec<Value>,
}

/// `{providerID, modelID}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptModel {
    /// Provider.
    #[serde(rename = "providerID")]
    pub provider_id: String,
    /// Model key in that provider.
    #[serde(rename = "modelID")]
    pub model_id: String,
}

/// A part of the prompt, checked.
#[derive(Debug, Clone)]
enum Input {
    Text { text: String, synthetic: bool },
    File(FilePart),
}

/// Largest prompt text accepted, in bytes.
const MAX_TEXT: usize = 4 << 20;
/// Largest attachment (a data URL), in bytes.
const MAX_FILE: usize = 16 << 20;

impl Prompt {
    /// Checks sizes and names; the error names the field.
    fn inputs(&self) -> Result<Vec<Input>, ApiError> {
        if let Some(id) = &self.message_id {
            limits::id("messageID", id, "msg")?;
        }
        if let Some(model) = &self.model {
            limits::name("model.providerID", &model.provider_id)?;
            limits::name("model.modelID", &model.model_id)?;
        }
        if let Some(agent) = &self.agent {
            limits::name("agent", agent)?;
        }
        if let Some(system) = &self.system {
            limits::text("system", system, MAX_TEXT)?;
        }
        if self.parts.is_empty() {
            return Err(ApiError::BadRequest(
                "`parts` must hold at least one part".into(),
            ));
        }
        self.parts
            .iter()
            .enumerate()
            .map(|(at, part)| input(at, part))
            .collect()
    }
}

fn input(at: usize, part: &Value) -> Result<Input, ApiError> {
    let field = |name: &str| format!("parts[{at}].{name}");
    let bad = |message: String| ApiError::BadRequest(message);
    let text_of = |name: &str| -> Result<Option<String>, ApiError> {
        match part.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(bad(format!("`{}` must be a string", field(name)))),
        }
    };
    let kind = text_of("type")?.ok_or_else(|| bad(format!("`{}` is required", field("type"))))?;
    match kind.as_str() {
        "text" => {
            let text =
                text_of("text")?.ok_or_else(|| bad(format!("`{}` is required", field("text"))))?;
            limits::text(&field("text"), &text, MAX_TEXT)?;
            let synthetic = part.get("synthetic").and_then(Value::as_bool) == Some(true);
            Ok(Input::Text { text, synthetic })
        }
        "file" => {
            let mime =
                text_of("mime")?.ok_or_else(|| bad(format!("`{}` is required", field("mime"))))?;
            let url =
                text_of("url")?.ok_or_else(|| bad(format!("`{}` is required", field("url"))))?;
            limits::text(&field("url"), &url, MAX_FILE)?;
            Ok(Input::File(FilePart {
                mime,
                filename: text_of("filename")?,
                url,
                source: part.get("source").cloned(),
            }))
        }
        other => Err(bad(format!(
            "`{}` `{other}` is not supported on opencode-remote hosts yet (text and file parts are)",
            field("type")
        ))),
    }
}

/// What a prompt led to.
#[derive(Debug)]
pub struct Accepted {
    /// Seq of the last event stored for the prompt (the fence of `prompt_async`).
    pub seq: u64,
    /// The turn answering it, when one started (not when the session was busy or the prompt
    /// asked for no reply).
    pub turn: Option<tokio::task::JoinHandle<Result<Outcome, ApiError>>>,
}

impl Agent {
    /// Stores `prompt` in `session_id` and starts a turn unless one runs.
    ///
    /// # Errors
    ///
    /// 400 for bad input (nothing stored), 404 for an unknown session, store failures.
    pub async fn prompt(&self, session_id: &str, prompt: Prompt) -> Result<Accepted, ApiError> {
        let inputs = prompt.inputs()?;
        let store = self.sessions.store().await?;
        let mut info = store
            .info(session_id)
            .ok_or_else(|| ApiError::NotFound(format!("Session not found: {session_id}")))?;
        if let Some(id) = &prompt.message_id
            && store
                .message_owner(id)
                .is_some_and(|owner| owner != session_id)
        {
            return Err(ApiError::BadRequest(format!(
                "`messageID` {id} belongs to another session"
            )));
        }
        let agent = prompt
            .agent
            .clone()
            .or_else(|| info.agent.clone())
            .unwrap_or_else(|| DEFAULT_AGENT.to_owned());
        let model = match (&prompt.model, &info.model) {
            (Some(model), _) => ModelRef {
                provider_id: model.provider_id.clone(),
                model_id: model.model_id.clone(),
                variant: None,
            },
            (None, Some(model)) => ModelRef {
                provider_id: model.provider_id.clone(),
                model_id: model.id.clone(),
                variant: None,
            },
            (None, None) => {
                let default = self.setup().await.and_then(|setup| setup.model);
                match default.as_deref().and_then(|m| m.split_once('/')) {
                    Some((provider, model)) => ModelRef {
                        provider_id: provider.to_owned(),
                        model_id: model.to_owned(),
                        variant: None,
                    },
                    None => {
                        return Err(ApiError::BadRequest(
                            "`model` is required: this session has no model yet and the laptop's OpenCode names no default model".into(),
                        ));
                    }
                }
            }
        };
        let recorder = Recorder::new(store.clone(), session_id);
        let session_model = SessionModel {
            id: model.model_id.clone(),
            provider_id: model.provider_id.clone(),
            variant: Some(prompt.variant.clone().unwrap_or_else(|| "default".into())),
        };
        if info.agent.as_deref() != Some(agent.as_str())
            || info.model.as_ref() != Some(&session_model)
        {
            info.agent = Some(agent.clone());
            info.model = Some(session_model);
            recorder.session(info.clone())?;
        }
        let user_id = prompt
            .message_id
            .clone()
            .unwrap_or_else(|| ids::new("msg", Order::Ascending));
        recorder.message(Message::User(UserMessage {
            id: user_id.clone(),
            session_id: session_id.to_owned(),
            time: Created {
                created: ids::now_ms(),
            },
            format: prompt.format.clone(),
            summary: None,
            agent: agent.clone(),
            model: model.clone(),
            system: prompt.system.clone(),
            tools: prompt.tools.clone(),
        }))?;
        let prompt_text: String = inputs
            .iter()
            .filter_map(|input| match input {
                Input::Text {
                    text,
                    synthetic: false,
                } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let needs_title = title::is_default(&info.title);
        for input in inputs {
            let kind = match input {
                Input::Text { text, synthetic } => PartKind::Text(TextPart {
                    text,
                    synthetic: synthetic.then_some(true),
                    ..TextPart::default()
                }),
                Input::File(file) => PartKind::File(file),
            };
            recorder.part(recorder.new_part(&user_id, kind))?;
        }
        info.time.updated = ids::now_ms();
        let row = recorder.session(info)?;
        if prompt.no_reply == Some(true) {
            return Ok(Accepted {
                seq: row.seq,
                turn: None,
            });
        }
        let start = TurnStart {
            agent,
            model,
            system: prompt.system,
            variant: prompt.variant,
        };
        if needs_title && !prompt_text.trim().is_empty() {
            let this = self.clone();
            let recorder = Recorder::new(store.clone(), session_id);
            let model = start.model.clone();
            self.tasks
                .spawn(async move { this.title(recorder, model, prompt_text).await });
        }
        let (started_tx, started_rx) = oneshot::channel();
        let this = self.clone();
        let session = session_id.to_owned();
        let handle = self.tasks.spawn(async move {
            let sessions = this.sessions.clone();
            let Some(guard) = sessions.runs().start(&session, sessions.shutdown()) else {
                let _ = started_tx.send(false);
                return Err(ApiError::SessionBusy(session));
            };
            let _ = started_tx.send(true);
            this.turn(recorder, start, &guard.cancel).await
        });
        let started = started_rx.await.unwrap_or(false);
        Ok(Accepted {
            seq: row.seq,
            turn: started.then_some(handle),
        })
    }
}
