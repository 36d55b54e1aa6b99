//! Sessions (SPEC §6, §9 (ii), (iii)): list, get, create, update, delete, status, abort,
//! `!shell`, and the filtered list of `GET /experimental/session`.

use http::{HeaderValue, Response};
use serde::Deserialize;

use crate::agent::prompt::Prompt;
use crate::agent::shell::Request as ShellRequest;
use crate::api::startup::git_toplevel;
use crate::error::ApiError;
use crate::http::{Body, Req, fence, ok};
use crate::opencode::event::SyncEvent;
use crate::opencode::message::{Message, ModelRef, WithParts};
use crate::opencode::project::{GlobalSession, ProjectSummary};
use crate::opencode::session::Session;
use crate::session::info::{self, CreateSession, UpdateSession};
use crate::session::limits;

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("Session not found: {id}"))
}

/// `GET /session`
pub async fn list(req: Req) -> Result<Response<Body>, ApiError> {
    ok(&req.app.sessions().store().await?.list())
}

/// `GET /session/status`: busy sessions only.
pub async fn status(req: Req) -> Result<Response<Body>, ApiError> {
    ok(&req.app.sessions().runs().status())
}

/// `GET /session/:id`
pub async fn get(req: Req) -> Result<Response<Body>, ApiError> {
    let id = req.param(0);
    let info = req
        .app
        .sessions()
        .store()
        .await?
        .info(id)
        .ok_or_else(|| not_found(id))?;
    ok(&info)
}

/// `POST /session`
pub async fn create(mut req: Req) -> Result<Response<Body>, ApiError> {
    let body: CreateSession = req.json().await?;
    body.validate()?;
    let config = req.app.config();
    if let Some(workspace) = &body.workspace_id
        && !config.workspace_id.is_empty()
        && workspace != &config.workspace_id
    {
        return Err(ApiError::BadRequest(format!(
            "workspaceID {workspace} does not match this workspace ({})",
            config.workspace_id
        )));
    }
    let info = info::new_info(
        &body,
        &config.project_id,
        &config.workspace_id,
        &config.directory.to_string_lossy(),
    );
    let store = req.app.sessions().store().await?;
    let created = {
        let store = store.clone();
        let info = info.clone();
        tokio::task::spawn_blocking(move || store.create(info))
            .await
            .map_err(ApiError::internal)?
    }
    .map_err(ApiError::internal)?;
    let mut response = ok(&info)?;
    fence(&mut response, &created.aggregate_id, created.seq as i64);
    Ok(response)
}

/// `PATCH /session/:id`
pub async fn update(mut req: Req) -> Result<Response<Body>, ApiError> {
    let body: UpdateSession = req.json().await?;
    body.validate()?;
    let id = req.param(0);
    let store = req.app.sessions().store().await?;
    let info = store.info(id).ok_or_else(|| not_found(id))?;
    let info = info::updated_info(info, &body);
    let event = store
        .append(id, &SyncEvent::SessionUpdated(info.clone()))
        .map_err(ApiError::internal)?;
    let mut response = ok(&info)?;
    fence(&mut response, id, event.seq as i64);
    Ok(response)
}

/// `DELETE /session/:id`
pub async fn delete(req: Req) -> Result<Response<Body>, ApiError> {
    let id = req.param(0);
    let store = req.app.sessions().store().await?;
    let info = store.info(id).ok_or_else(|| not_found(id))?;
    req.app
        .policy()
        .permissions()
        .reject_session(store.bus(), id);
    req.app.sessions().runs().abort(id);
    req.app
        .agent()
        .questions()
        .reject_session(req.app.policy().bus(), id);
    store
        .append(id, &SyncEvent::SessionDeleted(info))
        .map_err(ApiError::internal)?;
    let mut response = ok(&true)?;
    fence(&mut response, id, -1);
    Ok(response)
}

/// `POST /session/:id/abort`
pub async fn abort(req: Req) -> Result<Response<Body>, ApiError> {
    let id = req.param(0);
    let store = req.app.sessions().store().await?;
    // Abort first, so a command waiting for permission ends as aborted; the reject then closes
    // the prompt (permission.replied) in OpenCode.
    req.app.sessions().runs().abort(id);
    req.app
        .policy()
        .permissions()
        .reject_session(store.bus(), id);
    ok(&true)
}

/// Body of `POST /session/:id/shell`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShellBody {
    agent: String,
    command: String,
    #[serde(default)]
    model: Option<ShellModel>,
    #[serde(default, rename = "messageID")]
    message_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShellModel {
    #[serde(rename = "providerID")]
    provider_id: String,
    #[serde(rename = "modelID")]
    model_id: String,
}

/// `POST /session/:id/shell`: runs `command` on the host and answers `{info, parts}` with the
/// fence of its last event. The command runs to completion (and its events are logged) even
/// when the HTTP request goes away; only an abort stops it.
pub async fn shell(mut req: Req) -> Result<Response<Body>, ApiError> {
    let body: ShellBody = req.json().await?;
    limits::name("agent", &body.agent)?;
    limits::text("command", &body.command, limits::MAX_COMMAND)?;
    if let Some(model) = &body.model {
        limits::name("model.providerID", &model.provider_id)?;
        limits::name("model.modelID", &model.model_id)?;
    }
    let id = req.param(0).to_owned();
    if let Some(message_id) = &body.message_id {
        limits::id("messageID", message_id, "msg")?;
        let owner = req.app.sessions().store().await?.message_owner(message_id);
        if owner.is_some_and(|owner| owner != id) {
            return Err(ApiError::BadRequest(format!(
                "`messageID` {message_id} belongs to another session"
            )));
        }
    }
    let request = ShellRequest {
        agent: body.agent,
        command: body.command,
        model: body.model.map(|model| ModelRef {
            provider_id: model.provider_id,
            model_id: model.model_id,
            variant: None,
        }),
        message_id: body.message_id,
    };
    let agent = req.app.agent().clone();
    let session_id = id.clone();
    let outcome = req
        .app
        .spawn(async move { agent.shell(&session_id, request).await })
        .await
        .map_err(ApiError::internal)??;
    let mut response = ok(&WithParts {
        info: Message::Assistant(outcome.info),
        parts: vec![outcome.part],
    })?;
    fence(&mut response, &id, outcome.last_seq as i64);
    Ok(response)
}

/// `POST /session/:id/message`: stores the prompt, runs the turn and answers the last
/// assistant message with its parts and the fence of its completion. The turn goes on (and is
/// recorded) when the request goes away; only an abort stops it. A prompt for a busy session
/// is stored and answered by the running turn: the answer is then its user message's fence.
pub async fn message(mut req: Req) -> Result<Response<Body>, ApiError> {
    let prompt: Prompt = req.json().await?;
    let id = req.param(0).to_owned();
    let accepted = req.app.agent().prompt(&id, prompt).await?;
    answer(&id, accepted).await
}

/// `POST /session/:id/prompt_async`: stores the prompt, starts the turn and answers `204` with
/// the fence of the stored prompt.
pub async fn prompt_async(mut req: Req) -> Result<Response<Body>, ApiError> {
    let prompt: Prompt = req.json().await?;
    let id = req.param(0).to_owned();
    let accepted = req.app.agent().prompt(&id, prompt).await?;
    let mut response = Response::new(crate::http::full(bytes::Bytes::new()));
    *response.status_mut() = http::StatusCode::NO_CONTENT;
    fence(&mut response, &id, accepted.seq as i64);
    Ok(response)
}

/// `POST /session/:id/command`: a slash command, expanded into a prompt; answers like
/// `/message`.
pub async fn command(mut req: Req) -> Result<Response<Body>, ApiError> {
    let body: crate::agent::command::CommandBody = req.json().await?;
    let id = req.param(0).to_owned();
    let accepted = req.app.agent().command(&id, body).await?;
    answer(&id, accepted).await
}

/// The answer of a prompt: the turn's last assistant message, or `204` and the prompt's fence
/// when a running turn will answer it.
async fn answer(
    id: &str,
    accepted: crate::agent::prompt::Accepted,
) -> Result<Response<Body>, ApiError> {
    let Some(turn) = accepted.turn else {
        let mut response = Response::new(crate::http::full(bytes::Bytes::new()));
        *response.status_mut() = http::StatusCode::NO_CONTENT;
        fence(&mut response, id, accepted.seq as i64);
        return Ok(response);
    };
    let outcome = turn.await.map_err(ApiError::internal)??;
    let mut response = ok(&WithParts {
        info: Message::Assistant(outcome.info),
        parts: outcome.parts,
    })?;
    fence(&mut response, id, outcome.last_seq as i64);
    Ok(response)
}

/// Session commands the host does not run yet (summarize, revert, fork, share, init).
pub async fn not_yet(req: Req) -> Result<Response<Body>, ApiError> {
    let what = req
        .head
        .uri
        .path()
        .rsplit('/')
        .next()
        .unwrap_or("this")
        .to_owned();
    Err(ApiError::NotImplemented(format!(
        "/{what} does not run on opencode-remote hosts yet (prompts, slash commands and !shell do)"
    )))
}

/// Sessions listed in `GET /experimental/session` without a `limit` (OpenCode's default).
const DEFAULT_SESSION_LIMIT: usize = 100;

/// `GET /experimental/session`: the sessions with their project, most recently updated first,
/// filtered like OpenCode: `roots` (no parent), `archived` (archived ones are left out unless
/// `true`), `search` (in the title, any case), `start` (updated at or after), `cursor` (updated
/// before: the `x-next-cursor` of the previous page), `limit` (default 100).
pub async fn experimental_list(req: Req) -> Result<Response<Body>, ApiError> {
    let query = &req.query;
    let (roots, archived) = (query.flag("roots", false)?, query.flag("archived", false)?);
    let (start, cursor) = (query.number("start")?, query.number("cursor")?);
    let limit = match query.number("limit")? {
        None => DEFAULT_SESSION_LIMIT,
        Some(limit) if limit >= 1.0 => limit as usize,
        Some(limit) => {
            return Err(ApiError::BadRequest(format!(
                "query parameter `limit` must be at least 1, got `{limit}`"
            )));
        }
    };
    let search = query.get("search").map(str::to_lowercase);
    let updated = |info: &Session| info.time.updated as f64;
    let mut sessions: Vec<Session> = req
        .app
        .sessions()
        .store()
        .await?
        .list()
        .into_iter()
        .filter(|info| !roots || info.parent_id.is_none())
        .filter(|info| archived || info.time.archived.is_none())
        .filter(|info| start.is_none_or(|start| updated(info) >= start))
        .filter(|info| cursor.is_none_or(|cursor| updated(info) < cursor))
        .filter(|info| {
            search
                .as_deref()
                .is_none_or(|search| info.title.to_lowercase().contains(search))
        })
        .collect();
    sessions.sort_by(|a, b| updated(b).total_cmp(&updated(a)));
    let more = sessions.len() > limit;
    sessions.truncate(limit);
    let directory = req.app.config().directory.to_string_lossy().into_owned();
    let worktree = git_toplevel(&req.app).await.unwrap_or(directory);
    let next_cursor = more
        .then(|| sessions.last().map(|info| updated(info).to_string()))
        .flatten();
    let listed: Vec<GlobalSession> = sessions
        .into_iter()
        .map(|info| GlobalSession {
            project: ProjectSummary {
                id: info.project_id.clone(),
                worktree: worktree.clone(),
            },
            info,
        })
        .collect();
    let mut response = ok(&listed)?;
    if let Some(cursor) = next_cursor.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert("x-next-cursor", cursor);
    }
    Ok(response)
}
