//! A scripted model behind an OpenAI-compatible `POST /v1/chat/completions`, so tests can drive
//! OpenCode's real agent loop (and with it the plugin's tools) without a language model.
//!
//! The script lives in the user's message: a line `CALL <tool> <json arguments>` makes the
//! model call that tool (when OpenCode offered it); after its result the next `CALL` line is
//! called, one per step, and after the last result it answers `done`, and
//! a title request gets [`TITLE`], and anything else gets a short text answer. Every request body
//! is kept for assertions.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// What the model answers to a title request (no tools, OpenCode's title question).
pub const TITLE: &str = "Scripted title";

/// The running server; it stops when the test process ends.
pub struct ScriptedModel {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl ScriptedModel {
    /// Binds 127.0.0.1 on a free port and serves on a thread of its own.
    pub fn start() -> ScriptedModel {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
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
                    let seen = seen.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request| answer(request, seen.clone()));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        ScriptedModel { addr, requests }
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

    /// The request bodies received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

async fn answer(
    request: Request<Incoming>,
    seen: Arc<Mutex<Vec<Value>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.lock().unwrap().push(body.clone());
    let reply = script(&body);
    let stream = body["stream"].as_bool().unwrap_or(false);
    let response = if stream {
        let mut text = String::new();
        for chunk in reply.chunks() {
            text.push_str(&format!("data: {chunk}\n\n"));
        }
        text.push_str("data: [DONE]\n\n");
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Full::new(Bytes::from(text)))
    } else {
        Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(reply.whole().to_string())))
    };
    Ok(response.unwrap())
}

enum Reply {
    Text(String),
    Call { tool: String, arguments: String },
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

fn script(body: &Value) -> Reply {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let Some(last) = messages.last() else {
        return Reply::Text("nothing to answer".into());
    };
    let text = text_of(last);
    if last["role"] != "tool"
        && body["tools"].is_null()
        && text.starts_with("Generate a title for this conversation")
    {
        return Reply::Text(TITLE.into());
    }
    // The user's message holds the script: its n-th `CALL` line is the call after n results.
    let asked = messages.iter().rposition(|m| m["role"] == "user");
    let script = asked.map(|at| text_of(&messages[at])).unwrap_or_default();
    let results = asked.map_or(0, |at| {
        messages[at..]
            .iter()
            .filter(|m| m["role"] == "tool")
            .count()
    });
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
        return Reply::Text(answer.into());
    };
    let (tool, arguments) = call.split_once(' ').unwrap_or((call, "{}"));
    let offered = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| t["function"]["name"] == tool);
    if !offered {
        // A request without tools (such as the title) still gets an answer.
        return Reply::Text(format!("{tool} is not offered"));
    }
    Reply::Call {
        tool: tool.to_owned(),
        arguments: arguments.trim().to_owned(),
    }
}

/// A fresh tool call id per call, as a model would give.
fn next_call_id() -> String {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    format!("call_scripted_{}", CALLS.fetch_add(1, Ordering::Relaxed))
}

impl Reply {
    fn chunks(&self) -> Vec<Value> {
        let chunk = |delta: Value, finish: Value| {
            json!({
                "id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 0,
                "model": "m", "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
            })
        };
        match self {
            Reply::Text(text) => vec![
                chunk(json!({ "role": "assistant", "content": text }), Value::Null),
                chunk(json!({}), json!("stop")),
            ],
            Reply::Call { tool, arguments } => vec![
                chunk(
                    json!({ "role": "assistant", "tool_calls": [{
                        "index": 0, "id": next_call_id(), "type": "function",
                        "function": { "name": tool, "arguments": arguments },
                    }]}),
                    Value::Null,
                ),
                chunk(json!({}), json!("tool_calls")),
            ],
        }
    }

    fn whole(&self) -> Value {
        let (message, finish) = match self {
            Reply::Text(text) => (json!({ "role": "assistant", "content": text }), "stop"),
            Reply::Call { tool, arguments } => (
                json!({ "role": "assistant", "content": null, "tool_calls": [{
                    "id": next_call_id(), "type": "function",
                    "function": { "name": tool, "arguments": arguments },
                }]}),
                "tool_calls",
            ),
        };
        json!({
            "id": "chatcmpl-scripted", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{ "index": 0, "message": message, "finish_reason": finish }],
            "usage": { "prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2 },
        })
    }
}
