//! A fake model provider on 127.0.0.1, scripted per test: OpenAI chat completions
//! (`POST …/chat/completions`) and Anthropic messages (`POST …/messages`) answered as
//! server-sent events, optionally over TLS with a test CA. It also plays the local OpenCode's
//! `GET /config/providers`, so a bridge started with `--opencode-url` resolves providers from
//! it exactly as from OpenCode.
//!
//! Each request's `model` picks its script; scripts are used in order and the last one
//! repeats. Every request is recorded (path, headers, JSON body), and so is when the client
//! went away in the middle of a stream.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// One step of a scripted answer.
#[derive(Debug, Clone)]
pub enum Step {
    /// Raw SSE text, sent as one write.
    Raw(String),
    /// Waits.
    Pause(Duration),
    /// Sends `: ping` comments every 10 ms until the client goes away.
    Hang,
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Script {
    /// HTTP status.
    pub status: u16,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// Streamed body steps (for 200) or one JSON body (for errors).
    pub steps: Vec<Step>,
}

impl Script {
    /// A 200 event stream of `events` (`(event name, JSON data)`; an empty name sends no
    /// `event:` line), then `data: [DONE]` when `done`.
    pub fn sse(events: &[(&str, Value)], done: bool) -> Script {
        let mut steps: Vec<Step> = events
            .iter()
            .map(|(name, data)| {
                let head = if name.is_empty() {
                    String::new()
                } else {
                    format!("event: {name}\n")
                };
                Step::Raw(format!("{head}data: {data}\n\n"))
            })
            .collect();
        if done {
            steps.push(Step::Raw("data: [DONE]\n\n".into()));
        }
        Script {
            status: 200,
            headers: Vec::new(),
            steps,
        }
    }

    /// An error answer with a JSON body.
    pub fn error(status: u16, body: Value) -> Script {
        Script {
            status,
            headers: Vec::new(),
            steps: vec![Step::Raw(body.to_string())],
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Script {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// OpenAI chat completion chunks: `text` in pieces, then tool calls with their arguments in
/// pieces, then the finish reason and usage.
pub fn chat_stream(text: &[&str], calls: &[(&str, &str, &[&str])]) -> Vec<(&'static str, Value)> {
    let mut events = Vec::new();
    for piece in text {
        events.push((
            "",
            json!({"choices": [{"index": 0, "delta": {"content": piece}}]}),
        ));
    }
    for (index, (id, name, arguments)) in calls.iter().enumerate() {
        events.push(("", json!({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}
        ]}}]})));
        for piece in *arguments {
            events.push((
                "",
                json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                    {"index": index, "function": {"arguments": piece}}
                ]}}]}),
            ));
        }
    }
    let reason = if calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    events.push((
        "",
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}),
    ));
    events.push(("", json!({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}})));
    events
}

/// Anthropic message events: `text` in pieces, then tool uses with their input in pieces.
pub fn anthropic_stream(
    text: &[&str],
    calls: &[(&str, &str, &[&str])],
) -> Vec<(&'static str, Value)> {
    let mut events = vec![(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
            "content": [], "model": "claude-fake", "usage": {"input_tokens": 12, "output_tokens": 1,
            "cache_read_input_tokens": 3, "cache_creation_input_tokens": 2}}}),
    )];
    let mut index = 0;
    if !text.is_empty() {
        events.push(("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})));
        for piece in text {
            events.push(("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}})));
        }
        events.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    for (id, name, input) in calls {
        events.push(("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})));
        for piece in *input {
            events.push(("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece}})));
        }
        events.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    let reason = if calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    events.push(("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": reason}, "usage": {"output_tokens": 7}})));
    events.push(("message_stop", json!({"type": "message_stop"})));
    events
}

/// A request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Path.
    pub path: String,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// JSON body (`null` when not JSON).
    pub body: Value,
}

impl Seen {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    scripts: Mutex<HashMap<String, VecDeque<Script>>>,
    /// Answers to `GET path`: content type and body.
    pages: Mutex<HashMap<String, (String, Bytes)>>,
    seen: Mutex<Vec<Seen>>,
    /// When clients went away in the middle of a stream.
    aborted: Mutex<Vec<Instant>>,
    open: AtomicUsize,
    /// Stream steps written so far (all streams).
    sent: AtomicUsize,
}

/// The running fake; it serves until the test process ends.
pub struct FakeModel {
    addr: SocketAddr,
    tls: Option<PathBuf>,
    state: Arc<State>,
    _dir: Option<tempfile::TempDir>,
}

impl FakeModel {
    /// Serves plain HTTP on 127.0.0.1.
    pub fn start() -> FakeModel {
        Self::serve(None)
    }

    /// Serves HTTPS on 127.0.0.1 with a certificate from a fresh test CA; [`FakeModel::ca_file`]
    /// is that CA as PEM (for `SSL_CERT_FILE`).
    pub fn start_tls() -> FakeModel {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "opencode-remote test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let config = tokio_rustls::rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(
                    leaf_key.serialize_der().into(),
                ),
            )
            .unwrap();
        let mut fake = Self::serve(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))));
        fake.tls = Some(ca_file);
        fake._dir = Some(dir);
        fake
    }

    fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> FakeModel {
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
                    stream.set_nodelay(true).unwrap();
                    let state = shared.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request| answer(request, state.clone()));
                        let builder = hyper::server::conn::http1::Builder::new();
                        match tls {
                            Some(tls) => {
                                let Ok(stream) = tls.accept(stream).await else {
                                    return;
                                };
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                            None => {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    });
                }
            });
        });
        FakeModel {
            addr,
            tls: None,
            state,
            _dir: None,
        }
    }

    /// `http(s)://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.addr.port())
    }

    /// The test CA (TLS fakes only).
    pub fn ca_file(&self) -> Option<&PathBuf> {
        self.tls.as_ref()
    }

    /// What `GET /config/providers` answers.
    pub fn set_providers(&self, providers: Value) {
        self.set_json("/config/providers", providers);
    }

    /// What `GET path` answers, as JSON (the local OpenCode's `/config`, `/agent`…).
    pub fn set_json(&self, path: &str, value: Value) {
        self.set_page(path, "application/json", value.to_string());
    }

    /// What `GET path` answers.
    pub fn set_page(&self, path: &str, content_type: &str, body: impl Into<Bytes>) {
        self.state
            .pages
            .lock()
            .unwrap()
            .insert(path.to_owned(), (content_type.to_owned(), body.into()));
    }

    /// Scripts for requests naming `model`, used in order (the last repeats).
    pub fn script(&self, model: &str, scripts: Vec<Script>) {
        self.state
            .scripts
            .lock()
            .unwrap()
            .insert(model.to_owned(), scripts.into());
    }

    /// The model requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// When clients went away in the middle of a stream.
    pub fn aborted(&self) -> Vec<Instant> {
        self.state.aborted.lock().unwrap().clone()
    }

    /// Stream steps written so far, all streams together.
    pub fn sent(&self) -> usize {
        self.state.sent.load(Ordering::SeqCst)
    }

    /// Streams being answered now.
    pub fn open(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

async fn answer(
    request: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_owned();
    if request.method() == hyper::Method::GET {
        let page = state.pages.lock().unwrap().get(&path).cloned();
        let Some((content_type, body)) = page else {
            return Ok(full(404, "{}"));
        };
        let mut response = full(200, body);
        response
            .headers_mut()
            .insert("content-type", content_type.parse().unwrap());
        return Ok(response);
    }
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    state.seen.lock().unwrap().push(Seen {
        path,
        headers,
        body,
    });
    let script = {
        let mut scripts = state.scripts.lock().unwrap();
        match scripts.get_mut(&model) {
            Some(queue) if queue.len() > 1 => queue.pop_front(),
            Some(queue) => queue.front().cloned(),
            None => None,
        }
    };
    let Some(script) = script else {
        return Ok(full(
            404,
            json!({"error": {"message": format!("model `{model}` not found")}}).to_string(),
        ));
    };
    if script.status != 200 {
        let text = match script.steps.first() {
            Some(Step::Raw(text)) => text.clone(),
            _ => String::new(),
        };
        let mut response = full(script.status, text);
        for (name, value) in &script.headers {
            response.headers_mut().insert(
                hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        return Ok(response);
    }
    let (tx, mut rx) = mpsc::channel::<Bytes>(4);
    state.open.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(async move {
        let mut finished = true;
        'steps: for step in script.steps {
            match step {
                Step::Raw(text) => {
                    if tx.send(Bytes::from(text)).await.is_err() {
                        finished = false;
                        break;
                    }
                    state.sent.fetch_add(1, Ordering::SeqCst);
                }
                Step::Pause(pause) => tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = tx.closed() => { finished = false; break 'steps; }
                },
                Step::Hang => loop {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(10)) => {}
                        () = tx.closed() => { finished = false; break 'steps; }
                    }
                    if tx.send(Bytes::from_static(b": ping\n\n")).await.is_err() {
                        finished = false;
                        break 'steps;
                    }
                },
            }
        }
        if !finished {
            state.aborted.lock().unwrap().push(Instant::now());
        }
        state.open.fetch_sub(1, Ordering::SeqCst);
    });
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|item| item.map(|bytes| Ok::<_, Infallible>(Frame::data(bytes))))
    });
    let mut response = Response::new(StreamBody::new(stream).boxed());
    response
        .headers_mut()
        .insert("content-type", "text/event-stream".parse().unwrap());
    Ok(response)
}
