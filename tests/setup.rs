//! `opencode-remote setup` and `doctor` (and scripts/setup-host.sh) against real sshds.

use std::process::Command;
use std::time::Instant;

use integration_tests::bins::{destination, local};
use integration_tests::require_sshd;
use integration_tests::sshd::{KnownHosts, Sshd};

fn output(command: &mut Command) -> (bool, String, String) {
    let out = command.stdin(std::process::Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("$ {command:?}\n{stdout}{stderr}");
    (out.status.success(), stdout, stderr)
}

fn setup_host_script() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup-host.sh")
}

/// scripts/setup-host.sh with the harness's local HOME and our freshly built binary.
fn script(sshd: &Sshd) -> Command {
    let mut command = Command::new(setup_host_script());
    command
        .env("HOME", sshd.local_home())
        .env("OPENCODE_REMOTE_BIN", integration_tests::bins::local_bin())
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("SSHPASS");
    command
}

#[test]
fn doctor_should_pass_on_a_healthy_host_and_explain_a_missing_stub() {
    let sshd = require_sshd!();
    let (ok, stdout, _) = output(local(&sshd).args(["doctor", &destination(&sshd)]));
    assert!(!ok, "no stub yet: doctor must fail");
    assert!(
        stdout.contains("[FAIL] stub") && stdout.contains("fix: opencode-remote install"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[ ok ] tcp")
            && stdout.contains("[ ok ] host key")
            && stdout.contains("[ ok ] auth"),
        "{stdout}"
    );
    let (ok, _, stderr) = output(local(&sshd).args(["install", &destination(&sshd)]));
    assert!(ok);
    // Staged progress on stderr, the upload in bytes.
    assert!(
        stderr.contains("connecting to") && stderr.contains("uploading the stub: 0/"),
        "{stderr}"
    );
    let done = stderr
        .lines()
        .find(|line| line.contains("bytes (100%)"))
        .and_then(|line| line.split("uploading the stub: ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no 100% line: {stderr}"));
    let (sent, total) = done.split_once('/').unwrap();
    assert_eq!(sent, total);
    assert!(total.parse::<u64>().unwrap() > 1 << 20, "{stderr}");
    let (ok, stdout, _) = output(local(&sshd).args(["doctor", &destination(&sshd)]));
    assert!(ok, "{stdout}");
    for step in [
        "dns",
        "tcp",
        "host key",
        "auth",
        "shell",
        "install root",
        "stub",
        "handshake",
    ] {
        assert!(
            stdout.contains(&format!("[ ok ] {step}")),
            "{step}: {stdout}"
        );
    }
    assert!(stdout.contains("All checks passed."));
}

#[test]
fn doctor_should_diagnose_host_key_auth_and_network_problems() {
    let sshd = require_sshd!(Sshd::builder().known_hosts(KnownHosts::Empty));
    let (ok, stdout, _) = output(local(&sshd).args(["doctor", &destination(&sshd)]));
    assert!(!ok);
    assert!(
        stdout.contains("[FAIL] host key") && stdout.contains("--accept-new"),
        "{stdout}"
    );
    assert!(stdout.contains(&sshd.host_key_fingerprint()), "{stdout}");

    let sshd = require_sshd!(Sshd::builder().known_hosts(KnownHosts::Wrong));
    let (ok, stdout, _) = output(local(&sshd).args(["doctor", &destination(&sshd)]));
    assert!(!ok);
    assert!(
        stdout.contains("[FAIL] host key") && stdout.contains("ssh-keygen -R"),
        "{stdout}"
    );

    let sshd = require_sshd!();
    let wrong = sshd.unauthorized_key().to_str().unwrap().to_owned();
    std::fs::remove_file(sshd.user_key()).unwrap();
    let (ok, stdout, _) = output(local(&sshd).args(["doctor", &destination(&sshd), "-i", &wrong]));
    assert!(!ok);
    assert!(
        stdout.contains("[FAIL] auth") && stdout.contains("setup-host.sh"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "opencode-remote setup {} -i {wrong}",
            destination(&sshd)
        )),
        "the fix repeats the host arguments: {stdout}"
    );

    // Nothing listens on the port any more.
    let mut sshd = require_sshd!();
    let dest = destination(&sshd);
    sshd.stop();
    let (ok, stdout, _) = output(local(&sshd).args(["doctor", &dest]));
    assert!(!ok);
    assert!(
        stdout.contains("[FAIL] tcp") && stdout.contains("is sshd running"),
        "{stdout}"
    );
}

#[test]
fn doctor_should_warn_about_login_noise_and_refuse_a_noexec_install_root() {
    let sshd = require_sshd!(Sshd::builder().login_noise("Welcome, have a nice day!\n"));
    let (_, stdout, _) = output(local(&sshd).args(["doctor", &destination(&sshd)]));
    assert!(
        stdout.contains("[warn] shell") && stdout.contains("Welcome, have a nice day"),
        "{stdout}"
    );

    // A noexec file system as the install root (a tmpfs mounted for this test only).
    let noexec = sshd.remote_home().join("noexec");
    std::fs::create_dir_all(&noexec).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "noexec,size=16m", "tmpfs"])
        .arg(&noexec)
        .status();
    if !mounted.is_ok_and(|s| s.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "cannot mount a tmpfs (root needed) in CI"
        );
        eprintln!("SKIP: cannot mount a noexec tmpfs here (not root?)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(noexec.clone());
    let options = sshd.dir().join("options.json");
    std::fs::write(
        &options,
        serde_json::json!({
            "installRoot": noexec.join(".opencode-remote"),
            "providers": { "default": { "hosts": [{ "name": "h", "ssh": { "host": "127.0.0.1", "port": sshd.port(), "user": "root" } }] } }
        })
        .to_string(),
    )
    .unwrap();
    let (ok, stdout, _) = output(local(&sshd).args([
        "doctor",
        "--config",
        options.to_str().unwrap(),
        "--host",
        "h",
    ]));
    assert!(!ok);
    assert!(stdout.contains("[ ok ] config"), "{stdout}");
    assert!(
        stdout.contains("[FAIL] install root")
            && stdout.contains("noexec")
            && stdout.contains("installRoot"),
        "{stdout}"
    );
    // install says the same.
    let (ok, _, stderr) = output(local(&sshd).args([
        "install",
        "--config",
        options.to_str().unwrap(),
        "--host",
        "h",
    ]));
    assert!(!ok);
    assert!(
        stderr.contains("cannot run") && stderr.contains("noexec"),
        "{stderr}"
    );
}

#[test]
fn setup_host_should_install_and_be_a_fast_no_op_the_second_time() {
    let sshd = require_sshd!();
    let port = sshd.port().to_string();
    let (ok, stdout, stderr) = output(script(&sshd).args(["127.0.0.1", "root", &port]));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("opencode-remote-stub: installed"),
        "{stdout}"
    );
    assert!(stdout.contains("curl --http2-prior-knowledge"), "{stdout}");
    assert!(stdout.contains("Nothing was started on the host"));
    assert!(
        sshd.remote_home()
            .join(".opencode-remote/bin/opencode-remote-stub")
            .is_file()
    );
    // Nothing keeps running on the host.
    assert!(
        !std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| {
                std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                    String::from_utf8_lossy(&c)
                        .contains(&format!("{}", sshd.remote_home().display()))
                        && String::from_utf8_lossy(&c).contains("--stdio")
                })
            })
    );
    let started = Instant::now();
    let (ok, stdout, _) = output(script(&sshd).args(["127.0.0.1", "root", &port]));
    assert!(ok);
    assert!(stdout.contains("already up to date"), "{stdout}");
    eprintln!("second run took {:?}", started.elapsed());

    // An upgrade replaces an older build.
    let stub = sshd
        .remote_home()
        .join(".opencode-remote/bin/opencode-remote-stub");
    std::fs::write(
        stub.with_file_name("opencode-remote-stub.id"),
        "0.0.1 1 1\n",
    )
    .unwrap();
    let (ok, stdout, _) = output(script(&sshd).args(["127.0.0.1", "root", &port]));
    assert!(ok);
    assert!(stdout.contains("upgraded (was 0.0.1 1 1)"), "{stdout}");
}

#[test]
fn setup_host_should_record_an_unknown_key_only_when_asked() {
    let sshd = require_sshd!(Sshd::builder().known_hosts(KnownHosts::Empty));
    let port = sshd.port().to_string();
    // No terminal and no flag: refuse, show the fingerprint, say which flag to use.
    let (ok, _, stderr) = output(script(&sshd).args(["127.0.0.1", "root", &port]));
    assert!(!ok);
    assert!(
        stderr.contains(&sshd.host_key_fingerprint()) && stderr.contains("--accept-new"),
        "{stderr}"
    );
    assert!(
        std::fs::read_to_string(sshd.known_hosts_path())
            .unwrap_or_default()
            .trim()
            .is_empty()
    );
    let (ok, _, stderr) = output(script(&sshd).args(["--accept-new", "127.0.0.1", "root", &port]));
    assert!(ok, "{stderr}");
    let known = std::fs::read_to_string(sshd.known_hosts_path()).unwrap();
    assert!(known.contains(&format!("[127.0.0.1]:{port}")), "{known}");

    // A changed key is refused even with --accept-new.
    let sshd = require_sshd!(Sshd::builder().known_hosts(KnownHosts::Wrong));
    let port = sshd.port().to_string();
    let (ok, _, stderr) = output(script(&sshd).args(["--accept-new", "127.0.0.1", "root", &port]));
    assert!(!ok);
    assert!(stderr.contains("has changed"), "{stderr}");
}

#[test]
fn setup_host_should_explain_its_usage() {
    let sshd = require_sshd!();
    let (ok, _, stderr) = output(script(&sshd).args(["only-one-arg"]));
    assert!(!ok);
    assert!(stderr.contains("usage: setup-host.sh"), "{stderr}");
    let (ok, _, stderr) = output(script(&sshd).args(["host", "user", "notaport"]));
    assert!(!ok);
    assert!(stderr.contains("port"), "{stderr}");
}

#[test]
fn doctor_should_diagnose_an_unresolvable_host() {
    let sshd = require_sshd!();
    let (ok, stdout, _) = output(local(&sshd).args(["doctor", "root@no-such-host.invalid:22"]));
    assert!(!ok);
    assert!(
        stdout.contains("[FAIL] dns") && stdout.contains("cannot resolve no-such-host.invalid"),
        "{stdout}"
    );
}

/// Runs setup-host.sh on a pseudo-terminal (util-linux `script`), typing `answer`.
fn setup_host_at_a_terminal(sshd: &Sshd, answer: &str) -> (bool, String) {
    let command_line = format!(
        "{} 127.0.0.1 root {}",
        setup_host_script().display(),
        sshd.port()
    );
    let mut child = Command::new("script")
        .args(["-qec", &command_line, "/dev/null"])
        .env("HOME", sshd.local_home())
        .env("OPENCODE_REMOTE_BIN", integration_tests::bins::local_bin())
        .env_remove("SSH_AUTH_SOCK")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    // Give the prompt a moment to appear; the terminal buffers the answer anyway.
    std::thread::sleep(std::time::Duration::from_millis(500));
    stdin.write_all(answer.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    (out.status.success(), text)
}

#[test]
fn setup_host_should_ask_about_an_unknown_key_at_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "util-linux `script` is needed"
        );
        eprintln!("SKIP: no `script` command");
        return;
    }
    let sshd = require_sshd!(Sshd::builder().known_hosts(KnownHosts::Empty));
    let (ok, text) = setup_host_at_a_terminal(&sshd, "no\n");
    assert!(!ok, "{text}");
    assert!(
        text.contains("can't be established") && text.contains(&sshd.host_key_fingerprint()),
        "{text}"
    );
    assert!(
        std::fs::read_to_string(sshd.known_hosts_path())
            .unwrap_or_default()
            .trim()
            .is_empty()
    );

    let (ok, text) = setup_host_at_a_terminal(&sshd, "yes\n");
    assert!(ok, "{text}");
    let known = std::fs::read_to_string(sshd.known_hosts_path()).unwrap();
    assert!(
        known.contains(&format!("[127.0.0.1]:{}", sshd.port())),
        "{known}"
    );
    assert!(
        sshd.remote_home()
            .join(".opencode-remote/bin/opencode-remote-stub")
            .is_file()
    );
}

#[test]
fn doctor_should_diagnose_config_problems_and_a_full_disk() {
    let sshd = require_sshd!();
    let config = sshd.dir().join("opencode.json");
    std::fs::write(&config, "{ \"plugin\": [ [\"opencode-remote-provider\", { \"providers\": { \"p\": { \"hosts\": [ { \"name\": \"h\", \"ssh\": { \"prot\": 1 } } ] } } } ] ] }").unwrap();
    let cfg = config.to_str().unwrap().to_owned();
    let (ok, stdout, _) = output(local(&sshd).args(["doctor", "--config", &cfg, "--host", "h"]));
    assert!(!ok);
    assert!(
        stdout.contains("[FAIL] config")
            && stdout.contains("providers.p.hosts[0].ssh.prot")
            && stdout.contains("fix:"),
        "{stdout}"
    );

    std::fs::write(
        &config,
        serde_json::json!({ "plugin": [["opencode-remote-provider", { "providers": { "p": { "hosts": [{ "name": "h", "ssh": { "host": "127.0.0.1", "port": sshd.port(), "user": "root" } }] } } }]] }).to_string(),
    )
    .unwrap();
    let (ok, stdout, _) = output(local(&sshd).args(["doctor", "--config", &cfg, "--host", "nope"]));
    assert!(!ok);
    assert!(
        stdout.contains("[FAIL] host")
            && stdout.contains("unknown host `nope`")
            && stdout.contains("known hosts: h"),
        "{stdout}"
    );

    // An install root without room for the stub.
    let tiny = sshd.remote_home().join("tiny");
    std::fs::create_dir_all(&tiny).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&tiny)
        .status();
    if !mounted.is_ok_and(|s| s.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "cannot mount a tmpfs (root needed) in CI"
        );
        eprintln!("SKIP: cannot mount a small tmpfs here (not root?)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(tiny.clone());
    std::fs::write(
        &config,
        serde_json::json!({ "plugin": [["opencode-remote-provider", { "installRoot": tiny.join(".opencode-remote"), "providers": { "p": { "hosts": [{ "name": "h", "ssh": { "host": "127.0.0.1", "port": sshd.port(), "user": "root" } }] } } }]] }).to_string(),
    )
    .unwrap();
    let (ok, stdout, _) = output(local(&sshd).args(["doctor", "--config", &cfg, "--host", "h"]));
    assert!(!ok);
    assert!(
        stdout.contains("[FAIL] disk")
            && stdout.contains("KiB free")
            && stdout.contains("installRoot"),
        "{stdout}"
    );
}

#[test]
fn doctor_should_diagnose_a_refusing_shell_and_a_broken_stub() {
    // The server runs something else for every command (a ForceCommand, a restricted shell).
    let sshd = require_sshd!(Sshd::builder().extra_config("ForceCommand /bin/false"));
    let (ok, stdout, _) = output(local(&sshd).args(["doctor", &destination(&sshd)]));
    assert!(!ok);
    assert!(
        stdout.contains("[ ok ] auth") && stdout.contains("[FAIL] shell"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ForceCommand") && stdout.contains("login shell"),
        "the fix names the usual causes: {stdout}"
    );
    assert!(
        !stdout.contains("[ ok ] stub") && !stdout.contains("All checks passed"),
        "{stdout}"
    );

    // An installed stub whose stamp is current but which crashes at start (a damaged file).
    let sshd = require_sshd!();
    let (ok, _, _) = output(local(&sshd).args(["install", &destination(&sshd)]));
    assert!(ok);
    let stub = sshd
        .remote_home()
        .join(".opencode-remote/bin/opencode-remote-stub");
    // Replaced by rename: the previous stub may still be running for a moment (ETXTBSY).
    let damage = || {
        let damaged = stub.with_file_name("damaged");
        std::fs::write(
            &damaged,
            "#!/bin/sh\necho 'stub: damaged beyond repair' >&2\nexit 3\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&damaged, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&damaged, &stub).unwrap();
    };
    damage();
    let (ok, stdout, _) = output(local(&sshd).args(["doctor", &destination(&sshd)]));
    assert!(!ok);
    assert!(
        stdout.contains("[FAIL] stub") && stdout.contains("damaged beyond repair"),
        "what the stub prints is shown: {stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "opencode-remote install --force {}",
            destination(&sshd)
        )),
        "the fix reinstalls, with the same host arguments: {stdout}"
    );
    assert!(stdout.contains("[skip] handshake"), "{stdout}");
    // Plain install repairs it (the stamp alone does not make it current).
    let (ok, stdout, stderr) = output(local(&sshd).args(["install", &destination(&sshd)]));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("repaired"), "{stdout}");
    let (ok, stdout, _) = output(local(&sshd).args(["doctor", &destination(&sshd)]));
    assert!(ok, "{stdout}");

    // The bridge path repairs it by itself: a health check through it just works.
    damage();
    let (ok, stdout, stderr) = output(local(&sshd).args(["health", &destination(&sshd)]));
    assert!(ok, "{stderr}");
    let health: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(health["healthy"], true, "{stdout}");
    assert!(
        stderr.contains("does not run; installing it again"),
        "{stderr}"
    );
    assert!(
        std::fs::read(&stub).unwrap().starts_with(b"\x7fELF"),
        "the real stub is back"
    );

    // Another build installed: a warning, and the handshake is not attempted.
    std::fs::write(
        stub.with_file_name("opencode-remote-stub.id"),
        "0.0.1 1 1\n",
    )
    .unwrap();
    let (ok, stdout, _) = output(local(&sshd).args(["doctor", &destination(&sshd)]));
    assert!(!ok);
    assert!(
        stdout.contains("[warn] stub")
            && stdout.contains("another build is installed")
            && stdout.contains("stamp `0.0.1 1 1`")
            && stdout.contains("[skip] handshake"),
        "{stdout}"
    );
}
