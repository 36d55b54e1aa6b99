//! Agent prompts in a remote workspace, end to end: the real OpenCode 1.18.33 forwards the
//! prompt to the stub over the real sshd, the stub runs the agent loop on the host, its model
//! calls travel back through the bridge to a scripted OpenAI-compatible model on 127.0.0.1
//! (configured only in the laptop's OpenCode), and the tools act on the host.

use std::time::{Duration, Instant};

use integration_tests::http::Client;
use integration_tests::llm::ScriptedModel;
use integration_tests::opencode::{OpenCode, Registration};
use integration_tests::require_sshd;
use integration_tests::schema::OpenApi;
use integration_tests::sshd::Sshd;
use serde_json::{Value, json};

/// The scripted provider's key, configured only on the laptop.
pub(crate) const KEY: &str = "sk-agent-e2e-4b1d9c70";

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) fn options(sshd: &Sshd, remote_dir: &str) -> Value {
    json!({
        "providers": { "default": { "strategy": "first_available", "hosts": [{
            "name": "agent-host",
            "aliases": ["ah"],
            "ssh": { "host": "127.0.0.1", "port": sshd.port(), "user": "root" },
            "directory": remote_dir,
        }]}},
        "defaults": { "leaseMode": "shared" }
    })
}

/// The messages of a session as OpenCode itself returns them (from its replica).
pub(crate) async fn messages(
    opencode: &OpenCode,
    client: &mut Client,
    session: &str,
) -> Vec<Value> {
    let (status, messages) = client
        .json(
            "GET",
            &format!("/session/{session}/message{}", opencode.query("")),
            &Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{messages}");
    messages.as_array().unwrap().clone()
}

pub(crate) async fn tool_parts(
    opencode: &OpenCode,
    client: &mut Client,
    session: &str,
) -> Vec<Value> {
    messages(opencode, client, session)
        .await
        .iter()
        .flat_map(|m| m["parts"].as_array().cloned().unwrap_or_default())
        .filter(|p| p["type"] == "tool")
        .collect()
}

/// Sends `CALL <tool> <arguments>` as a prompt in the background; the scripted model calls the
/// tool, then answers `done` once it has the result.
fn prompt(
    opencode: &OpenCode,
    session: &str,
    tool: &str,
    arguments: Value,
) -> tokio::task::JoinHandle<(u16, Value)> {
    prompt_as(opencode, session, "build", tool, arguments)
}

/// [`prompt`] with another agent.
fn prompt_as(
    opencode: &OpenCode,
    session: &str,
    agent: &str,
    tool: &str,
    arguments: Value,
) -> tokio::task::JoinHandle<(u16, Value)> {
    prompt_with(opencode, session, agent, "m", tool, arguments)
}

/// [`prompt`] with another agent and model.
fn prompt_with(
    opencode: &OpenCode,
    session: &str,
    agent: &str,
    model: &str,
    tool: &str,
    arguments: Value,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let authority = opencode.authority();
    let path = format!("/session/{session}/message{}", opencode.query(""));
    let body = json!({
        "parts": [{ "type": "text", "text": format!("CALL {tool} {arguments}") }],
        "model": { "providerID": "scripted", "modelID": model },
        "agent": agent,
    });
    tokio::spawn(async move {
        let mut client = Client::connect(&authority).await;
        client.json("POST", &path, &body).await
    })
}

/// Runs one tool through a whole turn and returns its tool part (as OpenCode's replica has it)
/// and the answer of `/message`.
async fn run_tool(
    opencode: &OpenCode,
    client: &mut Client,
    session: &str,
    tool: &str,
    arguments: Value,
) -> (Value, Value) {
    let before = tool_parts(opencode, client, session).await.len();
    let (status, answer) = prompt(opencode, session, tool, arguments).await.unwrap();
    assert_eq!(status, 200, "{answer}\n{}", opencode.log());
    let parts = wait_tool_parts(opencode, client, session, before + 1).await;
    let part = parts[before].clone();
    assert_eq!(part["tool"], tool, "{part}");
    (part, answer)
}

/// Polls OpenCode's replica until the session has `count` tool parts and the last is final.
pub(crate) async fn wait_tool_parts(
    opencode: &OpenCode,
    client: &mut Client,
    session: &str,
    count: usize,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let parts = tool_parts(opencode, client, session).await;
        let settled = parts.len() >= count
            && parts[count - 1]["state"]["status"]
                .as_str()
                .is_some_and(|s| s == "completed" || s == "error");
        if settled {
            return parts;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no final tool part #{count} within 30 s: {parts:#?}\n{}",
            opencode.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `GET /permission` through the workspace until a request is pending, answers it with
/// `reply`, and returns it.
pub(crate) async fn answer_permission(
    opencode: &OpenCode,
    client: &mut Client,
    workspace: &str,
    reply: &str,
) -> Value {
    let query = opencode.query(&format!("workspace={workspace}"));
    for _ in 0..300 {
        let (_, pending) = client
            .json("GET", &format!("/permission{query}"), &Value::Null)
            .await;
        if let Some(request) = pending.as_array().and_then(|p| p.first()).cloned() {
            let id = request["id"].as_str().unwrap();
            let (status, ok) = client
                .json(
                    "POST",
                    &format!("/permission/{id}/reply{query}"),
                    &json!({ "reply": reply }),
                )
                .await;
            assert_eq!((status, &ok), (200, &json!(true)), "{ok}");
            return request;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no permission request became pending within 30 s");
}

/// The text of the answer's text parts.
pub(crate) fn answer_text(answer: &Value) -> String {
    answer["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["type"] == "text")
        .filter_map(|p| p["text"].as_str())
        .collect()
}

/// Serves `html` to every request on 127.0.0.1 (a web page on the laptop's side); returns its URL.
fn serve_page(html: &'static str) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/page", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
                html.len()
            );
        }
    });
    url
}

#[test]
fn a_prompt_should_run_the_agent_on_the_host_through_real_opencode() {
    let sshd = require_sshd!();
    let remote_project = sshd.remote_home().join("srv/agent-app");
    std::fs::create_dir_all(remote_project.join("src")).unwrap();
    std::fs::write(remote_project.join("README.md"), "agent test project\n").unwrap();
    std::fs::write(
        remote_project.join("AGENTS.md"),
        "Always answer in haiku (host rule 7f3a).\n",
    )
    .unwrap();
    let remote_dir = remote_project
        .canonicalize()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let model = ScriptedModel::start();
    let mut config = model.opencode_config();
    // A GPT model too: OpenCode gives those apply_patch instead of edit and write.
    config["provider"]["scripted"]["models"]["gpt-5-scripted"] =
        json!({ "name": "scripted gpt", "tool_call": true });
    config["provider"]["scripted"]["options"]["apiKey"] = json!(KEY);
    // A provider whose server is down, for the error a user must see.
    config["provider"]["down"] = json!({
        "npm": "@ai-sdk/openai-compatible",
        "name": "down",
        "options": { "baseURL": "http://127.0.0.1:1/v1", "apiKey": "none" },
        "models": { "m": { "name": "down model", "tool_call": true } },
    });
    let Some(mut opencode) = OpenCode::start_with(
        &sshd,
        options(&sshd, &remote_dir),
        Registration::Path,
        config,
    ) else {
        return;
    };
    let (wrk, ses) = runtime().block_on(async {
        let mut client = Client::connect(&opencode.authority()).await;
        let api = OpenApi::fetch(&mut client).await;
        let (status, workspace) = client
            .json(
                "POST",
                &format!("/experimental/workspace{}", opencode.query("")),
                &json!({ "type": "ssh-provider", "branch": null, "extra": { "host": "ah" } }),
            )
            .await;
        assert_eq!(status, 200, "{workspace}\n{}", opencode.log());
        let wrk = workspace["id"].as_str().unwrap().to_owned();
        opencode
            .wait_status(&mut client, &wrk, "connected", Duration::from_secs(10))
            .await;
        // The stub's own event stream, for the schema check.
        let mut stub_events = opencode.stub_events(&wrk).await;

        let (status, session) = client
            .json(
                "POST",
                &format!("/session{}", opencode.query(&format!("workspace={wrk}"))),
                &json!({}),
            )
            .await;
        assert_eq!(status, 200, "{session}");
        let ses = session["id"].as_str().unwrap().to_owned();

        // bash runs on the host, in the workspace directory, without asking.
        let (part, answer) = run_tool(
            &opencode,
            &mut client,
            &ses,
            "bash",
            json!({ "command": "echo made-on-host > made.txt && cat made.txt && pwd", "description": "Make a file" }),
        )
        .await;
        assert_eq!(part["state"]["status"], "completed", "{part}");
        assert_eq!(
            part["state"]["output"],
            format!("made-on-host\n{remote_dir}\n").as_str(),
            "{part}"
        );
        // The title is the command (a description the model adds stays in the input).
        assert_eq!(
            part["state"]["title"],
            "echo made-on-host > made.txt && cat made.txt && pwd",
            "{part}"
        );
        assert_eq!(
            std::fs::read_to_string(remote_project.join("made.txt")).unwrap(),
            "made-on-host\n"
        );
        api.check(
            "POST /session/:id/message",
            &api.response("POST", "/session/{sessionID}/message"),
            &answer,
        );
        assert_eq!(answer["info"]["role"], "assistant", "{answer}");
        assert_eq!(answer_text(&answer), "done", "{answer}");
        assert_eq!(answer["info"]["finish"], "stop", "{answer}");

        // The model was asked from the laptop, with a system prompt describing the HOST and
        // the host project's AGENTS.md, and OpenCode's tool names.
        let requests = model.requests();
        let first = requests
            .iter()
            .find(|r| r["tools"].is_array())
            .unwrap_or_else(|| panic!("no agent request reached the model: {requests:#?}"));
        let system = first["messages"][0]["content"].to_string();
        assert!(system.contains(&remote_dir), "{system}");
        assert!(system.contains("host rule 7f3a"), "{system}");
        let tools: Vec<&str> = first["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["function"]["name"].as_str())
            .collect();
        for tool in ["bash", "read", "write", "edit", "glob", "grep", "todowrite"] {
            assert!(tools.contains(&tool), "{tool} not offered: {tools:?}");
        }
        // The second call carries the tool result back.
        let follow_up = requests
            .iter()
            .find(|r| {
                r["messages"]
                    .as_array()
                    .is_some_and(|m| m.last().is_some_and(|l| l["role"] == "tool"))
            })
            .expect("the tool result went back to the model");
        assert!(follow_up.to_string().contains("made-on-host"), "{follow_up}");

        // The first prompt named the session (a small-model call, no tools).
        let started = Instant::now();
        loop {
            let (_, info) = client
                .json("GET", &format!("/session/{ses}{}", opencode.query("")), &Value::Null)
                .await;
            if info["title"] == integration_tests::llm::TITLE {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "no title: {info}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            model.requests().iter().any(|r| r["tools"].is_null()
                && r.to_string().contains("Generate a title for this conversation")),
            "no title request reached the model"
        );

        // write, edit, read, grep, glob, todowrite on the host.
        let notes = format!("{remote_dir}/notes.txt");
        let (part, _) = run_tool(&opencode, &mut client, &ses, "write", json!({ "filePath": notes, "content": "alpha\nbeta\n" })).await;
        assert_eq!(part["state"]["status"], "completed", "{part}");
        assert_eq!(std::fs::read_to_string(remote_project.join("notes.txt")).unwrap(), "alpha\nbeta\n");
        let (part, _) = run_tool(&opencode, &mut client, &ses, "edit", json!({ "filePath": notes, "oldString": "beta", "newString": "gamma" })).await;
        assert_eq!(part["state"]["status"], "completed", "{part}");
        assert_eq!(std::fs::read_to_string(remote_project.join("notes.txt")).unwrap(), "alpha\ngamma\n");
        let diff = part["state"]["metadata"]["diff"].as_str().unwrap_or_default();
        assert!(diff.contains("-beta") && diff.contains("+gamma"), "{part}");
        let (part, _) = run_tool(&opencode, &mut client, &ses, "read", json!({ "filePath": notes })).await;
        let output = part["state"]["output"].as_str().unwrap_or_default();
        assert!(output.contains("1: alpha") && output.contains("2: gamma"), "{part}");
        let (part, _) = run_tool(&opencode, &mut client, &ses, "grep", json!({ "pattern": "gamma" })).await;
        let output = part["state"]["output"].as_str().unwrap_or_default();
        assert!(output.contains(&notes), "{part}");
        let (part, _) = run_tool(&opencode, &mut client, &ses, "glob", json!({ "pattern": "*.txt" })).await;
        let output = part["state"]["output"].as_str().unwrap_or_default();
        assert!(output.contains("made.txt") && output.contains("notes.txt"), "{part}");
        let (part, _) = run_tool(&opencode, &mut client, &ses, "todowrite", json!({ "todos": [{ "content": "ship it", "status": "pending", "priority": "high" }] })).await;
        assert_eq!(part["state"]["status"], "completed", "{part}");

        // The model asks the user; the TUI's answer goes back to it.
        let call = prompt(&opencode, &ses, "question", json!({ "questions": [{ "question": "Proceed with the change?", "header": "Proceed", "options": [{ "label": "Yes", "description": "Go ahead" }, { "label": "No", "description": "Stop" }] }] }));
        let query = opencode.query(&format!("workspace={wrk}"));
        let mut pending = Value::Null;
        for _ in 0..300 {
            let (_, listed) = client.json("GET", &format!("/question{query}"), &Value::Null).await;
            if listed.as_array().is_some_and(|l| !l.is_empty()) {
                pending = listed[0].clone();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(pending["questions"][0]["header"], "Proceed", "no pending question: {pending}");
        api.check("GET /question", &api.response("GET", "/question"), &json!([pending.clone()]));
        let id = pending["id"].as_str().unwrap();
        let (status, ok) = client
            .json("POST", &format!("/question/{id}/reply{query}"), &json!({ "answers": [["Yes"]] }))
            .await;
        assert_eq!((status, &ok), (200, &json!(true)), "{ok}");
        let (status, _) = call.await.unwrap();
        assert_eq!(status, 200);
        let parts = tool_parts(&opencode, &mut client, &ses).await;
        let asked = parts.last().unwrap();
        assert_eq!(asked["tool"], "question", "{asked}");
        assert_eq!(
            asked["state"]["output"],
            "User has answered your questions: \"Proceed with the change?\"=\"Yes\". You can now continue with the user's answers in mind.",
            "{asked}"
        );
        assert_eq!(asked["state"]["title"], "Asked 1 question");
        let (status, missing) = client
            .json("POST", &format!("/question/que_missing/reply{query}"), &json!({ "answers": [] }))
            .await;
        assert_eq!(status, 404, "{missing}");

        // A sub-agent works in a child session on the host and reports back.
        let child_prompt = format!("CALL bash {}", json!({ "command": "echo child-was-here > child.txt && cat child.txt", "description": "Child echo" }));
        let (part, answer) = run_tool(&opencode, &mut client, &ses, "task", json!({ "description": "Child work", "prompt": child_prompt, "subagent_type": "general" })).await;
        assert_eq!(part["state"]["status"], "completed", "{part}");
        let output = part["state"]["output"].as_str().unwrap_or_default();
        assert!(output.starts_with("<task id=\"ses_") && output.contains("<task_result>\ndone\n</task_result>"), "{part}");
        assert_eq!(part["state"]["title"], "Child work");
        assert_eq!(answer_text(&answer), "done", "{answer}");
        let child = part["state"]["metadata"]["sessionId"].as_str().unwrap().to_owned();
        assert_eq!(std::fs::read_to_string(remote_project.join("child.txt")).unwrap(), "child-was-here\n");
        let (status, children) = client
            .json("GET", &format!("/session/{ses}/children{}", opencode.query("")), &Value::Null)
            .await;
        assert_eq!(status, 200, "{children}");
        assert!(children.as_array().unwrap().iter().any(|c| c["id"] == child.as_str()), "{children}");
        let child_parts = wait_tool_parts(&opencode, &mut client, &child, 1).await;
        assert_eq!(child_parts[0]["tool"], "bash", "{child_parts:?}");
        assert_eq!(child_parts[0]["state"]["output"], "child-was-here\n");

        // webfetch: the laptop fetches (the host needs no network), the model reads Markdown.
        let page = serve_page("<html><head><style>p{}</style></head><body><h1>Host docs</h1><p>Use <a href=\"/x\">the guide</a> &amp; <b>enjoy</b>.</p></body></html>");
        let asked_before = model.requests().len();
        let (status, answer) = prompt(&opencode, &ses, "webfetch", json!({ "url": page })).await.unwrap();
        assert_eq!(status, 200, "{answer}");
        let offered: Vec<String> = model.requests()[asked_before..]
            .iter()
            .filter(|r| r["tools"].is_array())
            .flat_map(|r| r["tools"].as_array().unwrap().iter().filter_map(|t| t["function"]["name"].as_str().map(str::to_owned)).collect::<Vec<_>>())
            .collect();
        assert!(offered.contains(&"webfetch".to_owned()), "webfetch not offered: {offered:?} {answer}");
        let parts = tool_parts(&opencode, &mut client, &ses).await;
        let part = parts.last().unwrap().clone();
        assert_eq!(part["tool"], "webfetch", "{part}");
        assert_eq!(part["state"]["status"], "completed", "{part}");
        assert_eq!(part["state"]["output"], "# Host docs\n\nUse [the guide](/x) & **enjoy**.", "{part}");
        let (part, _) = run_tool(&opencode, &mut client, &ses, "webfetch", json!({ "url": "ftp://example.org/" })).await;
        assert_eq!(part["state"]["error"], "URL must start with http:// or https://", "{part}");

        // Outside the workspace: the user is asked; once lets it through, reject stops it.
        let host_file = sshd.remote_home().join("outside.txt");
        std::fs::write(&host_file, "outside the workspace\n").unwrap();
        let host_file = host_file.canonicalize().unwrap().to_string_lossy().into_owned();
        let before = tool_parts(&opencode, &mut client, &ses).await.len();
        let call = prompt(&opencode, &ses, "read", json!({ "filePath": host_file }));
        let asked = answer_permission(&opencode, &mut client, &wrk, "once").await;
        assert_eq!(asked["permission"], "external_directory", "{asked}");
        let (status, _) = call.await.unwrap();
        assert_eq!(status, 200);
        let parts = wait_tool_parts(&opencode, &mut client, &ses, before + 1).await;
        assert!(parts[before]["state"]["output"].as_str().unwrap_or_default().contains("outside the workspace"), "{}", parts[before]);
        let call = prompt(&opencode, &ses, "bash", json!({ "command": format!("cat {host_file}"), "description": "Read outside" }));
        answer_permission(&opencode, &mut client, &wrk, "reject").await;
        let (status, answer) = call.await.unwrap();
        assert_eq!(status, 200, "{answer}");
        let parts = wait_tool_parts(&opencode, &mut client, &ses, before + 2).await;
        assert_eq!(parts[before + 1]["state"]["status"], "error", "{}", parts[before + 1]);
        assert_ne!(answer_text(&answer), "done", "a rejection ends the turn: {answer}");

        // `.env` files ask first (OpenCode's read rule), as `read`, not as a directory.
        std::fs::write(remote_project.join(".env"), "TOKEN=host-secret-1\n").unwrap();
        let call = prompt(&opencode, &ses, "read", json!({ "filePath": format!("{remote_dir}/.env") }));
        let asked = answer_permission(&opencode, &mut client, &wrk, "once").await;
        assert_eq!(asked["permission"], "read", "{asked}");
        assert_eq!(asked["patterns"], json!([".env"]), "{asked}");
        let (status, _) = call.await.unwrap();
        assert_eq!(status, 200);
        let parts = wait_tool_parts(&opencode, &mut client, &ses, before + 3).await;
        assert!(parts[before + 2]["state"]["output"].as_str().unwrap_or_default().contains("host-secret-1"), "{}", parts[before + 2]);

        // The plan agent may not edit the project: the call is refused with the rules.
        let (status, _) = prompt_as(&opencode, &ses, "plan", "write", json!({ "filePath": format!("{remote_dir}/plan.txt"), "content": "no" })).await.unwrap();
        assert_eq!(status, 200);
        let parts = wait_tool_parts(&opencode, &mut client, &ses, before + 4).await;
        let refused = &parts[before + 3];
        assert_eq!(refused["state"]["status"], "error", "{refused}");
        assert!(refused["state"]["error"].as_str().unwrap_or_default().contains("prevents you from using this specific tool call"), "{refused}");
        assert!(!remote_project.join("plan.txt").exists());

        // `/init` asks the model to write the HOST project's AGENTS.md.
        let asked_before = model.requests().len();
        let (status, answer) = client
            .json(
                "POST",
                &format!("/session/{ses}/command{}", opencode.query("")),
                &json!({ "command": "init", "arguments": "mention the test runner", "agent": "build", "model": "scripted/m" }),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        let init = model.requests()[asked_before..]
            .iter()
            .find(|r| r["tools"].is_array())
            .cloned()
            .expect("the command reached the model");
        let last = init["messages"].as_array().unwrap().last().unwrap().to_string();
        assert!(last.contains("AGENTS.md") && last.contains(&remote_dir) && last.contains("mention the test runner"), "{last}");
        let (status, unknown) = client
            .json(
                "POST",
                &format!("/session/{ses}/command{}", opencode.query("")),
                &json!({ "command": "no-such-command", "arguments": "" }),
            )
            .await;
        assert_eq!(status, 400, "{unknown}");
        assert!(unknown.to_string().contains("no-such-command"), "{unknown}");

        // A GPT model patches files with apply_patch (and is offered no edit or write).
        std::fs::write(remote_project.join("patch-me.txt"), "one\ntwo\n").unwrap();
        let asked_before = model.requests().len();
        let patch = "*** Begin Patch\n*** Update File: patch-me.txt\n@@\n one\n-two\n+2\n*** Add File: added/by-patch.txt\n+added\n*** End Patch";
        let (status, _) = prompt_with(&opencode, &ses, "build", "gpt-5-scripted", "apply_patch", json!({ "patchText": patch })).await.unwrap();
        assert_eq!(status, 200);
        let parts = wait_tool_parts(&opencode, &mut client, &ses, before + 5).await;
        let patched = &parts[before + 4];
        assert_eq!(patched["state"]["status"], "completed", "{patched}");
        assert_eq!(
            patched["state"]["output"],
            "Success. Updated the following files:\nM patch-me.txt\nA added/by-patch.txt",
            "{patched}"
        );
        assert_eq!(std::fs::read_to_string(remote_project.join("patch-me.txt")).unwrap(), "one\n2\n");
        assert_eq!(std::fs::read_to_string(remote_project.join("added/by-patch.txt")).unwrap(), "added\n");
        let offered: Vec<String> = model.requests()[asked_before..]
            .iter()
            .find(|r| r["tools"].is_array())
            .map(|r| r["tools"].as_array().unwrap().iter().filter_map(|t| t["function"]["name"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        assert!(offered.contains(&"apply_patch".to_owned()) && !offered.contains(&"edit".to_owned()), "{offered:?}");

        // Arguments that do not parse are a tool error the model reads; the turn goes on.
        let (status, answer) = prompt(&opencode, &ses, "bash", json!("{not json")).await.unwrap();
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer_text(&answer), "done", "the loop went on: {answer}");
        let parts = wait_tool_parts(&opencode, &mut client, &ses, before + 6).await;
        let garbled = &parts[before + 5];
        assert_eq!(garbled["state"]["status"], "error", "{garbled}");
        assert!(garbled["state"]["error"].as_str().unwrap_or_default().contains("not a valid JSON object"), "{garbled}");

        // A provider that cannot be reached: the message ends with the error, the session is
        // idle again and usable.
        let (status, failed) = client
            .json(
                "POST",
                &format!("/session/{ses}/message{}", opencode.query("")),
                &json!({ "parts": [{ "type": "text", "text": "hello" }], "model": { "providerID": "down", "modelID": "m" } }),
            )
            .await;
        assert_eq!(status, 200, "{failed}");
        assert!(failed["info"]["error"]["name"].is_string(), "no error on the message: {failed}");
        let shown = failed["info"]["error"]["data"]["message"].as_str().unwrap_or_default();
        assert!(!shown.is_empty(), "the error says nothing: {failed}");

        // Abort in the middle of a command: the host process dies
        // and the session goes idle.
        let marker = remote_project.join("after-sleep.txt");
        let authority = opencode.authority();
        let (status, _) = client
            .json(
                "POST",
                &format!("/session/{ses}/prompt_async{}", opencode.query("")),
                &json!({
                    "parts": [{ "type": "text", "text": format!("CALL bash {}", json!({ "command": "sleep 20 && echo late > after-sleep.txt", "description": "Sleep" })) }],
                    "model": { "providerID": "scripted", "modelID": "m" },
                }),
            )
            .await;
        assert_eq!(status, 204);
        let started = Instant::now();
        loop {
            let parts = tool_parts(&opencode, &mut client, &ses).await;
            if parts.len() == before + 7 && parts[before + 6]["state"]["status"] == "running" {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "the sleep never ran: {parts:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut other = Client::connect(&authority).await;
        let (status, ok) = other
            .json("POST", &format!("/session/{ses}/abort{}", opencode.query("")), &Value::Null)
            .await;
        assert_eq!((status, &ok), (200, &json!(true)), "{ok}");
        let parts = wait_tool_parts(&opencode, &mut client, &ses, before + 7).await;
        // As OpenCode records it: the command's part completes with the abort noted.
        let aborted = &parts[before + 6];
        assert_eq!(aborted["state"]["status"], "completed", "{aborted}");
        assert!(
            aborted["state"]["output"].as_str().unwrap_or_default().contains("User aborted the command"),
            "{aborted}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!marker.exists(), "the aborted command went on running");

        // `always` for a rule the laptop's OpenCode asks for (read of a `.env` file).
        let call = prompt(&opencode, &ses, "read", json!({ "filePath": format!("{remote_dir}/.env") }));
        let asked = answer_permission(&opencode, &mut client, &wrk, "always").await;
        assert_eq!(asked["permission"], "read", "{asked}");
        assert_eq!(asked["always"], json!(["*"]), "{asked}");
        let (status, _) = call.await.unwrap();
        assert_eq!(status, 200);

        // The key stayed on the laptop.
        integration_tests::host::assert_not_on_host(&sshd, KEY);
        let bearer = format!("Bearer {KEY}");
        assert!(
            model.keys().contains(&bearer),
            "the provider never saw the key configured on the laptop"
        );

        // Every event the stub sent matches OpenCode's schema.
        let global_event = api.component("GlobalEvent");
        let mut seen = std::collections::BTreeSet::new();
        let mut failures = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, stub_events.recv()).await {
            let kind = event["payload"]["type"].as_str().unwrap_or("?").to_owned();
            if kind == "server.heartbeat" || kind == "server.connected" {
                continue;
            }
            seen.insert(kind.clone());
            let violations = api.violations(&global_event, &event);
            if !violations.is_empty() {
                failures.push(format!("{kind}: {}\n    {event}", violations.join("; ")));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        for expected in ["message.updated", "message.part.updated", "message.part.delta", "session.status", "session.idle", "permission.asked", "question.asked", "question.replied"] {
            assert!(seen.contains(expected), "no {expected} event in {seen:?}");
        }
        (wrk, ses)
    });

    // OpenCode restarted after the turns still shows them whole (replayed from the host).
    opencode.restart();
    runtime().block_on(async {
        let mut client = Client::connect(&opencode.authority()).await;
        let (status, _) = client
            .json(
                "POST",
                &format!("/sync/start{}", opencode.query("")),
                &Value::Null,
            )
            .await;
        assert_eq!(status, 200);
        opencode
            .wait_status(&mut client, &wrk, "connected", Duration::from_secs(15))
            .await;
        let listed = messages(&opencode, &mut client, &ses).await;
        let first_bash = listed
            .iter()
            .flat_map(|m| m["parts"].as_array().cloned().unwrap_or_default())
            .find(|p| p["tool"] == "bash")
            .unwrap_or_else(|| panic!("the first turn is gone after a restart: {listed:#?}"));
        assert_eq!(first_bash["state"]["status"], "completed", "{first_bash}");
        assert!(
            first_bash["state"]["output"]
                .as_str()
                .unwrap_or_default()
                .starts_with("made-on-host"),
            "{first_bash}"
        );
        let assistants = listed
            .iter()
            .filter(|m| m["info"]["role"] == "assistant")
            .count();
        assert!(
            assistants > 20,
            "only {assistants} assistant messages after the restart"
        );
        // The `always` answer outlived the stub: a new stub reads `.env` without asking.
        let (part, _) = run_tool(
            &opencode,
            &mut client,
            &ses,
            "read",
            json!({ "filePath": format!("{remote_dir}/.env") }),
        )
        .await;
        assert!(
            part["state"]["output"]
                .as_str()
                .unwrap_or_default()
                .contains("host-secret-1"),
            "{part}"
        );
    });
}
