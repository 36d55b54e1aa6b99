//! OpenCode's remote-workspace API (SPEC §6, §9 (i)-(v)): event streams, sync history,
//! sessions, `!shell`, permissions, and the GETs the TUI makes at start-up.

use std::collections::HashMap;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::agent::shell::{self, ShellRequest};
use crate::app::App;
use crate::error::ApiError;
use crate::http::{Body, json_response, read_json, sse};
use crate::policy::permissions::{Answer, Reply};
use crate::session::bus::Bus;
use crate::session::info::{self as sessions, CreateSession, UpdateSession};

/// Interval of `server.heartbeat` events (as OpenCode's own server).
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Handles OpenCode routes; `Ok(None)` when the path is not one of them.
pub async fn route(app: &App, req: Request<Incoming>) -> Result<Option<Response<Body>>, ApiError> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let response = match (&method, segments.as_slice()) {
        (&Method::GET, ["global", "event"]) => global_event(app, true),
        (&Method::GET, ["event"]) => global_event(app, false),
        (&Method::POST, ["sync", "history"]) => history(app, req).await?,
        (&Method::POST, ["sync", "replay" | "steal"]) => {
            return Err(ApiError::NotImplemented(
                "moving (warping) sessions between this machine and a remote workspace is not supported by opencode-remote yet".into(),
            ));
        }
        (&Method::GET, ["experimental", "session"]) => {
            experimental_sessions(app, req.uri().query().unwrap_or("")).await?
        }
        (&Method::GET, ["session", "status"]) => {
            json_response(StatusCode::OK, &app.runs().status())
        }
        (&Method::GET, ["session"]) => json_response(StatusCode::OK, &app.store().await?.list()),
        (&Method::POST, ["session"]) => create_session(app, req).await?,
        (&Method::GET, ["session", id]) => {
            let info = app
                .store()
                .await?
                .info(id)
                .ok_or_else(|| not_found_session(id))?;
            json_response(StatusCode::OK, &info)
        }
        (&Method::PATCH, ["session", id]) => update_session(app, id, req).await?,
        (&Method::DELETE, ["session", id]) => delete_session(app, id).await?,
        (&Method::POST, ["session", id, "shell"]) => {
            let request: ShellRequest = read_json(req.into_body()).await?;
            // The command runs to completion (and its events are logged) even when the HTTP
            // request goes away; only an abort stops it.
            let task = {
                let app = app.clone();
                let id = (*id).to_owned();
                tokio::spawn(async move { shell::run(&app, &id, request).await })
            };
            let outcome = task.await.map_err(ApiError::internal)??;
            let mut response = json_response(
                StatusCode::OK,
                &json!({ "info": outcome.info, "parts": [outcome.part] }),
            );
            fence(&mut response, id, outcome.last_seq as i64);
            response
        }
        (&Method::POST, ["session", id, "abort"]) => {
            let store = app.store().await?;
            // Abort first, so a command waiting for permission ends as aborted; the reject
            // then closes the prompt (permission.replied) in OpenCode.
            app.runs().abort(id);
            app.permissions().reject_session(store.bus(), id);
            json_response(StatusCode::OK, &true)
        }
        (
            &Method::POST,
            [
                "session",
                _,
                "message" | "prompt_async" | "command" | "summarize" | "init" | "revert"
                | "unrevert" | "fork" | "share",
            ],
        ) => {
            return Err(ApiError::NotImplemented(
                "agent prompts and session commands do not run on opencode-remote hosts yet; use !shell commands".into(),
            ));
        }
        (_, ["pty", ..]) if method != Method::GET || segments.len() > 1 => {
            return Err(ApiError::NotImplemented(
                "terminals on opencode-remote hosts are not supported yet; use !shell commands"
                    .into(),
            ));
        }
        (&Method::POST, ["session", _, "permissions", permission_id]) => {
            #[derive(Deserialize)]
            struct Legacy {
                response: String,
            }
            let body: Legacy = read_json(req.into_body()).await?;
            reply_permission(app, permission_id, &body.response, None).await?
        }
        (&Method::GET, ["permission"]) => json_response(StatusCode::OK, &app.permissions().list()),
        (&Method::POST, ["permission", permission_id, "reply"]) => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct ReplyBody {
                reply: String,
                message: Option<String>,
            }
            let body: ReplyBody = read_json(req.into_body()).await?;
            reply_permission(app, permission_id, &body.reply, body.message).await?
        }
        (&Method::GET, segments) => match bootstrap(app, segments).await? {
            Some(value) => json_response(StatusCode::OK, &value),
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    Ok(Some(response))
}

fn not_found_session(id: &str) -> ApiError {
    ApiError::NotFound(format!("Session not found: {id}"))
}

/// Sets `x-opencode-sync: {"<session>": seq}` so OpenCode holds the response until its
/// replica caught up (read-your-writes).
fn fence(response: &mut Response<Body>, session_id: &str, seq: i64) {
    let value = json!({ session_id: seq }).to_string();
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert("x-opencode-sync", value);
    }
}

fn global_event(app: &App, global: bool) -> Response<Body> {
    let (tx, response) = sse::response(256);
    let mut rx = app.bus().subscribe();
    let shutdown = app.shutdown().clone();
    let frame = move |payload: Value| {
        if global {
            Bus::bare(&payload)
        } else {
            sse::encode(None, None, &payload.to_string())
        }
    };
    tokio::spawn(async move {
        let connected = json!({ "id": crate::session::ids::new("evt", crate::session::ids::Order::Ascending), "type": "server.connected", "properties": {} });
        if !tx.send(frame(connected)).await {
            return;
        }
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        loop {
            tokio::select! {
                received = rx.recv() => match received {
                    Ok(published) => {
                        let bytes = if global { published.global.clone() } else { published.instance.clone() };
                        if bytes.is_empty() {
                            continue;
                        }
                        if !tx.send(bytes).await {
                            return;
                        }
                    }
                    // Too slow to keep up: end the stream so the client reconnects and catches
                    // up from /sync/history instead of silently missing events.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "event subscriber fell behind; closing its stream");
                        return;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = heartbeat.tick() => {
                    let beat = json!({ "id": crate::session::ids::new("evt", crate::session::ids::Order::Ascending), "type": "server.heartbeat", "properties": {} });
                    if !tx.send(frame(beat)).await {
                        return;
                    }
                }
                () = tx.closed() => return,
                () = shutdown.cancelled() => return,
            }
        }
    });
    response
}

async fn history(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let known: HashMap<String, Value> = read_json(req.into_body()).await?;
    let mut after = HashMap::with_capacity(known.len());
    for (aggregate, seq) in known {
        let seq = seq.as_i64().ok_or_else(|| {
            ApiError::BadRequest(format!(
                "history entry `{aggregate}` must be an integer sequence number"
            ))
        })?;
        after.insert(aggregate, seq);
    }
    let store = app.store().await?;
    let events = tokio::task::spawn_blocking(move || store.history(&after))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let rows: Vec<Value> = events
        .iter()
        .map(crate::session::store::Stored::to_row)
        .collect();
    Ok(json_response(StatusCode::OK, &rows))
}

async fn create_session(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let body: CreateSession = read_json(req.into_body()).await?;
    let config = app.config();
    if let Some(workspace) = &body.workspace_id
        && !config.workspace_id.is_empty()
        && workspace != &config.workspace_id
    {
        return Err(ApiError::BadRequest(format!(
            "workspaceID {workspace} does not match this workspace ({})",
            config.workspace_id
        )));
    }
    let info = sessions::new_info(
        &body,
        &config.project_id,
        &config.workspace_id,
        &config.directory.to_string_lossy(),
    );
    let store = app.store().await?;
    let created = {
        let store = store.clone();
        let info = info.clone();
        tokio::task::spawn_blocking(move || store.create(info))
            .await
            .map_err(ApiError::internal)?
    }
    .map_err(ApiError::internal)?;
    let mut response = json_response(StatusCode::OK, &info);
    fence(&mut response, &created.aggregate_id, created.seq as i64);
    Ok(response)
}

async fn update_session(
    app: &App,
    id: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let body: UpdateSession = read_json(req.into_body()).await?;
    let store = app.store().await?;
    let info = store.info(id).ok_or_else(|| not_found_session(id))?;
    let info = sessions::updated_info(info, &body);
    let event = store
        .append(
            id,
            "session.updated.1",
            json!({ "sessionID": id, "info": info }),
        )
        .map_err(ApiError::internal)?;
    let mut response = json_response(StatusCode::OK, &info);
    fence(&mut response, id, event.seq as i64);
    Ok(response)
}

async fn delete_session(app: &App, id: &str) -> Result<Response<Body>, ApiError> {
    let store = app.store().await?;
    let info = store.info(id).ok_or_else(|| not_found_session(id))?;
    app.permissions().reject_session(store.bus(), id);
    app.runs().abort(id);
    store
        .append(
            id,
            "session.deleted.1",
            json!({ "sessionID": id, "info": info }),
        )
        .map_err(ApiError::internal)?;
    let mut response = json_response(StatusCode::OK, &true);
    fence(&mut response, id, -1);
    Ok(response)
}

async fn reply_permission(
    app: &App,
    id: &str,
    reply: &str,
    message: Option<String>,
) -> Result<Response<Body>, ApiError> {
    let reply = Reply::parse(reply).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "`reply` must be once, always or reject, got `{reply}`"
        ))
    })?;
    let store = app.store().await?;
    if reply == Reply::Always {
        // Persist before resuming the command, so an approval the user saw accepted is never
        // lost; a failure here (disk full) is reported and the request stays pending.
        let roots = app
            .permissions()
            .roots(id)
            .ok_or_else(|| ApiError::PermissionNotFound(id.to_owned()))?;
        app.approve(roots).await?;
    }
    let resolved = app
        .permissions()
        .reply(store.bus(), id, Answer { reply, message })
        .ok_or_else(|| ApiError::PermissionNotFound(id.to_owned()))?;
    let mut response = json_response(StatusCode::OK, &true);
    if let Some(seq) = store.last_seq(&resolved.session_id) {
        fence(&mut response, &resolved.session_id, seq as i64);
    }
    Ok(response)
}

/// The GETs OpenCode's TUI makes when the workspace is the current one (SPEC §6 row T).
/// Host-level answers come from the host; user-level ones (config, providers, agents,
/// commands) are normally answered by the bridge from the user's local OpenCode, and the
/// stub only gives schema-valid empty answers for manual use.
async fn bootstrap(app: &App, segments: &[&str]) -> Result<Option<Value>, ApiError> {
    let config = app.config();
    let directory = config.directory.to_string_lossy().into_owned();
    let home = app.home().to_string_lossy().into_owned();
    let value = match segments {
        ["path"] => json!({
            "home": home,
            "state": config.state_dir.to_string_lossy(),
            "config": format!("{home}/.config/opencode"),
            "worktree": git_toplevel(app).await.unwrap_or_else(|| directory.clone()),
            "directory": directory,
        }),
        ["project", "current"] => {
            let started = app.started_ms();
            let mut project = json!({
                "id": if config.project_id.is_empty() { "global" } else { &config.project_id },
                "worktree": git_toplevel(app).await.unwrap_or_else(|| directory.clone()),
                "time": { "created": started, "updated": started },
                "sandboxes": [],
            });
            if git_toplevel(app).await.is_some() {
                project["vcs"] = json!("git");
            }
            project
        }
        ["project", _, "directories"] => json!([{ "directory": directory }]),
        ["question"] | ["pty"] | ["lsp"] | ["formatter"] | ["skill"] | ["agent"] | ["command"] => {
            json!([])
        }
        ["mcp"] | ["experimental", "resource"] | ["provider", "auth"] | ["config"] => json!({}),
        ["config", "providers"] => json!({ "providers": [], "default": {} }),
        ["provider"] => json!({ "all": [], "default": {}, "connected": [] }),
        ["experimental", "capabilities"] => json!({ "backgroundSubagents": false }),
        ["experimental", "console"] => {
            json!({ "consoleManagedProviders": [], "switchableOrgCount": 0 })
        }
        _ => return Ok(None),
    };
    Ok(Some(value))
}

/// Sessions listed in `GET /experimental/session` without a `limit` (OpenCode's default).
const DEFAULT_SESSION_LIMIT: usize = 100;

/// `GET /experimental/session`: the sessions with their project, most recently updated first,
/// filtered like OpenCode: `roots` (no parent), `archived` (archived ones are left out unless
/// `true`), `search` (in the title, any case), `start` (updated at or after), `cursor` (updated
/// before: the `x-next-cursor` of the previous page), `limit` (default 100).
async fn experimental_sessions(app: &App, query: &str) -> Result<Response<Body>, ApiError> {
    let params = super::files::Params::parse(query)?;
    let number = |name: &str| -> Result<Option<f64>, ApiError> {
        params
            .get(name)
            .map(|value| {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "query parameter `{name}` must be a number, got `{value}`"
                        ))
                    })
            })
            .transpose()
    };
    let (roots, archived) = (
        params.flag("roots", false)?,
        params.flag("archived", false)?,
    );
    let (start, cursor) = (number("start")?, number("cursor")?);
    let limit = match number("limit")? {
        None => DEFAULT_SESSION_LIMIT,
        Some(limit) if limit >= 1.0 => limit as usize,
        Some(limit) => {
            return Err(ApiError::BadRequest(format!(
                "query parameter `limit` must be at least 1, got `{limit}`"
            )));
        }
    };
    let search = params.get("search").map(str::to_lowercase);
    let updated = |info: &Value| info["time"]["updated"].as_f64().unwrap_or(0.0);
    let mut sessions: Vec<Value> = app
        .store()
        .await?
        .list()
        .into_iter()
        .filter(|info| !roots || info.get("parentID").is_none_or(Value::is_null))
        .filter(|info| archived || info["time"].get("archived").is_none_or(Value::is_null))
        .filter(|info| start.is_none_or(|start| updated(info) >= start))
        .filter(|info| cursor.is_none_or(|cursor| updated(info) < cursor))
        .filter(|info| {
            search.as_deref().is_none_or(|search| {
                info["title"]
                    .as_str()
                    .is_some_and(|title| title.to_lowercase().contains(search))
            })
        })
        .collect();
    sessions.sort_by(|a, b| updated(b).total_cmp(&updated(a)));
    let more = sessions.len() > limit;
    sessions.truncate(limit);
    let directory = app.config().directory.to_string_lossy().into_owned();
    let worktree = git_toplevel(app).await.unwrap_or(directory);
    let next_cursor = more
        .then(|| sessions.last().map(|info| updated(info).to_string()))
        .flatten();
    for info in &mut sessions {
        info["project"] = json!({ "id": info["projectID"], "worktree": worktree });
    }
    let mut response = json_response(StatusCode::OK, &sessions);
    if let Some(cursor) = next_cursor.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert("x-next-cursor", cursor);
    }
    Ok(response)
}

async fn git(app: &App, args: &[&str]) -> Option<String> {
    let output = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::process::Command::new("git")
            .args(args)
            .current_dir(&app.config().directory)
            .env("GIT_OPTIONAL_LOCKS", "0")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    let text = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (output.status.success() && !text.is_empty()).then_some(text)
}

async fn git_toplevel(app: &App) -> Option<String> {
    git(app, &["rev-parse", "--show-toplevel"]).await
}
