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

pub mod connector;
pub mod transport;

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

use crate::bridge::connector::{Body, Connector, Upstream};

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
    local: Option<LocalOpenCode>,
}

/// The user's local OpenCode server, which answers the user-level GETs (configuration,
/// providers, agents, commands) better than the host could, and which the bridge nudges to
/// resume syncing after a reconnect.
///
/// Two ways to reach it: over HTTP when it listens on a URL, or through the plugin that
/// started this bridge (`Stdio`): the plain OpenCode TUI serves its API in-process only, so
/// the bridge writes `{"call":N,"method","path"}` lines on stdout and the plugin answers with
/// `{"reply":N,"status","body"}` lines on stdin, using OpenCode's in-process client.
#[derive(Clone)]
pub struct LocalOpenCode {
    /// The local project directory (the `?directory=` OpenCode uses to pick the instance).
    pub directory: String,
    transport: Transport,
}

#[derive(Clone)]
enum Transport {
    Http {
        url: String,
        authorization: Option<String>,
        client: hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            http_body_util::Empty<Bytes>,
        >,
    },
    Stdio(Arc<StdioCalls>),
}

impl std::fmt::Debug for LocalOpenCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = match &self.transport {
            Transport::Http { url, .. } => url.as_str(),
            Transport::Stdio(_) => "stdio",
        };
        f.debug_struct("LocalOpenCode")
            .field("transport", &transport)
            .field("directory", &self.directory)
            .finish()
    }
}

/// Calls to the local OpenCode relayed by the plugin over this process's stdio.
#[derive(Debug, Default)]
pub struct StdioCalls {
    next: std::sync::atomic::AtomicU64,
    pending: std::sync::Mutex<
        std::collections::HashMap<u64, tokio::sync::oneshot::Sender<serde_json::Value>>,
    >,
}

impl StdioCalls {
    fn pending(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<u64, tokio::sync::oneshot::Sender<serde_json::Value>>,
    > {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn call(&self, method: &str, path: &str) -> Result<serde_json::Value, String> {
        use std::io::Write;
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending().insert(id, tx);
        let line = serde_json::json!({ "call": id, "method": method, "path": path }).to_string();
        let written = {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{line}").and_then(|()| stdout.flush())
        };
        if let Err(err) = written {
            self.pending().remove(&id);
            return Err(format!("cannot reach the plugin: {err}"));
        }
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err("the plugin dropped the call".into()),
            Err(_) => {
                self.pending().remove(&id);
                Err("the plugin did not answer within 10 s".into())
            }
        }
    }

    /// Hands a `{"reply": N, …}` line from stdin to the waiting call. Returns `false` when the
    /// line is not a reply.
    pub fn deliver(&self, line: &serde_json::Value) -> bool {
        let Some(id) = line.get("reply").and_then(serde_json::Value::as_u64) else {
            return false;
        };
        if let Some(tx) = self.pending().remove(&id) {
            // The caller may have timed out meanwhile.
            let _ignored = tx.send(line.clone());
        }
        true
    }
}

/// GET routes that describe the user's OpenCode setup rather than the host.
const USER_LEVEL: [&str; 8] = [
    "/config",
    "/config/providers",
    "/provider",
    "/provider/auth",
    "/agent",
    "/command",
    "/skill",
    "/experimental/console",
];

impl LocalOpenCode {
    /// A local server reachable over HTTP.
    pub fn http(url: &str, directory: String, authorization: Option<String>) -> LocalOpenCode {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build_http();
        let url = url.trim_end_matches('/').to_owned();
        LocalOpenCode {
            directory,
            transport: Transport::Http {
                url,
                authorization,
                client,
            },
        }
    }

    /// A local server reached through the plugin over stdio.
    pub fn stdio(calls: Arc<StdioCalls>, directory: String) -> LocalOpenCode {
        LocalOpenCode {
            directory,
            transport: Transport::Stdio(calls),
        }
    }

    fn uri(&self, url: &str, path: &str) -> Result<Uri, http::Error> {
        let mut uri = format!("{url}{path}?directory=");
        for byte in self.directory.bytes() {
            if byte.is_ascii_alphanumeric() || b"-_.~/".contains(&byte) {
                uri.push(byte as char);
            } else {
                uri.push_str(&format!("%{byte:02X}"));
            }
        }
        Ok(uri.parse::<Uri>()?)
    }

    async fn request(&self, method: Method, path: &str) -> Result<Response<Body>, String> {
        match &self.transport {
            Transport::Http {
                url,
                authorization,
                client,
            } => {
                let uri = self.uri(url, path).map_err(|err| err.to_string())?;
                let mut request = Request::builder().method(method).uri(uri);
                if let Some(authorization) = authorization {
                    request = request.header(header::AUTHORIZATION, authorization);
                }
                let request = request
                    .body(http_body_util::Empty::new())
                    .map_err(|err| err.to_string())?;
                let response =
                    tokio::time::timeout(Duration::from_secs(10), client.request(request))
                        .await
                        .map_err(|_| "timed out".to_owned())?
                        .map_err(|err| err.to_string())?;
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Ok(Response::from_parts(
                    parts,
                    body.map_err(|err| Box::new(err) as crate::bridge::connector::BoxError)
                        .boxed(),
                ))
            }
            Transport::Stdio(calls) => {
                let reply = calls.call(method.as_str(), path).await?;
                let status = reply
                    .get("status")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|s| StatusCode::from_u16(s as u16).ok())
                    .ok_or("the plugin's reply has no status")?;
                let body = reply
                    .get("body")
                    .cloned()
                    .unwrap_or(serde_json::Value::Null);
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
                Ok(response)
            }
        }
    }

    async fn get(&self, path: &str) -> Result<Response<Body>, String> {
        let response = self.request(Method::GET, path).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(format!("status {}", response.status()))
        }
    }

    /// Asks OpenCode to (re)start the sync loops of this project's workspaces: after a
    /// reconnect, a workspace whose stream failed stays in `error` until this call.
    pub async fn sync_start(&self) -> Result<(), String> {
        let response = self.request(Method::POST, "/sync/start").await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("status {}", response.status()))
        }
    }
}

/// Options of a bridge.
#[derive(Debug)]
pub struct Options {
    /// The secret path prefix.
    pub secret: Secret,
    /// How to (re)connect.
    pub connector: Connector,
    /// The local OpenCode server, when known.
    pub local: Option<LocalOpenCode>,
    /// How long requests wait for a reconnect before 503.
    pub wait_for_upstream: Duration,
}

/// Starts the supervisor (with an already connected upstream, or connecting in the background
/// when `first` is `None`) and serves `listener` until `shutdown` is cancelled.
pub async fn run(
    listener: TcpListener,
    options: Options,
    first: Option<Upstream>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let port = listener.local_addr()?.port();
    let initial = match &first {
        Some(upstream) => State::Up(upstream.sender.clone()),
        None => State::Connecting {
            attempt: 1,
            last_error: None,
        },
    };
    let (state_tx, state_rx) = watch::channel(initial);
    let Options {
        secret,
        connector,
        local,
        wait_for_upstream,
    } = options;
    let bridge = Bridge {
        inner: Arc::new(Inner {
            secret,
            port,
            state: state_rx,
            wait_for_upstream,
            local: local.clone(),
        }),
    };
    let tracker = TaskTracker::new();
    tracker.spawn(supervise(
        connector,
        first,
        local,
        state_tx,
        shutdown.clone(),
    ));
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
    first: Option<Upstream>,
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
                    let result = tokio::select! {
                        result = connector.connect(&mut progress) => result,
                        () = shutdown.cancelled() => {
                            state.send_replace(State::Closed);
                            return;
                        }
                    };
                    match result {
                        Ok(connected) => {
                            tracing::info!(attempt, elapsed = ?connected.elapsed, "connected to the stub");
                            break connected;
                        }
                        Err(err) => {
                            tracing::warn!(attempt, "connecting failed: {err:#}");
                            last_error = Some(format!("{err:#}"));
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
        let connection = current.connection;
        let reason = tokio::select! {
            reason = current.closed => reason.unwrap_or_else(|_| "connection task ended".into()),
            () = shutdown.cancelled() => {
                state.send_replace(State::Closed);
                connection.close().await;
                return;
            }
        };
        tracing::warn!(%reason, "lost the stub; reconnecting");
        connection.close().await;
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
        if req.method() == Method::GET
            && USER_LEVEL.contains(&path)
            && let Some(local) = &self.inner.local
        {
            match local.get(path).await {
                Ok(response) => return response,
                // Fall back to the stub's own (schema-valid, minimal) answer.
                Err(err) => tracing::warn!(path, "local OpenCode did not answer: {err}"),
            }
        }
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
            body.map_err(|err| Box::new(err) as crate::bridge::connector::BoxError)
                .boxed()
        });
        match sender.send_request(req).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                parts.version = http::Version::HTTP_11;
                Response::from_parts(
                    parts,
                    body.map_err(|err| Box::new(err) as crate::bridge::connector::BoxError)
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
                body.map_err(|err| Box::new(err) as crate::bridge::connector::BoxError)
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
