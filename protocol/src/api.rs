//! Stub-specific HTTP routes and bodies (everything else follows OpenCode's API).

use serde::{Deserialize, Serialize};

/// `GET /global/health`: OpenCode's health route, extended with stub details.
pub const HEALTH_PATH: &str = "/global/health";

/// Prefix of the stub's own diagnostic routes, used by `opencode-remote doctor` and the benchmark.
///
/// - `GET {DIAG_PREFIX}/blob?bytes=N` streams `N` zero bytes.
/// - `POST {DIAG_PREFIX}/sink` reads and counts the request body, answers `{"bytes":N}`.
/// - `GET {DIAG_PREFIX}/sse?interval_ms=I&count=C` sends `C` SSE events, each carrying the
///   stub's wall clock in microseconds, every `I` ms.
/// - `GET {DIAG_PREFIX}/ws-echo` (WebSocket over RFC 8441) echoes every message back.
pub const DIAG_PREFIX: &str = "/x-opencode-remote/diag";

/// Body of `GET /global/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `true` when the stub answers.
    pub healthy: bool,
    /// The stub version, in the field OpenCode's own health route uses.
    pub version: String,
    /// Stub details (not part of OpenCode's schema; OpenCode ignores unknown fields).
    pub stub: StubInfo,
}

/// Details about the running stub and its host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StubInfo {
    /// Stub version.
    pub version: String,
    /// Handshake protocol version, e.g. `1.0`.
    pub protocol: String,
    /// Process id on the host.
    pub pid: u32,
    /// `linux`, …
    pub os: String,
    /// `x86_64`, `aarch64`, …
    pub arch: String,
    /// Kernel release.
    pub kernel: String,
    /// Working directory the stub serves.
    pub directory: String,
    /// State directory on the host.
    pub state_dir: String,
    /// Seconds since the stub started.
    pub uptime_secs: u64,
    /// `true` when the session skipped the handshake (manual `--stdio` use with curl).
    pub manual: bool,
}

/// Wire form of every non-2xx JSON response the stub produces itself.
///
/// OpenCode's own errors use `{"name": …, "data": {"message": …}}`; the stub follows that shape
/// so OpenCode and its TUI show the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Error class, e.g. `BadRequest`, `NotFound`, `PermissionRejected`.
    pub name: String,
    /// Details.
    pub data: ErrorData,
}

/// The `data` member of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorData {
    /// Human-readable message naming the problem (field, path, id…).
    pub message: String,
}
