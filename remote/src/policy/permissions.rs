//! Permission-first path access: pending permission requests and their answers.
//!
//! A shell command whose working directory or path operands fall outside the roots this
//! workspace approved creates a request (`permission.asked` on the bus, listed by
//! `GET /permission`) and waits for the user's answer: `once` runs it, `always` also persists
//! the roots for the workspace (see [`crate::policy::approvals`]), `reject` ends the tool with an error.
//! Nothing here ever answers a request by itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::opencode::event::BusEvent;
pub use crate::opencode::permission::Reply;
use crate::opencode::permission::{PermissionRequest, ToolRef};
use crate::session::bus::Bus;
use crate::session::ids::{self, Order};

/// What the waiting command receives.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The reply.
    pub reply: Reply,
    /// Optional message from the user (shown in the tool error on reject).
    pub message: Option<String>,
}

struct Pending {
    request: PermissionRequest,
    roots: Vec<PathBuf>,
    tx: oneshot::Sender<Answer>,
}

/// Pending requests of this stub.
#[derive(Default)]
pub struct Permissions {
    pending: Mutex<BTreeMap<String, Pending>>,
}

impl std::fmt::Debug for Permissions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permissions")
            .field("pending", &self.lock().len())
            .finish()
    }
}

/// What a permission request asks for.
#[derive(Debug, Clone)]
pub struct Ask {
    /// The session.
    pub session_id: String,
    /// The assistant message holding the tool part.
    pub message_id: String,
    /// The tool call.
    pub call_id: String,
    /// The command, for the prompt.
    pub command: String,
    /// Paths that are not approved (as shown).
    pub paths: Vec<String>,
    /// Roots an `always` answer approves.
    pub roots: Vec<PathBuf>,
}

/// What the prompt shows. OpenCode titles it with `parentDir` (else `filepath`, else the first
/// pattern's directory).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    parent_dir: Option<String>,
    filepath: Option<String>,
    command: String,
    paths: Vec<String>,
    roots: Vec<String>,
    reason: &'static str,
}

/// A request that was answered.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Its session.
    pub session_id: String,
    /// The roots it asked for.
    pub roots: Vec<PathBuf>,
    /// The answer.
    pub answer: Answer,
}

impl Permissions {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Pending>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a request, announces it on the bus, and returns its id and the receiver of the
    /// answer.
    pub fn ask(&self, bus: &Bus, ask: Ask) -> (String, oneshot::Receiver<Answer>) {
        let id = ids::new("per", Order::Ascending);
        let always: Vec<String> = ask
            .roots
            .iter()
            .map(|r| format!("{}/**", r.display()))
            .collect();
        let metadata = Metadata {
            parent_dir: always.first().map(|r| r.trim_end_matches("/**").to_owned()),
            filepath: ask.paths.first().cloned(),
            command: ask.command,
            paths: ask.paths.clone(),
            roots: always.clone(),
            reason: "the command reaches paths this workspace has not approved",
        };
        let request = PermissionRequest {
            id: id.clone(),
            session_id: ask.session_id,
            permission: "external_directory".into(),
            patterns: ask.paths,
            metadata: match serde_json::to_value(metadata) {
                Ok(serde_json::Value::Object(map)) => map,
                _ => serde_json::Map::new(),
            },
            always,
            tool: Some(ToolRef {
                message_id: ask.message_id,
                call_id: ask.call_id,
            }),
        };
        self.pend(bus, request, ask.roots)
    }

    /// Announces a request the agent's rules raise (any permission, its own patterns and
    /// `always`); an `always` answer approves no directory (the agent remembers it).
    pub fn ask_rule(
        &self,
        bus: &Bus,
        mut request: PermissionRequest,
    ) -> (String, oneshot::Receiver<Answer>) {
        request.id = ids::new("per", Order::Ascending);
        self.pend(bus, request, Vec::new())
    }

    fn pend(
        &self,
        bus: &Bus,
        request: PermissionRequest,
        roots: Vec<PathBuf>,
    ) -> (String, oneshot::Receiver<Answer>) {
        let id = request.id.clone();
        let (tx, rx) = oneshot::channel();
        self.lock().insert(
            id.clone(),
            Pending {
                request: request.clone(),
                roots,
                tx,
            },
        );
        bus.emit(&BusEvent::PermissionAsked(request));
        (id, rx)
    }

    /// The roots a pending request asks for.
    pub fn roots(&self, id: &str) -> Option<Vec<PathBuf>> {
        self.lock().get(id).map(|p| p.roots.clone())
    }

    /// Pending requests, oldest first.
    pub fn list(&self) -> Vec<PermissionRequest> {
        self.lock().values().map(|p| p.request.clone()).collect()
    }

    /// Answers a request. `None` when it does not exist (any more).
    pub fn reply(&self, bus: &Bus, id: &str, answer: Answer) -> Option<Resolved> {
        let pending = self.lock().remove(id)?;
        let session_id = pending.request.session_id.clone();
        bus.emit(&BusEvent::PermissionReplied {
            session_id: session_id.clone(),
            request_id: id.to_owned(),
            reply: answer.reply,
        });
        // The waiting command may have been aborted meanwhile; then nobody listens.
        let _ignored = pending.tx.send(answer.clone());
        Some(Resolved {
            session_id,
            roots: pending.roots,
            answer,
        })
    }

    /// Rejects every pending request of a session (on abort or shutdown).
    pub fn reject_session(&self, bus: &Bus, session_id: &str) {
        let ids: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, p)| p.request.session_id == session_id)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.reply(
                bus,
                &id,
                Answer {
                    reply: Reply::Reject,
                    message: Some("the command was aborted".into()),
                },
            );
        }
    }

    /// Withdraws a request without an answer (its command went away).
    pub fn withdraw(&self, id: &str) {
        self.lock().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask() -> Ask {
        Ask {
            session_id: "ses_1".into(),
            message_id: "msg_1".into(),
            call_id: "call".into(),
            command: "cat /etc/hosts".into(),
            paths: vec!["/etc/hosts".into()],
            roots: vec![PathBuf::from("/etc")],
        }
    }

    #[tokio::test]
    async fn ask_should_announce_list_and_deliver_the_answer() {
        let bus = Bus::new("/d", "p", "w");
        let mut events = bus.subscribe();
        let permissions = Permissions::default();
        let (id, rx) = permissions.ask(&bus, ask());
        assert!(id.starts_with("per_"));
        let asked = events.recv().await.unwrap();
        let text = std::str::from_utf8(&asked.instance).unwrap();
        assert!(
            text.contains("\"permission.asked\"") && text.contains("\"always\":[\"/etc/**\"]"),
            "{text}"
        );
        assert_eq!(permissions.list().len(), 1);
        let metadata = &permissions.list()[0].metadata;
        assert_eq!(metadata["parentDir"], "/etc");
        assert_eq!(metadata["filepath"], "/etc/hosts");

        let resolved = permissions
            .reply(
                &bus,
                &id,
                Answer {
                    reply: Reply::Always,
                    message: None,
                },
            )
            .unwrap();
        assert_eq!(resolved.roots, [PathBuf::from("/etc")]);
        assert_eq!(rx.await.unwrap().reply, Reply::Always);
        assert!(permissions.list().is_empty());
        let replied = events.recv().await.unwrap();
        assert!(
            std::str::from_utf8(&replied.instance)
                .unwrap()
                .contains("\"reply\":\"always\"")
        );
        assert!(
            permissions
                .reply(
                    &bus,
                    &id,
                    Answer {
                        reply: Reply::Once,
                        message: None
                    }
                )
                .is_none()
        );
    }

    #[tokio::test]
    async fn reject_session_should_answer_only_that_sessions_requests() {
        let bus = Bus::new("/d", "p", "w");
        let permissions = Permissions::default();
        let (_, rx1) = permissions.ask(&bus, ask());
        let mut other = ask();
        other.session_id = "ses_2".into();
        let (_, _rx2) = permissions.ask(&bus, other);
        permissions.reject_session(&bus, "ses_1");
        assert_eq!(rx1.await.unwrap().reply, Reply::Reject);
        assert_eq!(permissions.list().len(), 1);
    }
}
