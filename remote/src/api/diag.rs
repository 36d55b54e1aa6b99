//! Diagnostic routes under `protocol::api::DIAG_PREFIX`, used by `opencode-remote doctor` and
//! the benchmark to measure the transport with the stub's real HTTP/2 stack. They expose no
//! host data and run nothing.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Response;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::error::ApiError;
use crate::http::sse;
use crate::http::{Body, BoxError, Req, ok};

const CHUNK: usize = 256 << 10;

/// `GET …/blob?bytes=N`: `N` zero bytes.
pub async fn blob(req: Req) -> Result<Response<Body>, ApiError> {
    let bytes = req.query.unsigned("bytes")?.unwrap_or(0);
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

/// `POST …/sink`: counts the request body.
pub async fn sink(mut req: Req) -> Result<Response<Body>, ApiError> {
    let mut body = req.take_body();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|err| ApiError::BadRequest(format!("body stream failed: {err}")))?;
        if let Some(data) = frame.data_ref() {
            bytes += data.len() as u64;
        }
    }
    ok(&Sunk { bytes })
}

#[derive(serde::Serialize)]
struct Sunk {
    bytes: u64,
}

/// `GET …/sse?interval_ms=I&count=C`: `C` events carrying the stub's clock, every `I` ms.
pub async fn sse(req: Req) -> Result<Response<Body>, ApiError> {
    let interval = Duration::from_millis(req.query.unsigned("interval_ms")?.unwrap_or(10));
    let count = req.query.unsigned("count")?.unwrap_or(100);
    let (tx, response) = sse::response(64);
    let shutdown = req.app.shutdown().clone();
    req.app.spawn(async move {
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

/// `CONNECT …/ws-echo` (WebSocket over RFC 8441): echoes every message.
pub async fn ws_echo(req: Req) -> Result<Response<Body>, ApiError> {
    req.require_websocket()?;
    let app = req.app.clone();
    let mut request = req.into_request();
    let upgrade = hyper::upgrade::on(&mut request);
    app.spawn(async move {
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
