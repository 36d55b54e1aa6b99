//! `todowrite`: the session's todo list, shown by OpenCode (`todo.updated`).

use serde_json::{Value, json};

use crate::opencode::event::BusEvent;

use super::{Ctx, Done, object};

/// `todowrite`
pub async fn write(ctx: &Ctx) -> Done {
    let Some(Value::Array(todos)) = ctx.input.get("todos") else {
        return Done::error("The todos argument must be an array.");
    };
    for (at, todo) in todos.iter().enumerate() {
        for field in ["content", "status", "priority"] {
            if !todo.get(field).is_some_and(Value::is_string) {
                return Done::error(format!("todos[{at}].{field} must be a string."));
            }
        }
    }
    ctx.agent.sessions.bus().emit(&BusEvent::TodoUpdated {
        session_id: ctx.recorder.session_id().to_owned(),
        todos: todos.clone(),
    });
    let open = todos
        .iter()
        .filter(|todo| todo.get("status").and_then(Value::as_str) != Some("completed"))
        .count();
    Done::Completed {
        output: serde_json::to_string_pretty(todos).unwrap_or_default(),
        title: format!("{open} todos"),
        metadata: object(json!({"todos": todos, "truncated": false})),
    }
}
