//! The stub binaries this `opencode-remote` can install, and their identity.
//!
//! One static stub per shipped architecture ([`SUPPORTED`]) is embedded at build time (see
//! `build.rs`; a build machine without a cross toolchain embeds only its own). Stubs can also
//! be placed next to the binary as `opencode-remote-stub-<arch>` (e.g.
//! `opencode-remote-stub-riscv64`). `OPENCODE_REMOTE_STUB=<file>` overrides both.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// The architectures (Rust names, as [`normalize_arch`] gives them) that stubs are built for.
pub const SUPPORTED: [&str; 2] = ["x86_64", "aarch64"];

/// An embedded stub: empty bytes when the build could not make one for its architecture.
struct Embedded {
    arch: &'static str,
    bytes: &'static [u8],
    /// `<version> <cksum> <size>`, computed by `build.rs`.
    identity: &'static str,
}

static EMBEDDED: [Embedded; 2] = [
    Embedded {
        arch: "x86_64",
        bytes: include_bytes!(env!("OPENCODE_REMOTE_EMBEDDED_STUB_X86_64")),
        identity: env!("OPENCODE_REMOTE_EMBEDDED_STUB_ID_X86_64"),
    },
    Embedded {
        arch: "aarch64",
        bytes: include_bytes!(env!("OPENCODE_REMOTE_EMBEDDED_STUB_AARCH64")),
        identity: env!("OPENCODE_REMOTE_EMBEDDED_STUB_ID_AARCH64"),
    },
];

/// Environment variable naming a stub file to use for every host.
pub const OVERRIDE_ENV: &str = "OPENCODE_REMOTE_STUB";

/// What makes a build embed the aarch64 stub too (Debian/Ubuntu packages; the x86_64 stub needs
/// only the usual Rust toolchain on an x86_64 machine).
pub const AARCH64_TOOLCHAIN: &str = "sudo dpkg --add-architecture arm64 && sudo apt-get update && \
     sudo apt-get install rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu \
     libc6-dev-arm64-cross";

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
#[non_exhaustive]
pub enum NoStub {
    /// Not an architecture we build stubs for.
    #[error(
        "no opencode-remote-stub for {arch}: opencode-remote supports {supported} hosts; for \
         {arch}, build a static stub yourself and put it at {} or set {OVERRIDE_ENV}=<file>",
        suggested.display(),
        supported = SUPPORTED.join(" and ")
    )]
    Unsupported {
        /// The host's architecture.
        arch: String,
        /// Where a stub would be found.
        suggested: PathBuf,
    },
    /// An architecture we support, but this binary was built without its stub.
    #[error(
        "no opencode-remote-stub for {arch}: this opencode-remote was built without its {arch} \
         stub ({available}), because its build machine had no {arch} cross toolchain; install \
         it (scripts/install-deps.sh does, or: {hint}) and rebuild, or set {OVERRIDE_ENV}=<file> \
         to a static {arch} stub",
        available = available(),
        hint = toolchain_hint(arch)
    )]
    NotEmbedded {
        /// The host's architecture.
        arch: String,
    },
}

fn toolchain_hint(arch: &str) -> &'static str {
    match arch {
        "aarch64" => AARCH64_TOOLCHAIN,
        _ => "rustup target add x86_64-unknown-linux-gnu and gcc for x86_64",
    }
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
    if let Some(embedded) = EMBEDDED
        .iter()
        .find(|e| e.arch == arch && elf_arch(e.bytes) == Some(arch))
    {
        return Ok(Stub {
            bytes: Cow::Borrowed(embedded.bytes),
            origin: "embedded".into(),
            identity: embedded.identity.to_owned(),
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
    if SUPPORTED.contains(&arch) {
        Err(NoStub::NotEmbedded {
            arch: arch.to_owned(),
        })
    } else {
        Err(NoStub::Unsupported {
            arch: arch.to_owned(),
            suggested,
        })
    }
}

/// The architectures of the embedded stubs, e.g. `["x86_64", "aarch64"]`.
pub fn embedded_arches() -> Vec<&'static str> {
    EMBEDDED
        .iter()
        .filter(|e| elf_arch(e.bytes) == Some(e.arch))
        .map(|e| e.arch)
        .collect()
}

fn available() -> String {
    match embedded_arches().as_slice() {
        [] => "it embeds no stub".into(),
        arches => format!("it embeds {} only", arches.join(" and ")),
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
    SUPPORTED
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
        for embedded in EMBEDDED.iter().filter(|e| !e.bytes.is_empty()) {
            assert_eq!(
                elf_is_static(embedded.bytes),
                Some(true),
                "{}",
                embedded.arch
            );
            assert_eq!(elf_arch(embedded.bytes), Some(embedded.arch));
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
    fn for_arch_should_find_the_embedded_stubs_and_explain_missing_ones() {
        for arch in embedded_arches() {
            let stub = for_arch(arch).unwrap();
            assert_eq!(stub.origin, "embedded");
            assert_eq!(elf_arch(&stub.bytes), Some(arch));
            assert_eq!(
                stub.identity,
                identity(&stub.bytes),
                "build-time identity must match"
            );
            assert!(stub.identity.starts_with(env!("CARGO_PKG_VERSION")));
        }
        let err = for_arch("riscv64").unwrap_err().to_string();
        assert!(err.contains("no opencode-remote-stub for riscv64"), "{err}");
        assert!(err.contains("supports x86_64 and aarch64 hosts"), "{err}");
        assert!(err.contains("opencode-remote-stub-riscv64"), "{err}");
        assert!(err.contains(OVERRIDE_ENV), "{err}");
    }

    #[test]
    fn a_missing_embedded_stub_should_name_the_toolchain_to_install() {
        let err = NoStub::NotEmbedded {
            arch: "aarch64".into(),
        }
        .to_string();
        assert!(err.contains("built without its aarch64 stub"), "{err}");
        assert!(err.contains("scripts/install-deps.sh"), "{err}");
        assert!(err.contains("libstd-rust-web-dev:arm64"), "{err}");
        assert!(err.contains(OVERRIDE_ENV), "{err}");
    }
}
