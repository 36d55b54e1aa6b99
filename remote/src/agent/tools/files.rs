//! `read`, `write` and `edit`: paths are resolved against the workspace directory; one outside
//! the workspace and its approved directories asks the user first (`external_directory`).

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::opencode::event::BusEvent;
use crate::policy::Reach;
use crate::tools::read::{self, Window};
use crate::tools::{diff, edit as editing};

use super::{Ctx, Done, object, opt_uint, text_arg, title_of};

/// Resolves the `filePath` argument and has the user allow it when it is outside.
async fn target(ctx: &Ctx, verb: &str) -> Result<PathBuf, Done> {
    let path = ctx.resolve(text_arg(&ctx.input, "filePath")?);
    let whole = path.is_dir();
    ctx.allow(
        &format!("{verb} {}", path.display()),
        &[Reach {
            path: path.clone(),
            whole,
        }],
    )
    .await?;
    Ok(path)
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Done> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| Done::error(format!("the tool failed: {err}")))
}

/// `read`
pub async fn read(ctx: &Ctx) -> Done {
    match read_inner(ctx).await {
        Ok(done) | Err(done) => done,
    }
}

async fn read_inner(ctx: &Ctx) -> Result<Done, Done> {
    let window = Window::new(
        opt_uint(&ctx.input, "offset")?,
        opt_uint(&ctx.input, "limit")?,
    );
    let path = target(ctx, "read").await?;
    let title = title_of(&path, ctx.directory());
    let read_path = path.clone();
    let result = blocking(move || {
        if read_path.is_dir() {
            read::directory(&read_path, window).map(|dir| {
                (
                    dir.output,
                    json!({"preview": dir.preview, "truncated": dir.truncated, "loaded": [], "display": dir.display}),
                )
            })
        } else {
            read::file(&read_path, window).map(|file| match file {
                read::File::Text(text) => (
                    text.output,
                    json!({"preview": text.preview, "truncated": text.truncated, "loaded": [], "display": text.display}),
                ),
                read::File::Media(media) => (
                    media.output.to_owned(),
                    json!({"preview": media.output, "truncated": false, "loaded": []}),
                ),
            })
        }
    })
    .await?;
    match result {
        Ok((output, metadata)) => Ok(Done::Completed {
            output,
            title,
            metadata: object(metadata),
        }),
        Err(err) => Err(Done::error(err.to_string())),
    }
}

/// `write`
pub async fn write(ctx: &Ctx) -> Done {
    match write_inner(ctx).await {
        Ok(done) | Err(done) => done,
    }
}

async fn write_inner(ctx: &Ctx) -> Result<Done, Done> {
    let content = text_arg(&ctx.input, "content")?.to_owned();
    let path = target(ctx, "write").await?;
    let title = title_of(&path, ctx.directory());
    let write_path = path.clone();
    let exists = blocking(move || -> Result<bool, String> {
        if write_path.is_dir() {
            return Err(format!(
                "Path is a directory, not a file: {}",
                write_path.display()
            ));
        }
        let exists = write_path.exists();
        create_parent(&write_path)?;
        std::fs::write(&write_path, content.as_bytes())
            .map_err(|err| format!("cannot write {}: {err}", write_path.display()))?;
        Ok(exists)
    })
    .await?
    .map_err(Done::error)?;
    edited(ctx, &path);
    Ok(Done::Completed {
        output: "Wrote file successfully.".into(),
        title,
        metadata: object(json!({
            "diagnostics": {},
            "filepath": path.display().to_string(),
            "exists": exists,
            "truncated": false,
        })),
    })
}

/// `edit`
pub async fn edit(ctx: &Ctx) -> Done {
    match edit_inner(ctx).await {
        Ok(done) | Err(done) => done,
    }
}

async fn edit_inner(ctx: &Ctx) -> Result<Done, Done> {
    let old = text_arg(&ctx.input, "oldString")?.to_owned();
    let new = text_arg(&ctx.input, "newString")?.to_owned();
    let all = ctx
        .input
        .get("replaceAll")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let path = target(ctx, "edit").await?;
    let title = title_of(&path, ctx.directory());
    let edit_path = path.clone();
    let planned = blocking(move || -> Result<editing::Edit, String> {
        let bytes = if edit_path.is_dir() {
            None
        } else {
            std::fs::read(&edit_path).ok()
        };
        let target = match (&bytes, edit_path.is_dir()) {
            (_, true) => editing::Target::Directory,
            (Some(bytes), _) => editing::Target::File(bytes),
            (None, _) => editing::Target::Missing,
        };
        let planned =
            editing::plan(&edit_path, target, &old, &new, all).map_err(|err| err.to_string())?;
        if planned.created {
            create_parent(&edit_path)?;
        }
        std::fs::write(&edit_path, planned.bytes())
            .map_err(|err| format!("cannot write {}: {err}", edit_path.display()))?;
        Ok(planned)
    })
    .await?
    .map_err(Done::error)?;
    edited(ctx, &path);
    let file = path.display().to_string();
    Ok(Done::Completed {
        output: "Edit applied successfully.".into(),
        title,
        metadata: object(json!({
            "diagnostics": {},
            "diff": planned.diff,
            "filediff": {
                "file": file,
                "patch": diff::file_patch(&file, &planned.old, &planned.new),
                "additions": planned.stat.additions,
                "deletions": planned.stat.deletions,
            },
            "truncated": false,
        })),
    })
}

fn create_parent(path: &Path) -> Result<(), String> {
    match path.parent() {
        Some(parent) => std::fs::create_dir_all(parent)
            .map_err(|err| format!("cannot create {}: {err}", parent.display())),
        None => Ok(()),
    }
}

/// Tells OpenCode a file changed (`file.edited`).
fn edited(ctx: &Ctx, path: &Path) {
    ctx.agent.sessions.bus().emit(&BusEvent::FileEdited {
        file: path.display().to_string(),
    });
}
