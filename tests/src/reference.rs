//! OpenCode 1.18.33 itself as the remote: the reference our stub is measured and compared
//! against. Set up the way OpenCode's own remote mode works: `opencode serve` runs on the host
//! (started over ssh with the environment OpenCode hands the workspace adaptor, the user's keys
//! included) and the laptop reaches it through `ssh -N -L`. The adaptor is
//! `tests/tools/reference-remote.js`, registered next to our plugin as workspace type
//! [`TYPE`].
//!
//! The host is the test sshd's: the server gets a HOME and XDG tree of its own under the
//! harness directory, and the provider config the user would have to copy there.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::opencode::{OpenCode, Registration, VERSION, git};
use crate::sshd::Sshd;

/// The workspace type the reference adaptor registers.
pub const TYPE: &str = "reference-remote";

/// The reference remote of one test: the tunnel, the host-side directories, and the server
/// once the workspace is created.
pub struct Reference {
    /// The tunnel's local end, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The project directory on the host.
    pub project: PathBuf,
    tunnel: Child,
    /// Where the host-side shell writes the server's pid before `exec`.
    pid_file: PathBuf,
    /// The server's output.
    log: PathBuf,
    plugin: Value,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `text` quoted for a POSIX shell.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The adaptor's entry module.
pub fn plugin_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tools/reference-remote.js")
        .canonicalize()
        .expect("tests/tools/reference-remote.js")
}

impl Reference {
    /// Prepares the host side (HOME, config with `config`'s provider keys, the tunnel) for the
    /// `opencode` binary at `binary`. The project is checked out later ([`Reference::checkout`]),
    /// once the laptop's project exists: both must share their root commit (OpenCode's project id).
    pub fn prepare(sshd: &Sshd, binary: &Path, config: &Value) -> Reference {
        let base = sshd.remote_home().join("reference");
        let home = base.join("home");
        let config_dir = base.join("xdg-config/opencode");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(config_dir.join("node_modules")).unwrap();
        // As for the laptop's OpenCode: a seeded lock file keeps it from installing
        // @opencode-ai/plugin from a registry at start-up.
        std::fs::write(
            config_dir.join("package-lock.json"),
            format!(r#"{{"lockfileVersion":3,"packages":{{"":{{"dependencies":{{"@opencode-ai/plugin":"{VERSION}"}}}}}}}}"#),
        )
        .unwrap();
        let mut remote_config = json!({
            "$schema": "https://opencode.ai/config.json",
            "autoupdate": false,
            "share": "disabled",
        });
        for key in ["provider", "model", "small_model", "permission", "agent"] {
            if let Some(value) = config.get(key) {
                remote_config[key] = value.clone();
            }
        }
        std::fs::write(
            config_dir.join("opencode.json"),
            serde_json::to_string_pretty(&remote_config).unwrap(),
        )
        .unwrap();

        let project = base.join("project");
        let pid_file = base.join("server.pid");
        let log = base.join("server.log");
        let remote_port = free_port();
        let local_port = free_port();
        let url = format!("http://127.0.0.1:{local_port}");

        let mut tunnel = sshd.ssh_command();
        tunnel
            .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
            .arg(format!("127.0.0.1:{local_port}:127.0.0.1:{remote_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let tunnel = tunnel.spawn().expect("ssh -N -L");

        let mut environment = vec![
            format!("HOME={}", quoted(&home.to_string_lossy())),
            "OPENCODE_DISABLE_AUTOUPDATE=1".to_owned(),
            "OPENCODE_DISABLE_MODELS_FETCH=1".to_owned(),
            "npm_config_offline=true".to_owned(),
        ];
        for (name, dir) in [
            ("XDG_CONFIG_HOME", "xdg-config"),
            ("XDG_CACHE_HOME", "xdg-cache"),
            ("XDG_DATA_HOME", "xdg-data"),
            ("XDG_STATE_HOME", "xdg-state"),
        ] {
            let path = base.join(dir);
            environment.push(format!("{name}={}", quoted(&path.to_string_lossy())));
        }
        // Reads NAME=value lines (the adaptor's environment) up to an empty line, then becomes
        // the server.
        let script = format!(
            "echo $$ > {pid}; cd {project} || exit 1; \
             while IFS= read -r line && [ -n \"$line\" ]; do export \"$line\"; done; \
             export {environment}; \
             exec {binary} serve --port {remote_port} --hostname 127.0.0.1 --print-logs --log-level WARN </dev/null",
            pid = quoted(&pid_file.to_string_lossy()),
            project = quoted(&project.to_string_lossy()),
            environment = environment.join(" "),
            binary = quoted(&binary.to_string_lossy()),
        );
        let server = sshd.ssh_command();
        let mut argv: Vec<String> = vec![server.get_program().to_string_lossy().into_owned()];
        argv.extend(server.get_args().map(|a| a.to_string_lossy().into_owned()));
        argv.push(script);
        let plugin = json!([
            format!("file://{}", plugin_path().display()),
            {
                "url": url,
                "directory": project,
                "server": argv,
                "log": log,
            }
        ]);
        Reference {
            url,
            project,
            tunnel,
            pid_file,
            log,
            plugin,
        }
    }

    /// The `plugin` entry for the laptop's OpenCode config.
    pub fn plugin_entry(&self) -> Value {
        self.plugin.clone()
    }

    /// Clones the laptop's project onto the host (same root commit, so the same project id).
    pub fn checkout(&self, local_project: &Path) {
        git(
            local_project.parent().unwrap(),
            &[
                "clone",
                "-q",
                &local_project.to_string_lossy(),
                &self.project.to_string_lossy(),
            ],
        );
    }

    /// The server's pid, once it started.
    pub fn server_pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Waits up to `limit` for the server to write its pid.
    pub fn wait_server(&self, limit: Duration) -> u32 {
        let started = Instant::now();
        loop {
            if let Some(pid) = self.server_pid() {
                return pid;
            }
            assert!(
                started.elapsed() < limit,
                "the reference server did not start; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the server printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        if let Some(pid) = self
            .server_pid()
            .and_then(|pid| rustix::process::Pid::from_raw(pid as i32))
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(5)
                && rustix::process::test_kill_process(pid).is_ok()
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        let _ = self.tunnel.kill();
        let _ = self.tunnel.wait();
    }
}

/// The laptop's OpenCode with both remotes registered: our plugin (workspace type
/// `ssh-provider`, its host named `host`) and the reference adaptor ([`TYPE`]), with the two
/// host projects cloned from the laptop's (OpenCode's project id is its root commit).
pub struct Both {
    /// The laptop's OpenCode.
    pub opencode: OpenCode,
    /// The reference remote.
    pub reference: Reference,
    /// Our host project.
    pub ours: PathBuf,
}

impl Both {
    /// Starts it with `config`'s model keys; `None` (after printing why) without OpenCode.
    pub fn start(sshd: &Sshd, mut config: Value, host: &str) -> Option<Both> {
        let binary = crate::opencode::binary()?;
        let reference = Reference::prepare(sshd, &binary, &config);
        config["plugin"] = json!([reference.plugin_entry()]);
        let ours = sshd.remote_home().join("ours/project");
        let options = json!({
            "providers": { "default": { "strategy": "first_available", "hosts": [{
                "name": host,
                "ssh": { "host": "127.0.0.1", "port": sshd.port(), "user": "root" },
                "directory": ours,
            }]}},
            "defaults": { "leaseMode": "shared" }
        });
        let opencode = OpenCode::start_with(sshd, options, Registration::Path, config)?;
        reference.checkout(&opencode.project);
        std::fs::create_dir_all(ours.parent().unwrap()).unwrap();
        git(
            &opencode.project,
            &["clone", "-q", ".", &ours.to_string_lossy()],
        );
        Some(Both {
            opencode,
            reference,
            ours: ours.canonicalize().unwrap(),
        })
    }
}

/// Resident memory of `pid` and its descendants, in bytes (`None` once it is gone).
pub fn tree_rss(pid: u32) -> Option<u64> {
    let own = rss(pid)?;
    let children: u64 = descendants(pid).into_iter().filter_map(rss).sum();
    Some(own + children)
}

/// Resident memory of `pid` alone, in bytes.
pub fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Every descendant of `pid` (children first found first).
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(parent) = queue.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else {
            continue;
        };
        for task in tasks.filter_map(Result::ok) {
            let path = task.path().join("children");
            let Ok(children) = std::fs::read_to_string(path) else {
                continue;
            };
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                found.push(child);
                queue.push(child);
            }
        }
    }
    found
}
