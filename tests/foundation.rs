//! The transport path against a real sshd: install, handshake, bridge, lifecycle, host keys,
//! auth, and bad input.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use integration_tests::bins::{destination, local};
use integration_tests::bridge::BridgeProcess;
use integration_tests::http::{Client, next_chunk};
use integration_tests::require_sshd;
use integration_tests::sshd::{KnownHosts, Sshd};

fn run_ok(command: &mut std::process::Command) -> (String, String) {
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "failed: {command:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    eprintln!("{stderr}");
    (stdout, stderr)
}

fn run_err(command: &mut std::process::Command) -> String {
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "unexpectedly succeeded: {command:?}\nstderr: {stderr}"
    );
    stderr
}

fn stub_path(sshd: &Sshd) -> std::path::PathBuf {
    sshd.remote_home()
        .join(".opencode-remote/bin/opencode-remote-stub")
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // Field 3 is the state; a zombie is dead for our purposes.
        stat.rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            != Some("Z")
    })
}

fn wait_gone(pid: u32, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if !pid_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !pid_alive(pid)
}

#[test]
fn health_should_install_the_stub_and_report_it() {
    let sshd = require_sshd!();
    let (stdout, _) = run_ok(local(&sshd).args(["health", &destination(&sshd)]));
    let health: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(health["healthy"], true);
    assert_eq!(health["stub"]["manual"], false);
    assert_eq!(
        health["stub"]["directory"],
        sshd.remote_home().canonicalize().unwrap().to_str().unwrap()
    );
    let stub = stub_path(&sshd);
    assert!(stub.is_file());
    let layout = [
        "bin",
        "log",
        "state/workspaces",
        "state/sessions",
        "state/approvals",
    ];
    for dir in layout {
        assert!(
            sshd.remote_home()
                .join(".opencode-remote")
                .join(dir)
                .is_dir(),
            "{dir}"
        );
    }
    let log =
        std::fs::read_to_string(sshd.remote_home().join(".opencode-remote/log/stub.log")).unwrap();
    assert!(log.contains("handshake accepted"), "{log}");
}

#[test]
fn install_should_be_fresh_then_a_no_op_then_upgrade() {
    let sshd = require_sshd!();
    let install = |extra: &[&str]| {
        let (stdout, _) = run_ok(
            local(&sshd)
                .args(["install", &destination(&sshd)])
                .args(extra),
        );
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()
    };
    let first = install(&[]);
    assert_eq!(first["result"], "installed", "{first}");
    assert!(
        first["stub"]
            .as_str()
            .unwrap()
            .starts_with("opencode-remote-stub "),
        "{first}"
    );
    let stub = stub_path(&sshd);
    let stamp_path = stub.with_file_name("opencode-remote-stub.id");
    let stamp = std::fs::read_to_string(&stamp_path).unwrap();
    let modified = std::fs::metadata(&stub).unwrap().modified().unwrap();

    let second = install(&[]);
    assert_eq!(second["result"], "already up to date", "{second}");
    assert_eq!(
        std::fs::metadata(&stub).unwrap().modified().unwrap(),
        modified,
        "no-op must not rewrite"
    );

    // An older build on the host: different bytes and stamp.
    std::fs::write(&stub, "#!/bin/sh\necho opencode-remote-stub 0.0.1\n").unwrap();
    std::fs::write(&stamp_path, "0.0.1 123 45\n").unwrap();
    let third = install(&[]);
    assert_eq!(third["result"], "upgraded (was 0.0.1 123 45)", "{third}");
    assert_eq!(std::fs::read_to_string(&stamp_path).unwrap(), stamp);
    assert_eq!(
        std::fs::read(&stub).unwrap(),
        std::fs::read(integration_tests::bins::static_stub()).unwrap()
    );

    let forced = install(&["--force"]);
    assert_eq!(forced["result"], "reinstalled", "{forced}");
    // No temp files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(stub.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Each stub is uploaded to every host it meets: the issue's budget.
const MAX_STUB_BYTES: u64 = 6 << 20;

#[test]
fn the_stubs_should_be_static_and_small() {
    for (arch, machine) in [("x86_64", "x86-64"), ("aarch64", "ARM aarch64")] {
        let stub = match integration_tests::bins::static_stub_for(arch) {
            Ok(stub) => stub,
            // Only a build machine without the aarch64 toolchain leaves it out; CI has it.
            Err(missing) if arch != "x86_64" && !integration_tests::arm64::required() => {
                eprintln!(
                    "SKIP: {} is missing (no {arch} toolchain)",
                    missing.display()
                );
                continue;
            }
            Err(missing) => panic!(
                "{} is missing: build opencode-remote first",
                missing.display()
            ),
        };
        let out = std::process::Command::new("file")
            .arg(&stub)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("statically linked"), "{text}");
        assert!(text.contains(machine), "{text}");
        // Old hosts: the kernel floor the binary declares must be at most 3.10.
        assert!(
            text.contains("for GNU/Linux 3.2.0")
                || text.contains("for GNU/Linux 3.7.0")
                || text.contains("for GNU/Linux 2."),
            "{text}"
        );
        let size = stub.metadata().unwrap().len();
        eprintln!(
            "{arch} stub: {size} bytes ({:.2} MiB)",
            size as f64 / f64::from(1 << 20)
        );
        assert!(size <= MAX_STUB_BYTES, "the {arch} stub is {size} bytes");
    }
}

#[test]
fn login_script_noise_should_not_break_the_session() {
    let noise = "Welcome to prod!\n\x1b[1mToday is a good day\x1b[0m\nPRI * HTTP/2.0 (decoy)\n";
    let sshd = require_sshd!(
        Sshd::builder()
            .login_noise(noise)
            .login_noise_stderr("stderr noise\n")
    );
    // Once for the install path (probe after noise), once for the direct launch.
    for _ in 0..2 {
        let (stdout, stderr) = run_ok(local(&sshd).args(["health", &destination(&sshd)]));
        let health: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(health["healthy"], true);
        assert!(
            stderr.contains("skipped output printed by login scripts"),
            "{stderr}"
        );
    }
}

#[test]
fn unknown_host_keys_should_be_refused_with_the_fingerprint() {
    let sshd = require_sshd!(Sshd::builder().known_hosts(KnownHosts::Empty));
    let stderr = run_err(local(&sshd).args(["health", &destination(&sshd)]));
    assert!(
        stderr.contains(&format!(
            "host key for [127.0.0.1]:{} is not known",
            sshd.port()
        )),
        "{stderr}"
    );
    assert!(stderr.contains(&sshd.host_key_fingerprint()), "{stderr}");
    assert!(stderr.contains("--accept-new"), "{stderr}");
    assert!(
        !stub_path(&sshd).exists(),
        "nothing may run on an unverified host"
    );

    // Explicit opt-in records the key, after which strict mode accepts it.
    run_ok(local(&sshd).args(["health", &destination(&sshd), "--accept-new"]));
    let known = std::fs::read_to_string(sshd.known_hosts_path()).unwrap();
    assert!(
        known.contains(&format!("[127.0.0.1]:{}", sshd.port())),
        "{known}"
    );
    run_ok(local(&sshd).args(["health", &destination(&sshd)]));
}

#[test]
fn changed_host_keys_should_be_refused_naming_the_line() {
    let sshd = require_sshd!(Sshd::builder().known_hosts(KnownHosts::Wrong));
    let line = sshd.known_hosts_entry_line().unwrap();
    for extra in [&[][..], &["--accept-new"][..]] {
        let stderr = run_err(
            local(&sshd)
                .args(["health", &destination(&sshd)])
                .args(extra),
        );
        assert!(stderr.contains("has changed"), "{stderr}");
        assert!(
            stderr.contains(&format!("{}:{line}", sshd.known_hosts_path().display())),
            "{stderr}"
        );
        assert!(stderr.contains(&sshd.host_key_fingerprint()), "{stderr}");
    }
    assert!(!stub_path(&sshd).exists());
}

#[test]
fn hashed_known_hosts_entries_should_be_accepted() {
    let sshd = require_sshd!(Sshd::builder().known_hosts(KnownHosts::Hashed));
    run_ok(local(&sshd).args(["health", &destination(&sshd)]));
}

#[test]
fn agent_auth_should_work_without_key_files() {
    let sshd = require_sshd!(Sshd::builder().user_key_only_in_agent());
    // Without the agent: no key file works.
    let stderr = run_err(local(&sshd).args(["health", &destination(&sshd)]));
    assert!(
        stderr.contains("authentication as root@127.0.0.1"),
        "{stderr}"
    );
    let agent = sshd.start_agent();
    run_ok(
        local(&sshd)
            .env("SSH_AUTH_SOCK", agent.sock())
            .args(["health", &destination(&sshd)]),
    );
}

#[test]
fn identity_file_auth_should_use_the_given_key_and_explain_refusals() {
    let sshd = require_sshd!();
    let key = sshd.user_key().to_str().unwrap().to_owned();
    let moved = sshd.dir().join("elsewhere_key");
    std::fs::copy(&key, &moved).unwrap();
    std::fs::remove_file(&key).unwrap();
    let stderr = run_err(local(&sshd).args(["health", &destination(&sshd)]));
    assert!(
        stderr.contains("tried: nothing") || stderr.contains("authentication"),
        "{stderr}"
    );
    run_ok(local(&sshd).args(["health", &destination(&sshd), "-i", moved.to_str().unwrap()]));

    let wrong = sshd.unauthorized_key().to_str().unwrap().to_owned();
    let stderr = run_err(local(&sshd).args(["health", &destination(&sshd), "-i", &wrong]));
    assert!(stderr.contains(&format!("{wrong} (rejected)")), "{stderr}");
    let stderr =
        run_err(local(&sshd).args(["health", &destination(&sshd), "-i", "/nonexistent/key"]));
    assert!(stderr.contains("/nonexistent/key (missing)"), "{stderr}");
}

#[test]
fn config_errors_should_name_the_file_and_known_hosts() {
    let sshd = require_sshd!();
    let config = sshd.dir().join("opencode.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"plugin": [["opencode-remote-provider", {{"providers": {{"default": {{"hosts": [
                {{"name": "test-host", "aliases": ["th"], "ssh": {{"host": "127.0.0.1", "port": {}, "user": "root"}}}}
            ]}}}}}}]]}}"#,
            sshd.port()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let stderr = run_err(local(&sshd).args([
        "health",
        "--config",
        cfg,
        "--provider",
        "default",
        "--host",
        "nope",
    ]));
    assert!(stderr.contains("unknown host `nope`"), "{stderr}");
    assert!(stderr.contains(cfg), "{stderr}");
    assert!(stderr.contains("test-host (aliases: th)"), "{stderr}");
    let stderr = run_err(local(&sshd).args([
        "health",
        "--config",
        cfg,
        "--provider",
        "prod",
        "--host",
        "th",
    ]));
    assert!(
        stderr.contains("unknown provider `prod`") && stderr.contains("known providers: default"),
        "{stderr}"
    );
    // The alias resolves to the same host.
    run_ok(local(&sshd).args([
        "health",
        "--config",
        cfg,
        "--provider",
        "default",
        "--host",
        "th",
    ]));
    // Without --config, $OPENCODE_CONFIG is used.
    run_ok(
        local(&sshd)
            .env("OPENCODE_CONFIG", cfg)
            .args(["health", "--host", "test-host"]),
    );
}

#[test]
fn manual_stdio_should_speak_http2_without_a_handshake() {
    let sshd = require_sshd!();
    run_ok(local(&sshd).args(["install", &destination(&sshd)]));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut child = tokio::process::Command::from(sshd.ssh_command())
            .arg("~/.opencode-remote/bin/opencode-remote-stub --stdio")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let io = tokio::io::join(child.stdout.take().unwrap(), child.stdin.take().unwrap());
        let (mut client, connection) = h2::client::handshake(io).await.unwrap();
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = http::Request::get("http://stub/global/health")
            .body(())
            .unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.data().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        let health: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(health["stub"]["manual"], true, "{health}");
        // Closing the pipes (what socat does when curl disconnects) ends the stub and ssh.
        drop(client);
        connection.abort();
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{status:?}");
    });
}

#[test]
fn a_stub_of_another_protocol_version_should_be_refused_with_both_versions() {
    use protocol::handshake::{Hello, SENTINEL, ServerHello, Version, encode_with_version};
    let sshd = require_sshd!();
    run_ok(local(&sshd).args(["install", &destination(&sshd)]));
    let hello = Hello {
        client_version: "9.0.0".into(),
        workspace_id: String::new(),
        project_id: String::new(),
        directory: None,
        host_key_fingerprint: String::new(),
    };
    let frame = encode_with_version(&hello, Version { major: 9, minor: 0 }).unwrap();
    let mut child = sshd
        .ssh_command()
        .arg("~/.opencode-remote/bin/opencode-remote-stub --stdio")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&frame).unwrap();
    let out = child.wait_with_output().unwrap();
    let at = out
        .stdout
        .windows(SENTINEL.len())
        .position(|w| w == SENTINEL)
        .expect("sentinel");
    let reply: ServerHello =
        protocol::handshake::decode(&out.stdout[at + SENTINEL.len()..]).unwrap();
    let ServerHello::Refusal(refusal) = reply else {
        panic!("{reply:?}")
    };
    assert!(
        refusal.message.contains("speaks protocol 1.0"),
        "{}",
        refusal.message
    );
    assert!(
        refusal.message.contains("speaks protocol 9.0"),
        "{}",
        refusal.message
    );
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn a_crashing_stub_should_be_reported_with_its_stderr() {
    let sshd = require_sshd!();
    run_ok(local(&sshd).args(["install", &destination(&sshd)]));
    // Keep the stamp (so the launcher trusts it) but replace the binary with one that still
    // answers `--version` (so it is not mistaken for a damaged file and reinstalled) and
    // crashes when it serves.
    std::fs::write(
        stub_path(&sshd),
        "#!/bin/sh\ncase $1 in --version) echo 'opencode-remote-stub 0.1.0 (protocol 1.0)' ;;\n*) echo 'stub: cannot map memory' >&2; exit 7 ;; esac\n",
    )
    .unwrap();
    let stderr = run_err(local(&sshd).args(["health", &destination(&sshd)]));
    assert!(
        stderr.contains("the stub exited before the handshake"),
        "{stderr}"
    );
    assert!(stderr.contains("exit status 7"), "{stderr}");
    assert!(stderr.contains("stub: cannot map memory"), "{stderr}");
}

fn bridge_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn bridge_should_serve_only_requests_with_the_secret_and_a_local_host() {
    let sshd = require_sshd!();
    let bridge = BridgeProcess::start(&sshd, &[]);
    assert_eq!(
        bridge.info["host"]["fingerprint"],
        sshd.host_key_fingerprint()
    );
    let prefix = bridge.prefix();
    assert_eq!(prefix.len(), 65, "256-bit hex secret: {prefix}");
    bridge_runtime().block_on(async {
        let mut client = Client::connect(&bridge.authority()).await;
        let (status, body) = client.get(&format!("{prefix}/global/health")).await;
        assert_eq!(status, 200, "{body:?}");
        for path in [
            "/global/health".to_owned(),
            format!("{}/global/health", &prefix[..40]),
            format!("{prefix}x/global/health"),
            "/".into(),
        ] {
            let (status, _) = client.get(&path).await;
            assert_eq!(status, 404, "{path}");
        }
        // DNS rebinding: a foreign Host header is refused even with the secret.
        let response = client
            .send(
                "GET",
                &format!("{prefix}/global/health"),
                b"",
                &[("host", "evil.example:80")],
            )
            .await;
        assert_eq!(response.status(), 404);
        // No CORS, ever.
        let response = client
            .send(
                "GET",
                &format!("{prefix}/global/health"),
                b"",
                &[("origin", "http://evil.example")],
            )
            .await;
        assert!(
            response
                .headers()
                .keys()
                .all(|k| !k.as_str().starts_with("access-control"))
        );
        // Unknown routes are a clean 404 from the stub, and the connection stays usable.
        let (status, body) = client.get(&format!("{prefix}/no/such/route")).await;
        assert_eq!(status, 404);
        assert!(String::from_utf8_lossy(&body).contains("no route for GET /no/such/route"));
        let (status, _) = client.get(&format!("{prefix}/global/health")).await;
        assert_eq!(status, 200);
    });
}

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

#[test]
fn sse_should_flow_through_the_bridge_event_by_event() {
    let sshd = require_sshd!();
    let bridge = BridgeProcess::start(&sshd, &[]);
    bridge_runtime().block_on(async {
        let mut client = Client::connect(&bridge.authority()).await;
        let response = client
            .send(
                "GET",
                &format!(
                    "{}/x-opencode-remote/diag/sse?interval_ms=400&count=3",
                    bridge.prefix()
                ),
                b"",
                &[],
            )
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut body = response.into_body();
        let mut events = Vec::new();
        let mut buffer = String::new();
        while let Some(chunk) = next_chunk(&mut body).await {
            let received = now_micros();
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                let data: serde_json::Value =
                    serde_json::from_str(event.trim().trim_start_matches("data: ")).unwrap();
                events.push((
                    data["seq"].as_u64().unwrap(),
                    data["t_us"].as_u64().unwrap() as u128,
                    received,
                ));
            }
        }
        assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), [0, 1, 2]);
        // Event 0 reached us before the stub even produced event 2: nothing buffered it.
        assert!(events[0].2 < events[2].1, "{events:?}");
        assert!(events[1].2 < events[2].1, "{events:?}");
    });
}

#[test]
fn websocket_upgrades_should_be_carried_to_the_stub() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let sshd = require_sshd!();
    let bridge = BridgeProcess::start(&sshd, &[]);
    bridge_runtime().block_on(async {
        let url = format!(
            "ws://{}{}/x-opencode-remote/diag/ws-echo",
            bridge.authority(),
            bridge.prefix()
        );
        let (mut ws, response) = tokio_tungstenite::connect_async(url).await.unwrap();
        assert_eq!(response.status(), 101);
        for text in ["hello", "second message", &"x".repeat(100_000)] {
            ws.send(Message::text(text)).await.unwrap();
            let echoed = ws.next().await.unwrap().unwrap();
            assert_eq!(echoed.into_text().unwrap().as_str(), text);
        }
        ws.send(Message::binary(vec![0u8, 1, 2, 255]))
            .await
            .unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap().into_data().as_ref(),
            &[0u8, 1, 2, 255]
        );
        ws.close(None).await.unwrap();
        // Without the secret there is no upgrade.
        let bad = format!("ws://{}/x-opencode-remote/diag/ws-echo", bridge.authority());
        assert!(tokio_tungstenite::connect_async(bad).await.is_err());
    });
}

#[test]
fn a_burst_of_cancelled_requests_should_not_kill_the_connection() {
    let sshd = require_sshd!();
    let bridge = BridgeProcess::start(&sshd, &[]);
    let prefix = bridge.prefix();
    let authority = bridge.authority();
    bridge_runtime().block_on(async {
        // A long-lived SSE stream that must survive.
        let mut sse_client = Client::connect(&authority).await;
        let response = sse_client
            .send(
                "GET",
                &format!("{prefix}/x-opencode-remote/diag/sse?interval_ms=50&count=100000"),
                b"",
                &[],
            )
            .await;
        let mut sse = response.into_body();
        assert!(next_chunk(&mut sse).await.is_some());

        // 5 rounds of 300 requests each, every one aborted right after it was sent (a slow
        // SSE request, so the stream is open when the client disappears).
        for _ in 0..5 {
            let mut tasks = Vec::new();
            for _ in 0..300 {
                let authority = authority.clone();
                let path = format!("{prefix}/x-opencode-remote/diag/sse?interval_ms=1000&count=10");
                tasks.push(tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let mut stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
                    let request = format!("GET {path} HTTP/1.1\r\nhost: {authority}\r\n\r\n");
                    stream.write_all(request.as_bytes()).await.unwrap();
                    tokio::task::yield_now().await;
                    drop(stream);
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        }
        // The SSE stream still delivers, and new requests work, on the same connection.
        for _ in 0..3 {
            assert!(
                tokio::time::timeout(Duration::from_secs(10), next_chunk(&mut sse))
                    .await
                    .unwrap()
                    .is_some()
            );
        }
        let mut client = Client::connect(&authority).await;
        let (status, _) = client.get(&format!("{prefix}/global/health")).await;
        assert_eq!(status, 200);
    });
    assert!(
        !bridge.stderr().contains("lost the stub"),
        "{}",
        bridge.stderr()
    );
}

#[test]
fn bodies_should_stream_both_ways_intact() {
    let sshd = require_sshd!();
    let bridge = BridgeProcess::start(&sshd, &[]);
    bridge_runtime().block_on(async {
        let mut client = Client::connect(&bridge.authority()).await;
        let size = 48 << 20;
        let (status, body) = client
            .get(&format!(
                "{}/x-opencode-remote/diag/blob?bytes={size}",
                bridge.prefix()
            ))
            .await;
        assert_eq!(status, 200);
        assert_eq!(body.len(), size);
        assert!(body.iter().all(|&b| b == 0));
        let upload = vec![7u8; 20 << 20];
        let response = client
            .send(
                "POST",
                &format!("{}/x-opencode-remote/diag/sink", bridge.prefix()),
                &upload,
                &[],
            )
            .await;
        assert_eq!(response.status(), 200);
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(answer["bytes"], upload.len());
    });
}

#[test]
fn closing_the_bridge_should_end_the_stub_quickly() {
    let sshd = require_sshd!();
    let mut bridge = BridgeProcess::start(&sshd, &[]);
    let stub_pid = bridge.info["stub"]["pid"].as_u64().unwrap() as u32;
    assert!(pid_alive(stub_pid));
    assert!(bridge.close(), "the bridge must exit when its stdin closes");
    assert!(
        wait_gone(stub_pid, Duration::from_secs(10)),
        "stub {stub_pid} still running after the bridge left"
    );

    // SIGKILLed bridge: the channel dies with the TCP connection; the stub sees EOF.
    let bridge = BridgeProcess::start(&sshd, &[]);
    let stub_pid = bridge.info["stub"]["pid"].as_u64().unwrap() as u32;
    let mut bridge = bridge;
    bridge.child.kill().unwrap();
    bridge.child.wait().unwrap();
    assert!(
        wait_gone(stub_pid, Duration::from_secs(10)),
        "stub {stub_pid} survived a killed bridge"
    );
    let log =
        std::fs::read_to_string(sshd.remote_home().join(".opencode-remote/log/stub.log")).unwrap();
    assert!(log.matches("exiting").count() >= 2, "{log}");
}

#[test]
fn sigterm_should_stop_the_bridge() {
    let sshd = require_sshd!();
    let mut bridge = BridgeProcess::start(&sshd, &[]);
    let pid = bridge.child.id() as i32;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if bridge.child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("bridge ignored SIGTERM");
}

#[test]
fn the_bridge_should_refuse_non_loopback_listen_addresses() {
    let sshd = require_sshd!();
    let err = BridgeProcess::try_start(&sshd, &["--listen", "0.0.0.0:0"])
        .err()
        .unwrap();
    assert!(err.contains("--listen must be a loopback address"), "{err}");
}

#[test]
fn a_plugin_launched_bridge_should_stop_on_sigterm_and_when_its_parent_dies() {
    let sshd = require_sshd!();
    for signal in [true, false] {
        let mut command = local(&sshd);
        command.args([
            "bridge",
            &destination(&sshd),
            "--stdin-config",
            "--opencode-stdio",
            "--opencode-directory",
            "/tmp",
        ]);
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        use std::io::{BufRead, Write};
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{{}}").unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("\"url\""), "{line}");
        if signal {
            let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
            rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        } else {
            drop(stdin);
        }
        let started = Instant::now();
        let mut exited = false;
        while started.elapsed() < Duration::from_secs(10) {
            if child.try_wait().unwrap().is_some() {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !exited {
            let _ = child.kill();
        }
        let _ = child.wait();
        assert!(exited, "bridge did not stop (signal: {signal})");
    }
}

/// Offline advisory gate: versions in Cargo.lock that carry known security fixes.
#[test]
fn cargo_lock_should_pin_patched_security_sensitive_crates() {
    let lock =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
    let version_of = |name: &str| -> Vec<Vec<u64>> {
        lock.split("[[package]]")
            .filter(|block| {
                block
                    .lines()
                    .any(|l| l.trim() == format!("name = \"{name}\""))
            })
            .filter_map(|block| {
                block.lines().find_map(|l| {
                    l.trim()
                        .strip_prefix("version = \"")?
                        .strip_suffix('"')
                        .map(str::to_owned)
                })
            })
            .map(|v| v.split(['.', '-']).filter_map(|p| p.parse().ok()).collect())
            .collect()
    };
    let at_least = |name: &str, minimum: &[u64]| {
        let versions = version_of(name);
        assert!(!versions.is_empty(), "{name} not in Cargo.lock");
        for version in versions {
            assert!(
                version.as_slice() >= minimum,
                "{name} {version:?} is older than {minimum:?}"
            );
        }
    };
    at_least("russh", &[0, 62, 4]); // GHSA-g9hv-x236-4qp3 and earlier client advisories
    at_least("h2", &[0, 4, 16]); // RUSTSEC-2026-0258 (empty DATA frame flood)
    at_least("hyper", &[1, 0, 0]);
    for version in version_of("bincode") {
        assert_eq!(
            version.first(),
            Some(&2),
            "bincode must stay on 2.x (3.0 is a tombstone)"
        );
    }
}

/// The bridge process stays small: a health check (connect, launch, handshake, one request)
/// peaks well below what a large SSH channel window made russh allocate (~120 MiB).
#[test]
fn a_health_check_should_stay_small_in_memory() {
    let sshd = require_sshd!();
    // Debug builds allocate far more; measure what users run.
    let Some(binary) = integration_tests::bins::release_local_bin() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the release build is missing"
        );
        eprintln!("SKIP: no release build of opencode-remote (cargo build --release)");
        return;
    };
    for round in 0..2 {
        let out = std::process::Command::new("/usr/bin/time")
            .args(["-f", "maxrss_kib=%M"])
            .arg(&binary)
            .args(["health", &destination(&sshd)])
            .env("HOME", sshd.local_home())
            .env_remove("SSH_AUTH_SOCK")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let peak: u64 = stderr
            .lines()
            .find_map(|l| l.strip_prefix("maxrss_kib="))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no peak reported: {stderr}"));
        eprintln!("round {round}: peak {peak} KiB");
        assert!(out.status.success(), "{stderr}");
        // A functional bound (an order of magnitude), not a benchmark.
        assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
    }
}

#[test]
fn a_frozen_stub_should_be_noticed_and_replaced_on_the_same_url() {
    let sshd = require_sshd!();
    let bridge = BridgeProcess::start(&sshd, &[]);
    let frozen = bridge.info["stub"]["pid"].as_u64().unwrap() as u32;
    // SIGSTOP: the SSH connection and the pipes stay open, but nothing answers any more (like
    // a host that hangs). Only the h2 PINGs can tell.
    let pid = rustix::process::Pid::from_raw(frozen as i32).unwrap();
    // Whatever happens below (a failed assertion too), leave nothing stopped behind.
    struct KillOnDrop(rustix::process::Pid);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = rustix::process::kill_process(self.0, rustix::process::Signal::KILL);
        }
    }
    let _guard = KillOnDrop(pid);
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    let started = Instant::now();
    let replaced_by = bridge_runtime().block_on(async {
        let prefix = bridge.prefix();
        // A liveness bound, generous for a loaded machine (PINGs every 5 s, 5 s to answer).
        while started.elapsed() < Duration::from_secs(60) {
            let attempt = async {
                let mut client = Client::connect(&bridge.authority()).await;
                client.get(&format!("{prefix}/global/health")).await
            };
            if let Ok((200, body)) = tokio::time::timeout(Duration::from_secs(5), attempt).await {
                let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let pid = health["stub"]["pid"].as_u64().unwrap() as u32;
                if pid != frozen {
                    return Some(pid);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    });
    eprintln!("frozen stub replaced after {:?}", started.elapsed());
    let new = replaced_by.unwrap_or_else(|| {
        panic!(
            "the bridge never replaced the frozen stub; bridge log:\n{}",
            bridge.stderr()
        )
    });
    assert!(pid_alive(new));
    assert!(
        bridge.stderr().contains("stub connection ended")
            && bridge.stderr().contains("keep-alive timed out"),
        "{}",
        bridge.stderr()
    );
}

#[test]
fn a_request_right_after_the_stub_died_should_wait_for_the_reconnect() {
    let sshd = require_sshd!();
    let bridge = BridgeProcess::start(&sshd, &[]);
    let prefix = bridge.prefix();
    let mut stub = bridge.info["stub"]["pid"].as_u64().unwrap() as u32;
    bridge_runtime().block_on(async {
        let mut client = Client::connect(&bridge.authority()).await;
        for round in 0..5 {
            // The connection to the bridge is open and idle, as OpenCode's are.
            let (status, _) = client.get(&format!("{prefix}/global/health")).await;
            assert_eq!(status, 200, "round {round}");
            let pid = rustix::process::Pid::from_raw(stub as i32).unwrap();
            rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
            // At once, before the bridge can have noticed: the GET usually goes out on the dead
            // link (into sshd, never to the stub) and must be sent again on the next link
            // instead of failing with 502; the POST after it then finds the new stub. (A POST
            // caught like the GET gets 502 on purpose: the bridge cannot tell that it did not
            // run, so it is not repeated; the bridge's unit tests cover that.)
            for (method, path, body) in [
                ("GET", "/global/health", &b""[..]),
                ("POST", "/session", b"{}"),
            ] {
                let response = client
                    .send(method, &format!("{prefix}{path}"), body, &[])
                    .await;
                let status = response.status().as_u16();
                let body = http_body_util::BodyExt::collect(response.into_body())
                    .await
                    .unwrap()
                    .to_bytes();
                assert_eq!(
                    status,
                    200,
                    "round {round}, {method} {path}: {}\nbridge log:\n{}",
                    String::from_utf8_lossy(&body),
                    bridge.stderr()
                );
            }
            let (_, body) = client.get(&format!("{prefix}/global/health")).await;
            let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let new = health["stub"]["pid"].as_u64().unwrap() as u32;
            assert_ne!(new, stub, "round {round}: the stub was not replaced");
            stub = new;
        }
    });
}

/// Sends a request line `GET <target>` with raw bytes on a new connection; the status code, or
/// `None` when the bridge closes the connection without answering.
fn raw_get_status(authority: &str, target: &[u8]) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = [
        b"GET ".as_slice(),
        target,
        b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    ]
    .concat();
    stream.write_all(&head).unwrap();
    let mut answer = Vec::new();
    // A reset (the connection's task died) counts as no answer.
    let _read = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    answer.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[test]
fn bad_paths_should_get_404_from_the_bridge_without_breaking_it() {
    let sshd = require_sshd!();
    let bridge = BridgeProcess::start(&sshd, &[]);
    let prefix = bridge.prefix();
    let near = &prefix[..prefix.len() - 1];
    for target in [
        // A multi-byte character across the end of the 64-character secret, or right after it.
        format!("{near}é/global/health"),
        format!("{prefix}é"),
        format!("{prefix}%2Fglobal/health"),
        format!("/%2F{}", &prefix[1..]),
        format!("/{}", "é".repeat(4 << 10)),
        format!("{prefix}{}", "x".repeat(8 << 10)),
    ] {
        assert_eq!(
            raw_get_status(&bridge.authority(), target.as_bytes()),
            Some(404),
            "{target:.80}; bridge log:\n{}",
            bridge.stderr()
        );
    }
    assert!(!bridge.stderr().contains("panicked"), "{}", bridge.stderr());
    bridge_runtime().block_on(async {
        let mut client = Client::connect(&bridge.authority()).await;
        let (status, _) = client.get(&format!("{prefix}/global/health")).await;
        assert_eq!(status, 200);
    });
}
