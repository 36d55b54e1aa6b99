//! `POST /session/:id/shell`: OpenCode's `!command`, run on the host.
//!
//! Before the command runs, its working directory and path operands are checked against the
//! workspace's approved roots ([`crate::policy`]); anything outside asks the user and waits.
//! The command runs through [`crate::tools::shell`] and is recorded as the events a real
//! OpenCode server writes ([`crate::session::record`]), with `session.status` busy → idle and
//! `session.idle` around it.

use crate::error::ApiError;
use crate::opencode::event::BusEvent;
use crate::opencode::message::{AssistantMessage, ModelRef};
use crate::opencode::part::Part;
use crate::opencode::session::Status;
use crate::policy::{Caller, Denied};
use crate::session::record::{Recorder, ShellEnd, ShellRecord, ShellStart};
use crate::tools::shell::{self as exec, Exit};

use super::Agent;

/// A `!shell` request.
#[derive(Debug, Clone)]
pub struct Request {
    /// Agent name (e.g. `build`).
    pub agent: String,
    /// The command line.
    pub command: String,
    /// The model to record (else the session's).
    pub model: Option<ModelRef>,
    /// Id for the user message.
    pub message_id: Option<String>,
}

/// The completed shell call, as OpenCode returns it.
#[derive(Debug)]
pub struct Outcome {
    /// Assistant message.
    pub info: AssistantMessage,
    /// The tool part.
    pub part: Part,
    /// Last seq of the session, for the fence header.
    pub last_seq: u64,
}

impl Agent {
    /// Runs a `!shell` call. Errors are returned before anything was logged (unknown session,
    /// busy); once events are written the call always completes (`completed` or `error`).
    ///
    /// # Errors
    ///
    /// 404 for an unknown session, 409 when it is busy, store failures.
    pub async fn shell(&self, session_id: &str, request: Request) -> Result<Outcome, ApiError> {
        let store = self.sessions.store().await?;
        let session = store
            .info(session_id)
            .ok_or_else(|| ApiError::NotFound(format!("session not found: {session_id}")))?;
        let runs = self.sessions.runs();
        let Some(guard) = runs.start(session_id, self.sessions.shutdown()) else {
            return Err(ApiError::SessionBusy(session_id.to_owned()));
        };
        let bus = self.sessions.bus();
        let status = |status| {
            bus.emit(&BusEvent::SessionStatus {
                session_id: session_id.to_owned(),
                status,
            });
        };
        status(Status::Busy);
        let model = request
            .model
            .clone()
            .or_else(|| {
                session.model.map(|model| ModelRef {
                    provider_id: model.provider_id,
                    model_id: model.id,
                    variant: None,
                })
            })
            .unwrap_or_else(|| ModelRef {
                provider_id: "opencode-remote".into(),
                model_id: "shell".into(),
                variant: None,
            });
        let start = ShellStart {
            agent: request.agent,
            command: request.command,
            model,
            message_id: request.message_id,
            directory: self.directory.to_string_lossy().into_owned(),
        };
        let result = self
            .run_recorded(Recorder::new(store, session_id), &start, &guard.cancel)
            .await;
        drop(guard);
        status(Status::Idle);
        bus.emit(&BusEvent::SessionIdle {
            session_id: session_id.to_owned(),
        });
        result
    }

    async fn run_recorded(
        &self,
        recorder: Recorder,
        start: &ShellStart,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<Outcome, ApiError> {
        let session_id = recorder.session_id().to_owned();
        let mut record = ShellRecord::start(recorder, start)?;
        let caller = Caller {
            session_id,
            message_id: record.message_id().to_owned(),
            call_id: record.call_id().to_owned(),
        };
        let checked = self
            .policy
            .check_command(caller, &start.command, &self.directory, &self.home, cancel)
            .await;
        let end = match checked {
            Ok(()) => {
                let command = exec::Command {
                    line: &start.command,
                    cwd: &self.directory,
                    home: &self.home,
                    timeout: None,
                };
                match exec::run(&self.procs, command, cancel, |output| record.output(output)).await
                {
                    Ok(run) => shell_end(run, self.sessions.shutdown().is_cancelled()),
                    Err(message) => ShellEnd::Failed { message },
                }
            }
            Err(Denied::Aborted) if self.sessions.shutdown().is_cancelled() => {
                ShellEnd::Interrupted {
                    output: String::new(),
                }
            }
            Err(Denied::Aborted) => ShellEnd::Aborted {
                output: String::new(),
            },
            Err(Denied::Rejected(message) | Denied::Failed(message)) => {
                ShellEnd::Failed { message }
            }
        };
        let (info, part, last_seq) = record.finish(end)?;
        Ok(Outcome {
            info,
            part,
            last_seq,
        })
    }
}

/// The recorded end of a finished command: the output with a note of a non-zero exit or a
/// signal, as the user reads it. A command stopped because the stub shuts down was not aborted
/// by the user.
fn shell_end(run: exec::Run, shutting_down: bool) -> ShellEnd {
    let mut output = run.output;
    match run.exit {
        Exit::Aborted if shutting_down => ShellEnd::Interrupted { output },
        Exit::Aborted => ShellEnd::Aborted { output },
        Exit::Code(code) => {
            if code != 0 {
                if !output.is_empty() && !output.ends_with('\n') {
                    output.push('\n');
                }
                output.push_str(&format!("[exit code {code}]\n"));
            }
            ShellEnd::Completed {
                output,
                exit: Some(code),
            }
        }
        Exit::Signal(signal) => {
            output.push_str(&format!("[killed by signal {signal}]\n"));
            ShellEnd::Completed { output, exit: None }
        }
        Exit::TimedOut | Exit::Unknown => ShellEnd::Completed { output, exit: None },
    }
}
