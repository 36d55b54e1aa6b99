//! Server-sent events: encoding, and responses whose events reach the client one by one (each
//! [`Sender::send`] is one DATA frame; the bridge forwards frames as they come).

use bytes::Bytes;
use http::{Response, header};

pub use crate::http::Sender;
use crate::http::{Body, streaming};

/// Encodes one event. `data` may span lines; each line gets its own `data:` field.
pub fn encode(event: Option<&str>, id: Option<&str>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 16);
    if let Some(event) = event.filter(|e| !e.contains(['\r', '\n'])) {
        out.push_str("event: ");
        out.push_str(event);
        out.push('\n');
    }
    if let Some(id) = id.filter(|i| !i.contains(['\r', '\n', '\0'])) {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// Creates an SSE response and the sender feeding it. `capacity` bounds the queued events per
/// client.
pub fn response(capacity: usize) -> (Sender, Response<Body>) {
    let (tx, mut response) = streaming(capacity, "text/event-stream");
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache, no-transform"),
    );
    headers.insert("x-accel-buffering", header::HeaderValue::from_static("no"));
    (tx, response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn encode_should_split_lines_and_drop_unsafe_fields() {
        assert_eq!(
            encode(None, None, "{\"a\":1}"),
            Bytes::from_static(b"data: {\"a\":1}\n\n")
        );
        assert_eq!(
            encode(Some("msg"), Some("7"), "a\nb\r\nc"),
            Bytes::from_static(b"event: msg\nid: 7\ndata: a\ndata: b\ndata: c\n\n")
        );
        assert_eq!(
            encode(Some("x\ny"), Some("1\n2"), "d"),
            Bytes::from_static(b"data: d\n\n")
        );
    }

    #[tokio::test]
    async fn response_should_stream_each_event_as_a_frame_and_end_with_senders() {
        let (tx, response) = response(4);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        let mut body = response.into_body();
        assert!(tx.send(encode(None, None, "1")).await);
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(
            frame.into_data().unwrap(),
            Bytes::from_static(b"data: 1\n\n")
        );
        drop(tx);
        assert!(body.frame().await.is_none());
    }
}
