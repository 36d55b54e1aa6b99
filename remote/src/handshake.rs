//! The stub's side of the handshake (see `protocol::handshake`).

use std::path::{Path, PathBuf};

use protocol::handshake::{
    self, H2_PREFACE, HandshakeError, Hello, LENGTH_PREFIX_LEN, PROTOCOL_VERSION, Refusal,
    RefusalCode, SENTINEL, ServerHello, Welcome,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Facts about the host and this process, reported in the `Welcome` and in health checks.
#[derive(Debug, Clone)]
pub struct HostInfo {
    /// `linux`, …
    pub os: String,
    /// `x86_64`, …
    pub arch: String,
    /// Kernel release.
    pub kernel: String,
    /// Our pid.
    pub pid: u32,
    /// `$HOME` of the remote user.
    pub home: PathBuf,
}

impl HostInfo {
    /// Reads the facts from the running system.
    pub fn current(home: PathBuf) -> HostInfo {
        let uname = rustix::system::uname();
        HostInfo {
            os: std::env::consts::OS.to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
            kernel: uname.release().to_string_lossy().into_owned(),
            pid: std::process::id(),
            home,
        }
    }
}

/// A session that passed the handshake (or skipped it).
#[derive(Debug)]
pub struct Accepted {
    /// The client's hello; `None` in manual mode.
    pub hello: Option<Hello>,
    /// The resolved working directory.
    pub directory: PathBuf,
    /// Bytes already read from the wire that belong to HTTP/2 (the preface in manual mode).
    pub replay: &'static [u8],
}

/// Why the handshake did not produce a session.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// We answered with a refusal; the stub should exit.
    #[error("refused the client: {0}")]
    Refused(String),
    /// The wire broke or carried something we cannot answer at all.
    #[error("handshake failed")]
    Wire(#[from] HandshakeError),
    /// The first bytes looked like an HTTP/2 preface but were not.
    #[error("the first bytes are neither a handshake frame nor the HTTP/2 preface")]
    BadPreface,
}

/// Reads the client's first bytes and answers.
///
/// `manual_directory` is the directory to serve when the client skips the handshake.
///
/// # Errors
///
/// See [`Failure`].
pub async fn accept<R, W>(
    reader: &mut R,
    writer: &mut W,
    host: &HostInfo,
    manual_directory: &Path,
) -> Result<Accepted, Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut prefix = [0u8; LENGTH_PREFIX_LEN];
    reader
        .read_exact(&mut prefix)
        .await
        .map_err(HandshakeError::Io)?;
    if prefix[..] == H2_PREFACE[..LENGTH_PREFIX_LEN] {
        let mut rest = [0u8; H2_PREFACE.len() - LENGTH_PREFIX_LEN];
        reader
            .read_exact(&mut rest)
            .await
            .map_err(HandshakeError::Io)?;
        if rest[..] != H2_PREFACE[LENGTH_PREFIX_LEN..] {
            return Err(Failure::BadPreface);
        }
        tracing::info!("client sent the HTTP/2 preface: manual mode, no handshake");
        return Ok(Accepted {
            hello: None,
            directory: manual_directory.to_owned(),
            replay: H2_PREFACE,
        });
    }

    let len = match handshake::frame_len(prefix) {
        Ok(len) => len,
        Err(err) => return refuse(writer, RefusalCode::Malformed, err.to_string()).await,
    };
    let mut body = vec![0u8; len];
    reader
        .read_exact(&mut body)
        .await
        .map_err(HandshakeError::Io)?;
    let frame = match handshake::parse_frame(&body) {
        Ok(frame) => frame,
        Err(err) => return refuse(writer, RefusalCode::Malformed, err.to_string()).await,
    };
    if !PROTOCOL_VERSION.is_compatible_with(frame.version) {
        let message = format!(
            "incompatible protocol versions: opencode-remote-stub {} speaks protocol {}, the \
             client speaks protocol {}; install the stub that matches your opencode-remote",
            env!("CARGO_PKG_VERSION"),
            PROTOCOL_VERSION,
            frame.version
        );
        return refuse(writer, RefusalCode::IncompatibleVersion, message).await;
    }
    let hello: Hello = match handshake::decode_body(frame.body) {
        Ok(hello) => hello,
        Err(err) => return refuse(writer, RefusalCode::Malformed, format!("{err}")).await,
    };
    let directory = match resolve_directory(hello.directory.as_deref(), &host.home) {
        Ok(directory) => directory,
        Err(message) => return refuse(writer, RefusalCode::BadDirectory, message).await,
    };
    let welcome = ServerHello::Welcome(Welcome {
        stub_version: env!("CARGO_PKG_VERSION").to_owned(),
        os: host.os.clone(),
        arch: host.arch.clone(),
        kernel: host.kernel.clone(),
        pid: host.pid,
        home: host.home.to_string_lossy().into_owned(),
        directory: directory.to_string_lossy().into_owned(),
    });
    send(writer, &welcome).await?;
    tracing::info!(
        client = %hello.client_version,
        workspace = %hello.workspace_id,
        directory = %directory.display(),
        "handshake accepted"
    );
    Ok(Accepted {
        hello: Some(hello),
        directory,
        replay: &[],
    })
}

async fn send<W: AsyncWrite + Unpin>(writer: &mut W, message: &ServerHello) -> Result<(), Failure> {
    let frame = handshake::encode(message)?;
    let mut out = Vec::with_capacity(SENTINEL.len() + frame.len());
    out.extend_from_slice(SENTINEL);
    out.extend_from_slice(&frame);
    writer.write_all(&out).await.map_err(HandshakeError::Io)?;
    writer.flush().await.map_err(HandshakeError::Io)?;
    Ok(())
}

async fn refuse<W: AsyncWrite + Unpin>(
    writer: &mut W,
    code: RefusalCode,
    message: String,
) -> Result<Accepted, Failure> {
    tracing::warn!(?code, %message, "refusing the client");
    let refusal = ServerHello::Refusal(Refusal {
        code,
        message: message.clone(),
        stub_version: env!("CARGO_PKG_VERSION").to_owned(),
    });
    send(writer, &refusal).await?;
    Err(Failure::Refused(message))
}

/// Resolves the requested working directory: `None` → home, `~` and `~/x` expand to home,
/// relative paths are taken from home; the result is canonical and must be a directory.
pub fn resolve_directory(requested: Option<&str>, home: &Path) -> Result<PathBuf, String> {
    let path = match requested {
        None | Some("") | Some("~") => home.to_owned(),
        Some(dir) => match dir.strip_prefix("~/") {
            Some(rest) => home.join(rest),
            None => home.join(dir),
        },
    };
    let canonical = std::fs::canonicalize(&path)
        .map_err(|err| format!("working directory {} is not usable: {err}", path.display()))?;
    if !canonical.is_dir() {
        return Err(format!(
            "working directory {} is not a directory",
            canonical.display()
        ));
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::handshake::{Version, encode_with_version};

    fn host(home: &Path) -> HostInfo {
        HostInfo::current(home.to_owned())
    }

    fn hello(dir: Option<&str>) -> Hello {
        Hello {
            client_version: "9.9.9".into(),
            workspace_id: "wrk_x".into(),
            project_id: "proj".into(),
            directory: dir.map(str::to_owned),
            host_key_fingerprint: "SHA256:abc".into(),
        }
    }

    async fn run(input: Vec<u8>, home: &Path) -> (Result<Accepted, Failure>, Vec<u8>) {
        let mut reader = &input[..];
        let mut out = Vec::new();
        let result = accept(&mut reader, &mut out, &host(home), home).await;
        (result, out)
    }

    fn reply(out: &[u8]) -> ServerHello {
        let frame = out.strip_prefix(SENTINEL).expect("sentinel first");
        handshake::decode(frame).unwrap()
    }

    #[tokio::test]
    async fn accept_should_welcome_and_resolve_the_directory() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join("proj")).unwrap();
        let (result, out) = run(
            handshake::encode(&hello(Some("~/proj"))).unwrap(),
            home.path(),
        )
        .await;
        let accepted = result.unwrap();
        let canonical = home.path().canonicalize().unwrap().join("proj");
        assert_eq!(accepted.directory, canonical);
        match reply(&out) {
            ServerHello::Welcome(w) => {
                assert_eq!(w.directory, canonical.to_string_lossy());
                assert_eq!(w.pid, std::process::id());
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn accept_should_refuse_a_missing_directory() {
        let home = tempfile::tempdir().unwrap();
        let (result, out) = run(
            handshake::encode(&hello(Some("/nonexistent/x"))).unwrap(),
            home.path(),
        )
        .await;
        assert!(matches!(result, Err(Failure::Refused(_))));
        match reply(&out) {
            ServerHello::Refusal(r) => {
                assert_eq!(r.code, RefusalCode::BadDirectory);
                assert!(r.message.contains("/nonexistent/x"), "{}", r.message);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn accept_should_refuse_other_major_versions_naming_both() {
        let home = tempfile::tempdir().unwrap();
        let frame = encode_with_version(&hello(None), Version { major: 7, minor: 1 }).unwrap();
        let (result, out) = run(frame, home.path()).await;
        assert!(matches!(result, Err(Failure::Refused(_))));
        match reply(&out) {
            ServerHello::Refusal(r) => {
                assert_eq!(r.code, RefusalCode::IncompatibleVersion);
                assert!(r.message.contains("speaks protocol 1.0"), "{}", r.message);
                assert!(r.message.contains("speaks protocol 7.1"), "{}", r.message);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn accept_should_refuse_oversized_and_bad_magic_frames() {
        let home = tempfile::tempdir().unwrap();
        let (result, out) = run(vec![0x7f, 0, 0, 0], home.path()).await;
        assert!(matches!(result, Err(Failure::Refused(_))));
        assert!(matches!(reply(&out), ServerHello::Refusal(r) if r.code == RefusalCode::Malformed));

        let mut frame = handshake::encode(&hello(None)).unwrap();
        frame[4] = b'X';
        let (result, out) = run(frame, home.path()).await;
        assert!(matches!(result, Err(Failure::Refused(_))));
        assert!(matches!(reply(&out), ServerHello::Refusal(r) if r.message.contains("bad magic")));
    }

    #[tokio::test]
    async fn accept_should_fail_on_truncated_input_without_answering() {
        let home = tempfile::tempdir().unwrap();
        let frame = handshake::encode(&hello(None)).unwrap();
        let (result, out) = run(frame[..frame.len() - 3].to_vec(), home.path()).await;
        assert!(matches!(result, Err(Failure::Wire(HandshakeError::Io(_)))));
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn accept_should_skip_the_handshake_on_an_h2_preface() {
        let home = tempfile::tempdir().unwrap();
        let mut input = H2_PREFACE.to_vec();
        input.extend_from_slice(b"\0\0\0\x04\0\0\0\0\0");
        let (result, out) = run(input, home.path()).await;
        let accepted = result.unwrap();
        assert!(accepted.hello.is_none());
        assert_eq!(accepted.replay, H2_PREFACE);
        assert!(out.is_empty(), "manual mode must not write before HTTP/2");

        let (result, _) = run(b"PRI * HTTP/1.1\r\n\r\nXX\r\n\r\n".to_vec(), home.path()).await;
        assert!(matches!(result, Err(Failure::BadPreface)));
    }
}
