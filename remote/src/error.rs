//! `ApiError`: every failure a handler can report, and its HTTP form.

use http::StatusCode;
use protocol::api::{ErrorBody, ErrorData};

/// A request that could not be served.
///
/// Client faults (4xx) carry a message that is shown to the user as is; internal errors (5xx)
/// are logged with their details and answered with a generic message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request body or query is invalid; the message names the field.
    #[error("{0}")]
    BadRequest(String),
    /// No such route or object.
    #[error("{0}")]
    NotFound(String),
    /// Outside what this workspace may reach (e.g. a path escaping the directory).
    #[error("{0}")]
    Forbidden(String),
    /// The session already runs something.
    #[error("Session {0} is busy")]
    SessionBusy(String),
    /// No pending permission request with this id.
    #[error("Permission request not found: {0}")]
    PermissionNotFound(String),
    /// No pending question with this id.
    #[error("Question request not found: {0}")]
    QuestionNotFound(String),
    /// No running terminal with this id.
    #[error("PTY session not found: {0}")]
    PtyNotFound(String),
    /// A terminal operation the user or the request's origin does not allow.
    #[error("{0}")]
    PtyForbidden(String),
    /// A route OpenCode knows that the stub does not implement.
    #[error("{0}")]
    NotImplemented(String),
    /// The request body exceeds the limit.
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The route exists but not for this method.
    #[error("method {method} not allowed on {path}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The path requested.
        path: String,
    },
    /// Something the request needs is not there (e.g. no laptop connected to the stub).
    #[error("{0}")]
    Unavailable(String),
    /// The host ran out of disk space while saving state.
    #[error("insufficient storage on the host: {0}")]
    InsufficientStorage(String),
    /// Anything else; details are logged, not sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_)
            | ApiError::PermissionNotFound(_)
            | ApiError::QuestionNotFound(_)
            | ApiError::PtyNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) | ApiError::PtyForbidden(_) => StatusCode::FORBIDDEN,
            ApiError::SessionBusy(_) => StatusCode::CONFLICT,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Error class as it appears in the body's `name` field.
    pub fn name(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::NotFound(_) => "NotFoundError",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::SessionBusy(_) => "SessionBusyError",
            ApiError::PermissionNotFound(_) => "PermissionNotFoundError",
            ApiError::QuestionNotFound(_) => "QuestionNotFoundError",
            ApiError::PtyNotFound(_) => "PtyNotFoundError",
            ApiError::PtyForbidden(_) => "PtyForbiddenError",
            ApiError::NotImplemented(_) => "NotImplemented",
            ApiError::PayloadTooLarge { .. } => "PayloadTooLarge",
            ApiError::MethodNotAllowed { .. } => "MethodNotAllowed",
            ApiError::InsufficientStorage(_) => "InsufficientStorage",
            ApiError::Unavailable(_) => "Unavailable",
            ApiError::Internal(_) => "InternalError",
        }
    }

    /// The JSON body sent to the client, in the shape OpenCode uses for this error.
    pub fn body(&self) -> serde_json::Value {
        /// OpenCode's tagged errors (`SessionBusyError`, `PermissionNotFoundError`).
        #[derive(serde::Serialize)]
        struct Tagged<'a> {
            #[serde(rename = "_tag")]
            tag: &'a str,
            #[serde(rename = "sessionID", skip_serializing_if = "Option::is_none")]
            session_id: Option<&'a str>,
            #[serde(rename = "requestID", skip_serializing_if = "Option::is_none")]
            request_id: Option<&'a str>,
            #[serde(rename = "ptyID", skip_serializing_if = "Option::is_none")]
            pty_id: Option<&'a str>,
            message: String,
        }
        let tagged = |session_id, request_id| Tagged {
            tag: self.name(),
            session_id,
            request_id,
            pty_id: None,
            message: self.to_string(),
        };
        let body = match self {
            ApiError::SessionBusy(id) => serde_json::to_value(tagged(Some(id), None)),
            ApiError::PermissionNotFound(id) | ApiError::QuestionNotFound(id) => {
                serde_json::to_value(tagged(None, Some(id)))
            }
            ApiError::PtyNotFound(id) => serde_json::to_value(Tagged {
                pty_id: Some(id),
                ..tagged(None, None)
            }),
            ApiError::PtyForbidden(_) => serde_json::to_value(tagged(None, None)),
            _ => serde_json::to_value(ErrorBody {
                name: self.name().to_owned(),
                data: ErrorData {
                    message: self.to_string(),
                },
            }),
        };
        body.unwrap_or(serde_json::Value::Null)
    }

    /// Wraps an internal failure, mapping a full disk to 507.
    pub fn internal(err: impl Into<anyhow::Error>) -> ApiError {
        let err = err.into();
        let enospc = err.chain().any(|cause| {
            cause
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::raw_os_error)
                == Some(rustix::io::Errno::NOSPC.raw_os_error())
        });
        if enospc {
            return ApiError::InsufficientStorage(format!("{err:#}"));
        }
        ApiError::Internal(err)
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(err: serde_json::Error) -> Self {
        ApiError::BadRequest(format!("invalid JSON body: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_should_map_enospc_to_507_and_hide_details_otherwise() {
        let full = std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        let err = ApiError::internal(anyhow::Error::new(full).context("saving approvals"));
        assert_eq!(err.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert!(
            err.to_string()
                .starts_with("insufficient storage on the host: saving approvals")
        );

        let other = ApiError::internal(anyhow::anyhow!("secret detail"));
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(other.body()["data"]["message"], "internal error");
    }

    #[test]
    fn json_errors_should_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Body {
            command: String,
        }
        let err: ApiError = serde_json::from_str::<Body>("{}").unwrap_err().into();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(err.to_string().contains("missing field `command`"), "{err}");
    }
}
