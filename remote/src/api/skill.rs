//! `GET /skill`: the skills found on the host for this workspace.

use http::Response;

use crate::error::ApiError;
use crate::http::{Body, Req, ok};
use crate::opencode::skill::SkillInfo;

/// `GET /skill`, sorted by name.
pub async fn list(req: Req) -> Result<Response<Body>, ApiError> {
    let skills: Vec<SkillInfo> = req
        .app
        .agent()
        .skills()
        .await
        .into_iter()
        .map(|skill| SkillInfo {
            name: skill.name,
            description: skill.description,
            location: skill.location.display().to_string(),
            content: skill.content,
        })
        .collect();
    ok(&skills)
}
