//! The real OpenCode server (npm `opencode-ai@1.18.33`) as a test fixture, isolated in temp
//! directories, with our plugin loaded by path.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::bins;
use crate::sshd::Sshd;

/// The OpenCode version the plugin and stub are built against.
pub const VERSION: &str = "1.18.33";

/// Finds the OpenCode binary: `OPENCODE_BIN`, then `.cache/opencode` in the repository (where
/// `scripts/install-deps.sh` puts it). `None` (after printing why) when missing, unless
/// `OPENCODE_REMOTE_REQUIRE_OPENCODE=1` or `CI` is set, which panics.
pub fn binary() -> Option<PathBuf> {
    let candidate = std::env::var_os("OPENCODE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../.cache/opencode/node_modules/.bin/opencode")
        });
    if candidate.is_file() {
        return Some(candidate);
    }
    let required = std::env::var_os("OPENCODE_REMOTE_REQUIRE_OPENCODE").is_some_and(|v| v == "1")
        || std::env::var_os("CI").is_some();
    let reason = format!(
        "OpenCode {VERSION} not found at {} (run scripts/install-deps.sh or set OPENCODE_BIN)",
        candidate.display()
    );
    assert!(!required, "{reason}");
    eprintln!("SKIP: {reason}");
    None
}

/// Start an [`OpenCode`] or return from the test when OpenCode (or sshd) is not available.
#[macro_export]
macro_rules! require_opencode {
    ($sshd:expr, $options:expr) => {
        match $crate::opencode::OpenCode::start($sshd, $options) {
            ::std::option::Option::Some(opencode) => opencode,
            ::std::option::Option::None => return,
        }
    };
}

/// How the plugin appears in OpenCode's `plugin` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// The plugin directory's absolute path.
    Path,
    /// A `file://` URL to the plugin's entry module.
    FileUrl,
    /// The npm name `opencode-remote-provider`, served from OpenCode's package cache where a
    /// copy of `local/plugin` is placed (no registry needed).
    Package,
}

/// A running `opencode serve` with an isolated HOME/XDG tree and a git project.
pub struct OpenCode {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The local project directory (a git repository).
    pub project: PathBuf,
    /// The local project id (root commit hash).
    pub project_id: String,
    log: Arc<Mutex<String>>,
    binary: PathBuf,
    home: PathBuf,
    _dir: TempDir,
}

fn spawn(
    binary: &Path,
    project: &Path,
    home: &Path,
    dir: &Path,
) -> (Child, String, Arc<Mutex<String>>) {
    let mut command = Command::new(binary);
    command
        .args([
            "serve",
            "--port",
            "0",
            "--hostname",
            "127.0.0.1",
            "--print-logs",
            "--log-level",
            "INFO",
        ])
        .current_dir(project)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
        .env("XDG_CACHE_HOME", dir.join("xdg-cache"))
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .env("XDG_STATE_HOME", dir.join("xdg-state"))
        .env("OPENCODE_EXPERIMENTAL_WORKSPACES", "true")
        .env("OPENCODE_DISABLE_AUTOUPDATE", "1")
        .env("OPENCODE_DISABLE_MODELS_FETCH", "1")
        .env("npm_config_offline", "true")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("OPENCODE_CONFIG")
        .env_remove("OPENCODE_SERVER_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if std::env::var_os("OPENCODE_REMOTE_LOG").is_none() {
        command.env("OPENCODE_REMOTE_LOG", "info");
    }
    let mut child = command.spawn().expect("start opencode");
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let log = log.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(at) = line.find("http://127.0.0.1:") {
                    let url: String = line[at..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect();
                    let _ = tx.send(url.trim_end_matches('/').to_owned());
                }
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
    }
    let url = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(url) => url,
        Err(_) => {
            let _ = child.kill();
            panic!(
                "opencode did not report its URL; log:\n{}",
                log.lock().unwrap()
            );
        }
    };
    (child, url, log)
}

/// Runs `git` in `dir` with a throwaway identity; its trimmed stdout. Panics when it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().filter_map(Result::ok) {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The plugin directory (path-based registration).
pub fn plugin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../local/plugin")
        .canonicalize()
        .expect("local/plugin")
}

impl OpenCode {
    /// Starts OpenCode with the plugin configured with `options` (the `binary` option is filled
    /// in). HOME is the sshd harness's local home, so the bridge finds its keys and known_hosts.
    pub fn start(sshd: &Sshd, options: Value) -> Option<OpenCode> {
        Self::start_with(sshd, options, Registration::Path, json!({}))
    }

    /// Like [`OpenCode::start`], with the plugin registered as `registration` and the keys of
    /// `extra` (e.g. `provider`, `model`) added to OpenCode's config (`plugin` entries are
    /// added after ours).
    pub fn start_with(
        sshd: &Sshd,
        mut options: Value,
        registration: Registration,
        extra: Value,
    ) -> Option<OpenCode> {
        let binary = binary()?;
        let dir = tempfile::Builder::new()
            .prefix("ocr-opencode-")
            .tempdir()
            .unwrap();
        let project = dir.path().join("project");
        std::fs::create_dir_all(&project).unwrap();
        git(&project, &["init", "-q", "-b", "main"]);
        std::fs::write(project.join("LOCAL.md"), "this file is on the laptop\n").unwrap();
        git(&project, &["add", "."]);
        git(&project, &["commit", "-q", "-m", "init"]);
        let project_id = git(&project, &["rev-list", "--max-parents=0", "HEAD"]);
        if registration == Registration::Package {
            // What OpenCode's installer would have produced for `opencode-remote-provider@latest`.
            let installed = dir.path().join("xdg-cache/opencode/packages/opencode-remote-provider@latest/node_modules/opencode-remote-provider");
            copy_tree(&plugin_dir(), &installed);
        }

        options["binary"] = json!(bins::local_bin());
        let config_home = dir.path().join("xdg-config");
        let opencode_config = config_home.join("opencode");
        std::fs::create_dir_all(&opencode_config).unwrap();
        let spec = match registration {
            Registration::Path => plugin_dir().to_string_lossy().into_owned(),
            Registration::FileUrl => format!("file://{}/index.js", plugin_dir().display()),
            Registration::Package => "opencode-remote-provider".to_owned(),
        };
        let mut config = json!({
            "$schema": "https://opencode.ai/config.json",
            "plugin": [[spec, options]],
            "autoupdate": false,
            "share": "disabled",
        });
        for (key, value) in extra.as_object().into_iter().flatten() {
            match (key.as_str(), value) {
                // More plugins join ours.
                ("plugin", Value::Array(more)) => config["plugin"]
                    .as_array_mut()
                    .unwrap()
                    .extend(more.iter().cloned()),
                _ => config[key] = value.clone(),
            }
        }
        std::fs::write(
            opencode_config.join("opencode.json"),
            serde_json::to_string_pretty(&config).unwrap(),
        )
        .unwrap();
        // OpenCode installs @opencode-ai/plugin into every config dir at start-up and waits for
        // it when plugins are configured (~70 s without a registry). A seeded lock file makes it
        // a no-op.
        for config_dir in [opencode_config.clone(), project.join(".opencode")] {
            std::fs::create_dir_all(config_dir.join("node_modules")).unwrap();
            std::fs::write(
                config_dir.join("package-lock.json"),
                format!(r#"{{"lockfileVersion":3,"packages":{{"":{{"dependencies":{{"@opencode-ai/plugin":"{VERSION}"}}}}}}}}"#),
            )
            .unwrap();
        }

        let home = sshd.local_home();
        let (child, url, log) = spawn(&binary, &project, &home, dir.path());
        Some(OpenCode {
            child,
            url,
            project,
            project_id,
            log,
            binary,
            home,
            _dir: dir,
        })
    }

    /// Stops OpenCode (SIGTERM, like a user quitting) and starts it again with the same state
    /// directories and project; the URL changes.
    pub fn restart(&mut self) {
        self.stop();
        let (child, url, log) = spawn(&self.binary, &self.project, &self.home, self._dir.path());
        self.child = child;
        self.url = url;
        self.log = log;
    }

    /// The data directory (`opencode/auth.json` lives under it).
    pub fn data_dir(&self) -> PathBuf {
        self._dir.path().join("xdg-data")
    }

    /// The plugin's state directory.
    pub fn plugin_state_dir(&self) -> PathBuf {
        self._dir.path().join("xdg-state/opencode-remote")
    }

    fn stop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Everything OpenCode printed.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The loopback address (`127.0.0.1:PORT`) and secret of `workspace`'s bridge, as the
    /// plugin recorded them.
    pub fn bridge_of(&self, workspace: &str) -> (String, String) {
        let path = self
            .plugin_state_dir()
            .join(format!("workspaces/{workspace}.json"));
        let record: Value = serde_json::from_str(
            &std::fs::read_to_string(&path)
                .unwrap_or_else(|err| panic!("{}: {err}", path.display())),
        )
        .unwrap();
        let secret = record["secret"].as_str().expect("a secret").to_owned();
        (format!("127.0.0.1:{}", record["port"]), secret)
    }

    /// The stub's own event stream of `workspace`, straight from its bridge (OpenCode drops
    /// what does not match its schema, so its own stream alone would hide a mismatch).
    pub async fn stub_events(
        &self,
        workspace: &str,
    ) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
        let (bridge, secret) = self.bridge_of(workspace);
        crate::http::subscribe(&bridge, &format!("/{secret}/global/event")).await
    }

    /// The sessions OpenCode lists for `workspace` (as the TUI asks: `path` empty).
    pub async fn sessions_in(
        &self,
        client: &mut crate::http::Client,
        workspace: &str,
    ) -> Vec<Value> {
        let query = self.query(&format!("workspace={workspace}&path="));
        let (_, sessions) = client
            .json("GET", &format!("/session{query}"), &Value::Null)
            .await;
        match sessions {
            Value::Array(sessions) => sessions,
            other => panic!("GET /session answered {other}"),
        }
    }

    /// `?directory=<project>` plus extra query pairs.
    pub fn query(&self, extra: &str) -> String {
        let directory: String = self
            .project
            .to_string_lossy()
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        if extra.is_empty() {
            format!("?directory={directory}")
        } else {
            format!("?directory={directory}&{extra}")
        }
    }

    /// `host:port` of the server.
    pub fn authority(&self) -> String {
        self.url.trim_start_matches("http://").to_owned()
    }

    /// Creates a workspace of `kind` with `extra` and waits (≤ 60 s) until it is connected; its
    /// id, or why it could not be created.
    pub async fn create_workspace(
        &self,
        client: &mut crate::http::Client,
        kind: &str,
        extra: Value,
    ) -> Result<String, String> {
        let (status, workspace) = client
            .json(
                "POST",
                &format!("/experimental/workspace{}", self.query("")),
                &json!({ "type": kind, "branch": null, "extra": extra }),
            )
            .await;
        if status != 200 {
            return Err(format!("creating a {kind} workspace: {status} {workspace}"));
        }
        let id = workspace["id"].as_str().unwrap().to_owned();
        self.wait_status(client, &id, "connected", Duration::from_secs(60))
            .await;
        Ok(id)
    }

    /// Polls `GET /experimental/workspace/status` until `workspace` has `status` (≤ `limit`).
    pub async fn wait_status(
        &self,
        client: &mut crate::http::Client,
        workspace: &str,
        status: &str,
        limit: Duration,
    ) -> Value {
        let started = Instant::now();
        let mut last = Value::Null;
        while started.elapsed() < limit {
            let (_, statuses) = client
                .json(
                    "GET",
                    &format!("/experimental/workspace/status{}", self.query("")),
                    &Value::Null,
                )
                .await;
            if let Some(entry) = statuses
                .as_array()
                .and_then(|a| a.iter().find(|s| s["workspaceID"] == workspace))
            {
                if entry["status"] == status {
                    return entry.clone();
                }
                last = entry.clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "workspace {workspace} not {status} within {limit:?} (last: {last}); opencode log:\n{}",
            self.log()
        );
    }
}

impl Drop for OpenCode {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "===== opencode log =====\n{}\n===== end of opencode log =====",
                self.log()
            );
        }
    }
}

/// Pids of running `opencode-remote bridge` processes for `workspace`.
pub fn bridge_pids(workspace: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let is_bridge = args
                .first()
                .is_some_and(|a| a.ends_with(b"opencode-remote"))
                && args.get(1) == Some(&&b"bridge"[..])
                && args.contains(&workspace.as_bytes());
            is_bridge.then_some(pid)
        })
        .collect()
}
