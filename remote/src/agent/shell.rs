//! `POST /session/:id/shell`: OpenCode's `!command`, run on the host.
//!
//! The durable events are exactly those of a real OpenCode server for a shell command: user
//! message, its synthetic text part, assistant message, tool part `running` (then again with
//! output as it streams), assistant message completed, tool part `completed` (or `error`); plus
//! the bus events `session.status` busy → idle and `session.idle`. Before the command runs, its
//! working directory and path operands are checked against the workspace's approved roots
//! (see [`crate::policy`]); anything outside asks the user and waits.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::app::App;
use crate::error::ApiError;
use crate::policy::permissions::{Ask, Reply};
use crate::policy::{self, AccessKind};
use crate::session::ids::{self, Order};
use crate::tools::procs::Procs;

/// Body of `POST /session/:id/shell`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellRequest {
    /// Agent name (e.g. `build`).
    pub agent: String,
    /// The command line.
    pub command: String,
    /// `{providerID, modelID}`.
    #[serde(default)]
    pub model: Option<Model>,
    /// Id for the user message.
    #[serde(default, rename = "messageID")]
    pub message_id: Option<String>,
}

/// A model reference.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Provider.
    #[serde(rename = "providerID")]
    pub provider_id: String,
    /// Model.
    #[serde(rename = "modelID")]
    pub model_id: String,
}

/// Most output kept (the tail); OpenCode itself truncates shell output for display.
pub const MAX_OUTPUT: usize = 64 << 10;

/// How often the running tool part is updated with new output.
const UPDATE_EVERY: Duration = Duration::from_millis(250);

/// Grace between SIGTERM and SIGKILL on abort.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// How long output is still collected after the command exited.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(200);

/// The completed shell call, as OpenCode returns it.
#[derive(Debug)]
pub struct Outcome {
    /// Assistant message info.
    pub info: Value,
    /// The tool part.
    pub part: Value,
    /// Last seq of the session, for the fence header.
    pub last_seq: u64,
}

/// Captured output: arrival order of stdout and stderr, capped to the last [`MAX_OUTPUT`]
/// bytes.
#[derive(Debug, Default)]
struct Output {
    text: Vec<u8>,
    omitted: usize,
}

impl Output {
    fn push(&mut self, bytes: &[u8]) {
        self.text.extend_from_slice(bytes);
        if self.text.len() > MAX_OUTPUT {
            let excess = self.text.len() - MAX_OUTPUT;
            self.text.drain(..excess);
            self.omitted += excess;
        }
    }

    fn render(&self) -> String {
        let text = String::from_utf8_lossy(&self.text);
        // Do not start in the middle of a UTF-8 sequence after trimming.
        let text = text.trim_start_matches('\u{FFFD}');
        if self.omitted == 0 {
            text.to_owned()
        } else {
            format!("[… {} earlier bytes omitted …]\n{text}", self.omitted)
        }
    }
}

fn shell_program() -> (String, Vec<&'static str>) {
    let shell = std::env::var("SHELL").unwrap_or_default();
    let name = shell.rsplit('/').next().unwrap_or_default();
    match name {
        // Login shells give the user's PATH and environment, like a terminal on the host.
        "bash" | "zsh" | "ksh" | "mksh" | "dash" | "sh" => (shell, vec!["-l", "-c"]),
        // fish, csh, nu…: their syntax differs from what OpenCode users type; use sh.
        _ => ("/bin/sh".to_owned(), vec!["-l", "-c"]),
    }
}

fn call_id() -> String {
    // OpenCode's own shell calls use ULID-like ids (26 chars, Crockford base32).
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

/// Runs the shell call. Errors are returned before anything was logged (unknown session,
/// busy); once events are written the call always completes (`completed` or `error`).
///
/// # Errors
///
/// 404 for an unknown session, 409 when it is busy, store failures.
pub async fn run(app: &App, session_id: &str, request: ShellRequest) -> Result<Outcome, ApiError> {
    let store = app.store().await?;
    let session = store
        .info(session_id)
        .ok_or_else(|| ApiError::NotFound(format!("session not found: {session_id}")))?;
    let Some(guard) = app.runs().start(session_id, app.shutdown()) else {
        return Err(ApiError::SessionBusy(session_id.to_owned()));
    };
    let bus = store.bus();
    bus.event(
        "session.status",
        json!({ "sessionID": session_id, "status": { "type": "busy" } }),
    );

    let directory = app.config().directory.to_string_lossy().into_owned();
    let model = request.model.clone().or_else(|| {
        let model = session.get("model")?;
        Some(Model {
            provider_id: model.get("providerID")?.as_str()?.to_owned(),
            model_id: model.get("id")?.as_str()?.to_owned(),
        })
    });
    let model = model.unwrap_or(Model {
        provider_id: "opencode-remote".into(),
        model_id: "shell".into(),
    });

    let result = run_logged(app, session_id, &request, &model, &directory, &guard.cancel).await;
    drop(guard);
    bus.event(
        "session.status",
        json!({ "sessionID": session_id, "status": { "type": "idle" } }),
    );
    bus.event("session.idle", json!({ "sessionID": session_id }));
    result
}

async fn run_logged(
    app: &App,
    session_id: &str,
    request: &ShellRequest,
    model: &Model,
    directory: &str,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Outcome, ApiError> {
    let store = app.store().await?;
    let append = |kind: &str, data: Value| {
        store
            .append(session_id, kind, data)
            .map_err(ApiError::internal)
    };

    let user_id = request
        .message_id
        .clone()
        .filter(|id| ids::is_valid(id, "msg"))
        .unwrap_or_else(|| ids::new("msg", Order::Ascending));
    let now = ids::now_ms();
    let user = json!({
        "id": user_id, "sessionID": session_id, "time": { "created": now }, "role": "user",
        "agent": request.agent, "model": { "providerID": model.provider_id, "modelID": model.model_id },
    });
    append(
        "message.updated.1",
        json!({ "sessionID": session_id, "info": user }),
    )?;
    let text = json!({
        "type": "text", "id": ids::new("prt", Order::Ascending), "messageID": user_id, "sessionID": session_id,
        "text": "The following tool was executed by the user", "synthetic": true,
    });
    append(
        "message.part.updated.1",
        json!({ "sessionID": session_id, "part": text, "time": ids::now_ms() }),
    )?;

    let mut assistant = json!({
        "id": ids::new("msg", Order::Ascending), "sessionID": session_id, "role": "assistant",
        "time": { "created": ids::now_ms() }, "parentID": user_id,
        "modelID": model.model_id, "providerID": model.provider_id,
        "mode": request.agent, "agent": request.agent,
        "path": { "cwd": directory, "root": directory },
        "cost": 0, "tokens": { "input": 0, "output": 0, "reasoning": 0, "cache": { "read": 0, "write": 0 } },
    });
    let message_id = assistant["id"].as_str().unwrap_or_default().to_owned();
    append(
        "message.updated.1",
        json!({ "sessionID": session_id, "info": assistant }),
    )?;

    let start = ids::now_ms();
    let input = json!({ "command": request.command });
    let mut part = json!({
        "type": "tool", "id": ids::new("prt", Order::Ascending), "messageID": message_id, "sessionID": session_id,
        "tool": "bash", "callID": call_id(),
        "state": { "status": "running", "time": { "start": start }, "input": input },
    });
    append(
        "message.part.updated.1",
        json!({ "sessionID": session_id, "part": part, "time": ids::now_ms() }),
    )?;

    let finished = match check_paths(app, session_id, &message_id, &part, request, cancel).await {
        Ok(()) => execute(app, session_id, &mut part, &request.command, cancel).await,
        Err(finished) => finished,
    };

    let end = ids::now_ms();
    assistant["time"]["completed"] = json!(end);
    if matches!(finished, Finished::Aborted(_)) {
        assistant["error"] =
            json!({ "name": "MessageAbortedError", "data": { "message": "Aborted" } });
    }
    append(
        "message.updated.1",
        json!({ "sessionID": session_id, "info": assistant }),
    )?;
    part["state"] = match finished {
        Finished::Completed { output, exit } => json!({
            "status": "completed", "input": input, "output": output, "title": "",
            "metadata": { "output": output, "exit": exit }, "time": { "start": start, "end": end },
        }),
        Finished::Aborted(output) => json!({
            "status": "error", "input": input, "error": "Command aborted by the user",
            "metadata": { "output": output }, "time": { "start": start, "end": end },
        }),
        Finished::Error(message) => json!({
            "status": "error", "input": input, "error": message, "time": { "start": start, "end": end },
        }),
    };
    let last = append(
        "message.part.updated.1",
        json!({ "sessionID": session_id, "part": part, "time": ids::now_ms() }),
    )?;
    Ok(Outcome {
        info: assistant,
        part,
        last_seq: last.seq,
    })
}

enum Finished {
    Completed { output: String, exit: Value },
    Aborted(String),
    Error(String),
}

impl From<String> for Finished {
    fn from(message: String) -> Finished {
        Finished::Error(message)
    }
}

/// Asks for every unapproved path and waits. `Err` carries the tool error message.
async fn check_paths(
    app: &App,
    session_id: &str,
    message_id: &str,
    part: &Value,
    request: &ShellRequest,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<(), Finished> {
    let cwd = app.config().directory.clone();
    let home = app.home().to_owned();
    let command = request.command.clone();
    let analysis = tokio::task::spawn_blocking(move || policy::analyze(&command, &cwd, &home))
        .await
        .map_err(|err| format!("cannot analyse the command: {err}"))?;
    let approvals = app
        .approvals()
        .await
        .map_err(|err| format!("cannot read approvals: {err}"))?;
    let unapproved: Vec<&policy::Access> = {
        let approvals = approvals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        analysis
            .paths
            .iter()
            .filter(|access| !approvals.is_approved(&access.resolved))
            .collect()
    };
    if unapproved.is_empty() {
        return Ok(());
    }
    let mut roots = Vec::new();
    let mut shown = Vec::new();
    for access in &unapproved {
        let root = if access.is_dir
            || matches!(access.kind, AccessKind::Cwd | AccessKind::ChangeDirectory)
        {
            access.resolved.clone()
        } else {
            access
                .resolved
                .parent()
                .map_or_else(|| access.resolved.clone(), std::path::Path::to_path_buf)
        };
        if !roots.contains(&root) {
            roots.push(root);
        }
        let path = access.resolved.display().to_string();
        if !shown.contains(&path) {
            shown.push(path);
        }
    }
    let store = app.store().await.map_err(|err| err.to_string())?;
    let (request_id, answer) = app.permissions().ask(
        store.bus(),
        Ask {
            session_id: session_id.to_owned(),
            message_id: message_id.to_owned(),
            call_id: part["callID"].as_str().unwrap_or_default().to_owned(),
            command: request.command.clone(),
            paths: shown.clone(),
            roots,
        },
    );
    let answer = tokio::select! {
        // An abort also rejects the pending request: it must count as the abort it is.
        biased;
        () = cancel.cancelled() => {
            app.permissions().withdraw(&request_id);
            return Err(Finished::Aborted(String::new()));
        }
        answer = answer => answer.map_err(|_| "the permission request was withdrawn".to_owned())?,
    };
    match answer.reply {
        Reply::Once | Reply::Always => Ok(()),
        Reply::Reject => {
            let who = match answer.message.filter(|m| !m.is_empty()) {
                Some(note) => format!("rejected by the user: {note}"),
                None => "rejected by the user".to_owned(),
            };
            let message = format!(
                "Permission denied: {} outside the approved directories of this workspace ({who})",
                shown.join(", ")
            );
            Err(Finished::Error(message))
        }
    }
}

async fn execute(
    app: &App,
    session_id: &str,
    part: &mut Value,
    command_line: &str,
    cancel: &tokio_util::sync::CancellationToken,
) -> Finished {
    let (program, args) = shell_program();
    let mut command = tokio::process::Command::new(&program);
    // The path check (policy.rs) assumes `cd` and start-up files work the plain way: no
    // inherited start-up file variables, no CDPATH (also when a profile sets one), HOME as the
    // check saw it.
    command
        .args(&args)
        .arg(format!("unset CDPATH; {command_line}"))
        .env_remove("BASH_ENV")
        .env_remove("ENV")
        .env_remove("CDPATH")
        .env("HOME", app.home())
        .current_dir(&app.config().directory)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    Procs::prepare(&mut command);
    let (mut child, _registration) = match app.procs().spawn(&mut command) {
        Ok(spawned) => spawned,
        Err(err) => return Finished::Error(format!("cannot start {program}: {err}")),
    };
    let pgid = child.id().map_or(0, |pid| pid as i32);
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Finished::Error("cannot capture the command's output".into());
    };
    let mut output = Output::default();
    let mut last_sent = String::new();
    let mut ticker = tokio::time::interval(UPDATE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut out_open, mut err_open) = (true, true);
    let mut out_buf = vec![0u8; 16 << 10];
    let mut err_buf = vec![0u8; 16 << 10];
    let mut aborted = false;
    let mut kill_at: Option<tokio::time::Instant> = None;
    let mut status = None;
    // After the command exits, background jobs it left may keep the pipes open: read what is
    // already there, but do not wait for them (they stay in the command's process group and
    // die with the stub).
    let mut drain_until: Option<tokio::time::Instant> = None;
    loop {
        if !out_open && !err_open && status.is_some() {
            break;
        }
        if drain_until.is_some_and(|at| tokio::time::Instant::now() >= at) {
            break;
        }
        tokio::select! {
            n = stdout.read(&mut out_buf), if out_open => match n {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => output.push(&out_buf[..n]),
            },
            n = stderr.read(&mut err_buf), if err_open => match n {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => output.push(&err_buf[..n]),
            },
            exited = child.wait(), if status.is_none() => {
                status = Some(exited.ok());
                drain_until = Some(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
            }
            () = async {
                match drain_until {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {}
            _ = ticker.tick() => {
                let rendered = output.render();
                if rendered != last_sent {
                    part["state"]["metadata"] = json!({ "output": rendered });
                    if let Ok(store) = app.store().await {
                        let data = json!({ "sessionID": session_id, "part": part, "time": ids::now_ms() });
                        if let Err(err) = store.append(session_id, "message.part.updated.1", data) {
                            tracing::warn!(%err, "cannot log streaming output");
                        }
                    }
                    last_sent = rendered;
                }
                if let Some(at) = kill_at && tokio::time::Instant::now() >= at {
                    app.procs().signal_group(pgid, rustix::process::Signal::KILL);
                    kill_at = None;
                }
            }
            () = cancel.cancelled(), if !aborted => {
                aborted = true;
                app.procs().signal_group(pgid, rustix::process::Signal::TERM);
                kill_at = Some(tokio::time::Instant::now() + KILL_GRACE);
            }
        }
    }
    let status = status.flatten();
    let mut rendered = output.render();
    // Like OpenCode, the running part carries the output before the part completes, so clients
    // that render running tools show it (and the event sequence matches a real server's).
    if rendered != last_sent
        && !rendered.is_empty()
        && let Ok(store) = app.store().await
    {
        part["state"]["metadata"] = json!({ "output": rendered });
        let data = json!({ "sessionID": session_id, "part": part, "time": ids::now_ms() });
        if let Err(err) = store.append(session_id, "message.part.updated.1", data) {
            tracing::warn!(%err, "cannot log the final output");
        }
    }
    if aborted {
        return Finished::Aborted(rendered);
    }
    use std::os::unix::process::ExitStatusExt;
    let exit = match status {
        Some(status) => match (status.code(), status.signal()) {
            (Some(code), _) => {
                if code != 0 {
                    if !rendered.is_empty() && !rendered.ends_with('\n') {
                        rendered.push('\n');
                    }
                    rendered.push_str(&format!("[exit code {code}]\n"));
                }
                json!(code)
            }
            (None, Some(signal)) => {
                rendered.push_str(&format!("[killed by signal {signal}]\n"));
                Value::Null
            }
            _ => Value::Null,
        },
        None => Value::Null,
    };
    Finished::Completed {
        output: rendered,
        exit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_should_keep_the_tail_and_say_what_was_omitted() {
        let mut output = Output::default();
        output.push(b"hello ");
        output.push(b"world");
        assert_eq!(output.render(), "hello world");
        output.push(&vec![b'x'; MAX_OUTPUT]);
        let rendered = output.render();
        assert!(
            rendered.starts_with("[… 11 earlier bytes omitted …]\n"),
            "{}",
            &rendered[..40]
        );
        assert!(rendered.ends_with('x'));
    }

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
