//! An emulated aarch64 host: an arm64 Debian root (debootstrap, cached in `.cache/arm64-root`
//! by `tests/tools/arm64_root.sh`) whose own sshd runs under qemu-user through binfmt_misc,
//! chrooted in a mount namespace of its own ([`SshdBuilder::root`]). On that "host",
//! `uname -m` says `aarch64` and every program, the stub included, is an aarch64 binary.
//!
//! [`root`] returns `None` (after printing `SKIP: …`) when something is missing, unless
//! `OPENCODE_REMOTE_REQUIRE_ARM64=1` or `CI` is set, in which case it panics with the reason.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::sshd::SshdBuilder;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/arm64_root.sh");

/// Whether a missing aarch64 host (or aarch64 stub) fails the test instead of skipping it.
pub fn required() -> bool {
    std::env::var_os("OPENCODE_REMOTE_REQUIRE_ARM64").is_some_and(|v| v == "1")
        || std::env::var_os("CI").is_some()
}

/// The arm64 root, made on first use (a few minutes; tests running at the same time share
/// one attempt), or `None` when it cannot be made here and is not required.
pub fn root() -> Option<PathBuf> {
    static ROOT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match ROOT.get_or_init(make_root) {
        Ok(root) => Some(root.clone()),
        Err(reason) => {
            assert!(
                !required(),
                "the aarch64 host is required ({reason}; OPENCODE_REMOTE_REQUIRE_ARM64=1 or CI \
                 is set)"
            );
            eprintln!("SKIP: {reason}");
            None
        }
    }
}

fn make_root() -> Result<PathBuf, String> {
    if !rustix::process::geteuid().is_root() {
        return Err("the aarch64 host needs root (chroot, mounts, binfmt_misc)".into());
    }
    for (tool, package) in [
        ("/usr/bin/qemu-aarch64-static", "qemu-user-static"),
        ("/usr/sbin/debootstrap", "debootstrap"),
        ("/usr/bin/unshare", "util-linux"),
    ] {
        if !std::path::Path::new(tool).is_file() {
            return Err(format!(
                "{tool} is missing: run scripts/install-deps.sh (apt-get install {package})"
            ));
        }
    }
    let output = Command::new(SCRIPT)
        .output()
        .map_err(|err| format!("cannot run {SCRIPT}: {err}"))?;
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        return Err(format!("{SCRIPT} failed ({})", output.status));
    }
    let root = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if !root.join("usr/sbin/sshd").is_file() {
        return Err(format!("{} has no usr/sbin/sshd", root.display()));
    }
    Ok(root)
}

/// An [`SshdBuilder`] for the aarch64 host, or `None` as [`root`] says.
pub fn sshd_builder() -> Option<SshdBuilder> {
    Some(SshdBuilder::default().root(root()?))
}
