//! Permission-first access: which paths a command touches ([`analyze`]), the roots a workspace
//! approved ([`approvals`]), the pending permission requests ([`permissions`]), and the check
//! that ties them together before anything runs ([`Policy::check_command`]).

pub mod analyze;
pub mod approvals;
pub mod permissions;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use analyze::{Access, AccessKind, Analysis, analyze, is_within, resolve};
use approvals::Approvals;
use permissions::{Ask, Permissions, Reply};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::session::bus::Bus;

/// The policy room: the workspace's approvals (loaded on first use) and its pending requests.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Policy(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    state_dir: PathBuf,
    workspace_id: String,
    approvals: tokio::sync::OnceCell<Arc<Mutex<Approvals>>>,
    permissions: Permissions,
    bus: Bus,
}

/// A command's place in a session, for the permission prompt.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The session.
    pub session_id: String,
    /// The assistant message holding the tool call.
    pub message_id: String,
    /// The tool call.
    pub call_id: String,
}

/// A path a command or tool reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// Resolved absolute path.
    pub path: PathBuf,
    /// Whether all of it is reached (a directory worked in), not just the entry.
    pub whole: bool,
}

/// Why a command may not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The user rejected it; the message says what and why.
    Rejected(String),
    /// The run was aborted while the question was open.
    Aborted,
    /// The check itself failed (the message says why).
    Failed(String),
}

impl Policy {
    /// The room for `workspace_id` (approvals under `state_dir`), announcing requests on `bus`.
    pub fn new(state_dir: PathBuf, workspace_id: String, bus: Bus) -> Policy {
        Policy(Arc::new(Inner {
            state_dir,
            workspace_id,
            approvals: tokio::sync::OnceCell::new(),
            permissions: Permissions::default(),
            bus,
        }))
    }

    /// Pending permission requests.
    pub fn permissions(&self) -> &Permissions {
        &self.0.permissions
    }

    /// The bus requests are announced on.
    pub fn bus(&self) -> &Bus {
        &self.0.bus
    }

    /// The workspace's persisted approvals, loaded on first use.
    ///
    /// # Errors
    ///
    /// When the approvals file is unusable (the message says why).
    pub async fn approvals(&self) -> Result<Arc<Mutex<Approvals>>, ApiError> {
        let approvals = self
            .0
            .approvals
            .get_or_try_init(|| async {
                let state_dir = self.0.state_dir.clone();
                let workspace = self.0.workspace_id.clone();
                let loaded =
                    tokio::task::spawn_blocking(move || Approvals::load(&state_dir, &workspace))
                        .await
                        .map_err(ApiError::internal)?
                        .map_err(ApiError::internal)?;
                Ok::<_, ApiError>(Arc::new(Mutex::new(loaded)))
            })
            .await?;
        Ok(approvals.clone())
    }

    /// Persists `roots` as approved for this workspace.
    ///
    /// # Errors
    ///
    /// 507 when the disk is full, 500 otherwise.
    pub async fn approve(&self, roots: Vec<PathBuf>) -> Result<(), ApiError> {
        let approvals = self.approvals().await?;
        tokio::task::spawn_blocking(move || {
            approvals
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .approve(&roots)
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
    }

    /// Checks the paths `command` reaches from `cwd` against the approved roots; for any
    /// outside them, asks the user (`permission.asked`) and waits for the answer or `cancel`.
    ///
    /// # Errors
    ///
    /// [`Denied`] when the command must not run.
    pub async fn check_command(
        &self,
        caller: Caller,
        command: &str,
        cwd: &Path,
        home: &Path,
        cancel: &CancellationToken,
    ) -> Result<(), Denied> {
        self.check_command_within(caller, command, cwd, home, &[], cancel)
            .await
    }

    /// [`Policy::check_command`], with `implicit` roots allowed without approval (the agent's
    /// workspace directory).
    ///
    /// # Errors
    ///
    /// [`Denied`] when the command must not run.
    pub async fn check_command_within(
        &self,
        caller: Caller,
        command: &str,
        cwd: &Path,
        home: &Path,
        implicit: &[PathBuf],
        cancel: &CancellationToken,
    ) -> Result<(), Denied> {
        let analysis = {
            let (command, cwd, home) = (command.to_owned(), cwd.to_owned(), home.to_owned());
            tokio::task::spawn_blocking(move || analyze(&command, &cwd, &home))
                .await
                .map_err(|err| Denied::Failed(format!("cannot analyse the command: {err}")))?
        };
        let reach: Vec<Reach> = analysis
            .paths
            .iter()
            .map(|access| Reach {
                path: access.resolved.clone(),
                whole: access.is_dir
                    || matches!(access.kind, AccessKind::Cwd | AccessKind::ChangeDirectory),
            })
            .collect();
        self.check_reach(caller, command, &reach, implicit, cancel)
            .await
    }

    /// Checks that every path in `reach` is within an approved root or one of `implicit`
    /// (the workspace's own directories); for any outside, asks the user on behalf of `what`
    /// (a command line, or a tool and its path) and waits for the answer or `cancel`.
    ///
    /// # Errors
    ///
    /// [`Denied`] when the caller must not go on.
    pub async fn check_reach(
        &self,
        caller: Caller,
        what: &str,
        reach: &[Reach],
        implicit: &[PathBuf],
        cancel: &CancellationToken,
    ) -> Result<(), Denied> {
        let approvals = self
            .approvals()
            .await
            .map_err(|err| Denied::Failed(format!("cannot read approvals: {err}")))?;
        let unapproved: Vec<&Reach> = {
            let approvals = approvals
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            reach
                .iter()
                .filter(|access| !implicit.iter().any(|root| is_within(&access.path, root)))
                .filter(|access| !approvals.is_approved(&access.path))
                .collect()
        };
        if unapproved.is_empty() {
            return Ok(());
        }
        let mut roots = Vec::new();
        let mut shown = Vec::new();
        for access in &unapproved {
            let root = if access.whole {
                access.path.clone()
            } else {
                access
                    .path
                    .parent()
                    .map_or_else(|| access.path.clone(), Path::to_path_buf)
            };
            if !roots.contains(&root) {
                roots.push(root);
            }
            let path = access.path.display().to_string();
            if !shown.contains(&path) {
                shown.push(path);
            }
        }
        let (request_id, answer) = self.permissions().ask(
            self.bus(),
            Ask {
                session_id: caller.session_id,
                message_id: caller.message_id,
                call_id: caller.call_id,
                command: what.to_owned(),
                paths: shown.clone(),
                roots,
            },
        );
        let answer = tokio::select! {
            // An abort also rejects the pending request: it must count as the abort it is.
            biased;
            () = cancel.cancelled() => {
                self.permissions().withdraw(&request_id);
                return Err(Denied::Aborted);
            }
            answer = answer => answer
                .map_err(|_| Denied::Failed("the permission request was withdrawn".into()))?,
        };
        match answer.reply {
            Reply::Once | Reply::Always => Ok(()),
            Reply::Reject => {
                let who = match answer.message.filter(|m| !m.is_empty()) {
                    Some(note) => format!("rejected by the user: {note}"),
                    None => "rejected by the user".to_owned(),
                };
                Err(Denied::Rejected(format!(
                    "Permission denied: {} outside the approved directories of this workspace ({who})",
                    shown.join(", ")
                )))
            }
        }
    }
}
