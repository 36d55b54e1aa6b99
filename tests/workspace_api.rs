//! The stub's OpenCode-compatible API through a real bridge and sshd, driven like OpenCode's
//! local server does (without OpenCode itself; see `opencode.rs` for that).

use std::time::Duration;

use integration_tests::bridge::BridgeProcess;
use integration_tests::http::Client;
use integration_tests::require_sshd;
use integration_tests::sshd::Sshd;
use serde_json::{Value, json};

const WORKSPACE: &str = "wrk_20c15b2ae001Fv8H8sf4Afbcgx";
const PROJECT: &str = "cb6c03c7a725c53b33387b6cb07e0db024e5db41";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn start(sshd: &Sshd, directory: &str) -> BridgeProcess {
    BridgeProcess::start(
        sshd,
        &[
            "--workspace-id",
            WORKSPACE,
            "--project-id",
            PROJECT,
            "--directory",
            directory,
        ],
    )
}

/// Starts a `!shell` call in the background on its own connection (it may wait for a permission
/// answer given on another).
fn shell(
    bridge: &BridgeProcess,
    session: &str,
    command: &str,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let authority = bridge.authority();
    let path = format!("{}/session/{session}/shell", bridge.prefix());
    let body = json!({ "agent": "build", "command": command });
    tokio::spawn(async move {
        let mut client = Client::connect(&authority).await;
        client.json("POST", &path, &body).await
    })
}

/// Collects `/global/event` payloads in the background.
struct Events {
    rx: tokio::sync::mpsc::UnboundedReceiver<Value>,
}

impl Events {
    async fn subscribe(bridge: &BridgeProcess) -> Events {
        Events {
            rx: integration_tests::http::subscribe(
                &bridge.authority(),
                &format!("{}/global/event", bridge.prefix()),
            )
            .await,
        }
    }

    /// Waits (≤ 20 s) for an event whose payload type is `kind`.
    async fn wait_for(&mut self, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let event = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no {kind} event within 20 s"))
                .expect("event stream ended");
            if event["payload"]["type"] == kind {
                return event;
            }
        }
    }

    /// All sync events seen so far (drains the queue without waiting).
    fn drain_sync(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(event) = self.rx.try_recv() {
            if event["payload"]["type"] == "sync" {
                out.push(event["payload"]["syncEvent"].clone());
            }
        }
        out
    }
}

#[test]
fn sessions_shell_and_permissions_should_follow_opencodes_protocol() {
    let sshd = require_sshd!();
    let project = sshd.remote_home().join("project");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(project.join("README.md"), "hello from the REMOTE host\n").unwrap();
    let bridge = start(&sshd, project.to_str().unwrap());
    let directory = project
        .canonicalize()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(bridge.info["stub"]["directory"], directory.as_str());

    runtime().block_on(async {
        let prefix = bridge.prefix();
        let mut events = Events::subscribe(&bridge).await;
        let connected = events.rx.recv().await.unwrap();
        assert_eq!(connected["payload"]["type"], "server.connected");
        let mut client = Client::connect(&bridge.authority()).await;

        let (status, history) = client
            .json("POST", &format!("{prefix}/sync/history"), &json!({}))
            .await;
        assert_eq!((status, history), (200, json!([])));

        // Create a session: Session JSON + fence + session.created.1 with our ids.
        let response = client
            .send(
                "POST",
                &format!("{prefix}/session"),
                br#"{"title":"remote test session"}"#,
                &[],
            )
            .await;
        assert_eq!(response.status(), 200);
        let fence: Value =
            serde_json::from_str(response.headers()["x-opencode-sync"].to_str().unwrap()).unwrap();
        let session: Value = serde_json::from_slice(
            &http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes(),
        )
        .unwrap();
        let id = session["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("ses_"));
        assert_eq!(fence, json!({ &id: 0 }));
        assert_eq!(session["projectID"], PROJECT);
        assert_eq!(session["workspaceID"], WORKSPACE);
        assert_eq!(session["directory"], directory.as_str());
        let created = events.wait_for("sync").await;
        assert_eq!(created["payload"]["syncEvent"]["type"], "session.created.1");
        assert_eq!(created["payload"]["syncEvent"]["seq"], 0);
        assert_eq!(created["workspace"], WORKSPACE);
        assert_eq!(created["project"], PROJECT);

        // The first command in a new workspace asks for the workspace directory itself.
        let shell_client = shell(
            &bridge,
            &id,
            "echo hello-from-shell && pwd && cat README.md",
        );
        let asked = events.wait_for("permission.asked").await;
        let request = &asked["payload"]["properties"];
        assert_eq!(request["sessionID"], id.as_str());
        assert_eq!(request["permission"], "external_directory");
        assert_eq!(request["always"], json!([format!("{directory}/**")]));
        assert!(request["tool"]["callID"].is_string() && request["tool"]["messageID"].is_string());
        let (status, pending) = client
            .json("GET", &format!("{prefix}/permission"), &Value::Null)
            .await;
        assert_eq!(status, 200);
        assert_eq!(pending.as_array().unwrap().len(), 1);
        // The command waits: nothing ran yet.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!shell_client.is_finished());
        let request_id = request["id"].as_str().unwrap();
        let (status, ok) = client
            .json(
                "POST",
                &format!("{prefix}/permission/{request_id}/reply"),
                &json!({ "reply": "always" }),
            )
            .await;
        assert_eq!((status, ok), (200, json!(true)));
        events.wait_for("permission.replied").await;
        let (status, result) = shell_client.await.unwrap();
        assert_eq!(status, 200, "{result}");
        let part = &result["parts"][0];
        assert_eq!(part["type"], "tool");
        assert_eq!(part["state"]["status"], "completed", "{part}");
        assert_eq!(
            part["state"]["output"],
            format!("hello-from-shell\n{directory}\nhello from the REMOTE host\n")
        );
        assert_eq!(result["info"]["role"], "assistant");
        assert!(result["info"]["time"]["completed"].is_number());
        events.wait_for("session.idle").await;

        // `always` covers later commands in the directory: no prompt.
        let (status, result) = client
            .json(
                "POST",
                &format!("{prefix}/session/{id}/shell"),
                &json!({ "agent": "build", "command": "ls src/../README.md; exit 3" }),
            )
            .await;
        assert_eq!(status, 200);
        let state = &result["parts"][0]["state"];
        assert_eq!(state["output"], "src/../README.md\n[exit code 3]\n");
        assert_eq!(state["metadata"]["exit"], 3);

        // Outside the approved roots: reject ends the tool with an error.
        let _ = std::fs::remove_file("/tmp/ocr-should-not-exist");
        let shell_client = shell(
            &bridge,
            &id,
            "cat /etc/hostname > /tmp/ocr-should-not-exist",
        );
        let asked = events.wait_for("permission.asked").await;
        let patterns = asked["payload"]["properties"]["patterns"]
            .as_array()
            .unwrap()
            .clone();
        assert!(patterns.contains(&json!("/etc/hostname")), "{patterns:?}");
        let request_id = asked["payload"]["properties"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, _) = client
            .json(
                "POST",
                &format!("{prefix}/permission/{request_id}/reply"),
                &json!({ "reply": "reject", "message": "not there" }),
            )
            .await;
        assert_eq!(status, 200);
        let (_, result) = shell_client.await.unwrap();
        let state = &result["parts"][0]["state"];
        assert_eq!(state["status"], "error", "{state}");
        assert!(
            state["error"]
                .as_str()
                .unwrap()
                .contains("rejected by the user: not there"),
            "{state}"
        );
        assert!(!std::path::Path::new("/tmp/ocr-should-not-exist").exists());

        // Unknown permission ids and bad bodies.
        let (status, body) = client
            .json(
                "POST",
                &format!("{prefix}/permission/per_doesnotexist/reply"),
                &json!({ "reply": "once" }),
            )
            .await;
        assert_eq!(status, 404);
        assert_eq!(body["_tag"], "PermissionNotFoundError");
        let (status, body) = client
            .json(
                "POST",
                &format!("{prefix}/session/{id}/shell"),
                &json!({ "agent": "build" }),
            )
            .await;
        assert_eq!(status, 400);
        assert!(
            body["data"]["message"]
                .as_str()
                .unwrap()
                .contains("command"),
            "{body}"
        );
        let response = client
            .send("POST", &format!("{prefix}/session"), b"{not json", &[])
            .await;
        assert_eq!(response.status(), 400);

        // History: contiguous seqs from 0, identical to what the stream carried.
        let streamed = events.drain_sync();
        let (_, history) = client
            .json("POST", &format!("{prefix}/sync/history"), &json!({}))
            .await;
        let rows = history.as_array().unwrap();
        let seqs: Vec<u64> = rows.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (0..rows.len() as u64).collect::<Vec<_>>());
        for event in &streamed {
            let row = rows
                .iter()
                .find(|r| r["id"] == event["id"])
                .expect("streamed event in history");
            assert_eq!(row["data"], event["data"]);
            assert_eq!(row["type"], event["type"]);
        }
        let (_, partial) = client
            .json(
                "POST",
                &format!("{prefix}/sync/history"),
                &json!({ &id: 3 }),
            )
            .await;
        assert_eq!(partial.as_array().unwrap()[0]["seq"], 4);

        // Every mutating answer is fenced at the session's last event (OpenCode waits for its
        // replica to reach it before answering its own client).
        let last_seq = async |client: &mut Client| {
            let (_, history) = client
                .json("POST", &format!("{prefix}/sync/history"), &json!({}))
                .await;
            history
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["aggregate_id"] == id.as_str())
                .map(|r| r["seq"].as_i64().unwrap())
                .max()
                .unwrap()
        };
        let fenced = |response: &hyper::Response<hyper::body::Incoming>| -> i64 {
            let fence: Value =
                serde_json::from_str(response.headers()["x-opencode-sync"].to_str().unwrap())
                    .unwrap();
            fence[id.as_str()].as_i64().unwrap()
        };
        let response = client
            .send(
                "PATCH",
                &format!("{prefix}/session/{id}"),
                br#"{"title":"renamed"}"#,
                &[],
            )
            .await;
        assert_eq!(response.status(), 200);
        let seq = fenced(&response);
        assert_eq!(seq, last_seq(&mut client).await);
        let response = client
            .send(
                "POST",
                &format!("{prefix}/session/{id}/shell"),
                br#"{"agent":"build","command":"true"}"#,
                &[],
            )
            .await;
        assert_eq!(response.status(), 200);
        let shell_seq = fenced(&response);
        assert!(shell_seq > seq);
        assert_eq!(shell_seq, last_seq(&mut client).await);

        // Delete: true, fence -1, session.deleted.1.
        let response = client
            .send("DELETE", &format!("{prefix}/session/{id}"), b"", &[])
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["x-opencode-sync"],
            format!("{{\"{id}\":-1}}").as_str()
        );
        let deleted = events.wait_for("session.deleted").await;
        assert_eq!(deleted["payload"]["properties"]["sessionID"], id.as_str());
    });
}

#[test]
fn always_approvals_should_survive_a_stub_restart() {
    let sshd = require_sshd!();
    let project = sshd.remote_home().join("p2");
    std::fs::create_dir_all(&project).unwrap();
    let run_shell = |expect_prompt: bool| {
        let bridge = start(&sshd, project.to_str().unwrap());
        runtime().block_on(async {
            let prefix = bridge.prefix();
            let mut events = Events::subscribe(&bridge).await;
            let mut client = Client::connect(&bridge.authority()).await;
            let (_, session) = client
                .json("POST", &format!("{prefix}/session"), &json!({}))
                .await;
            let id = session["id"].as_str().unwrap().to_owned();
            let call = shell(&bridge, &id, "echo ok");
            if expect_prompt {
                let asked = events.wait_for("permission.asked").await;
                let request_id = asked["payload"]["properties"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                client
                    .json(
                        "POST",
                        &format!("{prefix}/permission/{request_id}/reply"),
                        &json!({ "reply": "always" }),
                    )
                    .await;
            }
            let (status, result) = tokio::time::timeout(Duration::from_secs(20), call)
                .await
                .expect("shell finished")
                .unwrap();
            assert_eq!(status, 200);
            assert_eq!(result["parts"][0]["state"]["output"], "ok\n");
        });
    };
    run_shell(true);
    // A new bridge, a new stub process: the approval was persisted on the host.
    run_shell(false);
    let approvals = std::fs::read_dir(sshd.remote_home().join(".opencode-remote/state/approvals"))
        .unwrap()
        .count();
    assert!(approvals >= 1);
}

#[test]
fn abort_should_stop_a_running_command_and_its_children() {
    let sshd = require_sshd!();
    let project = sshd.remote_home().join("p3");
    std::fs::create_dir_all(&project).unwrap();
    let marker = format!("ocr-abort-marker-{}", std::process::id());
    let bridge = start(&sshd, project.to_str().unwrap());
    runtime().block_on(async {
        let prefix = bridge.prefix();
        let mut events = Events::subscribe(&bridge).await;
        let mut client = Client::connect(&bridge.authority()).await;
        let (_, session) = client
            .json("POST", &format!("{prefix}/session"), &json!({}))
            .await;
        let id = session["id"].as_str().unwrap().to_owned();
        let command = format!("echo started; (exec -a {marker} sleep 300) & sleep 300; echo never");
        let call = shell(&bridge, &id, &command);
        let asked = events.wait_for("permission.asked").await;
        let request_id = asked["payload"]["properties"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        client
            .json(
                "POST",
                &format!("{prefix}/permission/{request_id}/reply"),
                &json!({ "reply": "once" }),
            )
            .await;
        // Wait until the output streamed in (the command is running).
        loop {
            let event = events.wait_for("message.part.updated").await;
            if event["payload"]["properties"]["part"]["state"]["metadata"]["output"] == "started\n"
            {
                break;
            }
        }
        let (status, busy) = client
            .json("GET", &format!("{prefix}/session/status"), &Value::Null)
            .await;
        assert_eq!((status, &busy[&id]["type"]), (200, &json!("busy")));
        let (status, ok) = client
            .json(
                "POST",
                &format!("{prefix}/session/{id}/abort"),
                &Value::Null,
            )
            .await;
        assert_eq!((status, ok), (200, json!(true)));
        let (status, result) = tokio::time::timeout(Duration::from_secs(15), call)
            .await
            .expect("aborted in time")
            .unwrap();
        assert_eq!(status, 200);
        let state = &result["parts"][0]["state"];
        assert_eq!(state["status"], "error");
        assert_eq!(state["metadata"]["output"], "started\n");
        assert_eq!(result["info"]["error"]["name"], "MessageAbortedError");
        let (_, idle) = client
            .json("GET", &format!("{prefix}/session/status"), &Value::Null)
            .await;
        assert_eq!(idle, json!({}));
    });
    assert!(
        !marker_running(&marker),
        "the background child of the aborted command survived"
    );
}

/// Whether a process whose argv[0] is exactly `name` runs.
fn process_named(name: &str) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .any(|entry| {
            std::fs::read(entry.path().join("cmdline"))
                .is_ok_and(|cmd| cmd.split(|&b| b == 0).next() == Some(name.as_bytes()))
        })
}

fn marker_running(marker: &str) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .any(|entry| {
            std::fs::read(entry.path().join("cmdline"))
                .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains(marker))
        })
}

#[test]
fn closing_the_connection_should_leave_no_orphan_processes() {
    let sshd = require_sshd!();
    let project = sshd.remote_home().join("p4");
    std::fs::create_dir_all(&project).unwrap();
    let marker = format!("ocr-orphan-marker-{}", std::process::id());
    let mut bridge = start(&sshd, project.to_str().unwrap());
    let stub_pid = bridge.info["stub"]["pid"].as_u64().unwrap();
    runtime().block_on(async {
        let prefix = bridge.prefix();
        let mut events = Events::subscribe(&bridge).await;
        let mut client = Client::connect(&bridge.authority()).await;
        let (_, session) = client
            .json("POST", &format!("{prefix}/session"), &json!({}))
            .await;
        let id = session["id"].as_str().unwrap().to_owned();
        let command = format!("(exec -a {marker}-bg sleep 300) & exec -a {marker}-fg sleep 300");
        let _running = shell(&bridge, &id, &command);
        let asked = events.wait_for("permission.asked").await;
        let request_id = asked["payload"]["properties"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        client
            .json(
                "POST",
                &format!("{prefix}/permission/{request_id}/reply"),
                &json!({ "reply": "once" }),
            )
            .await;
        // A liveness bound, generous for a loaded CI machine. The shell's own command line
        // names both markers too, so only processes whose argv[0] *is* the marker count, and
        // the answer of the loop is kept: reading /proc twice could catch a process mid-exec.
        let mut started = false;
        for _ in 0..400 {
            if process_named(&format!("{marker}-fg")) && process_named(&format!("{marker}-bg")) {
                started = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(started, "the command did not start within 20 s");
    });
    // The bridge goes away with the command still running (SIGKILL: no goodbye).
    bridge.child.kill().unwrap();
    bridge.child.wait().unwrap();
    let clean =
        || !marker_running(&marker) && !std::path::Path::new(&format!("/proc/{stub_pid}")).exists();
    // Two clean looks in a row: one read of /proc can miss a process in the middle of an exec.
    let gone = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        clean() && {
            std::thread::sleep(Duration::from_millis(100));
            clean()
        }
    });
    let log = std::fs::read_to_string(sshd.remote_home().join(".opencode-remote/log/stub.log"))
        .unwrap_or_default();
    assert!(
        gone,
        "processes of the closed connection are still running; stub log:\n{log}"
    );
}

#[test]
fn a_command_cut_off_by_a_lost_connection_should_be_closed_in_the_log() {
    let sshd = require_sshd!();
    let project = sshd.remote_home().join("p5");
    std::fs::create_dir_all(&project).unwrap();
    let mut bridge = start(&sshd, project.to_str().unwrap());
    let (id, part_id) = runtime().block_on(async {
        let prefix = bridge.prefix();
        let mut events = Events::subscribe(&bridge).await;
        let mut client = Client::connect(&bridge.authority()).await;
        let (_, session) = client
            .json("POST", &format!("{prefix}/session"), &json!({}))
            .await;
        let id = session["id"].as_str().unwrap().to_owned();
        let _running = shell(&bridge, &id, "echo started; sleep 300");
        let asked = events.wait_for("permission.asked").await;
        let request_id = asked["payload"]["properties"]["id"].as_str().unwrap();
        client
            .json(
                "POST",
                &format!("{prefix}/permission/{request_id}/reply"),
                &json!({ "reply": "once" }),
            )
            .await;
        loop {
            let event = events.wait_for("message.part.updated").await;
            let part = &event["payload"]["properties"]["part"];
            if part["state"]["metadata"]["output"] == "started\n" {
                break (id, part["id"].as_str().unwrap().to_owned());
            }
        }
    });
    // The connection goes away while the command runs (the bridge dies with it).
    bridge.kill();

    // The next stub for this workspace closes the call in the log: OpenCode, catching up
    // through /sync/history, sees it ended instead of running forever.
    let bridge = start(&sshd, project.to_str().unwrap());
    runtime().block_on(async {
        let prefix = bridge.prefix();
        let mut client = Client::connect(&bridge.authority()).await;
        let (status, history) = client
            .json("POST", &format!("{prefix}/sync/history"), &json!({}))
            .await;
        assert_eq!(status, 200);
        let events: Vec<&Value> = history
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["aggregate_id"] == id.as_str())
            .collect();
        // Contiguous from 0, no duplicates.
        for (index, event) in events.iter().enumerate() {
            assert_eq!(event["seq"], index as u64, "{history:#}");
        }
        let last_part = events
            .iter()
            .rev()
            .find(|e| e["data"]["part"]["id"] == part_id.as_str())
            .unwrap();
        let state = &last_part["data"]["part"]["state"];
        assert_eq!(state["status"], "error", "{state:#}");
        assert!(
            state["error"].as_str().unwrap().contains("connection"),
            "{state:#}"
        );
        assert_eq!(state["metadata"]["output"], "started\n");
        let assistant = events
            .iter()
            .rev()
            .find(|e| e["type"] == "message.updated.1" && e["data"]["info"]["role"] == "assistant")
            .unwrap();
        assert!(assistant["data"]["info"]["time"]["completed"].is_u64());
        assert_eq!(
            assistant["data"]["info"]["error"]["name"],
            "MessageAbortedError"
        );
        let (_, idle) = client
            .json("GET", &format!("{prefix}/session/status"), &Value::Null)
            .await;
        assert_eq!(idle, json!({}));
    });
}

#[test]
fn commands_should_not_be_steered_by_inherited_cdpath_or_bash_env() {
    // `cd sub` must mean <project>/sub, as the path check assumed, whatever environment the
    // host gives its sessions.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(elsewhere.path().join("sub")).unwrap();
    let bash_env = elsewhere.path().join("bash-env.sh");
    std::fs::write(&bash_env, "echo BASH-ENV-RAN\n").unwrap();
    let sshd = require_sshd!(
        Sshd::builder()
            .env("CDPATH", elsewhere.path().to_str().unwrap())
            .env("BASH_ENV", bash_env.to_str().unwrap())
    );
    let project = sshd.remote_home().join("p6");
    std::fs::create_dir_all(project.join("sub")).unwrap();
    let bridge = start(&sshd, project.to_str().unwrap());
    // The stub really got them from the host.
    let stub_pid = bridge.info["stub"]["pid"].as_u64().unwrap();
    let environ = std::fs::read(format!("/proc/{stub_pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ.contains("CDPATH=") && environ.contains("BASH_ENV="),
        "{environ}"
    );
    runtime().block_on(async {
        let prefix = bridge.prefix();
        let mut events = Events::subscribe(&bridge).await;
        let mut client = Client::connect(&bridge.authority()).await;
        let (_, session) = client
            .json("POST", &format!("{prefix}/session"), &json!({}))
            .await;
        let id = session["id"].as_str().unwrap().to_owned();
        let call = shell(&bridge, &id, "cd sub && pwd");
        let asked = events.wait_for("permission.asked").await;
        let request_id = asked["payload"]["properties"]["id"].as_str().unwrap();
        client
            .json(
                "POST",
                &format!("{prefix}/permission/{request_id}/reply"),
                &json!({ "reply": "once" }),
            )
            .await;
        let (status, result) = tokio::time::timeout(Duration::from_secs(20), call)
            .await
            .expect("shell finished")
            .unwrap();
        assert_eq!(status, 200);
        assert_eq!(
            result["parts"][0]["state"]["output"],
            format!("{}/sub\n", project.display()),
            "{result:#}"
        );
    });
}

#[test]
fn abort_while_waiting_for_permission_should_end_as_an_abort_and_close_the_prompt() {
    let sshd = require_sshd!();
    let project = sshd.remote_home().join("p7");
    std::fs::create_dir_all(&project).unwrap();
    let bridge = start(&sshd, project.to_str().unwrap());
    runtime().block_on(async {
        let prefix = bridge.prefix();
        let mut events = Events::subscribe(&bridge).await;
        let mut client = Client::connect(&bridge.authority()).await;
        let (_, session) = client
            .json("POST", &format!("{prefix}/session"), &json!({}))
            .await;
        let id = session["id"].as_str().unwrap().to_owned();
        let call = shell(&bridge, &id, "echo never");
        let asked = events.wait_for("permission.asked").await;
        let request_id = asked["payload"]["properties"]["id"].as_str().unwrap();
        let (status, ok) = client
            .json(
                "POST",
                &format!("{prefix}/session/{id}/abort"),
                &Value::Null,
            )
            .await;
        assert_eq!((status, ok), (200, json!(true)));
        let replied = events.wait_for("permission.replied").await;
        assert_eq!(replied["payload"]["properties"]["requestID"], request_id);
        let (status, result) = tokio::time::timeout(Duration::from_secs(15), call)
            .await
            .expect("aborted in time")
            .unwrap();
        assert_eq!(status, 200);
        assert_eq!(result["info"]["error"]["name"], "MessageAbortedError");
        let state = &result["parts"][0]["state"];
        assert_eq!(state["status"], "error");
        assert_eq!(state["error"], "Command aborted by the user", "{state:#}");
        let (_, pending) = client
            .json("GET", &format!("{prefix}/permission"), &Value::Null)
            .await;
        assert_eq!(pending, json!([]));
    });
}

#[test]
fn the_session_list_should_filter_and_page_like_opencode() {
    let sshd = require_sshd!();
    let project = sshd.remote_home().join("listing");
    std::fs::create_dir_all(&project).unwrap();
    let bridge = start(&sshd, project.to_str().unwrap());
    runtime().block_on(async {
        let prefix = bridge.prefix();
        let mut client = Client::connect(&bridge.authority()).await;
        let mut create = async |body: Value| {
            let (status, info) = client
                .json("POST", &format!("{prefix}/session"), &body)
                .await;
            assert_eq!(status, 200, "{info}");
            // Distinct update times.
            tokio::time::sleep(Duration::from_millis(5)).await;
            info["id"].as_str().unwrap().to_owned()
        };
        let first = create(json!({ "title": "Alpha one" })).await;
        let child = create(json!({ "title": "beta", "parentID": first })).await;
        let archived = create(json!({ "title": "alpha archived" })).await;
        let newest = create(json!({ "title": "ALPHA two" })).await;
        let (status, _) = client
            .json(
                "PATCH",
                &format!("{prefix}/session/{archived}"),
                &json!({ "time": { "archived": 1 } }),
            )
            .await;
        assert_eq!(status, 200);

        let mut list = async |query: &str| -> (Vec<String>, Option<String>) {
            let response = client
                .send(
                    "GET",
                    &format!("{prefix}/experimental/session?{query}"),
                    b"",
                    &[],
                )
                .await;
            assert_eq!(response.status(), 200, "{query}");
            let cursor = response
                .headers()
                .get("x-next-cursor")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            let sessions: Vec<Value> = serde_json::from_slice(&body).unwrap();
            for session in &sessions {
                assert_eq!(session["project"]["id"], PROJECT, "{session}");
            }
            let ids = sessions
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_owned())
                .collect();
            (ids, cursor)
        };
        // Newest first; archived ones only on request (archiving updated it last).
        assert_eq!(
            list("").await,
            (vec![newest.clone(), child.clone(), first.clone()], None)
        );
        assert_eq!(
            list("archived=true").await.0,
            [
                archived.as_str(),
                newest.as_str(),
                child.as_str(),
                first.as_str()
            ]
        );
        assert_eq!(
            list("roots=true").await.0,
            [newest.as_str(), first.as_str()]
        );
        assert_eq!(
            list("search=alpha").await.0,
            [newest.as_str(), first.as_str()]
        );
        // Pages: the cursor continues where the previous page ended.
        let (page, cursor) = list("limit=2").await;
        assert_eq!(page, [newest.as_str(), child.as_str()]);
        let cursor = cursor.expect("x-next-cursor on a full page");
        assert_eq!(
            list(&format!("limit=2&cursor={cursor}")).await,
            (vec![first.clone()], None)
        );
        // Bad values are named.
        let (status, error) = client
            .json(
                "GET",
                &format!("{prefix}/experimental/session?roots=maybe"),
                &Value::Null,
            )
            .await;
        assert_eq!(status, 400);
        assert!(error.to_string().contains("roots"), "{error}");
    });
}

#[test]
fn what_hosts_cannot_do_yet_should_get_a_clear_501() {
    let sshd = require_sshd!();
    let project = sshd.remote_home().join("not-yet");
    std::fs::create_dir_all(&project).unwrap();
    let bridge = start(&sshd, project.to_str().unwrap());
    runtime().block_on(async {
        let prefix = bridge.prefix();
        let mut client = Client::connect(&bridge.authority()).await;
        let (_, session) = client
            .json("POST", &format!("{prefix}/session"), &json!({}))
            .await;
        let id = session["id"].as_str().unwrap();
        // A prompt without a model, on a bridge that cannot ask a local OpenCode for the
        // default, is refused with the field named, and nothing runs.
        let prompt = json!({ "parts": [{ "type": "text", "text": "hello" }] });
        for path in ["message", "prompt_async"] {
            let (status, body) = client
                .json("POST", &format!("{prefix}/session/{id}/{path}"), &prompt)
                .await;
            assert_eq!(status, 400, "{path}: {body}");
            assert!(body.to_string().contains("`model`"), "{path}: {body}");
        }
        let (status, body) = client
            .json("POST", &format!("{prefix}/session/{id}/command"), &prompt)
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.to_string().contains("arguments"), "{body}");
        for path in ["summarize", "revert", "fork"] {
            let (status, body) = client
                .json("POST", &format!("{prefix}/session/{id}/{path}"), &json!({}))
                .await;
            assert_eq!(status, 501, "{path}: {body}");
            assert!(
                body.to_string().contains(&format!("/{path} does not run")),
                "{path}: {body}"
            );
        }
        // No terminals yet (tests/terminal.rs opens them): unknown ones are OpenCode's 404.
        let (status, list) = client
            .json("GET", &format!("{prefix}/pty"), &Value::Null)
            .await;
        assert_eq!((status, list), (200, json!([])));
        let (status, body) = client
            .json("GET", &format!("{prefix}/pty/pty_x"), &Value::Null)
            .await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["_tag"], "PtyNotFoundError");
        assert_eq!(body["ptyID"], "pty_x");
        // Unknown routes are 404s naming the route, and the connection stays usable.
        let (status, body) = client
            .json("GET", &format!("{prefix}/no/such/route"), &Value::Null)
            .await;
        assert_eq!(status, 404, "{body}");
        assert!(body.to_string().contains("/no/such/route"), "{body}");
        let (status, _) = client
            .json("GET", &format!("{prefix}/global/health"), &Value::Null)
            .await;
        assert_eq!(status, 200);
    });
}
