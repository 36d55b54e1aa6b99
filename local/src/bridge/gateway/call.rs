//! One model call: resolve the model, send the provider's request, read its stream into
//! [`ModelEvent`]s, retry as OpenCode does (429, 5xx, overloaded: backoff honouring
//! `retry-after-ms` / `retry-after`, reported as [`ModelEvent::Retrying`]), and type every
//! failure (401, 404, context too long, network, malformed stream).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use protocol::gateway::{Failure, FailureKind, ModelEvent, ModelRequest, Reply};
use serde_json::Value;

use super::providers::{Resolved, Style};
use super::{Gone, Replies, Shared, anthropic, chat, failure, responses, sse};

/// Attempts after the first for retryable failures.
const MAX_RETRIES: u32 = 8;
/// Bytes of an error response kept.
const MAX_ERROR_BODY: usize = 16 << 10;
/// How long a provider may stay silent (before its answer starts, or within its stream)
/// before the call fails: reasoning models may think a long while before the first byte.
/// A stream's silence is checked once per period, so it is noticed after one to two periods.
const SILENCE_LIMIT: Duration = Duration::from_secs(600);

/// A provider's stream, read event by event.
pub(super) trait Dialect: Send {
    /// One server-sent event; resulting events go to `out`.
    fn event(&mut self, event: sse::Event, out: &mut Vec<ModelEvent>) -> Result<(), StreamError>;
    /// The stream ended.
    fn end(&mut self, out: &mut Vec<ModelEvent>) -> Result<(), StreamError>;
}

/// Why a stream stopped early.
#[derive(Debug)]
pub(super) enum StreamError {
    /// The provider reported an error inside the stream.
    Provider {
        /// Its message.
        message: String,
        /// Whether trying again may help (overloaded, rate limited).
        retryable: bool,
    },
    /// The stream is not what the style says.
    Malformed(String),
}

/// An error object inside a stream (`{"message", "type", "code"}`).
pub(super) fn provider_error(error: &Value) -> StreamError {
    let message = error["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| error.to_string());
    let kind = format!("{} {}", error["type"], error["code"]).to_lowercase();
    let retryable = [
        "overloaded",
        "rate_limit",
        "529",
        "429",
        "server_error",
        "500",
        "503",
    ]
    .iter()
    .any(|needle| kind.contains(needle));
    StreamError::Provider { message, retryable }
}

/// How one attempt ended.
enum Attempt {
    Done,
    Failed {
        failure: Failure,
        retry_after: Option<Duration>,
        /// Whether events already reached the stub (then it cannot be retried invisibly).
        emitted: bool,
    },
}

/// Performs a model call, answering on `replies`.
pub(super) async fn model(
    shared: &Shared,
    request: ModelRequest,
    replies: &Replies,
) -> Result<(), Gone> {
    let mut model = match shared
        .providers
        .resolve(&request.provider_id, &request.model_id)
        .await
    {
        Ok(model) => model,
        Err(failure) => return replies.send(Reply::Error(failure)).await,
    };
    replies
        .send(Reply::Model(ModelEvent::Started(model.info.clone())))
        .await?;
    let mut retries = 0;
    let mut reread = false;
    loop {
        let (failure, retry_after, emitted) =
            match attempt(shared, &model, &request, replies).await? {
                Attempt::Done => return replies.send(Reply::End).await,
                Attempt::Failed {
                    failure,
                    retry_after,
                    emitted,
                } => (failure, retry_after, emitted),
            };
        if failure.kind == FailureKind::Auth && !reread && !emitted {
            // The user may have changed the key since the catalog was read.
            reread = true;
            shared.providers.forget();
            if let Ok(fresh) = shared
                .providers
                .resolve(&request.provider_id, &request.model_id)
                .await
                && fresh.key != model.key
            {
                model = fresh;
                continue;
            }
        }
        // A laptop without network fails at once (retryable for the stub, which may try again
        // later); what the provider refused for now is retried here.
        if failure.retryable
            && failure.kind != FailureKind::Network
            && !emitted
            && retries < MAX_RETRIES
        {
            retries += 1;
            let delay = retry_after.unwrap_or_else(|| backoff(retries));
            let next_ms = SystemTime::now()
                .checked_add(delay)
                .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |at| at.as_millis() as u64);
            tracing::info!(
                retries,
                ?delay,
                "the provider asked to retry: {}",
                failure.message
            );
            replies
                .send(Reply::Model(ModelEvent::Retrying {
                    attempt: retries,
                    message: failure.message,
                    next_ms,
                }))
                .await?;
            tokio::time::sleep(delay).await;
            continue;
        }
        return replies.send(Reply::Error(failure)).await;
    }
}

/// OpenCode's backoff without a `retry-after`: 2 s doubling, at most 30 s.
fn backoff(attempt: u32) -> Duration {
    let ms = 2000u64.saturating_mul(1 << attempt.saturating_sub(1).min(10));
    Duration::from_millis(ms.min(30_000))
}

/// The URL without user info (never print credentials a base URL may carry).
fn printable(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            // Both only fail for URLs that cannot carry user info.
            let _ignored = parsed.set_username("");
            let _ignored = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

async fn attempt(
    shared: &Shared,
    model: &Resolved,
    request: &ModelRequest,
    replies: &Replies,
) -> Result<Attempt, Gone> {
    let (path, body, dialect): (&'static str, Value, Box<dyn Dialect>) = match model.style {
        Style::Chat => (
            "chat/completions",
            chat::body(request, model),
            Box::new(chat::Parser::default()),
        ),
        Style::Anthropic => (
            "messages",
            anthropic::body(request, model),
            Box::new(anthropic::Parser::default()),
        ),
        Style::Responses => (
            "responses",
            responses::body(request, model),
            Box::new(responses::Parser::default()),
        ),
    };
    let url = format!("{}/{path}", model.base_url);
    let headers = match headers(model, request) {
        Ok(headers) => headers,
        Err(message) => {
            return Ok(Attempt::Failed {
                failure: failure(FailureKind::BadRequest, message),
                retry_after: None,
                emitted: false,
            });
        }
    };
    let builder = shared.http.post(url.as_str()).headers(headers);
    let failed = |failure, retry_after| Attempt::Failed {
        failure,
        retry_after,
        emitted: false,
    };
    let body = match serde_json::to_vec(&body) {
        Ok(body) => body,
        Err(err) => {
            return Ok(failed(
                failure(
                    FailureKind::BadRequest,
                    format!("cannot encode the request: {err}"),
                ),
                None,
            ));
        }
    };
    let response = match tokio::time::timeout(SILENCE_LIMIT, builder.body(body).send()).await {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => return Ok(failed(network(&err, &url), None)),
        Err(_) => return Ok(failed(silent(&url), None)),
    };
    if !response.status().is_success() {
        let (failure, retry_after) = rejected(response, &url).await;
        return Ok(failed(failure, retry_after));
    }
    relay(response, dialect, replies, &url).await
}

/// Reads a provider's stream into the stub's answer.
async fn relay(
    mut response: reqwest::Response,
    mut dialect: Box<dyn Dialect>,
    replies: &Replies,
    url: &str,
) -> Result<Attempt, Gone> {
    let mut parser = sse::Parser::default();
    let mut events = Vec::new();
    let mut out = Vec::new();
    let mut emitted = false;
    // One timer for the whole stream, looked at once per period, rather than one per read:
    // a fast stream is a read per token, and re-arming a timer each time was a fifth of the
    // bridge's work.
    let watch = tokio::time::sleep(SILENCE_LIMIT / 2);
    tokio::pin!(watch);
    let mut heard = false;
    loop {
        let chunk = tokio::select! {
            biased;
            chunk = response.chunk() => chunk,
            () = &mut watch => {
                if !std::mem::take(&mut heard) {
                    return Ok(Attempt::Failed {
                        failure: silent(url),
                        retry_after: None,
                        emitted,
                    });
                }
                watch.as_mut().reset(tokio::time::Instant::now() + SILENCE_LIMIT / 2);
                continue;
            }
        };
        heard = true;
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(err) => {
                let mut failure = network(&err, url);
                failure.message = format!("the provider's stream broke: {}", failure.message);
                return Ok(Attempt::Failed {
                    failure,
                    retry_after: None,
                    emitted,
                });
            }
        };
        let step = match &chunk {
            Some(bytes) => parser
                .push(bytes, &mut events)
                .map_err(|err| StreamError::Malformed(err.to_string())),
            None => {
                parser.finish(&mut events);
                Ok(())
            }
        };
        let step = step.and_then(|()| {
            events
                .drain(..)
                .try_for_each(|event| dialect.event(event, &mut out))
        });
        let step = step.and_then(|()| match chunk {
            None => dialect.end(&mut out),
            Some(_) => Ok(()),
        });
        if !out.is_empty() {
            emitted = true;
            replies.send_all(out.drain(..).map(Reply::Model)).await?;
        }
        match step {
            Err(StreamError::Malformed(message)) => {
                let mut failure = failure(
                    FailureKind::Malformed,
                    format!("the provider's stream could not be read: {message}"),
                );
                failure.url = Some(printable(url));
                return Ok(Attempt::Failed {
                    failure,
                    retry_after: None,
                    emitted,
                });
            }
            Err(StreamError::Provider { message, retryable }) => {
                let mut failure = failure(FailureKind::Api, message);
                failure.retryable = retryable;
                failure.url = Some(printable(url));
                return Ok(Attempt::Failed {
                    failure,
                    retry_after: None,
                    emitted,
                });
            }
            Ok(()) if chunk.is_none() => return Ok(Attempt::Done),
            Ok(()) => {}
        }
    }
}

/// The headers of a provider request: content type, the credential as the style wants it,
/// OpenCode's session headers, then the provider's and model's own (which win).
fn headers(model: &Resolved, request: &ModelRequest) -> Result<HeaderMap, String> {
    let mut pairs: Vec<(&str, String)> = vec![
        ("content-type", "application/json".into()),
        ("accept", "text/event-stream".into()),
    ];
    if let Some(key) = &model.key {
        match model.style {
            Style::Anthropic => pairs.push(("x-api-key", key.0.clone())),
            Style::Chat | Style::Responses => {
                pairs.push(("authorization", format!("Bearer {}", key.0)));
            }
        }
    }
    if model.style == Style::Anthropic {
        pairs.push(("anthropic-version", "2023-06-01".into()));
    }
    if let Some(session) = &request.options.session_id {
        pairs.push(("x-session-affinity", session.clone()));
        pairs.push(("x-session-id", session.clone()));
    }
    pairs.extend(model.headers.iter().map(|(n, v)| (n.as_str(), v.clone())));
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name `{name}` in the provider's configuration"))?;
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            format!("invalid value for header `{name}` in the provider's configuration")
        })?;
        if matches!(name.as_str(), "authorization" | "x-api-key") {
            value.set_sensitive(true);
        }
        headers.insert(name, value);
    }
    Ok(headers)
}

/// The provider said nothing for [`SILENCE_LIMIT`].
fn silent(url: &str) -> Failure {
    let mut failure = failure(
        FailureKind::Network,
        format!(
            "the provider sent nothing for {} s; giving up on this attempt",
            SILENCE_LIMIT.as_secs()
        ),
    );
    failure.retryable = true;
    failure.url = Some(printable(url));
    failure
}

fn network(err: &reqwest::Error, url: &str) -> Failure {
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !chain.contains(&text) {
            if !chain.is_empty() {
                chain.push_str(": ");
            }
            chain.push_str(&text);
        }
        source = cause.source();
    }
    let mut failure = failure(
        FailureKind::Network,
        format!("cannot reach the provider from the laptop: {chain}"),
    );
    failure.retryable = true;
    failure.url = Some(printable(url));
    // The URL reqwest prints may carry user info.
    failure.message = failure.message.replace(url, &printable(url));
    failure
}

/// Phrases providers use when the conversation does not fit (as OpenCode recognises them).
const OVERFLOW: [&str; 12] = [
    "prompt is too long",
    "input is too long",
    "exceeds the context window",
    "maximum context length",
    "context_length_exceeded",
    "context length exceeded",
    "reduce the length of the messages",
    "exceeds the available context size",
    "greater than the context length",
    "context window exceeds limit",
    "exceeded model token limit",
    "maximum prompt length",
];

/// A non-2xx answer as a typed failure, with how long the provider asked us to wait.
async fn rejected(response: reqwest::Response, url: &str) -> (Failure, Option<Duration>) {
    let status = response.status();
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "set-cookie" | "cookie"))
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect();
    let retry_after = seconds(&headers, "retry-after-ms")
        .map(|ms| Duration::from_millis(ms as u64))
        .or_else(|| {
            seconds(&headers, "retry-after").map(|s| Duration::from_millis((s * 1000.0) as u64))
        });
    let body = read_capped(response).await;
    let json: Option<Value> = serde_json::from_str(&body).ok();
    let message = json
        .as_ref()
        .and_then(|json| {
            json["error"]["message"]
                .as_str()
                .or(json["message"].as_str())
                .or(json["error"].as_str())
        })
        .map(str::to_owned)
        .or_else(|| Some(body.trim().to_owned()).filter(|b| !b.is_empty()))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let lower = format!("{message} {body}").to_lowercase();
    let kind = match status.as_u16() {
        401 | 403 => FailureKind::Auth,
        404 => FailureKind::UnknownModel,
        400 | 413 if OVERFLOW.iter().any(|p| lower.contains(p)) => FailureKind::ContextOverflow,
        _ => FailureKind::Api,
    };
    let retryable =
        matches!(status.as_u16(), 408 | 409 | 429 | 500..=599) || lower.contains("overloaded");
    let failure = Failure {
        kind,
        message,
        status: Some(status.as_u16()),
        retryable,
        response_body: Some(body),
        response_headers: headers,
        url: Some(printable(url)),
    };
    (failure, retry_after)
}

/// A numeric header's value.
fn seconds(headers: &[(String, String)], name: &str) -> Option<f64> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
}

async fn read_capped(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_ERROR_BODY {
                body.truncate(MAX_ERROR_BODY);
                break;
            }
        }
    };
    // An error body that never ends must not hold the failure back.
    let _elapsed = tokio::time::timeout(Duration::from_secs(10), read).await;
    String::from_utf8_lossy(&body).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_should_follow_opencode() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(9), Duration::from_secs(30));
    }

    #[test]
    fn urls_should_lose_their_user_info() {
        assert_eq!(
            printable("https://u:p@h.example/v1"),
            "https://h.example/v1"
        );
    }
}
