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
        output: listed(todos),
        title: format!("{open} todos"),
        metadata: object(json!({"todos": todos, "truncated": false})),
    }
}

/// The list as OpenCode hands it back to the model: pretty JSON, each todo's fields in the
/// schema's order (content, status, priority).
fn listed(todos: &[Value]) -> String {
    #[derive(serde::Serialize)]
    struct Todo<'a> {
        content: &'a Value,
        status: &'a Value,
        priority: &'a Value,
    }
    let todos: Vec<Todo<'_>> = todos
        .iter()
        .map(|todo| Todo {
            content: &todo["content"],
            status: &todo["status"],
            priority: &todo["priority"],
        })
        .collect();
    serde_json::to_string_pretty(&todos).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_should_keep_the_schema_order() {
        let todos = [json!({"priority": "high", "status": "pending", "content": "ship it"})];
        assert_eq!(
            listed(&todos),
            "[\n  {\n    \"content\": \"ship it\",\n    \"status\": \"pending\",\n    \"priority\": \"high\"\n  }\n]"
        );
    }
}
