//! An aarch64 host (arm64 Debian under qemu-user, see `integration_tests::arm64`): the bridge
//! picks and uploads the embedded aarch64 stub, and the stub serves the workspace there, through
//! the bridge and through the real OpenCode.

use std::time::{Duration, Instant};

use integration_tests::bins;
use integration_tests::bridge::BridgeProcess;
use integration_tests::http::Client;
use integration_tests::{require_opencode, require_sshd};
use serde_json::{Value, json};

use crate::opencode::{answer_pending_permission, options, runtime, shell, tool_parts};

/// The aarch64 stub `opencode-remote` embeds, or `None` (after saying why) when this build left
/// it out and the test is not required.
fn aarch64_stub() -> Option<Vec<u8>> {
    match bins::static_stub_for("aarch64") {
        Ok(path) => Some(std::fs::read(path).unwrap()),
        Err(missing) => {
            let reason = format!(
                "{} is missing: the build had no aarch64 toolchain (scripts/install-deps.sh \
                 installs it; then rebuild)",
                missing.display()
            );
            assert!(!integration_tests::arm64::required(), "{reason}");
            eprintln!("SKIP: {reason}");
            None
        }
    }
}

#[test]
fn an_aarch64_host_should_get_the_aarch64_stub_and_work_through_the_bridge() {
    let Some(stub) = aarch64_stub() else { return };
    let Some(builder) = integration_tests::arm64::sshd_builder() else {
        return;
    };
    let started = Instant::now();
    let sshd = require_sshd!(builder);
    eprintln!("aarch64 sshd up in {:?}", started.elapsed());
    let project = sshd.remote_home().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("notes.txt"), "needle in an arm64 haystack\n").unwrap();
    let project = project.to_str().unwrap().to_owned();

    let started = Instant::now();
    let bridge = BridgeProcess::start(&sshd, &["--directory", &project]);
    eprintln!(
        "installed and connected in {:?} ({} byte stub)",
        started.elapsed(),
        stub.len()
    );
    assert_eq!(bridge.info["stub"]["arch"], "aarch64", "{}", bridge.info);
    assert_eq!(bridge.info["stub"]["installed"], true, "{}", bridge.info);
    assert_eq!(bridge.info["stub"]["directory"], project.as_str());
    let installed = sshd
        .remote_home()
        .join(".opencode-remote/bin/opencode-remote-stub");
    assert!(
        std::fs::read(&installed).unwrap() == stub,
        "the host got another stub than the embedded aarch64 one"
    );

    let prefix = bridge.prefix();
    runtime().block_on(async {
        let mut client = Client::connect(&bridge.authority()).await;
        let (status, health) = client
            .json("GET", &format!("{prefix}/global/health"), &Value::Null)
            .await;
        assert_eq!(status, 200, "{health}");

        let (status, session) = client
            .json(
                "POST",
                &format!("{prefix}/session"),
                &json!({ "title": "arm64" }),
            )
            .await;
        assert_eq!(status, 200, "{session}");
        let id = session["id"].as_str().unwrap().to_owned();
        // `!shell` asks for the project directory first: answer from a second connection.
        let authority = bridge.authority();
        let path = format!("{prefix}/session/{id}/shell");
        let call = tokio::spawn(async move {
            let mut client = Client::connect(&authority).await;
            let body = json!({ "agent": "build", "command": "uname -m; cat notes.txt" });
            client.json("POST", &path, &body).await
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while !call.is_finished() && Instant::now() < deadline {
            let (_, pending) = client
                .json("GET", &format!("{prefix}/permission"), &Value::Null)
                .await;
            if let Some(request) = pending.as_array().and_then(|p| p.first()) {
                let request = request["id"].as_str().unwrap();
                let (status, _) = client
                    .json(
                        "POST",
                        &format!("{prefix}/permission/{request}/reply"),
                        &json!({ "reply": "always" }),
                    )
                    .await;
                assert_eq!(status, 200);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (status, result) = call.await.unwrap();
        assert_eq!(status, 200, "{result}");
        assert_eq!(
            result["parts"][0]["state"]["output"],
            "aarch64\nneedle in an arm64 haystack\n"
        );

        let (status, listing) = client
            .json("GET", &format!("{prefix}/file?path=."), &Value::Null)
            .await;
        assert_eq!(status, 200, "{listing}");
        assert_eq!(listing[0]["name"], "notes.txt", "{listing}");
        let (status, found) = client
            .json(
                "GET",
                &format!("{prefix}/find?pattern=haystack"),
                &Value::Null,
            )
            .await;
        assert_eq!(status, 200, "{found}");
        assert_eq!(found[0]["path"]["text"], "notes.txt", "{found}");
    });
}

#[test]
fn a_workspace_on_an_aarch64_host_should_work_through_real_opencode() {
    if aarch64_stub().is_none() {
        return;
    }
    let Some(builder) = integration_tests::arm64::sshd_builder() else {
        return;
    };
    let sshd = require_sshd!(builder);
    let remote_dir = sshd.remote_home().join("srv");
    std::fs::create_dir_all(&remote_dir).unwrap();
    std::fs::write(remote_dir.join("README.md"), "hello from aarch64\n").unwrap();
    let remote_dir = remote_dir.to_str().unwrap().to_owned();
    let opencode = require_opencode!(&sshd, options(&sshd, &remote_dir));

    runtime().block_on(async {
        let mut client = Client::connect(&opencode.authority()).await;
        let (status, workspace) = client
            .json(
                "POST",
                &format!("/experimental/workspace{}", opencode.query("")),
                &json!({ "type": "ssh-provider", "branch": null,
                         "extra": { "provider": "default", "host": "test-host" } }),
            )
            .await;
        assert_eq!(status, 200, "{workspace}\n{}", opencode.log());
        let wrk = workspace["id"].as_str().unwrap().to_owned();
        opencode
            .wait_status(&mut client, &wrk, "connected", Duration::from_secs(30))
            .await;

        let query = opencode.query(&format!("workspace={wrk}"));
        let (status, session) = client
            .json(
                "POST",
                &format!("/session{query}"),
                &json!({ "title": "on arm64" }),
            )
            .await;
        assert_eq!(status, 200, "{session}\n{}", opencode.log());
        let ses = session["id"].as_str().unwrap().to_owned();
        let sessions = opencode.sessions_in(&mut client, &wrk).await;
        assert!(
            sessions.iter().any(|s| s["id"] == ses.as_str()),
            "{sessions:?}"
        );

        let call = shell(&opencode, &ses, "uname -m");
        answer_pending_permission(&opencode, &mut client, &wrk, "always").await;
        let (status, result) = call.await.unwrap();
        assert_eq!(status, 200, "{result}");
        assert_eq!(result["parts"][0]["state"]["output"], "aarch64\n");
        let parts = tool_parts(&opencode, &mut client, &ses).await;
        assert_eq!(parts.len(), 1, "{parts:?}");
        assert_eq!(parts[0]["state"]["output"], "aarch64\n");

        let (status, listing) = client
            .json("GET", &format!("/file{query}&path=."), &Value::Null)
            .await;
        assert_eq!(status, 200, "{listing}");
        assert_eq!(listing[0]["name"], "README.md", "{listing}");
    });
}
