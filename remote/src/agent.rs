//! Runs on behalf of a session: the user's `!shell` commands ([`shell`]) and agent prompts
//! ([`prompt`]): the loop that asks the model (through the laptop, [`crate::gateway`]), runs
//! the tools it calls on the host ([`tools`]) and records every step as OpenCode's events.
//! The agent room reaches the other rooms through handles it is given; it never reaches back
//! into the HTTP layer.
//!
//! ```text
//! prompt ──▶ turn ──▶ step ──(model request)──▶ gateway ──▶ laptop ──▶ provider
//!              ▲        │ tool calls
//!              └────────┴──▶ tools ──▶ policy (ask the user) ──▶ crate::tools (execution)
//! ```

pub mod approved;
pub mod command;
pub mod prompt;
pub mod questions;
pub mod request;
pub mod rules;
pub mod shell;
pub mod skills;
pub mod snapshot;
pub mod step;
pub mod system;
pub mod title;
pub mod tools;
pub mod turn;

use std::path::PathBuf;

use protocol::gateway::{Reply, Request, Setup};
use tokio_util::task::TaskTracker;

use crate::gateway::Gateway;
use crate::policy::Policy;
use crate::session::Sessions;
use crate::tools::procs::Procs;

/// What the agent room works with.
#[derive(Debug, Clone)]
pub struct Parts {
    /// Sessions, their logs and the bus.
    pub sessions: Sessions,
    /// Approvals and permission prompts.
    pub policy: Policy,
    /// The road to the laptop (model calls, web fetches).
    pub gateway: Gateway,
    /// Child processes.
    pub procs: Procs,
    /// Where turns run in the background.
    pub tasks: TaskTracker,
    /// The workspace directory.
    pub directory: PathBuf,
    /// The user's home on the host.
    pub home: PathBuf,
    /// The stub's state directory (tool output spills live under it).
    pub state_dir: PathBuf,
    /// The workspace id (approvals are kept per workspace).
    pub workspace_id: String,
}

/// The agent room. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Agent {
    sessions: Sessions,
    policy: Policy,
    gateway: Gateway,
    procs: Procs,
    tasks: TaskTracker,
    directory: PathBuf,
    home: PathBuf,
    state_dir: PathBuf,
    /// Rules the user approved with `always`, kept per workspace.
    approved: std::sync::Arc<approved::Approved>,
    /// Questions waiting for the user.
    questions: std::sync::Arc<questions::Questions>,
    /// The laptop's setup, as last asked, and when.
    setup: std::sync::Arc<std::sync::Mutex<Option<(std::time::Instant, Setup)>>>,
    /// The workspace's file-name safe key (where its snapshots live).
    workspace_key: String,
    /// Snapshots of the work tree are taken one at a time.
    snapshot_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// How long the laptop's setup (agents, commands, permission rules) is reused: a turn, its
/// title and its tasks ask once, and a changed config is seen by the next prompt.
const SETUP_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl Agent {
    /// The agent room over `parts`.
    pub fn new(parts: Parts) -> Agent {
        let Parts {
            sessions,
            policy,
            gateway,
            procs,
            tasks,
            directory,
            home,
            state_dir,
            workspace_id,
        } = parts;
        let approved = std::sync::Arc::new(approved::Approved::load(&state_dir, &workspace_id));
        Agent {
            sessions,
            policy,
            gateway,
            procs,
            tasks,
            directory,
            home,
            state_dir,
            approved,
            questions: std::sync::Arc::default(),
            setup: std::sync::Arc::default(),
            workspace_key: crate::session::store::workspace_key(&workspace_id),
            snapshot_lock: std::sync::Arc::default(),
        }
    }

    /// Snapshots of `worktree` (the git work tree the workspace is in; none outside one).
    fn snapshots(&self, worktree: Option<&std::path::Path>) -> Option<snapshot::Snapshots> {
        Some(snapshot::Snapshots::new(
            snapshot::git_dir(&self.state_dir, &self.workspace_key),
            worktree?.to_path_buf(),
            self.procs.clone(),
            self.snapshot_lock.clone(),
        ))
    }

    /// The user's OpenCode setup, asked from the laptop (reused for [`SETUP_TTL`]); `None`
    /// when the laptop cannot be asked.
    pub async fn setup(&self) -> Option<Setup> {
        let cached = self
            .setup
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .filter(|(at, _)| at.elapsed() < SETUP_TTL)
            .map(|(_, setup)| setup.clone());
        if cached.is_some() {
            return cached;
        }
        let mut answer = self.gateway.request(Request::Setup).await.ok()?;
        while let Some(reply) = answer.next().await {
            match reply {
                Reply::Setup(setup) => {
                    *self
                        .setup
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some((std::time::Instant::now(), (*setup).clone()));
                    return Some(*setup);
                }
                Reply::Error(_) | Reply::End => return None,
                _ => {}
            }
        }
        None
    }

    /// Rules the user approved with `always` in this workspace.
    pub fn approved(&self) -> std::sync::Arc<approved::Approved> {
        self.approved.clone()
    }

    /// The questions waiting for the user.
    pub fn questions(&self) -> &questions::Questions {
        &self.questions
    }

    /// The rules of `agent`: from the laptop's agent list, else OpenCode's defaults.
    pub async fn rules(&self, agent: &str) -> rules::Rules {
        match self.setup().await {
            Some(setup) => rules::Rules::from_agents(&setup.agents, agent)
                .unwrap_or_else(|| rules::Rules::defaults(agent)),
            None => rules::Rules::defaults(agent),
        }
    }
}
