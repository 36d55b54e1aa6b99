//! The transport path: install, handshake, bridge, lifecycle, host keys, auth.

use integration_tests::bins::{destination, local};
use integration_tests::require_sshd;

#[test]
fn health_should_install_the_stub_and_report_it() {
    let sshd = require_sshd!();
    let out = local(&sshd)
        .args(["health", &destination(&sshd)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let health: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(health["healthy"], true);
    assert!(
        sshd.remote_home()
            .join(".opencode-remote/bin/opencode-remote-stub")
            .is_file()
    );
    eprintln!("{stderr}");
}
