//! The exec channel running the stub, as a byte stream for HTTP/2, plus the client side of the
//! handshake.
//!
//! russh's `into_stream()` drops everything that is not stdout data: the stub's stderr and its
//! exit status would be lost, and a crashing stub would look like a hung connection. [`Wire`]
//! reads the channel's messages itself: stdout feeds HTTP/2, stderr is logged and its tail kept
//! for error messages, the exit status is recorded.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use protocol::handshake::{self, FrameCodec, Hello, SENTINEL, ServerHello, Welcome};
use russh::ChannelMsg;
use russh::client::Msg;
use russh::{ChannelReadHalf, ChannelWriteHalf};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_util::codec::Decoder;

use crate::install::{self, PROBE_MARKER, Probe};
use crate::ssh::{Connection, SshError};

/// Most bytes of login-script output tolerated before the stub's sentinel.
pub const MAX_NOISE: usize = 1 << 20;

/// Bytes of stub stderr kept for error messages.
const STDERR_TAIL: usize = 8 << 10;

/// What happened to the remote process, shared with whoever holds the [`Wire`].
#[derive(Debug, Default)]
pub struct Remote {
    stderr: Vec<u8>,
    exit: Option<String>,
}

/// A cheap handle on a [`Remote`].
#[derive(Debug, Clone, Default)]
pub struct RemoteHandle(Arc<Mutex<Remote>>);

impl RemoteHandle {
    fn lock(&self) -> std::sync::MutexGuard<'_, Remote> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The last bytes the remote process wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        String::from_utf8_lossy(&self.lock().stderr)
            .trim()
            .to_owned()
    }

    /// `exit status N` / `killed by signal S`, once known.
    pub fn exit(&self) -> Option<String> {
        self.lock().exit.clone()
    }

    /// A one-line description for errors: exit and stderr.
    pub fn describe(&self) -> String {
        let exit = self
            .exit()
            .unwrap_or_else(|| "still running or no status".into());
        let stderr = self.stderr_tail();
        if stderr.is_empty() {
            format!("{exit}; no stderr output")
        } else {
            format!("{exit}; stderr: {stderr}")
        }
    }
}

type Pending = Pin<Box<dyn Future<Output = (ChannelReadHalf, Option<ChannelMsg>)> + Send>>;

enum ReadState {
    Idle(ChannelReadHalf),
    Waiting(Pending),
    Done,
}

/// The exec channel as `AsyncRead + AsyncWrite`.
pub struct Wire {
    prefix: Bytes,
    current: Bytes,
    state: ReadState,
    writer: Pin<Box<dyn AsyncWrite + Send + Sync>>,
    remote: RemoteHandle,
    eof: bool,
    _write_half: ChannelWriteHalf<Msg>,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire")
            .field("remote", &self.remote)
            .finish()
    }
}

impl Wire {
    /// Wraps a channel whose command has started.
    pub fn new(channel: russh::Channel<Msg>) -> Wire {
        let (read_half, write_half) = channel.split();
        let writer = Box::pin(write_half.make_writer());
        Wire {
            prefix: Bytes::new(),
            current: Bytes::new(),
            state: ReadState::Idle(read_half),
            writer,
            remote: RemoteHandle::default(),
            eof: false,
            _write_half: write_half,
        }
    }

    /// What is known about the remote process.
    pub fn remote(&self) -> RemoteHandle {
        self.remote.clone()
    }

    fn unread(&mut self, bytes: Bytes) {
        debug_assert!(self.prefix.is_empty());
        self.prefix = bytes;
    }

    fn note(&self, message: ChannelMsg) {
        match message {
            ChannelMsg::ExtendedData { data, .. } => {
                for line in String::from_utf8_lossy(&data)
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                {
                    tracing::warn!(target: "stub", "{line}");
                }
                let mut remote = self.remote.lock();
                remote.stderr.extend_from_slice(&data);
                let excess = remote.stderr.len().saturating_sub(STDERR_TAIL);
                remote.stderr.drain(..excess);
            }
            ChannelMsg::ExitStatus { exit_status } => {
                self.remote.lock().exit = Some(format!("exit status {exit_status}"));
            }
            ChannelMsg::ExitSignal { signal_name, .. } => {
                self.remote.lock().exit = Some(format!("killed by signal {signal_name:?}"));
            }
            _ => {}
        }
    }
}

impl Wire {
    /// After EOF: keep consuming channel messages (stderr, exit status) until the channel
    /// closes, so errors can say how the remote process ended.
    pub async fn drain(&mut self) {
        loop {
            let mut half = match std::mem::replace(&mut self.state, ReadState::Done) {
                ReadState::Done => return,
                ReadState::Idle(half) => half,
                ReadState::Waiting(pending) => {
                    let (half, message) = pending.await;
                    match message {
                        None | Some(ChannelMsg::Close) => return,
                        Some(message) => self.note(message),
                    }
                    half
                }
            };
            match half.wait().await {
                None | Some(ChannelMsg::Close) => return,
                Some(message) => self.note(message),
            }
            self.state = ReadState::Idle(half);
        }
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            for source in [&mut this.prefix, &mut this.current] {
                if !source.is_empty() {
                    let n = source.len().min(buf.remaining());
                    buf.put_slice(&source[..n]);
                    source.advance(n);
                    return Poll::Ready(Ok(()));
                }
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut pending = match std::mem::replace(&mut this.state, ReadState::Done) {
                ReadState::Done => return Poll::Ready(Ok(())),
                ReadState::Idle(mut half) => Box::pin(async move {
                    let message = half.wait().await;
                    (half, message)
                }) as Pending,
                ReadState::Waiting(pending) => pending,
            };
            let (half, message) = match pending.as_mut().poll(cx) {
                Poll::Ready(done) => done,
                Poll::Pending => {
                    this.state = ReadState::Waiting(pending);
                    return Poll::Pending;
                }
            };
            match message {
                None | Some(ChannelMsg::Close) => {
                    this.eof = true;
                    return Poll::Ready(Ok(()));
                }
                Some(ChannelMsg::Eof) => {
                    this.eof = true;
                    this.state = ReadState::Idle(half);
                    return Poll::Ready(Ok(()));
                }
                Some(ChannelMsg::Data { data }) => {
                    this.state = ReadState::Idle(half);
                    this.current = data;
                }
                Some(other) => {
                    this.state = ReadState::Idle(half);
                    this.note(other);
                }
            }
        }
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.writer.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.writer.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.writer.as_mut().poll_shutdown(cx)
    }
}

/// Why the stub could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// SSH failed.
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// The stub refused the hello.
    #[error("the stub on the host refused the connection: {0}")]
    Refused(String),
    /// The stub (or the launcher) exited before answering.
    #[error("the stub exited before the handshake ({0})")]
    Exited(String),
    /// Too much login-script output.
    #[error(
        "login scripts on the host printed more than {MAX_NOISE} bytes before the stub started; \
         make ~/.bashrc (or your shell's rc file) quiet for non-interactive sessions"
    )]
    TooNoisy,
    /// Malformed handshake bytes.
    #[error("invalid handshake reply from the stub")]
    Handshake(#[from] handshake::HandshakeError),
    /// No answer in time.
    #[error("the stub did not answer the handshake within {0} s ({1})")]
    Timeout(u64, String),
    /// I/O on the channel.
    #[error("channel i/o failed")]
    Io(#[from] std::io::Error),
}

/// Result of the one-exec launch.
#[derive(Debug)]
pub enum Launch {
    /// The stub is running and welcomed us.
    Running(Box<Running>),
    /// The stub is missing or another build: here is what the host looks like.
    NeedsInstall(Probe),
}

/// A stub that accepted the handshake.
#[derive(Debug)]
pub struct Running {
    /// Its self-description.
    pub welcome: Welcome,
    /// The wire, positioned at the start of HTTP/2.
    pub wire: Wire,
    /// Login-script output seen before the stub (empty on clean hosts).
    pub noise: Vec<u8>,
}

/// Runs the launcher and, if the stub starts, performs the handshake.
///
/// # Errors
///
/// See [`StartError`]; an early exit includes the remote stderr.
pub async fn launch(
    connection: &Connection,
    root: &str,
    identities: &[String],
    hello: &Hello,
    timeout: Duration,
) -> Result<Launch, StartError> {
    let channel = connection
        .exec(&install::launch_command(root, identities))
        .await?;
    let mut wire = Wire::new(channel);
    // Pipelined: sent before we know whether the stub or the probe runs. The probe never reads
    // stdin, so it is simply discarded there.
    wire.write_all(&handshake::encode(hello)?).await?;
    wire.flush().await?;
    let remote = wire.remote();
    match tokio::time::timeout(timeout, read_reply(wire)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(StartError::Timeout(timeout.as_secs(), remote.describe())),
    }
}

async fn read_reply(mut wire: Wire) -> Result<Launch, StartError> {
    use tokio::io::AsyncReadExt;
    let mut buffer = BytesMut::with_capacity(8 << 10);
    // Phase 1: find the sentinel (stub) or the probe marker (launcher), skipping noise.
    let noise_end = loop {
        if let Some(at) = find(&buffer, SENTINEL) {
            break at;
        }
        if let Some(at) = find(&buffer, PROBE_MARKER.as_bytes()) {
            let mut rest = buffer.split_off(at).to_vec();
            wire.read_to_end(&mut rest).await?;
            let text = String::from_utf8_lossy(&rest);
            let probe = install::parse_probe(text.strip_prefix(PROBE_MARKER).unwrap_or(&text))
                .map_err(|err| StartError::Exited(err.to_string()))?;
            return Ok(Launch::NeedsInstall(probe));
        }
        if buffer.len() > MAX_NOISE {
            return Err(StartError::TooNoisy);
        }
        if wire.read_buf(&mut buffer).await? == 0 {
            // The exit status and stderr arrive around EOF; collect them for the message.
            let _elapsed = tokio::time::timeout(Duration::from_secs(2), wire.drain()).await;
            let mut details = wire.remote().describe();
            if !buffer.is_empty() {
                details.push_str(&format!(
                    "; stdout: {}",
                    String::from_utf8_lossy(&buffer).trim()
                ));
            }
            return Err(StartError::Exited(details));
        }
    };
    let noise = buffer.split_to(noise_end).to_vec();
    buffer.advance(SENTINEL.len());
    if !noise.is_empty() {
        tracing::warn!(
            bytes = noise.len(),
            "skipped output printed by login scripts before the stub: {:?}",
            String::from_utf8_lossy(&noise[..noise.len().min(200)])
        );
    }
    // Phase 2: one frame.
    let mut codec = FrameCodec;
    let body = loop {
        if let Some(body) = codec.decode(&mut buffer)? {
            break body;
        }
        if wire.read_buf(&mut buffer).await? == 0 {
            let _elapsed = tokio::time::timeout(Duration::from_secs(2), wire.drain()).await;
            return Err(StartError::Exited(wire.remote().describe()));
        }
    };
    let frame = handshake::parse_frame(&body)?;
    if !protocol::PROTOCOL_VERSION.is_compatible_with(frame.version) {
        return Err(StartError::Handshake(
            handshake::HandshakeError::IncompatibleVersion {
                peer: frame.version,
                ours: protocol::PROTOCOL_VERSION,
            },
        ));
    }
    match handshake::decode_body::<ServerHello>(frame.body)? {
        ServerHello::Welcome(welcome) => {
            // Whatever followed the frame is already HTTP/2 (the server's SETTINGS).
            wire.unread(buffer.freeze());
            Ok(Launch::Running(Box::new(Running {
                welcome,
                wire,
                noise,
            })))
        }
        ServerHello::Refusal(refusal) => Err(StartError::Refused(format!(
            "{} (stub {}, code {:?})",
            refusal.message, refusal.stub_version, refusal.code
        ))),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
