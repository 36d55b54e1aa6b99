//! A session's conversation as it stands: its log folded into messages with their parts, each
//! in its latest state and in the order it first appeared (what OpenCode's replica shows, and
//! what the agent sends the model on every step).

use std::collections::HashMap;

use crate::opencode::event::{Row, SyncEvent};
use crate::opencode::message::WithParts;

/// Folds a session's rows (in seq order) into its messages.
pub fn fold(rows: impl IntoIterator<Item = Row>) -> Vec<WithParts> {
    let mut messages: Vec<WithParts> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    // Parts may be stored before the message they belong to is known to us (never in our own
    // logs, but replayed ones are not ours): keep them until it is.
    let mut orphans: Vec<crate::opencode::part::Part> = Vec::new();
    for row in rows {
        match SyncEvent::parse(&row.kind, &row.data) {
            Some(SyncEvent::MessageUpdated(message)) => match index.get(message.id()) {
                Some(&at) => messages[at].info = message,
                None => {
                    index.insert(message.id().to_owned(), messages.len());
                    let id = message.id().to_owned();
                    let (mine, rest): (Vec<_>, Vec<_>) =
                        orphans.into_iter().partition(|part| part.message_id == id);
                    orphans = rest;
                    messages.push(WithParts {
                        info: message,
                        parts: mine,
                    });
                }
            },
            Some(SyncEvent::PartUpdated { part, .. }) => match index.get(&part.message_id) {
                Some(&at) => {
                    let parts = &mut messages[at].parts;
                    match parts.iter_mut().find(|p| p.id == part.id) {
                        Some(existing) => *existing = part,
                        None => parts.push(part),
                    }
                }
                None => orphans.push(part),
            },
            Some(SyncEvent::MessageRemoved { message_id }) => {
                if let Some(at) = index.remove(&message_id) {
                    messages.remove(at);
                    for slot in index.values_mut().filter(|slot| **slot > at) {
                        *slot -= 1;
                    }
                }
            }
            Some(SyncEvent::PartRemoved {
                message_id,
                part_id,
            }) => {
                if let Some(&at) = index.get(&message_id) {
                    messages[at].parts.retain(|part| part.id != part_id);
                }
            }
            _ => {}
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opencode::message::Message;
    use crate::opencode::part::{Part, PartKind, TextPart};
    use serde_json::json;

    fn row(seq: u64, event: &SyncEvent) -> Row {
        Row {
            id: format!("evt_{seq}"),
            aggregate_id: "ses_1".into(),
            seq,
            kind: event.kind().into(),
            data: event.data("ses_1"),
        }
    }

    fn user(id: &str) -> Message {
        serde_json::from_value(
            json!({"id":id,"sessionID":"ses_1","role":"user","time":{"created":1},
            "agent":"build","model":{"providerID":"p","modelID":"m"}}),
        )
        .unwrap()
    }

    fn text(id: &str, message: &str, text: &str) -> SyncEvent {
        SyncEvent::PartUpdated {
            part: Part {
                id: id.into(),
                message_id: message.into(),
                session_id: "ses_1".into(),
                kind: PartKind::Text(TextPart {
                    text: text.into(),
                    ..TextPart::default()
                }),
            },
            time: 1,
        }
    }

    #[test]
    fn fold_should_keep_the_latest_state_in_first_seen_order() {
        let rows = vec![
            row(0, &SyncEvent::MessageUpdated(user("msg_1"))),
            row(1, &text("prt_1", "msg_1", "")),
            row(2, &text("prt_2", "msg_1", "second")),
            row(3, &text("prt_1", "msg_1", "first")),
            row(4, &SyncEvent::MessageUpdated(user("msg_2"))),
            row(5, &SyncEvent::MessageUpdated(user("msg_1"))),
            row(
                6,
                &SyncEvent::PartRemoved {
                    message_id: "msg_1".into(),
                    part_id: "prt_2".into(),
                },
            ),
        ];
        let messages = fold(rows);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].info.id(), "msg_1");
        assert_eq!(messages[0].parts.len(), 1);
        assert!(matches!(&messages[0].parts[0].kind, PartKind::Text(t) if t.text == "first"));
        assert!(matches!(messages[1].info, Message::User(_)));
    }
}
