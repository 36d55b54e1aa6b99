//! `apply_patch`, offered to GPT models instead of `edit` and `write` (AGENT.md §5): the
//! patch is checked and every change computed first ([`crate::tools::patch`]); paths outside
//! the workspace ask first; then the files are written, moved or removed, and OpenCode is told
//! which changed.

use std::path::PathBuf;

use serde_json::json;

use crate::opencode::event::BusEvent;
use crate::policy::Reach;
use crate::tools::patch::{self, ChangeKind, FileChange, Hunk, PatchError};

use super::{Ctx, Done, object};

/// `apply_patch`
pub async fn apply(ctx: &Ctx) -> Done {
    match apply_inner(ctx).await {
        Ok(done) | Err(done) => done,
    }
}

async fn apply_inner(ctx: &Ctx) -> Result<Done, Done> {
    let text = match ctx.input.get("patchText").and_then(|v| v.as_str()) {
        Some(text) if !text.is_empty() => text.to_owned(),
        _ => return Err(Done::error("patchText is required")),
    };
    let hunks = patch::check(&text).map_err(|err| Done::error(err.tool_message()))?;
    let mut reach = Vec::new();
    for hunk in &hunks {
        let (path, move_to) = match hunk {
            Hunk::Add { path, .. } | Hunk::Delete { path } => (path, None),
            Hunk::Update { path, move_to, .. } => (path, move_to.as_ref()),
        };
        for path in std::iter::once(path).chain(move_to) {
            reach.push(Reach {
                path: ctx.resolve(path),
                whole: false,
            });
        }
    }
    ctx.allow("apply_patch", &reach).await?;
    let resolved: Vec<(Hunk, PathBuf, Option<PathBuf>)> = hunks
        .into_iter()
        .map(|hunk| {
            let (path, move_to) = match &hunk {
                Hunk::Add { path, .. } | Hunk::Delete { path } => (ctx.resolve(path), None),
                Hunk::Update { path, move_to, .. } => (
                    ctx.resolve(path),
                    move_to.as_deref().map(|m| ctx.resolve(m)),
                ),
            };
            (hunk, path, move_to)
        })
        .collect();
    let changes = tokio::task::spawn_blocking(move || -> Result<Vec<FileChange>, String> {
        let changes = plan(resolved).map_err(|err| err.tool_message())?;
        for change in &changes {
            write(change)?;
        }
        Ok(changes)
    })
    .await
    .map_err(|err| Done::error(format!("the tool failed: {err}")))?
    .map_err(Done::error)?;
    for change in &changes {
        ctx.agent.sessions.bus().emit(&BusEvent::FileEdited {
            file: change.target().display().to_string(),
        });
    }
    let output = patch::summary(&changes, ctx.directory());
    let files: Vec<_> = changes
        .iter()
        .map(|change| {
            json!({
                "filePath": change.path.display().to_string(),
                "relativePath": crate::tools::js::relative(ctx.directory(), change.target()),
                "type": change.kind.as_str(),
                "patch": change.diff,
                "additions": change.additions,
                "deletions": change.deletions,
                "movePath": change.move_path.as_ref().map(|p| p.display().to_string()),
            })
        })
        .collect();
    Ok(Done::Completed {
        title: output.clone(),
        output,
        metadata: object(json!({
            "diff": patch::combined_diff(&changes),
            "files": files,
            "diagnostics": {},
            "truncated": false,
        })),
    })
}

/// Every change, computed from the files as they are, before anything is written.
fn plan(hunks: Vec<(Hunk, PathBuf, Option<PathBuf>)>) -> Result<Vec<FileChange>, PatchError> {
    hunks
        .into_iter()
        .map(|(hunk, path, move_to)| match hunk {
            Hunk::Add { contents, .. } => Ok(patch::add(path, &contents)),
            Hunk::Delete { .. } => {
                let bytes = std::fs::read(&path).map_err(|_| PatchError::UpdateTargetMissing {
                    path: path.display().to_string(),
                })?;
                Ok(patch::delete(path, &bytes))
            }
            Hunk::Update { chunks, .. } => {
                let bytes = if path.is_file() {
                    std::fs::read(&path).ok()
                } else {
                    None
                };
                let bytes = bytes.ok_or_else(|| PatchError::UpdateTargetMissing {
                    path: path.display().to_string(),
                })?;
                patch::update(path, move_to, &bytes, &chunks)
            }
        })
        .collect()
}

fn write(change: &FileChange) -> Result<(), String> {
    let fail = |what: &str, path: &std::path::Path, err: std::io::Error| {
        format!("cannot {what} {}: {err}", path.display())
    };
    match change.kind {
        ChangeKind::Delete => {
            std::fs::remove_file(&change.path).map_err(|e| fail("remove", &change.path, e))
        }
        ChangeKind::Add | ChangeKind::Update | ChangeKind::Move => {
            let target = change.target();
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| fail("create", parent, e))?;
            }
            std::fs::write(target, change.bytes()).map_err(|e| fail("write", target, e))?;
            if change.kind == ChangeKind::Move && target != change.path {
                std::fs::remove_file(&change.path).map_err(|e| fail("remove", &change.path, e))?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_should_add_update_move_and_delete_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a.txt"), "one\ntwo\n").unwrap();
        std::fs::write(root.join("gone.txt"), "bye\n").unwrap();
        std::fs::write(root.join("old.txt"), "x\n").unwrap();
        let text = "*** Begin Patch\n*** Add File: new/b.txt\n+hello\n*** Update File: a.txt\n@@\n one\n-two\n+three\n*** Delete File: gone.txt\n*** Update File: old.txt\n*** Move to: moved.txt\n@@\n-x\n+y\n*** End Patch";
        let hunks = patch::check(text).unwrap();
        let resolved = hunks
            .into_iter()
            .map(|hunk| match &hunk {
                Hunk::Add { path, .. } | Hunk::Delete { path } => {
                    let p = root.join(path);
                    (hunk, p, None)
                }
                Hunk::Update { path, move_to, .. } => {
                    let (p, m) = (root.join(path), move_to.as_ref().map(|m| root.join(m)));
                    (hunk, p, m)
                }
            })
            .collect();
        let changes = plan(resolved).unwrap();
        for change in &changes {
            write(change).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(root.join("new/b.txt")).unwrap(),
            "hello\n"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("a.txt")).unwrap(),
            "one\nthree\n"
        );
        assert!(!root.join("gone.txt").exists());
        assert!(!root.join("old.txt").exists());
        assert_eq!(
            std::fs::read_to_string(root.join("moved.txt")).unwrap(),
            "y\n"
        );
        assert_eq!(
            patch::summary(&changes, root),
            "Success. Updated the following files:\nA new/b.txt\nM a.txt\nD gone.txt\nM moved.txt"
        );
    }

    #[test]
    fn a_patch_that_does_not_fit_should_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a.txt"), "one\n").unwrap();
        let text = "*** Begin Patch\n*** Add File: b.txt\n+b\n*** Update File: a.txt\n@@\n-nope\n+x\n*** End Patch";
        let resolved = patch::check(text)
            .unwrap()
            .into_iter()
            .map(|hunk| {
                let path = match &hunk {
                    Hunk::Add { path, .. } | Hunk::Delete { path } => root.join(path),
                    Hunk::Update { path, .. } => root.join(path),
                };
                (hunk, path, None)
            })
            .collect();
        let err = plan(resolved).unwrap_err();
        assert!(
            err.tool_message()
                .starts_with("apply_patch verification failed"),
            "{err}"
        );
        assert!(!root.join("b.txt").exists());
    }
}
