//! Events: durable (sync) events with their versions, bus-only events, and the payload shapes
//! they travel in on `/global/event` and `/event`.
//!
//! A durable event is stored in the session's log and published twice (SPEC §7.2): as the bus
//! payload `{id, type: "<name>", properties: data}` and as the sync payload
//! `{type: "sync", id, syncEvent: {id, type: "<name>.<version>", seq, aggregateID, data}}`.
//! Bus-only events have the first form only and are never replayed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::message::{Message, MessageError};
use super::part::Part;
use super::permission::{PermissionRequest, Reply};
use super::pty::Pty;
use super::question::QuestionRequest;
use super::session::{FileDiff, Session, Status};

/// A durable event: its data (the session id is added when it is written).
#[derive(Debug, Clone, PartialEq)]
pub enum SyncEvent {
    /// `session.created.1`
    SessionCreated(Session),
    /// `session.updated.1`
    SessionUpdated(Session),
    /// `session.deleted.1`
    SessionDeleted(Session),
    /// `message.updated.1`
    MessageUpdated(Message),
    /// `message.removed.1`
    MessageRemoved {
        /// The message.
        message_id: String,
    },
    /// `message.part.updated.1`
    PartUpdated {
        /// The part as it is now.
        part: Part,
        /// When (ms).
        time: u64,
    },
    /// `message.part.removed.1`
    PartRemoved {
        /// The message.
        message_id: String,
        /// The part.
        part_id: String,
    },
}

/// The versioned type names of durable events OpenCode 1.18.33 accepts from a v1 remote.
pub const SYNC_TYPES: [&str; 7] = [
    "session.created.1",
    "session.updated.1",
    "session.deleted.1",
    "message.updated.1",
    "message.removed.1",
    "message.part.updated.1",
    "message.part.removed.1",
];

impl SyncEvent {
    /// `<name>.<version>`, as stored and replayed.
    pub fn kind(&self) -> &'static str {
        match self {
            SyncEvent::SessionCreated(_) => "session.created.1",
            SyncEvent::SessionUpdated(_) => "session.updated.1",
            SyncEvent::SessionDeleted(_) => "session.deleted.1",
            SyncEvent::MessageUpdated(_) => "message.updated.1",
            SyncEvent::MessageRemoved { .. } => "message.removed.1",
            SyncEvent::PartUpdated { .. } => "message.part.updated.1",
            SyncEvent::PartRemoved { .. } => "message.part.removed.1",
        }
    }

    /// The event's `data`, with `sessionID` (the aggregate) first.
    pub fn data(&self, session_id: &str) -> Value {
        let mut data = serde_json::Map::new();
        data.insert("sessionID".into(), Value::from(session_id));
        let mut put = |key: &str, value: Value| {
            data.insert(key.into(), value);
        };
        match self {
            SyncEvent::SessionCreated(info)
            | SyncEvent::SessionUpdated(info)
            | SyncEvent::SessionDeleted(info) => put("info", to_value(info)),
            SyncEvent::MessageUpdated(info) => put("info", to_value(info)),
            SyncEvent::MessageRemoved { message_id } => {
                put("messageID", message_id.as_str().into())
            }
            SyncEvent::PartUpdated { part, time } => {
                put("part", to_value(part));
                put("time", (*time).into());
            }
            SyncEvent::PartRemoved {
                message_id,
                part_id,
            } => {
                put("messageID", message_id.as_str().into());
                put("partID", part_id.as_str().into());
            }
        }
        Value::Object(data)
    }

    /// Reads a stored or replayed event back. `None` when `kind` is not a known durable type
    /// or `data` does not have its shape.
    pub fn parse(kind: &str, data: &Value) -> Option<SyncEvent> {
        let field = |key: &str| data.get(key);
        let text = |key: &str| field(key)?.as_str().map(str::to_owned);
        Some(match kind {
            "session.created.1" => SyncEvent::SessionCreated(typed(data, "info")?),
            "session.updated.1" => SyncEvent::SessionUpdated(typed(data, "info")?),
            "session.deleted.1" => SyncEvent::SessionDeleted(typed(data, "info")?),
            "message.updated.1" => SyncEvent::MessageUpdated(typed(data, "info")?),
            "message.removed.1" => SyncEvent::MessageRemoved {
                message_id: text("messageID")?,
            },
            "message.part.updated.1" => SyncEvent::PartUpdated {
                part: typed(data, "part")?,
                time: field("time")?.as_u64()?,
            },
            "message.part.removed.1" => SyncEvent::PartRemoved {
                message_id: text("messageID")?,
                part_id: text("partID")?,
            },
            _ => return None,
        })
    }
}

fn typed<T: serde::de::DeserializeOwned>(data: &Value, key: &str) -> Option<T> {
    T::deserialize(data.get(key)?).ok()
}

fn to_value<T: Serialize>(value: &T) -> Value {
    // The schema types hold only strings, numbers, maps and JSON values: they always serialize.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The bus form's `type` of a durable event: its kind without the version.
pub fn bus_name(kind: &str) -> &str {
    kind.rsplit_once('.').map_or(kind, |(name, _version)| name)
}

/// Bus-only events: published live, never stored or replayed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "properties")]
pub enum BusEvent {
    /// First event of every stream.
    #[serde(rename = "server.connected")]
    ServerConnected {},
    /// Every 10 s on every stream.
    #[serde(rename = "server.heartbeat")]
    ServerHeartbeat {},
    /// A session became busy, idle or waits to retry.
    #[serde(rename = "session.status")]
    SessionStatus {
        /// The session.
        #[serde(rename = "sessionID")]
        session_id: String,
        /// Its status.
        status: Status,
    },
    /// A session's run ended.
    #[serde(rename = "session.idle")]
    SessionIdle {
        /// The session.
        #[serde(rename = "sessionID")]
        session_id: String,
    },
    /// A session's run failed (the assistant message carries the same error).
    #[serde(rename = "session.error")]
    SessionError {
        /// The session.
        #[serde(rename = "sessionID")]
        session_id: String,
        /// What failed.
        error: MessageError,
    },
    /// The files a session changed.
    #[serde(rename = "session.diff")]
    SessionDiff {
        /// The session.
        #[serde(rename = "sessionID")]
        session_id: String,
        /// Per-file changes.
        diff: Vec<FileDiff>,
    },
    /// Streaming text of a part (not stored: the part is stored whole when it ends).
    #[serde(rename = "message.part.delta")]
    PartDelta {
        /// The session.
        #[serde(rename = "sessionID")]
        session_id: String,
        /// The message.
        #[serde(rename = "messageID")]
        message_id: String,
        /// The part.
        #[serde(rename = "partID")]
        part_id: String,
        /// The field that grows (`text`).
        field: String,
        /// What was added.
        delta: String,
    },
    /// A tool waits for the user's permission.
    #[serde(rename = "permission.asked")]
    PermissionAsked(PermissionRequest),
    /// The user answered (or the request was withdrawn as rejected).
    #[serde(rename = "permission.replied")]
    PermissionReplied {
        /// The session.
        #[serde(rename = "sessionID")]
        session_id: String,
        /// The request.
        #[serde(rename = "requestID")]
        request_id: String,
        /// The answer.
        reply: Reply,
    },
    /// The `question` tool waits for the user's answers.
    #[serde(rename = "question.asked")]
    QuestionAsked(QuestionRequest),
    /// The user answered a question.
    #[serde(rename = "question.replied")]
    QuestionReplied {
        /// The session.
        #[serde(rename = "sessionID")]
        session_id: String,
        /// The request.
        #[serde(rename = "requestID")]
        request_id: String,
        /// One list of chosen labels per question.
        answers: Vec<Vec<String>>,
    },
    /// The user dismissed a question (or its turn was aborted).
    #[serde(rename = "question.rejected")]
    QuestionRejected {
        /// The session.
        #[serde(rename = "sessionID")]
        session_id: String,
        /// The request.
        #[serde(rename = "requestID")]
        request_id: String,
    },
    /// A session's todo list changed.
    #[serde(rename = "todo.updated")]
    TodoUpdated {
        /// The session.
        #[serde(rename = "sessionID")]
        session_id: String,
        /// The whole list.
        todos: Vec<Value>,
    },
    /// A terminal was opened.
    #[serde(rename = "pty.created")]
    PtyCreated {
        /// The terminal.
        info: Pty,
    },
    /// A terminal's title or size changed.
    #[serde(rename = "pty.updated")]
    PtyUpdated {
        /// The terminal.
        info: Pty,
    },
    /// A terminal's program ended.
    #[serde(rename = "pty.exited")]
    PtyExited {
        /// The terminal.
        id: String,
        /// Its exit code.
        #[serde(rename = "exitCode")]
        exit_code: i32,
    },
    /// A terminal was closed and forgotten.
    #[serde(rename = "pty.deleted")]
    PtyDeleted {
        /// The terminal.
        id: String,
    },
    /// A tool edited a file.
    #[serde(rename = "file.edited")]
    FileEdited {
        /// Absolute path.
        file: String,
    },
}

impl BusEvent {
    /// The payload `{id, type, properties}` with `id`.
    pub fn payload(&self, id: &str) -> Value {
        let mut value = to_value(self);
        if let Value::Object(map) = &mut value {
            // `id` first, as OpenCode writes it.
            let mut payload = serde_json::Map::with_capacity(3);
            payload.insert("id".into(), Value::from(id));
            payload.append(map);
            if !payload.contains_key("properties") {
                payload.insert("properties".into(), Value::Object(serde_json::Map::new()));
            }
            return Value::Object(payload);
        }
        value
    }
}

/// The envelope of `/global/event` (`GlobalEvent`). Events not tied to a directory (the
/// hello and heartbeats) carry the payload only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope<'a> {
    /// The directory the event belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<&'a str>,
    /// The project id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<&'a str>,
    /// The workspace id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<&'a str>,
    /// The event.
    pub payload: &'a Value,
}

/// A stored durable event, as `/sync/history` returns it (`SerializedEvent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// `evt_…`
    pub id: String,
    /// The session.
    pub aggregate_id: String,
    /// Position in the session's log, from 0.
    pub seq: u64,
    /// `<name>.<version>`
    #[serde(rename = "type")]
    pub kind: String,
    /// Event data.
    pub data: Value,
}

impl Row {
    /// The bus payload `{id, type: "<name>", properties: data}`.
    pub fn bus_payload(&self) -> Value {
        serde_json::json!({ "id": self.id, "type": bus_name(&self.kind), "properties": self.data })
    }

    /// The sync payload `{type: "sync", id, syncEvent: {id, type, seq, aggregateID, data}}`.
    pub fn sync_payload(&self) -> Value {
        serde_json::json!({
            "type": "sync",
            "id": self.id,
            "syncEvent": {
                "id": self.id,
                "type": self.kind,
                "seq": self.seq,
                "aggregateID": self.aggregate_id,
                "data": self.data,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opencode::part::{PartKind, TextPart};
    use serde_json::json;

    #[test]
    fn bus_events_should_have_opencodes_payload_shape() {
        let status = BusEvent::SessionStatus {
            session_id: "ses_1".into(),
            status: Status::Busy,
        };
        assert_eq!(
            status.payload("evt_1"),
            json!({"id":"evt_1","type":"session.status","properties":{"sessionID":"ses_1","status":{"type":"busy"}}})
        );
        assert_eq!(
            BusEvent::ServerHeartbeat {}.payload("evt_2"),
            json!({"id":"evt_2","type":"server.heartbeat","properties":{}})
        );
        let retry = Status::Retry {
            attempt: 1,
            message: "Rate limit".into(),
            next: 5,
        };
        assert_eq!(
            serde_json::to_value(retry).unwrap(),
            json!({"type":"retry","attempt":1,"message":"Rate limit","next":5})
        );
    }

    #[test]
    fn sync_events_should_round_trip_through_their_data() {
        let part = Part {
            id: "prt_1".into(),
            message_id: "msg_1".into(),
            session_id: "ses_1".into(),
            kind: PartKind::Text(TextPart {
                text: "hi".into(),
                ..TextPart::default()
            }),
        };
        let event = SyncEvent::PartUpdated { part, time: 7 };
        let data = event.data("ses_1");
        assert_eq!(data["sessionID"], "ses_1");
        assert_eq!(data["part"]["type"], "text");
        assert_eq!(
            SyncEvent::parse("message.part.updated.1", &data),
            Some(event)
        );
        assert_eq!(SyncEvent::parse("message.part.updated.2", &data), None);
        assert_eq!(bus_name("message.part.updated.1"), "message.part.updated");
    }
}
