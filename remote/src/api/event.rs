//! Event streams and sync (SPEC §3, §7): `GET /global/event` (envelopes, sync payloads
//! included), `GET /event` (bare payloads), `POST /sync/history`, and the warp routes.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use serde_json::Value;

use crate::error::ApiError;
use crate::http::sse;
use crate::http::{Body, Req, streaming};
use crate::opencode::event::{BusEvent, Envelope};
use crate::session::ids::{self, Order};

/// Interval of `server.heartbeat` events (as OpenCode's own server).
const HEARTBEAT: Duration = Duration::from_secs(10);

/// `GET /global/event`
pub async fn global(req: Req) -> Result<Response<Body>, ApiError> {
    Ok(stream(&req, true))
}

/// `GET /event`
pub async fn instance(req: Req) -> Result<Response<Body>, ApiError> {
    Ok(stream(&req, false))
}

fn stream(req: &Req, global: bool) -> Response<Body> {
    let (tx, response) = sse::response(256);
    let mut rx = req.app.bus().subscribe();
    let shutdown = req.app.shutdown().clone();
    // Heartbeats and the hello are not tied to the directory: OpenCode sends them as
    // `{"payload": …}` only on the global stream.
    let own = move |event: &BusEvent| {
        let payload = event.payload(&ids::new("evt", Order::Ascending));
        let data = if global {
            serde_json::to_string(&Envelope {
                directory: None,
                project: None,
                workspace: None,
                payload: &payload,
            })
        } else {
            serde_json::to_string(&payload)
        };
        sse::encode(None, None, &data.unwrap_or_default())
    };
    req.app.spawn(async move {
        if !tx.send(own(&BusEvent::ServerConnected {})).await {
            return;
        }
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        loop {
            tokio::select! {
                received = rx.recv() => match received {
                    Ok(published) => {
                        let json = if global { &published.global } else { &published.instance };
                        if json.is_empty() {
                            continue;
                        }
                        let Ok(json) = std::str::from_utf8(json) else { continue };
                        if !tx.send(sse::encode(None, None, json)).await {
                            return;
                        }
                    }
                    // Too slow to keep up: end the stream so the client reconnects and catches
                    // up from /sync/history instead of silently missing events.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "event subscriber fell behind; closing its stream");
                        return;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = heartbeat.tick() => {
                    if !tx.send(own(&BusEvent::ServerHeartbeat {})).await {
                        return;
                    }
                }
                () = tx.closed() => return,
                () = shutdown.cancelled() => return,
            }
        }
    });
    response
}

/// `POST /sync/history {"ses_…": lastKnownSeq}`: every stored event the caller lacks.
pub async fn history(mut req: Req) -> Result<Response<Body>, ApiError> {
    let known: HashMap<String, Value> = req.json().await?;
    let mut after = HashMap::with_capacity(known.len());
    for (aggregate, seq) in known {
        let seq = seq.as_i64().ok_or_else(|| {
            ApiError::BadRequest(format!(
                "history entry `{aggregate}` must be an integer sequence number"
            ))
        })?;
        after.insert(aggregate, seq);
    }
    let store = req.app.sessions().store().await?;
    // Streamed from the log files in chunks: a long history never sits in memory whole.
    let (sender, response) = streaming(HISTORY_QUEUE, "application/json");
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(HISTORY_CHUNK + 4096);
        chunk.push(b'[');
        let mut first = true;
        let written = store.write_history(&after, |line| {
            if !std::mem::take(&mut first) {
                chunk.push(b',');
            }
            chunk.extend_from_slice(line);
            chunk.len() < HISTORY_CHUNK
                || sender.blocking_send(Bytes::from(std::mem::take(&mut chunk)))
        });
        match written {
            Ok(()) => {
                chunk.push(b']');
                sender.blocking_send(Bytes::from(chunk));
            }
            // The answer stays incomplete JSON: OpenCode's sync fails and connects again.
            Err(err) => tracing::error!(%err, "cannot read the history"),
        }
    });
    Ok(response)
}

/// Bytes of history gathered into one DATA frame.
const HISTORY_CHUNK: usize = 64 << 10;
/// Chunks queued before the reader waits for the client.
const HISTORY_QUEUE: usize = 4;

/// `POST /sync/replay` (warping a session in).
pub async fn replay(_req: Req) -> Result<Response<Body>, ApiError> {
    Err(not_yet())
}

/// `POST /sync/steal` (warping a session in).
pub async fn steal(_req: Req) -> Result<Response<Body>, ApiError> {
    Err(not_yet())
}

fn not_yet() -> ApiError {
    ApiError::NotImplemented(
        "moving (warping) sessions between this machine and a remote workspace is not supported by opencode-remote yet".into(),
    )
}
