//! Keeping one upstream alive: the supervisor reconnects with backoff when it drops, and
//! requests wait for it (within a bound) instead of failing at once.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::connector::Body;
use super::connector::error_chain;
use super::error_response;
use super::gateway::Gateway;
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
    /// Link number `generation` (counting from 1) is up.
    Up {
        generation: u64,
        sender: SendRequest<Body>,
    },
    Closed,
}

/// Keeps one link up until `shutdown`: publishes it in `state`, and when it drops, reconnects
/// (at once after a long-lived connection, with backoff after a short one).
pub(super) async fn supervise<C: Connect>(
    connector: C,
    first: Option<Link>,
    local: Option<LocalOpenCode>,
    gateway: Option<Gateway>,
    state: watch::Sender<State>,
    shutdown: CancellationToken,
) {
    // A bridge started without a connection (a restart) or one that lost it must tell
    // OpenCode to resume syncing once connected.
    let mut nudge = first.is_none();
    let mut upstream = first;
    let mut last_error: Option<String> = None;
    let mut delay = Duration::ZERO;
    let mut generation = 0;
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
        generation += 1;
        state.send_replace(State::Up {
            generation,
            sender: current.sender.clone(),
        });
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
        // The model gateway serves this link and ends with it.
        let link_ended = shutdown.child_token();
        let served = gateway
            .clone()
            .map(|gateway| tokio::spawn(gateway.serve(current.sender.clone(), link_ended.clone())));
        let Link { closed, close, .. } = current;
        let reason = tokio::select! {
            reason = closed => reason.unwrap_or_else(|_| "connection task ended".into()),
            () = shutdown.cancelled() => {
                state.send_replace(State::Closed);
                end_gateway(link_ended, served).await;
                close.await;
                return;
            }
        };
        end_gateway(link_ended, served).await;
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

/// Stops the gateway of a link that ended, waiting briefly for its answers to wind down.
async fn end_gateway(link_ended: CancellationToken, served: Option<tokio::task::JoinHandle<()>>) {
    link_ended.cancel();
    if let Some(served) = served
        && tokio::time::timeout(Duration::from_secs(2), served)
            .await
            .is_err()
    {
        tracing::debug!("the gateway's answers were still winding down");
    }
}

/// Longest pause between reconnect attempts: a host that comes back is used within this
/// (plus one connect), well inside the 15 s users expect.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The current link, waiting until `deadline` for a (re)connect; a 503 response otherwise.
/// With `lost`, a link newer than that generation (which failed under a request).
pub(super) async fn upstream(
    state: &watch::Receiver<State>,
    deadline: tokio::time::Instant,
    lost: Option<u64>,
) -> Result<(u64, SendRequest<Body>), Response<Body>> {
    let mut state = state.clone();
    loop {
        let current = state.borrow_and_update().clone();
        match current {
            State::Up { generation, sender }
                if !sender.is_closed() && lost.is_none_or(|lost| generation > lost) =>
            {
                return Ok((generation, sender));
            }
            State::Closed => {
                return Err(error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the bridge is shutting down",
                ));
            }
            State::Up { .. } | State::Connecting { .. } => {}
        }
        tokio::select! {
            changed = state.changed() => {
                if changed.is_err() {
                    return Err(error_response(StatusCode::SERVICE_UNAVAILABLE, "the bridge is shutting down"));
                }
            }
            () = tokio::time::sleep_until(deadline) => {
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

/// Sends `request` on the current link, waiting until `deadline` for one. When the link turns
/// out to be gone, the request goes again on the next link if it provably never left (hyper
/// hands it back), or if `replay` can rebuild it: a safe or idempotent method without a body,
/// which RFC 9110 §9.2.2 allows to repeat after a connection failure. Anything else that may
/// have reached the stub before it went away gets 502: it must not run twice.
pub(super) async fn forward(
    state: &watch::Receiver<State>,
    deadline: tokio::time::Instant,
    mut request: Request<Body>,
    replay: Option<Replay>,
) -> Result<Response<Incoming>, Response<Body>> {
    let mut lost = None;
    loop {
        let (generation, mut sender) = upstream(state, deadline, lost).await?;
        let mut failure = match sender.try_send_request(request).await {
            Ok(response) => return Ok(response),
            Err(failure) => failure,
        };
        let unsent = failure.take_message();
        let error = failure.into_error();
        let again = match (unsent, &replay) {
            (Some(unsent), _) => unsent,
            (None, Some(replay)) if link_lost(&error) => replay.request(),
            (None, _) => {
                tracing::warn!(err = %error_chain(&error), "forwarding failed");
                return Err(error_response(
                    StatusCode::BAD_GATEWAY,
                    &format!("the host did not answer: {}", error_chain(&error)),
                ));
            }
        };
        tracing::info!(
            err = %error_chain(&error),
            "the link to the stub went away under a request; sending it again on the next one"
        );
        request = again;
        lost = Some(generation);
    }
}

/// What it takes to send a request again: its head (the body is empty).
#[derive(Debug, Clone)]
pub(super) struct Replay {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Replay {
    /// A replay of `request` when repeating it is harmless: a safe or idempotent method
    /// (RFC 9110 §9.2.2) and no body.
    pub(super) fn of<B: hyper::body::Body>(request: &Request<B>) -> Option<Replay> {
        let idempotent = matches!(
            *request.method(),
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::TRACE
                | Method::PUT
                | Method::DELETE
        );
        (idempotent && request.body().is_end_stream()).then(|| Replay {
            method: request.method().clone(),
            uri: request.uri().clone(),
            headers: request.headers().clone(),
        })
    }

    fn request(&self) -> Request<Body> {
        let mut request = Request::new(
            http_body_util::Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed(),
        );
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = Version::HTTP_2;
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// Whether `error` means the whole link failed (closed, broken, timed out, or going away), as
/// opposed to this one request being refused or malformed.
fn link_lost(error: &hyper::Error) -> bool {
    if error.is_canceled() || error.is_closed() || error.is_timeout() {
        return true;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(h2) = cause.downcast_ref::<h2::Error>() {
            return h2.is_io() || h2.is_go_away();
        }
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}
