//! An in-process stand-in for the stub, for testing the bridge without sshd: each link is a
//! fresh HTTP/2 server on a `tokio::io::duplex` pipe that answers every request with
//! `<generation> <method> <path> <body>`, and [`Mock::kill`] ends the current one as a killed
//! stub would (its end of the pipe closes). On the first link, `/die` reads the request and
//! then dies without answering.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use super::connector::Body;
use super::{Connect, Link};

/// The stand-in; clones share the same servers.
#[derive(Debug, Clone, Default)]
pub(super) struct Mock(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    generation: AtomicU32,
    server: Mutex<Option<AbortHandle>>,
}

impl Mock {
    /// How many links were made so far.
    pub(super) fn generation(&self) -> u32 {
        self.0.generation.load(Ordering::SeqCst)
    }

    /// Ends the current server, as `kill -9` of the stub does.
    pub(super) fn kill(&self) {
        if let Some(server) = self.0.server.lock().unwrap().take() {
            server.abort();
        }
    }
}

async fn answer(
    mock: Mock,
    generation: u32,
    request: Request<Incoming>,
) -> hyper::Result<Response<Body>> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let body = request.into_body().collect().await?.to_bytes();
    if generation == 1 && path == "/die" {
        mock.kill();
        std::future::pending::<()>().await;
    }
    let text = format!(
        "{generation} {method} {path} {}",
        String::from_utf8_lossy(&body)
    );
    Ok(Response::new(
        Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed(),
    ))
}

impl Connect for Mock {
    async fn link(&self, _progress: &mut (dyn FnMut(&str) + Send)) -> Result<Link, String> {
        let generation = self.0.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let (ours, theirs) = tokio::io::duplex(64 << 10);
        let mock = self.clone();
        let server = tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                answer(mock.clone(), generation, request)
            });
            let served = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(theirs), service)
                .await;
            if let Err(err) = served {
                tracing::debug!(%err, "mock stub connection ended");
            }
        });
        *self.0.server.lock().unwrap() = Some(server.abort_handle());
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake::<_, Body>(TokioIo::new(ours))
            .await
            .map_err(|err| err.to_string())?;
        let (closed_tx, closed) = oneshot::channel();
        tokio::spawn(async move {
            let reason = match connection.await {
                Ok(()) => "closed".to_owned(),
                Err(err) => err.to_string(),
            };
            // Nobody may wait for it any more.
            let _ignored = closed_tx.send(reason);
        });
        Ok(Link {
            sender,
            closed,
            close: Box::pin(async {}),
        })
    }
}
