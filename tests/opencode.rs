//! End to end with the real OpenCode 1.18.33 server, our plugin loaded by path, and a real sshd
//! as the remote host, driven over OpenCode's HTTP API the way its TUI does.

use std::time::{Duration, Instant};

use integration_tests::http::{Client, next_chunk};
use integration_tests::opencode::{OpenCode, bridge_pids};
use integration_tests::sshd::Sshd;
use integration_tests::{require_opencode, require_sshd};
use serde_json::{Value, json};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn options(sshd: &Sshd, remote_dir: &str) -> Value {
    json!({
        "providers": {
            "default": {
                "strategy": "first_available",
                "hosts": [{
                    "name": "test-host",
                    "aliases": ["th"],
                    "ssh": { "host": "127.0.0.1", "port": sshd.port(), "user": "root" },
                    "labels": ["linux"],
                    "directory": remote_dir,
                }]
            }
        },
        "defaults": { "leaseMode": "shared" }
    })
}

/// OpenCode's own event stream (`GET /global/event` of the local server), collected in the
/// background.
struct LocalEvents {
    rx: tokio::sync::mpsc::UnboundedReceiver<Value>,
}

impl LocalEvents {
    async fn subscribe(opencode: &OpenCode) -> LocalEvents {
        let mut client = Client::connect(&opencode.authority()).await;
        let response = client
            .send(
                "GET",
                "/global/event",
                b"",
                &[("accept", "text/event-stream")],
            )
            .await;
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let _client = client;
            let mut buffer = String::new();
            while let Some(chunk) = next_chunk(&mut body).await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let event: String = buffer.drain(..end + 2).collect();
                    let data: String = event
                        .lines()
                        .filter_map(|l| l.strip_prefix("data: "))
                        .collect();
                    if let Ok(value) = serde_json::from_str(&data)
                        && tx.send(value).is_err()
                    {
                        return;
                    }
                }
            }
        });
        LocalEvents { rx }
    }

    async fn wait_for(&mut self, kind: &str, workspace: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let event = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no {kind} event for {workspace} on OpenCode's stream"))
                .expect("stream ended");
            if event["payload"]["type"] == kind && event["workspace"] == workspace {
                return event;
            }
        }
    }
}

/// Starts a `!shell` call in the background the way the TUI sends it (no `?workspace=`: the
/// session's workspace routes it).
fn shell(
    opencode: &OpenCode,
    session: &str,
    command: &str,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let authority = opencode.authority();
    let path = format!("/session/{session}/shell{}", opencode.query(""));
    let body = json!({ "agent": "build", "command": command });
    tokio::spawn(async move {
        let mut client = Client::connect(&authority).await;
        client.json("POST", &path, &body).await
    })
}

async fn answer_next_permission(
    opencode: &OpenCode,
    client: &mut Client,
    events: &mut LocalEvents,
    workspace: &str,
    reply: &str,
) -> Value {
    let asked = events.wait_for("permission.asked", workspace).await;
    let request = asked["payload"]["properties"].clone();
    // The TUI lists pending requests through the workspace and answers with ?workspace=.
    let (status, pending) = client
        .json(
            "GET",
            &format!(
                "/permission{}",
                opencode.query(&format!("workspace={workspace}"))
            ),
            &Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{pending}");
    assert!(
        pending
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == request["id"]),
        "{pending}"
    );
    let id = request["id"].as_str().unwrap();
    let (status, ok) = client
        .json(
            "POST",
            &format!(
                "/permission/{id}/reply{}",
                opencode.query(&format!("workspace={workspace}"))
            ),
            &json!({ "reply": reply }),
        )
        .await;
    assert_eq!((status, &ok), (200, &json!(true)), "{ok}");
    request
}

/// The tool parts of a session as OpenCode itself returns them (from its replica).
async fn tool_parts(opencode: &OpenCode, client: &mut Client, session: &str) -> Vec<Value> {
    let (status, messages) = client
        .json(
            "GET",
            &format!("/session/{session}/message{}", opencode.query("")),
            &Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{messages}");
    messages
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["parts"].as_array().cloned().unwrap_or_default())
        .filter(|p| p["type"] == "tool")
        .collect()
}

#[test]
fn a_workspace_on_an_ssh_host_should_work_through_real_opencode() {
    let sshd = require_sshd!();
    let remote_project = sshd.remote_home().join("srv/app");
    std::fs::create_dir_all(remote_project.join("src")).unwrap();
    std::fs::write(
        remote_project.join("README.md"),
        "hello from the REMOTE host\n",
    )
    .unwrap();
    std::fs::write(
        remote_project.join("src/main.rs"),
        "fn main() { println!(\"hello\"); }\n",
    )
    .unwrap();
    let remote_dir = remote_project
        .canonicalize()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let opencode = require_opencode!(&sshd, options(&sshd, &remote_dir));

    runtime().block_on(async {
        let mut client = Client::connect(&opencode.authority()).await;
        let mut events = LocalEvents::subscribe(&opencode).await;

        // The adaptor is registered.
        let (status, adapters) = client.json("GET", &format!("/experimental/workspace/adapter{}", opencode.query("")), &Value::Null).await;
        assert_eq!(status, 200, "{adapters}");
        assert!(adapters.as_array().unwrap().iter().any(|a| a["type"] == "ssh-provider"), "{adapters}");

        // Create the workspace by alias; it is connected when the call returns.
        let started = Instant::now();
        let (status, workspace) = client
            .json("POST", &format!("/experimental/workspace{}", opencode.query("")), &json!({ "type": "ssh-provider", "branch": null, "extra": { "provider": "default", "host": "th" } }))
            .await;
        let create_ms = started.elapsed().as_millis();
        assert_eq!(status, 200, "{workspace}\n{}", opencode.log());
        let wrk = workspace["id"].as_str().unwrap().to_owned();
        assert_eq!(workspace["extra"]["host"], "test-host", "the alias resolves to the canonical name");
        assert_eq!(workspace["projectID"], opencode.project_id.as_str());
        opencode.wait_status(&mut client, &wrk, "connected", Duration::from_secs(10)).await;
        eprintln!("workspace created and connected in {create_ms} ms");

        // User-level GETs through the workspace are answered by the local OpenCode (relayed by
        // the plugin), host-level ones by the host.
        let (status, config) = client.json("GET", &format!("/config{}", opencode.query(&format!("workspace={wrk}"))), &Value::Null).await;
        assert_eq!(status, 200);
        assert!(config.to_string().contains("opencode-remote"), "{config}");
        let (status, path) = client.json("GET", &format!("/path{}", opencode.query(&format!("workspace={wrk}"))), &Value::Null).await;
        assert_eq!(status, 200);
        assert_eq!(path["directory"], remote_dir.as_str());

        // A session created in the workspace appears in OpenCode's list with the workspace id.
        let (status, session) = client.json("POST", &format!("/session{}", opencode.query(&format!("workspace={wrk}"))), &json!({ "title": "remote test session" })).await;
        assert_eq!(status, 200, "{session}\n{}", opencode.log());
        let ses = session["id"].as_str().unwrap().to_owned();
        assert_eq!(session["workspaceID"], wrk.as_str());
        assert_eq!(session["directory"], remote_dir.as_str());
        // The TUI lists sessions with `path` relative to the worktree (served from OpenCode's own
        // replica, never forwarded).
        let (_, sessions) = client.json("GET", &format!("/session{}", opencode.query(&format!("workspace={wrk}&path="))), &Value::Null).await;
        let listed = sessions.as_array().unwrap().iter().find(|s| s["id"] == ses.as_str()).cloned().unwrap_or_else(|| panic!("{sessions}"));
        assert_eq!(listed["workspaceID"], wrk.as_str());

        // !shell: the first command asks for the workspace directory; `always` approves it.
        let call = shell(&opencode, &ses, "echo hello-from-shell && pwd && uname -s");
        let request = answer_next_permission(&opencode, &mut client, &mut events, &wrk, "always").await;
        assert_eq!(request["always"], json!([format!("{remote_dir}/**")]));
        let (status, result) = call.await.unwrap();
        assert_eq!(status, 200, "{result}");
        let expected = format!("hello-from-shell\n{remote_dir}\nLinux\n");
        assert_eq!(result["parts"][0]["state"]["output"], expected.as_str());
        let parts = tool_parts(&opencode, &mut client, &ses).await;
        assert_eq!(parts.len(), 1, "{parts:?}");
        assert_eq!(parts[0]["state"]["status"], "completed");
        assert_eq!(parts[0]["state"]["output"], expected.as_str());

        // Covered by `always`: no prompt.
        let (status, result) = shell(&opencode, &ses, "cat README.md").await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(result["parts"][0]["state"]["output"], "hello from the REMOTE host\n");

        // Outside: `once` runs it without remembering, `reject` refuses it.
        let call = shell(&opencode, &ses, "ls /etc/hostname");
        answer_next_permission(&opencode, &mut client, &mut events, &wrk, "once").await;
        let (_, result) = call.await.unwrap();
        assert_eq!(result["parts"][0]["state"]["output"], "/etc/hostname\n");
        let call = shell(&opencode, &ses, "ls /etc/hostname");
        answer_next_permission(&opencode, &mut client, &mut events, &wrk, "reject").await;
        let (_, result) = call.await.unwrap();
        assert_eq!(result["parts"][0]["state"]["status"], "error");
        let replied = events.wait_for("permission.replied", &wrk).await;
        assert_eq!(replied["payload"]["properties"]["sessionID"], ses.as_str());
        let parts = tool_parts(&opencode, &mut client, &ses).await;
        assert_eq!(parts.len(), 4, "{parts:?}");
        assert!(parts[3]["state"]["error"].as_str().unwrap().contains("rejected by the user"), "{}", parts[3]);

        // Files on the host.
        let q = opencode.query(&format!("workspace={wrk}"));
        let (status, listing) = client.json("GET", &format!("/file{}&path=.", q), &Value::Null).await;
        assert_eq!(status, 200, "{listing}");
        let names: Vec<&str> = listing.as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["src", "README.md"]);
        let (_, content) = client.json("GET", &format!("/file/content{}&path=README.md", q), &Value::Null).await;
        assert_eq!(content["content"], "hello from the REMOTE host");
        let (_, found) = client.json("GET", &format!("/find{}&pattern=hello", q), &Value::Null).await;
        let paths: Vec<&str> = found.as_array().unwrap().iter().map(|m| m["path"]["text"].as_str().unwrap()).collect();
        assert_eq!(paths, ["README.md", "src/main.rs"], "{found}");
        let (_, files) = client.json("GET", &format!("/find/file{}&query=main", q), &Value::Null).await;
        assert_eq!(files, json!(["src/main.rs"]));

        // Reconnect: kill the bridge; the plugin restarts it on the same URL, OpenCode resumes
        // syncing, and nothing is duplicated or lost.
        let before = bridge_pids(&wrk);
        assert_eq!(before.len(), 1, "{before:?}");
        rustix::process::kill_process(rustix::process::Pid::from_raw(before[0] as i32).unwrap(), rustix::process::Signal::KILL).unwrap();
        let started = Instant::now();
        let mut restarted = Vec::new();
        while started.elapsed() < Duration::from_secs(10) {
            restarted = bridge_pids(&wrk).into_iter().filter(|p| !before.contains(p)).collect();
            if !restarted.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!restarted.is_empty(), "the plugin did not restart the bridge");
        opencode.wait_status(&mut client, &wrk, "connected", Duration::from_secs(15)).await;
        eprintln!("reconnected in {:?}", started.elapsed());
        // `always` survived the stub restart (new stub process): no prompt.
        let (status, result) = shell(&opencode, &ses, "echo after-reconnect").await.unwrap();
        assert_eq!(status, 200, "{result}\n{}", opencode.log());
        assert_eq!(result["parts"][0]["state"]["output"], "after-reconnect\n");
        let parts = tool_parts(&opencode, &mut client, &ses).await;
        assert_eq!(parts.len(), 5, "no duplicated or missing tool parts: {parts:?}");
        let (_, messages) = client.json("GET", &format!("/session/{ses}/message{}", opencode.query("")), &Value::Null).await;
        let mut ids: Vec<&str> = messages.as_array().unwrap().iter().map(|m| m["info"]["id"].as_str().unwrap()).collect();
        let count = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), count);
        assert_eq!(count, 10, "5 shell calls = 5 user + 5 assistant messages");

        // Deleting the session propagates to OpenCode's list.
        let (status, ok) = client.json("DELETE", &format!("/session/{ses}{}", opencode.query("")), &Value::Null).await;
        assert_eq!((status, ok), (200, json!(true)));
        let (_, sessions) = client.json("GET", &format!("/session{}", opencode.query(&format!("workspace={wrk}&path="))), &Value::Null).await;
        assert!(!sessions.as_array().unwrap().iter().any(|s| s["id"] == ses.as_str()));

        // Removing the workspace stops its bridge.
        let (status, _) = client.json("DELETE", &format!("/experimental/workspace/{wrk}{}", opencode.query("")), &Value::Null).await;
        assert_eq!(status, 200);
        let started = Instant::now();
        while !bridge_pids(&wrk).is_empty() && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(bridge_pids(&wrk).is_empty(), "the bridge outlived its workspace");
    });
}

#[test]
fn a_bad_host_or_option_should_fail_workspace_creation_with_a_clear_message() {
    let sshd = require_sshd!();
    let mut opts = options(&sshd, "/");
    let opencode = require_opencode!(&sshd, opts.clone());
    runtime().block_on(async {
        let mut client = Client::connect(&opencode.authority()).await;
        let (status, body) = client
            .json(
                "POST",
                &format!("/experimental/workspace{}", opencode.query("")),
                &json!({ "type": "ssh-provider", "extra": { "host": "nope" } }),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        let message = body["data"]["message"].as_str().unwrap();
        assert!(
            message.contains("unknown host `nope`") && message.contains("test-host (aliases: th)"),
            "{message}"
        );
    });
    drop(opencode);

    // A typo in the options is named when a workspace is created.
    opts["providers"]["default"]["hosts"][0]["ssh"]["prot"] = json!(22);
    let opencode = require_opencode!(&sshd, opts);
    runtime().block_on(async {
        let mut client = Client::connect(&opencode.authority()).await;
        let (status, body) = client
            .json(
                "POST",
                &format!("/experimental/workspace{}", opencode.query("")),
                &json!({ "type": "ssh-provider", "extra": {} }),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        let message = body["data"]["message"].as_str().unwrap();
        assert!(
            message.contains("providers.default.hosts[0].ssh.prot"),
            "{message}"
        );
    });
}
