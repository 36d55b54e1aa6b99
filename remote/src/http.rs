//! The HTTP/2 server on the wire, its settings, and the router.

pub mod diag;
pub mod files;
pub mod opencode;
pub mod sse;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use protocol::api::{Health, StubInfo};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::approvals::Approvals;
use crate::bus::Bus;
use crate::error::ApiError;
use crate::handshake::HostInfo;
use crate::permissions::Permissions;
use crate::procs::Procs;
use crate::sessions::Runs;
use crate::store::Store;

/// Error type of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body.
pub type Body = BoxBody<Bytes, BoxError>;

/// Largest JSON request body accepted (OpenCode sends small JSON; file writes are well below).
pub const MAX_JSON_BODY: usize = 8 << 20;

/// Stub configuration, fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct Config {
    /// Root of the persistent state (`~/.opencode-remote/state`).
    pub state_dir: PathBuf,
    /// The working directory this session serves.
    pub directory: PathBuf,
    /// Whether the client skipped the handshake.
    pub manual: bool,
    /// OpenCode workspace id from the handshake (empty in manual mode).
    pub workspace_id: String,
    /// OpenCode project id from the handshake (empty in manual mode).
    pub project_id: String,
}

/// Everything handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct App(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    config: Config,
    host: HostInfo,
    started: Instant,
    started_ms: u64,
    procs: Procs,
    shutdown: CancellationToken,
    bus: Bus,
    /// Opened on first use: health checks and manual probes never touch (or take over) the
    /// workspace's state.
    store: tokio::sync::OnceCell<Arc<Store>>,
    approvals: tokio::sync::OnceCell<Arc<Mutex<Approvals>>>,
    permissions: Permissions,
    runs: Runs,
}

impl App {
    /// Builds the application state.
    pub fn new(config: Config, host: HostInfo, procs: Procs, shutdown: CancellationToken) -> App {
        let bus = Bus::new(
            &config.directory.to_string_lossy(),
            &config.project_id,
            &config.workspace_id,
        );
        App(Arc::new(Shared {
            config,
            host,
            started: Instant::now(),
            started_ms: crate::ids::now_ms(),
            procs,
            shutdown,
            bus,
            store: tokio::sync::OnceCell::new(),
            approvals: tokio::sync::OnceCell::new(),
            permissions: Permissions::default(),
            runs: Runs::default(),
        }))
    }

    /// The event bus.
    pub fn bus(&self) -> &Bus {
        &self.0.bus
    }

    /// The workspace's session store, opened (and taken over from another stub) on first use.
    ///
    /// # Errors
    ///
    /// When the state directory is unusable.
    pub async fn store(&self) -> Result<Arc<Store>, ApiError> {
        let store = self
            .0
            .store
            .get_or_try_init(|| async {
                let state_dir = self.0.config.state_dir.clone();
                let workspace = self.0.config.workspace_id.clone();
                let bus = self.0.bus.clone();
                let store =
                    tokio::task::spawn_blocking(move || Store::open(&state_dir, &workspace, bus))
                        .await
                        .map_err(ApiError::internal)?
                        .map_err(ApiError::internal)?;
                let store = Arc::new(store);
                // Flush the logs to disk every second while we run.
                let syncing = store.clone();
                let shutdown = self.0.shutdown.clone();
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(1));
                    loop {
                        tokio::select! {
                            _ = tick.tick() => {}
                            () = shutdown.cancelled() => {}
                        }
                        let store = syncing.clone();
                        // A failed join only means the runtime is going away.
                        let _ignored = tokio::task::spawn_blocking(move || store.sync()).await;
                        if shutdown.is_cancelled() {
                            return;
                        }
                    }
                });
                Ok::<_, ApiError>(store)
            })
            .await?;
        Ok(store.clone())
    }

    /// Flushes the session logs (at exit).
    pub fn sync_store(&self) {
        if let Some(store) = self.0.store.get() {
            store.sync();
        }
    }

    /// The workspace's persisted approvals, loaded on first use.
    ///
    /// # Errors
    ///
    /// When the approvals file is unusable (the message says why).
    pub async fn approvals(&self) -> Result<Arc<Mutex<Approvals>>, ApiError> {
        let approvals = self
            .0
            .approvals
            .get_or_try_init(|| async {
                let state_dir = self.0.config.state_dir.clone();
                let workspace = self.0.config.workspace_id.clone();
                let loaded =
                    tokio::task::spawn_blocking(move || Approvals::load(&state_dir, &workspace))
                        .await
                        .map_err(ApiError::internal)?
                        .map_err(ApiError::internal)?;
                Ok::<_, ApiError>(Arc::new(Mutex::new(loaded)))
            })
            .await?;
        Ok(approvals.clone())
    }

    /// Persists `roots` as approved for this workspace.
    ///
    /// # Errors
    ///
    /// 507 when the disk is full, 500 otherwise.
    pub async fn approve(&self, roots: Vec<PathBuf>) -> Result<(), ApiError> {
        let approvals = self.approvals().await?;
        tokio::task::spawn_blocking(move || {
            approvals
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .approve(&roots)
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
    }

    /// Pending permission requests.
    pub fn permissions(&self) -> &Permissions {
        &self.0.permissions
    }

    /// Busy sessions.
    pub fn runs(&self) -> &Runs {
        &self.0.runs
    }

    /// The remote user's home directory.
    pub fn home(&self) -> &std::path::Path {
        &self.0.host.home
    }

    /// Wall-clock start time of this stub (ms).
    pub fn started_ms(&self) -> u64 {
        self.0.started_ms
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The child process registry.
    pub fn procs(&self) -> &Procs {
        &self.0.procs
    }

    /// Cancelled when the stub is shutting down; long-lived streams end on it.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.0.shutdown
    }

    fn health(&self) -> Health {
        let host = &self.0.host;
        let config = &self.0.config;
        Health {
            healthy: true,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            stub: StubInfo {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                protocol: protocol::PROTOCOL_VERSION.to_string(),
                pid: host.pid,
                os: host.os.clone(),
                arch: host.arch.clone(),
                kernel: host.kernel.clone(),
                directory: config.directory.to_string_lossy().into_owned(),
                state_dir: config.state_dir.to_string_lossy().into_owned(),
                uptime_secs: self.0.started.elapsed().as_secs(),
                manual: config.manual,
            },
        }
    }
}

/// HTTP/2 server settings. Each value is chosen for one shared, trusted, long-lived connection
/// that multiplexes everything OpenCode does with this host.
fn builder() -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        // 256 KiB frames: fewer frames and pipe writes per MiB (measured +17% on bulk bodies
        // when the bridge advertises the same). hyper's default is 16 KiB.
        .max_frame_size(256 << 10)
        // Windows well above one SSH channel window (2 MiB) so h2 flow control never is the
        // bottleneck; the 64 KiB protocol default halved throughput in measurements.
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(16 << 20)
        .adaptive_window(false)
        // OpenCode keeps one SSE stream open and fires bursts of parallel requests; 64
        // concurrent clients through the bridge are a benchmark target. 256 leaves headroom.
        .max_concurrent_streams(256)
        // Headers are small JSON-API headers plus cookies that OpenCode forwards; 64 KiB bounds
        // an HPACK bomb while leaving room for large cookies.
        .max_header_list_size(64 << 10)
        // Bound the per-stream send buffer (memory per slow reader).
        .max_send_buf_size(1 << 20)
        // Every aborted client request becomes a RST_STREAM. With hyper's default of 20
        // pending-accept resets, a burst of cancellations made the stub GOAWAY the one shared
        // connection (and with it the SSE stream). The peer is our own authenticated bridge, so
        // allow far more; memory per pending reset is a few hundred bytes.
        .max_pending_accept_reset_streams(8192)
        .max_local_error_reset_streams(8192)
        // Notice a silent peer at the h2 layer even when the pipes stay open.
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20))
        // WebSockets (PTY) arrive as RFC 8441 extended CONNECT streams.
        .enable_connect_protocol();
    builder
}

/// Serves HTTP/2 on `io` until the peer goes away or `app.shutdown()` is cancelled.
///
/// # Errors
///
/// When the HTTP/2 connection fails (protocol error, broken pipe). A clean EOF is `Ok`.
pub async fn serve<I>(io: I, app: App) -> Result<(), hyper::Error>
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let service_app = app.clone();
    let service = hyper::service::service_fn(move |req| {
        let app = service_app.clone();
        async move { Ok::<_, Infallible>(app.handle(req).await) }
    });
    let connection = builder().serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        // The peer closed the wire or the connection failed.
        result = connection.as_mut() => result,
        // Shutdown requested locally (signal): let in-flight requests finish briefly.
        () = app.shutdown().cancelled() => {
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(Duration::from_millis(500), connection).await {
                Ok(result) => result,
                Err(_elapsed) => Ok(()),
            }
        }
    }
}

impl App {
    /// Routes one request (also used by the benchmark's HTTP/1.1 baseline server).
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let started = Instant::now();
        let response = match self.route(req).await {
            Ok(response) => response,
            Err(err) => {
                if let ApiError::Internal(cause) = &err {
                    tracing::error!(%method, %path, "internal error: {cause:#}");
                }
                json_response(err.status(), &err.body())
            }
        };
        tracing::debug!(%method, %path, status = response.status().as_u16(), elapsed = ?started.elapsed());
        response
    }

    async fn route(&self, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let path = req.uri().path().to_owned();
        if let Some(rest) = path.strip_prefix(protocol::api::DIAG_PREFIX) {
            return diag::route(self, rest, req).await;
        }
        if let Some(response) =
            files::route(self, req.method(), &path, req.uri().query().unwrap_or("")).await?
        {
            return Ok(response);
        }
        if !matches!(path.as_str(), protocol::api::HEALTH_PATH) {
            let method = req.method().clone();
            if let Some(response) = opencode::route(self, req).await? {
                return Ok(response);
            }
            return Err(ApiError::NotFound(format!("no route for {method} {path}")));
        }
        match (req.method(), path.as_str()) {
            (&Method::GET, protocol::api::HEALTH_PATH) => {
                Ok(json_response(StatusCode::OK, &self.health()))
            }
            (_, protocol::api::HEALTH_PATH) => Err(not_allowed(&req)),
            _ => Err(ApiError::NotFound(format!(
                "no route for {} {}",
                req.method(),
                path
            ))),
        }
    }
}

fn not_allowed<B>(req: &Request<B>) -> ApiError {
    ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
    }
}

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A JSON response.
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut response = Response::new(full(bytes));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(err) => {
            tracing::error!(%err, "cannot serialize response");
            let mut response = Response::new(full(&b"{\"name\":\"InternalError\"}"[..]));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

/// Reads a whole request body, refusing more than `limit` bytes with 413.
///
/// # Errors
///
/// [`ApiError::PayloadTooLarge`] or [`ApiError::BadRequest`] when the body stream fails.
pub async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::PayloadTooLarge { limit })
        }
        Err(err) => Err(ApiError::BadRequest(format!(
            "cannot read request body: {err}"
        ))),
    }
}

/// Reads and parses a JSON request body. An empty body parses as `{}`.
///
/// # Errors
///
/// 400 naming the offending field, or 413.
pub async fn read_json<T: DeserializeOwned>(body: Incoming) -> Result<T, ApiError> {
    let bytes = read_body(body, MAX_JSON_BODY).await?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    Ok(serde_json::from_slice(bytes)?)
}
