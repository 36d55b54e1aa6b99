//! Builds the stub as a static binary and embeds it in `opencode-remote`, so installing a stub on
//! a host needs no network and no separate file.
//!
//! The stub must be static (old hosts: CentOS/RHEL 7, glibc 2.17) and that needs
//! `-C target-feature=+crt-static`, which cargo cannot apply to one package of a workspace
//! without also breaking proc-macros (rustc refuses crt-static proc-macros unless `--target` is
//! given). So this script runs a nested `cargo build --target <linux triple>` of the `remote`
//! package with those flags, in its own target directory, and hands the result to the compiler
//! through `OPENCODE_REMOTE_EMBEDDED_STUB`.
//!
//! Environment:
//! - `OPENCODE_REMOTE_STUB_PATH=<file>`: embed this prebuilt stub instead of building one.
//! - `OPENCODE_REMOTE_NO_EMBED=1`: embed nothing; the binary then looks for stubs next to itself.

#[path = "src/install/cksum.rs"]
mod cksum;

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=OPENCODE_REMOTE_STUB_PATH");
    println!("cargo:rerun-if-env-changed=OPENCODE_REMOTE_NO_EMBED");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let embedded = out_dir.join("embedded-stub");

    let stub = if env::var_os("OPENCODE_REMOTE_NO_EMBED").is_some_and(|v| v == "1") {
        None
    } else if let Some(path) = env::var_os("OPENCODE_REMOTE_STUB_PATH") {
        println!("cargo:rerun-if-changed={}", PathBuf::from(&path).display());
        Some(PathBuf::from(path))
    } else {
        build_stub(&out_dir)
    };

    let bytes = match stub {
        Some(path) => std::fs::read(&path)
            .unwrap_or_else(|err| panic!("cannot read stub {}: {err}", path.display())),
        None => Vec::new(),
    };
    std::fs::write(&embedded, &bytes).expect("cannot write the embedded stub");
    // The install stamp, so the binary need not checksum megabytes at run time.
    let version = env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let identity = format!("{version} {} {}", cksum::cksum(&bytes), bytes.len());
    println!(
        "cargo:rustc-env=OPENCODE_REMOTE_EMBEDDED_STUB={}",
        embedded.display()
    );
    println!("cargo:rustc-env=OPENCODE_REMOTE_EMBEDDED_STUB_ID={identity}");
}

/// The Linux triple whose stub we can build here, if any: the target's own when it is Linux on
/// an architecture we ship.
fn stub_triple() -> Option<String> {
    let os = env::var("CARGO_CFG_TARGET_OS").ok()?;
    let arch = env::var("CARGO_CFG_TARGET_ARCH").ok()?;
    let env_ = env::var("CARGO_CFG_TARGET_ENV").ok()?;
    match (os.as_str(), arch.as_str(), env_.as_str()) {
        ("linux", "x86_64" | "aarch64", "gnu" | "musl") => {
            Some(format!("{arch}-unknown-linux-{env_}"))
        }
        _ => None,
    }
}

fn build_stub(out_dir: &Path) -> Option<PathBuf> {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir.parent()?.to_owned();
    for watched in [
        "remote/src",
        "remote/Cargo.toml",
        "protocol/src",
        "protocol/Cargo.toml",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    let Some(triple) = stub_triple() else {
        println!(
            "cargo:warning=not embedding a stub: no static Linux stub can be built for this target; \
             put opencode-remote-stub-<arch> next to the binary instead"
        );
        return None;
    };
    // OUT_DIR is <target>/[<triple>/]<profile>/build/local-<hash>/out: share one stub build
    // between profiles by going up to the target directory.
    let target_dir = out_dir.ancestors().nth(4)?.join("stub-build");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let rustflags_var = format!(
        "CARGO_TARGET_{}_RUSTFLAGS",
        triple.to_uppercase().replace('-', "_")
    );

    let mut command = Command::new(cargo);
    command
        .current_dir(&workspace)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "remote",
            "--bin",
            "opencode-remote-stub",
        ])
        .arg("--target")
        .arg(&triple)
        .arg("--target-dir")
        .arg(&target_dir);
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
    // Static, non-PIE: `file` reports "statically linked" and the binary needs no loader.
    command.env(
        &rustflags_var,
        "-C target-feature=+crt-static -C relocation-model=static",
    );
    let output = command
        .output()
        .expect("cannot run cargo for the stub build");
    if !output.status.success() {
        panic!(
            "building the static stub failed ({}):\n{}\n\nSet OPENCODE_REMOTE_NO_EMBED=1 to build \
             without an embedded stub.",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Some(
        target_dir
            .join(&triple)
            .join("release")
            .join("opencode-remote-stub"),
    )
}
