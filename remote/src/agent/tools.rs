//! The agent's tools as the model sees them (names and parameters as OpenCode 1.18.33 offers
//! them, described in our own words) and their adapters: each takes the model's arguments,
//! checks the workspace's permissions, runs the execution half in [`crate::tools`] and says
//! what the tool part records.

pub mod arguments;
pub mod bash;
pub mod files;
pub mod patch;
pub mod permit;
pub mod question;
pub mod search;
pub mod skill;
pub mod task;
pub mod todo;
pub mod web;

use std::path::{Path, PathBuf};

use protocol::gateway::Tool;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::opencode::Object;
use crate::opencode::part::{Part, PartKind, Started, ToolPart, ToolState};
use crate::policy::{Caller, Denied, Reach};
use crate::session::record::Recorder;

use super::Agent;

/// The tool error OpenCode records when the user rejects a permission.
pub const REJECTED: &str = "The user rejected permission to use this specific tool call.";
/// The tool error of a call stopped by an abort.
pub const ABORTED: &str = "Tool execution aborted";

/// How a call ended.
#[derive(Debug, Clone)]
pub enum Done {
    /// It ran.
    Completed {
        /// What the model reads.
        output: String,
        /// The part's title.
        title: String,
        /// The part's metadata.
        metadata: Object,
    },
    /// It failed; the model reads `error`.
    Failed {
        /// Why.
        error: String,
        /// Whether the user rejected it (the turn stops after this step).
        rejected: bool,
        /// Whether an abort stopped it.
        aborted: bool,
    },
}

impl Done {
    /// A failure the model reads and may recover from.
    pub fn error(error: impl Into<String>) -> Done {
        Done::Failed {
            error: error.into(),
            rejected: false,
            aborted: false,
        }
    }
}

/// A call being run: where it is recorded and how it may ask the user.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The agent room.
    pub agent: Agent,
    /// The agent's permission rules.
    pub rules: std::sync::Arc<super::rules::Rules>,
    /// The session's log.
    pub recorder: Recorder,
    /// The assistant message holding the call.
    pub message_id: String,
    /// The tool part.
    pub part_id: String,
    /// The model's call id.
    pub call_id: String,
    /// The tool.
    pub tool: String,
    /// The arguments.
    pub input: Object,
    /// When it started running.
    pub start: u64,
    /// Cancelled by an abort.
    pub cancel: CancellationToken,
}

impl Ctx {
    /// Records the part as still running, with `title` and `metadata` (live output).
    pub fn progress(&self, title: Option<String>, metadata: Object) {
        let part = Part {
            id: self.part_id.clone(),
            message_id: self.message_id.clone(),
            session_id: self.recorder.session_id().to_owned(),
            kind: PartKind::Tool(ToolPart {
                call_id: self.call_id.clone(),
                tool: self.tool.clone(),
                state: ToolState::Running {
                    input: self.input.clone(),
                    title,
                    metadata: Some(metadata),
                    time: Started { start: self.start },
                },
                metadata: None,
            }),
        };
        if let Err(err) = self.recorder.part(part) {
            tracing::warn!(%err, "cannot record tool progress");
        }
    }

    /// The workspace directory.
    pub fn directory(&self) -> &Path {
        &self.agent.directory
    }

    /// `path` made absolute against the workspace directory, normalised.
    pub fn resolve(&self, path: &str) -> PathBuf {
        crate::tools::js::resolve(&self.agent.directory, path)
    }

    /// Asks the user when `reach` leaves the workspace (and the directories approved for it,
    /// and the host's skill folders).
    ///
    /// # Errors
    ///
    /// The [`Done`] to record when the call must not go on.
    pub async fn allow(&self, what: &str, reach: &[Reach]) -> Result<(), Done> {
        let caller = Caller {
            session_id: self.recorder.session_id().to_owned(),
            message_id: self.message_id.clone(),
            call_id: self.call_id.clone(),
        };
        let mut implicit = vec![self.agent.directory.clone(), self.agent.spill_dir()];
        let beyond = reach
            .iter()
            .any(|r| !implicit.iter().any(|dir| r.path.starts_with(dir)));
        if beyond {
            // The host's skill folders are open to the agent without asking, as in OpenCode.
            implicit.extend(
                self.agent
                    .host_skills()
                    .await
                    .into_iter()
                    .filter_map(|skill| skill.location.parent().map(Path::to_path_buf)),
            );
        }
        match self
            .agent
            .policy
            .check_reach(caller, what, reach, &implicit, &self.cancel)
            .await
        {
            Ok(()) => Ok(()),
            Err(Denied::Aborted) => Err(Done::Failed {
                error: ABORTED.into(),
                rejected: false,
                aborted: true,
            }),
            Err(Denied::Rejected(_)) => Err(Done::Failed {
                error: REJECTED.into(),
                rejected: true,
                aborted: false,
            }),
            Err(Denied::Failed(message)) => Err(Done::error(message)),
        }
    }
}

impl Agent {
    /// Where tool outputs too long for the model are kept (0700).
    pub fn spill_dir(&self) -> PathBuf {
        self.state_dir.join("tool-output")
    }
}

/// Names of the tools, in OpenCode's order.
pub const NAMES: [&str; 12] = [
    "apply_patch",
    "bash",
    "edit",
    "glob",
    "grep",
    "question",
    "read",
    "skill",
    "task",
    "todowrite",
    "webfetch",
    "write",
];

/// Whether OpenCode gives `model_id` `apply_patch` instead of `edit` and `write` (GPT
/// models after GPT-4, not the open-weight ones).
pub fn uses_patch(model_id: &str) -> bool {
    let id = model_id.to_ascii_lowercase();
    id.contains("gpt-") && !id.contains("oss") && !id.contains("gpt-4")
}

/// The tools offered to a model, minus those switched off.
pub fn specs(model_id: &str, disabled: &dyn Fn(&str) -> bool) -> Vec<Tool> {
    let patch = uses_patch(model_id);
    NAMES
        .iter()
        .filter(|name| match **name {
            "apply_patch" => patch,
            "edit" | "write" => !patch,
            _ => true,
        })
        .filter(|name| !disabled(name))
        .map(|name| spec(name))
        .collect()
}

fn tool(name: &str, description: &str, properties: Value, required: &[&str]) -> Tool {
    let parameters = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "required": required,
    });
    Tool {
        name: name.to_owned(),
        description: description.to_owned(),
        parameters: parameters.to_string(),
    }
}

fn spec(name: &str) -> Tool {
    let int =
        |description: &str| json!({"type": "integer", "minimum": 0, "description": description});
    let string = |description: &str| json!({"type": "string", "description": description});
    match name {
        "apply_patch" => tool(
            "apply_patch",
            "Changes files with one patch: `*** Begin Patch`, then sections `*** Add File: \
             <path>` (every line prefixed with +), `*** Delete File: <path>` or `*** Update \
             File: <path>` (optionally followed by `*** Move to: <path>`) holding `@@` chunks \
             whose lines start with a space (context, about three lines around each change), \
             - (removed) or + (added); then `*** End Patch`. Paths are relative to the \
             workspace directory or absolute. Read files before changing them.",
            json!({
                "patchText": string("The whole patch, from *** Begin Patch to *** End Patch"),
            }),
            &["patchText"],
        ),
        "bash" => tool(
            "bash",
            "Runs a shell command on the host in the workspace directory (or `workdir`) and \
             returns its combined output. Use it for builds, tests, git and other programs; \
             prefer the read, grep and glob tools for looking at files. Commands must finish \
             on their own; `timeout` is in milliseconds (default 2 minutes).",
            json!({
                "command": string("The command to run"),
                "timeout": {"type": "integer", "exclusiveMinimum": 0, "description": "Timeout in milliseconds"},
                "workdir": string("Directory to run the command in (default: the workspace directory); use it instead of `cd`"),
                "description": string("What the command does, in 5-10 words"),
            }),
            &["command"],
        ),
        "edit" => tool(
            "edit",
            "Replaces text in a file: `oldString` must match the file exactly (whitespace \
             included) and only once, unless `replaceAll` is set. Read the file first. An empty \
             `oldString` creates a new file holding `newString`.",
            json!({
                "filePath": string("Absolute path of the file to change"),
                "oldString": string("The text to replace"),
                "newString": string("The replacement (must differ from oldString)"),
                "replaceAll": {"type": "boolean", "description": "Replace every occurrence (default false)"},
            }),
            &["filePath", "oldString", "newString"],
        ),
        "glob" => tool(
            "glob",
            "Finds files whose paths match a glob pattern such as `**/*.rs`, most recently \
             modified first, at most 100.",
            json!({
                "pattern": string("The glob pattern"),
                "path": string("Directory to search (default: the workspace directory); omit it rather than passing null"),
            }),
            &["pattern"],
        ),
        "grep" => tool(
            "grep",
            "Searches file contents for a regular expression and lists the matching lines with \
             their files and line numbers, at most 100.",
            json!({
                "pattern": string("The regular expression"),
                "path": string("Directory to search (default: the workspace directory)"),
                "include": string("Only files matching this glob, e.g. \"*.rs\" or \"*.{ts,tsx}\""),
            }),
            &["pattern"],
        ),
        "question" => tool(
            "question",
            "Asks the user one or more questions with choices and waits for the answers. Use it \
             when a decision is theirs to make (an approach, a trade-off, missing information); \
             do not use it for things you can find out yourself. Each option needs a short \
             label and a description; set `multiple` when several may be chosen.",
            json!({
                "questions": {
                    "type": "array",
                    "description": "The questions, in order",
                    "items": {
                        "type": "object",
                        "properties": {
                            "question": string("The whole question"),
                            "header": string("A very short label (at most 30 characters)"),
                            "options": {
                                "type": "array",
                                "description": "The choices",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "label": string("What the user picks (1-5 words)"),
                                        "description": string("What choosing it means"),
                                    },
                                    "required": ["label", "description"],
                                },
                            },
                            "multiple": {"type": "boolean", "description": "Allow several choices"},
                        },
                        "required": ["question", "header", "options"],
                    },
                },
            }),
            &["questions"],
        ),
        "read" => tool(
            "read",
            "Reads a file (numbered lines, 2000 by default) or lists a directory. Use `offset` \
             and `limit` for long files. Images and PDFs are returned as attachments.",
            json!({
                "filePath": string("Absolute path of the file or directory"),
                "offset": int("First line to read, from 1"),
                "limit": int("Lines to read at most (default 2000)"),
            }),
            &["filePath"],
        ),
        "skill" => tool(
            "skill",
            "Loads one of the skills listed in the system prompt: its instructions, the folder \
             it lives in and some of the files beside it (scripts, references). Load a skill \
             when the task in hand matches its description; the name must be one listed.",
            json!({
                "name": string("The skill's name, as listed in available_skills"),
            }),
            &["name"],
        ),
        "task" => tool(
            "task",
            "Hands a self-contained piece of work to a sub-agent, which works on it in a \
             session of its own with its own tools and returns one final report (the user \
             does not see it: summarise it for them). Use it for broad searches or \
             independent multi-step work; for a known file or a specific symbol use read, \
             grep or glob directly. Several tasks in one message run at the same time. \
             Pass `task_id` from an earlier result to continue that sub-agent's session.",
            json!({
                "description": string("A short (3-5 words) description of the task"),
                "prompt": string("The task for the agent to perform"),
                "subagent_type": string("The agent to use (for example general or explore)"),
                "task_id": string("An earlier task's id, to continue its session"),
                "command": string("The command that triggered this task"),
            }),
            &["description", "prompt", "subagent_type"],
        ),
        "todowrite" => tool(
            "todowrite",
            "Replaces the session's todo list: use it to plan work with several steps and to \
             show progress. Keep one item in_progress at a time.",
            json!({
                "todos": {
                    "type": "array",
                    "description": "The whole updated list",
                    "items": {
                        "type": "object",
                        "properties": {
                            "content": string("The task, briefly"),
                            "status": string("pending, in_progress, completed or cancelled"),
                            "priority": string("high, medium or low"),
                        },
                        "required": ["content", "status", "priority"],
                    },
                },
            }),
            &["todos"],
        ),
        "webfetch" => tool(
            "webfetch",
            "Fetches a web page or file by URL (through the user's laptop; the host needs no \
             network) and returns it as Markdown (default), plain text or raw HTML. Read-only. \
             Pages over 5 MB are refused; `timeout` is in seconds (at most 120).",
            json!({
                "url": string("The full http:// or https:// URL"),
                "format": {"type": "string", "enum": ["text", "markdown", "html"], "description": "What to return (default markdown)", "default": "markdown"},
                "timeout": {"type": "number", "description": "Timeout in seconds (at most 120)"},
            }),
            &["url"],
        ),
        _ => tool(
            "write",
            "Writes a whole file, creating it (and its directories) or replacing it. Read an \
             existing file before replacing it; prefer edit for changes.",
            json!({
                "content": string("The file's new content"),
                "filePath": string("Absolute path of the file"),
            }),
            &["content", "filePath"],
        ),
    }
}

/// Runs one call, once the agent's rules let it.
pub async fn run(ctx: &Ctx) -> Done {
    if NAMES.contains(&ctx.tool.as_str()) {
        let schema: Value = serde_json::from_str(&spec(&ctx.tool).parameters).unwrap_or_default();
        let input = Value::Object(ctx.input.clone());
        if let Err(error) = arguments::check(&ctx.tool, &schema, &input) {
            return Done::error(error);
        }
    }
    if let Err(done) = permit::check(ctx).await {
        return done;
    }
    match ctx.tool.as_str() {
        "apply_patch" => patch::apply(ctx).await,
        "bash" => bash::run(ctx).await,
        "question" => question::ask(ctx).await,
        "read" => files::read(ctx).await,
        "write" => files::write(ctx).await,
        "edit" => files::edit(ctx).await,
        "glob" => search::glob(ctx).await,
        "grep" => search::grep(ctx).await,
        "skill" => skill::load(ctx).await,
        "task" => task::run(ctx).await,
        "todowrite" => todo::write(ctx).await,
        "webfetch" => web::fetch(ctx).await,
        other => Done::error(format!(
            "Model tried to call unavailable tool '{other}'. Available tools: {}.",
            NAMES.join(", ")
        )),
    }
}

/// A string argument; `Err` names it when missing or of the wrong type.
pub fn text_arg<'a>(input: &'a Object, name: &str) -> Result<&'a str, Done> {
    match input.get(name) {
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(Done::error(format!(
            "The {name} argument must be a string."
        ))),
        None => Err(Done::error(format!("The {name} argument is required."))),
    }
}

/// An optional string argument (null counts as absent).
pub fn opt_text<'a>(input: &'a Object, name: &str) -> Result<Option<&'a str>, Done> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(Done::error(format!(
            "The {name} argument must be a string."
        ))),
    }
}

/// An optional non-negative integer argument.
pub fn opt_uint(input: &Object, name: &str) -> Result<Option<u64>, Done> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .or_else(|| value.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .map(Some)
            .ok_or_else(|| Done::error(format!("The {name} argument must be a number."))),
    }
}

/// The object form of metadata.
pub fn object(value: Value) -> Object {
    match value {
        Value::Object(map) => map,
        _ => Object::new(),
    }
}

/// The last path component, as OpenCode titles file tools.
pub fn title_of(path: &Path, directory: &Path) -> String {
    path.strip_prefix(directory)
        .ok()
        .filter(|rel| !rel.as_os_str().is_empty())
        .map_or_else(
            || path.display().to_string(),
            |rel| rel.display().to_string(),
        )
}
