//! Session records in OpenCode's shape, and which sessions are busy.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::opencode::session::{Session, SessionModel, SessionTime, Status};
use crate::opencode::{self, Cost, Object, Tokens};
use crate::session::ids::{self, Order};
use crate::session::limits;

/// Body of `POST /session`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateSession {
    /// Parent session.
    #[serde(rename = "parentID")]
    pub parent_id: Option<String>,
    /// Title; OpenCode's default when absent.
    pub title: Option<String>,
    /// Agent name.
    pub agent: Option<String>,
    /// Model `{id, providerID, variant?}`.
    pub model: Option<SessionModel>,
    /// Free-form metadata.
    pub metadata: Option<Object>,
    /// Permission ruleset.
    pub permission: Option<Value>,
    /// Workspace id (must be ours when given).
    #[serde(rename = "workspaceID")]
    pub workspace_id: Option<String>,
}

/// Body of `PATCH /session/:id`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateSession {
    /// New title.
    pub title: Option<String>,
    /// New metadata.
    pub metadata: Option<Object>,
    /// New permission ruleset.
    pub permission: Option<Value>,
    /// `{archived?}`.
    pub time: Option<UpdateTime>,
}

/// `time` of [`UpdateSession`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTime {
    /// Archive timestamp (ms).
    pub archived: Option<f64>,
}

impl CreateSession {
    /// Refuses fields beyond [`limits`].
    ///
    /// # Errors
    ///
    /// 400 naming the field.
    pub fn validate(&self) -> Result<(), ApiError> {
        if let Some(parent) = &self.parent_id {
            limits::id("parentID", parent, "ses")?;
        }
        if let Some(title) = &self.title {
            limits::text("title", title, limits::MAX_TITLE)?;
        }
        if let Some(agent) = &self.agent {
            limits::name("agent", agent)?;
        }
        if let Some(model) = &self.model {
            limits::name("model.id", &model.id)?;
            limits::name("model.providerID", &model.provider_id)?;
            if let Some(variant) = &model.variant {
                limits::name("model.variant", variant)?;
            }
        }
        if let Some(metadata) = &self.metadata {
            limits::object("metadata", metadata, limits::MAX_OBJECT)?;
        }
        if let Some(permission) = &self.permission {
            limits::object("permission", permission, limits::MAX_OBJECT)?;
        }
        Ok(())
    }
}

impl UpdateSession {
    /// Refuses fields beyond [`limits`].
    ///
    /// # Errors
    ///
    /// 400 naming the field.
    pub fn validate(&self) -> Result<(), ApiError> {
        if let Some(title) = &self.title {
            limits::text("title", title, limits::MAX_TITLE)?;
        }
        if let Some(metadata) = &self.metadata {
            limits::object("metadata", metadata, limits::MAX_OBJECT)?;
        }
        if let Some(permission) = &self.permission {
            limits::object("permission", permission, limits::MAX_OBJECT)?;
        }
        Ok(())
    }
}

const ADJECTIVES: [&str; 16] = [
    "brave", "calm", "clever", "eager", "gentle", "happy", "kind", "lively", "proud", "quick",
    "quiet", "shiny", "silent", "swift", "tidy", "witty",
];
const NOUNS: [&str; 16] = [
    "badger", "canyon", "comet", "falcon", "forest", "harbor", "island", "lagoon", "meadow",
    "otter", "panda", "pebble", "river", "summit", "tiger", "willow",
];

fn random_index(len: usize) -> usize {
    let mut byte = [0u8; 1];
    if getrandom::fill(&mut byte).is_err() {
        return 0;
    }
    usize::from(byte[0]) % len
}

/// A `time` value in OpenCode's ISO form, e.g. `2026-11-24T08:40:00.000Z`.
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Builds a new session's info.
pub fn new_info(
    body: &CreateSession,
    project_id: &str,
    workspace_id: &str,
    directory: &str,
) -> Session {
    let now = ids::now_ms();
    Session {
        id: ids::new("ses", Order::Descending),
        slug: format!(
            "{}-{}",
            ADJECTIVES[random_index(ADJECTIVES.len())],
            NOUNS[random_index(NOUNS.len())]
        ),
        version: opencode::VERSION.to_owned(),
        project_id: project_id.to_owned(),
        directory: directory.to_owned(),
        path: Some(String::new()),
        workspace_id: (!workspace_id.is_empty()).then(|| workspace_id.to_owned()),
        parent_id: body.parent_id.clone(),
        title: body
            .title
            .clone()
            .unwrap_or_else(|| format!("New session - {}", iso8601(now))),
        agent: body.agent.clone(),
        model: body.model.clone(),
        metadata: body.metadata.clone(),
        permission: body.permission.clone(),
        summary: None,
        share: None,
        revert: None,
        cost: Some(Cost::default()),
        tokens: Some(Tokens::default()),
        time: SessionTime {
            created: now,
            updated: now,
            ..SessionTime::default()
        },
    }
}

/// Applies a `PATCH` body to an info, bumping `time.updated`.
pub fn updated_info(mut info: Session, body: &UpdateSession) -> Session {
    if let Some(title) = &body.title {
        info.title.clone_from(title);
    }
    if let Some(metadata) = &body.metadata {
        info.metadata = Some(metadata.clone());
    }
    if let Some(permission) = &body.permission {
        info.permission = Some(permission.clone());
    }
    if let Some(archived) = body.time.as_ref().and_then(|t| t.archived) {
        info.time.archived = Some(archived);
    }
    info.time.updated = ids::now_ms();
    info
}

/// Sessions with a command in flight, and how to stop them.
#[derive(Debug, Default)]
pub struct Runs {
    busy: Mutex<HashMap<String, CancellationToken>>,
}

/// Marks a session busy until dropped.
#[derive(Debug)]
pub struct RunGuard<'a> {
    runs: &'a Runs,
    session_id: String,
    /// Cancelled by `POST /session/:id/abort`.
    pub cancel: CancellationToken,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        self.runs.lock().remove(&self.session_id);
    }
}

impl Runs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks `session_id` busy; `None` when it already is.
    pub fn start(&self, session_id: &str, parent: &CancellationToken) -> Option<RunGuard<'_>> {
        let mut busy = self.lock();
        if busy.contains_key(session_id) {
            return None;
        }
        let cancel = parent.child_token();
        busy.insert(session_id.to_owned(), cancel.clone());
        Some(RunGuard {
            runs: self,
            session_id: session_id.to_owned(),
            cancel,
        })
    }

    /// Cancels the run of a session; `false` when it was idle.
    pub fn abort(&self, session_id: &str) -> bool {
        match self.lock().get(session_id) {
            Some(cancel) => {
                cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// `GET /session/status`: busy sessions only.
    pub fn status(&self) -> std::collections::BTreeMap<String, Status> {
        self.lock()
            .keys()
            .map(|id| (id.clone(), Status::Busy))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_should_format_like_javascript() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_795_499_082_801), "2026-11-24T05:44:42.801Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
    }

    #[test]
    fn new_info_should_match_opencodes_session_shape() {
        let info = new_info(
            &CreateSession {
                title: Some("t".into()),
                ..Default::default()
            },
            "proj",
            "wrk_1",
            "/srv",
        );
        let info = serde_json::to_value(info).unwrap();
        for key in [
            "id",
            "slug",
            "projectID",
            "directory",
            "title",
            "version",
            "time",
        ] {
            assert!(info.get(key).is_some(), "{key}");
        }
        assert!(info["id"].as_str().unwrap().starts_with("ses_"));
        assert_eq!(info["workspaceID"], "wrk_1");
        assert_eq!(info["path"], "");
        let default_title = new_info(&CreateSession::default(), "p", "", "/");
        assert!(default_title.title.starts_with("New session - 20"));
        assert!(default_title.workspace_id.is_none());
    }

    #[test]
    fn runs_should_refuse_a_second_run_and_abort() {
        let runs = Runs::default();
        let root = CancellationToken::new();
        let guard = runs.start("ses_a", &root).unwrap();
        assert!(runs.start("ses_a", &root).is_none());
        assert_eq!(
            serde_json::to_value(runs.status()).unwrap(),
            serde_json::json!({ "ses_a": { "type": "busy" } })
        );
        assert!(runs.abort("ses_a"));
        assert!(guard.cancel.is_cancelled());
        drop(guard);
        assert!(!runs.abort("ses_a"));
        assert!(runs.status().is_empty());
    }
}
