//! Anthropic messages (`POST {baseURL}/messages`, `@ai-sdk/anthropic`): the request as
//! OpenCode sends it (AGENT.md §6.2: content blocks, tool results in the user's turn,
//! `cache_control` on the system prompt and the last two messages, tool-call ids limited to
//! `[a-zA-Z0-9_-]`) and the streamed events read into [`ModelEvent`]s.

use std::collections::HashMap;

use protocol::gateway::{Content, FinishReason, ModelEvent, ModelRequest, Role, Usage};
use serde_json::{Map, Value, json};

use super::call::{Dialect, StreamError, provider_error};
use super::chat::{max_output, parse_or_object};
use super::providers::Resolved;
use super::sse;

/// Output limit when neither the request nor the model names one (the API requires one).
const DEFAULT_MAX_TOKENS: u64 = 4096;

/// A tool-call id as Anthropic accepts it.
pub(super) fn tool_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Thinking budget for a reasoning effort.
fn budget(effort: &str) -> Option<u64> {
    match effort {
        "minimal" | "low" => Some(4_000),
        "medium" => Some(8_000),
        "high" => Some(16_000),
        "max" | "xhigh" => Some(31_999),
        _ => None,
    }
}

fn ephemeral() -> Value {
    json!({ "type": "ephemeral" })
}

/// The request body.
pub(super) fn body(request: &ModelRequest, model: &Resolved) -> Value {
    let mut messages: Vec<(Role, Vec<Value>)> = Vec::new();
    for message in &request.messages {
        let blocks = blocks(message.role, &message.content);
        if blocks.is_empty() {
            continue;
        }
        // Roles must alternate: tool results and a new prompt share the user's turn.
        match messages.last_mut() {
            Some((role, existing)) if *role == message.role => existing.extend(blocks),
            _ => messages.push((message.role, blocks)),
        }
    }
    let count = messages.len();
    let messages: Vec<Value> = messages
        .into_iter()
        .enumerate()
        .map(|(index, (role, mut blocks))| {
            if index + 2 >= count
                && let Some(last) = blocks.last_mut()
            {
                last["cache_control"] = ephemeral();
            }
            let role = match role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({ "role": role, "content": blocks })
        })
        .collect();
    let system: Vec<Value> = request
        .system
        .iter()
        .filter(|text| !text.is_empty())
        .enumerate()
        .map(|(index, text)| {
            let mut block = json!({ "type": "text", "text": text });
            if index < 2 {
                block["cache_control"] = ephemeral();
            }
            block
        })
        .collect();
    let mut max_tokens = max_output(request, model).unwrap_or(DEFAULT_MAX_TOKENS);
    let mut body = Map::new();
    body.insert("model".into(), model.info.api_id.clone().into());
    let thinking = request
        .options
        .reasoning_effort
        .as_deref()
        .and_then(budget)
        .filter(|_| model.info.reasoning);
    if let Some(budget) = thinking {
        max_tokens = max_tokens.max(budget + 1024);
        body.insert(
            "thinking".into(),
            json!({ "type": "enabled", "budget_tokens": budget }),
        );
    }
    body.insert("max_tokens".into(), max_tokens.into());
    // Thinking refuses a temperature other than 1.
    if let (Some(temperature), None) = (request.options.temperature, thinking) {
        body.insert("temperature".into(), json!(temperature));
    }
    if let Some(top_p) = request.options.top_p {
        body.insert("top_p".into(), json!(top_p));
    }
    if !request.tools.is_empty() {
        body.insert("tool_choice".into(), json!({ "type": "auto" }));
    }
    body.insert("stream".into(), true.into());
    if !system.is_empty() {
        body.insert("system".into(), system.into());
    }
    body.insert("messages".into(), messages.into());
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                // As OpenCode sends every tool: arguments stream as they are generated.
                json!({
                    "name": tool.name,
                    "description": tool.description,
                    "input_schema": parse_or_object(&tool.parameters),
                    "eager_input_streaming": true,
                })
            })
            .collect();
        body.insert("tools".into(), tools.into());
    }
    Value::Object(body)
}

fn blocks(role: Role, content: &[Content]) -> Vec<Value> {
    let mut blocks = Vec::new();
    for piece in content {
        match piece {
            // Empty text blocks are refused.
            Content::Text(text) if text.trim().is_empty() => {}
            Content::Text(text) => blocks.push(json!({ "type": "text", "text": text })),
            Content::Reasoning {
                text,
                signature: Some(signature),
            } if role == Role::Assistant => blocks.push(json!({
                "type": "thinking", "thinking": text, "signature": signature
            })),
            // Unsigned reasoning (another provider's) cannot be sent back.
            Content::Reasoning { .. } => {}
            Content::File { mime, url } => {
                let data = url.split_once(";base64,").map_or("", |(_, data)| data);
                let kind = if mime == "application/pdf" {
                    "document"
                } else {
                    "image"
                };
                blocks.push(json!({
                    "type": kind,
                    "source": { "type": "base64", "media_type": mime, "data": data }
                }));
            }
            Content::ToolCall {
                id,
                name,
                arguments,
            } => blocks.push(json!({
                "type": "tool_use", "id": tool_id(id), "name": name,
                "input": parse_or_object(arguments)
            })),
            Content::ToolResult {
                id,
                output,
                is_error,
                ..
            } => {
                let mut block = json!({
                    "type": "tool_result", "tool_use_id": tool_id(id), "content": output
                });
                if *is_error {
                    block["is_error"] = true.into();
                }
                blocks.push(block);
            }
        }
    }
    blocks
}

#[derive(Debug)]
enum Block {
    Text,
    Thinking { signature: String },
    Tool { id: String, arguments: bool },
    Other,
}

/// Reads the stream.
#[derive(Debug, Default)]
pub(super) struct Parser {
    blocks: HashMap<u64, Block>,
    usage: Usage,
    finish: Option<FinishReason>,
    done: bool,
}

fn stop_reason(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" | "pause_turn" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

impl Parser {
    fn usage(&mut self, usage: &Value) {
        let field = |name: &str| usage[name].as_u64();
        if let Some(input) = field("input_tokens") {
            self.usage.input = input;
        }
        if let Some(output) = field("output_tokens") {
            self.usage.output = output;
        }
        if let Some(read) = field("cache_read_input_tokens") {
            self.usage.cache_read = read;
        }
        if let Some(write) = field("cache_creation_input_tokens") {
            self.usage.cache_write = write;
        }
    }

    fn stop(&mut self, index: u64, out: &mut Vec<ModelEvent>) {
        match self.blocks.remove(&index) {
            Some(Block::Text) => out.push(ModelEvent::TextEnd),
            Some(Block::Thinking { signature }) => out.push(ModelEvent::ReasoningEnd {
                signature: Some(signature).filter(|s| !s.is_empty()),
            }),
            Some(Block::Tool { id, arguments }) => {
                if !arguments {
                    out.push(ModelEvent::ToolCallDelta {
                        id: id.clone(),
                        arguments: "{}".into(),
                    });
                }
                out.push(ModelEvent::ToolCallEnd { id });
            }
            Some(Block::Other) | None => {}
        }
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
        let index = data["index"].as_u64().unwrap_or(0);
        match kind.as_str() {
            "message_start" => self.usage(&data["message"]["usage"]),
            "content_block_start" => {
                let block = &data["content_block"];
                let started = match block["type"].as_str() {
                    Some("text") => {
                        if let Some(text) = block["text"].as_str().filter(|t| !t.is_empty()) {
                            out.push(ModelEvent::TextDelta(text.to_owned()));
                        }
                        Block::Text
                    }
                    Some("thinking") => Block::Thinking {
                        signature: String::new(),
                    },
                    Some("redacted_thinking") => {
                        // Opaque: goes back as the signature of an empty reasoning part.
                        out.push(ModelEvent::ReasoningEnd {
                            signature: block["data"].as_str().map(str::to_owned),
                        });
                        Block::Other
                    }
                    Some("tool_use") => {
                        let id = block["id"].as_str().unwrap_or_default().to_owned();
                        out.push(ModelEvent::ToolCallStart {
                            id: id.clone(),
                            name: block["name"].as_str().unwrap_or_default().to_owned(),
                        });
                        Block::Tool {
                            id,
                            arguments: false,
                        }
                    }
                    _ => Block::Other,
                };
                self.blocks.insert(index, started);
            }
            "content_block_delta" => {
                let delta = &data["delta"];
                match (self.blocks.get_mut(&index), delta["type"].as_str()) {
                    (Some(Block::Text), Some("text_delta")) => {
                        let text = delta["text"].as_str().unwrap_or_default();
                        out.push(ModelEvent::TextDelta(text.to_owned()));
                    }
                    (Some(Block::Thinking { .. }), Some("thinking_delta")) => {
                        let text = delta["thinking"].as_str().unwrap_or_default();
                        out.push(ModelEvent::ReasoningDelta(text.to_owned()));
                    }
                    (Some(Block::Thinking { signature }), Some("signature_delta")) => {
                        signature.push_str(delta["signature"].as_str().unwrap_or_default());
                    }
                    (Some(Block::Tool { id, arguments }), Some("input_json_delta")) => {
                        let piece = delta["partial_json"].as_str().unwrap_or_default();
                        if !piece.is_empty() {
                            *arguments = true;
                            out.push(ModelEvent::ToolCallDelta {
                                id: id.clone(),
                                arguments: piece.to_owned(),
                            });
                        }
                    }
                    (None, _) => {
                        return Err(StreamError::Malformed(format!(
                            "a delta for block {index}, which never started"
                        )));
                    }
                    _ => {}
                }
            }
            "content_block_stop" => self.stop(index, out),
            "message_delta" => {
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    self.finish = Some(stop_reason(reason));
                }
                self.usage(&data["usage"]);
            }
            "message_stop" => {
                let mut open: Vec<u64> = self.blocks.keys().copied().collect();
                open.sort_unstable();
                for index in open {
                    self.stop(index, out);
                }
                out.push(ModelEvent::Usage(self.usage));
                out.push(ModelEvent::Finish(
                    self.finish.take().unwrap_or(FinishReason::Stop),
                ));
                self.done = true;
            }
            "error" => return Err(provider_error(&data["error"])),
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<ModelEvent>) -> Result<(), StreamError> {
        if self.done {
            Ok(())
        } else {
            Err(StreamError::Malformed(
                "the stream ended before message_stop".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::gateway::{Message, ModelInfo, ModelOptions, Tool};

    fn run(events: &[Value]) -> (Vec<ModelEvent>, Result<(), StreamError>) {
        let mut parser = Parser::default();
        let mut out = Vec::new();
        for data in events {
            let event = sse::Event {
                name: data["type"].as_str().unwrap().to_owned(),
                data: data.to_string(),
            };
            if let Err(err) = parser.event(event, &mut out) {
                return (out, Err(err));
            }
        }
        let end = parser.end(&mut out);
        (out, end)
    }

    #[test]
    fn thinking_text_and_tool_use_should_stream_in_order() {
        let (events, end) = run(&[
            json!({"type":"message_start","message":{"usage":{"input_tokens":5,"cache_read_input_tokens":2,"cache_creation_input_tokens":1,"output_tokens":1}}}),
            json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig"}}),
            json!({"type":"content_block_stop","index":0}),
            json!({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}),
            json!({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"ok"}}),
            json!({"type":"content_block_stop","index":1}),
            json!({"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_1","name":"list","input":{}}}),
            json!({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}),
            json!({"type":"content_block_stop","index":2}),
            json!({"type":"ping"}),
            json!({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}),
            json!({"type":"message_stop"}),
        ]);
        end.unwrap();
        use ModelEvent::*;
        assert_eq!(
            events,
            [
                ReasoningDelta("hm".into()),
                ReasoningEnd {
                    signature: Some("sig".into())
                },
                TextDelta("ok".into()),
                TextEnd,
                ToolCallStart {
                    id: "toolu_1".into(),
                    name: "list".into()
                },
                ToolCallDelta {
                    id: "toolu_1".into(),
                    arguments: "{}".into()
                },
                ToolCallEnd {
                    id: "toolu_1".into()
                },
                Usage(protocol::gateway::Usage {
                    input: 5,
                    output: 9,
                    reasoning: 0,
                    cache_read: 2,
                    cache_write: 1
                }),
                Finish(FinishReason::ToolCalls),
            ]
        );
    }

    #[test]
    fn errors_and_cut_streams_should_be_typed() {
        let (_, end) = run(&[
            json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
        ]);
        assert!(matches!(
            end,
            Err(StreamError::Provider {
                retryable: true,
                ..
            })
        ));
        let (_, end) = run(&[json!({"type":"message_start","message":{"usage":{}}})]);
        assert!(matches!(end, Err(StreamError::Malformed(_))));
    }

    #[test]
    fn the_body_should_follow_anthropics_rules() {
        let request = ModelRequest {
            provider_id: "anthropic".into(),
            model_id: "c".into(),
            system: vec!["one".into(), "two".into(), "three".into()],
            messages: vec![
                Message {
                    role: Role::User,
                    content: vec![Content::Text("hi".into())],
                },
                Message {
                    role: Role::Assistant,
                    content: vec![
                        Content::Reasoning {
                            text: "unsigned".into(),
                            signature: None,
                        },
                        Content::Text(String::new()),
                        Content::ToolCall {
                            id: "call:1".into(),
                            name: "read".into(),
                            arguments: "{\"a\":1}".into(),
                        },
                    ],
                },
                Message {
                    role: Role::User,
                    content: vec![Content::ToolResult {
                        id: "call:1".into(),
                        name: "read".into(),
                        output: "no".into(),
                        is_error: true,
                    }],
                },
                Message {
                    role: Role::User,
                    content: vec![Content::Text("next".into())],
                },
            ],
            tools: vec![Tool {
                name: "read".into(),
                description: "d".into(),
                parameters: "{\"type\":\"object\"}".into(),
            }],
            options: ModelOptions::default(),
        };
        let model = Resolved {
            info: ModelInfo {
                api_id: "claude-x".into(),
                ..Default::default()
            },
            style: super::super::providers::Style::Anthropic,
            base_url: String::new(),
            headers: Vec::new(),
            key: None,
        };
        let body = body(&request, &model);
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(body["tool_choice"], json!({"type": "auto"}));
        let system = body["system"].as_array().unwrap();
        assert_eq!(system.len(), 3);
        assert!(system[1]["cache_control"].is_object() && system[2]["cache_control"].is_null());
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert_eq!(
            messages[1]["content"],
            json!([{"type": "tool_use", "id": "call_1", "name": "read", "input": {"a": 1}, "cache_control": {"type": "ephemeral"}}])
        );
        assert_eq!(messages[2]["content"][0]["tool_use_id"], "call_1");
        assert_eq!(messages[2]["content"][0]["is_error"], true);
        assert_eq!(messages[2]["content"][1]["text"], "next");
        assert!(messages[2]["content"][1]["cache_control"].is_object());
        assert!(messages[0]["content"][0]["cache_control"].is_null());
        assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
    }
}
