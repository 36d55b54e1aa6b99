//! Checks on the state the stub leaves on the host.

use crate::sshd::Sshd;

/// The key must be nowhere on the host: not in a file under the install root (the stub's log
/// included), not in the stub's argv or environment.
pub fn assert_not_on_host(sshd: &Sshd, key: &str) {
    let root = sshd.remote_home().join(".opencode-remote");
    let mut stack = vec![root.clone()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                files += 1;
                assert!(
                    !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
                    "the key is in {}",
                    path.display()
                );
            }
        }
    }
    assert!(files > 0, "nothing under {}", root.display());
    let mut stubs = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains("opencode-remote-stub") {
            continue;
        }
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        for (what, bytes) in [("argv", &cmdline), ("environment", &environ)] {
            assert!(
                !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
                "the key is in a stub's {what}"
            );
        }
        stubs += 1;
    }
    assert!(stubs > 0, "no stub process found");
}
