//! `opencode-remote-demo`: the whole path on this machine, with nothing to configure.
//!
//! Starts a throwaway OpenSSH sshd on 127.0.0.1 (the "remote host", with its own keys and an
//! isolated home), runs `opencode-remote bridge` against it (which verifies the host key,
//! installs the static stub over SSH and starts it on the exec channel), then sends live
//! requests through the bridge the way OpenCode would and prints what happens.

#![allow(clippy::print_stdout)] // a demo prints to the terminal

use std::time::{Duration, Instant};

use integration_tests::bridge::BridgeProcess;
use integration_tests::http::{Client, next_chunk};
use integration_tests::sshd::Sshd;

fn main() -> anyhow::Result<()> {
    println!("== starting a throwaway sshd on 127.0.0.1 (the remote host) ==");
    let Some(sshd) = Sshd::start() else {
        anyhow::bail!(
            "OpenSSH server is not installed; run scripts/install-deps.sh (or apt-get install openssh-server)"
        );
    };
    println!(
        "sshd pid {:?} on 127.0.0.1:{}, host key {}",
        sshd.pid(),
        sshd.port(),
        sshd.host_key_fingerprint()
    );
    println!("remote home: {}", sshd.remote_home().display());

    println!(
        "\n== opencode-remote bridge {} ==",
        integration_tests::bins::destination(&sshd)
    );
    let started = Instant::now();
    let mut bridge = BridgeProcess::try_start(&sshd, &[]).map_err(anyhow::Error::msg)?;
    println!(
        "ready in {:?}; the bridge printed:\n{}",
        started.elapsed(),
        serde_json::to_string_pretty(&bridge.info)?
    );
    let stub = sshd
        .remote_home()
        .join(".opencode-remote/bin/opencode-remote-stub");
    println!(
        "stub installed at {} ({} bytes)",
        stub.display(),
        std::fs::metadata(&stub)?.len()
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut client = Client::connect(&bridge.authority()).await;
        let prefix = bridge.prefix();

        println!("\n== GET /global/health through the bridge ==");
        let started = Instant::now();
        let (status, body) = client.get(&format!("{prefix}/global/health")).await;
        println!(
            "{status} in {:?}: {}",
            started.elapsed(),
            String::from_utf8_lossy(&body)
        );

        println!("\n== the same request without the secret path prefix ==");
        let (status, _) = client.get("/global/health").await;
        println!("{status} (refused)");

        println!("\n== 5 server-sent events, one every 200 ms, as they arrive ==");
        let response = client
            .send(
                "GET",
                &format!("{prefix}/x-opencode-remote/diag/sse?interval_ms=200&count=5"),
                b"",
                &[],
            )
            .await;
        let mut body = response.into_body();
        let started = Instant::now();
        while let Some(chunk) = next_chunk(&mut body).await {
            print!(
                "+{:>4} ms  {}",
                started.elapsed().as_millis(),
                String::from_utf8_lossy(&chunk)
            );
        }
        anyhow::Ok(())
    })?;

    let stub_pid = bridge.info["stub"]["pid"].as_u64().unwrap_or(0);
    println!("\n== closing the bridge (its stdin) ==");
    bridge.close();
    let gone = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        !std::path::Path::new(&format!("/proc/{stub_pid}")).exists()
    });
    println!(
        "stub pid {stub_pid} {}",
        if gone {
            "exited with the channel"
        } else {
            "is STILL RUNNING"
        }
    );
    println!("\nstub log (remote ~/.opencode-remote/log/stub.log):");
    print!(
        "{}",
        std::fs::read_to_string(sshd.remote_home().join(".opencode-remote/log/stub.log"))?
    );
    Ok(())
}
