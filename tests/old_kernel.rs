//! The static stub on an "old kernel": every syscall newer than Linux 3.10 (CentOS/RHEL 7)
//! fails with ENOSYS (a seccomp filter, tests/tools/oldkernel_exec.py), and the stub must
//! still serve sessions, `!shell` with a permission prompt, files and search.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

const FILTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/oldkernel_exec.py");

fn filter_available() -> bool {
    let ok = Path::new(FILTER).is_file()
        && std::process::Command::new("/usr/bin/python3")
            .args(["-c", "import seccomp"])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        let reason = "the old-kernel filter needs python3-seccomp";
        assert!(std::env::var_os("CI").is_none(), "{reason}");
        eprintln!("SKIP: {reason}");
    }
    ok
}

#[derive(Clone)]
struct Stub {
    client: h2::client::SendRequest<Bytes>,
}

impl Stub {
    async fn request(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("http://stub{path}"))
            .body(())
            .unwrap();
        let mut client = self.client.clone().ready().await.unwrap();
        let (response, mut send) = client.send_request(request, body.is_none()).unwrap();
        if let Some(body) = body {
            send.send_data(Bytes::from(body.to_string()), true).unwrap();
        }
        let response = response.await.unwrap();
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            body.flow_control().release_capacity(chunk.len()).unwrap();
            bytes.extend_from_slice(&chunk);
        }
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

#[test]
fn the_stub_should_work_without_syscalls_newer_than_linux_3_10() {
    if !filter_available() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let project = home.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("notes.txt"), "needle in a haystack\n").unwrap();
    let stub = integration_tests::bins::static_stub();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut child = tokio::process::Command::new("/usr/bin/python3")
            .arg(FILTER)
            .arg(&stub)
            .args(["--stdio", "--directory"])
            .arg(&project)
            .env("HOME", home.path())
            .env("SHELL", "/bin/sh")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let io = tokio::io::join(child.stdout.take().unwrap(), child.stdin.take().unwrap());
        let (client, connection) = h2::client::handshake(io).await.unwrap();
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        let stub = Stub { client };

        let (status, health) = stub.request("GET", "/global/health", None).await;
        assert_eq!(status, 200, "{health}");
        let (status, session) = stub
            .request("POST", "/session", Some(json!({ "title": "old kernel" })))
            .await;
        assert_eq!(status, 200, "{session}");
        let id = session["id"].as_str().unwrap().to_owned();

        // The shell waits for a permission answer; answer it from a second stream.
        let asker = stub.clone();
        let shell = tokio::spawn(async move {
            asker
                .request(
                    "POST",
                    &format!("/session/{id}/shell"),
                    Some(json!({ "agent": "build", "command": "cat notes.txt; echo done" })),
                )
                .await
        });
        let mut pending = Value::Null;
        for _ in 0..400 {
            let (_, list) = stub.request("GET", "/permission", None).await;
            if list.as_array().is_some_and(|l| !l.is_empty()) {
                pending = list;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let request_id = pending[0]["id"]
            .as_str()
            .expect("a permission request")
            .to_owned();
        let (status, _) = stub
            .request(
                "POST",
                &format!("/permission/{request_id}/reply"),
                Some(json!({ "reply": "always" })),
            )
            .await;
        assert_eq!(status, 200);
        let (status, result) = shell.await.unwrap();
        assert_eq!(status, 200, "{result}");
        assert_eq!(
            result["parts"][0]["state"]["output"],
            "needle in a haystack\ndone\n"
        );

        let (status, listing) = stub.request("GET", "/file?path=.", None).await;
        assert_eq!(status, 200);
        assert_eq!(listing[0]["name"], "notes.txt");
        let (status, found) = stub.request("GET", "/find?pattern=needle", None).await;
        assert_eq!(status, 200);
        assert_eq!(found[0]["path"]["text"], "notes.txt");
        let (_, history) = stub.request("POST", "/sync/history", Some(json!({}))).await;
        // session.created + the 7 events of a shell call (user message, its text part, assistant
        // message, tool running, running with output, assistant completed, tool completed).
        let seqs: Vec<u64> = history
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, (0..8).collect::<Vec<_>>(), "{history}");
        drop(stub);
        connection.abort();
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{status:?}");
    });
    // The approval was persisted with the old-kernel code paths (no renameat2, no getrandom).
    let approvals = home.path().join(".opencode-remote/state/approvals");
    assert!(std::fs::read_dir(approvals).unwrap().count() >= 1);
}
