//! HTTP for handlers: the routed request ([`Req`]), the body types, JSON answers and bodies, the
//! read-your-writes fence header, server-sent events ([`sse`]) and query strings ([`query`]).
//! The server ([`crate::server`]) sits above the handlers and routes to them.

pub mod query;
pub mod sse;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::body::Frame;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

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
    /// A routed request.
    pub fn new(app: App, head: Parts, query: Query, params: Vec<String>, body: RequestBody) -> Req {
        Req {
            app,
            head,
            query,
            params,
            body,
        }
    }

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

    /// Fails unless this is a WebSocket: an extended CONNECT (RFC 8441) with `:protocol
    /// websocket`.
    pub fn require_websocket(&self) -> Result<(), ApiError> {
        let is_websocket = self
            .head
            .extensions
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
        if is_websocket {
            Ok(())
        } else {
            Err(ApiError::BadRequest(
                "expected a WebSocket (extended CONNECT with :protocol websocket)".into(),
            ))
        }
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

/// The sending half of a streamed response body. Each [`Sender::send`] becomes one DATA frame;
/// when every sender is dropped the body ends.
#[derive(Debug, Clone)]
pub struct Sender(mpsc::Sender<Bytes>);

impl Sender {
    /// Queues bytes; waits while the client is slow (the queue is bounded). Returns `false`
    /// once the client has gone away.
    pub async fn send(&self, bytes: Bytes) -> bool {
        self.0.send(bytes).await.is_ok()
    }

    /// Queues from a blocking thread, waiting while the client is slow; `false` once the
    /// client has gone away.
    pub fn blocking_send(&self, bytes: Bytes) -> bool {
        self.0.blocking_send(bytes).is_ok()
    }

    /// Queues without waiting; `false` when the queue is full or the client is gone.
    pub fn try_send(&self, bytes: Bytes) -> bool {
        self.0.try_send(bytes).is_ok()
    }

    /// Resolves when the client has gone away.
    pub async fn closed(&self) {
        self.0.closed().await;
    }
}

struct Streamed(mpsc::Receiver<Bytes>);

impl hyper::body::Body for Streamed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0
            .poll_recv(cx)
            .map(|bytes| bytes.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// A `200` response whose body is fed by the returned sender; `capacity` bounds what is queued.
pub fn streaming(capacity: usize, content_type: &'static str) -> (Sender, Response<Body>) {
    let (tx, rx) = mpsc::channel(capacity);
    let mut response = Response::new(Streamed(rx).boxed());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    (Sender(tx), response)
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
