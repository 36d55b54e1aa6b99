//! WebSockets: an HTTP/1.1 `Upgrade: websocket` becomes an RFC 8441 extended CONNECT stream to
//! the stub; after both sides upgrade, bytes are copied unchanged.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::connector::{Body, BoxError};
use super::{Bridge, HOP_BY_HOP, error_response, reconnect, strip_hop_by_hop};

impl Bridge {
    pub(super) async fn websocket(&self, mut req: Request<Incoming>, uri: Uri) -> Response<Body> {
        let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
            return error_response(
                StatusCode::BAD_REQUEST,
                "websocket upgrade without Sec-WebSocket-Key",
            );
        };
        let client_upgrade = hyper::upgrade::on(&mut req);
        let mut forward = Request::builder()
            .method(Method::CONNECT)
            .uri(uri)
            .version(http::Version::HTTP_2);
        for (name, value) in req.headers() {
            let name_str = name.as_str();
            // RFC 8441 drops the key/accept dance and h2 forbids hop-by-hop headers; the
            // permessage-deflate extension is not offered (bytes are relayed unchanged).
            if name_str.starts_with("sec-websocket-key")
                || name_str == "sec-websocket-extensions"
                || HOP_BY_HOP.contains(name)
            {
                continue;
            }
            forward = forward.header(name, value);
        }
        let Ok(mut forward) = forward.body(
            http_body_util::Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed(),
        ) else {
            return error_response(StatusCode::BAD_REQUEST, "invalid websocket request");
        };
        forward
            .extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        let deadline = tokio::time::Instant::now() + self.inner.wait_for_upstream;
        let mut response =
            match reconnect::forward(&self.inner.state, deadline, forward, None).await {
                Ok(response) => response,
                Err(response) => return response,
            };
        if response.status() != StatusCode::OK {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            parts.version = http::Version::HTTP_11;
            return Response::from_parts(
                parts,
                body.map_err(|err| Box::new(err) as BoxError).boxed(),
            );
        }
        let stub_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, stub_upgrade) {
                Ok((client, stub)) => {
                    let mut client = TokioIo::new(client);
                    let mut stub = TokioIo::new(stub);
                    if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut stub).await {
                        tracing::debug!(%err, "websocket relay ended");
                    }
                }
                Err(err) => tracing::debug!(%err, "websocket upgrade failed"),
            }
        });
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let mut upgraded = Response::new(
            http_body_util::Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed(),
        );
        *upgraded.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = upgraded.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert("sec-websocket-accept", accept);
        }
        if let Some(protocol) = response.headers().get("sec-websocket-protocol") {
            headers.insert("sec-websocket-protocol", protocol.clone());
        }
        upgraded
    }
}
