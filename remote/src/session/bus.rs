//! The event bus behind `/global/event` and `/event`.
//!
//! Every published event is serialised once, in both forms OpenCode reads: the global envelope
//! `{"directory","project","workspace","payload"}` for `/global/event`, and the bare payload
//! for the per-instance `/event` stream. A subscriber that falls behind by more than the
//! channel capacity is disconnected rather than silently skipped: OpenCode then reconnects and
//! catches up through `/sync/history`, so nothing durable is lost.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::http::sse;

/// How many events a subscriber may lag behind before it is cut off.
const CAPACITY: usize = 4096;

/// One published event, pre-encoded as SSE frames.
#[derive(Debug)]
pub struct Published {
    /// SSE frame for `/global/event`.
    pub global: Bytes,
    /// SSE frame for `/event`.
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
    pub fn envelope(&self, payload: &Value) -> Value {
        let mut envelope = json!({ "directory": &*self.directory, "payload": payload });
        if !self.project.is_empty() {
            envelope["project"] = json!(&*self.project);
        }
        if !self.workspace.is_empty() {
            envelope["workspace"] = json!(&*self.workspace);
        }
        envelope
    }

    /// Publishes a payload (`{"id","type","properties"}` or a sync payload). Returns silently
    /// when nobody listens.
    pub fn publish(&self, payload: Value) {
        // Sync payloads exist only in the global stream (OpenCode's per-instance /event never
        // carries them): the instance form stays empty and /event skips it.
        let instance = if payload["type"] == "sync" {
            Bytes::new()
        } else {
            sse::encode(None, None, &payload.to_string())
        };
        let published = Published {
            global: sse::encode(None, None, &self.envelope(&payload).to_string()),
            instance,
        };
        // An error only means there are no subscribers right now.
        let _no_subscribers = self.tx.send(Arc::new(published));
    }

    /// Publishes a bus event `{id, type, properties}` with a fresh `evt_` id.
    pub fn event(&self, kind: &str, properties: Value) {
        self.publish(json!({
            "id": crate::session::ids::new("evt", crate::session::ids::Order::Ascending),
            "type": kind,
            "properties": properties,
        }));
    }

    /// A payload that is not tied to this directory (heartbeat, connected) in the global form
    /// OpenCode sends for them: `{"payload": …}` only.
    pub fn bare(payload: &Value) -> Bytes {
        sse::encode(None, None, &json!({ "payload": payload }).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn publish_should_reach_subscribers_in_both_forms() {
        let bus = Bus::new("/srv", "proj", "wrk_1");
        let mut rx = bus.subscribe();
        bus.event("session.idle", json!({ "sessionID": "ses_x" }));
        let published = rx.recv().await.unwrap();
        let global = std::str::from_utf8(&published.global).unwrap();
        let envelope: Value =
            serde_json::from_str(global.trim().strip_prefix("data: ").unwrap()).unwrap();
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
        let instance = std::str::from_utf8(&published.instance).unwrap();
        let payload: Value =
            serde_json::from_str(instance.trim().strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(payload, envelope["payload"]);
    }

    #[tokio::test]
    async fn slow_subscribers_should_see_lag_not_silent_loss() {
        let bus = Bus::new("/srv", "", "");
        let mut rx = bus.subscribe();
        for _ in 0..CAPACITY + 10 {
            bus.event("x", json!({}));
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
    }
}
