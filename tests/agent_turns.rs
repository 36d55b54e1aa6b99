//! Agent turns beyond the happy path, end to end through the real OpenCode 1.18.33 and the
//! real sshd: an Anthropic-shaped provider driving the tools on the host, text streaming in
//! before the turn ends, abort in the middle of a stream, a prompt sent to a busy session,
//! provider errors (401, 429 retried, context too long), and a model sending hundreds of
//! malformed tool calls.

use std::time::{Duration, Instant};

use integration_tests::http::Client;
use integration_tests::llm::ScriptedModel;
use integration_tests::opencode::{OpenCode, Registration};
use integration_tests::require_sshd;
use integration_tests::sshd::Sshd;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::agent::{answer_text, messages, options, runtime, tool_parts};

/// The Anthropic provider's key, configured only on the laptop.
const ANTHROPIC_KEY: &str = "sk-ant-turns-e2e-71c0d2";

/// A project directory on the host, canonical.
fn project(sshd: &Sshd, name: &str) -> (std::path::PathBuf, String) {
    let dir = sshd.remote_home().join("srv").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let canonical = dir.canonicalize().unwrap().to_string_lossy().into_owned();
    (dir, canonical)
}

/// Starts OpenCode with the scripted model (plus an Anthropic provider `claude`), a
/// connected workspace and a session in it: `(opencode, workspace, session)`.
fn start(
    sshd: &Sshd,
    model: &ScriptedModel,
    remote_dir: &str,
) -> Option<(OpenCode, String, String)> {
    let mut config = model.opencode_config();
    config["provider"]["claude"] = model.anthropic_provider(ANTHROPIC_KEY, "claude-scripted");
    let opencode =
        OpenCode::start_with(sshd, options(sshd, remote_dir), Registration::Path, config)?;
    let (wrk, ses) = runtime().block_on(async {
        let mut client = Client::connect(&opencode.authority()).await;
        let wrk = opencode
            .create_workspace(&mut client, "ssh-provider", json!({ "host": "ah" }))
            .await
            .unwrap_or_else(|err| panic!("{err}\n{}", opencode.log()));
        let (status, session) = client
            .json(
                "POST",
                &format!("/session{}", opencode.query(&format!("workspace={wrk}"))),
                &json!({}),
            )
            .await;
        assert_eq!(status, 200, "{session}");
        (wrk, session["id"].as_str().unwrap().to_owned())
    });
    Some((opencode, wrk, ses))
}

/// `POST /session/:id/<path>` with a text prompt for `provider/model`.
async fn send(
    opencode: &OpenCode,
    client: &mut Client,
    session: &str,
    path: &str,
    text: &str,
    model: (&str, &str),
) -> (u16, Value) {
    client
        .json(
            "POST",
            &format!("/session/{session}/{path}{}", opencode.query("")),
            &json!({
                "parts": [{ "type": "text", "text": text }],
                "model": { "providerID": model.0, "modelID": model.1 },
            }),
        )
        .await
}

/// Waits (≤ `limit`) for an event of `kind` about `session` on OpenCode's own event stream.
async fn wait_event(
    events: &mut UnboundedReceiver<Value>,
    kind: &str,
    session: &str,
    limit: Duration,
) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no {kind} event for {session} within {limit:?}"))
            .expect("the event stream ended");
        let payload = &event["payload"];
        if payload["type"] == kind && payload.to_string().contains(session) {
            return payload.clone();
        }
    }
}

/// Polls OpenCode's replica until the session's last assistant message is complete.
async fn wait_idle(opencode: &OpenCode, client: &mut Client, session: &str) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let listed = messages(opencode, client, session).await;
        let done = listed
            .iter()
            .rev()
            .find(|m| m["info"]["role"] == "assistant")
            .is_some_and(|m| m["info"]["time"]["completed"].is_number());
        if done {
            return listed;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the turn did not end: {listed:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn an_anthropic_model_should_run_the_tools_on_the_host() {
    let sshd = require_sshd!();
    let (dir, remote_dir) = project(&sshd, "anthropic-app");
    let model = ScriptedModel::start();
    let Some((opencode, _wrk, ses)) = start(&sshd, &model, &remote_dir) else {
        return;
    };
    runtime().block_on(async {
        let mut client = Client::connect(&opencode.authority()).await;
        let notes = format!("{remote_dir}/claude.txt");
        let script = [
            format!(
                "CALL write {}",
                json!({ "filePath": notes, "content": "from claude\n" })
            ),
            format!(
                "CALL bash {}",
                json!({ "command": "wc -l < claude.txt && uname -s", "description": "Count" })
            ),
            format!("CALL read {}", json!({ "filePath": notes })),
        ]
        .join("\n");
        let (status, answer) = send(
            &opencode,
            &mut client,
            &ses,
            "message",
            &script,
            ("claude", "claude-scripted"),
        )
        .await;
        assert_eq!(status, 200, "{answer}\n{}", opencode.log());
        assert_eq!(answer_text(&answer), "done", "{answer}");
        assert_eq!(answer["info"]["providerID"], "claude", "{answer}");
        assert_eq!(answer["info"]["finish"], "stop", "{answer}");
        assert_eq!(
            std::fs::read_to_string(dir.join("claude.txt")).unwrap(),
            "from claude\n"
        );

        let parts = tool_parts(&opencode, &mut client, &ses).await;
        let tools: Vec<&str> = parts.iter().filter_map(|p| p["tool"].as_str()).collect();
        assert_eq!(tools, ["write", "bash", "read"], "{parts:#?}");
        for part in &parts {
            assert_eq!(part["state"]["status"], "completed", "{part}");
        }
        assert_eq!(parts[1]["state"]["output"], "1\nLinux\n", "{}", parts[1]);
        assert!(
            parts[2]["state"]["output"]
                .as_str()
                .unwrap_or_default()
                .contains("1: from claude"),
            "{}",
            parts[2]
        );
        // Anthropic's tool-call ids came back as they were given.
        assert!(
            parts[0]["callID"]
                .as_str()
                .unwrap_or_default()
                .starts_with("toolu_"),
            "{}",
            parts[0]
        );

        // The requests were Anthropic's messages: system apart, tool results in the user's
        // turn, carrying the key the laptop holds.
        let requests = model.requests();
        let agent: Vec<&Value> = requests
            .iter()
            .filter(|r| r["tools"].is_array() && r["system"].is_array())
            .collect();
        assert!(agent.len() >= 4, "{requests:#?}");
        let last = agent.last().unwrap();
        assert!(last["system"].to_string().contains(&remote_dir), "{last}");
        let results = last["messages"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
            .filter(|b| b["type"] == "tool_result")
            .count();
        assert_eq!(results, 3, "{last}");
        assert!(last.to_string().contains("from claude"), "{last}");
        let tool = &last["tools"][0];
        assert!(
            tool["name"].is_string() && tool["input_schema"].is_object(),
            "{tool}"
        );
        assert!(
            model.keys().iter().any(|k| k == ANTHROPIC_KEY),
            "the provider never saw the key: {:?}",
            model.keys()
        );
    });
    integration_tests::host::assert_not_on_host(&sshd, ANTHROPIC_KEY);
}

#[test]
fn streaming_abort_busy_prompts_and_provider_errors_should_behave_as_in_opencode() {
    let sshd = require_sshd!();
    let (_dir, remote_dir) = project(&sshd, "turns-app");
    let model = ScriptedModel::start();
    let Some((opencode, _wrk, ses)) = start(&sshd, &model, &remote_dir) else {
        return;
    };
    let scripted = ("scripted", "m");
    runtime().block_on(async {
        let mut client = Client::connect(&opencode.authority()).await;
        let mut events =
            integration_tests::http::subscribe(&opencode.authority(), "/global/event").await;

        // Text streams in while the turn runs: deltas reach OpenCode before it ends.
        let (status, _) = send(
            &opencode,
            &mut client,
            &ses,
            "prompt_async",
            "STREAM 40 100",
            scripted,
        )
        .await;
        assert_eq!(status, 204);
        let delta = wait_event(
            &mut events,
            "message.part.delta",
            &ses,
            Duration::from_secs(20),
        )
        .await;
        assert_eq!(delta["properties"]["field"], "text", "{delta}");
        let listed = messages(&opencode, &mut client, &ses).await;
        let streaming = listed.last().unwrap();
        assert_eq!(streaming["info"]["role"], "assistant", "{streaming}");
        assert!(
            streaming["info"]["time"]["completed"].is_null(),
            "the turn ended before the text: {streaming}"
        );

        // A prompt to the busy session: accepted at once and stored, not answered.
        let (status, _) = send(
            &opencode,
            &mut client,
            &ses,
            "prompt_async",
            "queued prompt 9c1e",
            scripted,
        )
        .await;
        assert_eq!(status, 204);

        // Abort in the middle of the stream: the provider call is cancelled, the message ends
        // aborted with the text so far, the session is idle.
        let (status, ok) = client
            .json(
                "POST",
                &format!("/session/{ses}/abort{}", opencode.query("")),
                &Value::Null,
            )
            .await;
        assert_eq!((status, &ok), (200, &json!(true)), "{ok}");
        wait_event(&mut events, "session.idle", &ses, Duration::from_secs(20)).await;
        let listed = wait_idle(&opencode, &mut client, &ses).await;
        let aborted = listed
            .iter()
            .find(|m| m["info"]["role"] == "assistant")
            .unwrap();
        assert_eq!(
            aborted["info"]["error"]["name"], "MessageAbortedError",
            "{aborted}"
        );
        let text: String = aborted["parts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect();
        assert!(
            text.starts_with("w0 ") && !text.contains("w39"),
            "{aborted}"
        );
        let started = Instant::now();
        while model.cancelled() == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the provider stream was never cancelled"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let queued = listed
            .iter()
            .find(|m| m.to_string().contains("queued prompt 9c1e"))
            .unwrap_or_else(|| panic!("the prompt sent while busy is lost: {listed:#?}"));
        assert_eq!(queued["info"]["role"], "user", "{queued}");
        let queued_id = queued["info"]["id"].as_str().unwrap();
        assert!(
            !listed.iter().any(|m| m["info"]["parentID"] == queued_id),
            "the queued prompt was answered after the abort: {listed:#?}"
        );
        // The next prompt carries it to the model as a plain user message.
        let asked_before = model.requests().len();
        let (status, answer) = send(
            &opencode,
            &mut client,
            &ses,
            "message",
            "after the abort",
            scripted,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer_text(&answer), "scripted answer", "{answer}");
        let asked = model.requests()[asked_before..]
            .iter()
            .find(|r| r["tools"].is_array())
            .cloned()
            .expect("the prompt reached the model");
        assert!(asked.to_string().contains("queued prompt 9c1e"), "{asked}");

        // A provider refusing the key: the message carries OpenCode's APIError, not retried.
        let (status, failed) = send(
            &opencode,
            &mut client,
            &ses,
            "message",
            "FAIL 401",
            scripted,
        )
        .await;
        assert_eq!(status, 200, "{failed}");
        let error = &failed["info"]["error"];
        assert_eq!(error["name"], "APIError", "{failed}");
        assert_eq!(error["data"]["statusCode"], 401, "{failed}");
        assert_eq!(error["data"]["isRetryable"], false, "{failed}");
        assert_eq!(
            failed["parts"],
            json!([]),
            "a refused request starts no step: {failed}"
        );
        assert!(
            error["data"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("Incorrect API key"),
            "{failed}"
        );
        let tries = model
            .requests()
            .iter()
            .filter(|r| r.to_string().contains("FAIL 401") && r["tools"].is_array())
            .count();
        assert_eq!(tries, 1, "a 401 was retried");

        // A prompt too long for the model's context.
        let (status, failed) = send(
            &opencode,
            &mut client,
            &ses,
            "message",
            "FAIL 400",
            scripted,
        )
        .await;
        assert_eq!(status, 200, "{failed}");
        assert_eq!(
            failed["info"]["error"]["name"], "ContextOverflowError",
            "{failed}"
        );
        assert!(
            failed["info"]["error"]["data"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("maximum context length"),
            "{failed}"
        );

        // Rate limited once: OpenCode's retry status shows, then the answer comes.
        let (status, answer) = send(
            &opencode,
            &mut client,
            &ses,
            "message",
            "FAIL-ONCE 429 400",
            scripted,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert!(answer["info"]["error"].is_null(), "{answer}");
        assert_eq!(answer_text(&answer), "scripted answer", "{answer}");
        // (The events of the whole call wait in the subscription, in order.)
        let retry = loop {
            let status =
                wait_event(&mut events, "session.status", &ses, Duration::from_secs(5)).await;
            if status["properties"]["status"]["type"] == "retry" {
                break status;
            }
        };
        assert_eq!(retry["properties"]["status"]["attempt"], 1, "{retry}");
        assert!(
            retry["properties"]["status"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("Rate limit"),
            "{retry}"
        );

        // Hundreds of tool calls whose arguments do not parse: each is a tool error the model
        // reads, and the turn goes on to its end.
        const CALLS: usize = 200;
        let script: Vec<String> = (0..CALLS)
            .map(|n| match n % 4 {
                0 => format!("CALL bash {{\"command\": \"echo {n}\""),
                1 => format!(
                    "CALL bash {}",
                    json!({ "command": n, "description": "number" })
                ),
                2 => format!("CALL read {}", json!({ "offset": n })),
                _ => format!("CALL edit [\"{n}\"]"),
            })
            .collect();
        let before = tool_parts(&opencode, &mut client, &ses).await.len();
        let started = Instant::now();
        let (status, answer) = send(
            &opencode,
            &mut client,
            &ses,
            "message",
            &script.join("\n"),
            scripted,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer_text(&answer), "done", "{answer}");
        eprintln!("{CALLS} malformed tool calls took {:?}", started.elapsed());
        let started = Instant::now();
        let parts = loop {
            let parts = tool_parts(&opencode, &mut client, &ses).await;
            if parts.len() >= before + CALLS {
                break parts;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{} of {CALLS} tool parts",
                parts.len() - before
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let failed = &parts[before..];
        assert_eq!(failed.len(), CALLS);
        for (n, part) in failed.iter().enumerate() {
            assert_eq!(part["state"]["status"], "error", "call {n}: {part}");
            assert!(
                !part["state"]["error"]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty(),
                "call {n}: {part}"
            );
        }
        // The stub is still there and well.
        let (status, answer) = send(
            &opencode,
            &mut client,
            &ses,
            "message",
            "still alive?",
            scripted,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer_text(&answer), "scripted answer", "{answer}");
    });
}

#[test]
fn the_same_call_three_times_in_a_row_should_ask_doom_loop_before_running() {
    let sshd = require_sshd!();
    let (dir, remote_dir) = project(&sshd, "doom-app");
    let model = ScriptedModel::start();
    let Some((opencode, wrk, ses)) = start(&sshd, &model, &remote_dir) else {
        return;
    };
    let scripted = ("scripted", "m");
    runtime().block_on(async {
        let mut client = Client::connect(&opencode.authority()).await;
        let mut asker = Client::connect(&opencode.authority()).await;

        // Three identical calls in one step: the third asks first; allowed once, all run.
        let call = json!({ "command": "echo same >> same.log", "description": "Append" });
        let script = format!("REPEAT 3\nCALL bash {call}");
        let ((status, answer), asked) = tokio::join!(
            send(&opencode, &mut asker, &ses, "message", &script, scripted),
            crate::agent::answer_permission(&opencode, &mut client, &wrk, "once"),
        );
        assert_eq!(status, 200, "{answer}\n{}", opencode.log());
        assert_eq!(asked["permission"], "doom_loop", "{asked}");
        assert_eq!(asked["patterns"], json!(["bash"]), "{asked}");
        assert_eq!(asked["always"], json!(["bash"]), "{asked}");
        assert_eq!(asked["metadata"]["tool"], "bash", "{asked}");
        assert_eq!(asked["metadata"]["input"], call, "{asked}");
        assert_eq!(asked["sessionID"], ses.as_str(), "{asked}");
        assert_eq!(answer_text(&answer), "done", "{answer}");
        let parts = tool_parts(&opencode, &mut client, &ses).await;
        assert_eq!(parts.len(), 3, "{parts:#?}");
        for part in &parts {
            assert_eq!(part["state"]["status"], "completed", "{part}");
        }
        assert_eq!(
            std::fs::read_to_string(dir.join("same.log")).unwrap(),
            "same\nsame\nsame\n"
        );

        // Rejected: the third call ends in OpenCode's rejection error and the turn stops
        // without asking the model again.
        let call = json!({ "command": "echo again >> again.log", "description": "Append" });
        let script = format!("REPEAT 3\nCALL bash {call}");
        let asked_before = model.requests().len();
        let ((status, answer), asked) = tokio::join!(
            send(&opencode, &mut asker, &ses, "message", &script, scripted),
            crate::agent::answer_permission(&opencode, &mut client, &wrk, "reject"),
        );
        assert_eq!(status, 200, "{answer}\n{}", opencode.log());
        assert_eq!(asked["permission"], "doom_loop", "{asked}");
        assert_eq!(answer_text(&answer), "", "{answer}");
        let parts = tool_parts(&opencode, &mut client, &ses).await;
        let states: Vec<&str> = parts[3..]
            .iter()
            .filter_map(|p| p["state"]["status"].as_str())
            .collect();
        assert_eq!(states, ["completed", "completed", "error"], "{parts:#?}");
        assert!(
            parts[5]["state"]["error"]
                .as_str()
                .unwrap_or_default()
                .contains("rejected permission"),
            "{}",
            parts[5]
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("again.log")).unwrap(),
            "again\nagain\n"
        );
        let asked_after = model.requests()[asked_before..]
            .iter()
            .filter(|r| r["tools"].is_array())
            .count();
        assert_eq!(
            asked_after, 1,
            "the model was asked again after the rejection"
        );

        // Two identical calls do not ask.
        let call = json!({ "command": "echo twice >> twice.log", "description": "Append" });
        let (status, answer) = send(
            &opencode,
            &mut client,
            &ses,
            "message",
            &format!("REPEAT 2\nCALL bash {call}"),
            scripted,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer_text(&answer), "done", "{answer}");
        assert_eq!(
            std::fs::read_to_string(dir.join("twice.log")).unwrap(),
            "twice\ntwice\n"
        );
    });
}

fn write_skill(dir: &std::path::Path, name: &str, description: &str, body: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("SKILL.md"),
        format!("---\nname: {name}\ndescription: {description}\n---\n{body}\n"),
    )
    .unwrap();
}

#[test]
fn skills_of_the_host_and_of_the_laptop_should_be_offered_and_loaded() {
    let sshd = require_sshd!();
    let (dir, remote_dir) = project(&sshd, "skills-app");
    let deploy = dir.join(".claude/skills/deploy-notes");
    write_skill(
        &deploy,
        "deploy-notes",
        "How this project ships to staging",
        "Run scripts/deploy.sh with the target name.",
    );
    std::fs::create_dir_all(deploy.join("scripts")).unwrap();
    std::fs::write(deploy.join("scripts/deploy.sh"), "echo deploy\n").unwrap();
    write_skill(
        &sshd.remote_home().join(".agents/skills/host-wide"),
        "host-wide",
        "Conventions of every project on this host",
        "Use tabs.",
    );
    // The user's own skill, on the laptop only.
    write_skill(
        &sshd.local_home().join(".claude/skills/laptop-style"),
        "laptop-style",
        "The user's writing style",
        "Write short sentences. 5f2a",
    );
    let model = ScriptedModel::start();
    let Some((opencode, wrk, ses)) = start(&sshd, &model, &remote_dir) else {
        return;
    };
    runtime().block_on(async {
        let mut client = Client::connect(&opencode.authority()).await;
        let host_wide = sshd.remote_home().join(".agents/skills/host-wide/SKILL.md");
        let script = [
            "CALL skill {\"name\": \"deploy-notes\"}".to_owned(),
            "CALL skill {\"name\": \"laptop-style\"}".to_owned(),
            "CALL skill {\"name\": \"nope\"}".to_owned(),
            // A skill's folder outside the workspace is read without asking, as in OpenCode.
            format!("CALL read {}", json!({ "filePath": host_wide })),
        ]
        .join("\n");
        let (status, answer) = tokio::time::timeout(
            Duration::from_secs(60),
            send(
                &opencode,
                &mut client,
                &ses,
                "message",
                &script,
                ("scripted", "m"),
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("the turn did not end (a permission asked?)"));
        assert_eq!(status, 200, "{answer}\n{}", opencode.log());
        assert_eq!(answer_text(&answer), "done", "{answer}");
        let parts = tool_parts(&opencode, &mut client, &ses).await;
        assert_eq!(parts.len(), 4, "{parts:#?}");
        assert_eq!(parts[3]["state"]["status"], "completed", "{}", parts[3]);
        assert!(
            parts[3]["state"]["output"]
                .as_str()
                .unwrap_or_default()
                .contains("Use tabs."),
            "{}",
            parts[3]
        );

        let base = format!("{remote_dir}/.claude/skills/deploy-notes");
        let loaded = &parts[0]["state"];
        assert_eq!(loaded["status"], "completed", "{}", parts[0]);
        assert_eq!(loaded["title"], "Loaded skill: deploy-notes", "{loaded}");
        assert_eq!(loaded["metadata"]["name"], "deploy-notes", "{loaded}");
        assert_eq!(loaded["metadata"]["dir"], base.as_str(), "{loaded}");
        let output = loaded["output"].as_str().unwrap();
        for line in [
            "<skill_content name=\"deploy-notes\">",
            "# Skill: deploy-notes",
            "Run scripts/deploy.sh with the target name.",
            &format!("Base directory for this skill: {base}"),
            &format!("<file>{base}/scripts/deploy.sh</file>"),
            "</skill_content>",
        ] {
            assert!(output.lines().any(|l| l == line), "{line:?} in {output}");
        }
        assert!(!output.contains("SKILL.md</file>"), "{output}");

        let laptop = &parts[1]["state"];
        assert_eq!(laptop["status"], "completed", "{}", parts[1]);
        assert!(
            laptop["output"]
                .as_str()
                .unwrap()
                .contains("Write short sentences. 5f2a"),
            "{laptop}"
        );

        let missing = &parts[2]["state"];
        assert_eq!(missing["status"], "error", "{}", parts[2]);
        let error = missing["error"].as_str().unwrap();
        assert!(
            error.starts_with("Skill \"nope\" not found. Available skills: ")
                && error.contains("deploy-notes, host-wide, laptop-style"),
            "{error}"
        );

        // The model was told which skills there are, with what they are for.
        let requests = model.requests();
        let asked = requests
            .iter()
            .find(|r| r["tools"].is_array())
            .expect("an agent request");
        let system = asked["messages"][0]["content"].to_string();
        assert!(system.contains("<available_skills>"), "{system}");
        for name in ["deploy-notes", "host-wide", "laptop-style"] {
            assert!(
                system.contains(&format!("<name>{name}</name>")),
                "{name}: {system}"
            );
        }
        assert!(
            system.contains("How this project ships to staging"),
            "{system}"
        );
        let offered: Vec<&str> = asked["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["function"]["name"].as_str())
            .collect();
        assert!(offered.contains(&"skill"), "{offered:?}");

        // The stub lists them (`GET /skill`, in OpenCode's schema) for the workspace.
        let (bridge, secret) = opencode.bridge_of(&wrk);
        let mut stub = Client::connect(&bridge).await;
        let (status, listed) = stub
            .json("GET", &format!("/{secret}/skill"), &Value::Null)
            .await;
        assert_eq!(status, 200, "{listed}");
        let api = integration_tests::schema::OpenApi::fetch(&mut client).await;
        api.check("GET /skill", &api.response("GET", "/skill"), &listed);
        let names: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        assert!(
            names.contains(&"deploy-notes")
                && names.contains(&"host-wide")
                && names.contains(&"laptop-style"),
            "{listed}"
        );
    });
}
