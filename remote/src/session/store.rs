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
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::session::bus::Bus;
use crate::session::ids::{self, Order};

/// Largest accepted line in a log file (a tool part with capped output stays far below).
const MAX_LINE: usize = 16 << 20;

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
    /// Another stub holds the workspace and would not let go.
    #[error("workspace {workspace} is in use by stub pid {pid} and it did not exit")]
    Busy {
        /// The workspace.
        workspace: String,
        /// The other stub.
        pid: i32,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// An event as stored and as returned by `/sync/history`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// `evt_…`
    pub id: String,
    /// The session id.
    pub aggregate_id: String,
    /// Position in the session's log, from 0.
    pub seq: u64,
    /// `<name>.<version>`
    pub kind: String,
    /// Event data.
    pub data: Value,
}

impl Stored {
    /// The stored/history JSON form.
    pub fn to_row(&self) -> Value {
        json!({ "id": self.id, "aggregate_id": self.aggregate_id, "seq": self.seq, "type": self.kind, "data": self.data })
    }

    fn from_row(row: &Value) -> Option<Stored> {
        Some(Stored {
            id: row.get("id")?.as_str()?.to_owned(),
            aggregate_id: row.get("aggregate_id")?.as_str()?.to_owned(),
            seq: row.get("seq")?.as_u64()?,
            kind: row.get("type")?.as_str()?.to_owned(),
            data: row.get("data")?.clone(),
        })
    }
}

struct Session {
    info: Value,
    next_seq: u64,
    deleted: bool,
    file: File,
    path: PathBuf,
    dirty: bool,
}

/// What a stub that went away in the middle of a shell call left open in a session log: the
/// assistant messages without `time.completed` and the tool parts still `pending`/`running`
/// (latest form of each, by id).
#[derive(Default)]
struct Unfinished {
    messages: BTreeMap<String, Value>,
    parts: BTreeMap<String, Value>,
}

impl Unfinished {
    fn track(&mut self, event: &Stored) {
        match event.kind.as_str() {
            "message.updated.1" => {
                let info = &event.data["info"];
                if let (Some(id), Some("assistant")) = (info["id"].as_str(), info["role"].as_str())
                {
                    if info["time"]["completed"].is_null() {
                        self.messages.insert(id.to_owned(), info.clone());
                    } else {
                        self.messages.remove(id);
                    }
                }
            }
            "message.part.updated.1" => {
                let part = &event.data["part"];
                if let (Some(id), Some("tool")) = (part["id"].as_str(), part["type"].as_str()) {
                    match part["state"]["status"].as_str() {
                        Some("pending" | "running") => {
                            self.parts.insert(id.to_owned(), part.clone());
                        }
                        _ => {
                            self.parts.remove(id);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The events that close everything left open, as an interrupted run would have: the
    /// assistant message completed with `MessageAbortedError`, each tool part in `error`
    /// with the output it had so far.
    fn closing_events(self, session_id: &str, now: u64) -> Vec<(&'static str, Value)> {
        let mut events = Vec::new();
        for (_, mut info) in self.messages {
            info["time"]["completed"] = json!(now);
            info["error"] = json!({
                "name": "MessageAbortedError",
                "data": { "message": "The connection to the host ended while this was running" },
            });
            events.push((
                "message.updated.1",
                json!({ "sessionID": session_id, "info": info }),
            ));
        }
        for (_, mut part) in self.parts {
            let state = &part["state"];
            let mut closed = json!({
                "status": "error",
                "input": state.get("input").cloned().unwrap_or_else(|| json!({})),
                "error": "The connection to the host ended while this command was running; it was stopped",
                "time": { "start": state["time"]["start"].as_u64().unwrap_or(now), "end": now },
            });
            if let Some(output) = state["metadata"].get("output") {
                closed["metadata"] = json!({ "output": output });
            }
            part["state"] = closed;
            events.push((
                "message.part.updated.1",
                json!({ "sessionID": session_id, "part": part, "time": now }),
            ));
        }
        events
    }
}

/// The event log of one workspace.
pub struct Store {
    dir: PathBuf,
    bus: Bus,
    sessions: Mutex<BTreeMap<String, Session>>,
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
        let lock = take_over(&dir, workspace_id)?;
        let mut sessions = BTreeMap::new();
        let mut interrupted = Vec::new();
        let entries = std::fs::read_dir(&dir).map_err(io_error(&dir))?;
        for entry in entries {
            let path = entry.map_err(io_error(&dir))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(session_id) = name.strip_suffix(".jsonl") else {
                continue;
            };
            if !ids::is_valid(session_id, "ses") {
                continue;
            }
            if let Some((session, unfinished)) = load_session(&path, session_id)? {
                sessions.insert(session_id.to_owned(), session);
                if !unfinished.messages.is_empty() || !unfinished.parts.is_empty() {
                    interrupted.push((session_id.to_owned(), unfinished));
                }
            }
        }
        tracing::info!(dir = %dir.display(), sessions = sessions.len(), "session store opened");
        // The previous owner is gone (we hold the lock): whatever it was running is over.
        // Close it in the log, or OpenCode would show those calls running forever.
        let now = ids::now_ms();
        for (session_id, unfinished) in interrupted {
            for (kind, data) in unfinished.closing_events(&session_id, now) {
                Self::append_locked(&bus, &mut sessions, &session_id, kind, data)?;
            }
            tracing::warn!(session = %session_id, "closed a shell call interrupted by the previous stub's end");
        }
        Ok(Store {
            dir,
            bus,
            sessions: Mutex::new(sessions),
            _lock: lock,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Session>> {
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
    pub fn create(&self, info: Value) -> Result<Stored, StoreError> {
        let session_id = info["id"].as_str().unwrap_or_default().to_owned();
        let path = self.dir.join(format!("{session_id}.jsonl"));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .read(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_error(&path))?;
        let mut sessions = self.lock();
        sessions.insert(
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
            "session.created.1",
            json!({ "sessionID": session_id, "info": info }),
        );
        if result.is_err() {
            // Nothing was logged: forget the session and its empty file.
            if let Some(session) = sessions.remove(&session_id) {
                let _ignored = std::fs::remove_file(&session.path);
            }
        }
        result
    }

    /// Appends a durable event to `session_id`'s log, then publishes it (bus form and sync
    /// form). `kind` is `<name>.<version>`; `data.sessionID` must be the session.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for unknown or deleted sessions, I/O errors.
    pub fn append(&self, session_id: &str, kind: &str, data: Value) -> Result<Stored, StoreError> {
        let mut sessions = self.lock();
        Self::append_locked(&self.bus, &mut sessions, session_id, kind, data)
    }

    fn append_locked(
        bus: &Bus,
        sessions: &mut BTreeMap<String, Session>,
        session_id: &str,
        kind: &str,
        data: Value,
    ) -> Result<Stored, StoreError> {
        let session = match sessions.get_mut(session_id) {
            Some(session) if !session.deleted => session,
            _ => return Err(StoreError::NotFound(session_id.to_owned())),
        };
        let event = Stored {
            id: ids::new("evt", Order::Ascending),
            aggregate_id: session_id.to_owned(),
            seq: session.next_seq,
            kind: kind.to_owned(),
            data,
        };
        let mut line = serde_json::to_vec(&event.to_row()).map_err(|err| StoreError::Io {
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
        apply(session, &event);
        publish(bus, &event);
        Ok(event)
    }

    /// Current `info` of a live session.
    pub fn info(&self, session_id: &str) -> Option<Value> {
        self.lock()
            .get(session_id)
            .filter(|s| !s.deleted)
            .map(|s| s.info.clone())
    }

    /// Last assigned seq of a session (also for deleted ones), if it has any event.
    pub fn last_seq(&self, session_id: &str) -> Option<u64> {
        self.lock()
            .get(session_id)
            .and_then(|s| s.next_seq.checked_sub(1))
    }

    /// Infos of all live sessions, newest first (descending ids sort ascending).
    pub fn list(&self) -> Vec<Value> {
        self.lock()
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
    pub fn history(&self, known: &HashMap<String, i64>) -> Result<Vec<Stored>, StoreError> {
        let wanted: Vec<(PathBuf, String, i64)> = self
            .lock()
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
        let mut events = Vec::new();
        for (path, session_id, after) in wanted {
            let file = File::open(&path).map_err(io_error(&path))?;
            for line in BufReader::new(file).lines() {
                let line = line.map_err(io_error(&path))?;
                let Some(event) = serde_json::from_str::<Value>(&line)
                    .ok()
                    .as_ref()
                    .and_then(Stored::from_row)
                else {
                    // A torn tail being written right now; later events are not visible yet.
                    break;
                };
                if event.aggregate_id == session_id && event.seq as i64 > after {
                    events.push(event);
                }
            }
        }
        events.sort_by_key(|e| e.seq);
        Ok(events)
    }

    /// `fdatasync`s every file written since the last call.
    pub fn sync(&self) {
        let mut sessions = self.lock();
        for session in sessions.values_mut().filter(|s| s.dirty) {
            if let Err(err) = session.file.sync_data() {
                tracing::warn!(path = %session.path.display(), %err, "fdatasync failed");
            }
            session.dirty = false;
        }
    }
}

fn apply(session: &mut Session, event: &Stored) {
    match event.kind.as_str() {
        "session.created.1" | "session.updated.1" => {
            if let Some(info) = event.data.get("info") {
                session.info = info.clone();
            }
        }
        "session.deleted.1" => session.deleted = true,
        _ => {}
    }
}

fn publish(bus: &Bus, event: &Stored) {
    let name = event
        .kind
        .rsplit_once('.')
        .map_or(event.kind.as_str(), |(name, _version)| name);
    bus.publish(json!({ "id": event.id, "type": name, "properties": event.data }));
    bus.publish(json!({
        "type": "sync",
        "id": event.id,
        "syncEvent": {
            "id": event.id,
            "type": event.kind,
            "seq": event.seq,
            "aggregateID": event.aggregate_id,
            "data": event.data,
        }
    }));
}

/// Reads a session log, truncating a torn or corrupt tail. `None` when nothing valid is left.
fn load_session(
    path: &Path,
    session_id: &str,
) -> Result<Option<(Session, Unfinished)>, StoreError> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .open(path)
        .map_err(io_error(path))?;
    let mut reader = BufReader::new(&mut file);
    let mut valid_len: u64 = 0;
    let mut next_seq = 0u64;
    let mut info = Value::Null;
    let mut deleted = false;
    let mut unfinished = Unfinished::default();
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
        let event = if complete && line.len() <= MAX_LINE {
            serde_json::from_slice::<Value>(&line)
                .ok()
                .as_ref()
                .and_then(Stored::from_row)
        } else {
            None
        };
        match event {
            Some(event) if event.seq == next_seq && event.aggregate_id == session_id => {
                valid_len += n as u64;
                next_seq += 1;
                match event.kind.as_str() {
                    "session.created.1" | "session.updated.1" => {
                        if let Some(i) = event.data.get("info") {
                            info = i.clone();
                        }
                    }
                    "session.deleted.1" => deleted = true,
                    _ => unfinished.track(&event),
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
    if next_seq == 0 || info.is_null() {
        // Nothing valid (a crash between create and the first write): remove it.
        drop(file);
        std::fs::remove_file(path).map_err(io_error(path))?;
        return Ok(None);
    }
    if deleted {
        unfinished = Unfinished::default();
    }
    Ok(Some((
        Session {
            info,
            next_seq,
            deleted,
            file,
            path: path.to_owned(),
            dirty: false,
        },
        unfinished,
    )))
}

/// Takes the workspace lock, terminating the previous owner if it still runs.
fn take_over(dir: &Path, workspace_id: &str) -> Result<File, StoreError> {
    use rustix::fs::{FlockOperation, flock};
    let lock_path = dir.join(".lock");
    let owner_path = dir.join(".owner");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io_error(&lock_path))?;
    let started = Instant::now();
    let mut signalled = None;
    loop {
        match flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(err) if err == rustix::io::Errno::WOULDBLOCK || err == rustix::io::Errno::INTR => {}
            Err(err) => {
                return Err(StoreError::Io {
                    path: lock_path,
                    source: err.into(),
                });
            }
        }
        let pid: i32 = std::fs::read_to_string(&owner_path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let elapsed = started.elapsed();
        if pid == std::process::id() as i32 {
            // Another handle of this very process holds it: never signal ourselves.
            return Err(StoreError::Busy {
                workspace: workspace_id.to_owned(),
                pid,
            });
        }
        match (signalled, rustix::process::Pid::from_raw(pid)) {
            (None, Some(owner)) => {
                tracing::warn!(
                    pid,
                    workspace = workspace_id,
                    "another stub serves this workspace; taking over"
                );
                let _gone = rustix::process::kill_process(owner, rustix::process::Signal::TERM);
                signalled = Some(Instant::now());
            }
            (Some(at), Some(owner)) if at.elapsed() > Duration::from_secs(2) => {
                let _gone = rustix::process::kill_process(owner, rustix::process::Signal::KILL);
            }
            _ => {}
        }
        if elapsed > Duration::from_secs(5) {
            return Err(StoreError::Busy {
                workspace: workspace_id.to_owned(),
                pid,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut owner = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&owner_path)
        .map_err(io_error(&owner_path))?;
    owner
        .write_all(std::process::id().to_string().as_bytes())
        .map_err(io_error(&owner_path))?;
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str) -> Value {
        json!({ "id": id, "slug": "x", "projectID": "p", "directory": "/d", "title": "t", "version": "1", "time": { "created": 1, "updated": 1 } })
    }

    #[test]
    fn events_should_get_contiguous_seqs_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::new("/d", "p", "wrk_a");
        let mut rx = bus.subscribe();
        let ses = ids::new("ses", Order::Descending);
        {
            let store = Store::open(dir.path(), "wrk_a", bus.clone()).unwrap();
            assert_eq!(store.create(info(&ses)).unwrap().seq, 0);
            let e = store
                .append(
                    &ses,
                    "message.updated.1",
                    json!({ "sessionID": ses, "info": {} }),
                )
                .unwrap();
            assert_eq!(e.seq, 1);
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
        assert_eq!(
            store
                .append(&ses, "message.updated.1", json!({ "sessionID": ses }))
                .unwrap()
                .seq,
            2
        );
        let all = store.history(&HashMap::new()).unwrap();
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1, 2]);
        let later = store.history(&HashMap::from([(ses.clone(), 0)])).unwrap();
        assert_eq!(later.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(later[0].to_row()["aggregate_id"], ses.as_str());
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
            store
                .append(&ses, "message.updated.1", json!({ "sessionID": ses }))
                .unwrap();
            path = store.dir.join(format!("{ses}.jsonl"));
        }
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"id\":\"evt_torn\",\"aggr").unwrap();
        drop(file);
        let store = Store::open(dir.path(), "wrk_a", bus).unwrap();
        assert_eq!(
            store
                .append(&ses, "message.updated.1", json!({ "sessionID": ses }))
                .unwrap()
                .seq,
            2
        );
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
            .append(
                &ses,
                "session.deleted.1",
                json!({ "sessionID": ses, "info": info(&ses) }),
            )
            .unwrap();
        assert!(store.info(&ses).is_none());
        assert!(store.list().is_empty());
        assert!(matches!(
            store.append(&ses, "x.1", json!({})),
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
    fn reopening_should_close_a_shell_call_the_previous_stub_left_running() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::new("/d", "p", "wrk_a");
        let ses = ids::new("ses", Order::Descending);
        let (done, open) = (
            ids::new("msg", Order::Ascending),
            ids::new("msg", Order::Ascending),
        );
        let running = json!({
            "type": "tool", "id": "prt_1", "messageID": open, "sessionID": ses, "tool": "bash", "callID": "c",
            "state": { "status": "running", "time": { "start": 5 }, "input": { "command": "sleep 100" },
                       "metadata": { "output": "partial\n" } },
        });
        {
            let store = Store::open(dir.path(), "wrk_a", bus.clone()).unwrap();
            store.create(info(&ses)).unwrap();
            // A finished call (left alone) and one cut off while running.
            for message in [
                json!({ "id": done, "role": "assistant", "time": { "created": 1 } }),
                json!({ "id": done, "role": "assistant", "time": { "created": 1, "completed": 2 } }),
                json!({ "id": open, "role": "assistant", "time": { "created": 3 } }),
            ] {
                store
                    .append(
                        &ses,
                        "message.updated.1",
                        json!({ "sessionID": ses, "info": message }),
                    )
                    .unwrap();
            }
            store
                .append(
                    &ses,
                    "message.part.updated.1",
                    json!({ "sessionID": ses, "part": running, "time": 6 }),
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
