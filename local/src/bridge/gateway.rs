//! The model gateway: the bridge performs what the stub asks over the reverse road
//! ([`protocol::gateway`]): model calls with the user's credentials, web fetches, and the
//! user's OpenCode setup, so no key reaches the host and the host needs no network.
//!
//! On every link the bridge opens the announce stream (`GET` [`REQUESTS_PATH`]), checks the
//! stub's `Hello`, and answers each announced request on a stream of its own
//! (`POST {REQUESTS_PATH}/{id}`). An answer is fed to its stream through a small channel, so
//! HTTP/2 flow control reaches back to the provider: a stub that reads slowly makes the bridge
//! read the provider slowly, and nothing is buffered without bound. A `Cancel`, or the answer
//! stream ending early (the stub reset it), drops the provider request at once.
//!
//! - `providers`: `GET /config/providers` of the local OpenCode → endpoint, style, key.
//! - `call`: one model call (HTTP, retries, typed failures); `sse`: the event-stream reader.
//! - `chat`, `anthropic`, `responses`: the three wire formats.
//! - `setup`: the user's setup for the stub, and web fetches.

mod anthropic;
mod call;
mod chat;
mod providers;
mod responses;
mod setup;
mod sse;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request as HttpRequest, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Frame;
use hyper::client::conn::http2::SendRequest;
use protocol::gateway::{
    self, Announce, Decoder, Failure, FailureKind, FrameError, GATEWAY_VERSION, ModelEvent,
    REQUESTS_PATH, Reply, Request,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connector::{Body, BoxError};
use super::opencode::LocalOpenCode;
use providers::Providers;

/// Replies queued per answer stream before the bridge waits for HTTP/2 to take them.
const ANSWER_QUEUE: usize = 16;
/// Most bytes of queued replies joined into one DATA frame.
const BATCH_BYTES: usize = 64 << 10;
/// DATA frames at least this big cost h2's receiver nothing while unread.
const MIN_FRAME: usize = 256;
/// How long a smaller frame waits for more replies to join it.
const SMALL_FRAME_WAIT: Duration = Duration::from_millis(1);
/// While replies flow (the last frame left less than [`SMALL_FRAME_WAIT`] ago), a frame
/// gathers this many bytes, or waits [`SMALL_FRAME_WAIT`]: under a flood every frame costs sshd
/// and the stub a read, a decryption and a write, so fewer, bigger frames carry more tokens on
/// the same CPU, while a stream that starts, or trickles, still leaves at once.
const FLOWING_FRAME: usize = 8 << 10;
/// Pause before opening the announce stream again after it failed.
const REOPEN_DELAY: Duration = Duration::from_secs(1);

/// The gateway: cheap to clone, shared by every link.
#[derive(Clone, Debug)]
pub struct Gateway(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    providers: Providers,
    local: Option<LocalOpenCode>,
    http: reqwest::Client,
}

/// A failure of `kind` with `message` and nothing else known.
fn failure(kind: FailureKind, message: String) -> Failure {
    Failure {
        kind,
        message,
        status: None,
        retryable: false,
        response_body: None,
        response_headers: Vec::new(),
        url: None,
    }
}

/// The HTTP client for providers and fetches: rustls with the platform's roots plus the
/// certificates in `SSL_CERT_FILE`, and `HTTPS_PROXY` / `NO_PROXY` from the environment.
fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        // No `read_timeout`: it re-arms a timer on every read. Model calls watch for silence
        // themselves (`call`), fetches have deadlines of their own (`setup`).
        .user_agent(concat!("opencode-remote/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = std::env::var_os("SSL_CERT_FILE") {
        match std::fs::read(&path).map(|pem| reqwest::Certificate::from_pem_bundle(&pem)) {
            Ok(Ok(certificates)) => builder = builder.tls_certs_merge(certificates),
            Ok(Err(err)) => {
                tracing::warn!(path = ?path, %err, "SSL_CERT_FILE holds no usable certificates")
            }
            Err(err) => tracing::warn!(path = ?path, %err, "cannot read SSL_CERT_FILE"),
        }
    }
    builder.build()
}

impl Gateway {
    /// A gateway resolving providers through `local`.
    ///
    /// # Errors
    ///
    /// The HTTP client could not be set up (TLS initialisation).
    pub fn new(local: Option<LocalOpenCode>) -> Result<Gateway, reqwest::Error> {
        Ok(Gateway(Arc::new(Shared {
            providers: Providers::new(local.clone()),
            local,
            http: http_client()?,
        })))
    }

    /// Performs `request` here on the laptop and hands its replies to `replies`, as they would
    /// leave for the host: the gateway without the road (the benchmark's baseline).
    pub async fn perform_here(&self, request: Request, replies: mpsc::Sender<Reply>) {
        let _gone = perform(&self.0, Ok(request), &Replies { queue: replies }).await;
    }

    /// Serves the stub behind `sender` until `stop` (the link ended).
    pub(super) async fn serve(self, sender: SendRequest<Body>, stop: CancellationToken) {
        let tracker = TaskTracker::new();
        let calls = Calls::default();
        while !stop.is_cancelled() && !sender.is_closed() {
            match self.announced(&sender, &stop, &tracker, &calls).await {
                Next::Done => break,
                Next::Reopen => {
                    tokio::select! {
                        () = tokio::time::sleep(REOPEN_DELAY) => {}
                        () = stop.cancelled() => break,
                    }
                }
            }
        }
        stop.cancel();
        tracker.close();
        tracker.wait().await;
    }

    /// Reads one announce stream.
    async fn announced(
        &self,
        sender: &SendRequest<Body>,
        stop: &CancellationToken,
        tracker: &TaskTracker,
        calls: &Calls,
    ) -> Next {
        let request = HttpRequest::get(format!("http://stub{REQUESTS_PATH}"))
            .version(http::Version::HTTP_2)
            .body(Empty::new().map_err(|never| match never {}).boxed());
        let Ok(request) = request else {
            return Next::Done;
        };
        let response = tokio::select! {
            response = sender.clone().send_request(request) => response,
            () = stop.cancelled() => return Next::Done,
        };
        let response = match response {
            Ok(response) => response,
            Err(err) => {
                tracing::warn!(%err, "cannot open the gateway's announce stream");
                return Next::Reopen;
            }
        };
        let binary = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == b"application/octet-stream");
        if response.status() != StatusCode::OK || !binary {
            tracing::info!(
                status = %response.status(),
                "the stub has no model gateway (an older stub): model calls from the host are off"
            );
            return Next::Done;
        }
        let mut body = response.into_body();
        let mut decoder = Decoder::default();
        let mut hello = false;
        loop {
            let frame = tokio::select! {
                frame = body.frame() => frame,
                () = stop.cancelled() => return Next::Done,
            };
            let data = match frame {
                None => return Next::Reopen,
                Some(Err(err)) => {
                    tracing::debug!(%err, "the gateway's announce stream ended");
                    return Next::Reopen;
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_trailers) => continue,
                },
            };
            decoder.push(&data);
            loop {
                let announce = match decoder.decode::<Announce>() {
                    Ok(Some(announce)) => announce,
                    Ok(None) => break,
                    Err(err @ FrameError::TooLarge { .. }) => {
                        tracing::error!(%err, "bad frame on the gateway's announce stream; opening it again");
                        return Next::Reopen;
                    }
                    Err(err) => {
                        let id = decoder.skip().as_deref().and_then(gateway::request_id);
                        tracing::error!(%err, ?id, "the stub sent a gateway frame this bridge cannot read");
                        if let Some(id) = id {
                            let failure = failure(
                                FailureKind::BadRequest,
                                format!(
                                    "the bridge cannot read this request ({err}); are the stub and the bridge the same version?"
                                ),
                            );
                            self.spawn(sender, id, Err(failure), stop, tracker, calls);
                        }
                        continue;
                    }
                };
                match announce {
                    Announce::Hello { version } => {
                        if !GATEWAY_VERSION.is_compatible_with(version) {
                            tracing::error!(
                                "the stub speaks gateway version {version} and this bridge {GATEWAY_VERSION}: \
                                 model calls from the host are off until both are updated"
                            );
                            return Next::Done;
                        }
                        tracing::debug!(%version, "gateway open");
                        hello = true;
                    }
                    Announce::Request { .. } | Announce::Cancel { .. } if !hello => {
                        tracing::error!("the stub's announce stream did not start with a hello");
                        return Next::Done;
                    }
                    Announce::Request { id, request } => {
                        self.spawn(sender, id, Ok(request), stop, tracker, calls);
                    }
                    Announce::Cancel { id } => calls.cancel(id),
                }
            }
        }
    }

    fn spawn(
        &self,
        sender: &SendRequest<Body>,
        id: u64,
        request: Result<Request, Failure>,
        stop: &CancellationToken,
        tracker: &TaskTracker,
        calls: &Calls,
    ) {
        let cancel = stop.child_token();
        if !calls.start(id, cancel.clone()) {
            tracing::debug!(id, "request already being answered");
            return;
        }
        let shared = self.0.clone();
        let sender = sender.clone();
        let calls = calls.clone();
        tracker.spawn(async move {
            answer(shared, sender, id, request, cancel).await;
            calls.finish(id);
        });
    }
}

enum Next {
    /// Open the announce stream again.
    Reopen,
    /// Stop serving this link.
    Done,
}

/// Requests being answered, by id.
#[derive(Debug, Clone, Default)]
struct Calls(Arc<Mutex<HashMap<u64, CancellationToken>>>);

impl Calls {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, CancellationToken>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a new request; `false` when `id` is already answered (announced again).
    fn start(&self, id: u64, cancel: CancellationToken) -> bool {
        let mut calls = self.lock();
        if calls.contains_key(&id) {
            return false;
        }
        calls.insert(id, cancel);
        true
    }

    fn finish(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn cancel(&self, id: u64) {
        if let Some(cancel) = self.lock().remove(&id) {
            cancel.cancel();
        }
    }
}

/// The stub stopped reading an answer.
#[derive(Debug)]
struct Gone;

/// Where a request's replies go: the body of its answer stream.
#[derive(Debug)]
struct Replies {
    queue: mpsc::Sender<Reply>,
}

impl Replies {
    /// Sends one reply, waiting while the stream is full.
    async fn send(&self, reply: Reply) -> Result<(), Gone> {
        self.queue.send(reply).await.map_err(|_| Gone)
    }

    /// Sends `replies` in order, joining the pieces of one stream first (a provider's chunk
    /// often carries several tokens).
    async fn send_all(&self, replies: impl IntoIterator<Item = Reply>) -> Result<(), Gone> {
        let mut open = None;
        for reply in replies {
            if let Some(done) = Reply::join(&mut open, reply) {
                self.send(done).await?;
            }
        }
        match open {
            Some(last) => self.send(last).await,
            None => Ok(()),
        }
    }
}

/// Bytes `reply` adds to a frame, roughly: its text or data; other kinds count as a whole
/// frame, so they are never held back waiting for company.
fn frame_share(reply: &Reply) -> usize {
    match reply {
        Reply::Model(ModelEvent::TextDelta(text) | ModelEvent::ReasoningDelta(text))
        | Reply::Model(ModelEvent::ToolCallDelta {
            arguments: text, ..
        }) => text.len(),
        Reply::Data(data) => data.len(),
        _ => MIN_FRAME,
    }
}

/// The body of an answer stream: the replies queued by [`Replies`], as HTTP/2 takes them.
///
/// Replies already queued are joined ([`Reply::absorb`]: a run of text deltas becomes one)
/// and travel in one DATA frame, and a small frame waits up to [`SMALL_FRAME_WAIT`] for more
/// to join it (a bigger one too while replies flow, see [`FLOWING_FRAME`]): HTTP/2 (h2) counts DATA frames under 256 bytes left unread against the whole
/// connection, so a flood of one-token frames towards a host that stops reading for a while
/// would close the connection for every session, where frames of 256 bytes and more only fill
/// the window and hold the provider back.
struct Queued {
    replies: mpsc::Receiver<Reply>,
    /// Replies encoded for the next frame.
    held: Vec<u8>,
    /// The last reply, still open to joining.
    open: Option<Reply>,
    wait: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    /// When the last frame left.
    sent: Option<std::time::Instant>,
}

impl Queued {
    fn new(replies: mpsc::Receiver<Reply>) -> Queued {
        Queued {
            replies,
            held: Vec::new(),
            open: None,
            wait: None,
            sent: None,
        }
    }

    /// Bytes a frame needs to leave without waiting.
    fn enough(&self) -> usize {
        match self.sent {
            Some(sent) if sent.elapsed() < SMALL_FRAME_WAIT => FLOWING_FRAME,
            _ => MIN_FRAME,
        }
    }

    fn size(&self) -> usize {
        self.held.len() + self.open.as_ref().map_or(0, frame_share)
    }

    /// Appends `reply`, encoded, to the frame being built.
    fn encode(&mut self, reply: &Reply) {
        let encoded = gateway::encode(reply).or_else(|err| {
            tracing::error!(%err, "cannot encode a gateway reply");
            gateway::encode(&Reply::Error(failure(
                FailureKind::BadRequest,
                format!("the answer cannot be sent: {err}"),
            )))
        });
        match encoded {
            Ok(bytes) => self.held.extend_from_slice(&bytes),
            Err(err) => tracing::error!(%err, "cannot encode a gateway failure"),
        }
    }

    fn push(&mut self, reply: Reply) {
        if let Some(done) = Reply::join(&mut self.open, reply) {
            self.encode(&done);
        }
    }

    fn take(&mut self) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.wait = None;
        self.sent = Some(std::time::Instant::now());
        if let Some(open) = self.open.take() {
            self.encode(&open);
        }
        let data = Bytes::from(std::mem::take(&mut self.held));
        std::task::Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

impl hyper::body::Body for Queued {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        use std::task::Poll;
        let this = &mut *self;
        while this.size() < BATCH_BYTES {
            match this.replies.poll_recv(cx) {
                Poll::Ready(Some(reply)) => this.push(reply),
                // The answer is complete (or dropped): send what is held, then end.
                Poll::Ready(None) if this.size() == 0 && this.open.is_none() => {
                    return Poll::Ready(None);
                }
                Poll::Ready(None) => return this.take(),
                Poll::Pending => break,
            }
        }
        if this.size() >= this.enough() {
            return this.take();
        }
        if this.held.is_empty() && this.open.is_none() {
            return Poll::Pending;
        }
        let wait = this
            .wait
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(SMALL_FRAME_WAIT)));
        match wait.as_mut().poll(cx) {
            Poll::Ready(()) => this.take(),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Answers request `id` on its own stream, until done, cancelled, or the stream ends.
async fn answer(
    shared: Arc<Shared>,
    mut sender: SendRequest<Body>,
    id: u64,
    request: Result<Request, Failure>,
    cancel: CancellationToken,
) {
    let (queue, queued) = mpsc::channel::<Reply>(ANSWER_QUEUE);
    let post = HttpRequest::post(format!("http://stub{REQUESTS_PATH}/{id}"))
        .version(http::Version::HTTP_2)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(BodyExt::boxed(Queued::new(queued)));
    let Ok(post) = post else { return };
    // On its own task: hyper's response future does not nest in this one's `select!`.
    let mut posted = tokio::spawn(sender.send_request(post));
    let replies = Replies { queue };
    let started = std::time::Instant::now();
    let ended = tokio::select! {
        () = cancel.cancelled() => Some("cancelled by the stub"),
        response = &mut posted => {
            if let Ok(Err(err)) = &response {
                tracing::debug!(id, %err, "answer stream failed");
            }
            Some("the stub closed the answer stream")
        }
        result = perform(&shared, request, &replies) => result.err().map(|Gone| "the stub stopped reading"),
    };
    drop(replies);
    match ended {
        Some(reason) => {
            // Resets the answer stream if it is still open.
            posted.abort();
            tracing::info!(id, elapsed = ?started.elapsed(), "request ended early: {reason}");
        }
        None => match tokio::time::timeout(Duration::from_secs(10), &mut posted).await {
            Ok(Ok(Ok(response))) if response.status().is_success() => {}
            Ok(Ok(Ok(response))) => {
                tracing::warn!(id, status = %response.status(), "the stub refused an answer");
            }
            Ok(Ok(Err(err))) => tracing::debug!(id, %err, "answer stream failed at its end"),
            Ok(Err(err)) => tracing::warn!(id, %err, "the answer stream's task failed"),
            Err(_) => {
                posted.abort();
                tracing::warn!(id, "the stub did not acknowledge an answer");
            }
        },
    }
}

async fn perform(
    shared: &Shared,
    request: Result<Request, Failure>,
    replies: &Replies,
) -> Result<(), Gone> {
    match request {
        Ok(Request::Model(request)) => call::model(shared, request, replies).await,
        Ok(Request::Setup) => setup::setup(shared, replies).await,
        Ok(Request::Fetch(request)) => setup::fetch(shared, request, replies).await,
        Err(failure) => replies.send(Reply::Error(failure)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Response;
    use http_body_util::{Full, StreamBody};
    use hyper::body::Incoming;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use protocol::gateway::ModelRequest;
    use protocol::handshake::Version;

    type Served = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

    /// A stand-in stub: its announce stream sends what the test queues on `announce`; each
    /// answer stream's replies go to `answers` as `(id, reply)`.
    async fn stub(
        announce: mpsc::Receiver<Bytes>,
        answers: mpsc::UnboundedSender<(u64, Reply)>,
    ) -> SendRequest<Body> {
        let announce = Arc::new(Mutex::new(Some(announce)));
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let service = hyper::service::service_fn(move |request: HttpRequest<Incoming>| {
            let announce = announce.clone();
            let answers = answers.clone();
            async move {
                let path = request.uri().path().to_owned();
                if path == REQUESTS_PATH {
                    let mut frames = announce
                        .lock()
                        .unwrap()
                        .take()
                        .expect("one announce stream");
                    let stream = futures_util::stream::poll_fn(move |cx| {
                        frames.poll_recv(cx).map(|f| f.map(|b| Ok(Frame::data(b))))
                    });
                    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/octet-stream"),
                    );
                    return Ok::<Response<Served>, hyper::Error>(response);
                }
                let id: u64 = path.rsplit('/').next().unwrap().parse().unwrap();
                let body = request.into_body().collect().await?.to_bytes();
                let mut decoder = Decoder::default();
                decoder.push(&body);
                while let Some(reply) = decoder.decode::<Reply>().unwrap() {
                    answers.send((id, reply)).unwrap();
                }
                Ok(Response::new(Full::new(Bytes::new()).boxed()))
            }
        });
        tokio::spawn(
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(theirs), service),
        );
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake::<_, Body>(TokioIo::new(ours))
            .await
            .unwrap();
        tokio::spawn(connection);
        sender
    }

    fn frame<T: serde::Serialize>(message: &T) -> Bytes {
        Bytes::from(gateway::encode(message).unwrap())
    }

    fn model(provider: &str) -> Request {
        Request::Model(ModelRequest {
            provider_id: provider.into(),
            model_id: "m".into(),
            system: Vec::new(),
            messages: Vec::new(),
            tools: Vec::new(),
            options: Default::default(),
        })
    }

    #[tokio::test]
    async fn an_unreadable_request_should_be_answered_and_the_stream_go_on() {
        let (announce, queued) = mpsc::channel(8);
        let (answers, mut answered) = mpsc::unbounded_channel();
        let sender = stub(queued, answers).await;
        let stop = CancellationToken::new();
        let served = tokio::spawn(Gateway::new(None).unwrap().serve(sender, stop.clone()));
        announce
            .send(frame(&Announce::Hello {
                version: GATEWAY_VERSION,
            }))
            .await
            .unwrap();
        // A request of a kind this build does not know (variant 99).
        let mut body = Vec::new();
        let config = bincode::config::standard();
        bincode::serde::encode_into_std_write((1u32, 5u64, 99u32), &mut body, config).unwrap();
        let mut unknown = (body.len() as u32).to_be_bytes().to_vec();
        unknown.extend(body);
        announce.send(Bytes::from(unknown)).await.unwrap();
        announce
            .send(frame(&Announce::Request {
                id: 6,
                request: model("nope"),
            }))
            .await
            .unwrap();
        let mut seen = HashMap::new();
        while seen.len() < 2 {
            let (id, reply) = answered.recv().await.unwrap();
            seen.insert(id, reply);
        }
        let Some(Reply::Error(bad)) = seen.get(&5) else {
            panic!("{seen:?}")
        };
        assert_eq!(bad.kind, FailureKind::BadRequest);
        let Some(Reply::Error(unknown)) = seen.get(&6) else {
            panic!("{seen:?}")
        };
        assert_eq!(unknown.kind, FailureKind::UnknownModel);
        assert!(
            unknown.message.contains("without the local OpenCode"),
            "{}",
            unknown.message
        );
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), served)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn another_major_version_should_be_refused() {
        let (announce, queued) = mpsc::channel(8);
        let (answers, mut answered) = mpsc::unbounded_channel();
        let sender = stub(queued, answers).await;
        let served = tokio::spawn(
            Gateway::new(None)
                .unwrap()
                .serve(sender, CancellationToken::new()),
        );
        let version = Version {
            major: GATEWAY_VERSION.major + 1,
            minor: 0,
        };
        announce
            .send(frame(&Announce::Hello { version }))
            .await
            .unwrap();
        // Nobody may read this one: the gateway has stopped.
        let _ignored = announce
            .send(frame(&Announce::Request {
                id: 1,
                request: model("x"),
            }))
            .await;
        tokio::time::timeout(Duration::from_secs(5), served)
            .await
            .unwrap()
            .unwrap();
        assert!(
            answered.try_recv().is_err(),
            "a request was answered across versions"
        );
    }
}
