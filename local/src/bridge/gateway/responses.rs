//! The OpenAI Responses API (`POST {baseURL}/responses`, what OpenCode uses for
//! `@ai-sdk/openai` models): the request as OpenCode sends it (AGENT.md §6.3: `input` items,
//! `store: false`, encrypted reasoning included, `prompt_cache_key`) and the streamed events
//! read into [`ModelEvent`]s.
//!
//! A reasoning item goes back to the API with its id and encrypted content; both travel to the
//! stub and back as the reasoning part's signature, `{"id", "encrypted_content"}` as JSON text.

use std::collections::HashMap;

use protocol::gateway::{Content, FinishReason, ModelEvent, ModelRequest, Role, Usage};
use serde_json::{Map, Value, json};

use super::call::{Dialect, StreamError, provider_error};
use super::providers::Resolved;
use super::sse;

/// The request body.
pub(super) fn body(request: &ModelRequest, model: &Resolved) -> Value {
    let mut input = Vec::new();
    if !request.system.is_empty() {
        let role = if model.info.reasoning {
            "developer"
        } else {
            "system"
        };
        input.push(json!({ "role": role, "content": request.system.join("\n") }));
    }
    for message in &request.messages {
        match message.role {
            Role::User => user(&message.content, &mut input),
            Role::Assistant => assistant(&message.content, &mut input),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), model.info.api_id.clone().into());
    body.insert("input".into(), input.into());
    if let Some(max_tokens) = super::chat::max_output(request, model) {
        body.insert("max_output_tokens".into(), max_tokens.into());
    }
    if let Some(temperature) = request.options.temperature {
        body.insert("temperature".into(), json!(temperature));
    }
    if let Some(top_p) = request.options.top_p {
        body.insert("top_p".into(), json!(top_p));
    }
    body.insert("store".into(), false.into());
    if model.info.reasoning {
        body.insert("include".into(), json!(["reasoning.encrypted_content"]));
        if let Some(effort) = &request.options.reasoning_effort {
            body.insert(
                "reasoning".into(),
                json!({ "effort": effort, "summary": "auto" }),
            );
        }
    }
    if let Some(session) = &request.options.session_id {
        body.insert("prompt_cache_key".into(), session.clone().into());
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": super::chat::parse_or_object(&tool.parameters),
                    "strict": false,
                })
            })
            .collect();
        body.insert("tools".into(), tools.into());
        body.insert("tool_choice".into(), "auto".into());
    }
    body.insert("stream".into(), true.into());
    Value::Object(body)
}

fn user(content: &[Content], input: &mut Vec<Value>) {
    let mut parts = Vec::new();
    for piece in content {
        match piece {
            Content::Text(text) => parts.push(json!({ "type": "input_text", "text": text })),
            Content::File { mime, url } if mime.starts_with("image/") => {
                parts.push(json!({ "type": "input_image", "image_url": url }));
            }
            Content::File { mime, url } => parts.push(json!({
                "type": "input_file", "filename": mime.replace('/', "."), "file_data": url
            })),
            Content::ToolResult { id, output, .. } => input.push(json!({
                "type": "function_call_output", "call_id": id, "output": output
            })),
            Content::Reasoning { .. } | Content::ToolCall { .. } => {}
        }
    }
    if !parts.is_empty() {
        input.push(json!({ "role": "user", "content": parts }));
    }
}

fn assistant(content: &[Content], input: &mut Vec<Value>) {
    for piece in content {
        match piece {
            Content::Text(text) if !text.is_empty() => input.push(json!({
                "role": "assistant", "content": [{ "type": "output_text", "text": text }]
            })),
            Content::Reasoning {
                text,
                signature: Some(signature),
            } => {
                let mut item = json!({
                    "type": "reasoning",
                    "summary": [{ "type": "summary_text", "text": text }],
                });
                match serde_json::from_str::<Value>(signature) {
                    Ok(Value::Object(saved)) => {
                        item["id"] = saved.get("id").cloned().unwrap_or(Value::Null);
                        item["encrypted_content"] = saved
                            .get("encrypted_content")
                            .cloned()
                            .unwrap_or(Value::Null);
                    }
                    _ => item["encrypted_content"] = signature.clone().into(),
                }
                input.push(item);
            }
            Content::ToolCall {
                id,
                name,
                arguments,
            } => input.push(json!({
                "type": "function_call", "call_id": id, "name": name, "arguments": arguments
            })),
            Content::Text(_)
            | Content::Reasoning { .. }
            | Content::File { .. }
            | Content::ToolResult { .. } => {}
        }
    }
}

#[derive(Debug)]
enum Item {
    Message { open: bool },
    Reasoning { open: bool },
    Call { id: String, arguments: bool },
}

/// Reads the stream.
#[derive(Debug, Default)]
pub(super) struct Parser {
    items: HashMap<String, Item>,
    calls: bool,
    done: bool,
}

impl Parser {
    fn finish(&mut self, response: &Value, reason: FinishReason, out: &mut Vec<ModelEvent>) {
        let usage = &response["usage"];
        let input = usage["input_tokens"].as_u64().unwrap_or(0);
        let cached = usage["input_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0);
        let output = usage["output_tokens"].as_u64().unwrap_or(0);
        let reasoning = usage["output_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .unwrap_or(0);
        out.push(ModelEvent::Usage(Usage {
            input: input.saturating_sub(cached),
            output: output.saturating_sub(reasoning),
            reasoning,
            cache_read: cached,
            cache_write: 0,
        }));
        out.push(ModelEvent::Finish(reason));
        self.done = true;
    }
}

impl Dialect for Parser {
    fn event(&mut self, event: sse::Event, out: &mut Vec<ModelEvent>) -> Result<(), StreamError> {
        if self.done {
            return Ok(());
        }
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|err| StreamError::Malformed(format!("an event is not JSON: {err}")))?;
        let kind = data["type"]
            .as_str()
            .unwrap_or(event.name.as_str())
            .to_owned();
        let item_id = data["item_id"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "response.output_item.added" => {
                let item = &data["item"];
                let id = item["id"].as_str().unwrap_or_default().to_owned();
                let state = match item["type"].as_str() {
                    Some("function_call") => {
                        let call = item["call_id"].as_str().unwrap_or(&id).to_owned();
                        out.push(ModelEvent::ToolCallStart {
                            id: call.clone(),
                            name: item["name"].as_str().unwrap_or_default().to_owned(),
                        });
                        self.calls = true;
                        Item::Call {
                            id: call,
                            arguments: false,
                        }
                    }
                    Some("reasoning") => Item::Reasoning { open: false },
                    _ => Item::Message { open: false },
                };
                self.items.insert(id, state);
            }
            "response.output_text.delta" => {
                let delta = data["delta"].as_str().unwrap_or_default().to_owned();
                let item = self
                    .items
                    .entry(item_id)
                    .or_insert(Item::Message { open: false });
                if let Item::Message { open } = item {
                    *open = true;
                }
                out.push(ModelEvent::TextDelta(delta));
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                let delta = data["delta"].as_str().unwrap_or_default().to_owned();
                let item = self
                    .items
                    .entry(item_id)
                    .or_insert(Item::Reasoning { open: false });
                if let Item::Reasoning { open } = item {
                    *open = true;
                }
                out.push(ModelEvent::ReasoningDelta(delta));
            }
            "response.function_call_arguments.delta" => {
                if let Some(Item::Call { id, arguments }) = self.items.get_mut(&item_id) {
                    let delta = data["delta"].as_str().unwrap_or_default();
                    if !delta.is_empty() {
                        *arguments = true;
                        out.push(ModelEvent::ToolCallDelta {
                            id: id.clone(),
                            arguments: delta.to_owned(),
                        });
                    }
                }
            }
            "response.output_item.done" => {
                let item = &data["item"];
                let id = item["id"].as_str().unwrap_or_default();
                match self.items.remove(id) {
                    Some(Item::Message { open: true }) => out.push(ModelEvent::TextEnd),
                    Some(Item::Reasoning { .. }) => {
                        let saved = json!({
                            "id": id,
                            "encrypted_content": item["encrypted_content"],
                        });
                        out.push(ModelEvent::ReasoningEnd {
                            signature: Some(saved.to_string()),
                        });
                    }
                    Some(Item::Call { id, arguments }) => {
                        if !arguments {
                            let all = item["arguments"].as_str().unwrap_or("{}");
                            out.push(ModelEvent::ToolCallDelta {
                                id: id.clone(),
                                arguments: all.to_owned(),
                            });
                        }
                        out.push(ModelEvent::ToolCallEnd { id });
                    }
                    Some(Item::Message { open: false }) | None => {}
                }
            }
            "response.completed" => {
                let reason = if self.calls {
                    FinishReason::ToolCalls
                } else {
                    FinishReason::Stop
                };
                self.finish(&data["response"], reason, out);
            }
            "response.incomplete" => {
                let reason = match data["response"]["incomplete_details"]["reason"].as_str() {
                    Some("max_output_tokens") => FinishReason::Length,
                    Some("content_filter") => FinishReason::ContentFilter,
                    _ => FinishReason::Other,
                };
                self.finish(&data["response"], reason, out);
            }
            "response.failed" => return Err(provider_error(&data["response"]["error"])),
            "error" => return Err(provider_error(&data)),
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<ModelEvent>) -> Result<(), StreamError> {
        if self.done {
            Ok(())
        } else {
            Err(StreamError::Malformed(
                "the stream ended before response.completed".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_text_and_calls_should_stream_in_order() {
        let mut parser = Parser::default();
        let mut out = Vec::new();
        for data in [
            json!({"type":"response.created","response":{}}),
            json!({"type":"response.output_item.added","item":{"type":"reasoning","id":"rs_1"}}),
            json!({"type":"response.reasoning_summary_text.delta","item_id":"rs_1","delta":"plan"}),
            json!({"type":"response.output_item.done","item":{"type":"reasoning","id":"rs_1","encrypted_content":"enc"}}),
            json!({"type":"response.output_item.added","item":{"type":"message","id":"msg_1"}}),
            json!({"type":"response.output_text.delta","item_id":"msg_1","delta":"hi"}),
            json!({"type":"response.output_item.done","item":{"type":"message","id":"msg_1"}}),
            json!({"type":"response.output_item.added","item":{"type":"function_call","id":"fc_1","call_id":"call_9","name":"glob","arguments":""}}),
            json!({"type":"response.function_call_arguments.delta","item_id":"fc_1","delta":"{\"p\":"}),
            json!({"type":"response.function_call_arguments.delta","item_id":"fc_1","delta":"1}"}),
            json!({"type":"response.output_item.done","item":{"type":"function_call","id":"fc_1","arguments":"{\"p\":1}"}}),
            json!({"type":"response.completed","response":{"usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":4},"output_tokens":6,"output_tokens_details":{"reasoning_tokens":2}}}}),
        ] {
            let event = sse::Event {
                name: String::new(),
                data: data.to_string(),
            };
            parser.event(event, &mut out).unwrap();
        }
        parser.end(&mut out).unwrap();
        use ModelEvent::*;
        assert_eq!(
            out,
            [
                ReasoningDelta("plan".into()),
                ReasoningEnd {
                    signature: Some(json!({"id": "rs_1", "encrypted_content": "enc"}).to_string())
                },
                TextDelta("hi".into()),
                TextEnd,
                ToolCallStart {
                    id: "call_9".into(),
                    name: "glob".into()
                },
                ToolCallDelta {
                    id: "call_9".into(),
                    arguments: "{\"p\":".into()
                },
                ToolCallDelta {
                    id: "call_9".into(),
                    arguments: "1}".into()
                },
                ToolCallEnd {
                    id: "call_9".into()
                },
                Usage(protocol::gateway::Usage {
                    input: 6,
                    output: 4,
                    reasoning: 2,
                    cache_read: 4,
                    cache_write: 0
                }),
                Finish(FinishReason::ToolCalls),
            ]
        );
    }

    #[test]
    fn failures_should_be_typed() {
        let mut parser = Parser::default();
        let failed = json!({"type":"response.failed","response":{"error":{"code":"server_error","message":"boom"}}});
        let event = sse::Event {
            name: String::new(),
            data: failed.to_string(),
        };
        assert!(matches!(
            parser.event(event, &mut Vec::new()),
            Err(StreamError::Provider {
                retryable: true,
                ..
            })
        ));
        assert!(matches!(
            Parser::default().end(&mut Vec::new()),
            Err(StreamError::Malformed(_))
        ));
    }
}
