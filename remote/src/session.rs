//! Sessions: the durable per-session event log OpenCode replicates from, the event bus behind
//! the SSE streams, OpenCode-format ids, session records, which sessions are busy, and the
//! recording of a run as OpenCode's events.

pub mod bus;
pub mod history;
pub mod ids;
pub mod info;
pub mod limits;
pub mod record;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::ApiError;
use bus::Bus;
use info::Runs;
use store::Store;

/// The sessions room: the bus, the workspace's event log (opened on first use) and the busy
/// sessions. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sessions(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    bus: Bus,
    state_dir: PathBuf,
    workspace_id: String,
    /// Opened on first use: health checks and manual probes never touch (or take over) the
    /// workspace's state.
    store: tokio::sync::OnceCell<Arc<Store>>,
    runs: Runs,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Sessions {
    /// The room for `workspace_id`, with its log under `state_dir`. Background work (the log's
    /// fsync loop) is spawned on `tasks` and ends with `shutdown`.
    pub fn new(
        bus: Bus,
        state_dir: PathBuf,
        workspace_id: String,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Sessions {
        Sessions(Arc::new(Inner {
            bus,
            state_dir,
            workspace_id,
            store: tokio::sync::OnceCell::new(),
            runs: Runs::default(),
            tasks,
            shutdown,
        }))
    }

    /// The event bus.
    pub fn bus(&self) -> &Bus {
        &self.0.bus
    }

    /// Busy sessions.
    pub fn runs(&self) -> &Runs {
        &self.0.runs
    }

    /// Cancelled when the stub shuts down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.0.shutdown
    }

    /// The workspace's event log, opened (and taken over from another stub) on first use; from
    /// then on it is flushed to disk every second until shutdown.
    ///
    /// # Errors
    ///
    /// When the state directory is unusable.
    pub async fn store(&self) -> Result<Arc<Store>, ApiError> {
        let inner = &self.0;
        let store = inner
            .store
            .get_or_try_init(|| async {
                let state_dir = inner.state_dir.clone();
                let workspace = inner.workspace_id.clone();
                let bus = inner.bus.clone();
                let store =
                    tokio::task::spawn_blocking(move || Store::open(&state_dir, &workspace, bus))
                        .await
                        .map_err(ApiError::internal)?
                        .map_err(ApiError::internal)?;
                let store = Arc::new(store);
                inner
                    .tasks
                    .spawn(sync_loop(store.clone(), inner.shutdown.clone()));
                Ok::<_, ApiError>(store)
            })
            .await?;
        Ok(store.clone())
    }

    /// Flushes the session logs (at exit).
    pub fn sync(&self) {
        if let Some(store) = self.0.store.get() {
            store.sync();
        }
    }
}

/// Flushes the log to disk every second, and once more at shutdown.
async fn sync_loop(store: Arc<Store>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => {}
        }
        let syncing = store.clone();
        // A failed join only means the runtime is going away.
        let _ignored = tokio::task::spawn_blocking(move || syncing.sync()).await;
        if shutdown.is_cancelled() {
            return;
        }
    }
}
