//! The user's OpenCode setup for the stub, and web fetches from the laptop.

use protocol::gateway::{FailureKind, FetchRequest, Reply};

use super::{Gone, Replies, Shared, failure};

/// Answers `Request::Setup`.
pub(super) async fn setup(_shared: &Shared, replies: &Replies) -> Result<(), Gone> {
    replies
        .send(Reply::Error(failure(
            FailureKind::BadRequest,
            "not yet".into(),
        )))
        .await
}

/// Answers `Request::Fetch`.
pub(super) async fn fetch(
    _shared: &Shared,
    _request: FetchRequest,
    replies: &Replies,
) -> Result<(), Gone> {
    replies
        .send(Reply::Error(failure(
            FailureKind::BadRequest,
            "not yet".into(),
        )))
        .await
}
