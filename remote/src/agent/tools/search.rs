//! `glob` and `grep`, run on ripgrep's walk in a blocking task that an abort stops.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use crate::policy::Reach;
use crate::tools::{glob as globbing, grep as grepping};

use super::{Ctx, Done, object, opt_text, text_arg};

/// The `path` argument (default: the workspace directory), allowed by the user when outside.
async fn root(ctx: &Ctx, verb: &str) -> Result<PathBuf, Done> {
    let path = match opt_text(&ctx.input, "path")? {
        Some(path) if !path.is_empty() => ctx.resolve(path),
        _ => ctx.directory().to_path_buf(),
    };
    ctx.allow(
        &format!("{verb} in {}", path.display()),
        &[Reach {
            path: path.clone(),
            whole: true,
        }],
    )
    .await?;
    Ok(path)
}

/// Runs `work` on a blocking thread with a flag an abort sets.
async fn stoppable<T: Send + 'static>(
    ctx: &Ctx,
    work: impl FnOnce(&AtomicBool) -> T + Send + 'static,
) -> Result<T, Done> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let task = tokio::task::spawn_blocking(move || work(&flag));
    let cancel = ctx.cancel.clone();
    let watcher = tokio::spawn(async move {
        cancel.cancelled().await;
        stop.store(true, Ordering::Relaxed);
    });
    let result = task.await;
    watcher.abort();
    if ctx.cancel.is_cancelled() {
        return Err(Done::Failed {
            error: super::ABORTED.into(),
            rejected: false,
            aborted: true,
        });
    }
    result.map_err(|err| Done::error(format!("the tool failed: {err}")))
}

/// `glob`
pub async fn glob(ctx: &Ctx) -> Done {
    match glob_inner(ctx).await {
        Ok(done) | Err(done) => done,
    }
}

async fn glob_inner(ctx: &Ctx) -> Result<Done, Done> {
    let pattern = text_arg(&ctx.input, "pattern")?.to_owned();
    let dir = root(ctx, "glob").await?;
    let found = stoppable(ctx, move |stop| globbing::glob(&dir, &pattern, stop))
        .await?
        .map_err(|err| Done::error(err.to_string()))?;
    Ok(Done::Completed {
        output: found.output(),
        title: String::new(),
        metadata: object(json!({"count": found.files.len(), "truncated": found.truncated})),
    })
}

/// `grep`
pub async fn grep(ctx: &Ctx) -> Done {
    match grep_inner(ctx).await {
        Ok(done) | Err(done) => done,
    }
}

async fn grep_inner(ctx: &Ctx) -> Result<Done, Done> {
    let pattern = text_arg(&ctx.input, "pattern")?.to_owned();
    let include = opt_text(&ctx.input, "include")?.map(str::to_owned);
    let dir = root(ctx, "grep").await?;
    let title = pattern.clone();
    let found = stoppable(ctx, move |stop| {
        grepping::grep(&dir, &pattern, include.as_deref(), stop)
    })
    .await?
    .map_err(|err| Done::error(err.to_string()))?;
    Ok(Done::Completed {
        output: found.output(),
        title,
        metadata: object(json!({"matches": found.matches.len(), "truncated": found.truncated})),
    })
}
