//! Password-only hosts: `scripts/setup-host.sh` installs a dedicated key with `sshpass`
//! answering the password prompt, or prints the exact manual steps when nobody can type it.
//!
//! These tests need a real account with a password (sshd checks /etc/shadow), so they create a
//! throwaway user (root only) whose home is the harness's remote home, and delete it afterwards.

use std::path::Path;
use std::process::Command;

use integration_tests::bins::local;
use integration_tests::sshd::Sshd;

struct TempUser {
    name: String,
    password: String,
}

impl TempUser {
    fn create(home: &Path) -> Option<TempUser> {
        let required = std::env::var_os("CI").is_some()
            || std::env::var_os("OPENCODE_REMOTE_REQUIRE_SSHD").is_some();
        let root = rustix::process::geteuid().is_root();
        if !root
            || Command::new("useradd").arg("--help").output().is_err()
            || Command::new("sshpass").arg("-V").output().is_err()
        {
            let reason = "password tests need root, useradd and sshpass";
            assert!(!required, "{reason}");
            eprintln!("SKIP: {reason}");
            return None;
        }
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("ocrpw{}x{n}", std::process::id() % 100_000);
        let mut random = [0u8; 12];
        getrandom(&mut random);
        let password: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let status = Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", "-d"])
            .arg(home)
            .arg(&name)
            .status()
            .unwrap();
        assert!(status.success(), "useradd {name} failed");
        let user = TempUser { name, password };
        let mut chpasswd = Command::new("chpasswd")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(
            chpasswd.stdin.take().unwrap(),
            "{}:{}",
            user.name,
            user.password
        )
        .unwrap();
        assert!(chpasswd.wait().unwrap().success());
        let status = Command::new("chown")
            .arg("-R")
            .arg(&user.name)
            .arg(home)
            .status()
            .unwrap();
        assert!(status.success());
        // The harness directory is 0700 (root): let the account traverse it to its home (the
        // keys in it stay 0600).
        if let Some(parent) = home.parent() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o711)).unwrap();
        }
        Some(user)
    }
}

fn getrandom(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(buf)
        .unwrap();
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

/// Runs `command` in a new session (no controlling terminal), as the plugin does.
fn without_terminal(command: Command) -> Command {
    let mut wrapped = Command::new("setsid");
    wrapped
        .arg("-w")
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    wrapped.stdin(std::process::Stdio::null());
    wrapped
}

fn password_sshd() -> Option<Sshd> {
    Sshd::builder()
        .password_authentication(true)
        // Keys that setup installs land in the account's own ~/.ssh/authorized_keys.
        .extra_config("AuthorizedKeysFile .ssh/authorized_keys")
        .start()
}

/// setup-host.sh without a controlling terminal (`setsid`), like an unattended run.
fn setup_host(sshd: &Sshd, user: &str, sshpass: Option<&str>) -> (bool, String, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup-host.sh");
    let mut command = Command::new("setsid");
    command
        .arg("-w")
        .arg(script)
        .args(["--accept-new", "127.0.0.1", user, &sshd.port().to_string()])
        .env("HOME", sshd.local_home())
        .env("OPENCODE_REMOTE_BIN", integration_tests::bins::local_bin())
        .env_remove("SSH_AUTH_SOCK")
        .stdin(std::process::Stdio::null());
    match sshpass {
        Some(password) => command.env("SSHPASS", password),
        None => command.env_remove("SSHPASS"),
    };
    // A prompt nobody answers would hang forever: bound the run.
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // setsid -w made the child a session leader: signal its whole process group.
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            panic!("setup-host.sh did not finish within 60 s");
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("{stdout}{stderr}");
    (out.status.success(), stdout, stderr)
}

#[test]
fn a_password_only_host_should_get_a_key_through_sshpass() {
    let Some(sshd) = password_sshd() else { return };
    let Some(user) = TempUser::create(&sshd.remote_home()) else {
        return;
    };
    // The harness's own key is not authorized for this account: only the password works.
    let (ok, stdout, stderr) = setup_host(&sshd, &user.name, Some(&user.password));
    assert!(ok, "{stderr}");
    let key = sshd.local_home().join(".ssh/opencode-remote-127.0.0.1");
    assert!(key.is_file(), "no dedicated key");
    assert!(
        stdout.contains("new key") && stdout.contains(key.to_str().unwrap()),
        "{stdout}"
    );
    assert!(
        stdout.contains("login      password") || stdout.contains("keyboard-interactive"),
        "{stdout}"
    );
    // The password never shows up in argv (checked while running is racy; check output/logs).
    assert!(!stdout.contains(&user.password) && !stderr.contains(&user.password));
    let authorized =
        std::fs::read_to_string(sshd.remote_home().join(".ssh/authorized_keys")).unwrap();
    let public =
        std::fs::read_to_string(key.with_file_name("opencode-remote-127.0.0.1.pub")).unwrap();
    assert!(authorized.contains(public.trim()), "{authorized}");
    // From now on the key alone works, with no password.
    let out = without_terminal(local(&sshd))
        .args([
            "health",
            &format!("{}@127.0.0.1:{}", user.name, sshd.port()),
            "-i",
            key.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Re-running is safe and does not add the key twice.
    let (ok, _, stderr) = setup_host(&sshd, &user.name, Some(&user.password));
    assert!(ok, "{stderr}");
    let authorized =
        std::fs::read_to_string(sshd.remote_home().join(".ssh/authorized_keys")).unwrap();
    assert_eq!(authorized.matches(public.trim()).count(), 1);
    // ... and needs no password at all any more: the dedicated key is found by itself, by
    // setup and by every other command.
    let (ok, stdout, stderr) = setup_host(&sshd, &user.name, None);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("already up to date"), "{stdout}");
    let out = without_terminal(local(&sshd))
        .args([
            "health",
            &format!("{}@127.0.0.1:{}", user.name, sshd.port()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_password_only_host_without_sshpass_should_get_exact_manual_steps() {
    let Some(sshd) = password_sshd() else { return };
    let Some(user) = TempUser::create(&sshd.remote_home()) else {
        return;
    };
    let (ok, _, stderr) = setup_host(&sshd, &user.name, None);
    assert!(!ok);
    let key = sshd.local_home().join(".ssh/opencode-remote-127.0.0.1");
    let public =
        std::fs::read_to_string(key.with_file_name("opencode-remote-127.0.0.1.pub")).unwrap();
    assert!(stderr.contains("no password can be asked here"), "{stderr}");
    assert!(
        stderr.contains(public.trim()),
        "the exact key line: {stderr}"
    );
    assert!(
        stderr.contains("authorized_keys")
            && stderr.contains(&format!("setup-host.sh 127.0.0.1 {}", user.name)),
        "{stderr}"
    );
    assert!(
        !sshd
            .remote_home()
            .join(".opencode-remote/bin/opencode-remote-stub")
            .exists()
    );

    // The plugin's path (never interactive) fails fast with the same advice.
    let out = without_terminal(local(&sshd))
        .args([
            "health",
            &format!("{}@127.0.0.1:{}", user.name, sshd.port()),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("password") && stderr.contains("setup-host.sh"),
        "{stderr}"
    );
}

/// `command` on a real pseudo-terminal run by `sshpass`, which types `password` at every prompt
/// containing "assword".
fn under_sshpass(command: &Command, password: &str) -> Command {
    let mut wrapped = Command::new("sshpass");
    wrapped
        .arg("-e")
        .arg(command.get_program())
        .args(command.get_args())
        .env("SSHPASS", password);
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    wrapped.stdin(std::process::Stdio::null());
    wrapped
}

#[test]
fn a_keyboard_interactive_host_should_show_its_prompts_at_the_terminal_and_log_in() {
    // Only keyboard-interactive (through PAM), as on hosts with PAM-driven logins.
    let Some(sshd) = Sshd::builder()
        .kbd_interactive_authentication(true)
        .password_authentication(false)
        .start()
    else {
        return;
    };
    let Some(user) = TempUser::create(&sshd.remote_home()) else {
        return;
    };
    let destination = format!("{}@127.0.0.1:{}", user.name, sshd.port());
    let mut health = local(&sshd);
    health.args(["health", &destination]);

    let out = under_sshpass(&health, &user.password).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(out.status.success(), "{stderr}");
    let health_json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(health_json["healthy"], true);
    assert!(
        sshd.log().contains(&format!(
            "Accepted keyboard-interactive/pam for {}",
            user.name
        )),
        "{}",
        sshd.log()
    );
    assert!(!stdout.contains(&user.password) && !stderr.contains(&user.password));

    // At a terminal (util-linux `script`), the person sees the server's own prompt, attributed
    // like OpenSSH does, and what they type logs in.
    let command_line = format!(
        "{} health {destination}",
        integration_tests::bins::local_bin().display()
    );
    let mut at_terminal = Command::new("script");
    at_terminal.args(["-qec", &command_line, "/dev/null"]);
    for (key, value) in health.get_envs() {
        match value {
            Some(value) => at_terminal.env(key, value),
            None => at_terminal.env_remove(key),
        };
    }
    let mut child = at_terminal
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        // Let the prompt turn echo off first; the terminal keeps the answer until it is read.
        std::thread::sleep(std::time::Duration::from_millis(700));
        writeln!(stdin, "{}", user.password).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("({}@127.0.0.1) Password:", user.name)),
        "{text}"
    );
    assert!(
        !text.contains(&user.password),
        "typed with echo off: {text}"
    );

    // Wrong answers are refused with a clear error (sshpass gives up at the second prompt).
    let out = under_sshpass(&health, "not-the-password").output().unwrap();
    assert!(!out.status.success());

    // Without a terminal nobody can answer: fail fast, naming the method and the way out.
    let out = without_terminal(health).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("keyboard-interactive") && stderr.contains("setup-host.sh"),
        "{stderr}"
    );
    // setup-host.sh itself, unattended, on this keyboard-interactive-only host: the manual
    // steps with a dedicated key (not "run setup-host.sh" again).
    let (ok, _, stderr) = setup_host(&sshd, &user.name, None);
    assert!(!ok);
    assert!(
        stderr.contains("no password can be asked here") && stderr.contains("authorized_keys"),
        "{stderr}"
    );
}
