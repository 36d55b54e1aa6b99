//! A scripted model on 127.0.0.1 speaking OpenAI chat completions (`POST …/chat/completions`)
//! and Anthropic messages (`POST …/messages`), so tests can drive OpenCode's real agent loop
//! (and with it the plugin's tools) without a language model.
//!
//! The script lives in the user's message, one directive per line:
//! - `CALL <tool> <json arguments>`: the model calls that tool (when OpenCode offered it);
//!   after its result the next `CALL` line is called, one per step, and after the last result
//!   it answers `done`;
//! - `REPEAT <n>`: each `CALL` is made `n` times at once, in one step;
//! - `STREAM <pieces> <ms>`: the final text answer streams as that many pieces, `ms` apart;
//! - `FAIL <status>`: every answer to this prompt is that HTTP error, in the provider's shape;
//! - `FAIL-ONCE <status> <retry-after-ms>`: the first answer is that error with a
//!   `retry-after-ms` header, later ones are normal.
//!
//! A title request gets [`TITLE`], and anything else gets a short text answer. Every request
//! body is kept for assertions, and so are the keys the requests carried.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// What the model answers to a title request (no tools, OpenCode's title question).
pub const TITLE: &str = "Scripted title";

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Value>>,
    /// `authorization` / `x-api-key` of every request.
    keys: Mutex<Vec<String>>,
    /// Scripts whose `FAIL-ONCE` was answered already.
    failed: Mutex<HashSet<String>>,
    /// Streams the client left before their end.
    cancelled: AtomicUsize,
}

/// The running server; it stops when the test process ends.
pub struct ScriptedModel {
    addr: SocketAddr,
    state: Arc<State>,
}

impl ScriptedModel {
    /// Binds 127.0.0.1 on a free port and serves on a thread of its own.
    pub fn start() -> ScriptedModel {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request| answer(request, shared.clone()));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        ScriptedModel { addr, state }
    }

    /// OpenCode config keys (`provider`, `model`, `small_model`) that make this the only model.
    pub fn opencode_config(&self) -> Value {
        json!({
            "provider": {
                "scripted": {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "scripted",
                    "options": { "baseURL": format!("http://{}/v1", self.addr), "apiKey": "none" },
                    "models": { "m": { "name": "scripted model", "tool_call": true } },
                }
            },
            "model": "scripted/m",
            "small_model": "scripted/m",
        })
    }

    /// An OpenCode provider entry that reaches this model as Anthropic's messages API
    /// (`@ai-sdk/anthropic`) with `key`, offering `model`.
    pub fn anthropic_provider(&self, key: &str, model: &str) -> Value {
        json!({
            "npm": "@ai-sdk/anthropic",
            "name": "scripted anthropic",
            "options": { "baseURL": format!("http://{}/v1", self.addr), "apiKey": key },
            "models": { model: { "name": model, "tool_call": true } },
        })
    }

    /// The request bodies received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The keys requests carried so far (`authorization` or `x-api-key` values).
    pub fn keys(&self) -> Vec<String> {
        self.state.keys.lock().unwrap().clone()
    }

    /// How many streams the client left before their end.
    pub fn cancelled(&self) -> usize {
        self.state.cancelled.load(Ordering::SeqCst)
    }
}

/// The two wire formats.
#[derive(Clone, Copy, PartialEq)]
enum Dialect {
    Chat,
    Anthropic,
}

async fn answer(
    request: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let dialect = if request.uri().path().ends_with("/messages") {
        Dialect::Anthropic
    } else {
        Dialect::Chat
    };
    for name in ["authorization", "x-api-key"] {
        if let Some(value) = request.headers().get(name).and_then(|v| v.to_str().ok()) {
            state.keys.lock().unwrap().push(value.to_owned());
        }
    }
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.requests.lock().unwrap().push(body.clone());
    let chat = match dialect {
        Dialect::Chat => body.clone(),
        Dialect::Anthropic => chat_shape(&body),
    };
    let plan = script(&chat, &state);
    if let Some((status, retry_after)) = plan.fail {
        let mut response = Response::builder()
            .status(status)
            .header("content-type", "application/json");
        if let Some(ms) = retry_after {
            response = response.header("retry-after-ms", ms.to_string());
        }
        let body = error_body(dialect, status);
        return Ok(response
            .body(Full::new(Bytes::from(body.to_string())).boxed())
            .unwrap());
    }
    if !body["stream"].as_bool().unwrap_or(false) {
        let whole = match dialect {
            Dialect::Chat => plan.reply.whole(),
            Dialect::Anthropic => plan.reply.anthropic_whole(),
        };
        return Ok(Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(whole.to_string())).boxed())
            .unwrap());
    }
    let events = match dialect {
        Dialect::Chat => plan.reply.chunks(&plan.pieces),
        Dialect::Anthropic => plan.reply.anthropic_events(&plan.pieces),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let count = events.len();
        for (index, event) in events.into_iter().enumerate() {
            if tx.send(event).await.is_err() {
                state.cancelled.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if index + 1 < count && !plan.pace.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(plan.pace) => {}
                    () = tx.closed() => {
                        state.cancelled.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|item| item.map(|bytes| Ok::<_, Infallible>(Frame::data(bytes))))
    });
    Ok(Response::builder()
        .header("content-type", "text/event-stream")
        .body(StreamBody::new(stream).boxed())
        .unwrap())
}

/// A provider's error body for `status`.
fn error_body(dialect: Dialect, status: u16) -> Value {
    let (kind, message) = match status {
        401 => ("authentication_error", "Incorrect API key provided (fake)"),
        429 => ("rate_limit_error", "Rate limit reached (fake)"),
        400 => (
            "invalid_request_error",
            "This model's maximum context length is 8192 tokens (fake)",
        ),
        _ => ("api_error", "The server had an error (fake)"),
    };
    match dialect {
        Dialect::Chat => json!({ "error": { "message": message, "type": kind, "code": null } }),
        Dialect::Anthropic => {
            json!({ "type": "error", "error": { "type": kind, "message": message } })
        }
    }
}

/// An Anthropic request in the chat shape [`script`] reads: tool results become `tool`
/// messages, text blocks one message of text parts, tools `{function: {name}}`.
fn chat_shape(body: &Value) -> Value {
    let mut messages = Vec::new();
    for message in body["messages"].as_array().into_iter().flatten() {
        match &message["content"] {
            Value::String(text) => {
                messages.push(json!({ "role": message["role"], "content": text }));
            }
            Value::Array(blocks) => {
                for block in blocks.iter().filter(|b| b["type"] == "tool_result") {
                    messages.push(json!({ "role": "tool", "content": block["content"] }));
                }
                let text: Vec<Value> = blocks
                    .iter()
                    .filter(|b| b["type"] == "text")
                    .map(|b| json!({ "text": b["text"] }))
                    .collect();
                if !text.is_empty() || message["role"] == "assistant" {
                    messages.push(json!({ "role": message["role"], "content": text }));
                }
            }
            _ => {}
        }
    }
    let tools = body["tools"].as_array().map(|tools| {
        tools
            .iter()
            .map(|t| json!({ "function": { "name": t["name"] } }))
            .collect::<Vec<_>>()
    });
    json!({ "messages": messages, "tools": tools })
}

enum Reply {
    Text(String),
    Call {
        tool: String,
        arguments: String,
        times: usize,
    },
}

/// What to answer and how.
struct Plan {
    reply: Reply,
    /// Text pieces when streamed in several (`STREAM`).
    pieces: Vec<String>,
    /// Pause between streamed events.
    pace: Duration,
    /// An error status instead, with a `retry-after-ms`.
    fail: Option<(u16, Option<u64>)>,
}

fn text_of(message: &Value) -> String {
    match &message["content"] {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The last text of a message.
fn last_text_of(message: &Value) -> String {
    match &message["content"] {
        Value::Array(parts) => parts
            .iter()
            .rev()
            .find_map(|part| part["text"].as_str())
            .unwrap_or_default()
            .to_owned(),
        _ => text_of(message),
    }
}

/// The words of the directive `name` in `script`, when present.
fn directive<'a>(script: &'a str, name: &str) -> Option<Vec<&'a str>> {
    // The last one counts: a prompt after a failed one is sent together with it.
    script
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(name)).then(|| words.collect())
        })
        .next_back()
}

fn script(body: &Value, state: &State) -> Plan {
    let plan = |reply| Plan {
        reply,
        pieces: Vec::new(),
        pace: Duration::ZERO,
        fail: None,
    };
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let Some(last) = messages.last() else {
        return plan(Reply::Text("nothing to answer".into()));
    };
    let text = text_of(last);
    if last["role"] != "tool"
        && body["tools"].is_null()
        && text.starts_with("Generate a title for this conversation")
    {
        return plan(Reply::Text(TITLE.into()));
    }
    // The user's message holds the script: its n-th `CALL` line is the call after n results.
    let asked = messages.iter().rposition(|m| m["role"] == "user");
    // Two prompts in a row reach the model as one turn: the last text is the newest.
    let script = asked
        .map(|at| last_text_of(&messages[at]))
        .unwrap_or_default();
    let number = |word: Option<&&str>| word.and_then(|w| w.parse::<u64>().ok());
    if let Some(words) = directive(&script, "FAIL") {
        let mut plan = plan(Reply::Text(String::new()));
        plan.fail = Some((number(words.first()).unwrap_or(500) as u16, None));
        return plan;
    }
    if let Some(words) = directive(&script, "FAIL-ONCE")
        && state.failed.lock().unwrap().insert(script.clone())
    {
        let mut plan = plan(Reply::Text(String::new()));
        plan.fail = Some((
            number(words.first()).unwrap_or(500) as u16,
            number(words.get(1)),
        ));
        return plan;
    }
    let times = directive(&script, "REPEAT")
        .and_then(|words| number(words.first()))
        .map_or(1, |n| n.max(1) as usize);
    let results = asked.map_or(0, |at| {
        messages[at..]
            .iter()
            .filter(|m| m["role"] == "tool")
            .count()
    }) / times;
    let call = script
        .lines()
        .filter_map(|line| line.trim().strip_prefix("CALL "))
        .nth(results);
    let Some(call) = call else {
        let answer = if results > 0 {
            "done"
        } else {
            "scripted answer"
        };
        let mut plan = plan(Reply::Text(answer.into()));
        if let Some(words) = directive(&script, "STREAM") {
            let count = number(words.first()).unwrap_or(1).max(1);
            plan.pieces = (0..count).map(|n| format!("w{n} ")).collect();
            plan.pace = Duration::from_millis(number(words.get(1)).unwrap_or(0));
        }
        return plan;
    };
    let (tool, arguments) = call.split_once(' ').unwrap_or((call, "{}"));
    let offered = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| t["function"]["name"] == tool);
    if !offered {
        // A request without tools (such as the title) still gets an answer.
        return plan(Reply::Text(format!("{tool} is not offered")));
    }
    plan(Reply::Call {
        tool: tool.to_owned(),
        arguments: arguments.trim().to_owned(),
        times,
    })
}

/// A fresh tool call id per call, as a model would give.
fn next_call_id() -> String {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    format!("call_scripted_{}", CALLS.fetch_add(1, Ordering::Relaxed))
}

fn sse(name: Option<&str>, data: &Value) -> Bytes {
    match name {
        Some(name) => Bytes::from(format!("event: {name}\ndata: {data}\n\n")),
        None => Bytes::from(format!("data: {data}\n\n")),
    }
}

impl Reply {
    /// The text as streamed: `pieces` when given, else whole.
    fn text_pieces(text: &str, pieces: &[String]) -> Vec<String> {
        if pieces.is_empty() {
            vec![text.to_owned()]
        } else {
            let mut all = pieces.to_vec();
            all.push(text.to_owned());
            all
        }
    }

    fn chunks(&self, pieces: &[String]) -> Vec<Bytes> {
        let chunk = |delta: Value, finish: Value| {
            sse(
                None,
                &json!({
                    "id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 0,
                    "model": "m", "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
                }),
            )
        };
        let mut events = match self {
            Reply::Text(text) => {
                let mut events: Vec<Bytes> = Self::text_pieces(text, pieces)
                    .iter()
                    .map(|piece| {
                        chunk(
                            json!({ "role": "assistant", "content": piece }),
                            Value::Null,
                        )
                    })
                    .collect();
                events.push(chunk(json!({}), json!("stop")));
                events
            }
            Reply::Call {
                tool,
                arguments,
                times,
            } => {
                let mut events: Vec<Bytes> = (0..*times)
                    .map(|index| {
                        chunk(
                            json!({ "role": "assistant", "tool_calls": [{
                                "index": index, "id": next_call_id(), "type": "function",
                                "function": { "name": tool, "arguments": arguments },
                            }]}),
                            Value::Null,
                        )
                    })
                    .collect();
                events.push(chunk(json!({}), json!("tool_calls")));
                events
            }
        };
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        events
    }

    fn whole(&self) -> Value {
        let (message, finish) = match self {
            Reply::Text(text) => (json!({ "role": "assistant", "content": text }), "stop"),
            Reply::Call {
                tool,
                arguments,
                times,
            } => {
                let calls: Vec<Value> = (0..*times)
                    .map(|_| {
                        json!({ "id": next_call_id(), "type": "function",
                                "function": { "name": tool, "arguments": arguments } })
                    })
                    .collect();
                (
                    json!({ "role": "assistant", "content": null, "tool_calls": calls }),
                    "tool_calls",
                )
            }
        };
        json!({
            "id": "chatcmpl-scripted", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{ "index": 0, "message": message, "finish_reason": finish }],
            "usage": { "prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2 },
        })
    }

    fn anthropic_events(&self, pieces: &[String]) -> Vec<Bytes> {
        let mut events = vec![sse(
            Some("message_start"),
            &json!({ "type": "message_start", "message": {
                "id": "msg_scripted", "type": "message", "role": "assistant", "content": [],
                "model": "claude-scripted", "stop_reason": null,
                "usage": { "input_tokens": 10, "output_tokens": 1 },
            }}),
        )];
        let block_stop = |index: usize| {
            sse(
                Some("content_block_stop"),
                &json!({ "type": "content_block_stop", "index": index }),
            )
        };
        let stop = match self {
            Reply::Text(text) => {
                events.push(sse(
                    Some("content_block_start"),
                    &json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
                ));
                for piece in Self::text_pieces(text, pieces) {
                    events.push(sse(
                        Some("content_block_delta"),
                        &json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": piece } }),
                    ));
                }
                events.push(block_stop(0));
                "end_turn"
            }
            Reply::Call {
                tool,
                arguments,
                times,
            } => {
                for index in 0..*times {
                    let id = next_call_id().replace("call_", "toolu_");
                    events.push(sse(
                        Some("content_block_start"),
                        &json!({ "type": "content_block_start", "index": index, "content_block": { "type": "tool_use", "id": id, "name": tool, "input": {} } }),
                    ));
                    events.push(sse(
                        Some("content_block_delta"),
                        &json!({ "type": "content_block_delta", "index": index, "delta": { "type": "input_json_delta", "partial_json": arguments } }),
                    ));
                    events.push(block_stop(index));
                }
                "tool_use"
            }
        };
        events.push(sse(
            Some("message_delta"),
            &json!({ "type": "message_delta", "delta": { "stop_reason": stop }, "usage": { "output_tokens": 5 } }),
        ));
        events.push(sse(
            Some("message_stop"),
            &json!({ "type": "message_stop" }),
        ));
        events
    }

    fn anthropic_whole(&self) -> Value {
        let (content, stop) = match self {
            Reply::Text(text) => (json!([{ "type": "text", "text": text }]), "end_turn"),
            Reply::Call {
                tool,
                arguments,
                times,
            } => {
                let input = serde_json::from_str::<Value>(arguments).unwrap_or(json!({}));
                let calls: Vec<Value> = (0..*times)
                    .map(|_| {
                        json!({ "type": "tool_use", "id": next_call_id().replace("call_", "toolu_"),
                                "name": tool, "input": input })
                    })
                    .collect();
                (Value::Array(calls), "tool_use")
            }
        };
        json!({
            "id": "msg_scripted", "type": "message", "role": "assistant", "model": "claude-scripted",
            "content": content, "stop_reason": stop, "stop_sequence": null,
            "usage": { "input_tokens": 10, "output_tokens": 5 },
        })
    }
}
