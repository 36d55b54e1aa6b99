//! The gateway's routes ([`protocol::gateway`]): the announce stream the bridge reads, the
//! answer streams it writes, and a diagnostic route that makes one request and streams its
//! replies as JSON lines, or times it on the host (for `doctor`, the benchmark and the tests).

use std::collections::VecDeque;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use protocol::gateway::{Decoder, Reply, Request};

use crate::error::ApiError;
use crate::http::{Body, Req, json_response, streaming};

/// `GET {REQUESTS_PATH}`: the announce stream (`Hello`, then requests and cancels).
pub async fn announce(req: Req) -> Result<Response<Body>, ApiError> {
    let mut announced = req.app.gateway().attach();
    let (tx, response) = streaming(8, "application/octet-stream");
    req.app.spawn(async move {
        while let Some(frame) = announced.recv().await {
            if !tx.send(frame).await {
                return;
            }
        }
    });
    Ok(response)
}

/// `POST {REQUESTS_PATH}/:id`: the replies to one request, as frames in the body. Answers when
/// the replies end; answering early (the request was cancelled) resets the stream, which tells
/// the bridge to drop the upstream call.
pub async fn answer(mut req: Req) -> Result<Response<Body>, ApiError> {
    let id: u64 = req
        .param(0)
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("bad gateway request id `{}`", req.param(0))))?;
    let Some(replies) = req.app.gateway().open(id) else {
        return Err(ApiError::NotFound(format!(
            "no gateway request {id} (finished or cancelled)"
        )));
    };
    let mut body = req.take_body();
    let mut decoder = Decoder::default();
    // Frames are read as they come and their replies held here while the caller is busy, up
    // to a bound: HTTP/2 counts small DATA frames left unread against the connection, and a
    // pile of them would close it for every session. Beyond the bound, reading stops and flow
    // control holds the bridge (and the provider) back.
    let mut pending: VecDeque<Reply> = VecDeque::new();
    let mut ended = false;
    loop {
        if ended && pending.is_empty() {
            return Ok(done());
        }
        tokio::select! {
            // The caller gave up: stop reading, which resets the stream.
            () = replies.closed() => return Ok(done()),
            permit = replies.reserve(), if !pending.is_empty() => {
                let Ok(permit) = permit else { return Ok(done()) };
                if let Some(reply) = pending.pop_front() {
                    let last = matches!(reply, Reply::End | Reply::Error(_));
                    permit.send(reply);
                    if last {
                        return Ok(done());
                    }
                }
            }
            frame = body.frame(), if !ended && pending.len() < MAX_PENDING_REPLIES => {
                let Some(frame) = frame else {
                    // The bridge ended the body without `End`: the answer is cut off.
                    ended = true;
                    continue;
                };
                let frame = frame.map_err(|err| {
                    ApiError::BadRequest(format!("gateway answer stream failed: {err}"))
                })?;
                let Some(data) = frame.data_ref() else { continue };
                decoder.push(data);
                while let Some(reply) = decoder.decode::<Reply>().map_err(|err| {
                    ApiError::BadRequest(format!("bad gateway answer frame: {err}"))
                })? {
                    let last = matches!(reply, Reply::End | Reply::Error(_));
                    pending.push_back(reply);
                    if last {
                        ended = true;
                        break;
                    }
                }
            }
        }
    }
}

/// Replies read ahead of a busy caller, at most.
const MAX_PENDING_REPLIES: usize = 4096;

fn done() -> Response<Body> {
    json_response(StatusCode::OK, &true)
}

/// Largest chunk of JSON lines the diagnostic route joins.
const DIAG_CHUNK: usize = 8 << 10;
/// Chunks at least this big cost h2's receiver nothing while unread.
const MIN_FRAME: usize = 256;
/// How long a smaller chunk waits for more replies.
const SMALL_FRAME_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

/// `POST …/diag/gateway {Request as JSON}`: makes the request and streams its replies as JSON
/// lines; closing the response cancels it. With `?timing=true` the replies are read here on
/// the host, as the agent loop reads them, and one [`Timing`] is the answer.
pub async fn diag(mut req: Req) -> Result<Response<Body>, ApiError> {
    let timing = req.query.flag("timing", false)?;
    let request: Request = req.json().await?;
    let started = std::time::Instant::now();
    let mut answer = req
        .app
        .gateway()
        .request(request)
        .await
        .map_err(|err| ApiError::Unavailable(err.to_string()))?;
    if timing {
        return Ok(json_response(StatusCode::OK, &timed(answer, started).await));
    }
    let (tx, response) = streaming(16, "application/x-ndjson");
    req.app.spawn(async move {
        loop {
            let reply = tokio::select! {
                () = tx.closed() => return,
                reply = answer.next() => reply,
            };
            let Some(reply) = reply else { return };
            // Replies that already arrived travel in the same chunk: one HTTP/2 DATA frame
            // per token would be a flood of tiny frames for a reader that falls behind.
            let mut chunk = Vec::new();
            let mut next = Some(reply);
            let mut last = false;
            while let Some(reply) = next.take() {
                last = matches!(reply, Reply::End | Reply::Error(_));
                chunk.extend(serde_json::to_vec(&reply).unwrap_or_default());
                chunk.push(b'\n');
                if !last && chunk.len() < DIAG_CHUNK {
                    next = answer.ready();
                    if next.is_none() && chunk.len() < MIN_FRAME {
                        // A small chunk waits a moment for more (see the bridge's answer
                        // body for why small DATA frames are worth avoiding).
                        next = tokio::time::timeout(SMALL_FRAME_WAIT, answer.next())
                            .await
                            .ok()
                            .flatten();
                    }
                }
            }
            if !tx.send(Bytes::from(chunk)).await || last {
                return;
            }
        }
    });
    Ok(response)
}

/// A request's answer as read on the host.
#[derive(Debug, Default, serde::Serialize)]
struct Timing {
    /// Replies read (joined ones count once).
    replies: usize,
    /// All text deltas, joined.
    text: String,
    /// Milliseconds from the request to the first and the last text.
    first_text_ms: Option<f64>,
    last_text_ms: Option<f64>,
    /// How the answer ended: `"End"`, or the failure's message.
    ended: String,
}

async fn timed(mut answer: crate::gateway::Answer, started: std::time::Instant) -> Timing {
    let mut timing = Timing::default();
    while let Some(reply) = answer.next().await {
        timing.replies += 1;
        match reply {
            Reply::Model(protocol::gateway::ModelEvent::TextDelta(text)) => {
                let at = started.elapsed().as_secs_f64() * 1e3;
                timing.first_text_ms.get_or_insert(at);
                timing.last_text_ms = Some(at);
                timing.text.push_str(&text);
            }
            Reply::End => {
                timing.ended = "End".into();
                break;
            }
            Reply::Error(failure) => {
                timing.ended = failure.message;
                break;
            }
            _ => {}
        }
    }
    timing
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::Request as HttpRequest;
    use http_body_util::{BodyExt, Full, StreamBody};
    use hyper::body::{Frame, Incoming};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use protocol::gateway::{
        Announce, Decoder, FetchRequest, ModelEvent, REQUESTS_PATH, Reply, Request, encode,
    };
    use tokio::sync::mpsc;

    use crate::app::{App, Config};
    use crate::handshake::HostInfo;
    use crate::tools::procs::Procs;

    type Client = hyper::client::conn::http2::SendRequest<
        http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>,
    >;

    /// The stub's server on one end of a pipe, an HTTP/2 client (the bridge's role) on the other.
    async fn connect() -> (tempfile::TempDir, Client) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            state_dir: dir.path().join("state"),
            directory: dir.path().to_owned(),
            manual: true,
            workspace_id: String::new(),
            project_id: String::new(),
        };
        let app = App::new(
            config,
            HostInfo::current(dir.path().to_owned()),
            Procs::default(),
            tokio_util::sync::CancellationToken::new(),
        );
        let (client_io, server_io) = tokio::io::duplex(1 << 20);
        tokio::spawn(crate::server::serve(server_io, app));
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(client_io))
                .await
                .unwrap();
        tokio::spawn(connection);
        (dir, sender)
    }

    fn empty() -> http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible> {
        Full::new(bytes::Bytes::new()).boxed()
    }

    async fn next_announce(body: &mut Incoming, decoder: &mut Decoder) -> Announce {
        loop {
            if let Some(announce) = decoder.decode().unwrap() {
                return announce;
            }
            let frame = body.frame().await.unwrap().unwrap();
            decoder.push(frame.data_ref().unwrap());
        }
    }

    #[tokio::test]
    async fn a_request_should_travel_out_and_its_answer_back_as_json_lines() {
        let (_dir, mut client) = connect().await;
        let announce = client
            .send_request(HttpRequest::get(REQUESTS_PATH).body(empty()).unwrap())
            .await
            .unwrap();
        let mut announced = announce.into_body();
        let mut decoder = Decoder::default();
        assert!(matches!(
            next_announce(&mut announced, &mut decoder).await,
            Announce::Hello { .. }
        ));

        let request = Request::Fetch(FetchRequest {
            url: "http://127.0.0.1/".into(),
            accept: "*/*".into(),
            timeout_ms: 1000,
            max_bytes: 10,
        });
        let body = serde_json::to_vec(&request).unwrap();
        let diag = client.send_request(
            HttpRequest::post("/x-opencode-remote/diag/gateway")
                .body(Full::new(bytes::Bytes::from(body)).boxed())
                .unwrap(),
        );
        let diag = tokio::spawn(diag);
        let Announce::Request { id, request: got } =
            next_announce(&mut announced, &mut decoder).await
        else {
            panic!("expected a request")
        };
        assert_eq!(got, request);

        let (tx, rx) = mpsc::channel::<Result<Frame<bytes::Bytes>, std::convert::Infallible>>(4);
        let answer = client.send_request(
            HttpRequest::post(format!("{REQUESTS_PATH}/{id}"))
                .body(StreamBody::new(tokio_stream_from(rx)).boxed())
                .unwrap(),
        );
        let answer = tokio::spawn(answer);
        for reply in [
            Reply::Model(ModelEvent::TextDelta("hello".into())),
            Reply::End,
        ] {
            tx.send(Ok(Frame::data(encode(&reply).unwrap().into())))
                .await
                .unwrap();
        }
        drop(tx);
        assert_eq!(answer.await.unwrap().unwrap().status(), 200);
        let lines = diag
            .await
            .unwrap()
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes();
        let replies: Vec<Reply> = std::str::from_utf8(&lines)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(
            replies,
            [
                Reply::Model(ModelEvent::TextDelta("hello".into())),
                Reply::End
            ]
        );
    }

    #[tokio::test]
    async fn closing_the_caller_should_reset_the_answer_stream() {
        let (_dir, mut client) = connect().await;
        let mut announced = client
            .send_request(HttpRequest::get(REQUESTS_PATH).body(empty()).unwrap())
            .await
            .unwrap()
            .into_body();
        let mut decoder = Decoder::default();
        next_announce(&mut announced, &mut decoder).await;
        let request = Request::Setup;
        let diag = client
            .send_request(
                HttpRequest::post("/x-opencode-remote/diag/gateway")
                    .body(Full::new(serde_json::to_vec(&request).unwrap().into()).boxed())
                    .unwrap(),
            )
            .await
            .unwrap();
        let Announce::Request { id, .. } = next_announce(&mut announced, &mut decoder).await else {
            panic!()
        };
        let (tx, rx) = mpsc::channel::<Result<Frame<bytes::Bytes>, std::convert::Infallible>>(1);
        let answer = tokio::spawn(
            client.send_request(
                HttpRequest::post(format!("{REQUESTS_PATH}/{id}"))
                    .body(StreamBody::new(tokio_stream_from(rx)).boxed())
                    .unwrap(),
            ),
        );
        tx.send(Ok(Frame::data(
            encode(&Reply::Model(ModelEvent::TextDelta("x".into())))
                .unwrap()
                .into(),
        )))
        .await
        .unwrap();
        // The caller goes away: the stub stops reading and answers, so the bridge's body
        // sender sees the stream end.
        drop(diag);
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if tx.is_closed() {
                    return;
                }
                let more = Reply::Model(ModelEvent::TextDelta("more".into()));
                let frame = Frame::data(encode(&more).unwrap().into());
                if tx.send(Ok(frame)).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(closed.is_ok(), "the answer stream was not closed");
        let _ = answer.await;
    }

    /// A stream of the receiver's items (tokio-stream is not a dependency).
    fn tokio_stream_from<T>(
        mut rx: mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> + Send + 'static
    where
        T: Send + 'static,
    {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
