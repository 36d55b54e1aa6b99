//! From a resolved host to a live HTTP/2 client on the stub: SSH connect, launch (installing the
//! stub when needed), handshake, HTTP/2 handshake, health check.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, combinators::BoxBody};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use protocol::api::Health;
use protocol::handshake::{Hello, Welcome};
use tokio::sync::oneshot;

use super::transport::{self, Launch, RemoteHandle, StartError};
use super::{Connect, Link};
use crate::install::stubs;
use crate::install::{self, BootstrapError, Installed};
use crate::ssh::{self, Connection, SshError, Target};

/// Error type of request bodies sent to the stub.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Request body type on the HTTP/2 side.
pub type Body = BoxBody<Bytes, BoxError>;

/// Everything needed to (re)connect to one host's stub.
#[derive(Debug, Clone)]
pub struct Connector {
    /// SSH target (with jumps).
    pub target: Target,
    /// Install root on the host.
    pub root: String,
    /// Workspace id for the hello.
    pub workspace_id: String,
    /// Project id for the hello.
    pub project_id: String,
    /// Working directory on the host.
    pub directory: Option<String>,
    /// HTTP/2 PING interval toward the stub; a frozen host is noticed within about twice this.
    pub ping_interval: Duration,
}

/// A connected stub.
pub struct Upstream {
    /// HTTP/2 client; clone it per request.
    pub sender: SendRequest<Body>,
    /// The stub's handshake reply.
    pub welcome: Welcome,
    /// The stub's health answer.
    pub health: Health,
    /// Host key fingerprint.
    pub fingerprint: String,
    /// Negotiated SSH cipher.
    pub cipher: String,
    /// What bootstrap did on this connect.
    pub installed: Installed,
    /// Stub stderr and exit status.
    pub remote: RemoteHandle,
    /// Resolves when the HTTP/2 connection ends, with the reason.
    pub closed: oneshot::Receiver<String>,
    /// Time from start to healthy.
    pub elapsed: Duration,
    /// The SSH connection (kept alive with the upstream).
    pub connection: Connection,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("welcome", &self.welcome)
            .finish()
    }
}

impl Upstream {
    /// What the bridge keeps of this upstream.
    pub fn into_link(self) -> Link {
        let connection = self.connection;
        Link {
            sender: self.sender,
            closed: self.closed,
            close: Box::pin(async move { connection.close().await }),
        }
    }
}

impl Connect for Connector {
    async fn link(&self, progress: &mut (dyn FnMut(&str) + Send)) -> Result<Link, String> {
        self.connect(progress)
            .await
            .map(Upstream::into_link)
            .map_err(|err| format!("{err:#}"))
    }
}

/// Connection failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// SSH.
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// Installing.
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    /// Launching or handshaking.
    #[error(transparent)]
    Start(#[from] StartError),
    /// HTTP/2 or health.
    #[error("the stub did not answer its health check: {message} ({remote})")]
    Health {
        /// What failed.
        message: String,
        /// Stub exit/stderr.
        remote: String,
    },
}

/// HTTP/2 client settings: mirrors of the stub's (see `remote::http`), chosen for one
/// multiplexed long-lived connection.
fn builder(ping_interval: Duration) -> hyper::client::conn::http2::Builder<TokioExecutor> {
    let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        // Advertising 256 KiB frames lets the stub send bulk bodies in fewer, larger frames
        // (+17% throughput measured).
        .max_frame_size(256 << 10)
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(16 << 20)
        .adaptive_window(false)
        .max_header_list_size(64 << 10)
        .max_send_buf_size(1 << 20)
        // The first streams may go out before the stub's SETTINGS arrive.
        .initial_max_send_streams(100)
        // PINGs notice a frozen host (suspended laptop, black-holed route) in seconds, far
        // sooner than TCP would; interval + timeout bounds detection.
        .keep_alive_interval(ping_interval)
        .keep_alive_timeout(ping_interval)
        .keep_alive_while_idle(true);
    builder
}

impl Connector {
    fn hello(&self, fingerprint: &str) -> Hello {
        Hello {
            client_version: env!("CARGO_PKG_VERSION").to_owned(),
            workspace_id: self.workspace_id.clone(),
            project_id: self.project_id.clone(),
            directory: self.directory.clone(),
            host_key_fingerprint: fingerprint.to_owned(),
        }
    }

    /// Connects and returns a healthy upstream. `progress` receives human-readable steps.
    ///
    /// # Errors
    ///
    /// See [`ConnectError`].
    pub async fn connect(
        &self,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Upstream, ConnectError> {
        let started = Instant::now();
        progress(&format!(
            "connecting to {}@{}:{}",
            self.target.user, self.target.host, self.target.port
        ));
        // Checksumming the stubs we carry overlaps with the SSH handshake.
        let identities = tokio::task::spawn_blocking(stubs::identities);
        let connection = ssh::connect(&self.target).await?;
        let hello = self.hello(&connection.fingerprint);
        let identities = identities.await.unwrap_or_default();
        let handshake_timeout = Duration::from_secs(30);
        let mut installed = Installed::AlreadyCurrent;
        let mut launched = match transport::launch(
            &connection,
            &self.root,
            &identities,
            &hello,
            handshake_timeout,
        )
        .await
        {
            Ok(launched) => launched,
            // A stub stamped as ours that dies before the handshake may be a damaged file
            // (disk trouble, someone edited it): when it no longer runs `--version`, treat it
            // as missing and install it again; any other failure is reported as it is.
            Err(StartError::Exited(reason)) => {
                let probe = install::probe(&connection, &self.root).await?;
                if !identities.contains(&probe.installed) || !probe.installed_version.is_empty() {
                    return Err(StartError::Exited(reason).into());
                }
                tracing::warn!(%reason, "the installed stub does not run; installing it again");
                Launch::NeedsInstall(probe)
            }
            Err(err) => return Err(err.into()),
        };
        if let Launch::NeedsInstall(probe) = &launched {
            let stub = stubs::for_arch(&probe.arch).map_err(BootstrapError::from)?;
            progress(&format!(
                "installing opencode-remote-stub ({} bytes, {}) into {} on {} {} {}",
                stub.bytes.len(),
                stub.origin,
                self.root,
                probe.os,
                probe.arch,
                probe.kernel
            ));
            let mut report = install::upload_reporter(&mut *progress);
            installed =
                install::install(&connection, &self.root, probe, &stub, false, &mut report).await?;
            launched = transport::launch(
                &connection,
                &self.root,
                std::slice::from_ref(&stub.identity),
                &hello,
                handshake_timeout,
            )
            .await?;
        }
        let running = match launched {
            Launch::Running(running) => running,
            Launch::NeedsInstall(probe) => {
                return Err(ConnectError::Start(StartError::Exited(format!(
                    "the stub still does not start after installing it (installed stamp `{}`, version `{}`)",
                    probe.installed, probe.installed_version
                ))));
            }
        };
        let remote = running.wire.remote();
        let health_error = |message: String| ConnectError::Health {
            message,
            remote: remote.describe(),
        };
        let (mut sender, h2) = builder(self.ping_interval)
            .handshake::<_, Body>(TokioIo::new(running.wire))
            .await
            .map_err(|err| health_error(format!("HTTP/2 handshake failed: {err}")))?;
        let (closed_tx, closed) = oneshot::channel();
        let remote_for_task = remote.clone();
        tokio::spawn(async move {
            let reason = match h2.await {
                Ok(()) => "the stub closed the connection".to_owned(),
                Err(err) => format!("connection to the stub failed: {}", error_chain(&err)),
            };
            let details = remote_for_task.describe();
            tracing::info!(%reason, %details, "stub connection ended");
            // The receiver may be gone when nobody waits for the end.
            let _ignored = closed_tx.send(format!("{reason} ({details})"));
        });
        let health = health(&mut sender).await.map_err(health_error)?;
        progress(&format!(
            "stub {} healthy (pid {}) in {:?}",
            health.version,
            running.welcome.pid,
            started.elapsed()
        ));
        Ok(Upstream {
            sender,
            welcome: running.welcome,
            health,
            fingerprint: connection.fingerprint.clone(),
            cipher: connection.cipher.clone(),
            installed,
            remote,
            closed,
            elapsed: started.elapsed(),
            connection,
        })
    }
}

/// `GET /global/health` on a connected stub.
///
/// # Errors
///
/// A message describing the failure.
pub async fn health(sender: &mut SendRequest<Body>) -> Result<Health, String> {
    sender
        .ready()
        .await
        .map_err(|err| format!("connection not ready: {err}"))?;
    let request = Request::get(format!("http://stub{}", protocol::api::HEALTH_PATH))
        .body(
            Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed(),
        )
        .map_err(|err| err.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|err| format!("request failed: {err}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|err| format!("body failed: {err}"))?
        .to_bytes();
    if status != StatusCode::OK {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    serde_json::from_slice(&body).map_err(|err| format!("invalid health JSON: {err}"))
}

/// `err` and its sources, so "http2 error" says why (e.g. "keep-alive timed out" when the
/// stub stopped answering PINGs).
pub(super) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
