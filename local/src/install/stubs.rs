//! The stub binaries this `opencode-remote` can install, and their identity.
//!
//! The stub for this machine's architecture is embedded at build time (see `build.rs`); stubs
//! for other architectures can be placed next to the binary as `opencode-remote-stub-<arch>`
//! (e.g. `opencode-remote-stub-aarch64`). `OPENCODE_REMOTE_STUB=<file>` overrides both.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// The stub embedded by `build.rs`; empty when the build embedded none.
static EMBEDDED: &[u8] = include_bytes!(env!("OPENCODE_REMOTE_EMBEDDED_STUB"));

/// Environment variable naming a stub file to use for every host.
pub const OVERRIDE_ENV: &str = "OPENCODE_REMOTE_STUB";

/// `<version> <cksum> <size>` of the embedded stub, computed by `build.rs`.
static EMBEDDED_IDENTITY: &str = env!("OPENCODE_REMOTE_EMBEDDED_STUB_ID");

pub use super::cksum::cksum;

/// A stub binary ready to upload.
#[derive(Debug, Clone)]
pub struct Stub {
    /// The bytes.
    pub bytes: Cow<'static, [u8]>,
    /// Where they came from, for messages.
    pub origin: String,
    /// `<version> <cksum> <size>`, written next to the installed stub and compared on connect.
    pub identity: String,
}

/// No stub for a host's architecture.
#[derive(Debug, thiserror::Error)]
#[error(
    "no opencode-remote-stub for {arch}: this opencode-remote carries {available}; put a static \
     stub built for {arch} at {} (or set {OVERRIDE_ENV})",
    suggested.display()
)]
pub struct NoStub {
    /// The host's architecture.
    pub arch: String,
    /// What we have.
    pub available: String,
    /// Where a stub would be found.
    pub suggested: PathBuf,
}

/// ELF machine of a binary, mapped to Rust's arch names.
pub fn elf_arch(bytes: &[u8]) -> Option<&'static str> {
    if bytes.get(..4) != Some(b"\x7fELF") {
        return None;
    }
    let machine = u16::from_le_bytes([*bytes.get(18)?, *bytes.get(19)?]);
    match machine {
        0x3e => Some("x86_64"),
        0xb7 => Some("aarch64"),
        0x03 => Some("x86"),
        0x28 => Some("arm"),
        0xf3 => Some("riscv64"),
        _ => None,
    }
}

/// Whether an ELF binary is statically linked (no `PT_INTERP` program header, so it needs no
/// dynamic loader or libc on the host); `None` when the headers cannot be read.
pub fn elf_is_static(bytes: &[u8]) -> Option<bool> {
    if bytes.get(..4) != Some(b"\x7fELF") || bytes.get(5) != Some(&1) {
        return None; // Not ELF, or not little-endian.
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
    let (phoff, phentsize, phnum) = match bytes.get(4)? {
        1 => (u64::from(u32_at(0x1c)?), u16_at(0x2a)?, u16_at(0x2c)?),
        2 => (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?),
        _ => return None,
    };
    const PT_INTERP: u32 = 3;
    let phoff = usize::try_from(phoff).ok()?;
    for index in 0..usize::from(phnum) {
        let at = phoff.checked_add(index.checked_mul(usize::from(phentsize))?)?;
        if u32_at(at)? == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}

/// Normalises `uname -m` output to Rust arch names.
pub fn normalize_arch(uname_m: &str) -> String {
    match uname_m.trim() {
        "amd64" | "x86_64" => "x86_64".into(),
        "arm64" | "aarch64" | "aarch64_be" | "armv8l" => "aarch64".into(),
        "i386" | "i486" | "i586" | "i686" => "x86".into(),
        other => other.into(),
    }
}

fn exe_dir() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()?
        .parent()
        .map(Path::to_path_buf)
}

/// Finds the stub for `arch`.
///
/// # Errors
///
/// [`NoStub`] naming where to put one.
pub fn for_arch(arch: &str) -> Result<Stub, NoStub> {
    let from_file = |path: &Path| -> Option<Stub> {
        let bytes = std::fs::read(path).ok()?;
        if elf_arch(&bytes) != Some(arch) {
            return None;
        }
        match elf_is_static(&bytes) {
            Some(true) => {}
            // It would need the host's loader and libc (old hosts have neither in the version
            // it was built against).
            Some(false) => {
                tracing::warn!(
                    "{} is not a statically linked stub (it has an ELF interpreter); ignored",
                    path.display()
                );
                return None;
            }
            None => {
                tracing::warn!(
                    "{}: cannot read its ELF program headers; ignored",
                    path.display()
                );
                return None;
            }
        }
        Some(Stub::new(Cow::Owned(bytes), path.display().to_string()))
    };
    if let Some(path) = std::env::var_os(OVERRIDE_ENV)
        && let Some(stub) = from_file(Path::new(&path))
    {
        return Ok(stub);
    }
    if elf_arch(EMBEDDED) == Some(arch) {
        return Ok(Stub {
            bytes: Cow::Borrowed(EMBEDDED),
            origin: "embedded".into(),
            identity: EMBEDDED_IDENTITY.to_owned(),
        });
    }
    let dir = exe_dir().unwrap_or_default();
    let suggested = dir.join(format!("opencode-remote-stub-{arch}"));
    if let Some(stub) = from_file(&suggested) {
        return Ok(stub);
    }
    if let Some(stub) = from_file(&dir.join("opencode-remote-stub")) {
        return Ok(stub);
    }
    Err(NoStub {
        arch: arch.to_owned(),
        available: available(),
        suggested,
    })
}

fn available() -> String {
    match elf_arch(EMBEDDED) {
        Some(arch) => format!("an embedded stub for {arch} only"),
        None => "no embedded stub".into(),
    }
}

impl Stub {
    fn new(bytes: Cow<'static, [u8]>, origin: String) -> Stub {
        let identity = identity(&bytes);
        Stub {
            bytes,
            origin,
            identity,
        }
    }
}

/// Identities of every stub build this binary could install (one per architecture we ship).
pub fn identities() -> Vec<String> {
    ["x86_64", "aarch64"]
        .iter()
        .filter_map(|arch| for_arch(arch).ok())
        .map(|s| s.identity)
        .collect()
}

/// The install stamp of a stub build: `<version> <cksum> <size>`.
pub fn identity(bytes: &[u8]) -> String {
    format!(
        "{} {} {}",
        env!("CARGO_PKG_VERSION"),
        cksum(bytes),
        bytes.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cksum_should_match_the_posix_tool() {
        for data in [&b""[..], b"a", b"hello world\n", &[0u8; 70000][..]] {
            let mut child = std::process::Command::new("cksum")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child.stdin.take().unwrap().write_all(data).unwrap();
            let out = child.wait_with_output().unwrap();
            let expected: u32 = String::from_utf8(out.stdout)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(cksum(data), expected, "{} bytes", data.len());
        }
    }

    #[test]
    fn elf_is_static_should_tell_the_embedded_stub_from_a_dynamic_binary() {
        if !EMBEDDED.is_empty() {
            assert_eq!(elf_is_static(EMBEDDED), Some(true));
        }
        // This test binary is linked dynamically.
        let own = std::fs::read("/proc/self/exe").unwrap();
        assert_eq!(elf_is_static(&own), Some(false));
        assert_eq!(elf_is_static(b"#!/bin/sh\n"), None);
        assert_eq!(elf_is_static(&own[..64]), None);
    }

    #[test]
    fn elf_arch_should_read_the_machine_field() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(elf_arch(&me), Some(std::env::consts::ARCH));
        assert_eq!(elf_arch(b"#!/bin/sh\n"), None);
        assert_eq!(normalize_arch("amd64\n"), "x86_64");
        assert_eq!(normalize_arch("arm64"), "aarch64");
    }

    #[test]
    fn for_arch_should_find_the_embedded_stub_and_explain_missing_ones() {
        if elf_arch(EMBEDDED).is_some() {
            let stub = for_arch(std::env::consts::ARCH).unwrap();
            assert_eq!(stub.origin, "embedded");
            assert_eq!(
                stub.identity,
                identity(&stub.bytes),
                "build-time identity must match"
            );
            assert!(stub.identity.starts_with(env!("CARGO_PKG_VERSION")));
        }
        let err = for_arch("sparc64").unwrap_err().to_string();
        assert!(err.contains("no opencode-remote-stub for sparc64"), "{err}");
        assert!(err.contains("opencode-remote-stub-sparc64"), "{err}");
    }
}
