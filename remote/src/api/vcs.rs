//! The git views of OpenCode's review panel: `GET /vcs`, `/vcs/status`, `/vcs/diff`, from the
//! host's own git ([`crate::tools::vcs`]).

use http::Response;

use crate::error::ApiError;
use crate::http::{Body, Req, ok};
use crate::tools::vcs;

/// `GET /vcs`: branch and default branch.
pub async fn info(req: Req) -> Result<Response<Body>, ApiError> {
    ok(&vcs::info(&req.app.config().directory, req.app.procs()).await)
}

/// `GET /vcs/status`: changed files with line counts.
pub async fn status(req: Req) -> Result<Response<Body>, ApiError> {
    ok(&vcs::status(&req.app.config().directory, req.app.procs()).await)
}

/// `GET /vcs/diff?mode=git|branch&context=N`: per-file patches.
pub async fn diff(req: Req) -> Result<Response<Body>, ApiError> {
    let mode = match req.query.required("mode")?.as_str() {
        "git" => vcs::Mode::Git,
        "branch" => vcs::Mode::Branch,
        other => {
            return Err(ApiError::BadRequest(format!(
                "query parameter `mode` must be `git` or `branch`, got `{other}`"
            )));
        }
    };
    let context = match req.query.unsigned("context")? {
        None => None,
        Some(context) => Some(u32::try_from(context).map_err(|_| {
            ApiError::BadRequest(format!(
                "query parameter `context` must be a non-negative integer, got `{context}`"
            ))
        })?),
    };
    let app = &req.app;
    ok(&vcs::diff(&app.config().directory, app.procs(), mode, context).await)
}
