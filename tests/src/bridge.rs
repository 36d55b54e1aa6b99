//! A running `opencode-remote bridge` child process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::bins;
use crate::sshd::Sshd;

/// A bridge child. Dropping it closes its stdin (its lifetime signal) and waits for it.
pub struct BridgeProcess {
    /// The child.
    pub child: Child,
    /// The `url` of its JSON line.
    pub url: String,
    /// The whole JSON line.
    pub info: serde_json::Value,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl BridgeProcess {
    /// Starts `opencode-remote bridge <destination> <extra…>` for `sshd` and waits (≤ 30 s) for
    /// its JSON line. Panics with its stderr if it fails.
    pub fn start(sshd: &Sshd, extra: &[&str]) -> BridgeProcess {
        Self::try_start(sshd, extra).unwrap_or_else(|err| panic!("{err}"))
    }

    /// Like [`BridgeProcess::start`], returning the stderr on failure.
    pub fn try_start(sshd: &Sshd, extra: &[&str]) -> Result<BridgeProcess, String> {
        let mut command = bins::local(sshd);
        command
            .arg("bridge")
            .arg(bins::destination(sshd))
            .args(extra);
        Self::spawn(command)
    }

    /// Spawns a prepared `bridge` command.
    pub fn spawn(mut command: std::process::Command) -> Result<BridgeProcess, String> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn failed: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let stderr_pipe = child.stderr.take().expect("piped");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                eprintln!("[bridge] {line}");
                let mut sink = sink.lock().unwrap();
                sink.push_str(&line);
                sink.push('\n');
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let result = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send(result);
            // Keep draining so the bridge never blocks on stdout.
            let mut rest = String::new();
            while reader.read_line(&mut rest).is_ok_and(|n| n > 0) {
                rest.clear();
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(line)) if !line.trim().is_empty() => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "bridge gave no URL ({other:?}); stderr:\n{}",
                    stderr.lock().unwrap()
                ));
            }
        };
        let info: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("bad JSON line {line:?}: {e}"))?;
        let url = info["url"].as_str().ok_or("no url")?.to_owned();
        Ok(BridgeProcess {
            child,
            url,
            info,
            stderr,
        })
    }

    /// Everything the bridge wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// `host:port` of the listener.
    pub fn authority(&self) -> String {
        self.url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_owned()
    }

    /// The secret path prefix (with leading slash).
    pub fn prefix(&self) -> String {
        let rest = self.url.trim_start_matches("http://");
        rest[rest.find('/').unwrap()..].to_owned()
    }

    /// SIGKILLs the bridge (its SSH connection drops with it) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closes stdin and waits up to 5 s for the bridge to exit; returns whether it did.
    pub fn close(&mut self) -> bool {
        drop(self.child.stdin.take());
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        if !self.close() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
