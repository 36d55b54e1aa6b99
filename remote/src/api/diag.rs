//! Diagnostic routes under `protocol::api::DIAG_PREFIX`, used by `opencode-remote doctor` and
//! the benchmark to measure the transport with the stub's real HTTP/2 stack. They expose no
//! host data and run nothing.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::app::App;
use crate::error::ApiError;
use crate::http::{Body, BoxError, json_response, sse};

const CHUNK: usize = 256 << 10;

pub async fn route(
    app: &App,
    rest: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let query = req.uri().query().unwrap_or("").to_owned();
    match (req.method(), rest) {
        (&Method::GET, "/blob") => {
            let bytes = query_u64(&query, "bytes")?.unwrap_or(0);
            let mut response = Response::new(
                Blob {
                    remaining: bytes,
                    chunk: Bytes::from(vec![0u8; CHUNK]),
                }
                .boxed(),
            );
            response
                .headers_mut()
                .insert(http::header::CONTENT_LENGTH, bytes.into());
            Ok(response)
        }
        (&Method::POST, "/sink") => {
            let mut body = req.into_body();
            let mut bytes = 0u64;
            while let Some(frame) = body.frame().await {
                let frame = frame
                    .map_err(|err| ApiError::BadRequest(format!("body stream failed: {err}")))?;
                if let Some(data) = frame.data_ref() {
                    bytes += data.len() as u64;
                }
            }
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({ "bytes": bytes }),
            ))
        }
        (&Method::GET, "/sse") => {
            let interval = Duration::from_millis(query_u64(&query, "interval_ms")?.unwrap_or(10));
            let count = query_u64(&query, "count")?.unwrap_or(100);
            let (tx, response) = sse::response(64);
            let shutdown = app.shutdown().clone();
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(interval);
                for seq in 0..count {
                    tokio::select! {
                        _ = ticker.tick() => {}
                        () = shutdown.cancelled() => return,
                    }
                    let data = format!("{{\"seq\":{seq},\"t_us\":{}}}", now_micros());
                    if !tx.send(sse::encode(None, None, &data)).await {
                        return;
                    }
                }
            });
            Ok(response)
        }
        (&Method::CONNECT, "/ws-echo") => websocket_echo(req),
        _ => Err(ApiError::NotFound(format!(
            "no diagnostic route {} {rest}",
            req.method()
        ))),
    }
}

fn websocket_echo(mut req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let is_websocket = req
        .extensions()
        .get::<hyper::ext::Protocol>()
        .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
    if !is_websocket {
        return Err(ApiError::BadRequest(
            "expected an extended CONNECT with :protocol websocket".into(),
        ));
    }
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(err) => {
                tracing::debug!(%err, "websocket upgrade failed");
                return;
            }
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(message)) = ws.next().await {
            if message.is_close() {
                break;
            }
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                break;
            }
        }
    });
    Ok(Response::new(crate::http::full(Bytes::new())))
}

fn query_u64(query: &str, name: &str) -> Result<Option<u64>, ApiError> {
    for pair in query.split('&') {
        if let Some((key, value)) = pair.split_once('=')
            && key == name
        {
            return value.parse().map(Some).map_err(|_| {
                ApiError::BadRequest(format!(
                    "query parameter `{name}` must be a non-negative integer, got `{value}`"
                ))
            });
        }
    }
    Ok(None)
}

/// Wall clock in microseconds since the epoch (the benchmark runs client and stub on one host).
pub fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

struct Blob {
    remaining: u64,
    chunk: Bytes,
}

impl hyper::body::Body for Blob {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(self.chunk.len() as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}
