//! The HTTP/2 server on the wire, its settings, and THE route table: one list of
//! `(method, pattern, handler)`, every handler with the same signature
//! (`async fn(Req) -> Result<Response<Body>, ApiError>`), in [`crate::api`].

pub mod query;
pub mod sse;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::api;
use crate::app::App;
use crate::error::ApiError;
use query::Query;

/// Error type of bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body.
pub type Body = BoxBody<Bytes, BoxError>;
/// Every request body (hyper's, boxed so handlers can be called in-process in tests).
pub type RequestBody = BoxBody<Bytes, hyper::Error>;

/// Largest JSON request body accepted (OpenCode sends small JSON; file writes are well below).
pub const MAX_JSON_BODY: usize = 8 << 20;

/// A routed request: the app, the request head, the decoded query, the values of the route
/// pattern's `:name` segments, and the body.
pub struct Req {
    /// Shared state.
    pub app: App,
    /// Method, URI, headers, extensions (e.g. the upgrade of a WebSocket).
    pub head: Parts,
    /// Decoded query parameters.
    pub query: Query,
    params: Vec<String>,
    body: RequestBody,
}

impl Req {
    /// The value of the route's `n`-th `:name` segment (from 0).
    pub fn param(&self, n: usize) -> &str {
        self.params.get(n).map_or("", String::as_str)
    }

    /// The request path.
    pub fn path(&self) -> &str {
        self.head.uri.path()
    }

    /// Reads and parses the JSON body. An empty body parses as `{}`.
    ///
    /// # Errors
    ///
    /// 400 naming the offending field, or 413.
    pub async fn json<T: DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        let body = std::mem::replace(&mut self.body, empty_body());
        read_json(body).await
    }

    /// The body, for handlers that stream it.
    pub fn take_body(&mut self) -> RequestBody {
        std::mem::replace(&mut self.body, empty_body())
    }

    /// The request again (head and the body not yet taken), e.g. to upgrade it.
    pub fn into_request(self) -> Request<RequestBody> {
        Request::from_parts(self.head, self.body)
    }
}

fn empty_body() -> RequestBody {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

/// What a handler returns.
pub type Reply = Pin<Box<dyn Future<Output = Result<Response<Body>, ApiError>> + Send>>;

/// One entry of the route table.
pub struct Route {
    /// The method.
    pub method: Method,
    /// `/literal/:name/…`; `:name` matches one non-empty segment.
    pub pattern: &'static str,
    /// The handler.
    pub handler: fn(Req) -> Reply,
}

/// Builds a [`Route`] from `METHOD "/pattern" => handler`.
macro_rules! route {
    ($method:ident $pattern:literal => $handler:path) => {
        Route {
            method: Method::$method,
            pattern: $pattern,
            handler: |req| Box::pin($handler(req)),
        }
    };
}

/// Every route the stub serves (SPEC §6). Unknown paths are 404; a known path with another
/// method is 405.
fn routes() -> &'static [Route] {
    use api::{diag, event, file, permission, pty, session, startup, vcs};
    static ROUTES: std::sync::OnceLock<Vec<Route>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| {
        vec![
            // Events and sync (SPEC §3, §7).
            route!(GET "/global/event" => event::global),
            route!(GET "/event" => event::instance),
            route!(POST "/sync/history" => event::history),
            route!(POST "/sync/replay" => event::replay),
            route!(POST "/sync/steal" => event::steal),
            route!(GET "/global/health" => startup::health),
            // Sessions, !shell and prompts.
            route!(GET "/session" => session::list),
            route!(POST "/session" => session::create),
            route!(GET "/session/status" => session::status),
            route!(GET "/session/:id" => session::get),
            route!(PATCH "/session/:id" => session::update),
            route!(DELETE "/session/:id" => session::delete),
            route!(POST "/session/:id/shell" => session::shell),
            route!(POST "/session/:id/abort" => session::abort),
            route!(POST "/session/:id/message" => session::not_yet),
            route!(POST "/session/:id/prompt_async" => session::not_yet),
            route!(POST "/session/:id/command" => session::not_yet),
            route!(POST "/session/:id/summarize" => session::not_yet),
            route!(POST "/session/:id/init" => session::not_yet),
            route!(POST "/session/:id/revert" => session::not_yet),
            route!(POST "/session/:id/unrevert" => session::not_yet),
            route!(POST "/session/:id/fork" => session::not_yet),
            route!(POST "/session/:id/share" => session::not_yet),
            route!(GET "/experimental/session" => session::experimental_list),
            // Permissions.
            route!(GET "/permission" => permission::list),
            route!(POST "/permission/:id/reply" => permission::reply),
            route!(POST "/session/:id/permissions/:permission" => permission::legacy_reply),
            // Files, search, git.
            route!(GET "/file" => file::list),
            route!(GET "/file/content" => file::content),
            route!(GET "/file/status" => file::status),
            route!(GET "/find" => file::search),
            route!(GET "/find/file" => file::find),
            route!(GET "/find/symbol" => file::symbols),
            route!(GET "/vcs" => vcs::info),
            route!(GET "/vcs/status" => vcs::status),
            route!(GET "/vcs/diff" => vcs::diff),
            // Terminals.
            route!(GET "/pty" => pty::list),
            route!(POST "/pty" => pty::not_yet),
            route!(GET "/pty/:id" => pty::not_yet),
            route!(PUT "/pty/:id" => pty::not_yet),
            route!(DELETE "/pty/:id" => pty::not_yet),
            route!(GET "/pty/:id/connect" => pty::not_yet),
            route!(POST "/pty/:id/connect-token" => pty::not_yet),
            // What the TUI asks when the workspace is the current one (SPEC §6 row T).
            route!(GET "/path" => startup::path),
            route!(GET "/project/current" => startup::project),
            route!(GET "/project/:id/directories" => startup::directories),
            route!(GET "/config" => startup::empty_object),
            route!(GET "/config/providers" => startup::providers),
            route!(GET "/provider" => startup::provider_list),
            route!(GET "/provider/auth" => startup::empty_object),
            route!(GET "/mcp" => startup::empty_object),
            route!(GET "/experimental/resource" => startup::empty_object),
            route!(GET "/experimental/capabilities" => startup::capabilities),
            route!(GET "/experimental/console" => startup::console),
            route!(GET "/question" => startup::empty_list),
            route!(GET "/lsp" => startup::empty_list),
            route!(GET "/formatter" => startup::empty_list),
            route!(GET "/skill" => startup::empty_list),
            route!(GET "/agent" => startup::empty_list),
            route!(GET "/command" => startup::empty_list),
            // The stub's own diagnostics (protocol::api::DIAG_PREFIX).
            route!(GET "/x-opencode-remote/diag/blob" => diag::blob),
            route!(POST "/x-opencode-remote/diag/sink" => diag::sink),
            route!(GET "/x-opencode-remote/diag/sse" => diag::sse),
            route!(CONNECT "/x-opencode-remote/diag/ws-echo" => diag::ws_echo),
        ]
    })
}

/// The route for `method` and `path`, with the values of its `:name` segments; or the error
/// for an unknown path (404) or method (405).
fn find(method: &Method, path: &str) -> Result<(&'static Route, Vec<String>), ApiError> {
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let mut path_known = false;
    for route in routes() {
        let Some(params) = matches(route.pattern, &segments) else {
            continue;
        };
        if route.method == *method {
            return Ok((route, params));
        }
        path_known = true;
    }
    Err(if path_known {
        ApiError::MethodNotAllowed {
            method: method.to_string(),
            path: path.to_owned(),
        }
    } else {
        ApiError::NotFound(format!("no route for {method} {path}"))
    })
}

fn matches(pattern: &str, segments: &[&str]) -> Option<Vec<String>> {
    let wanted: Vec<&str> = pattern
        .strip_prefix('/')
        .unwrap_or(pattern)
        .split('/')
        .collect();
    if wanted.len() != segments.len() {
        return None;
    }
    let mut params = Vec::new();
    for (want, got) in wanted.iter().zip(segments) {
        if want.starts_with(':') {
            if got.is_empty() {
                return None;
            }
            params.push((*got).to_owned());
        } else if want != got {
            return None;
        }
    }
    Some(params)
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
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let app = service_app.clone();
        async move { Ok::<_, Infallible>(handle(app, req.map(BodyExt::boxed)).await) }
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

/// Routes one request (also used by the benchmark's HTTP/1.1 baseline server, and by tests
/// in-process). Failures become their JSON error answer here, and nowhere else.
pub async fn handle(app: App, req: Request<RequestBody>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let response = match dispatch(app, req).await {
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

async fn dispatch(app: App, req: Request<RequestBody>) -> Result<Response<Body>, ApiError> {
    let (head, body) = req.into_parts();
    let (route, params) = find(&head.method, head.uri.path())?;
    let query = Query::parse(head.uri.query().unwrap_or(""))?;
    (route.handler)(Req {
        app,
        head,
        query,
        params,
        body,
    })
    .await
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

/// `200` with `value` as JSON.
pub fn ok<T: Serialize + ?Sized>(value: &T) -> Result<Response<Body>, ApiError> {
    Ok(json_response(StatusCode::OK, value))
}

/// Sets `x-opencode-sync: {"<session>": seq}` so OpenCode holds the response until its
/// replica caught up (read-your-writes; SPEC §5).
pub fn fence(response: &mut Response<Body>, session_id: &str, seq: i64) {
    let value = serde_json::json!({ session_id: seq }).to_string();
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert("x-opencode-sync", value);
    }
}

/// Reads a whole request body, refusing more than `limit` bytes with 413.
///
/// # Errors
///
/// [`ApiError::PayloadTooLarge`] or [`ApiError::BadRequest`] when the body stream fails.
pub async fn read_body(body: RequestBody, limit: usize) -> Result<Bytes, ApiError> {
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
pub async fn read_json<T: DeserializeOwned>(body: RequestBody) -> Result<T, ApiError> {
    let bytes = read_body(body, MAX_JSON_BODY).await?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    Ok(serde_json::from_slice(bytes)?)
}

#[cfg(test)]
pub mod testing {
    //! Calling the route table in-process.

    use super::*;
    use serde_json::Value;

    /// Sends `method path` with a JSON `body` (or none) and returns the status and the JSON
    /// answer.
    pub async fn call(
        app: &App,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let bytes = body.map_or_else(Bytes::new, |body| Bytes::from(body.to_string()));
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Full::new(bytes).map_err(|never| match never {}).boxed())
            .unwrap_or_else(|err| panic!("bad test request: {err}"));
        let response = handle(app.clone(), req).await;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_should_route_by_pattern_and_tell_404_from_405() {
        let (route, params) = find(&Method::POST, "/session/ses_1/shell").unwrap();
        assert_eq!(route.pattern, "/session/:id/shell");
        assert_eq!(params, ["ses_1"]);
        let (route, _) = find(&Method::GET, "/session/status").unwrap();
        assert_eq!(route.pattern, "/session/status");
        assert!(matches!(
            find(&Method::DELETE, "/global/health"),
            Err(ApiError::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            find(&Method::GET, "/no/such/route"),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            find(&Method::GET, "/session//shell"),
            Err(ApiError::NotFound(_))
        ));
    }

    #[test]
    fn every_route_should_be_reachable() {
        for route in routes() {
            let path = route
                .pattern
                .replace(":id", "x")
                .replace(":permission", "y");
            let (found, _) = find(&route.method, &path).unwrap();
            assert_eq!(
                found.pattern, route.pattern,
                "{} {}",
                route.method, route.pattern
            );
        }
    }
}
