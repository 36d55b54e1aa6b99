//! `question`: the model asks the user to choose (AGENT.md §7). The questions go to the TUI
//! (`question.asked`), the tool waits for the answers, and the model reads them in OpenCode's
//! words. A dismissed question stops the turn like a rejected permission.

use serde_json::json;

use crate::opencode::permission::ToolRef;
use crate::opencode::question::{QuestionInfo, QuestionRequest};

use super::{ABORTED, Ctx, Done, object};

/// The tool error of a dismissed question.
pub const DISMISSED: &str = "The user dismissed this question";

/// `question`
pub async fn ask(ctx: &Ctx) -> Done {
    let questions: Vec<QuestionInfo> = match ctx
        .input
        .get("questions")
        .cloned()
        .map(serde_json::from_value)
    {
        Some(Ok(questions)) => questions,
        Some(Err(err)) => {
            return Done::error(format!(
                "The questions argument is not a list of {{question, header, options}} ({err})."
            ));
        }
        None => return Done::error("The questions argument is required."),
    };
    if questions.is_empty() {
        return Done::error("The questions argument must hold at least one question.");
    }
    let bus = ctx.agent.sessions.bus().clone();
    let registry = ctx.agent.questions.clone();
    let (id, answer) = registry.ask(
        &bus,
        QuestionRequest {
            id: String::new(),
            session_id: ctx.recorder.session_id().to_owned(),
            questions: questions.clone(),
            tool: Some(ToolRef {
                message_id: ctx.message_id.clone(),
                call_id: ctx.call_id.clone(),
            }),
        },
    );
    let answers = tokio::select! {
        biased;
        () = ctx.cancel.cancelled() => {
            registry.withdraw(&id);
            return Done::Failed { error: ABORTED.into(), rejected: false, aborted: true };
        }
        answer = answer => answer.ok().flatten(),
    };
    let Some(answers) = answers else {
        return Done::Failed {
            error: DISMISSED.into(),
            rejected: true,
            aborted: ctx.cancel.is_cancelled(),
        };
    };
    let formatted: Vec<String> = questions
        .iter()
        .enumerate()
        .map(|(at, q)| {
            let answer = answers
                .get(at)
                .filter(|a| !a.is_empty())
                .map_or_else(|| "Unanswered".to_owned(), |a| a.join(", "));
            format!("\"{}\"=\"{answer}\"", q.question)
        })
        .collect();
    let count = questions.len();
    Done::Completed {
        output: format!(
            "User has answered your questions: {}. You can now continue with the user's answers in mind.",
            formatted.join(", ")
        ),
        title: format!(
            "Asked {count} question{}",
            if count == 1 { "" } else { "s" }
        ),
        metadata: object(json!({ "answers": answers, "truncated": false })),
    }
}
