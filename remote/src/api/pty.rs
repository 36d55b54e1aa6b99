//! Terminals (`/pty…`, SPEC §6): open, list, resize, close, and the WebSocket that carries a
//! terminal's output and input (`GET /pty/:id/connect`, an RFC 8441 extended CONNECT here).
//!
//! Permission-first: a terminal is a shell with the user's full rights, so opening one asks
//! (`permission.asked`, once / always / reject) unless the workspace approved terminals with
//! `always` before.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Response;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use crate::agent::rules::{Action, Rule};
use crate::app::App;
use crate::error::ApiError;
use crate::http::{Body, Req, full, ok};
use crate::opencode::permission::PermissionRequest;
use crate::policy::permissions::{Answer, Reply};
use crate::session::ids::{self, Order};
use crate::session::limits;
use crate::terminal::{Attachment, Create, TICKET_TTL, TerminalError};

/// The permission a terminal is asked and approved under.
const PERMISSION: &str = "terminal";
/// Largest input message a client may send (a paste); larger ones close the connection.
const MAX_INPUT: usize = 1 << 20;
/// Replayed output is sent in text frames of at most this many bytes (as OpenCode: 64 Ki).
const REPLAY_CHUNK: usize = 64 << 10;
/// Arguments and environment variables `POST /pty` accepts at most.
const MAX_ITEMS: usize = 256;

impl From<TerminalError> for ApiError {
    fn from(err: TerminalError) -> ApiError {
        match err {
            TerminalError::NotFound(id) => ApiError::PtyNotFound(id),
            TerminalError::TooMany => ApiError::BadRequest(err.to_string()),
            TerminalError::Spawn { .. } => ApiError::BadRequest(err.to_string()),
        }
    }
}

/// `GET /pty/shells`
pub async fn shells(_req: Req) -> Result<Response<Body>, ApiError> {
    #[derive(Serialize)]
    struct Shell {
        path: String,
        name: String,
        acceptable: bool,
    }
    let shells = tokio::task::spawn_blocking(crate::terminal::spawn::shells)
        .await
        .map_err(ApiError::internal)?;
    let shells: Vec<Shell> = shells
        .into_iter()
        .map(|(path, name, acceptable)| Shell {
            path,
            name,
            acceptable,
        })
        .collect();
    ok(&shells)
}

/// `GET /pty`
pub async fn list(req: Req) -> Result<Response<Body>, ApiError> {
    ok(&req.app.terminals().list())
}

/// `GET /pty/:id`
pub async fn get(req: Req) -> Result<Response<Body>, ApiError> {
    ok(&req.app.terminals().get(req.param(0))?.info())
}

/// `POST /pty {command?, args?, cwd?, title?, env?}`
pub async fn create(mut req: Req) -> Result<Response<Body>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        command: Option<String>,
        args: Option<Vec<String>>,
        cwd: Option<String>,
        title: Option<String>,
        env: Option<BTreeMap<String, String>>,
    }
    let body: Body = req.json().await?;
    let args = body.args.unwrap_or_default();
    let env = body.env.unwrap_or_default();
    if args.len() > MAX_ITEMS || env.len() > MAX_ITEMS {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_ITEMS} `args` and {MAX_ITEMS} `env` entries"
        )));
    }
    if let Some(title) = &body.title {
        limits::text("title", title, limits::MAX_TITLE)?;
    }
    if env.keys().any(|k| k.is_empty() || k.contains(['=', '\0'])) {
        return Err(ApiError::BadRequest(
            "`env` names must be non-empty and contain no `=`".into(),
        ));
    }
    let directory = req.app.config().directory.clone();
    let cwd = match body.cwd.filter(|c| !c.is_empty()) {
        Some(cwd) => {
            let cwd = directory.join(cwd);
            if !cwd.is_dir() {
                return Err(ApiError::BadRequest(format!(
                    "`cwd` {} is not a directory on the host",
                    cwd.display()
                )));
            }
            cwd
        }
        None => directory,
    };
    let shown = match &body.command {
        Some(command) if !command.is_empty() => std::iter::once(command.as_str())
            .chain(args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => "login shell".to_owned(),
    };
    ask(&req.app, &shown, &cwd).await?;
    let info = req.app.terminals().create(Create {
        command: body.command,
        args,
        cwd: Some(cwd),
        title: body.title,
        env,
    })?;
    ok(&info)
}

/// `PUT /pty/:id {title?, size?: {rows, cols}}`
pub async fn update(mut req: Req) -> Result<Response<Body>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Size {
        rows: u16,
        cols: u16,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        title: Option<String>,
        size: Option<Size>,
    }
    let body: Body = req.json().await?;
    if let Some(title) = &body.title {
        limits::text("title", title, limits::MAX_TITLE)?;
    }
    let size = match body.size {
        Some(Size { rows, cols }) if rows == 0 || cols == 0 => {
            return Err(ApiError::BadRequest(
                "`size.rows` and `size.cols` must be positive".into(),
            ));
        }
        Some(Size { rows, cols }) => Some((rows, cols)),
        None => None,
    };
    ok(&req.app.terminals().update(req.param(0), body.title, size)?)
}

/// `DELETE /pty/:id`
pub async fn remove(req: Req) -> Result<Response<Body>, ApiError> {
    req.app.terminals().remove(req.param(0))?;
    ok(&true)
}

/// `POST /pty/:id/connect-token`: needs `x-opencode-ticket: 1` and a local (or no) origin,
/// as OpenCode; the ticket is single-use and valid for a minute.
pub async fn connect_token(req: Req) -> Result<Response<Body>, ApiError> {
    let headers = &req.head.headers;
    let marked = headers
        .get("x-opencode-ticket")
        .is_some_and(|v| v.as_bytes() == b"1");
    let origin_ok = headers
        .get(http::header::ORIGIN)
        .is_none_or(|origin| local_origin(origin.to_str().unwrap_or("")));
    if !marked || !origin_ok {
        return Err(ApiError::PtyForbidden(
            "Invalid PTY connect token request".into(),
        ));
    }
    #[derive(Serialize)]
    struct Token {
        ticket: String,
        expires_in: u64,
    }
    let ticket = req.app.terminals().issue_ticket(req.param(0))?;
    ok(&Token {
        ticket,
        expires_in: TICKET_TTL.as_secs(),
    })
}

/// Origins of OpenCode's own clients on this machine: loopback web UIs and the desktop app.
fn local_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    matches!(scheme, "http" | "https" | "tauri" | "oc")
        && matches!(
            host,
            "localhost" | "127.0.0.1" | "[::1]" | "tauri.localhost"
        )
}

/// `GET /pty/:id/connect?cursor=N&ticket=…` (a WebSocket; here an extended CONNECT stream).
/// Text frames out are output; a binary frame `0x00` + `{"cursor":N}` follows the replay;
/// every client frame is input.
pub async fn connect(req: Req) -> Result<Response<Body>, ApiError> {
    req.require_websocket()?;
    let id = req.param(0).to_owned();
    let terminals = req.app.terminals().clone();
    if terminals.get(&id).is_err() {
        return Ok(status(http::StatusCode::NOT_FOUND));
    }
    // As OpenCode: a cursor that is not a safe integer ≥ -1 counts as none.
    let cursor = req
        .query
        .get("cursor")
        .and_then(|c| c.parse::<i64>().ok())
        .filter(|c| *c >= -1 && *c < (1 << 53));
    if let Some(ticket) = req.query.get("ticket")
        && !terminals.consume_ticket(ticket, &id)
    {
        return Ok(status(http::StatusCode::FORBIDDEN));
    }
    let attachment = terminals.attach(&id, cursor)?;
    let app = req.app.clone();
    let mut request = req.into_request();
    let upgrade = hyper::upgrade::on(&mut request);
    app.clone().spawn(async move {
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(err) => {
                tracing::debug!(%err, "terminal websocket upgrade failed");
                return;
            }
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_INPUT))
            .max_frame_size(Some(MAX_INPUT));
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        serve_client(ws, attachment, app).await;
    });
    Ok(Response::new(full(Bytes::new())))
}

fn status(code: http::StatusCode) -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = code;
    response
}

async fn serve_client<S>(mut ws: WebSocketStream<S>, attachment: Attachment, app: App)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Attachment {
        replay,
        cursor,
        mut live,
        mut ended,
        term,
    } = attachment;
    for chunk in chunks(&replay, REPLAY_CHUNK) {
        if ws.send(Message::text(chunk)).await.is_err() {
            return;
        }
    }
    let mut meta = vec![0u8];
    meta.extend_from_slice(format!("{{\"cursor\":{cursor}}}").as_bytes());
    if ws.send(Message::binary(meta)).await.is_err() {
        return;
    }
    let close = |code: CloseCode, reason: &'static str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    };
    loop {
        tokio::select! {
            output = live.recv() => match output {
                Ok(text) => {
                    if ws.send(Message::text(text.as_ref())).await.is_err() {
                        return;
                    }
                }
                // Too far behind: the client reconnects with its cursor and catches up from
                // the scrollback.
                Err(RecvError::Lagged(_)) => {
                    let _ = ws.send(close(CloseCode::Again, "too slow; reconnect")).await;
                    return;
                }
                Err(RecvError::Closed) => break,
            },
            changed = ended.changed() => {
                if changed.is_err() || *ended.borrow() {
                    // Output queued before the end still goes out.
                    while let Ok(text) = live.try_recv() {
                        if ws.send(Message::text(text.as_ref())).await.is_err() {
                            return;
                        }
                    }
                    break;
                }
            }
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    if term.write(text.as_bytes()).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Binary(bytes))) => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    if term.write(text.as_bytes()).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            () = app.shutdown().cancelled() => {
                let _ = ws.send(close(CloseCode::Away, "host connection closing")).await;
                return;
            }
        }
    }
    let _ = ws.send(close(CloseCode::Normal, "")).await;
    // Let the close handshake finish (briefly).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// `text` in pieces of at most about `max` bytes, split at character boundaries.
fn chunks(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    out
}

/// Asks the user before a terminal opens, unless terminals were approved with `always`.
async fn ask(app: &App, command: &str, cwd: &std::path::Path) -> Result<(), ApiError> {
    let approved = app.agent().approved();
    let allowed = |rules: &[Rule]| {
        rules
            .iter()
            .any(|r| r.permission == PERMISSION && r.action == Action::Allow)
    };
    if allowed(&approved.rules()) {
        return Ok(());
    }
    // OpenCode files every request under a session; a terminal belongs to none, so it goes
    // to the workspace's newest session (where the user is most likely looking).
    let store = app.sessions().store().await?;
    let session_id = store
        .list()
        .first()
        .map_or_else(|| ids::new("ses", Order::Descending), |s| s.id.clone());
    let mut metadata = serde_json::Map::new();
    metadata.insert("command".into(), command.into());
    metadata.insert("cwd".into(), cwd.to_string_lossy().as_ref().into());
    metadata.insert(
        "description".into(),
        "Open a terminal on the host (a shell with your full rights there)".into(),
    );
    let request = PermissionRequest {
        id: String::new(),
        session_id,
        permission: PERMISSION.into(),
        patterns: vec![command.to_owned()],
        metadata,
        always: vec!["*".into()],
        tool: None,
    };
    let policy = app.policy();
    let (id, answer) = policy.permissions().ask_rule(policy.bus(), request);
    // If the caller goes away before the user answers, the request is withdrawn.
    let withdraw = Withdraw {
        app: app.clone(),
        id: Some(id),
    };
    let answer = tokio::select! {
        answer = answer => answer,
        () = app.shutdown().cancelled() => {
            return Err(ApiError::PtyForbidden("the host connection is closing".into()));
        }
    };
    drop(withdraw.disarm());
    match answer {
        Ok(Answer {
            reply: Reply::Always,
            ..
        }) => {
            let approved = app.agent().approved();
            let rule = Rule {
                permission: PERMISSION.into(),
                pattern: "*".into(),
                action: Action::Allow,
            };
            tokio::task::spawn_blocking(move || approved.add(vec![rule]))
                .await
                .map_err(ApiError::internal)?
                .map_err(ApiError::internal)?;
            Ok(())
        }
        Ok(Answer {
            reply: Reply::Once, ..
        }) => Ok(()),
        Ok(Answer { message, .. }) => {
            Err(ApiError::PtyForbidden(message.unwrap_or_else(|| {
                "the user declined to open a terminal on this host".to_owned()
            })))
        }
        Err(_) => Err(ApiError::PtyForbidden(
            "the terminal request was withdrawn".into(),
        )),
    }
}

/// Rejects a pending request when dropped armed (the caller went away).
struct Withdraw {
    app: App,
    id: Option<String>,
}

impl Withdraw {
    fn disarm(mut self) -> Self {
        self.id = None;
        self
    }
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let policy = self.app.policy();
            let _ = policy.permissions().reply(
                policy.bus(),
                &id,
                Answer {
                    reply: Reply::Reject,
                    message: None,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_should_split_at_character_boundaries() {
        let text = "aé".repeat(5);
        let parts = chunks(&text, 2);
        assert!(parts.iter().all(|p| p.len() <= 3));
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn local_origin_should_accept_loopback_and_the_desktop_app_only() {
        assert!(local_origin("http://127.0.0.1:4096"));
        assert!(local_origin("http://localhost:3000"));
        assert!(local_origin("tauri://localhost"));
        assert!(!local_origin("https://evil.example"));
        assert!(!local_origin("http://127.0.0.1.evil.example"));
        assert!(!local_origin("null"));
    }
}
