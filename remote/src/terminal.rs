//! Terminals on the host (OpenCode's `/pty` API): real pseudo-terminals running the user's
//! login shell (or a given program) in the workspace directory.
//!
//! Each terminal keeps its recent output ([`scrollback`]) so a client that reconnects with the
//! cursor it last saw gets exactly what it missed; live output goes to every connected client.
//! A terminal's program is a session leader in its own process group, registered with
//! [`Procs`] so it dies with the stub. Events (`pty.created`, `pty.updated`, `pty.exited`,
//! `pty.deleted`) go out on the bus in OpenCode's shapes.

pub mod scrollback;
pub mod spawn;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use tokio::io::unix::AsyncFd;
use tokio::sync::{broadcast, watch};

use crate::opencode::event::BusEvent;
use crate::opencode::pty::{Pty, PtyStatus};
use crate::session::bus::Bus;
use crate::session::ids::{self, Order};
use crate::tools::procs::Procs;
use scrollback::{Scrollback, Utf8Decoder};

/// Terminals running at once per stub (one stub serves one workspace connection).
pub const MAX_RUNNING: usize = 16;
/// Exited terminals remembered (as OpenCode: 25); older ones are deleted.
const MAX_EXITED: usize = 25;
/// Live output chunks queued per client; a client further behind is disconnected and
/// reconnects with its cursor (from the scrollback).
const CLIENT_QUEUE: usize = 256;
/// Bytes read from a terminal at once.
const READ_CHUNK: usize = 32 << 10;
/// How long a connect ticket is valid (as OpenCode).
pub const TICKET_TTL: Duration = Duration::from_secs(60);
/// Outstanding connect tickets kept at most.
const MAX_TICKETS: usize = 1024;
/// After the hang-up of a closed terminal, how long its programs get before SIGKILL.
const HANGUP_GRACE: Duration = Duration::from_secs(2);

/// What `POST /pty` asks for.
#[derive(Debug, Default)]
pub struct Create {
    /// The program (default: the user's shell).
    pub command: Option<String>,
    /// Its arguments.
    pub args: Vec<String>,
    /// Working directory (default: the workspace directory).
    pub cwd: Option<PathBuf>,
    /// Title (default `Terminal <last 4 of id>`).
    pub title: Option<String>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
}

/// Why a terminal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    /// No running terminal with this id.
    #[error("PTY session not found: {0}")]
    NotFound(String),
    /// Too many terminals run already.
    #[error("too many terminals are open on this host ({MAX_RUNNING}); close one first")]
    TooMany,
    /// The program could not be started.
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        /// The program.
        command: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The terminals of this stub. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Terminals(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    bus: Bus,
    procs: Procs,
    directory: PathBuf,
    terms: Mutex<BTreeMap<String, Arc<Term>>>,
    exited: Mutex<VecDeque<String>>,
    tickets: Mutex<HashMap<String, (String, Instant)>>,
}

/// One terminal.
#[derive(Debug)]
pub struct Term {
    info: Mutex<Pty>,
    master: AsyncFd<OwnedFd>,
    output: Mutex<Output>,
    writer: tokio::sync::Mutex<()>,
    /// Becomes `true` when the program ended or the terminal was closed.
    ended: watch::Sender<bool>,
    /// Set by `DELETE`: no `pty.exited` follows.
    removed: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct Output {
    scrollback: Scrollback,
    live: broadcast::Sender<Arc<str>>,
}

/// A client attached to a terminal.
#[derive(Debug)]
pub struct Attachment {
    /// Output the client missed (from its cursor), to send before anything live.
    pub replay: String,
    /// The cursor after `replay`.
    pub cursor: u64,
    /// Live output from then on.
    pub live: broadcast::Receiver<Arc<str>>,
    /// Becomes `true` when the terminal ends.
    pub ended: watch::Receiver<bool>,
    /// The terminal, to write input to.
    pub term: Arc<Term>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Terminals {
    /// No terminals yet; new ones start in `directory`.
    pub fn new(bus: Bus, procs: Procs, directory: PathBuf) -> Terminals {
        Terminals(Arc::new(Inner {
            bus,
            procs,
            directory,
            terms: Mutex::new(BTreeMap::new()),
            exited: Mutex::new(VecDeque::new()),
            tickets: Mutex::new(HashMap::new()),
        }))
    }

    /// Running terminals, oldest first (OpenCode's `/pty` lists only those).
    pub fn list(&self) -> Vec<Pty> {
        lock(&self.0.terms)
            .values()
            .map(|t| t.info())
            .filter(|info| info.status == PtyStatus::Running)
            .collect()
    }

    /// A running terminal.
    ///
    /// # Errors
    ///
    /// [`TerminalError::NotFound`] when there is none with this id (or it exited).
    pub fn get(&self, id: &str) -> Result<Arc<Term>, TerminalError> {
        lock(&self.0.terms)
            .get(id)
            .filter(|t| t.info().status == PtyStatus::Running)
            .cloned()
            .ok_or_else(|| TerminalError::NotFound(id.to_owned()))
    }

    /// Opens a terminal and announces it (`pty.created`).
    ///
    /// # Errors
    ///
    /// Too many terminals, or the program cannot be started.
    pub fn create(&self, input: Create) -> Result<Pty, TerminalError> {
        if self.list().len() >= MAX_RUNNING {
            return Err(TerminalError::TooMany);
        }
        let id = ids::new("pty", Order::Ascending);
        let command = input
            .command
            .filter(|c| !c.is_empty())
            .unwrap_or_else(spawn::preferred_shell);
        let mut args = input.args;
        if spawn::is_login_shell(&command) {
            args.push("-l".to_owned());
        }
        let cwd = input.cwd.unwrap_or_else(|| self.0.directory.clone());
        let mut env = input.env;
        env.insert("TERM".into(), "xterm-256color".into());
        env.insert("OPENCODE_TERMINAL".into(), "1".into());
        let spawned = spawn::spawn(&spawn::Program {
            command: &command,
            args: &args,
            cwd: &cwd,
            env: &env,
            rows: 24,
            cols: 80,
        })
        .map_err(|source| TerminalError::Spawn {
            command: command.clone(),
            source,
        })?;
        let pid = spawned.child.id().unwrap_or(0);
        let registration = self.0.procs.register(pid as i32);
        // SAFETY: an OwnedFd's raw fd is valid, stays open and never changes while owned.
        let master =
            unsafe { AsyncFd::register(spawned.master) }.map_err(|err| TerminalError::Spawn {
                command: command.clone(),
                source: std::io::Error::other(err.to_string()),
            })?;
        let info = Pty {
            title: input
                .title
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| format!("Terminal {}", &id[id.len().saturating_sub(4)..])),
            id: id.clone(),
            command,
            args,
            cwd: cwd.to_string_lossy().into_owned(),
            status: PtyStatus::Running,
            pid,
            exit_code: None,
        };
        let (ended, _) = watch::channel(false);
        let term = Arc::new(Term {
            info: Mutex::new(info.clone()),
            master,
            output: Mutex::new(Output {
                scrollback: Scrollback::default(),
                live: broadcast::channel(CLIENT_QUEUE).0,
            }),
            writer: tokio::sync::Mutex::new(()),
            ended,
            removed: std::sync::atomic::AtomicBool::new(false),
        });
        lock(&self.0.terms).insert(id.clone(), term.clone());
        tracing::info!(id, pid, command = %info.command, "terminal opened");
        self.0
            .bus
            .emit(&BusEvent::PtyCreated { info: info.clone() });

        let reader = tokio::spawn(read_output(term.clone()));
        let this = self.clone();
        let mut child = spawned.child;
        tokio::spawn(async move {
            let status = child.wait().await;
            // The last output the program wrote before it ended still goes out first.
            let _ = tokio::time::timeout(Duration::from_millis(300), reader).await;
            let code = match status {
                Ok(status) => status.code().unwrap_or_else(|| {
                    use std::os::unix::process::ExitStatusExt;
                    128 + status.signal().unwrap_or(0)
                }),
                Err(_) => 1,
            };
            this.exited(&term, pid, code);
            drop(registration);
        });
        Ok(info)
    }

    fn exited(&self, term: &Arc<Term>, pid: u32, code: i32) {
        let id = {
            let mut info = lock(&term.info);
            info.status = PtyStatus::Exited;
            info.exit_code = Some(code);
            info.id.clone()
        };
        tracing::info!(id, code, "terminal program exited");
        // Background jobs left on the terminal get the hang-up a closed terminal gives.
        hang_up(pid);
        lock(&term.output).scrollback.clear();
        let _ = term.ended.send(true);
        if term.removed.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        self.0.bus.emit(&BusEvent::PtyExited {
            id: id.clone(),
            exit_code: code,
        });
        let evicted: Vec<String> = {
            let mut exited = lock(&self.0.exited);
            exited.push_back(id);
            let over = exited.len().saturating_sub(MAX_EXITED);
            exited.drain(..over).collect()
        };
        for id in evicted {
            if lock(&self.0.terms).remove(&id).is_some() {
                self.0.bus.emit(&BusEvent::PtyDeleted { id });
            }
        }
    }

    /// Changes a running terminal's title and/or size (`pty.updated`).
    ///
    /// # Errors
    ///
    /// [`TerminalError::NotFound`].
    pub fn update(
        &self,
        id: &str,
        title: Option<String>,
        size: Option<(u16, u16)>,
    ) -> Result<Pty, TerminalError> {
        let term = self.get(id)?;
        if let Some((rows, cols)) = size
            && let Err(err) = spawn::resize(term.master.get_ref(), rows, cols)
        {
            tracing::debug!(id, %err, "resize failed");
        }
        let info = {
            let mut info = lock(&term.info);
            if let Some(title) = title.filter(|t| !t.is_empty()) {
                info.title = title;
            }
            info.clone()
        };
        self.0
            .bus
            .emit(&BusEvent::PtyUpdated { info: info.clone() });
        Ok(info)
    }

    /// Closes a running terminal: its process group gets SIGHUP (SIGKILL after a grace
    /// period), clients are disconnected, `pty.deleted` goes out.
    ///
    /// # Errors
    ///
    /// [`TerminalError::NotFound`].
    pub fn remove(&self, id: &str) -> Result<(), TerminalError> {
        let term = self.get(id)?;
        term.removed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        lock(&self.0.terms).remove(id);
        let pid = term.info().pid;
        hang_up(pid);
        let _ = term.ended.send(true);
        tokio::spawn(async move {
            tokio::time::sleep(HANGUP_GRACE).await;
            if let Some(pid) = Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process_group(pid, Signal::KILL);
            }
        });
        tracing::info!(id, "terminal closed");
        self.0.bus.emit(&BusEvent::PtyDeleted { id: id.to_owned() });
        Ok(())
    }

    /// Attaches a client: what it missed since `cursor` (`None`: everything kept; `-1`: nothing)
    /// and live output from there, without gaps or repeats.
    ///
    /// # Errors
    ///
    /// [`TerminalError::NotFound`].
    pub fn attach(&self, id: &str, cursor: Option<i64>) -> Result<Attachment, TerminalError> {
        let term = self.get(id)?;
        let output = lock(&term.output);
        let end = output.scrollback.end();
        let from = match cursor {
            Some(-1) => end,
            Some(c) => c.max(0) as u64,
            None => 0,
        };
        let attachment = Attachment {
            replay: output.scrollback.since(from),
            cursor: end,
            live: output.live.subscribe(),
            ended: term.ended.subscribe(),
            term: term.clone(),
        };
        drop(output);
        Ok(attachment)
    }

    /// A single-use ticket for connecting to terminal `id` within [`TICKET_TTL`].
    ///
    /// # Errors
    ///
    /// [`TerminalError::NotFound`].
    pub fn issue_ticket(&self, id: &str) -> Result<String, TerminalError> {
        self.get(id)?;
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|err| TerminalError::Spawn {
            command: "getrandom".into(),
            source: std::io::Error::other(err.to_string()),
        })?;
        let ticket: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut tickets = lock(&self.0.tickets);
        let now = Instant::now();
        tickets.retain(|_, (_, at)| now.duration_since(*at) < TICKET_TTL);
        if tickets.len() >= MAX_TICKETS {
            tickets.clear();
        }
        tickets.insert(ticket.clone(), (id.to_owned(), now));
        Ok(ticket)
    }

    /// Uses up a ticket; `true` when it was issued for `id` and is still valid.
    pub fn consume_ticket(&self, ticket: &str, id: &str) -> bool {
        let mut tickets = lock(&self.0.tickets);
        match tickets.remove(ticket) {
            Some((for_id, at)) => for_id == id && at.elapsed() < TICKET_TTL,
            None => false,
        }
    }

    /// Hangs up every terminal (the stub is exiting; [`Procs`] kills what is left).
    pub fn hang_up_all(&self) {
        for term in lock(&self.0.terms).values() {
            if term.info().status == PtyStatus::Running {
                hang_up(term.info().pid);
            }
        }
    }
}

impl Term {
    /// The terminal as OpenCode shows it.
    pub fn info(&self) -> Pty {
        lock(&self.info).clone()
    }

    /// Types `data` into the terminal (waits while the program does not read).
    ///
    /// # Errors
    ///
    /// When the terminal is gone.
    pub async fn write(&self, data: &[u8]) -> std::io::Result<()> {
        let _one_writer = self.writer.lock().await;
        let mut rest = data;
        while !rest.is_empty() {
            let mut guard = self.master.writable().await?;
            match guard.try_io(|fd| rustix::io::write(fd.get_ref(), rest).map_err(Into::into)) {
                Ok(Ok(n)) => rest = &rest[n..],
                Ok(Err(err)) => return Err(err),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}

async fn read_output(term: Arc<Term>) {
    let mut decoder = Utf8Decoder::default();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let Ok(mut guard) = term.master.readable().await else {
            return;
        };
        let n =
            match guard.try_io(|fd| rustix::io::read(fd.get_ref(), &mut buf).map_err(Into::into)) {
                Ok(Ok(0)) => return,
                Ok(Ok(n)) => n,
                // EIO: every holder of the terminal's other side has gone.
                Ok(Err(_)) => return,
                Err(_would_block) => continue,
            };
        let text = decoder.decode(&buf[..n]);
        if text.is_empty() {
            continue;
        }
        let mut output = lock(&term.output);
        output.scrollback.push(&text, scrollback::LIMIT);
        let _no_clients = output.live.send(Arc::from(text));
    }
}

/// SIGHUP to a terminal's process group (as when a terminal closes).
fn hang_up(pid: u32) {
    if let Some(pid) = Pid::from_raw(pid as i32) {
        let _gone = rustix::process::kill_process_group(pid, Signal::HUP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terminals() -> (
        Terminals,
        broadcast::Receiver<Arc<crate::session::bus::Published>>,
    ) {
        let bus = Bus::new("/tmp", "p", "w");
        let rx = bus.subscribe();
        let dir = std::env::temp_dir();
        (Terminals::new(bus, Procs::default(), dir), rx)
    }

    fn sh(script: &str) -> Create {
        Create {
            command: Some("/bin/sh".into()),
            args: vec!["-c".into(), script.into()],
            ..Create::default()
        }
    }

    /// Reads live output until it contains `needle` (≤ 10 s); returns all of it.
    async fn read_until(live: &mut broadcast::Receiver<Arc<str>>, needle: &str) -> String {
        let mut seen = String::new();
        tokio::time::timeout(Duration::from_secs(10), async {
            while !seen.contains(needle) {
                match live.recv().await {
                    Ok(text) => seen.push_str(&text),
                    Err(err) => panic!("live output ended: {err}; seen {seen:?}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} in {seen:?}"));
        seen
    }

    async fn next_event(
        rx: &mut broadcast::Receiver<Arc<crate::session::bus::Published>>,
        kind: &str,
    ) -> serde_json::Value {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let published = rx.recv().await.unwrap();
                let value: serde_json::Value = serde_json::from_slice(&published.instance).unwrap();
                if value["type"] == kind {
                    return value;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {kind} event"))
    }

    #[tokio::test]
    async fn a_terminal_should_run_on_a_tty_with_the_size_set_and_report_its_exit_code() {
        let (terminals, mut events) = terminals();
        let info = terminals
            .create(sh("read line; stty size; tty; exit 3"))
            .unwrap();
        assert_eq!(info.status, PtyStatus::Running);
        assert!(info.title.starts_with("Terminal "));
        let created = next_event(&mut events, "pty.created").await;
        assert_eq!(created["properties"]["info"]["id"], info.id.as_str());

        let updated = terminals.update(&info.id, None, Some((40, 100))).unwrap();
        assert_eq!(updated.id, info.id);
        next_event(&mut events, "pty.updated").await;
        let mut attachment = terminals.attach(&info.id, None).unwrap();
        attachment.term.write(b"go\n").await.unwrap();
        let seen = read_until(&mut attachment.live, "/dev/pts/").await;
        assert!(seen.contains("40 100"), "{seen:?}");

        let exited = next_event(&mut events, "pty.exited").await;
        assert_eq!(exited["properties"]["id"], info.id.as_str());
        assert_eq!(exited["properties"]["exitCode"], 3);
        assert!(terminals.get(&info.id).is_err());
        assert!(terminals.list().is_empty());
    }

    #[tokio::test]
    async fn reattaching_with_a_cursor_should_give_the_missed_output_once() {
        let (terminals, _events) = terminals();
        let info = terminals
            .create(sh("echo first; read x; echo second; read y"))
            .unwrap();
        let mut first = terminals.attach(&info.id, None).unwrap();
        let seen = read_until(&mut first.live, "first").await;
        let cursor = first.cursor + seen.encode_utf16().count() as u64;
        drop(first);

        let writer = terminals.attach(&info.id, Some(-1)).unwrap();
        assert_eq!(writer.replay, "");
        writer.term.write(b"x\n").await.unwrap();
        let mut probe = terminals.attach(&info.id, Some(-1)).unwrap();
        let _ = read_until(&mut probe.live, "second").await;

        let again = terminals.attach(&info.id, Some(cursor as i64)).unwrap();
        assert!(again.replay.contains("second"), "{:?}", again.replay);
        assert!(!again.replay.contains("first"), "{:?}", again.replay);
        assert_eq!(again.replay.matches("second").count(), 1);
        let all = terminals.attach(&info.id, None).unwrap();
        assert!(all.replay.contains("first") && all.replay.contains("second"));
        terminals.remove(&info.id).unwrap();
    }

    #[tokio::test]
    async fn remove_should_hang_up_the_program_and_announce_it() {
        let (terminals, mut events) = terminals();
        let info = terminals.create(sh("sleep 300")).unwrap();
        let pid = Pid::from_raw(info.pid as i32).unwrap();
        terminals.remove(&info.id).unwrap();
        let deleted = next_event(&mut events, "pty.deleted").await;
        assert_eq!(deleted["properties"]["id"], info.id.as_str());
        let gone = tokio::time::timeout(Duration::from_secs(5), async {
            while rustix::process::test_kill_process_group(pid).is_ok() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(gone.is_ok(), "process group {} survived", info.pid);
        assert!(matches!(
            terminals.remove(&info.id),
            Err(TerminalError::NotFound(_))
        ));
    }
}
