//! `webfetch`: a page fetched by the laptop (the host needs no network, see
//! [`crate::gateway`]), size- and time-capped, handed to the model as Markdown (default),
//! plain text or the raw HTML.

use protocol::gateway::{FetchRequest, Reply, Request};

use crate::tools::html::{self, Style};

use super::{Ctx, Done, Object, opt_text, text_arg};

/// Largest page read.
const MAX_BYTES: u64 = 5 << 20;
/// Default and longest wait, in seconds.
const DEFAULT_TIMEOUT: f64 = 30.0;
const MAX_TIMEOUT: f64 = 120.0;

/// `webfetch`
pub async fn fetch(ctx: &Ctx) -> Done {
    match fetch_inner(ctx).await {
        Ok(done) | Err(done) => done,
    }
}

async fn fetch_inner(ctx: &Ctx) -> Result<Done, Done> {
    let url = text_arg(&ctx.input, "url")?.to_owned();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Done::error("URL must start with http:// or https://"));
    }
    let format = opt_text(&ctx.input, "format")?
        .unwrap_or("markdown")
        .to_owned();
    let accept = match format.as_str() {
        "markdown" => {
            "text/markdown;q=1.0, text/x-markdown;q=0.9, text/plain;q=0.8, text/html;q=0.7, */*;q=0.1"
        }
        "text" => "text/plain;q=1.0, text/markdown;q=0.9, text/html;q=0.8, */*;q=0.1",
        "html" => {
            "text/html;q=1.0, application/xhtml+xml;q=0.9, text/plain;q=0.8, text/markdown;q=0.7, */*;q=0.1"
        }
        other => {
            return Err(Done::error(format!(
                "The format argument must be text, markdown or html, not {other}."
            )));
        }
    };
    let seconds = ctx
        .input
        .get("timeout")
        .and_then(serde_json::Value::as_f64)
        .filter(|s| *s > 0.0)
        .unwrap_or(DEFAULT_TIMEOUT)
        .min(MAX_TIMEOUT);
    let request = Request::Fetch(FetchRequest {
        url: url.clone(),
        accept: accept.to_owned(),
        timeout_ms: (seconds * 1000.0) as u64,
        max_bytes: MAX_BYTES,
    });
    let mut answer = ctx
        .agent
        .gateway
        .request(request)
        .await
        .map_err(|err| Done::error(format!("cannot fetch {url}: {err}")))?;
    let (mut status, mut content_type, mut body) = (0u16, String::new(), Vec::new());
    loop {
        let reply = tokio::select! {
            () = ctx.cancel.cancelled() => return Err(Done::Failed {
                error: super::ABORTED.into(),
                rejected: false,
                aborted: true,
            }),
            reply = answer.next() => reply,
        };
        match reply {
            Some(Reply::Head {
                status: s,
                content_type: c,
            }) => (status, content_type) = (s, c),
            Some(Reply::Data(bytes)) => body.extend_from_slice(&bytes),
            Some(Reply::End) => break,
            Some(Reply::Error(failure)) => return Err(Done::error(failure.message)),
            Some(_) => {}
            None => {
                return Err(Done::error(format!(
                    "the connection to the laptop ended while fetching {url}"
                )));
            }
        }
    }
    if !(200..300).contains(&status) {
        return Err(Done::error(format!(
            "Request failed with status code: {status}"
        )));
    }
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime.starts_with("image/") && mime != "image/svg+xml" {
        return Err(Done::error(format!(
            "{url} is an image ({mime}); webfetch on hosts returns text only"
        )));
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let is_html = mime.contains("html");
    let output = match (format.as_str(), is_html) {
        ("markdown", true) => html::convert(&text, Style::Markdown),
        ("text", true) => html::convert(&text, Style::Text),
        _ => text,
    };
    Ok(Done::Completed {
        output,
        title: format!("{url} ({content_type})"),
        metadata: Object::new(),
    })
}
