//! The event bus behind `/global/event` and `/event`.
//!
//! Every published event is serialised once, in both forms OpenCode reads: the global envelope
//! `{"directory","project","workspace","payload"}` for `/global/event`, and the bare payload
//! for the per-instance `/event` stream. A subscriber that falls behind by more than the
//! channel capacity is disconnected rather than silently skipped: OpenCode then reconnects and
//! catches up through `/sync/history`, so nothing durable is lost.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::opencode::event::{BusEvent, Envelope, Row};
use crate::session::ids::{self, Order};

/// How many events a subscriber may lag behind before it is cut off.
const CAPACITY: usize = 4096;

/// One published event, serialised as JSON (one line, no newline).
#[derive(Debug)]
pub struct Published {
    /// The global envelope, for `/global/event`.
    pub global: Bytes,
    /// The bare payload, for `/event`; empty for events that stream does not carry.
    pub instance: Bytes,
}

/// Cheap-to-clone bus handle.
#[derive(Debug, Clone)]
pub struct Bus {
    tx: broadcast::Sender<Arc<Published>>,
    directory: Arc<str>,
    project: Arc<str>,
    workspace: Arc<str>,
}

impl Bus {
    /// A bus whose envelopes carry this directory, project and workspace.
    pub fn new(directory: &str, project: &str, workspace: &str) -> Bus {
        let (tx, _) = broadcast::channel(CAPACITY);
        Bus {
            tx,
            directory: directory.into(),
            project: project.into(),
            workspace: workspace.into(),
        }
    }

    /// Subscribes to everything published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }

    /// Wraps a payload in the global envelope.
    fn envelope<'a>(&'a self, payload: &'a Value) -> Envelope<'a> {
        let given = |text: &'a str| (!text.is_empty()).then_some(text);
        Envelope {
            directory: Some(&self.directory),
            project: given(&self.project),
            workspace: given(&self.workspace),
            payload,
        }
    }

    /// Publishes a payload in both forms (`instance: false`: the global stream only). Returns
    /// silently when nobody listens.
    fn publish(&self, payload: &Value, instance: bool) {
        let published = Published {
            global: Bytes::from(serde_json::to_vec(&self.envelope(payload)).unwrap_or_default()),
            instance: if instance {
                Bytes::from(payload.to_string())
            } else {
                Bytes::new()
            },
        };
        // An error only means there are no subscribers right now.
        let _no_subscribers = self.tx.send(Arc::new(published));
    }

    /// Publishes a bus-only event with a fresh `evt_` id.
    pub fn emit(&self, event: &BusEvent) {
        self.publish(&event.payload(&ids::new("evt", Order::Ascending)), true);
    }

    /// Publishes a stored durable event: its bus form, then its sync form (same id). Sync
    /// payloads exist only in the global stream (OpenCode's per-instance `/event` never
    /// carries them).
    pub fn publish_row(&self, row: &Row) {
        self.publish(&row.bus_payload(), true);
        self.publish(&row.sync_payload(), false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn publish_should_reach_subscribers_in_both_forms() {
        let bus = Bus::new("/srv", "proj", "wrk_1");
        let mut rx = bus.subscribe();
        bus.emit(&BusEvent::SessionIdle {
            session_id: "ses_x".into(),
        });
        let published = rx.recv().await.unwrap();
        let envelope: Value = serde_json::from_slice(&published.global).unwrap();
        assert_eq!(envelope["directory"], "/srv");
        assert_eq!(envelope["project"], "proj");
        assert_eq!(envelope["workspace"], "wrk_1");
        assert_eq!(envelope["payload"]["type"], "session.idle");
        assert!(
            envelope["payload"]["id"]
                .as_str()
                .unwrap()
                .starts_with("evt_")
        );
        let payload: Value = serde_json::from_slice(&published.instance).unwrap();
        assert_eq!(payload, envelope["payload"]);
    }

    #[tokio::test]
    async fn slow_subscribers_should_see_lag_not_silent_loss() {
        let bus = Bus::new("/srv", "", "");
        let mut rx = bus.subscribe();
        for _ in 0..CAPACITY + 10 {
            bus.emit(&BusEvent::ServerHeartbeat {});
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
    }
}
