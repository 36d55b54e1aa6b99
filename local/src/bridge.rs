//! The loopback bridge: an HTTP/1.1 listener on 127.0.0.1 for OpenCode, forwarding every request
//! as one HTTP/2 stream over the single SSH exec channel to the stub.
//!
//! ```text
//! OpenCode ──HTTP/1.1──▶ 127.0.0.1:PORT/<secret>/… ──h2 stream──▶ exec channel ──▶ stub --stdio
//! ```
//!
//! - **Guard.** Only requests whose path starts with the per-launch 256-bit secret are served
//!   (the prefix is stripped before forwarding); everything else gets 404, including requests
//!   with a foreign `Host` header (DNS rebinding). No CORS headers are ever sent.
//! - **Streaming.** Bodies flow both ways frame by frame: an SSE event is one h2 DATA frame and
//!   one HTTP/1.1 chunk.
//! - **WebSockets.** An HTTP/1.1 `Upgrade: websocket` becomes an RFC 8441 extended CONNECT
//!   stream; after both sides upgrade, bytes are copied unchanged.
//! - **Reconnects.** A supervisor keeps one upstream alive and reconnects with backoff when it
//!   drops; the listener (and so the URL) stays the same. Requests arriving while it reconnects
//!   wait briefly, then get 503 naming the last error.
//!
//! Later, the stub will need to ask this side for outbound HTTP (LLM calls with credentials
//! that stay on the laptop). The stub cannot open streams toward us (it is the h2 server), so
//! the plan is a long-lived request the bridge opens (`POST /x-opencode-remote/callback`) whose
//! response body carries the stub's requests and whose request body carries our answers, on
//! this same connection; nothing here assumes the request path only flows one way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, header,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connector::{Body, Connector, Upstream};

/// The per-launch secret path prefix.
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// 256 random bits, hex encoded.
    ///
    /// # Errors
    ///
    /// When the OS has no randomness to give.
    pub fn generate() -> Result<Secret, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Secret(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// Uses a secret chosen elsewhere (the plugin keeps a workspace's URL across restarts).
    /// Must be at least 32 URL-safe characters.
    pub fn from_string(secret: String) -> Option<Secret> {
        let ok = secret.len() >= 32
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then_some(Secret(secret))
    }

    /// The secret itself (goes into the URL handed to OpenCode, never into logs).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Strips `/<secret>` from `path`, in constant time with respect to the secret's content.
    pub fn strip<'a>(&self, path: &'a str) -> Option<&'a str> {
        let expected = self.0.as_bytes();
        let bytes = path.as_bytes();
        let candidate = bytes.get(1..1 + expected.len())?;
        let same = (bytes.first() == Some(&b'/'))
            & (candidate
                .iter()
                .zip(expected)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0);
        let rest = &path[1 + expected.len()..];
        (same && (rest.is_empty() || rest.starts_with('/'))).then_some(rest)
    }
}

/// Connection state published by the supervisor.
#[derive(Clone)]
enum State {
    Connecting {
        attempt: u32,
        last_error: Option<String>,
    },
    Up(SendRequest<Body>),
    Closed,
}

/// A running bridge.
#[derive(Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

struct Inner {
    secret: Secret,
    port: u16,
    state: watch::Receiver<State>,
    /// How long a request waits for a reconnect before failing.
    wait_for_upstream: Duration,
}

/// Starts the supervisor with an already connected upstream and serves `listener` until
/// `shutdown` is cancelled.
pub async fn run(
    listener: TcpListener,
    secret: Secret,
    connector: Connector,
    first: Upstream,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let port = listener.local_addr()?.port();
    let (state_tx, state_rx) = watch::channel(State::Up(first.sender.clone()));
    let bridge = Bridge {
        inner: Arc::new(Inner {
            secret,
            port,
            state: state_rx,
            wait_for_upstream: Duration::from_secs(10),
        }),
    };
    let tracker = TaskTracker::new();
    tracker.spawn(supervise(connector, first, state_tx, shutdown.clone()));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(%err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if !peer.ip().is_loopback() {
                    continue;
                }
                let bridge = bridge.clone();
                let shutdown = shutdown.clone();
                tracker.spawn(async move { bridge.serve_client(stream, peer, shutdown).await });
            }
            () = shutdown.cancelled() => break,
        }
    }
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(2), tracker.wait())
        .await
        .is_err()
    {
        tracing::info!("some client connections were still open at shutdown");
    }
    Ok(())
}

async fn supervise(
    connector: Connector,
    first: Upstream,
    state: watch::Sender<State>,
    shutdown: CancellationToken,
) {
    let mut upstream = first;
    loop {
        let connected_at = Instant::now();
        let connection = upstream.connection;
        let reason = tokio::select! {
            reason = upstream.closed => reason.unwrap_or_else(|_| "connection task ended".into()),
            () = shutdown.cancelled() => {
                state.send_replace(State::Closed);
                connection.close().await;
                return;
            }
        };
        tracing::warn!(%reason, "lost the stub; reconnecting");
        connection.close().await;
        let mut attempt: u32 = 0;
        // A connection that lived a while resets the backoff.
        let mut delay = if connected_at.elapsed() > Duration::from_secs(60) {
            Duration::ZERO
        } else {
            Duration::from_millis(500)
        };
        let mut last_error = Some(reason);
        upstream = loop {
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
            match tokio::select! {
                result = connector.connect(&mut progress) => result,
                () = shutdown.cancelled() => {
                    state.send_replace(State::Closed);
                    return;
                }
            } {
                Ok(upstream) => {
                    tracing::info!(attempt, elapsed = ?upstream.elapsed, "reconnected to the stub");
                    break upstream;
                }
                Err(err) => {
                    tracing::warn!(attempt, "reconnect failed: {err:#}");
                    last_error = Some(format!("{err:#}"));
                    delay = (delay * 2).clamp(Duration::from_secs(1), Duration::from_secs(15));
                }
            }
        };
        state.send_replace(State::Up(upstream.sender.clone()));
    }
}

const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
    header::HOST,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&listed) {
        headers.remove(name);
    }
}

fn error_response(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "name": "BridgeError", "data": { "message": message } });
    let mut response = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn not_found() -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(b"Not Found"))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

impl Bridge {
    async fn serve_client(
        self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        shutdown: CancellationToken,
    ) {
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%err, "set_nodelay failed");
        }
        let bridge = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let bridge = bridge.clone();
            async move { Ok::<_, std::convert::Infallible>(bridge.handle(req).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, %err, "client connection ended with an error");
                }
            }
            () = shutdown.cancelled() => {
                connection.as_mut().graceful_shutdown();
                // In-flight responses (SSE) may never end by themselves.
                let _elapsed = tokio::time::timeout(Duration::from_millis(500), connection).await;
            }
        }
    }

    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        let mut hosts = headers.get_all(header::HOST).iter();
        let (Some(host), None) = (hosts.next(), hosts.next()) else {
            // No Host (HTTP/1.0; the secret still guards) is fine, several are not.
            return headers.get(header::HOST).is_none();
        };
        let Ok(host) = host.to_str() else {
            return false;
        };
        let port = self.inner.port.to_string();
        let (name, host_port) = match host.rsplit_once(':') {
            Some((name, p)) if !name.ends_with(':') || name.starts_with('[') => (name, Some(p)),
            _ => (host, None),
        };
        matches!(name, "127.0.0.1" | "localhost" | "[::1]") && host_port.is_none_or(|p| p == port)
    }

    async fn upstream(&self) -> Result<SendRequest<Body>, Response<Body>> {
        let mut state = self.inner.state.clone();
        let deadline = tokio::time::sleep(self.inner.wait_for_upstream);
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

    async fn handle(&self, mut req: Request<Incoming>) -> Response<Body> {
        if !self.host_allowed(req.headers()) {
            return not_found();
        }
        let Some(path) = self.inner.secret.strip(req.uri().path()) else {
            return not_found();
        };
        let path = if path.is_empty() { "/" } else { path };
        let path_and_query = match req.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };
        let Ok(uri) = Uri::builder()
            .scheme("http")
            .authority("stub")
            .path_and_query(path_and_query)
            .build()
        else {
            return error_response(StatusCode::BAD_REQUEST, "invalid request path");
        };
        let websocket = req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        if websocket {
            return self.websocket(req, uri).await;
        }
        let mut sender = match self.upstream().await {
            Ok(sender) => sender,
            Err(response) => return response,
        };
        *req.uri_mut() = uri;
        *req.version_mut() = http::Version::HTTP_2;
        strip_hop_by_hop(req.headers_mut());
        let req = req.map(|body| {
            body.map_err(|err| Box::new(err) as crate::connector::BoxError)
                .boxed()
        });
        match sender.send_request(req).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                parts.version = http::Version::HTTP_11;
                Response::from_parts(
                    parts,
                    body.map_err(|err| Box::new(err) as crate::connector::BoxError)
                        .boxed(),
                )
            }
            Err(err) => {
                tracing::warn!(%err, "forwarding failed");
                error_response(
                    StatusCode::BAD_GATEWAY,
                    &format!("the host did not answer: {err}"),
                )
            }
        }
    }

    async fn websocket(&self, mut req: Request<Incoming>, uri: Uri) -> Response<Body> {
        let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
            return error_response(
                StatusCode::BAD_REQUEST,
                "websocket upgrade without Sec-WebSocket-Key",
            );
        };
        let mut sender = match self.upstream().await {
            Ok(sender) => sender,
            Err(response) => return response,
        };
        let client_upgrade = hyper::upgrade::on(&mut req);
        let mut forward = Request::builder()
            .method(Method::CONNECT)
            .uri(uri)
            .version(http::Version::HTTP_2);
        for (name, value) in req.headers() {
            let name_str = name.as_str();
            // RFC 8441 drops the key/accept dance and h2 forbids hop-by-hop headers; the
            // permessage-deflate extension is not offered (bytes are relayed unchanged).
            if name_str.starts_with("sec-websocket-key")
                || name_str == "sec-websocket-extensions"
                || HOP_BY_HOP.contains(name)
            {
                continue;
            }
            forward = forward.header(name, value);
        }
        let Ok(mut forward) = forward.body(
            http_body_util::Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed(),
        ) else {
            return error_response(StatusCode::BAD_REQUEST, "invalid websocket request");
        };
        forward
            .extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        let mut response = match sender.send_request(forward).await {
            Ok(response) => response,
            Err(err) => {
                return error_response(
                    StatusCode::BAD_GATEWAY,
                    &format!("the host did not answer: {err}"),
                );
            }
        };
        if response.status() != StatusCode::OK {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            parts.version = http::Version::HTTP_11;
            return Response::from_parts(
                parts,
                body.map_err(|err| Box::new(err) as crate::connector::BoxError)
                    .boxed(),
            );
        }
        let stub_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, stub_upgrade) {
                Ok((client, stub)) => {
                    let mut client = TokioIo::new(client);
                    let mut stub = TokioIo::new(stub);
                    if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut stub).await {
                        tracing::debug!(%err, "websocket relay ended");
                    }
                }
                Err(err) => tracing::debug!(%err, "websocket upgrade failed"),
            }
        });
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let mut upgraded = Response::new(
            http_body_util::Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed(),
        );
        *upgraded.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = upgraded.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert("sec-websocket-accept", accept);
        }
        if let Some(protocol) = response.headers().get("sec-websocket-protocol") {
            headers.insert("sec-websocket-protocol", protocol.clone());
        }
        upgraded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_should_strip_only_its_own_prefix() {
        let secret = Secret::from_string("a".repeat(64)).unwrap();
        let prefix = format!("/{}", "a".repeat(64));
        assert_eq!(secret.strip(&prefix), Some(""));
        assert_eq!(
            secret.strip(&format!("{prefix}/global/health")),
            Some("/global/health")
        );
        assert_eq!(secret.strip(&format!("{prefix}x/global/health")), None);
        assert_eq!(secret.strip(&format!("/{}/x", "b".repeat(64))), None);
        assert_eq!(secret.strip("/global/health"), None);
        assert_eq!(secret.strip(""), None);
        assert_eq!(secret.strip(&prefix[..20]), None);
    }

    #[test]
    fn secret_should_be_random_and_long() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a.expose(), b.expose());
        assert!(Secret::from_string("short".into()).is_none());
        assert!(Secret::from_string(format!("{}/", "a".repeat(40))).is_none());
        assert_eq!(format!("{a:?}"), "Secret(..)");
    }

    #[test]
    fn strip_hop_by_hop_should_remove_connection_listed_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-keep"));
    }
}
