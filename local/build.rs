//! Builds the stub as a static binary for every architecture we ship (x86_64 and aarch64) and
//! embeds them in `opencode-remote`, so installing a stub on a host needs no network and no
//! separate file.
//!
//! The stub must be static (old hosts: CentOS/RHEL 7, glibc 2.17) and that needs
//! `-C target-feature=+crt-static`, which cargo cannot apply to one package of a workspace
//! without also breaking proc-macros (rustc refuses crt-static proc-macros unless `--target` is
//! given). So this script runs a nested `cargo build --profile stub --target <linux triple>` of
//! the `remote` package with those flags, in its own target directory per architecture, and
//! hands the results to the compiler through `OPENCODE_REMOTE_EMBEDDED_STUB_<ARCH>`.
//!
//! The stub of the build machine's own architecture is built with the same cargo and rustc as
//! this build. The other one needs a Rust standard library for that target and a cross linker
//! (`<arch>-linux-gnu-gcc`): either this rustc has the target installed (`rustup target add`),
//! or Debian's `rustc-web`/`cargo-web` with `libstd-rust-web-dev:<debian arch>` is in
//! `/usr/bin` (what `scripts/install-deps.sh` installs). Without either, that architecture is
//! left out with one warning, and hosts of that architecture get an error naming the fix.
//!
//! Environment:
//! - `OPENCODE_REMOTE_STUB_PATH=<file>[:<file>]`: embed these prebuilt stubs (each in the slot
//!   of its ELF architecture) instead of building any.
//! - `OPENCODE_REMOTE_NO_EMBED=1`: embed nothing; the binary then looks for stubs next to itself.

#[path = "src/install/cksum.rs"]
mod cksum;

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The architectures we ship stubs for (Rust names), with their Debian names.
const ARCHES: [(&str, &str); 2] = [("x86_64", "amd64"), ("aarch64", "arm64")];

/// Where the cross route looks for Debian's Rust (rustup's `cargo` shadows it on `PATH`).
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";

fn main() {
    println!("cargo:rerun-if-env-changed=OPENCODE_REMOTE_STUB_PATH");
    println!("cargo:rerun-if-env-changed=OPENCODE_REMOTE_NO_EMBED");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    let stubs: Vec<(&str, Option<PathBuf>)> =
        if env::var_os("OPENCODE_REMOTE_NO_EMBED").is_some_and(|v| v == "1") {
            ARCHES.iter().map(|(arch, _)| (*arch, None)).collect()
        } else if let Some(paths) = env::var_os("OPENCODE_REMOTE_STUB_PATH") {
            prebuilt(&paths)
        } else {
            build_stubs(&out_dir)
        };

    let version = env::var("CARGO_PKG_VERSION").unwrap_or_default();
    for (arch, path) in stubs {
        let bytes = match path {
            Some(path) => std::fs::read(&path)
                .unwrap_or_else(|err| panic!("cannot read stub {}: {err}", path.display())),
            None => Vec::new(),
        };
        let embedded = out_dir.join(format!("embedded-stub-{arch}"));
        // Rewriting identical bytes would still make rustc rebuild this crate (new mtime).
        if std::fs::read(&embedded).ok().as_deref() != Some(&bytes[..]) {
            std::fs::write(&embedded, &bytes).expect("cannot write the embedded stub");
        }
        let key = arch.to_uppercase();
        println!(
            "cargo:rustc-env=OPENCODE_REMOTE_EMBEDDED_STUB_{key}={}",
            embedded.display()
        );
        // The install stamp, so the binary need not checksum megabytes at run time.
        let identity = format!("{version} {} {}", cksum::cksum(&bytes), bytes.len());
        println!("cargo:rustc-env=OPENCODE_REMOTE_EMBEDDED_STUB_ID_{key}={identity}");
    }
}

/// `OPENCODE_REMOTE_STUB_PATH`: each file goes to the slot of its ELF machine.
fn prebuilt(paths: &OsString) -> Vec<(&'static str, Option<PathBuf>)> {
    let mut stubs: Vec<(&str, Option<PathBuf>)> =
        ARCHES.iter().map(|(arch, _)| (*arch, None)).collect();
    for path in env::split_paths(paths) {
        println!("cargo:rerun-if-changed={}", path.display());
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|err| panic!("cannot read stub {}: {err}", path.display()));
        let machine = bytes.get(18..20).map(|m| u16::from_le_bytes([m[0], m[1]]));
        let arch = match (bytes.get(..4), machine) {
            (Some(b"\x7fELF"), Some(0x3e)) => "x86_64",
            (Some(b"\x7fELF"), Some(0xb7)) => "aarch64",
            _ => panic!(
                "{} is not an x86_64 or aarch64 ELF binary (OPENCODE_REMOTE_STUB_PATH)",
                path.display()
            ),
        };
        for slot in &mut stubs {
            if slot.0 == arch {
                slot.1 = Some(path.clone());
            }
        }
    }
    stubs
}

/// A cargo and rustc that can build for a triple, and the linker to use (cross builds only).
struct Toolchain {
    cargo: OsString,
    rustc: Option<OsString>,
    linker: Option<String>,
}

fn build_stubs(out_dir: &Path) -> Vec<(&'static str, Option<PathBuf>)> {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let workspace = manifest_dir
        .parent()
        .expect("local/ is inside the workspace")
        .to_owned();
    for watched in [
        "remote/src",
        "remote/Cargo.toml",
        "protocol/src",
        "protocol/Cargo.toml",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    // OUT_DIR is <target>/[<triple>/]<profile>/build/local-<hash>/out: share the stub builds
    // between profiles by going up to the target directory.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .expect("OUT_DIR is deep inside the target directory")
        .to_owned();
    let native_linux = env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let native_arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();

    let mut plans = Vec::new();
    let mut stubs = Vec::new();
    for (arch, debian_arch) in ARCHES {
        let triple = format!("{arch}-unknown-linux-gnu");
        let toolchain = if native_linux && arch == native_arch {
            Some(Toolchain {
                cargo: env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
                rustc: None,
                linker: None,
            })
        } else {
            cross_toolchain(&triple)
        };
        match toolchain {
            Some(toolchain) => plans.push((arch, triple, toolchain)),
            None => {
                println!(
                    "cargo:warning=not embedding an {arch} stub: no Rust standard library for \
                     {triple} with an {arch}-linux-gnu-gcc linker here (scripts/install-deps.sh \
                     installs Debian's: rustc-web cargo-web libstd-rust-web-dev:{debian_arch} \
                     gcc-{gcc}-linux-gnu libc6-dev-{debian_arch}-cross); {arch} hosts will need \
                     OPENCODE_REMOTE_STUB",
                    gcc = arch.replace('_', "-"),
                );
                // Installing the toolchain adds files to /usr/bin: look again then.
                println!("cargo:rerun-if-changed=/usr/bin");
                stubs.push((arch, None));
            }
        }
    }

    // Both builds at once: each ends in a long single-threaded link-time optimisation, and
    // they overlap there.
    let results: Vec<(&str, PathBuf, std::io::Result<Output>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = plans
            .iter()
            .map(|(arch, triple, toolchain)| {
                let dir = target_dir.join(stub_dir_name(arch, &native_arch));
                let command = stub_command(&workspace, &dir, triple, toolchain);
                let built = dir.join(triple).join("stub").join("opencode-remote-stub");
                (*arch, built, scope.spawn(move || run(command)))
            })
            .collect();
        handles
            .into_iter()
            .map(|(arch, built, handle)| {
                let output = handle.join().expect("the stub build thread does not panic");
                (arch, built, output)
            })
            .collect()
    });
    for (arch, built, output) in results {
        let output =
            output.unwrap_or_else(|err| panic!("cannot run cargo for the {arch} stub: {err}"));
        if !output.status.success() {
            panic!(
                "building the static {arch} stub failed ({}):\n{}\n\nSet \
                 OPENCODE_REMOTE_NO_EMBED=1 to build without embedded stubs.",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        stubs.push((arch, Some(built)));
    }
    stubs.sort_by_key(|(arch, _)| ARCHES.iter().position(|(a, _)| a == arch));
    stubs
}

/// `stub-build` for the native stub (where it always was), `stub-build-<arch>` for a cross one:
/// it is built by another rustc, and sharing a target directory would make the two evict each
/// other's build scripts and proc-macros.
fn stub_dir_name(arch: &str, native_arch: &str) -> String {
    if arch == native_arch {
        "stub-build".into()
    } else {
        format!("stub-build-{arch}")
    }
}

fn run(mut command: Command) -> std::io::Result<Output> {
    command.output()
}

/// This build's rustc when it has the target's standard library, else Debian's.
fn cross_toolchain(triple: &str) -> Option<Toolchain> {
    let arch = triple.split('-').next()?;
    let linker = format!("{arch}-linux-gnu-gcc");
    let on_path = env::var_os("PATH")
        .is_some_and(|path| env::split_paths(&path).any(|dir| dir.join(&linker).is_file()));
    if !on_path {
        return None;
    }
    let own_rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    if has_std(&own_rustc, triple) {
        return Some(Toolchain {
            cargo: env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
            rustc: None,
            linker: Some(linker),
        });
    }
    if Path::new(DEBIAN_CARGO).is_file() && has_std(DEBIAN_RUSTC.as_ref(), triple) {
        return Some(Toolchain {
            cargo: DEBIAN_CARGO.into(),
            rustc: Some(DEBIAN_RUSTC.into()),
            linker: Some(linker),
        });
    }
    None
}

/// Whether `rustc` has a standard library for `triple`.
fn has_std(rustc: &std::ffi::OsStr, triple: &str) -> bool {
    let Ok(output) = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", triple])
        .output()
    else {
        return false;
    };
    let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    output.status.success()
        && std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|entry| {
                entry
                    .file_name()
                    .to_str()
                    .is_some_and(|name| name.starts_with("libstd-") && name.ends_with(".rlib"))
            })
        })
}

fn stub_command(
    workspace: &Path,
    target_dir: &Path,
    triple: &str,
    toolchain: &Toolchain,
) -> Command {
    let env_triple = triple.to_uppercase().replace('-', "_");
    let mut command = Command::new(&toolchain.cargo);
    command
        .current_dir(workspace)
        .args([
            "build",
            "--profile",
            "stub",
            "--locked",
            "-p",
            "remote",
            "--bin",
            "opencode-remote-stub",
        ])
        .arg("--target")
        .arg(triple)
        .arg("--target-dir")
        .arg(target_dir);
    // Do not leak this build's own settings (clippy wrappers, outer RUSTFLAGS) into the nested
    // one: they would change its fingerprint and force rebuilds.
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let inherited = key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || key.starts_with("DEP_");
        if inherited
            || matches!(
                key,
                "RUSTFLAGS"
                    | "CARGO_ENCODED_RUSTFLAGS"
                    | "CARGO_BUILD_RUSTFLAGS"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "RUSTC_WRAPPER"
                    | "CLIPPY_ARGS"
                    | "CARGO_BUILD_TARGET"
                    | "CARGO_TARGET_DIR"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "TARGET"
                    | "HOST"
                    | "OUT_DIR"
                    | "PROFILE"
                    | "OPT_LEVEL"
                    | "DEBUG"
                    | "NUM_JOBS"
                    | "RUSTDOC"
            )
        {
            command.env_remove(key);
        }
    }
    if let Some(rustc) = &toolchain.rustc {
        command.env("RUSTC", rustc);
    }
    if let Some(linker) = &toolchain.linker {
        command.env(format!("CARGO_TARGET_{env_triple}_LINKER"), linker);
    }
    // Static, non-PIE: `file` reports "statically linked" and the binary needs no loader.
    command.env(
        format!("CARGO_TARGET_{env_triple}_RUSTFLAGS"),
        "-C target-feature=+crt-static -C relocation-model=static",
    );
    command
}
