//! The stub's shared state: the configuration, the host, and the rooms every handler reaches
//! (sessions, policy, tools). Cheap to clone.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::api::{Health, StubInfo};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::handshake::HostInfo;
use crate::policy::approvals::Approvals;
use crate::policy::permissions::Permissions;
use crate::session::bus::Bus;
use crate::session::info::Runs;
use crate::session::store::Store;
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
    bus: Bus,
    /// Opened on first use: health checks and manual probes never touch (or take over) the
    /// workspace's state.
    store: tokio::sync::OnceCell<Arc<Store>>,
    approvals: tokio::sync::OnceCell<Arc<Mutex<Approvals>>>,
    permissions: Permissions,
    runs: Runs,
}

impl App {
    /// Builds the application state.
    pub fn new(config: Config, host: HostInfo, procs: Procs, shutdown: CancellationToken) -> App {
        let bus = Bus::new(
            &config.directory.to_string_lossy(),
            &config.project_id,
            &config.workspace_id,
        );
        App(Arc::new(Shared {
            config,
            host,
            started: Instant::now(),
            started_ms: crate::session::ids::now_ms(),
            procs,
            shutdown,
            bus,
            store: tokio::sync::OnceCell::new(),
            approvals: tokio::sync::OnceCell::new(),
            permissions: Permissions::default(),
            runs: Runs::default(),
        }))
    }

    /// The event bus.
    pub fn bus(&self) -> &Bus {
        &self.0.bus
    }

    /// The workspace's session store, opened (and taken over from another stub) on first use.
    ///
    /// # Errors
    ///
    /// When the state directory is unusable.
    pub async fn store(&self) -> Result<Arc<Store>, ApiError> {
        let store = self
            .0
            .store
            .get_or_try_init(|| async {
                let state_dir = self.0.config.state_dir.clone();
                let workspace = self.0.config.workspace_id.clone();
                let bus = self.0.bus.clone();
                let store =
                    tokio::task::spawn_blocking(move || Store::open(&state_dir, &workspace, bus))
                        .await
                        .map_err(ApiError::internal)?
                        .map_err(ApiError::internal)?;
                let store = Arc::new(store);
                // Flush the logs to disk every second while we run.
                let syncing = store.clone();
                let shutdown = self.0.shutdown.clone();
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(1));
                    loop {
                        tokio::select! {
                            _ = tick.tick() => {}
                            () = shutdown.cancelled() => {}
                        }
                        let store = syncing.clone();
                        // A failed join only means the runtime is going away.
                        let _ignored = tokio::task::spawn_blocking(move || store.sync()).await;
                        if shutdown.is_cancelled() {
                            return;
                        }
                    }
                });
                Ok::<_, ApiError>(store)
            })
            .await?;
        Ok(store.clone())
    }

    /// Flushes the session logs (at exit).
    pub fn sync_store(&self) {
        if let Some(store) = self.0.store.get() {
            store.sync();
        }
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
                let state_dir = self.0.config.state_dir.clone();
                let workspace = self.0.config.workspace_id.clone();
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

    /// Pending permission requests.
    pub fn permissions(&self) -> &Permissions {
        &self.0.permissions
    }

    /// Busy sessions.
    pub fn runs(&self) -> &Runs {
        &self.0.runs
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
