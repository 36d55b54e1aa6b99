//! The durable per-session event log OpenCode replicates from.
//!
//! OpenCode keeps its own replica of every workspace session, built only from durable "sync"
//! events (`session.created.1`, `message.updated.1`, …) with a per-session `seq` that must be
//! contiguous from 0, and it replays `/sync/history` after every reconnect. So the log is the
//! source of truth here too:
//!
//! - one append-only JSON-lines file per session, `state/sessions/<workspace>/<session>.jsonl`,
//!   each line the stored form `{"id","aggregate_id","seq","type","data"}`;
//! - an event is written (one `write` with `O_APPEND`, which a `kill -9` cannot tear) before it
//!   is published or acknowledged, so OpenCode never sees an event the log could lose to a
//!   crash of the stub; files are `fdatasync`ed every second and at exit (like OpenCode's own
//!   SQLite in WAL mode, a power loss may lose the last second);
//! - on load, a torn or corrupt tail is cut off at the last good line (and reported), so the
//!   next `seq` continues the valid prefix;
//! - one stub owns a workspace's log at a time: the newest connection takes the lock over,
//!   terminating a stub left behind by a dead connection.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::opencode::event::{Row, SyncEvent};
use crate::opencode::session::Session as Info;
use crate::session::bus::Bus;
use crate::session::ids::{self, Order};

mod lock;
mod log;

/// The error of an assistant message whose run the end of the connection stopped.
pub const INTERRUPTED_MESSAGE: &str = "The connection to the host ended while this was running";

/// The error of a tool call the end of the connection stopped.
pub const INTERRUPTED_TOOL: &str =
    "The connection to the host ended while this command was running; it was stopped";

/// Store failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// File system trouble; the path says where.
    #[error("session store i/o on {}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No such session.
    #[error("session not found: {0}")]
    NotFound(String),
    /// A message id that belongs to another session.
    #[error("message {message_id} belongs to another session")]
    MessageOfAnotherSession {
        /// The message.
        message_id: String,
    },
    /// Another stub holds the workspace and would not let go.
    #[error("workspace {workspace} is in use by stub pid {pid} and it did not exit")]
    Busy {
        /// The workspace.
        workspace: String,
        /// The other stub.
        pid: i32,
    },
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The logs of a workspace, and which session each message belongs to (a message id is never
/// reused by another session: OpenCode's replica would move the message).
#[derive(Default)]
struct Sessions {
    by_id: BTreeMap<String, Session>,
    message_owner: HashMap<String, String>,
}

struct Session {
    info: Info,
    next_seq: u64,
    deleted: bool,
    file: File,
    path: PathBuf,
    dirty: bool,
}

/// The event log of one workspace.
pub struct Store {
    dir: PathBuf,
    bus: Bus,
    sessions: Mutex<Sessions>,
    _lock: File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

/// File-name safe form of a workspace id.
pub fn workspace_key(workspace_id: &str) -> String {
    if workspace_id.is_empty() {
        return "_manual".into();
    }
    workspace_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Store {
    /// Opens (creating) the log of `workspace_id` under `state_dir/sessions`, taking the
    /// workspace over from another stub if needed. Blocking.
    ///
    /// # Errors
    ///
    /// I/O errors naming the path, or [`StoreError::Busy`].
    pub fn open(state_dir: &Path, workspace_id: &str, bus: Bus) -> Result<Store, StoreError> {
        let dir = state_dir.join("sessions").join(workspace_key(workspace_id));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_error(&dir))?;
        let lock = lock::take_over(&dir, workspace_id)?;
        let mut sessions = Sessions::default();
        let mut interrupted = Vec::new();
        let entries = std::fs::read_dir(&dir).map_err(io_error(&dir))?;
        for entry in entries {
            let path = entry.map_err(io_error(&dir))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(session_id) = name.strip_suffix(".jsonl").map(str::to_owned) else {
                continue;
            };
            let session_id = session_id.as_str();
            if !ids::is_valid(session_id, "ses") {
                continue;
            }
            if let Some(loaded) = log::load(&path, session_id)? {
                for message_id in loaded.message_ids {
                    sessions
                        .message_owner
                        .insert(message_id, session_id.to_owned());
                }
                sessions.by_id.insert(
                    session_id.to_owned(),
                    Session {
                        info: loaded.info,
                        next_seq: loaded.next_seq,
                        deleted: loaded.deleted,
                        file: loaded.file,
                        path,
                        dirty: false,
                    },
                );
                if !loaded.unfinished.is_empty() {
                    interrupted.push((session_id.to_owned(), loaded.unfinished));
                }
            }
        }
        tracing::info!(dir = %dir.display(), sessions = sessions.by_id.len(), "session store opened");
        // The previous owner is gone (we hold the lock): whatever it was running is over.
        // Close it in the log, or OpenCode would show those calls running forever.
        let now = ids::now_ms();
        for (session_id, unfinished) in interrupted {
            for event in unfinished.closing_events(now) {
                Self::append_locked(&bus, &mut sessions, &session_id, &event)?;
            }
            tracing::warn!(session = %session_id, "closed a run interrupted by the previous stub's end");
        }
        Ok(Store {
            dir,
            bus,
            sessions: Mutex::new(sessions),
            _lock: lock,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The bus events are published on.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Creates a session log and appends `session.created.1` with `info`.
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub fn create(&self, info: Info) -> Result<Row, StoreError> {
        let session_id = info.id.clone();
        let path = self.dir.join(format!("{session_id}.jsonl"));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .read(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_error(&path))?;
        let mut sessions = self.lock();
        sessions.by_id.insert(
            session_id.clone(),
            Session {
                info: info.clone(),
                next_seq: 0,
                deleted: false,
                file,
                path,
                dirty: true,
            },
        );
        let result = Self::append_locked(
            &self.bus,
            &mut sessions,
            &session_id,
            &SyncEvent::SessionCreated(info),
        );
        if result.is_err() {
            // Nothing was logged: forget the session and its empty file.
            if let Some(session) = sessions.by_id.remove(&session_id) {
                let _ignored = std::fs::remove_file(&session.path);
            }
        }
        result
    }

    /// Appends a durable event to `session_id`'s log, then publishes it (bus form and sync
    /// form).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for unknown or deleted sessions, I/O errors.
    pub fn append(&self, session_id: &str, event: &SyncEvent) -> Result<Row, StoreError> {
        let mut sessions = self.lock();
        Self::append_locked(&self.bus, &mut sessions, session_id, event)
    }

    fn append_locked(
        bus: &Bus,
        sessions: &mut Sessions,
        session_id: &str,
        event: &SyncEvent,
    ) -> Result<Row, StoreError> {
        if let SyncEvent::MessageUpdated(message) = event
            && let Some(owner) = sessions.message_owner.get(message.id())
            && owner != session_id
        {
            return Err(StoreError::MessageOfAnotherSession {
                message_id: message.id().to_owned(),
            });
        }
        let session = match sessions.by_id.get_mut(session_id) {
            Some(session) if !session.deleted => session,
            _ => return Err(StoreError::NotFound(session_id.to_owned())),
        };
        let row = Row {
            id: ids::new("evt", Order::Ascending),
            aggregate_id: session_id.to_owned(),
            seq: session.next_seq,
            kind: event.kind().to_owned(),
            data: event.data(session_id),
        };
        let mut line = serde_json::to_vec(&row).map_err(|err| StoreError::Io {
            path: session.path.clone(),
            source: std::io::Error::other(err),
        })?;
        line.push(b'\n');
        // One write call per line: with O_APPEND it is never interleaved or torn by kill -9.
        session
            .file
            .write_all(&line)
            .map_err(io_error(&session.path))?;
        session.next_seq += 1;
        session.dirty = true;
        match event {
            SyncEvent::SessionCreated(info) | SyncEvent::SessionUpdated(info) => {
                session.info = info.clone();
            }
            SyncEvent::SessionDeleted(_) => session.deleted = true,
            SyncEvent::MessageUpdated(message) => {
                sessions
                    .message_owner
                    .entry(message.id().to_owned())
                    .or_insert_with(|| session_id.to_owned());
            }
            _ => {}
        }
        bus.publish_row(&row);
        Ok(row)
    }

    /// The session a message belongs to.
    pub fn message_owner(&self, message_id: &str) -> Option<String> {
        self.lock().message_owner.get(message_id).cloned()
    }

    /// Current info of a live session.
    pub fn info(&self, session_id: &str) -> Option<Info> {
        self.lock()
            .by_id
            .get(session_id)
            .filter(|s| !s.deleted)
            .map(|s| s.info.clone())
    }

    /// Last assigned seq of a session (also for deleted ones), if it has any event.
    pub fn last_seq(&self, session_id: &str) -> Option<u64> {
        self.lock()
            .by_id
            .get(session_id)
            .and_then(|s| s.next_seq.checked_sub(1))
    }

    /// Infos of all live sessions, newest first (descending ids sort ascending).
    pub fn list(&self) -> Vec<Info> {
        self.lock()
            .by_id
            .values()
            .filter(|s| !s.deleted)
            .map(|s| s.info.clone())
            .collect()
    }

    /// Every stored event the caller does not have yet: for each session listed in `known`,
    /// events with `seq > known`; for sessions not listed, all events, except deleted ones (a
    /// caller that does not list a deleted session has deleted it or never had it; like
    /// OpenCode, which drops a session's events with it, they are not sent again). Blocking
    /// (reads files).
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub fn history(&self, known: &HashMap<String, i64>) -> Result<Vec<Row>, StoreError> {
        let mut events = Vec::new();
        self.write_history(known, |line| {
            events.extend(log::parse_line(line));
            true
        })?;
        events.sort_by_key(|e| e.seq);
        Ok(events)
    }

    /// [`Store::history`] streamed from the files: hands each wanted event's stored line (the
    /// JSON of a [`Row`]) to `emit`, session by session, each in `seq` order, holding one line
    /// in memory at a time; stops early when `emit` returns `false`. Blocking.
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub fn write_history(
        &self,
        known: &HashMap<String, i64>,
        mut emit: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let wanted: Vec<(PathBuf, String, i64)> = self
            .lock()
            .by_id
            .iter()
            .filter(|(id, s)| !s.deleted || known.contains_key(*id))
            .map(|(id, s)| {
                (
                    s.path.clone(),
                    id.clone(),
                    known.get(id).copied().unwrap_or(-1),
                )
            })
            .collect();
        let mut line = Vec::new();
        for (path, session_id, after) in wanted {
            let file = File::open(&path).map_err(io_error(&path))?;
            let mut reader = BufReader::new(file);
            loop {
                line.clear();
                let read = reader
                    .read_until(b'\n', &mut line)
                    .map_err(io_error(&path))?;
                if read == 0 {
                    break;
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                let Some(row) = log::parse_line(&line) else {
                    // A torn tail being written right now; later events are not visible yet.
                    break;
                };
                if row.aggregate_id == session_id && row.seq as i64 > after && !emit(&line) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Every stored event of one session, in order (also of a deleted one). Blocking (reads
    /// its file); a torn tail being written right now is left out.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown session, I/O errors.
    pub fn rows(&self, session_id: &str) -> Result<Vec<Row>, StoreError> {
        let path = self
            .lock()
            .by_id
            .get(session_id)
            .map(|s| s.path.clone())
            .ok_or_else(|| StoreError::NotFound(session_id.to_owned()))?;
        let file = File::open(&path).map_err(io_error(&path))?;
        let mut rows = Vec::new();
        for line in BufReader::new(file).split(b'\n') {
            let line = line.map_err(io_error(&path))?;
            let Some(row) = log::parse_line(&line) else {
                break;
            };
            if row.aggregate_id == session_id {
                rows.push(row);
            }
        }
        Ok(rows)
    }

    /// `fdatasync`s every file written since the last call.
    pub fn sync(&self) {
        let mut sessions = self.lock();
        for session in sessions.by_id.values_mut().filter(|s| s.dirty) {
            if let Err(err) = session.file.sync_data() {
                tracing::warn!(path = %session.path.display(), %err, "fdatasync failed");
            }
            session.dirty = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opencode::message::{
        AssistantMessage, AssistantTime, Created, Message, MessagePath, ModelRef, UserMessage,
    };
    use crate::opencode::part::{Part, PartKind, Started, ToolPart, ToolState};
    use serde_json::json;

    fn info(id: &str) -> Info {
        serde_json::from_value(
            json!({ "id": id, "slug": "x", "projectID": "p", "directory": "/d",
            "title": "t", "version": "1", "time": { "created": 1, "updated": 1 } }),
        )
        .unwrap()
    }

    fn user(session: &str, id: &str) -> SyncEvent {
        SyncEvent::MessageUpdated(Message::User(UserMessage {
            id: id.into(),
            session_id: session.into(),
            time: Created { created: 1 },
            format: None,
            summary: None,
            agent: "build".into(),
            model: ModelRef {
                provider_id: "p".into(),
                model_id: "m".into(),
                variant: None,
            },
            system: None,
            tools: None,
        }))
    }

    fn assistant(session: &str, id: &str, created: u64, completed: Option<u64>) -> SyncEvent {
        SyncEvent::MessageUpdated(Message::Assistant(AssistantMessage {
            id: id.into(),
            parent_id: "msg_0".into(),
            mode: "build".into(),
            agent: "build".into(),
            path: MessagePath {
                cwd: "/d".into(),
                root: "/d".into(),
            },
            cost: crate::opencode::Cost::default(),
            tokens: crate::opencode::Tokens::default(),
            model_id: "m".into(),
            provider_id: "p".into(),
            time: AssistantTime { created, completed },
            session_id: session.into(),
            finish: None,
            error: None,
            summary: None,
            structured: None,
            variant: None,
        }))
    }

    #[test]
    fn events_should_get_contiguous_seqs_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::new("/d", "p", "wrk_a");
        let mut rx = bus.subscribe();
        let ses = ids::new("ses", Order::Descending);
        let msg = ids::new("msg", Order::Ascending);
        {
            let store = Store::open(dir.path(), "wrk_a", bus.clone()).unwrap();
            assert_eq!(store.create(info(&ses)).unwrap().seq, 0);
            assert_eq!(store.append(&ses, &user(&ses, &msg)).unwrap().seq, 1);
            store.sync();
        }
        // Bus form then sync form, same event id.
        let first = rx.try_recv().unwrap();
        let text = std::str::from_utf8(&first.instance).unwrap();
        assert!(text.contains("\"type\":\"session.created\""), "{text}");
        let second = rx.try_recv().unwrap();
        let text = std::str::from_utf8(&second.global).unwrap();
        assert!(
            text.contains("\"type\":\"session.created.1\"") && text.contains("\"seq\":0"),
            "{text}"
        );
        assert!(second.instance.is_empty(), "sync payloads are global only");

        let store = Store::open(dir.path(), "wrk_a", bus).unwrap();
        assert_eq!(store.last_seq(&ses), Some(1));
        assert_eq!(store.message_owner(&msg), Some(ses.clone()));
        assert_eq!(store.append(&ses, &user(&ses, &msg)).unwrap().seq, 2);
        let all = store.history(&HashMap::new()).unwrap();
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1, 2]);
        let later = store.history(&HashMap::from([(ses.clone(), 0)])).unwrap();
        assert_eq!(later.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            serde_json::to_value(&later[0]).unwrap()["aggregate_id"],
            ses.as_str()
        );
    }

    #[test]
    fn history_should_stream_stored_lines_and_stop_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "wrk_a", Bus::new("/d", "p", "wrk_a")).unwrap();
        let ses = ids::new("ses", Order::Descending);
        store.create(info(&ses)).unwrap();
        for _ in 0..3 {
            let msg = ids::new("msg", Order::Ascending);
            store.append(&ses, &user(&ses, &msg)).unwrap();
        }
        let mut lines = Vec::new();
        store
            .write_history(&HashMap::from([(ses.clone(), 0)]), |line| {
                lines.push(line.to_vec());
                true
            })
            .unwrap();
        // The stored lines themselves, each the JSON of one row, in seq order.
        let seqs: Vec<u64> = lines
            .iter()
            .map(|line| serde_json::from_slice::<Row>(line).unwrap().seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
        let stored = std::fs::read(dir.path().join(format!("sessions/wrk_a/{ses}.jsonl"))).unwrap();
        let stored: Vec<&[u8]> = stored.split(|b| *b == b'\n').collect();
        assert_eq!(lines[0], stored[1]);

        let mut seen = 0;
        store
            .write_history(&HashMap::new(), |_| {
                seen += 1;
                seen < 2
            })
            .unwrap();
        assert_eq!(seen, 2, "emit said stop");
    }

    #[test]
    fn a_message_id_should_never_move_to_another_session() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "wrk_a", Bus::new("/d", "p", "wrk_a")).unwrap();
        let (a, b) = (
            ids::new("ses", Order::Descending),
            ids::new("ses", Order::Descending),
        );
        store.create(info(&a)).unwrap();
        store.create(info(&b)).unwrap();
        let msg = ids::new("msg", Order::Ascending);
        store.append(&a, &user(&a, &msg)).unwrap();
        assert!(matches!(
            store.append(&b, &user(&b, &msg)),
            Err(StoreError::MessageOfAnotherSession { .. })
        ));
        assert_eq!(store.last_seq(&b), Some(0));
    }

    #[test]
    fn load_should_cut_a_torn_tail_and_continue_the_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::new("/d", "p", "wrk_a");
        let ses = ids::new("ses", Order::Descending);
        let path;
        {
            let store = Store::open(dir.path(), "wrk_a", bus.clone()).unwrap();
            store.create(info(&ses)).unwrap();
            store.append(&ses, &user(&ses, "msg_1")).unwrap();
            path = store.dir.join(format!("{ses}.jsonl"));
        }
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"id\":\"evt_torn\",\"aggr").unwrap();
        drop(file);
        let store = Store::open(dir.path(), "wrk_a", bus).unwrap();
        assert_eq!(store.append(&ses, &user(&ses, "msg_1")).unwrap().seq, 2);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(!text.contains("evt_torn"));
    }

    #[test]
    fn deleted_sessions_should_refuse_appends_but_keep_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "wrk_a", Bus::new("/d", "p", "wrk_a")).unwrap();
        let ses = ids::new("ses", Order::Descending);
        store.create(info(&ses)).unwrap();
        store
            .append(&ses, &SyncEvent::SessionDeleted(info(&ses)))
            .unwrap();
        assert!(store.info(&ses).is_none());
        assert!(store.list().is_empty());
        assert!(matches!(
            store.append(&ses, &user(&ses, "msg_1")),
            Err(StoreError::NotFound(_))
        ));
        // A caller that still lists it learns of the deletion; one that does not (it deleted
        // it, or never had it) does not get the session back.
        let listed = store.history(&HashMap::from([(ses.clone(), 0)])).unwrap();
        assert_eq!(
            listed.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
            ["session.deleted.1"]
        );
        assert!(store.history(&HashMap::new()).unwrap().is_empty());
        assert_eq!(store.last_seq(&ses), Some(1));
    }

    #[test]
    fn reopening_should_close_a_run_the_previous_stub_left_running() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::new("/d", "p", "wrk_a");
        let ses = ids::new("ses", Order::Descending);
        let (done, open) = (
            ids::new("msg", Order::Ascending),
            ids::new("msg", Order::Ascending),
        );
        let mut input = crate::opencode::Object::new();
        input.insert("command".into(), "sleep 100".into());
        let mut metadata = crate::opencode::Object::new();
        metadata.insert("output".into(), "partial\n".into());
        let running = Part {
            id: "prt_1".into(),
            message_id: open.clone(),
            session_id: ses.clone(),
            kind: PartKind::Tool(ToolPart {
                call_id: "c".into(),
                tool: "bash".into(),
                state: ToolState::Running {
                    input,
                    title: None,
                    metadata: Some(metadata),
                    time: Started { start: 5 },
                },
                metadata: None,
            }),
        };
        {
            let store = Store::open(dir.path(), "wrk_a", bus.clone()).unwrap();
            store.create(info(&ses)).unwrap();
            // A finished call (left alone) and one cut off while running.
            for message in [
                assistant(&ses, &done, 1, None),
                assistant(&ses, &done, 1, Some(2)),
                assistant(&ses, &open, 3, None),
            ] {
                store.append(&ses, &message).unwrap();
            }
            store
                .append(
                    &ses,
                    &SyncEvent::PartUpdated {
                        part: running,
                        time: 6,
                    },
                )
                .unwrap();
        }
        let store = Store::open(dir.path(), "wrk_a", bus.clone()).unwrap();
        let added = store.history(&HashMap::from([(ses.clone(), 4)])).unwrap();
        assert_eq!(added.len(), 2, "{added:?}");
        let message = &added[0].data["info"];
        assert_eq!(added[0].kind, "message.updated.1");
        assert_eq!(message["id"], open.as_str());
        assert!(message["time"]["completed"].as_i64().unwrap() >= 3);
        assert_eq!(message["error"]["name"], "MessageAbortedError");
        let part = &added[1].data["part"];
        assert_eq!(added[1].kind, "message.part.updated.1");
        assert_eq!(part["id"], "prt_1");
        assert_eq!(part["state"]["status"], "error");
        assert_eq!(part["state"]["input"]["command"], "sleep 100");
        assert_eq!(part["state"]["metadata"]["output"], "partial\n");
        assert_eq!(part["state"]["time"]["start"], 5);
        assert!(
            part["state"]["error"]
                .as_str()
                .unwrap()
                .contains("connection")
        );
        drop(store);
        // Closed once: reopening again adds nothing.
        let store = Store::open(dir.path(), "wrk_a", bus).unwrap();
        assert_eq!(store.last_seq(&ses), Some(6));
    }

    #[test]
    fn workspaces_should_be_isolated() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open(dir.path(), "wrk_a", Bus::new("/d", "p", "wrk_a")).unwrap();
        let b = Store::open(dir.path(), "wrk_b", Bus::new("/d", "p", "wrk_b")).unwrap();
        a.create(info(&ids::new("ses", Order::Descending))).unwrap();
        assert_eq!(a.list().len(), 1);
        assert!(b.list().is_empty());
        assert_eq!(workspace_key("wrk/../x"), "wrk____x");
    }
}
