//! The loopback bridge: an HTTP/1.1 listener on 127.0.0.1 for OpenCode, forwarding every request
//! as one HTTP/2 stream over the single SSH exec channel to the stub.
//!
//! ```text
//! OpenCode ──HTTP/1.1──▶ 127.0.0.1:PORT/<secret>/… ──h2 stream──▶ exec channel ──▶ stub --stdio
//! ```
//!
//! - **Guard.** Only requests whose path starts with the per-launch 256-bit secret are served
//!   (the prefix is stripped before forwarding); everything else gets 404, including requests
//!   with a foreign `Host` header (DNS rebinding). No CORS headers are ever sent.
//! - **Streaming.** Bodies flow both ways frame by frame: an SSE event is one h2 DATA frame and
//!   one HTTP/1.1 chunk.
//! - **WebSockets.** An HTTP/1.1 `Upgrade: websocket` becomes an RFC 8441 extended CONNECT
//!   stream; after both sides upgrade, bytes are copied unchanged.
//! - **Reconnects.** A supervisor keeps one upstream alive and reconnects with backoff when it
//!   drops; the listener (and so the URL) stays the same. Requests arriving while it reconnects
//!   wait briefly, then get 503 naming the last error. A request caught by a link that goes
//!   away is sent again on the next link when it provably never left, or when it is a GET (or
//!   another idempotent method) without a body; anything else gets 502 rather than running twice.
//! - **Links.** The supervisor gets its links through [`Connect`]: [`connector::Connector`]
//!   (SSH, the exec channel, the handshake) in the product, an in-process HTTP/2 server in the
//!   unit tests below, so the bridge's own logic is tested without sshd.
//!
//! - **Model gateway.** On every link the bridge also answers what the stub asks of the
//!   laptop (model calls with the user's credentials, web fetches, the user's setup) over
//!   streams it opens itself: see [`gateway`].

pub mod connector;
pub mod gateway;
#[cfg(test)]
mod mock;
mod opencode;
mod reconnect;
mod secret;
pub mod transport;
mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, header,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use connector::{Body, BoxError};
pub use gateway::Gateway;
use opencode::USER_LEVEL;
pub use opencode::{LocalOpenCode, StdioCalls};
pub use reconnect::{Connect, Link};
use reconnect::{Replay, State, supervise};
pub use secret::Secret;

/// A running bridge.
#[derive(Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

struct Inner {
    secret: Secret,
    port: u16,
    state: watch::Receiver<State>,
    /// How long a request waits for a reconnect before failing.
    wait_for_upstream: Duration,
    local: Option<LocalOpenCode>,
}

/// Options of a bridge.
#[derive(Debug)]
pub struct Options<C> {
    /// The secret path prefix.
    pub secret: Secret,
    /// How to (re)connect: a [`connector::Connector`] outside tests.
    pub connector: C,
    /// The local OpenCode server, when known.
    pub local: Option<LocalOpenCode>,
    /// How long requests wait for a reconnect before 503.
    pub wait_for_upstream: Duration,
}

/// Starts the supervisor (with an already connected upstream, or connecting in the background
/// when `first` is `None`) and serves `listener` until `shutdown` is cancelled.
pub async fn run<C: Connect>(
    listener: TcpListener,
    options: Options<C>,
    first: Option<Link>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let port = listener.local_addr()?.port();
    let initial = match &first {
        Some(link) => State::Up {
            generation: 1,
            sender: link.sender.clone(),
        },
        None => State::Connecting {
            attempt: 1,
            last_error: None,
        },
    };
    let (state_tx, state_rx) = watch::channel(initial);
    let Options {
        secret,
        connector,
        local,
        wait_for_upstream,
    } = options;
    let bridge = Bridge {
        inner: Arc::new(Inner {
            secret,
            port,
            state: state_rx,
            wait_for_upstream,
            local: local.clone(),
        }),
    };
    let gateway = match Gateway::new(local.clone()) {
        Ok(gateway) => Some(gateway),
        Err(err) => {
            tracing::error!(%err, "cannot set up the model gateway's HTTP client: model calls from the host are off");
            None
        }
    };
    let tracker = TaskTracker::new();
    tracker.spawn(supervise(
        connector,
        first,
        local,
        gateway,
        state_tx,
        shutdown.clone(),
    ));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(%err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if !peer.ip().is_loopback() {
                    continue;
                }
                let bridge = bridge.clone();
                let shutdown = shutdown.clone();
                tracker.spawn(async move { bridge.serve_client(stream, peer, shutdown).await });
            }
            () = shutdown.cancelled() => break,
        }
    }
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(2), tracker.wait())
        .await
        .is_err()
    {
        tracing::info!("some client connections were still open at shutdown");
    }
    Ok(())
}

const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
    header::HOST,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&listed) {
        headers.remove(name);
    }
}

fn error_response(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "name": "BridgeError", "data": { "message": message } });
    let mut response = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn not_found() -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(b"Not Found"))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

impl Bridge {
    async fn serve_client(
        self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        shutdown: CancellationToken,
    ) {
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%err, "set_nodelay failed");
        }
        let bridge = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let bridge = bridge.clone();
            async move { Ok::<_, std::convert::Infallible>(bridge.handle(req).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, %err, "client connection ended with an error");
                }
            }
            () = shutdown.cancelled() => {
                connection.as_mut().graceful_shutdown();
                // In-flight responses (SSE) may never end by themselves.
                let _elapsed = tokio::time::timeout(Duration::from_millis(500), connection).await;
            }
        }
    }

    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        let mut hosts = headers.get_all(header::HOST).iter();
        let (Some(host), None) = (hosts.next(), hosts.next()) else {
            // No Host (HTTP/1.0; the secret still guards) is fine, several are not.
            return headers.get(header::HOST).is_none();
        };
        let Ok(host) = host.to_str() else {
            return false;
        };
        let port = self.inner.port.to_string();
        let (name, host_port) = match host.rsplit_once(':') {
            Some((name, p)) if !name.ends_with(':') || name.starts_with('[') => (name, Some(p)),
            _ => (host, None),
        };
        matches!(name, "127.0.0.1" | "localhost" | "[::1]") && host_port.is_none_or(|p| p == port)
    }

    async fn handle(&self, mut req: Request<Incoming>) -> Response<Body> {
        if !self.host_allowed(req.headers()) {
            return not_found();
        }
        let Some(path) = self.inner.secret.strip(req.uri().path()) else {
            return not_found();
        };
        let path = if path.is_empty() { "/" } else { path };
        let path_and_query = match req.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };
        let Ok(uri) = Uri::builder()
            .scheme("http")
            .authority("stub")
            .path_and_query(path_and_query)
            .build()
        else {
            return error_response(StatusCode::BAD_REQUEST, "invalid request path");
        };
        if req.method() == Method::GET
            && USER_LEVEL.contains(&path)
            && let Some(local) = &self.inner.local
        {
            match local.get(path).await {
                Ok(response) => return response,
                // Fall back to the stub's own (schema-valid, minimal) answer.
                Err(err) => tracing::warn!(path, "local OpenCode did not answer: {err}"),
            }
        }
        let websocket = req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        if websocket {
            return self.websocket(req, uri).await;
        }
        *req.uri_mut() = uri;
        *req.version_mut() = http::Version::HTTP_2;
        strip_hop_by_hop(req.headers_mut());
        let replay = Replay::of(&req);
        let req = req.map(|body| body.map_err(|err| Box::new(err) as BoxError).boxed());
        let deadline = tokio::time::Instant::now() + self.inner.wait_for_upstream;
        match reconnect::forward(&self.inner.state, deadline, req, replay).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                parts.version = http::Version::HTTP_11;
                Response::from_parts(parts, body.map_err(|err| Box::new(err) as BoxError).boxed())
            }
            Err(response) => response,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mock::Mock;
    use super::*;

    /// A bridge on 127.0.0.1 in front of a [`Mock`] stub.
    struct Running {
        addr: SocketAddr,
        prefix: String,
        mock: Mock,
        shutdown: CancellationToken,
    }

    impl Drop for Running {
        fn drop(&mut self) {
            self.shutdown.cancel();
        }
    }

    async fn start(wait_for_upstream: Duration) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let secret = Secret::generate().unwrap();
        let prefix = format!("/{}", secret.expose());
        let mock = Mock::default();
        let shutdown = CancellationToken::new();
        let options = Options {
            secret,
            connector: mock.clone(),
            local: None,
            wait_for_upstream,
        };
        tokio::spawn(run(listener, options, None, shutdown.clone()));
        Running {
            addr,
            prefix,
            mock,
            shutdown,
        }
    }

    /// One request on a new HTTP/1.1 connection; the status and the body.
    async fn send(addr: SocketAddr, method: &str, path: &str, body: &'static str) -> (u16, String) {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, addr.to_string())
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn requests_should_reach_the_stub_without_the_secret_prefix() {
        let bridge = start(Duration::from_secs(10)).await;
        let path = format!("{}/session?directory=/tmp", bridge.prefix);
        let (status, body) = send(bridge.addr, "POST", &path, "hello").await;
        assert_eq!((status, body.as_str()), (200, "1 POST /session hello"));
        let (status, _) = send(bridge.addr, "GET", "/session", "").await;
        assert_eq!(status, 404);
    }

    /// Writes `head` as the start of a request on a new connection; the status line's code
    /// (`None` when the connection closes without an answer).
    async fn raw_status(addr: SocketAddr, head: &[u8]) -> Option<u16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(head).await.unwrap();
        stream
            .write_all(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        // A connection reset (the bridge's task panicked) counts as no answer.
        let _read = stream.read_to_end(&mut answer).await;
        let line = String::from_utf8_lossy(&answer);
        line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
    }

    #[tokio::test]
    async fn bad_paths_should_get_404_and_leave_the_bridge_serving() {
        let bridge = start(Duration::from_secs(10)).await;
        let near = &bridge.prefix[..bridge.prefix.len() - 1];
        let bad: Vec<(Vec<u8>, u16)> = vec![
            (format!("GET {near}é/global/health").into_bytes(), 404),
            (format!("GET {}é", bridge.prefix).into_bytes(), 404),
            (
                format!("GET {}%2Fglobal/health", bridge.prefix).into_bytes(),
                404,
            ),
            (format!("GET /%2F{}", &bridge.prefix[1..]).into_bytes(), 404),
            (format!("GET /%{}", &bridge.prefix[2..]).into_bytes(), 404),
            (format!("GET /{}", "x".repeat(8 << 10)).into_bytes(), 404),
            (
                format!("GET {}{}", bridge.prefix, "x".repeat(8 << 10)).into_bytes(),
                404,
            ),
            // Not UTF-8: hyper refuses the request line itself, before the bridge sees it.
            ([b"GET ".as_slice(), near.as_bytes(), &[0xff]].concat(), 400),
            ([b"GET ".as_slice(), near.as_bytes(), &[0xc3]].concat(), 400),
        ];
        for (head, expected) in &bad {
            let status = raw_status(bridge.addr, head).await;
            assert_eq!(
                status,
                Some(*expected),
                "{:.80}",
                String::from_utf8_lossy(head)
            );
        }
        let health = format!("{}/global/health", bridge.prefix);
        assert_eq!(send(bridge.addr, "GET", &health, "").await.0, 200);
    }

    #[tokio::test]
    async fn a_request_after_the_stub_was_killed_should_wait_for_the_reconnect() {
        let bridge = start(Duration::from_secs(10)).await;
        let health = format!("{}/global/health", bridge.prefix);
        assert_eq!(send(bridge.addr, "GET", &health, "").await.0, 200);
        for generation in 2..=6 {
            bridge.mock.kill();
            // Not sent before the stub died, so it must not fail: it waits for the new stub.
            let path = format!("{}/session", bridge.prefix);
            let (status, body) = send(bridge.addr, "POST", &path, "x").await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body, format!("{generation} POST /session x"));
        }
        assert_eq!(bridge.mock.generation(), 6);
    }

    #[tokio::test]
    async fn a_get_lost_with_the_stub_should_be_sent_again_but_a_post_should_not() {
        let bridge = start(Duration::from_secs(10)).await;
        let die = format!("{}/die", bridge.prefix);
        // The first stub reads the GET and dies: a GET may be repeated, on the next stub.
        let (status, body) = send(bridge.addr, "GET", &die, "").await;
        assert_eq!((status, body.as_str()), (200, "2 GET /die "));

        let bridge = start(Duration::from_secs(10)).await;
        let die = format!("{}/die", bridge.prefix);
        // A POST that reached a stub which then died may have had its effect: never twice.
        let (status, body) = send(bridge.addr, "POST", &die, "x").await;
        assert_eq!(status, 502, "{body}");
        assert!(body.contains("the host did not answer"), "{body}");
        // The bridge itself carries on with the next stub.
        let health = format!("{}/global/health", bridge.prefix);
        let (status, body) = send(bridge.addr, "GET", &health, "").await;
        assert_eq!((status, body.as_str()), (200, "2 GET /global/health "));
    }

    #[test]
    fn strip_hop_by_hop_should_remove_connection_listed_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-keep"));
    }
}
