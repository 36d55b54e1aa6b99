//! One session's log file: loading it (cutting a torn or corrupt tail) and what a stub that
//! went away mid-run left open in it.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::opencode::event::{Row, SyncEvent};
use crate::opencode::message::{AssistantMessage, Message, MessageError};
use crate::opencode::part::{Finished, Part, PartKind, ToolState};
use crate::opencode::session::Session;

use super::{INTERRUPTED_MESSAGE, INTERRUPTED_TOOL};
use super::{StoreError, io_error};

/// Largest accepted line in a log file (a tool part with capped output stays far below).
const MAX_LINE: usize = 16 << 20;

/// Parses one log line; `None` for anything but a complete row.
pub(super) fn parse_line(line: &[u8]) -> Option<Row> {
    serde_json::from_slice(line).ok()
}

/// What [`load`] found in a valid log.
pub(super) struct Loaded {
    /// The open file, positioned for appending.
    pub file: File,
    /// Latest session info.
    pub info: Session,
    /// Next seq to assign.
    pub next_seq: u64,
    /// Whether the session was deleted.
    pub deleted: bool,
    /// Runs the previous stub left open.
    pub unfinished: Unfinished,
    /// Ids of the session's messages.
    pub message_ids: Vec<String>,
}

/// Reads a session log, truncating a torn or corrupt tail. `None` when nothing valid is left
/// (the file is then removed).
pub(super) fn load(path: &Path, session_id: &str) -> Result<Option<Loaded>, StoreError> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .open(path)
        .map_err(io_error(path))?;
    let mut reader = BufReader::new(&mut file);
    let mut valid_len: u64 = 0;
    let mut next_seq = 0u64;
    let mut info = None;
    let mut deleted = false;
    let mut unfinished = Unfinished::default();
    let mut message_ids = Vec::new();
    let mut line = Vec::new();
    let mut problem = None;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(io_error(path))?;
        if n == 0 {
            break;
        }
        let complete = line.last() == Some(&b'\n');
        let row = if complete && line.len() <= MAX_LINE {
            parse_line(&line)
        } else {
            None
        };
        match row {
            Some(row) if row.seq == next_seq && row.aggregate_id == session_id => {
                valid_len += n as u64;
                next_seq += 1;
                match SyncEvent::parse(&row.kind, &row.data) {
                    Some(SyncEvent::SessionCreated(i) | SyncEvent::SessionUpdated(i)) => {
                        info = Some(i);
                    }
                    Some(SyncEvent::SessionDeleted(_)) => deleted = true,
                    Some(event) => {
                        if let SyncEvent::MessageUpdated(message) = &event
                            && !message_ids.iter().any(|id| id == message.id())
                        {
                            message_ids.push(message.id().to_owned());
                        }
                        unfinished.track(event);
                    }
                    None => {}
                }
            }
            _ => {
                problem = Some(if complete {
                    "corrupt line"
                } else {
                    "torn last line"
                });
                break;
            }
        }
    }
    drop(reader);
    if let Some(problem) = problem {
        let total = file.metadata().map_err(io_error(path))?.len();
        tracing::warn!(
            path = %path.display(),
            kept = next_seq,
            dropped_bytes = total - valid_len,
            "session log had a {problem}; truncating to the last valid event"
        );
        file.set_len(valid_len).map_err(io_error(path))?;
        file.sync_all().map_err(io_error(path))?;
    }
    let Some(info) = info.filter(|_| next_seq > 0) else {
        // Nothing valid (a crash between create and the first write): remove it.
        drop(file);
        std::fs::remove_file(path).map_err(io_error(path))?;
        return Ok(None);
    };
    if deleted {
        unfinished = Unfinished::default();
    }
    Ok(Some(Loaded {
        file,
        info,
        next_seq,
        deleted,
        unfinished,
        message_ids,
    }))
}

/// What a stub that went away in the middle of a run left open in a session log: the
/// assistant messages without `time.completed` and the tool parts still `pending`/`running`
/// (latest form of each, by id).
#[derive(Default)]
pub(super) struct Unfinished {
    messages: BTreeMap<String, AssistantMessage>,
    parts: BTreeMap<String, Part>,
}

impl Unfinished {
    fn track(&mut self, event: SyncEvent) {
        match event {
            SyncEvent::MessageUpdated(Message::Assistant(message)) => {
                if message.time.completed.is_none() {
                    self.messages.insert(message.id.clone(), message);
                } else {
                    self.messages.remove(&message.id);
                }
            }
            SyncEvent::PartUpdated { part, .. } => {
                if let PartKind::Tool(tool) = &part.kind {
                    if tool.state.is_finished() {
                        self.parts.remove(&part.id);
                    } else {
                        self.parts.insert(part.id.clone(), part);
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether nothing was left open.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.parts.is_empty()
    }

    /// The events that close everything left open, as an interrupted run would have: the
    /// assistant message completed with `MessageAbortedError`, each tool part in `error`
    /// with the output it had so far.
    pub fn closing_events(self, now: u64) -> Vec<SyncEvent> {
        let mut events = Vec::new();
        for (_, mut message) in self.messages {
            message.time.completed = Some(now);
            message.error = Some(MessageError::aborted(INTERRUPTED_MESSAGE));
            events.push(SyncEvent::MessageUpdated(Message::Assistant(message)));
        }
        for (_, mut part) in self.parts {
            if let PartKind::Tool(tool) = &mut part.kind {
                let metadata = match &tool.state {
                    ToolState::Running {
                        metadata: Some(metadata),
                        ..
                    } => metadata.get("output").map(|output| {
                        [("output".to_owned(), output.clone())]
                            .into_iter()
                            .collect()
                    }),
                    _ => None,
                };
                tool.state = ToolState::Error {
                    input: tool.state.input().clone(),
                    error: INTERRUPTED_TOOL.into(),
                    metadata,
                    time: Finished {
                        start: tool.state.start().unwrap_or(now),
                        end: now,
                        compacted: None,
                    },
                };
            }
            events.push(SyncEvent::PartUpdated { part, time: now });
        }
        events
    }
}
