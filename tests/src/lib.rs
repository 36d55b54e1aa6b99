//! Test harness: a real OpenSSH sshd per test, the real OpenCode server, the built binaries, a
//! bridge child process, and HTTP helpers.
pub mod arm64;
pub mod bins;
pub mod bridge;
pub mod fake_model;
pub mod host;
pub mod http;
pub mod llm;
pub mod netns;
pub mod opencode;
pub mod reference;
pub mod schema;
pub mod sshd;

/// A two-thread tokio runtime for a test's async part.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
