//! The HTTP/2 server on the wire, its settings, and THE route table: one list of
//! `(method, pattern, handler)`, every handler with the same signature
//! (`async fn(Req) -> Result<Response<Body>, ApiError>`), in [`crate::api`].

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use http::{Method, Request, Response};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::api;
use crate::app::App;
use crate::error::ApiError;
use crate::http::query::Query;
use crate::http::{Body, Req, RequestBody, json_response};

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
    use api::{
        diag, event, file, gateway, permission, pty, question, session, skill, startup, vcs,
    };
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
            route!(POST "/session/:id/message" => session::message),
            route!(POST "/session/:id/prompt_async" => session::prompt_async),
            route!(POST "/session/:id/command" => session::command),
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
            route!(POST "/pty" => pty::create),
            route!(GET "/pty/shells" => pty::shells),
            route!(GET "/pty/:id" => pty::get),
            route!(PUT "/pty/:id" => pty::update),
            route!(DELETE "/pty/:id" => pty::remove),
            // WebSockets arrive as RFC 8441 extended CONNECT streams (see the bridge).
            route!(CONNECT "/pty/:id/connect" => pty::connect),
            route!(POST "/pty/:id/connect-token" => pty::connect_token),
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
            route!(GET "/question" => question::list),
            route!(POST "/question/:id/reply" => question::reply),
            route!(POST "/question/:id/reject" => question::reject),
            route!(GET "/lsp" => startup::empty_list),
            route!(GET "/formatter" => startup::empty_list),
            route!(GET "/skill" => skill::list),
            route!(GET "/agent" => startup::empty_list),
            route!(GET "/command" => startup::empty_list),
            // The stub's own diagnostics (protocol::api::DIAG_PREFIX).
            route!(GET "/x-opencode-remote/diag/blob" => diag::blob),
            route!(POST "/x-opencode-remote/diag/sink" => diag::sink),
            route!(GET "/x-opencode-remote/diag/sse" => diag::sse),
            route!(CONNECT "/x-opencode-remote/diag/ws-echo" => diag::ws_echo),
            route!(POST "/x-opencode-remote/diag/gateway" => gateway::diag),
            // The reverse road to the laptop (protocol::gateway::REQUESTS_PATH).
            route!(GET "/x-opencode-remote/gateway/requests" => gateway::announce),
            route!(POST "/x-opencode-remote/gateway/requests/:id" => gateway::answer),
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
    (route.handler)(Req::new(app, head, query, params, body)).await
}

#[cfg(test)]
pub mod testing {
    //! Calling the route table in-process.

    use super::*;
    use bytes::Bytes;
    use http::StatusCode;
    use http_body_util::Full;
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
