//! `bash`: the command runs in the workspace directory (or `workdir`) after the path check of
//! [`crate::policy`]; its output streams into the part's metadata while it runs.

use std::time::Duration;

use serde_json::json;

use crate::policy::{Caller, Denied};
use crate::tools::shell::{self as exec, Exit};
use crate::tools::truncate::{NO_OUTPUT, preview};

use super::{Ctx, Done, object, opt_text, opt_uint, text_arg};

/// Default time limit of a command, as OpenCode's.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest time limit a model may ask for.
const MAX_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// `bash`
pub async fn run(ctx: &Ctx) -> Done {
    match run_inner(ctx).await {
        Ok(done) | Err(done) => done,
    }
}

async fn run_inner(ctx: &Ctx) -> Result<Done, Done> {
    let command = text_arg(&ctx.input, "command")?.to_owned();
    let cwd = match opt_text(&ctx.input, "workdir")? {
        Some(dir) if !dir.is_empty() => ctx.resolve(dir),
        _ => ctx.directory().to_path_buf(),
    };
    let timeout = opt_uint(&ctx.input, "timeout")?
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis)
        .min(MAX_TIMEOUT);
    let agent = &ctx.agent;
    let caller = Caller {
        session_id: ctx.recorder.session_id().to_owned(),
        message_id: ctx.message_id.clone(),
        call_id: ctx.call_id.clone(),
    };
    let implicit = [agent.directory.clone(), agent.spill_dir()];
    match agent
        .policy
        .check_command_within(caller, &command, &cwd, &agent.home, &implicit, &ctx.cancel)
        .await
    {
        Ok(()) => {}
        Err(Denied::Aborted) => {
            return Err(Done::Failed {
                error: super::ABORTED.into(),
                rejected: false,
                aborted: true,
            });
        }
        Err(Denied::Rejected(_)) => {
            return Err(Done::Failed {
                error: super::REJECTED.into(),
                rejected: true,
                aborted: false,
            });
        }
        Err(Denied::Failed(message)) => return Err(Done::error(message)),
    }
    if !cwd.is_dir() {
        return Err(Done::error(format!(
            "The working directory {} does not exist or is not a directory.",
            cwd.display()
        )));
    }
    // The title is the command, as OpenCode 1.18.33 shows it (a `description` a model adds
    // stays in the input only).
    let title = command.clone();
    let shown = |output: &str| object(json!({"output": preview(output)}));
    ctx.progress(Some(title.clone()), shown(""));
    let run = exec::run(
        &agent.procs,
        exec::Command {
            line: &command,
            cwd: &cwd,
            home: &agent.home,
            timeout: Some(timeout),
        },
        &ctx.cancel,
        |output| ctx.progress(Some(title.clone()), shown(output)),
    )
    .await
    .map_err(Done::error)?;
    let mut output = if run.output.is_empty() {
        NO_OUTPUT.to_owned()
    } else {
        run.output
    };
    let note = match run.exit {
        Exit::Aborted => Some("User aborted the command".to_owned()),
        Exit::TimedOut => Some(format!(
            "bash tool terminated command after exceeding timeout {} ms",
            timeout.as_millis()
        )),
        _ => None,
    };
    if let Some(note) = note {
        output.push_str(&format!("\n\n<shell_metadata>\n{note}\n</shell_metadata>"));
    }
    let exit = match run.exit {
        Exit::Code(code) => json!(code),
        _ => serde_json::Value::Null,
    };
    let mut metadata = shown(&output);
    metadata.insert("exit".into(), exit);
    metadata.insert("truncated".into(), false.into());
    Ok(Done::Completed {
        output,
        title,
        metadata,
    })
}
