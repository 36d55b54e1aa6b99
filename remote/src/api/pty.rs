//! Terminals (`/pty…`): not on hosts yet; the list is empty and everything else says so.

use http::Response;

use crate::error::ApiError;
use crate::http::{Body, Req, ok};

/// `GET /pty`
pub async fn list(_req: Req) -> Result<Response<Body>, ApiError> {
    ok(&[(); 0])
}

/// Every other terminal route.
pub async fn not_yet(_req: Req) -> Result<Response<Body>, ApiError> {
    Err(ApiError::NotImplemented(
        "terminals on opencode-remote hosts are not supported yet; use !shell commands".into(),
    ))
}
