//! `task`: a sub-agent works on a prompt in a child session of its own (AGENT.md §9) — created
//! with the parent's id and a rule that it may not start tasks itself, run as a turn of the
//! chosen agent with the parent's model, and its final text handed back to the model. An
//! abort of the parent aborts the child. `task_id` resumes a child of this session.

use std::future::Future;
use std::pin::Pin;

use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::opencode::part::PartKind;
use crate::session::info::{CreateSession, new_info};

use super::super::prompt::{Accepted, Prompt, PromptModel};
use super::{Ctx, Done, object, opt_text, text_arg};

/// Agents a task may use when the laptop cannot list them.
const BUILT_IN: [&str; 2] = ["general", "explore"];

#[derive(Deserialize)]
struct Listed {
    name: String,
    #[serde(default)]
    mode: Option<String>,
}

/// `task`
pub async fn run(ctx: &Ctx) -> Done {
    match run_inner(ctx).await {
        Ok(done) | Err(done) => done,
    }
}

async fn run_inner(ctx: &Ctx) -> Result<Done, Done> {
    let description = text_arg(&ctx.input, "description")?.to_owned();
    let prompt = text_arg(&ctx.input, "prompt")?.to_owned();
    let agent = text_arg(&ctx.input, "subagent_type")?.to_owned();
    let task_id = opt_text(&ctx.input, "task_id")?.map(str::to_owned);
    let subagents: Vec<String> = match ctx.agent.setup().await {
        Some(setup) => serde_json::from_str::<Vec<Listed>>(&setup.agents)
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a.mode.as_deref() != Some("primary"))
            .map(|a| a.name)
            .collect(),
        None => BUILT_IN.iter().map(|s| (*s).to_owned()).collect(),
    };
    if !subagents.contains(&agent) {
        return Err(Done::error(format!(
            "Unknown agent type: {agent} is not a valid agent type (available: {})",
            subagents.join(", ")
        )));
    }
    let store = ctx
        .agent
        .sessions
        .store()
        .await
        .map_err(|err| Done::error(err.to_string()))?;
    let parent_id = ctx.recorder.session_id().to_owned();
    let parent = store
        .info(&parent_id)
        .ok_or_else(|| Done::error("the parent session is gone"))?;
    let resumed = task_id.and_then(|id| {
        store
            .info(&id)
            .filter(|child| child.parent_id.as_deref() == Some(parent_id.as_str()))
    });
    let child = match resumed {
        Some(child) => child,
        None => {
            let info = new_info(
                &CreateSession {
                    parent_id: Some(parent_id.clone()),
                    title: Some(format!("{description} (@{agent} subagent)")),
                    permission: Some(
                        json!([{"permission": "task", "pattern": "*", "action": "deny"}]),
                    ),
                    ..CreateSession::default()
                },
                &parent.project_id,
                parent.workspace_id.as_deref().unwrap_or_default(),
                &parent.directory,
            );
            let created = info.clone();
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.create(created))
                .await
                .map_err(|err| Done::error(err.to_string()))?
                .map_err(|err| Done::error(format!("cannot create the task's session: {err}")))?;
            info
        }
    };
    let model = parent.model.clone().map(|m| PromptModel {
        provider_id: m.provider_id,
        model_id: m.id,
    });
    let model_json = parent
        .model
        .as_ref()
        .map(|m| json!({"modelID": m.id, "providerID": m.provider_id}));
    let metadata = object(json!({
        "parentSessionId": parent_id,
        "sessionId": child.id,
        "model": model_json,
    }));
    ctx.progress(Some(description.clone()), metadata.clone());
    let mut tools = serde_json::Map::new();
    for off in ["task", "todowrite", "question"] {
        tools.insert(off.into(), false.into());
    }
    let request = Prompt {
        message_id: None,
        model,
        agent: Some(agent),
        no_reply: None,
        tools: Some(tools),
        format: None,
        system: None,
        variant: None,
        parts: vec![json!({"type": "text", "text": prompt})],
    };
    // Boxed: a task's turn runs tools that may start tasks.
    let started: Pin<Box<dyn Future<Output = Result<Accepted, ApiError>> + Send>> = Box::pin({
        let agent = ctx.agent.clone();
        let child_id = child.id.clone();
        async move { agent.prompt(&child_id, request).await }
    });
    let accepted = started.await.map_err(|err| Done::error(err.to_string()))?;
    let Some(mut turn) = accepted.turn else {
        return Err(Done::error(format!(
            "the task's session {} is busy",
            child.id
        )));
    };
    let outcome = tokio::select! {
        outcome = &mut turn => outcome,
        () = ctx.cancel.cancelled() => {
            ctx.agent.sessions.runs().abort(&child.id);
            turn.await
        }
    };
    let outcome = outcome
        .map_err(|err| Done::error(err.to_string()))?
        .map_err(|err| Done::error(err.to_string()))?;
    if ctx.cancel.is_cancelled() {
        return Err(Done::Failed {
            error: super::ABORTED.into(),
            rejected: false,
            aborted: true,
        });
    }
    if let Some(error) = &outcome.info.error {
        let shown = serde_json::to_value(error)
            .ok()
            .and_then(|v| v["data"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "the task failed".into());
        return Err(Done::error(format!("The task failed: {shown}")));
    }
    let text: String = outcome
        .parts
        .iter()
        .filter_map(|part| match &part.kind {
            PartKind::Text(text) if text.synthetic != Some(true) => Some(text.text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Done::Completed {
        output: format!(
            "<task id=\"{}\" state=\"completed\">\n<task_result>\n{text}\n</task_result>\n</task>",
            child.id
        ),
        title: description,
        metadata,
    })
}
