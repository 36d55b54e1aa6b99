//! The agent's permission rules applied to one call before it runs (AGENT.md §7): each tool
//! is checked under its permission (`edit` for the file writers) with its subject as the
//! pattern (a path relative to the workspace, the command, the search pattern). `deny`
//! refuses with the rules that apply; `ask` raises OpenCode's permission prompt unless the
//! user already answered `always` for it; `allow` goes on. Paths outside the workspace are the
//! policy's business afterwards (`external_directory`).

use serde_json::json;

use crate::opencode::Object;
use crate::opencode::permission::{PermissionRequest, Reply, ToolRef};

use super::super::rules::{self, Action, Rule};
use super::{ABORTED, Ctx, Done, REJECTED};

/// What one call is checked as.
struct Subject {
    permission: &'static str,
    patterns: Vec<String>,
    always: Vec<String>,
    metadata: Object,
}

fn relative(ctx: &Ctx, path: &str) -> String {
    let absolute = ctx.resolve(path);
    match absolute.strip_prefix(ctx.directory()) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
        _ => absolute.display().to_string(),
    }
}

fn subject(ctx: &Ctx) -> Option<Subject> {
    let text = |name: &str| ctx.input.get(name).and_then(|v| v.as_str());
    let everything = || vec!["*".to_owned()];
    let mut metadata = Object::new();
    let (permission, patterns, always) = match ctx.tool.as_str() {
        "read" => {
            let path = text("filePath")?;
            metadata.insert("filepath".into(), path.into());
            ("read", vec![relative(ctx, path)], everything())
        }
        "edit" | "write" => {
            let path = text("filePath")?;
            metadata.insert("filepath".into(), path.into());
            ("edit", vec![relative(ctx, path)], everything())
        }
        "bash" => {
            let command = text("command")?.trim().to_owned();
            let head = command.split_whitespace().next().unwrap_or("").to_owned();
            metadata.insert("command".into(), command.clone().into());
            ("bash", vec![command], vec![format!("{head} *")])
        }
        "apply_patch" => {
            let text = text("patchText")?;
            let paths: Vec<String> = text
                .lines()
                .filter_map(|line| {
                    [
                        "*** Add File: ",
                        "*** Update File: ",
                        "*** Delete File: ",
                        "*** Move to: ",
                    ]
                    .iter()
                    .find_map(|marker| line.trim().strip_prefix(marker))
                })
                .map(|path| relative(ctx, path.trim()))
                .collect();
            if paths.is_empty() {
                return None;
            }
            ("edit", paths, everything())
        }
        "glob" => ("glob", vec![text("pattern")?.to_owned()], everything()),
        "grep" => ("grep", vec![text("pattern")?.to_owned()], everything()),
        "todowrite" => ("todowrite", everything(), everything()),
        "skill" => {
            let name = text("name")?.to_owned();
            ("skill", vec![name.clone()], vec![name])
        }
        "webfetch" => ("webfetch", vec![text("url")?.to_owned()], everything()),
        _ => return None,
    };
    debug_assert_eq!(permission, rules::permission_of(&ctx.tool));
    Some(Subject {
        permission,
        patterns,
        always,
        metadata,
    })
}

/// Lets the call go on, or says how it ends.
///
/// # Errors
///
/// The [`Done`] to record when a rule or the user refuses, or an abort came first.
pub async fn check(ctx: &Ctx) -> Result<(), Done> {
    let Some(subject) = subject(ctx) else {
        return Ok(());
    };
    decide(ctx, subject).await
}

/// The model made the same call (tool and input) three times in a row: `doom_loop` (ask by
/// default) decides whether it runs again, as in OpenCode. An `always` answer covers the tool.
///
/// # Errors
///
/// As [`check`].
pub async fn repeated(ctx: &Ctx) -> Result<(), Done> {
    let mut metadata = Object::new();
    metadata.insert("tool".into(), ctx.tool.clone().into());
    metadata.insert("input".into(), ctx.input.clone().into());
    let subject = Subject {
        permission: "doom_loop",
        patterns: vec![ctx.tool.clone()],
        always: vec![ctx.tool.clone()],
        metadata,
    };
    decide(ctx, subject).await
}

async fn decide(ctx: &Ctx, subject: Subject) -> Result<(), Done> {
    let mut asks = Vec::new();
    for pattern in &subject.patterns {
        match ctx.rules.evaluate(subject.permission, pattern).0 {
            Action::Allow => {}
            Action::Deny => {
                let relevant = ctx.rules.relevant(subject.permission);
                return Err(Done::error(format!(
                    "The user has specified a rule which prevents you from using this specific tool call. Here are some of the relevant rules {}",
                    json!(relevant)
                )));
            }
            Action::Ask => {
                if !approved(ctx, subject.permission, pattern) {
                    asks.push(pattern.clone());
                }
            }
        }
    }
    if asks.is_empty() {
        return Ok(());
    }
    let policy = &ctx.agent.policy;
    let (id, answer) = policy.permissions().ask_rule(
        policy.bus(),
        PermissionRequest {
            id: String::new(),
            session_id: ctx.recorder.session_id().to_owned(),
            permission: subject.permission.to_owned(),
            patterns: asks,
            metadata: subject.metadata,
            always: subject.always.clone(),
            tool: Some(ToolRef {
                message_id: ctx.message_id.clone(),
                call_id: ctx.call_id.clone(),
            }),
        },
    );
    let answer = tokio::select! {
        biased;
        () = ctx.cancel.cancelled() => {
            policy.permissions().withdraw(&id);
            return Err(aborted());
        }
        answer = answer => answer,
    };
    let Ok(answer) = answer else {
        return Err(aborted());
    };
    match answer.reply {
        Reply::Once => Ok(()),
        Reply::Always => {
            let rules: Vec<Rule> = subject
                .always
                .iter()
                .map(|pattern| Rule {
                    permission: subject.permission.to_owned(),
                    pattern: pattern.clone(),
                    action: Action::Allow,
                })
                .collect();
            let approved = ctx.agent.approved.clone();
            let saved = tokio::task::spawn_blocking(move || approved.add(rules)).await;
            if let Ok(Err(err)) | Err(err) = saved.map_err(std::io::Error::other) {
                tracing::warn!(%err, "could not save an always approval; it holds while this stub runs");
            }
            Ok(())
        }
        Reply::Reject => Err(Done::Failed {
            error: match answer.message.filter(|m| !m.trim().is_empty()) {
                Some(feedback) if !ctx.cancel.is_cancelled() => format!(
                    "The user rejected permission to use this specific tool call with the following feedback: {feedback}"
                ),
                _ => REJECTED.to_owned(),
            },
            rejected: true,
            aborted: ctx.cancel.is_cancelled(),
        }),
    }
}

fn aborted() -> Done {
    Done::Failed {
        error: ABORTED.into(),
        rejected: false,
        aborted: true,
    }
}

/// Whether an `always` answer already covers `pattern`.
fn approved(ctx: &Ctx, permission: &str, pattern: &str) -> bool {
    rules::Rules(ctx.agent.approved.rules())
        .evaluate(permission, pattern)
        .0
        == Action::Allow
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_should_refuse_edits_with_the_rules_that_apply() {
        let plan = rules::Rules::defaults("plan");
        assert_eq!(plan.evaluate("edit", "src/lib.rs").0, Action::Deny);
        let relevant = plan.relevant("edit");
        let text = json!(relevant).to_string();
        assert!(
            text.contains(r#""pattern":".opencode/plans/*.md""#),
            "{text}"
        );
    }
}
