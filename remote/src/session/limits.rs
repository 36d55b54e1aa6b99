//! Bounds on what a client may store in a session, far above any real use: every stored field
//! is loaded by every later stub and replayed by every `/sync/history`, so an 8 MiB title
//! would cost memory and bandwidth for the life of the workspace. Beyond a bound the request
//! is refused with 400 naming the field and the limit.

use serde::Serialize;

use crate::error::ApiError;
use crate::session::ids;

/// Session titles (OpenCode's own are a line).
pub const MAX_TITLE: usize = 4 << 10;
/// `!shell` command lines (a pasted script fits).
pub const MAX_COMMAND: usize = 256 << 10;
/// Agent, provider and model names.
pub const MAX_NAME: usize = 256;
/// JSON objects stored as given (`metadata`, `permission`), serialized.
pub const MAX_OBJECT: usize = 64 << 10;

/// Refuses a string longer than `max` bytes.
///
/// # Errors
///
/// 400 naming `field` and the limit.
pub fn text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.len() > max {
        return Err(ApiError::BadRequest(format!(
            "`{field}` is {} bytes; at most {max} are accepted",
            value.len()
        )));
    }
    Ok(())
}

/// Refuses a name that is empty, too long, or has characters other than letters, digits and
/// `-_.:/@`.
///
/// # Errors
///
/// 400 naming `field`.
pub fn name(field: &str, value: &str) -> Result<(), ApiError> {
    text(field, value, MAX_NAME)?;
    let valid = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '@' | ' '));
    if !valid {
        return Err(ApiError::BadRequest(format!(
            "`{field}` must be a non-empty name of letters, digits, spaces and -_.:/@, got `{}`",
            value.escape_debug()
        )));
    }
    Ok(())
}

/// Refuses a JSON value whose serialization exceeds `max` bytes.
///
/// # Errors
///
/// 400 naming `field` and the limit.
pub fn object<T: Serialize>(field: &str, value: &T, max: usize) -> Result<(), ApiError> {
    let len = serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len());
    if len > max {
        return Err(ApiError::BadRequest(format!(
            "`{field}` is {len} bytes of JSON; at most {max} are accepted"
        )));
    }
    Ok(())
}

/// Refuses anything but an OpenCode id with `prefix` (`ses`, `msg`, …).
///
/// # Errors
///
/// 400 naming `field`.
pub fn id(field: &str, value: &str, prefix: &str) -> Result<(), ApiError> {
    if !ids::is_valid(value, prefix) {
        return Err(ApiError::BadRequest(format!(
            "`{field}` must be an OpenCode id starting with `{prefix}_`, got `{}`",
            value.chars().take(64).collect::<String>().escape_debug()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_should_name_the_field_and_the_limit() {
        let err = text("title", &"x".repeat(MAX_TITLE + 1), MAX_TITLE).unwrap_err();
        assert!(err.to_string().contains("`title`") && err.to_string().contains("4096"));
        assert!(text("title", "ok", MAX_TITLE).is_ok());
        assert!(name("agent", "build").is_ok());
        assert!(name("agent", "").is_err());
        assert!(name("agent", "a\nb").is_err());
        assert!(name("agent", &"a".repeat(MAX_NAME + 1)).is_err());
        assert!(
            object(
                "metadata",
                &serde_json::json!({"a": "x".repeat(MAX_OBJECT)}),
                MAX_OBJECT
            )
            .is_err()
        );
        assert!(id("messageID", "msg_1", "msg").is_err());
        assert!(id("messageID", &ids::new("msg", ids::Order::Ascending), "msg").is_ok());
        assert!(id("messageID", &ids::new("msg", ids::Order::Ascending), "ses").is_err());
    }
}
