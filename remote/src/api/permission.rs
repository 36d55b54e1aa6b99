//! Permission prompts (SPEC §9 (v)): `GET /permission`, `POST /permission/:id/reply`, and the
//! legacy `POST /session/:id/permissions/:permission`.

use http::Response;
use serde::Deserialize;

use crate::error::ApiError;
use crate::http::{Body, Req, fence, ok};
use crate::policy::permissions::{Answer, Reply};

/// `GET /permission`: pending requests, oldest first.
pub async fn list(req: Req) -> Result<Response<Body>, ApiError> {
    ok(&req.app.policy().permissions().list())
}

/// `POST /permission/:id/reply {reply, message?}`
pub async fn reply(mut req: Req) -> Result<Response<Body>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ReplyBody {
        reply: String,
        message: Option<String>,
    }
    let body: ReplyBody = req.json().await?;
    answer(&req, req.param(0), &body.reply, body.message).await
}

/// `POST /session/:id/permissions/:permission {response}`
pub async fn legacy_reply(mut req: Req) -> Result<Response<Body>, ApiError> {
    #[derive(Deserialize)]
    struct Legacy {
        response: String,
    }
    let body: Legacy = req.json().await?;
    answer(&req, req.param(1), &body.response, None).await
}

async fn answer(
    req: &Req,
    id: &str,
    reply: &str,
    message: Option<String>,
) -> Result<Response<Body>, ApiError> {
    let reply = Reply::parse(reply).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "`reply` must be once, always or reject, got `{reply}`"
        ))
    })?;
    if let Some(message) = &message {
        crate::session::limits::text("message", message, crate::session::limits::MAX_TITLE)?;
    }
    let policy = req.app.policy();
    if reply == Reply::Always {
        // Persist before resuming the command, so an approval the user saw accepted is never
        // lost; a failure here (disk full) is reported and the request stays pending.
        let roots = policy
            .permissions()
            .roots(id)
            .ok_or_else(|| ApiError::PermissionNotFound(id.to_owned()))?;
        policy.approve(roots).await?;
    }
    let resolved = policy
        .permissions()
        .reply(policy.bus(), id, Answer { reply, message })
        .ok_or_else(|| ApiError::PermissionNotFound(id.to_owned()))?;
    let mut response = ok(&true)?;
    let store = req.app.sessions().store().await?;
    if let Some(seq) = store.last_seq(&resolved.session_id) {
        fence(&mut response, &resolved.session_id, seq as i64);
    }
    Ok(response)
}
