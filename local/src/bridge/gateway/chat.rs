//! OpenAI chat completions (`POST {baseURL}/chat/completions`), the style of
//! `@ai-sdk/openai-compatible` and the many providers that use it: the request as OpenCode
//! sends it (AGENT.md §6.1) and the streamed answer read into [`ModelEvent`]s.

use protocol::gateway::{Content, FinishReason, ModelEvent, ModelRequest, Role, Usage};
use serde_json::{Map, Value, json};

use super::call::{Dialect, StreamError, provider_error};
use super::providers::Resolved;
use super::sse;

/// The request body.
pub(super) fn body(request: &ModelRequest, model: &Resolved) -> Value {
    let mut messages = Vec::new();
    if !request.system.is_empty() {
        messages.push(json!({ "role": "system", "content": request.system.join("\n") }));
    }
    for message in &request.messages {
        match message.role {
            Role::User => user(&message.content, &mut messages),
            Role::Assistant => messages.push(assistant(&message.content)),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), model.info.api_id.clone().into());
    if let Some(max_tokens) = max_output(request, model) {
        body.insert("max_tokens".into(), max_tokens.into());
    }
    if let Some(temperature) = request.options.temperature {
        body.insert("temperature".into(), json!(temperature));
    }
    if let Some(top_p) = request.options.top_p {
        body.insert("top_p".into(), json!(top_p));
    }
    if let Some(effort) = &request.options.reasoning_effort {
        body.insert("reasoning_effort".into(), effort.clone().into());
    }
    if !request.tools.is_empty() {
        body.insert("tool_choice".into(), "auto".into());
    }
    body.insert("stream".into(), true.into());
    body.insert("stream_options".into(), json!({ "include_usage": true }));
    body.insert("messages".into(), messages.into());
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({ "type": "function", "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": parse_or_object(&tool.parameters),
                }})
            })
            .collect();
        body.insert("tools".into(), tools.into());
    }
    Value::Object(body)
}

/// OpenCode's cap on output tokens taken from a model's limit.
const MAX_OUTPUT: u64 = 32_000;

/// The output limit to send: the request's, else the model's (at most [`MAX_OUTPUT`], as
/// OpenCode sends it); `None` when neither is known.
pub(super) fn max_output(request: &ModelRequest, model: &Resolved) -> Option<u64> {
    request
        .options
        .max_tokens
        .map(u64::from)
        .or((model.info.output_limit > 0).then(|| model.info.output_limit.min(MAX_OUTPUT)))
}

/// JSON text as a value; `{}` when it is not valid JSON (the provider would refuse a string).
pub(super) fn parse_or_object(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| json!({}))
}

fn user(content: &[Content], messages: &mut Vec<Value>) {
    let mut parts = Vec::new();
    for piece in content {
        match piece {
            Content::Text(text) => parts.push(json!({ "type": "text", "text": text })),
            Content::File { mime, url } if mime.starts_with("image/") => {
                parts.push(json!({ "type": "image_url", "image_url": { "url": url } }));
            }
            Content::File { mime, url } => parts.push(json!({
                "type": "file", "file": { "file_data": url, "filename": mime }
            })),
            Content::ToolResult { id, output, .. } => messages.push(json!({
                "role": "tool", "tool_call_id": id, "content": output
            })),
            Content::Reasoning { .. } | Content::ToolCall { .. } => {}
        }
    }
    let content = match parts.as_slice() {
        [] => return,
        [only] if only["type"] == "text" => only["text"].clone(),
        _ => Value::Array(parts),
    };
    messages.push(json!({ "role": "user", "content": content }));
}

fn assistant(content: &[Content]) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for piece in content {
        match piece {
            Content::Text(more) => text.push_str(more),
            Content::Reasoning { text: more, .. } => reasoning.push_str(more),
            Content::ToolCall {
                id,
                name,
                arguments,
            } => calls.push(json!({
                "id": id, "type": "function",
                "function": { "name": name, "arguments": arguments }
            })),
            Content::File { .. } | Content::ToolResult { .. } => {}
        }
    }
    let mut message = json!({ "role": "assistant", "content": text });
    if !reasoning.is_empty() {
        message["reasoning_content"] = reasoning.into();
    }
    if !calls.is_empty() {
        message["tool_calls"] = calls.into();
    }
    message
}

/// Reads the stream.
#[derive(Debug, Default)]
pub(super) struct Parser {
    text: bool,
    reasoning: bool,
    /// Calls by stream index: their ids.
    calls: Vec<String>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    done: bool,
}

impl Parser {
    fn close_blocks(&mut self, out: &mut Vec<ModelEvent>) {
        if std::mem::take(&mut self.reasoning) {
            out.push(ModelEvent::ReasoningEnd { signature: None });
        }
        if std::mem::take(&mut self.text) {
            out.push(ModelEvent::TextEnd);
        }
    }

    fn flush(&mut self, out: &mut Vec<ModelEvent>) {
        self.close_blocks(out);
        for id in std::mem::take(&mut self.calls) {
            out.push(ModelEvent::ToolCallEnd { id });
        }
        if let Some(usage) = self.usage.take() {
            out.push(ModelEvent::Usage(usage));
        }
        out.push(ModelEvent::Finish(
            self.finish.take().unwrap_or(FinishReason::Stop),
        ));
        self.done = true;
    }

    fn delta(&mut self, delta: &Value, out: &mut Vec<ModelEvent>) {
        let reasoning = delta["reasoning_content"]
            .as_str()
            .or(delta["reasoning"].as_str())
            .filter(|s| !s.is_empty());
        if let Some(reasoning) = reasoning {
            if std::mem::take(&mut self.text) {
                out.push(ModelEvent::TextEnd);
            }
            self.reasoning = true;
            out.push(ModelEvent::ReasoningDelta(reasoning.to_owned()));
        }
        if let Some(text) = delta["content"].as_str().filter(|s| !s.is_empty()) {
            if std::mem::take(&mut self.reasoning) {
                out.push(ModelEvent::ReasoningEnd { signature: None });
            }
            self.text = true;
            out.push(ModelEvent::TextDelta(text.to_owned()));
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            self.close_blocks(out);
            let id = call["id"].as_str().filter(|s| !s.is_empty());
            let index = match call["index"].as_u64() {
                Some(index) => index as usize,
                // Some servers omit the index: a new id is a new call.
                None => match id {
                    Some(id) if !self.calls.iter().any(|known| known == id) => self.calls.len(),
                    _ => self.calls.len().saturating_sub(1),
                },
            };
            if index >= self.calls.len() {
                let id = id.map_or_else(|| format!("call_{index}"), str::to_owned);
                let name = call["function"]["name"].as_str().unwrap_or_default();
                out.push(ModelEvent::ToolCallStart {
                    id: id.clone(),
                    name: name.to_owned(),
                });
                self.calls.push(id);
            }
            let arguments = call["function"]["arguments"].as_str().unwrap_or_default();
            if let (false, Some(id)) = (arguments.is_empty(), self.calls.get(index)) {
                out.push(ModelEvent::ToolCallDelta {
                    id: id.clone(),
                    arguments: arguments.to_owned(),
                });
            }
        }
    }
}

fn usage(usage: &Value) -> Usage {
    let prompt = usage["prompt_tokens"].as_u64().unwrap_or(0);
    let completion = usage["completion_tokens"].as_u64().unwrap_or(0);
    let cached = usage["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0);
    let reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
        .as_u64()
        .unwrap_or(0);
    Usage {
        input: prompt.saturating_sub(cached),
        output: completion.saturating_sub(reasoning),
        reasoning,
        cache_read: cached,
        cache_write: 0,
    }
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "content_filter" => FinishReason::ContentFilter,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        _ => FinishReason::Other,
    }
}

impl Dialect for Parser {
    fn event(&mut self, event: sse::Event, out: &mut Vec<ModelEvent>) -> Result<(), StreamError> {
        if self.done {
            return Ok(());
        }
        if event.data.trim() == "[DONE]" {
            self.flush(out);
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(&event.data)
            .map_err(|err| StreamError::Malformed(format!("a chunk is not JSON: {err}")))?;
        if !chunk["error"].is_null() {
            return Err(provider_error(&chunk["error"]));
        }
        if let Some(choice) = chunk["choices"].get(0) {
            self.delta(&choice["delta"], out);
            if let Some(reason) = choice["finish_reason"].as_str() {
                self.finish = Some(finish_reason(reason));
            }
        }
        if chunk["usage"].is_object() {
            self.usage = Some(usage(&chunk["usage"]));
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<ModelEvent>) -> Result<(), StreamError> {
        if self.done {
            return Ok(());
        }
        if self.finish.is_none() {
            return Err(StreamError::Malformed(
                "the stream ended before the model finished".into(),
            ));
        }
        self.flush(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::gateway::{Message, ModelOptions, Tool};

    fn run(lines: &[&str]) -> (Vec<ModelEvent>, Result<(), StreamError>) {
        let mut parser = Parser::default();
        let mut out = Vec::new();
        for data in lines {
            let event = sse::Event {
                name: String::new(),
                data: (*data).to_owned(),
            };
            if let Err(err) = parser.event(event, &mut out) {
                return (out, Err(err));
            }
        }
        let end = parser.end(&mut out);
        (out, end)
    }

    #[test]
    fn text_reasoning_and_streamed_tool_calls_should_arrive_in_order() {
        let (events, end) = run(&[
            r#"{"choices":[{"delta":{"role":"assistant","reasoning_content":"think"}}]}"#,
            r#"{"choices":[{"delta":{"content":"Hel"}}]}"#,
            r#"{"choices":[{"delta":{"content":"lo"}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"write","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"id":"call_2","function":{"name":"read","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}"#,
            "[DONE]",
        ]);
        end.unwrap();
        use ModelEvent::*;
        assert_eq!(
            events,
            [
                ReasoningDelta("think".into()),
                ReasoningEnd { signature: None },
                TextDelta("Hel".into()),
                TextDelta("lo".into()),
                TextEnd,
                ToolCallStart {
                    id: "call_1".into(),
                    name: "write".into()
                },
                ToolCallDelta {
                    id: "call_1".into(),
                    arguments: "{\"a\":".into()
                },
                ToolCallStart {
                    id: "call_2".into(),
                    name: "read".into()
                },
                ToolCallDelta {
                    id: "call_2".into(),
                    arguments: "{}".into()
                },
                ToolCallDelta {
                    id: "call_1".into(),
                    arguments: "1}".into()
                },
                ToolCallEnd {
                    id: "call_1".into()
                },
                ToolCallEnd {
                    id: "call_2".into()
                },
                Usage(protocol::gateway::Usage {
                    input: 6,
                    output: 3,
                    reasoning: 2,
                    cache_read: 4,
                    cache_write: 0
                }),
                Finish(FinishReason::ToolCalls),
            ]
        );
    }

    #[test]
    fn broken_streams_should_be_typed() {
        let (_, end) = run(&[r#"{"choices":[{"delta":{"content":"x"}}]}"#]);
        assert!(matches!(end, Err(StreamError::Malformed(_))));
        let (_, end) = run(&["{not json"]);
        assert!(matches!(end, Err(StreamError::Malformed(_))));
        let (_, end) = run(&[r#"{"error":{"message":"overloaded","code":529}}"#]);
        assert!(matches!(end, Err(StreamError::Provider { .. })));
    }

    #[test]
    fn the_body_should_have_opencodes_shape() {
        let request = ModelRequest {
            provider_id: "p".into(),
            model_id: "m".into(),
            system: vec!["sys".into()],
            messages: vec![
                Message {
                    role: Role::User,
                    content: vec![Content::Text("hi".into())],
                },
                Message {
                    role: Role::Assistant,
                    content: vec![Content::ToolCall {
                        id: "c1".into(),
                        name: "read".into(),
                        arguments: "{}".into(),
                    }],
                },
                Message {
                    role: Role::User,
                    content: vec![Content::ToolResult {
                        id: "c1".into(),
                        name: "read".into(),
                        output: "ok".into(),
                        is_error: false,
                    }],
                },
            ],
            tools: vec![Tool {
                name: "read".into(),
                description: "d".into(),
                parameters: r#"{"type":"object"}"#.into(),
            }],
            options: ModelOptions::default(),
        };
        let model = Resolved {
            info: protocol::gateway::ModelInfo {
                api_id: "up".into(),
                output_limit: 8000,
                ..Default::default()
            },
            style: super::super::providers::Style::Chat,
            base_url: String::new(),
            headers: Vec::new(),
            key: None,
        };
        let body = body(&request, &model);
        assert_eq!(body["model"], "up");
        assert_eq!(body["max_tokens"], 8000);
        assert_eq!(body["tool_choice"], "auto");
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": "sys"})
        );
        assert_eq!(
            body["messages"][1],
            json!({"role": "user", "content": "hi"})
        );
        assert_eq!(
            body["messages"][2]["tool_calls"][0]["function"]["name"],
            "read"
        );
        assert_eq!(
            body["messages"][3],
            json!({"role": "tool", "tool_call_id": "c1", "content": "ok"})
        );
        assert_eq!(
            body["tools"][0]["function"]["parameters"],
            json!({"type": "object"})
        );
    }
}
