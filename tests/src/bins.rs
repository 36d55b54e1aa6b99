//! Finding the binaries under test and running them against a harness sshd.
//!
//! Cargo only builds a package's own binaries for its integration tests, so the test command
//! builds the workspace first (`cargo build --release`); these helpers then pick the newest of
//! `target/release` and `target/debug`, or `OPENCODE_REMOTE_BIN` when set.

use std::path::PathBuf;
use std::process::Command;

use crate::sshd::Sshd;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn newest(name: &str) -> PathBuf {
    let candidates: Vec<PathBuf> = ["release", "debug"]
        .iter()
        .map(|profile| target_dir().join(profile).join(name))
        .filter(|p| p.is_file())
        .collect();
    candidates
        .into_iter()
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| {
            panic!("{name} is not built: run `cargo build --release` (or scripts/test.sh) first")
        })
}

/// The `opencode-remote` binary.
pub fn local_bin() -> PathBuf {
    std::env::var_os("OPENCODE_REMOTE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| newest("opencode-remote"))
}

/// The release build of `opencode-remote` (what users run), for measurements.
pub fn release_local_bin() -> Option<PathBuf> {
    let path = target_dir().join("release").join("opencode-remote");
    path.is_file().then_some(path)
}

/// The static x86_64 stub the local binary embeds (built by its build script).
pub fn static_stub() -> PathBuf {
    static_stub_for("x86_64").unwrap_or_else(|missing| {
        panic!(
            "{} is missing: build opencode-remote first",
            missing.display()
        )
    })
}

/// The static stub for `arch` that the local binary embeds, or the path where it is missing
/// (`local/build.rs` leaves out a cross stub when the machine has no toolchain for it).
pub fn static_stub_for(arch: &str) -> Result<PathBuf, PathBuf> {
    let dir = if arch == std::env::consts::ARCH {
        "stub-build".to_owned()
    } else {
        format!("stub-build-{arch}")
    };
    let path = target_dir().join(dir).join(format!(
        "{arch}-unknown-linux-gnu/stub/opencode-remote-stub"
    ));
    if path.is_file() { Ok(path) } else { Err(path) }
}

/// `opencode-remote` with `HOME` set to the harness's local home and no agent.
pub fn local(sshd: &Sshd) -> Command {
    let mut command = Command::new(local_bin());
    command
        .env("HOME", sshd.local_home())
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("OPENCODE_CONFIG")
        .env_remove("XDG_CONFIG_HOME");
    if std::env::var_os("OPENCODE_REMOTE_LOG").is_none() {
        command.env("OPENCODE_REMOTE_LOG", "info");
    }
    command
}

/// The ssh-style destination of a harness sshd.
pub fn destination(sshd: &Sshd) -> String {
    format!("{}@127.0.0.1:{}", sshd.user(), sshd.port())
}
