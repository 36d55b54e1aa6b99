//! Small HTTP/1.1 client helpers for talking to the bridge like OpenCode does.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

/// One HTTP/1.1 connection.
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    authority: String,
}

impl Client {
    /// Connects to `authority` (`127.0.0.1:PORT`).
    pub async fn connect(authority: &str) -> Client {
        Client {
            sender: Self::open(authority).await,
            authority: authority.to_owned(),
        }
    }

    async fn open(authority: &str) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
        let stream = tokio::net::TcpStream::connect(authority)
            .await
            .expect("connect");
        stream.set_nodelay(true).unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = connection.with_upgrades().await;
        });
        sender
    }

    /// Sends a request with a body; returns the response with a streaming body.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> hyper::Response<Incoming> {
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.authority);
        if !body.is_empty() {
            builder = builder.header("content-type", "application/json");
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        // Servers close idle keep-alive connections (Bun after ~10 s): such a request never
        // reached the server, so open a new connection and send it there.
        if self.sender.is_closed() || self.sender.ready().await.is_err() {
            self.sender = Self::open(&self.authority).await;
        }
        let retry = request.clone();
        match self.sender.send_request(request).await {
            Ok(response) => response,
            Err(err) if err.is_closed() || err.is_canceled() || err.is_incomplete_message() => {
                self.sender = Self::open(&self.authority).await;
                self.sender.ready().await.unwrap();
                self.sender.send_request(retry).await.unwrap()
            }
            Err(err) => panic!("request failed: {err}"),
        }
    }

    /// GET returning status and whole body.
    pub async fn get(&mut self, path: &str) -> (u16, Bytes) {
        let response = self.send("GET", path, b"", &[]).await;
        let status = response.status().as_u16();
        (
            status,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    /// Request returning status and parsed JSON (Null for empty bodies).
    pub async fn json(
        &mut self,
        method: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(body).unwrap()
        };
        let response = self.send(method, path, &bytes, &[]).await;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
            })
        };
        (status, value)
    }
}

/// Reads the next chunk of a streaming body.
pub async fn next_chunk(body: &mut Incoming) -> Option<Bytes> {
    loop {
        let frame = body.frame().await?.ok()?;
        if let Ok(data) = frame.into_data() {
            return Some(data);
        }
    }
}

/// Subscribes to an SSE endpoint on a new connection and delivers each event's JSON `data` on
/// the returned channel (events whose data is not JSON are skipped). The stream ends when the
/// server ends it or the receiver is dropped.
pub async fn subscribe(
    authority: &str,
    path: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<serde_json::Value> {
    let mut client = Client::connect(authority).await;
    let response = client
        .send("GET", path, b"", &[("accept", "text/event-stream")])
        .await;
    assert_eq!(response.status(), 200, "subscribing to {path}");
    let mut body = response.into_body();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _client = client;
        let mut buffer = String::new();
        while let Some(chunk) = next_chunk(&mut body).await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                if let Ok(value) = serde_json::from_str(&data.join("\n"))
                    && tx.send(value).is_err()
                {
                    return;
                }
            }
        }
    });
    rx
}
