//! Terminals on the host (`/pty`) through a real bridge and sshd, driven the way OpenCode's
//! web and desktop apps use them: permission first, a WebSocket with OpenCode's framing,
//! resize, signals, reconnecting with a cursor, exit codes and closing.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use integration_tests::bridge::BridgeProcess;
use integration_tests::http::Client;
use integration_tests::require_sshd;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const WORKSPACE: &str = "wrk_20c15b2ae001Fv8H8sf4Afbcgx";
const PROJECT: &str = "cb6c03c7a725c53b33387b6cb07e0db024e5db41";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A terminal client: output seen so far and the cursor (UTF-16 units, as the web app counts).
struct Term {
    ws: Ws,
    seen: String,
    cursor: u64,
    meta: Vec<u64>,
}

impl Term {
    async fn connect(bridge: &BridgeProcess, id: &str, cursor: Option<u64>) -> Term {
        let query = cursor.map_or(String::new(), |c| format!("?cursor={c}"));
        let url = format!(
            "ws://{}{}/pty/{id}/connect{query}",
            bridge.authority(),
            bridge.prefix()
        );
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Term {
            ws,
            seen: String::new(),
            cursor: cursor.unwrap_or(0),
            meta: Vec::new(),
        }
    }

    async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// Reads until the output seen contains `needle` (≤ 15 s).
    async fn until(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !self.seen.contains(needle) {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no {needle:?} in {:?}", self.seen))
                .unwrap_or_else(|| panic!("closed before {needle:?}: {:?}", self.seen))
                .unwrap();
            self.take(message);
        }
        self.seen.clone()
    }

    fn take(&mut self, message: Message) {
        match message {
            Message::Text(text) => {
                self.cursor += text.encode_utf16().count() as u64;
                self.seen.push_str(&text);
            }
            Message::Binary(bytes) => {
                assert_eq!(bytes[0], 0, "metadata frames start with 0x00");
                let meta: Value = serde_json::from_slice(&bytes[1..]).unwrap();
                let cursor = meta["cursor"].as_u64().unwrap();
                self.cursor = cursor;
                self.meta.push(cursor);
            }
            _ => {}
        }
    }

    /// Waits for the metadata frame that ends the replay.
    async fn until_meta(&mut self) {
        while self.meta.is_empty() {
            let message = tokio::time::timeout(Duration::from_secs(15), self.ws.next())
                .await
                .expect("no metadata frame")
                .unwrap()
                .unwrap();
            self.take(message);
        }
    }
}

async fn wait_for(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Value>, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let event = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {kind} event within 20 s"))
            .expect("event stream ended");
        if event["payload"]["type"] == kind {
            return event;
        }
    }
}

#[test]
fn terminals_should_work_through_the_bridge_like_in_opencode() {
    let sshd = require_sshd!();
    let project = sshd.remote_home().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let mut bridge = BridgeProcess::start(
        &sshd,
        &[
            "--workspace-id",
            WORKSPACE,
            "--project-id",
            PROJECT,
            "--directory",
            project.to_str().unwrap(),
        ],
    );
    let directory = project.canonicalize().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let prefix = bridge.prefix();
        let mut events = integration_tests::http::subscribe(
            &bridge.authority(),
            &format!("{prefix}/global/event"),
        )
        .await;
        let mut client = Client::connect(&bridge.authority()).await;
        let (status, list) = client
            .json("GET", &format!("{prefix}/pty"), &Value::Null)
            .await;
        assert_eq!((status, list), (200, json!([])));
        let (status, shells) = client
            .json("GET", &format!("{prefix}/pty/shells"), &Value::Null)
            .await;
        assert_eq!(status, 200);
        assert!(
            shells
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["acceptable"] == true),
            "{shells}"
        );

        // Opening a terminal asks first; `once` opens this one only.
        let authority = bridge.authority();
        let path = format!("{prefix}/pty");
        let create = tokio::spawn(async move {
            let mut client = Client::connect(&authority).await;
            client
                .json(
                    "POST",
                    &path,
                    &json!({ "command": "/bin/bash", "title": "host shell" }),
                )
                .await
        });
        let asked = wait_for(&mut events, "permission.asked").await;
        let request = &asked["payload"]["properties"];
        assert_eq!(request["permission"], "terminal");
        assert!(request["sessionID"].as_str().unwrap().starts_with("ses_"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !create.is_finished(),
            "the terminal opened before the answer"
        );
        let request_id = request["id"].as_str().unwrap();
        let (status, _) = client
            .json(
                "POST",
                &format!("{prefix}/permission/{request_id}/reply"),
                &json!({ "reply": "once" }),
            )
            .await;
        assert_eq!(status, 200);
        let (status, pty) = create.await.unwrap();
        assert_eq!(status, 200, "{pty}");
        let id = pty["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("pty_"));
        assert_eq!(pty["title"], "host shell");
        assert_eq!(pty["command"], "/bin/bash");
        assert_eq!(pty["args"], json!(["-l"]));
        assert_eq!(pty["cwd"], directory.to_str().unwrap());
        assert_eq!(pty["status"], "running");
        let created = wait_for(&mut events, "pty.created").await;
        assert_eq!(created["payload"]["properties"]["info"]["id"], id.as_str());
        assert_eq!(created["workspace"], WORKSPACE);

        let (status, got) = client
            .json("GET", &format!("{prefix}/pty/{id}"), &Value::Null)
            .await;
        assert_eq!((status, &got["id"]), (200, &json!(id)));
        let (status, resized) = client
            .json(
                "PUT",
                &format!("{prefix}/pty/{id}"),
                &json!({ "size": { "rows": 40, "cols": 100 } }),
            )
            .await;
        assert_eq!((status, &resized["id"]), (200, &json!(id)));
        wait_for(&mut events, "pty.updated").await;

        // Output, size, login shell, a real tty.
        let mut term = Term::connect(&bridge, &id, None).await;
        term.until_meta().await;
        term.send("stty size; echo \"zero=$0\"; tty; echo done-$((0+1))\n")
            .await;
        let seen = term.until("done-1\r\n").await;
        assert!(seen.contains("40 100"), "{seen:?}");
        assert!(
            seen.contains("zero=/bin/bash") || seen.contains("zero=-bash"),
            "{seen:?}"
        );
        assert!(seen.contains("/dev/pts/"), "{seen:?}");

        // Resizing reaches the program as SIGWINCH.
        term.send("trap 'echo got-$((7*6))' WINCH; echo trap-$((1+1))\n")
            .await;
        term.until("trap-2\r\n").await;
        client
            .json(
                "PUT",
                &format!("{prefix}/pty/{id}"),
                &json!({ "size": { "rows": 30, "cols": 90 } }),
            )
            .await;
        term.send("stty size\n").await;
        term.until("30 90").await;
        term.until("got-42").await;

        // Ctrl-C interrupts a running program.
        term.send("sleep 60\n").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        term.send("\u{3}").await;
        term.send("echo after-sleep-$?\n").await;
        term.until("after-sleep-130").await;

        // A full-screen program: vi draws its screen and writes the file typed into it.
        term.send("vi -u NONE vi-test.txt\n").await;
        term.until("vi-test.txt").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        term.send("ihello-vi\u{1b}:wq\r").await;
        let written = project.join("vi-test.txt");
        let saved = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(25));
            std::fs::read_to_string(&written).is_ok_and(|t| t == "hello-vi\n")
        });
        assert!(saved, "vi did not save: {:?}", term.seen);

        // Disconnect; output produced meanwhile arrives once after reconnecting with the cursor.
        term.send("echo sync-$((2+3))\n").await;
        term.until("sync-5\r\n").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_millis(300), term.ws.next()).await
        {
            term.take(message);
        }
        let cursor = term.cursor;
        let _ = term.ws.close(None).await;
        drop(term);
        let mut writer = Term::connect(&bridge, &id, Some(u64::MAX >> 12)).await;
        writer.until_meta().await;
        assert_eq!(
            writer.seen, "",
            "a cursor at or past the end replays nothing"
        );
        writer.send("echo missed-$((40+2))\n").await;
        writer.until("missed-42\r\n").await;
        let _ = writer.ws.close(None).await;
        drop(writer);
        let mut again = Term::connect(&bridge, &id, Some(cursor)).await;
        again.until_meta().await;
        assert_eq!(
            again.seen.matches("missed-42").count(),
            1,
            "{:?}",
            again.seen
        );
        assert!(!again.seen.contains("sync-5"), "{:?}", again.seen);

        // `exit 3` ends the terminal with its code.
        again.send("exit 3\n").await;
        let exited = wait_for(&mut events, "pty.exited").await;
        assert_eq!(exited["payload"]["properties"]["id"], id.as_str());
        assert_eq!(exited["payload"]["properties"]["exitCode"], 3);
        let (status, gone) = client
            .json("GET", &format!("{prefix}/pty/{id}"), &Value::Null)
            .await;
        assert_eq!(status, 404);
        assert_eq!(gone["_tag"], "PtyNotFoundError");

        // `always` opens this one and later ones without asking; DELETE kills what runs.
        let authority = bridge.authority();
        let path = format!("{prefix}/pty");
        let create = tokio::spawn(async move {
            let mut client = Client::connect(&authority).await;
            client
                .json(
                    "POST",
                    &path,
                    &json!({ "command": "sleep", "args": ["300"] }),
                )
                .await
        });
        let asked = wait_for(&mut events, "permission.asked").await;
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
        let (status, sleeper) = create.await.unwrap();
        assert_eq!(status, 200, "{sleeper}");
        let sleeper_id = sleeper["id"].as_str().unwrap().to_owned();
        let pid = sleeper["pid"].as_u64().unwrap() as i32;
        let (status, second) = client
            .json(
                "POST",
                &format!("{prefix}/pty"),
                &json!({ "command": "/bin/sh" }),
            )
            .await;
        assert_eq!(status, 200, "{second}");
        let (status, list) = client
            .json("GET", &format!("{prefix}/pty"), &Value::Null)
            .await;
        assert_eq!(status, 200);
        assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
        let (status, removed) = client
            .json(
                "DELETE",
                &format!("{prefix}/pty/{sleeper_id}"),
                &Value::Null,
            )
            .await;
        assert_eq!((status, removed), (200, json!(true)));
        let deleted = wait_for(&mut events, "pty.deleted").await;
        assert_eq!(deleted["payload"]["properties"]["id"], sleeper_id.as_str());
        let dead = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |s| s.split(' ').nth(2) == Some("Z"))
        });
        assert!(dead, "sleep {pid} survived DELETE");

        // A connect ticket as OpenCode hands it out.
        let second_id = second["id"].as_str().unwrap();
        let response = client
            .send(
                "POST",
                &format!("{prefix}/pty/{second_id}/connect-token"),
                b"",
                &[("x-opencode-ticket", "1")],
            )
            .await;
        assert_eq!(response.status(), 200);
        let (status, refused) = client
            .json(
                "POST",
                &format!("{prefix}/pty/{second_id}/connect-token"),
                &Value::Null,
            )
            .await;
        assert_eq!(status, 403);
        assert_eq!(refused["_tag"], "PtyForbiddenError");

        // The stub's exit (the connection ends) takes every terminal with it.
        let shell_pid = second["pid"].as_u64().unwrap();
        bridge.kill();
        let gone = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            std::fs::read_to_string(format!("/proc/{shell_pid}/stat"))
                .map_or(true, |s| s.split(' ').nth(2) == Some("Z"))
        });
        assert!(gone, "terminal shell {shell_pid} outlived the stub");
    });
}

/// Benchmark (printed, not asserted; `--ignored`): keystroke echo round trip and bulk output
/// through a host terminal over the bridge, against `ssh -tt` to the same sshd.
#[test]
#[ignore = "benchmark; run with --ignored --nocapture"]
fn terminal_echo_and_bulk_against_ssh() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const ROUNDS: usize = 300;
    const BULK: u64 = 64 << 20;
    let sshd = require_sshd!();
    let project = sshd.remote_home().join("bench");
    std::fs::create_dir_all(&project).unwrap();
    let bridge = BridgeProcess::start(
        &sshd,
        &[
            "--workspace-id",
            WORKSPACE,
            "--project-id",
            PROJECT,
            "--directory",
            project.to_str().unwrap(),
        ],
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pct = |mut v: Vec<f64>, p: f64| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() as f64 - 1.0) * p) as usize]
    };
    runtime.block_on(async {
        let prefix = bridge.prefix();
        let mut events = integration_tests::http::subscribe(&bridge.authority(), &format!("{prefix}/global/event")).await;
        let mut client = Client::connect(&bridge.authority()).await;
        let (authority, path) = (bridge.authority(), format!("{prefix}/pty"));
        let create = tokio::spawn(async move {
            let mut client = Client::connect(&authority).await;
            client.json("POST", &path, &json!({ "command": "/bin/sh" })).await
        });
        let asked = wait_for(&mut events, "permission.asked").await;
        let request_id = asked["payload"]["properties"]["id"].as_str().unwrap().to_owned();
        client.json("POST", &format!("{prefix}/permission/{request_id}/reply"), &json!({ "reply": "once" })).await;
        let (_, pty) = create.await.unwrap();
        let id = pty["id"].as_str().unwrap().to_owned();
        let mut term = Term::connect(&bridge, &id, None).await;
        term.until_meta().await;
        term.send("cat\n").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut bridge_rtt = Vec::new();
        for i in 0..ROUNDS {
            let c = char::from(b'a' + (i % 26) as u8);
            let before = term.seen.len();
            let started = std::time::Instant::now();
            term.send(&c.to_string()).await;
            while !term.seen[before..].contains(c) {
                let message = term.ws.next().await.unwrap().unwrap();
                term.take(message);
            }
            bridge_rtt.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        term.send("\n\u{4}").await;
        term.send("yes 0123456789abcdef | head -c 67108864; echo; echo bulk-$((1))\n").await;
        let started = std::time::Instant::now();
        let mut tail = String::new();
        loop {
            match term.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    term.cursor += text.encode_utf16().count() as u64;
                    tail.push_str(&text);
                    if tail.contains("bulk-1\r\n") {
                        break;
                    }
                    let keep = tail.len().saturating_sub(64);
                    let keep = (keep..tail.len()).find(|i| tail.is_char_boundary(*i)).unwrap_or(0);
                    tail.drain(..keep);
                }
                Some(Ok(_)) => {}
                // Fell behind: reconnect with the cursor, as OpenCode's app does.
                _ => {
                    let cursor = term.cursor;
                    term = Term::connect(&bridge, &id, Some(cursor)).await;
                }
            }
        }
        let bridge_bulk = BULK as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64();

        let mut ssh = tokio::process::Command::from(sshd.ssh_command());
        ssh.args(["-tt", "cat"]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
        let mut child = ssh.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut ssh_rtt = Vec::new();
        let mut buf = [0u8; 4096];
        for i in 0..ROUNDS {
            let c = b'a' + (i % 26) as u8;
            let started = std::time::Instant::now();
            stdin.write_all(&[c]).await.unwrap();
            loop {
                let n = stdout.read(&mut buf).await.unwrap();
                if buf[..n].contains(&c) {
                    break;
                }
            }
            ssh_rtt.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        drop(stdin);
        let _ = child.kill().await;
        let mut ssh = tokio::process::Command::from(sshd.ssh_command());
        ssh.args(["-tt", "yes 0123456789abcdef | head -c 67108864"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let started = std::time::Instant::now();
        let mut child = ssh.spawn().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut sink = vec![0u8; 1 << 16];
        while stdout.read(&mut sink).await.unwrap() > 0 {}
        let ssh_bulk = BULK as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64();
        let _ = child.wait().await;

        eprintln!(
            "terminal echo round trip (ms): bridge p50 {:.3} p99 {:.3} | ssh -tt p50 {:.3} p99 {:.3} | p50 ratio {:.2}",
            pct(bridge_rtt.clone(), 0.5), pct(bridge_rtt.clone(), 0.99),
            pct(ssh_rtt.clone(), 0.5), pct(ssh_rtt.clone(), 0.99),
            pct(bridge_rtt, 0.5) / pct(ssh_rtt, 0.5),
        );
        eprintln!(
            "terminal bulk output (64 MiB): bridge {bridge_bulk:.1} MiB/s | ssh -tt {ssh_bulk:.1} MiB/s | ratio {:.2}",
            bridge_bulk / ssh_bulk
        );
    });
}
