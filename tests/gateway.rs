//! The model gateway end to end: a request made on the host (through the stub's diagnostic
//! route) travels to the bridge over the real sshd, the bridge calls a fake provider on
//! 127.0.0.1 with the key it resolved from a fake local OpenCode, and the normalised events
//! come back; the key never reaches the host.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use integration_tests::bins;
use integration_tests::bridge::BridgeProcess;
use integration_tests::fake_model::{FakeModel, Script, Step, anthropic_stream, chat_stream};
use integration_tests::require_sshd;
use integration_tests::sshd::Sshd;
use protocol::gateway::{
    Content, FailureKind, FinishReason, Message, ModelEvent, ModelOptions, ModelRequest, Reply,
    Request, Role, Tool,
};
use serde_json::{Value, json};

const KEY: &str = "sk-gateway-test-9f3b1c7e";
const ANTHROPIC_KEY: &str = "sk-ant-gateway-test-5d2a8e";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn model(api_id: &str, npm: &str) -> Value {
    json!({"id": api_id, "name": api_id, "api": {"id": api_id, "url": "", "npm": npm},
        "limit": {"context": 100000, "output": 8000},
        "capabilities": {"temperature": false, "reasoning": false, "toolcall": true, "attachment": false},
        "cost": {"input": 1, "output": 2, "cache": {"read": 0.5, "write": 0}}})
}

/// What the fake local OpenCode lists: `fake` (chat completions) at `chat`, `anth`
/// (Anthropic messages) at `anthropic`, one provider with an unsupported style, one whose
/// server is down.
fn providers(chat: &str, anthropic: &str) -> Value {
    let chat_models: serde_json::Map<String, Value> = [
        "fake-upstream-id",
        "slow",
        "bad-key",
        "missing",
        "too-long",
        "busy",
        "garbled",
    ]
    .iter()
    .map(|id| (id.to_string(), model(id, "@ai-sdk/openai-compatible")))
    .collect();
    json!({
        "providers": [
            {"id": "fake", "name": "Fake", "source": "config", "key": KEY,
             "options": {"baseURL": format!("{chat}/v1"), "headers": {"X-Provider-Config-Header": "from-config"}},
             "models": chat_models},
            {"id": "anth", "name": "Anth", "source": "env", "key": ANTHROPIC_KEY,
             "options": {"baseURL": format!("{anthropic}/v1")},
             "models": {"claude-fake": model("claude-fake", "@ai-sdk/anthropic")}},
            {"id": "goog", "name": "Goog", "key": "k", "options": {},
             "models": {"gem": model("gem", "@ai-sdk/google")}},
            {"id": "down", "name": "Down", "key": "k", "options": {"baseURL": "http://127.0.0.1:1/v1"},
             "models": {"m": model("m", "@ai-sdk/openai-compatible")}},
        ],
        "default": {"fake": "fake-upstream-id"}
    })
}

fn start_bridge(sshd: &Sshd, local: &FakeModel, ca: Option<&std::path::Path>) -> BridgeProcess {
    start_bridge_with(sshd, local, ca, &[])
}

/// [`start_bridge`] with `env` set for the bridge (proxy settings; the test's own are removed).
fn start_bridge_with(
    sshd: &Sshd,
    local: &FakeModel,
    ca: Option<&std::path::Path>,
    env: &[(&str, &str)],
) -> BridgeProcess {
    let mut command = bins::local(sshd);
    for name in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.arg("bridge").arg(bins::destination(sshd)).args([
        "--opencode-url",
        &local.url(),
        "--opencode-directory",
        "/tmp",
    ]);
    if let Some(ca) = ca {
        command.env("SSL_CERT_FILE", ca);
    }
    BridgeProcess::spawn(command).unwrap()
}

fn request(provider: &str, model: &str) -> ModelRequest {
    ModelRequest {
        provider_id: provider.into(),
        model_id: model.into(),
        system: vec!["You are a test.".into()],
        messages: vec![Message {
            role: Role::User,
            content: vec![Content::Text("write a.txt".into())],
        }],
        tools: vec![Tool {
            name: "write".into(),
            description: "Writes a file".into(),
            parameters: r#"{"type":"object","properties":{"path":{"type":"string"}}}"#.into(),
        }],
        options: ModelOptions {
            session_id: Some("ses_test".into()),
            ..ModelOptions::default()
        },
    }
}

/// Opens the diagnostic route for `request` on a connection of its own; waits (≤ 20 s) for
/// the bridge to attach to the gateway. The connection task comes back too, to abort it.
async fn open(
    bridge: &BridgeProcess,
    request: &Request,
) -> (Incoming, tokio::task::JoinHandle<()>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = serde_json::to_vec(request).unwrap();
    loop {
        let stream = tokio::net::TcpStream::connect(bridge.authority())
            .await
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        let post = hyper::Request::post(format!(
            "{}/x-opencode-remote/diag/gateway",
            bridge.prefix()
        ))
        .header("host", bridge.authority())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.clone())))
        .unwrap();
        let response = sender.send_request(post).await.unwrap();
        if response.status() == 200 {
            return (response.into_body(), connection);
        }
        let status = response.status();
        let text = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&text);
        // 503 while the bridge (re)connects or has not attached to the gateway yet.
        assert!(
            matches!(status.as_u16(), 502 | 503) && Instant::now() < deadline,
            "diag gateway answered {status}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The next reply on a diagnostic stream.
async fn next(body: &mut Incoming, buffer: &mut Vec<u8>) -> Option<Reply> {
    loop {
        if let Some(at) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=at).collect();
            return Some(serde_json::from_slice(&line).unwrap());
        }
        let frame = tokio::time::timeout(Duration::from_secs(30), body.frame())
            .await
            .expect("no reply within 30 s")?
            .unwrap();
        if let Some(data) = frame.data_ref() {
            buffer.extend_from_slice(data);
        }
    }
}

/// Every reply to `request`, up to `End` or `Error`.
async fn ask(bridge: &BridgeProcess, request: Request) -> Vec<Reply> {
    let (mut body, _connection) = open(bridge, &request).await;
    let mut buffer = Vec::new();
    let mut replies = Vec::new();
    while let Some(reply) = next(&mut body, &mut buffer).await {
        let last = matches!(reply, Reply::End | Reply::Error(_));
        replies.push(reply);
        if last {
            break;
        }
    }
    replies
}

/// The model events, without `Started` and `Usage` (checked separately), with consecutive
/// pieces of one stream joined (see [`joined`]).
fn events(replies: &[Reply]) -> Vec<ModelEvent> {
    joined(
        replies
            .iter()
            .filter_map(|reply| match reply {
                Reply::Model(ModelEvent::Started(_) | ModelEvent::Usage(_)) => None,
                Reply::Model(event) => Some(event.clone()),
                _ => None,
            })
            .collect(),
    )
}

/// `events` with consecutive pieces of one stream joined, as the stub joins those that arrive
/// together ([`Reply::absorb`]): how a stream is cut depends on timing, its content and order
/// do not.
fn joined(events: Vec<ModelEvent>) -> Vec<ModelEvent> {
    let mut out: Vec<Reply> = Vec::new();
    for event in events {
        let next = Reply::Model(event);
        let apart = match out.last_mut() {
            Some(last) => last.absorb(next),
            None => Some(next),
        };
        out.extend(apart);
    }
    out.into_iter()
        .map(|reply| match reply {
            Reply::Model(event) => event,
            other => unreachable!("{other:?}"),
        })
        .collect()
}

fn expected_tool_turn() -> Vec<ModelEvent> {
    use ModelEvent::*;
    vec![
        TextDelta("Hel".into()),
        TextDelta("lo ".into()),
        TextDelta("world".into()),
        TextEnd,
        ToolCallStart {
            id: "call_1".into(),
            name: "write".into(),
        },
        ToolCallDelta {
            id: "call_1".into(),
            arguments: "{\"path\":".into(),
        },
        ToolCallDelta {
            id: "call_1".into(),
            arguments: "\"a.txt\"}".into(),
        },
        ToolCallStart {
            id: "call_2".into(),
            name: "read".into(),
        },
        ToolCallDelta {
            id: "call_2".into(),
            arguments: "{}".into(),
        },
        ToolCallEnd {
            id: "call_1".into(),
        },
        ToolCallEnd {
            id: "call_2".into(),
        },
        Finish(FinishReason::ToolCalls),
    ]
}

const CALLS: [(&str, &str, &[&str]); 2] = [
    ("call_1", "write", &["{\"path\":", "\"a.txt\"}"]),
    ("call_2", "read", &["{}"]),
];

#[test]
fn chat_completions_should_stream_text_and_tool_calls_through_the_host() {
    let sshd = require_sshd!();
    let fake = FakeModel::start();
    fake.set_providers(providers(&fake.url(), &fake.url()));
    fake.script(
        "fake-upstream-id",
        vec![Script::sse(
            &chat_stream(&["Hel", "lo ", "world"], &CALLS),
            true,
        )],
    );
    fake.script(
        "slow",
        vec![Script {
            steps: vec![
                Step::Raw(format!(
                    "data: {}\n\n",
                    json!({"choices": [{"index": 0, "delta": {"content": "thinking"}}]})
                )),
                Step::Hang,
            ],
            ..Script::sse(&[], false)
        }],
    );
    let bridge = start_bridge(&sshd, &fake, None);
    runtime().block_on(async {
        let replies = ask(&bridge, Request::Model(request("fake", "fake-upstream-id"))).await;
        let Some(Reply::Model(ModelEvent::Started(info))) = replies.first() else {
            panic!("{replies:?}")
        };
        assert_eq!(
            (info.api_id.as_str(), info.output_limit),
            ("fake-upstream-id", 8000)
        );
        assert_eq!(events(&replies), joined(expected_tool_turn()));
        assert!(replies.iter().any(
            |r| matches!(r, Reply::Model(ModelEvent::Usage(u)) if u.input == 12 && u.output == 7)
        ));
        assert_eq!(replies.last(), Some(&Reply::End));

        let seen = fake.seen();
        let call = seen.last().unwrap();
        assert_eq!(call.path, "/v1/chat/completions");
        assert_eq!(
            call.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(call.header("x-provider-config-header"), Some("from-config"));
        assert_eq!(call.header("x-session-id"), Some("ses_test"));
        assert_eq!(call.body["model"], "fake-upstream-id");
        assert_eq!(call.body["stream"], true);
        assert_eq!(call.body["messages"][0]["role"], "system");
        assert_eq!(call.body["tools"][0]["function"]["name"], "write");

        // Eight at once.
        let all = futures_util::future::join_all(
            (0..8).map(|_| ask(&bridge, Request::Model(request("fake", "fake-upstream-id")))),
        )
        .await;
        for replies in &all {
            assert_eq!(events(replies), joined(expected_tool_turn()));
        }

        // An abort on the host closes the provider's stream.
        let (mut body, connection) = open(&bridge, &Request::Model(request("fake", "slow"))).await;
        let mut buffer = Vec::new();
        loop {
            match next(&mut body, &mut buffer).await {
                Some(Reply::Model(ModelEvent::TextDelta(text))) => {
                    assert!(text.starts_with("thinking"), "{text:?}");
                    break;
                }
                Some(Reply::Model(_)) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(fake.open(), 1);
        drop(body);
        connection.abort();
        let aborted_at = Instant::now();
        let deadline = aborted_at + Duration::from_secs(5);
        while fake.aborted().is_empty() {
            assert!(
                Instant::now() < deadline,
                "the provider's stream stayed open"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let took = fake.aborted()[0].saturating_duration_since(aborted_at);
        eprintln!("abort reached the provider after {took:?}");
        assert!(took < Duration::from_millis(500), "abort took {took:?}");

        // A new stub after a reconnect gets the gateway too.
        let stub = bridge.info["stub"]["pid"].as_u64().unwrap() as i32;
        let pid = rustix::process::Pid::from_raw(stub).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
        let replies = ask(&bridge, Request::Model(request("fake", "fake-upstream-id"))).await;
        assert_eq!(events(&replies), joined(expected_tool_turn()));
    });
    integration_tests::host::assert_not_on_host(&sshd, KEY);
}

#[test]
fn provider_errors_should_reach_the_host_typed() {
    let sshd = require_sshd!();
    let fake = FakeModel::start();
    fake.set_providers(providers(&fake.url(), &fake.url()));
    fake.script(
        "bad-key",
        vec![Script::error(401, json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}))],
    );
    fake.script(
        "too-long",
        vec![Script::error(400, json!({"error": {"message": "This model's maximum context length is 8192 tokens", "code": "context_length_exceeded"}}))],
    );
    fake.script(
        "busy",
        vec![
            Script::error(
                429,
                json!({"error": {"message": "Rate limit reached (fake)"}}),
            )
            .header("retry-after-ms", "300"),
            Script::sse(&chat_stream(&["ok"], &[]), true),
        ],
    );
    fake.script(
        "garbled",
        vec![Script {
            steps: vec![Step::Raw("data: {not json\n\n".into())],
            ..Script::sse(&[], false)
        }],
    );
    let bridge = start_bridge(&sshd, &fake, None);
    runtime().block_on(async {
        let failure = |replies: &[Reply]| match replies.last() {
            Some(Reply::Error(failure)) => failure.clone(),
            other => panic!("expected an error, got {other:?} after {replies:?}"),
        };
        let cases = [
            ("fake", "bad-key", FailureKind::Auth, "Incorrect API key"),
            ("fake", "missing", FailureKind::UnknownModel, "not found"),
            (
                "fake",
                "too-long",
                FailureKind::ContextOverflow,
                "maximum context length",
            ),
            ("fake", "garbled", FailureKind::Malformed, "not JSON"),
            ("down", "m", FailureKind::Network, "cannot reach"),
            ("nope", "m", FailureKind::UnknownModel, "`nope`"),
            ("goog", "gem", FailureKind::UnsupportedApi, "@ai-sdk/google"),
        ];
        for (provider, model, kind, needle) in cases {
            let replies = ask(&bridge, Request::Model(request(provider, model))).await;
            let failure = failure(&replies);
            assert_eq!(failure.kind, kind, "{provider}/{model}: {failure:?}");
            assert!(
                failure.message.contains(needle),
                "{provider}/{model}: {}",
                failure.message
            );
            assert!(!format!("{failure:?}").contains(KEY));
        }

        let started = Instant::now();
        let replies = ask(&bridge, Request::Model(request("fake", "busy"))).await;
        let retrying = replies.iter().find_map(|r| match r {
            Reply::Model(ModelEvent::Retrying {
                attempt, message, ..
            }) => Some((*attempt, message.clone())),
            _ => None,
        });
        assert_eq!(retrying, Some((1, "Rate limit reached (fake)".to_owned())));
        assert_eq!(replies.last(), Some(&Reply::End), "{replies:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "retry-after-ms was not honoured"
        );
    });
    // The bridge kept serving OpenCode.
    runtime().block_on(async {
        let mut client = integration_tests::http::Client::connect(&bridge.authority()).await;
        let (status, _) = client
            .get(&format!("{}/global/health", bridge.prefix()))
            .await;
        assert_eq!(status, 200);
    });
}

#[test]
fn anthropic_over_tls_should_stream_through_the_host() {
    let sshd = require_sshd!();
    let local = FakeModel::start();
    let anthropic = FakeModel::start_tls();
    local.set_providers(providers(&local.url(), &anthropic.url()));
    anthropic.script(
        "claude-fake",
        vec![Script::sse(
            &anthropic_stream(&["Hel", "lo ", "world"], &CALLS),
            false,
        )],
    );
    let bridge = start_bridge(&sshd, &local, anthropic.ca_file().map(|p| p.as_path()));
    runtime().block_on(async {
        let replies = ask(&bridge, Request::Model(request("anth", "claude-fake"))).await;
        // Anthropic ends each tool-use block before the next starts.
        let mut expected = expected_tool_turn();
        let end = expected.remove(9);
        expected.insert(7, end);
        assert_eq!(events(&replies), joined(expected));
        assert!(
            replies
                .iter()
                .any(|r| matches!(r, Reply::Model(ModelEvent::Usage(u))
            if u.input == 12 && u.output == 7 && u.cache_read == 3 && u.cache_write == 2))
        );
        let seen = anthropic.seen();
        let call = seen.last().unwrap();
        assert_eq!(call.path, "/v1/messages");
        assert_eq!(call.header("x-api-key"), Some(ANTHROPIC_KEY));
        assert_eq!(call.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(call.body["model"], "claude-fake");
        assert_eq!(call.body["system"][0]["cache_control"]["type"], "ephemeral");
        assert_eq!(call.body["tools"][0]["input_schema"]["type"], "object");
    });
    integration_tests::host::assert_not_on_host(&sshd, ANTHROPIC_KEY);
}

/// A CONNECT proxy on 127.0.0.1, what `HTTPS_PROXY` points at: it tunnels to the host asked
/// for and records each one. Its URL and the record.
fn connect_proxy() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let record = record.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let Some(target) = head
                    .strip_prefix("CONNECT ")
                    .and_then(|rest| rest.split_whitespace().next())
                else {
                    let _ = client.write_all(b"HTTP/1.1 405 CONNECT only\r\n\r\n");
                    return;
                };
                record.lock().unwrap().push(target.to_owned());
                let Ok(upstream) = TcpStream::connect(target) else {
                    return;
                };
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let (mut up_in, mut client_out) =
                    (upstream.try_clone().unwrap(), client.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up_in, &mut client_out);
                    let _ = client_out.shutdown(Shutdown::Write);
                });
                let (mut client_in, mut up_out) = (client, upstream);
                let _ = std::io::copy(&mut client_in, &mut up_out);
                let _ = up_out.shutdown(Shutdown::Write);
            });
        }
    });
    (url, seen)
}

#[test]
fn provider_calls_should_honour_https_proxy_and_no_proxy() {
    let sshd = require_sshd!();
    let local = FakeModel::start();
    let anthropic = FakeModel::start_tls();
    local.set_providers(providers(&local.url(), &anthropic.url()));
    anthropic.script(
        "claude-fake",
        vec![Script::sse(&anthropic_stream(&["Hel", "lo"], &[]), false)],
    );
    let (proxy, tunnelled) = connect_proxy();
    let provider = anthropic.url().trim_start_matches("https://").to_owned();
    let ca = anthropic.ca_file().map(|p| p.as_path());
    runtime().block_on(async {
        // Through the proxy.
        let bridge = start_bridge_with(&sshd, &local, ca, &[("HTTPS_PROXY", proxy.as_str())]);
        let replies = ask(&bridge, Request::Model(request("anth", "claude-fake"))).await;
        assert_eq!(replies.last(), Some(&Reply::End), "{replies:?}");
        assert_eq!(
            tunnelled.lock().unwrap().as_slice(),
            std::slice::from_ref(&provider)
        );
        drop(bridge);
        // NO_PROXY names the provider's host: straight there.
        let bridge = start_bridge_with(
            &sshd,
            &local,
            ca,
            &[("HTTPS_PROXY", proxy.as_str()), ("NO_PROXY", "127.0.0.1")],
        );
        let replies = ask(&bridge, Request::Model(request("anth", "claude-fake"))).await;
        assert_eq!(replies.last(), Some(&Reply::End), "{replies:?}");
        assert_eq!(
            *tunnelled.lock().unwrap(),
            [provider],
            "NO_PROXY was ignored"
        );
    });
}

#[test]
fn setup_and_fetches_should_come_from_the_laptop() {
    let sshd = require_sshd!();
    let fake = FakeModel::start();
    fake.set_providers(providers(&fake.url(), &fake.url()));
    fake.set_json(
        "/config",
        json!({"model": "fake/fake-upstream-id", "small_model": "fake/slow",
            "permission": {"bash": "ask"}, "instructions": ["~/rules.md", "docs/project.md"]}),
    );
    fake.set_json("/agent", json!([{"name": "build", "mode": "primary"}]));
    fake.set_json("/command", json!([{"name": "review"}]));
    fake.set_page(
        "/page",
        "text/html; charset=utf-8",
        "<h1>from the laptop</h1>",
    );
    let config = sshd.local_home().join(".config/opencode");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("AGENTS.md"), "Be kind.").unwrap();
    std::fs::write(sshd.local_home().join("rules.md"), "Use tabs.").unwrap();
    let bridge = start_bridge(&sshd, &fake, None);
    runtime().block_on(async {
        let replies = ask(&bridge, Request::Setup).await;
        let [Reply::Setup(setup), Reply::End] = replies.as_slice() else {
            panic!("{replies:?}")
        };
        assert!(!serde_json::to_string(setup).unwrap().contains(KEY));
        let fake_provider = setup.providers.iter().find(|p| p.id == "fake").unwrap();
        let model = fake_provider
            .models
            .iter()
            .find(|m| m.model_id == "fake-upstream-id")
            .unwrap();
        assert_eq!((model.output_limit, model.cost.output), (8000, 2.0));
        assert_eq!(setup.model.as_deref(), Some("fake/fake-upstream-id"));
        assert_eq!(setup.small_model.as_deref(), Some("fake/slow"));
        assert_eq!(
            setup.defaults,
            [("fake".to_owned(), "fake-upstream-id".to_owned())]
        );
        assert_eq!(
            serde_json::from_str::<Value>(&setup.permission).unwrap(),
            json!({"bash": "ask"})
        );
        assert!(setup.agents.contains("build") && setup.commands.contains("review"));
        let texts: Vec<&str> = setup
            .instructions
            .iter()
            .map(|(_, text)| text.as_str())
            .collect();
        assert_eq!(texts, ["Be kind.", "Use tabs."]);

        let fetch = |url: String, max_bytes| {
            Request::Fetch(protocol::gateway::FetchRequest {
                url,
                accept: "text/html".into(),
                timeout_ms: 5000,
                max_bytes,
            })
        };
        let replies = ask(&bridge, fetch(format!("{}/page", fake.url()), 1000)).await;
        let Some(Reply::Head {
            status: 200,
            content_type,
        }) = replies.first()
        else {
            panic!("{replies:?}")
        };
        assert_eq!(content_type, "text/html; charset=utf-8");
        let body: Vec<u8> = replies
            .iter()
            .filter_map(|r| match r {
                Reply::Data(data) => Some(data.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(body, b"<h1>from the laptop</h1>");
        assert_eq!(replies.last(), Some(&Reply::End));
        for (url, max_bytes, needle) in [
            (format!("{}/page", fake.url()), 5, "too large"),
            ("file:///etc/passwd".to_owned(), 1000, "not an http(s) URL"),
            ("http://127.0.0.1:1/".to_owned(), 1000, "fetch failed"),
        ] {
            let replies = ask(&bridge, fetch(url, max_bytes)).await;
            let Some(Reply::Error(failure)) = replies.last() else {
                panic!("{replies:?}")
            };
            assert_eq!(failure.kind, FailureKind::Fetch);
            assert!(failure.message.contains(needle), "{}", failure.message);
        }
    });
}

#[test]
fn a_host_that_reads_slowly_should_hold_the_provider_back() {
    // Far more than every buffer on the way holds (h2 windows and send buffers both ways, SSH
    // channel windows, loopback sockets that grow to 32 MiB: some 50 MiB here), in long tokens, as joined text
    // travels with almost no overhead per token.
    const TOKENS: usize = 500_000;
    let padding = "x".repeat(180);
    let sshd = require_sshd!();
    let fake = FakeModel::start();
    fake.set_providers(providers(&fake.url(), &fake.url()));
    let words: Vec<String> = (0..TOKENS)
        .map(|i| format!("token number {i} {padding} "))
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    fake.script(
        "fake-upstream-id",
        vec![Script::sse(&chat_stream(&words, &[]), true)],
    );
    let bridge = start_bridge(&sshd, &fake, None);
    runtime().block_on(async {
        let (mut body, _connection) = open(
            &bridge,
            &Request::Model(request("fake", "fake-upstream-id")),
        )
        .await;
        let mut buffer = Vec::new();
        assert!(matches!(
            next(&mut body, &mut buffer).await,
            Some(Reply::Model(ModelEvent::Started(_)))
        ));
        // The host stops reading: the provider must stop being read soon after (once it began).
        let began = Instant::now();
        while fake.sent() == 0 {
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "the provider never began"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut last = fake.sent();
        let mut stalled = false;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = fake.sent();
            if now == last {
                stalled = true;
                break;
            }
            last = now;
        }
        eprintln!("the provider was held back after {last} of {TOKENS} tokens");
        assert!(
            stalled && last < TOKENS,
            "the bridge kept reading: {last} of {TOKENS}"
        );
        // Reading again, everything arrives, in order (joined into fewer pieces).
        let mut text = String::new();
        let mut pieces = 0;
        loop {
            match next(&mut body, &mut buffer).await {
                Some(Reply::Model(ModelEvent::TextDelta(piece))) => {
                    text.push_str(&piece);
                    pieces += 1;
                }
                Some(Reply::End) => break,
                Some(Reply::Model(_)) => {}
                other => panic!("{other:?}"),
            }
        }
        eprintln!("{TOKENS} tokens arrived in {pieces} pieces");
        assert!(text == words.concat(), "the text arrived changed");
    });
}

#[test]
fn a_provider_added_later_should_work_without_a_restart() {
    let sshd = require_sshd!();
    let fake = FakeModel::start();
    fake.set_providers(providers(&fake.url(), &fake.url()));
    fake.script(
        "late-model",
        vec![Script::sse(&chat_stream(&["late ", "hello"], &[]), true)],
    );
    let bridge = start_bridge(&sshd, &fake, None);
    runtime().block_on(async {
        // Not configured yet: the error names it.
        let replies = ask(&bridge, Request::Model(request("late", "late-model"))).await;
        let Some(Reply::Error(failure)) = replies.last() else {
            panic!("{replies:?}")
        };
        assert_eq!(failure.kind, FailureKind::UnknownModel, "{failure:?}");
        assert!(failure.message.contains("late"), "{failure:?}");

        // The user adds the provider (and its key) in OpenCode; the same bridge picks it up
        // on the next call, without a restart.
        let mut listed = providers(&fake.url(), &fake.url());
        listed["providers"].as_array_mut().unwrap().push(json!({
            "id": "late", "name": "Late", "source": "config", "key": "sk-late-added-3e9a",
            "options": {"baseURL": format!("{}/v1", fake.url())},
            "models": {"late-model": model("late-model", "@ai-sdk/openai-compatible")},
        }));
        fake.set_providers(listed);
        let replies = ask(&bridge, Request::Model(request("late", "late-model"))).await;
        assert_eq!(replies.last(), Some(&Reply::End), "{replies:?}");
        let text: String = events(&replies)
            .iter()
            .filter_map(|event| match event {
                ModelEvent::TextDelta(delta) => Some(delta.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, "late hello");
        let call = fake.seen().last().cloned().unwrap();
        assert_eq!(
            call.header("authorization"),
            Some("Bearer sk-late-added-3e9a")
        );
    });
}
