//! The HTTP/2 server on the wire, its settings, and the router.

pub mod sse;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::api::{diag, files, opencode};
use crate::app::App;
use crate::error::ApiError;

/// Error type of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body.
pub type Body = BoxBody<Bytes, BoxError>;

/// Largest JSON request body accepted (OpenCode sends small JSON; file writes are well below).
pub const MAX_JSON_BODY: usize = 8 << 20;

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
