//! The `question` tool's prompts: `GET /question`, `POST /question/:id/reply {answers}`,
//! `POST /question/:id/reject`.

use http::Response;
use serde::Deserialize;

use crate::error::ApiError;
use crate::http::{Body, Req, ok};

/// `GET /question`: pending questions, oldest first.
pub async fn list(req: Req) -> Result<Response<Body>, ApiError> {
    ok(&req.app.agent().questions().list())
}

/// `POST /question/:id/reply {answers}`: one list of chosen labels per question.
pub async fn reply(mut req: Req) -> Result<Response<Body>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ReplyBody {
        answers: Vec<Vec<String>>,
    }
    let body: ReplyBody = req.json().await?;
    let id = req.param(0).to_owned();
    let bus = req.app.policy().bus().clone();
    if !req.app.agent().questions().reply(&bus, &id, body.answers) {
        return Err(ApiError::QuestionNotFound(id));
    }
    ok(&true)
}

/// `POST /question/:id/reject`
pub async fn reject(req: Req) -> Result<Response<Body>, ApiError> {
    let id = req.param(0).to_owned();
    let bus = req.app.policy().bus().clone();
    if !req.app.agent().questions().reject(&bus, &id) {
        return Err(ApiError::QuestionNotFound(id));
    }
    ok(&true)
}
