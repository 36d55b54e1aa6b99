//! The conversation as a model request: the session's messages in the provider-neutral form
//! of [`protocol::gateway`] (the bridge turns it into the provider's wire format).
//!
//! Tool results follow the assistant message that made the calls, in a user-role message of
//! their own, as every provider wants them after the calls.

use base64::Engine;
use protocol::gateway::{Content, Message as ModelMessage, Role};

use crate::opencode::message::{Message, WithParts};
use crate::opencode::part::{PartKind, ToolState};

/// What the model reads for a tool call that never finished (the stub or the turn went away).
pub const INTERRUPTED: &str = "[Tool execution was interrupted]";

/// The model's view of `conversation`.
pub fn messages(conversation: &[WithParts]) -> Vec<ModelMessage> {
    let mut out = Vec::new();
    for message in conversation {
        match &message.info {
            Message::User(_) => {
                let content: Vec<Content> = message
                    .parts
                    .iter()
                    .filter_map(|part| match &part.kind {
                        PartKind::Text(text) if text.ignored != Some(true) => {
                            Some(Content::Text(text.text.clone()))
                        }
                        PartKind::File(file) => Some(file_content(&file.mime, &file.url)),
                        _ => None,
                    })
                    .collect();
                if !content.is_empty() {
                    push(&mut out, Role::User, content);
                }
            }
            Message::Assistant(_) => {
                let mut content = Vec::new();
                let mut results = Vec::new();
                for part in &message.parts {
                    match &part.kind {
                        PartKind::Text(text) if !text.text.is_empty() => {
                            content.push(Content::Text(text.text.clone()));
                        }
                        PartKind::Reasoning(reasoning) if !reasoning.text.is_empty() => {
                            let signature = reasoning
                                .metadata
                                .as_ref()
                                .and_then(|m| m.get("signature"))
                                .and_then(|s| s.as_str())
                                .map(str::to_owned);
                            content.push(Content::Reasoning {
                                text: reasoning.text.clone(),
                                signature,
                            });
                        }
                        PartKind::Tool(tool) => {
                            let input = serde_json::to_string(tool.state.input())
                                .unwrap_or_else(|_| "{}".into());
                            content.push(Content::ToolCall {
                                id: tool.call_id.clone(),
                                name: tool.tool.clone(),
                                arguments: input,
                            });
                            let (output, is_error) = match &tool.state {
                                ToolState::Completed { output, .. } => (output.clone(), false),
                                ToolState::Error { error, .. } => (error.clone(), true),
                                _ => (INTERRUPTED.to_owned(), true),
                            };
                            results.push(Content::ToolResult {
                                id: tool.call_id.clone(),
                                name: tool.tool.clone(),
                                output,
                                is_error,
                            });
                        }
                        _ => {}
                    }
                }
                if !content.is_empty() {
                    push(&mut out, Role::Assistant, content);
                }
                if !results.is_empty() {
                    push(&mut out, Role::User, results);
                }
            }
        }
    }
    out
}

/// Appends, merging with the previous message of the same role (providers want roles to
/// alternate; two prompts in a row become one user turn).
fn push(out: &mut Vec<ModelMessage>, role: Role, content: Vec<Content>) {
    match out.last_mut() {
        Some(last) if last.role == role => last.content.extend(content),
        _ => out.push(ModelMessage { role, content }),
    }
}

/// A file part: text files are given as their text, anything else as the file.
fn file_content(mime: &str, url: &str) -> Content {
    if mime.starts_with("text/")
        && let Some(data) = url
            .strip_prefix("data:")
            .and_then(|rest| rest.split_once(";base64,"))
            .map(|(_, data)| data)
        && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data)
    {
        return Content::Text(String::from_utf8_lossy(&bytes).into_owned());
    }
    Content::File {
        mime: mime.to_owned(),
        url: url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(value: serde_json::Value) -> WithParts {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn tool_results_should_follow_the_calls_in_a_user_turn() {
        let conversation = vec![
            message(
                json!({"info":{"id":"msg_1","sessionID":"s","role":"user","time":{"created":1},
                "agent":"build","model":{"providerID":"p","modelID":"m"}},
                "parts":[{"id":"prt_1","messageID":"msg_1","sessionID":"s","type":"text","text":"hi"}]}),
            ),
            message(
                json!({"info":{"id":"msg_2","parentID":"msg_1","role":"assistant","mode":"build","agent":"build",
                "path":{"cwd":"/","root":"/"},"cost":0,"tokens":{"input":0,"output":0,"reasoning":0,"cache":{"read":0,"write":0}},
                "modelID":"m","providerID":"p","time":{"created":1},"sessionID":"s","finish":"tool-calls"},
                "parts":[
                    {"id":"prt_2","messageID":"msg_2","sessionID":"s","type":"step-start"},
                    {"id":"prt_3","messageID":"msg_2","sessionID":"s","type":"text","text":"reading","time":{"start":1,"end":2}},
                    {"id":"prt_4","messageID":"msg_2","sessionID":"s","type":"tool","tool":"read","callID":"c1",
                     "state":{"status":"error","input":{"filePath":"/x"},"error":"File not found: /x","time":{"start":1,"end":2}}},
                    {"id":"prt_5","messageID":"msg_2","sessionID":"s","type":"tool","tool":"bash","callID":"c2",
                     "state":{"status":"running","input":{"command":"ls"},"time":{"start":1}}}
                ]}),
            ),
            message(
                json!({"info":{"id":"msg_3","sessionID":"s","role":"user","time":{"created":1},
                "agent":"build","model":{"providerID":"p","modelID":"m"}},
                "parts":[{"id":"prt_6","messageID":"msg_3","sessionID":"s","type":"text","text":"again"}]}),
            ),
        ];
        let out = messages(&conversation);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].content, vec![Content::Text("hi".into())]);
        assert_eq!(out[1].role, Role::Assistant);
        assert_eq!(out[1].content.len(), 3);
        assert_eq!(out[2].role, Role::User);
        assert_eq!(
            out[2].content,
            vec![
                Content::ToolResult {
                    id: "c1".into(),
                    name: "read".into(),
                    output: "File not found: /x".into(),
                    is_error: true
                },
                Content::ToolResult {
                    id: "c2".into(),
                    name: "bash".into(),
                    output: INTERRUPTED.into(),
                    is_error: true
                },
                Content::Text("again".into()),
            ]
        );
    }
}
