//! A tool call's arguments checked against the tool's parameter schema before it runs, with
//! the error OpenCode 1.18.33 records for arguments that do not fit (the model reads it and
//! tries again): the first problem found, as
//! `The <tool> tool was called with invalid arguments: SchemaError(<problem>\n  at <path>).\n
//! Please rewrite the input so it satisfies the expected schema.`, where the problem is
//! `Missing key` or `Expected <type>, got <value>` (`<type> | undefined` for optional keys)
//! and the path reads like `["todos"][0]["status"]`.

use serde_json::Value;

/// Checks `input` against `schema` (a tool's `parameters`); the error text when it does not fit.
pub fn check(tool: &str, schema: &Value, input: &Value) -> Result<(), String> {
    let mut at = Vec::new();
    problem(schema, input, false, &mut at).map_or(Ok(()), |problem| {
        Err(format!(
            "The {tool} tool was called with invalid arguments: SchemaError({problem}\n  at {}).\n\
             Please rewrite the input so it satisfies the expected schema.",
            at.concat()
        ))
    })
}

/// The first problem of `value` against `schema`; `at` is left holding its path.
fn problem(schema: &Value, value: &Value, optional: bool, at: &mut Vec<String>) -> Option<String> {
    let expected = match schema["type"].as_str() {
        Some("string") => "string",
        Some("integer" | "number") => "number",
        Some("boolean") => "boolean",
        Some("array") => "array",
        Some("object") => "object",
        _ => return None,
    };
    let fits = match expected {
        "string" => value.is_string(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        _ => value.is_object(),
    };
    if !fits {
        let expected = if optional {
            format!("{expected} | undefined")
        } else {
            expected.to_owned()
        };
        return Some(format!("Expected {expected}, got {value}"));
    }
    match value {
        Value::Array(items) => {
            let item_schema = &schema["items"];
            items.iter().enumerate().find_map(|(index, item)| {
                at.push(format!("[{index}]"));
                let found = problem(item_schema, item, false, at);
                if found.is_none() {
                    at.pop();
                }
                found
            })
        }
        Value::Object(fields) => {
            let properties = schema["properties"].as_object()?;
            let required: Vec<&str> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            // Required keys in their declared order, then the optional ones.
            let optional_keys = properties
                .keys()
                .map(String::as_str)
                .filter(|key| !required.contains(key));
            for key in required.iter().copied().chain(optional_keys) {
                let is_required = required.contains(&key);
                at.push(format!("[{}]", Value::from(key)));
                let found = match fields.get(key) {
                    None if is_required => Some("Missing key".to_owned()),
                    None => None,
                    Some(field) => problem(&properties[key], field, !is_required, at),
                };
                if found.is_some() {
                    return found;
                }
                at.pop();
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "pattern": {"type": "string"},
                "offset": {"type": "integer"},
                "todos": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "content": {"type": "string"},
                        "status": {"type": "string"},
                        "priority": {"type": "string"},
                    },
                    "required": ["content", "status", "priority"],
                }},
            },
            "required": ["pattern"],
        })
    }

    fn error(input: Value) -> String {
        check("glob", &schema(), &input).unwrap_err()
    }

    #[test]
    fn arguments_that_fit_should_pass() {
        let input = json!({"pattern": "*.rs", "offset": 3, "todos": [
            {"content": "a", "status": "pending", "priority": "high"}
        ], "unknown": true});
        assert_eq!(check("glob", &schema(), &input), Ok(()));
    }

    #[test]
    fn the_first_problem_should_be_named_as_opencode_names_it() {
        assert_eq!(
            error(json!({})),
            "The glob tool was called with invalid arguments: SchemaError(Missing key\n  \
             at [\"pattern\"]).\nPlease rewrite the input so it satisfies the expected schema."
        );
        assert!(
            error(json!({"pattern": 5})).contains("(Expected string, got 5\n  at [\"pattern\"])")
        );
        assert!(
            error(json!({"pattern": "x", "offset": "two"}))
                .contains("(Expected number | undefined, got \"two\"\n  at [\"offset\"])")
        );
        assert!(
            error(json!({"pattern": "x", "offset": null}))
                .contains("(Expected number | undefined, got null\n  at [\"offset\"])")
        );
        assert!(
            error(json!({"pattern": "x", "todos": [
                {"content": "a", "status": "pending", "priority": "high"},
                {"content": "b"},
            ]}))
            .contains("(Missing key\n  at [\"todos\"][1][\"status\"])")
        );
    }
}
