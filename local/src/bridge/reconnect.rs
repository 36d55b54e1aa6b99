//! Keeping one upstream alive: the supervisor reconnects with backoff when it drops, and
//! requests wait for it (within a bound) instead of failing at once.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use http::{Response, StatusCode};
use hyper::client::conn::http2::SendRequest;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::connector::Body;
use super::error_response;
use super::opencode::LocalOpenCode;

/// How the bridge reaches a stub. [`Connector`](super::connector::Connector) is the real one
/// (SSH, the exec channel, the handshake); tests use an in-process HTTP/2 server.
pub trait Connect: Send + Sync + 'static {
    /// Connects and returns a healthy link; the error is a one-line message for logs and 503s.
    /// `progress` receives human-readable steps.
    fn link(
        &self,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> impl Future<Output = Result<Link, String>> + Send;
}

/// A live HTTP/2 connection to a stub, as the bridge uses it.
pub struct Link {
    /// HTTP/2 client; clone it per request.
    pub sender: SendRequest<Body>,
    /// Resolves with the reason when the connection ends.
    pub closed: oneshot::Receiver<String>,
    /// Ends the connection politely. Until it runs it keeps the connection alive (for SSH: the
    /// session); dropping it instead ends the connection abruptly.
    pub close: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("closed", &self.sender.is_closed())
            .finish_non_exhaustive()
    }
}

/// Connection state published by the supervisor.
#[derive(Clone)]
pub(super) enum State {
    Connecting {
        attempt: u32,
        last_error: Option<String>,
    },
    Up(SendRequest<Body>),
    Closed,
}

/// Keeps one link up until `shutdown`: publishes it in `state`, and when it drops, reconnects
/// (at once after a long-lived connection, with backoff after a short one).
pub(super) async fn supervise<C: Connect>(
    connector: C,
    first: Option<Link>,
    local: Option<LocalOpenCode>,
    state: watch::Sender<State>,
    shutdown: CancellationToken,
) {
    // A bridge started without a connection (a restart) or one that lost it must tell
    // OpenCode to resume syncing once connected.
    let mut nudge = first.is_none();
    let mut upstream = first;
    let mut last_error: Option<String> = None;
    let mut delay = Duration::ZERO;
    loop {
        let current = match upstream.take() {
            Some(current) => current,
            None => {
                let mut attempt: u32 = 0;
                loop {
                    attempt += 1;
                    state.send_replace(State::Connecting {
                        attempt,
                        last_error: last_error.clone(),
                    });
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.cancelled() => {
                            state.send_replace(State::Closed);
                            return;
                        }
                    }
                    let mut progress = |step: &str| tracing::info!(attempt, "{step}");
                    let started = Instant::now();
                    let result = tokio::select! {
                        result = connector.link(&mut progress) => result,
                        () = shutdown.cancelled() => {
                            state.send_replace(State::Closed);
                            return;
                        }
                    };
                    match result {
                        Ok(connected) => {
                            tracing::info!(attempt, elapsed = ?started.elapsed(), "connected to the stub");
                            break connected;
                        }
                        Err(err) => {
                            tracing::warn!(attempt, "connecting failed: {err}");
                            last_error = Some(err);
                            delay = (delay * 2).clamp(Duration::from_secs(1), MAX_BACKOFF);
                        }
                    }
                }
            }
        };
        state.send_replace(State::Up(current.sender.clone()));
        if std::mem::take(&mut nudge)
            && let Some(local) = &local
        {
            // OpenCode may have given up on the workspace while we were away; wake it up.
            let local = local.clone();
            tokio::spawn(async move {
                match local.sync_start().await {
                    Ok(()) => tracing::info!("asked OpenCode to resume syncing"),
                    Err(err) => tracing::warn!("cannot ask OpenCode to resume syncing: {err}"),
                }
            });
        }
        let connected_at = Instant::now();
        let Link { closed, close, .. } = current;
        let reason = tokio::select! {
            reason = closed => reason.unwrap_or_else(|_| "connection task ended".into()),
            () = shutdown.cancelled() => {
                state.send_replace(State::Closed);
                close.await;
                return;
            }
        };
        tracing::warn!(%reason, "lost the stub; reconnecting");
        close.await;
        // A connection that lived a while reconnects at once; a flapping one backs off.
        delay = if connected_at.elapsed() > Duration::from_secs(60) {
            Duration::ZERO
        } else {
            Duration::from_millis(500)
        };
        last_error = Some(reason);
        nudge = true;
    }
}

/// Longest pause between reconnect attempts: a host that comes back is used within this
/// (plus one connect), well inside the 15 s users expect.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The current upstream, waiting up to `wait` for a (re)connect; a 503 response otherwise.
pub(super) async fn upstream(
    state: &watch::Receiver<State>,
    wait: Duration,
) -> Result<SendRequest<Body>, Response<Body>> {
    let mut state = state.clone();
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    loop {
        let current = state.borrow_and_update().clone();
        match current {
            State::Up(sender) if !sender.is_closed() => return Ok(sender),
            State::Closed => {
                return Err(error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the bridge is shutting down",
                ));
            }
            State::Up(_) | State::Connecting { .. } => {}
        }
        tokio::select! {
            changed = state.changed() => {
                if changed.is_err() {
                    return Err(error_response(StatusCode::SERVICE_UNAVAILABLE, "the bridge is shutting down"));
                }
            }
            () = &mut deadline => {
                let message = match &*state.borrow() {
                    State::Connecting { attempt, last_error } => format!(
                        "the host is unreachable; reconnecting (attempt {attempt}); last error: {}",
                        last_error.as_deref().unwrap_or("none")
                    ),
                    _ => "the connection to the host was lost".to_owned(),
                };
                return Err(error_response(StatusCode::SERVICE_UNAVAILABLE, &message));
            }
        }
    }
}
