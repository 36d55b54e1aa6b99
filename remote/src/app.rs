//! The stub's shared state: the configuration, the host, and the rooms every handler reaches
//! (sessions, policy, agent, tools), plus the task tracker every background task is spawned on.
//! A thin holder: behaviour lives in the rooms. Cheap to clone.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::api::{Health, StubInfo};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::{Agent, Parts as AgentParts};
use crate::gateway::Gateway;
use crate::handshake::HostInfo;
use crate::policy::Policy;
use crate::session::Sessions;
use crate::session::bus::Bus;
use crate::terminal::Terminals;
use crate::tools::procs::Procs;

/// Stub configuration, fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct Config {
    /// Root of the persistent state (`~/.opencode-remote/state`).
    pub state_dir: PathBuf,
    /// The working directory this session serves.
    pub directory: PathBuf,
    /// Whether the client skipped the handshake.
    pub manual: bool,
    /// OpenCode workspace id from the handshake (empty in manual mode).
    pub workspace_id: String,
    /// OpenCode project id from the handshake (empty in manual mode).
    pub project_id: String,
}

/// Everything handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct App(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    config: Config,
    host: HostInfo,
    started: Instant,
    started_ms: u64,
    procs: Procs,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    sessions: Sessions,
    policy: Policy,
    agent: Agent,
    gateway: Gateway,
    terminals: Terminals,
}

impl App {
    /// Builds the application state and its rooms.
    pub fn new(config: Config, host: HostInfo, procs: Procs, shutdown: CancellationToken) -> App {
        let bus = Bus::new(
            &config.directory.to_string_lossy(),
            &config.project_id,
            &config.workspace_id,
        );
        let tasks = TaskTracker::new();
        let sessions = Sessions::new(
            bus.clone(),
            config.state_dir.clone(),
            config.workspace_id.clone(),
            tasks.clone(),
            shutdown.clone(),
        );
        let terminals = Terminals::new(bus.clone(), procs.clone(), config.directory.clone());
        let policy = Policy::new(config.state_dir.clone(), config.workspace_id.clone(), bus);
        let gateway = Gateway::default();
        let agent = Agent::new(AgentParts {
            sessions: sessions.clone(),
            policy: policy.clone(),
            gateway: gateway.clone(),
            procs: procs.clone(),
            tasks: tasks.clone(),
            directory: config.directory.clone(),
            home: host.home.clone(),
            state_dir: config.state_dir.clone(),
            workspace_id: config.workspace_id.clone(),
        });
        App(Arc::new(Shared {
            config,
            host,
            started: Instant::now(),
            started_ms: crate::session::ids::now_ms(),
            procs,
            shutdown,
            tasks,
            sessions,
            policy,
            agent,
            gateway,
            terminals,
        }))
    }

    /// The sessions room (event log, bus, busy sessions).
    pub fn sessions(&self) -> &Sessions {
        &self.0.sessions
    }

    /// The policy room (approvals, permission requests).
    pub fn policy(&self) -> &Policy {
        &self.0.policy
    }

    /// The agent room (`!shell`).
    pub fn agent(&self) -> &Agent {
        &self.0.agent
    }

    /// The gateway room (requests to the laptop).
    pub fn gateway(&self) -> &Gateway {
        &self.0.gateway
    }

    /// The terminals room (`/pty`).
    pub fn terminals(&self) -> &Terminals {
        &self.0.terminals
    }

    /// The event bus.
    pub fn bus(&self) -> &Bus {
        self.0.sessions.bus()
    }

    /// The remote user's home directory.
    pub fn home(&self) -> &std::path::Path {
        &self.0.host.home
    }

    /// Wall-clock start time of this stub (ms).
    pub fn started_ms(&self) -> u64 {
        self.0.started_ms
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The child process registry.
    pub fn procs(&self) -> &Procs {
        &self.0.procs
    }

    /// Cancelled when the stub is shutting down; long-lived streams end on it.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.0.shutdown
    }

    /// Spawns a background task that the stub waits for (briefly) when it exits.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.tasks.spawn(task)
    }

    /// At exit: stops taking work, waits up to `grace` for background tasks, and flushes the
    /// session logs. Logs when the time limit wins.
    pub async fn close(&self, grace: Duration) {
        self.0.shutdown.cancel();
        // Terminals hang up first (as when a terminal window closes); `Procs` kills the rest.
        self.0.terminals.hang_up_all();
        self.0.tasks.close();
        if tokio::time::timeout(grace, self.0.tasks.wait())
            .await
            .is_err()
        {
            tracing::info!(
                left = self.0.tasks.len(),
                "background tasks still running at exit"
            );
        }
        self.0.sessions.sync();
    }

    /// `GET /global/health`.
    pub fn health(&self) -> Health {
        let host = &self.0.host;
        let config = &self.0.config;
        Health {
            healthy: true,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            stub: StubInfo {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                protocol: protocol::PROTOCOL_VERSION.to_string(),
                pid: host.pid,
                os: host.os.clone(),
                arch: host.arch.clone(),
                kernel: host.kernel.clone(),
                directory: config.directory.to_string_lossy().into_owned(),
                state_dir: config.state_dir.to_string_lossy().into_owned(),
                uptime_secs: self.0.started.elapsed().as_secs(),
                manual: config.manual,
            },
        }
    }
}
