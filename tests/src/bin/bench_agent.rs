//! Agent-turn benchmark: one turn with 20 tool calls (read, glob, grep and bash, five each) on
//! a host, through our stub against OpenCode 1.18.33 itself as the remote (`opencode serve` on
//! the host through `ssh -N -L`, the setup OpenCode's own remote mode uses), in the same run,
//! with the same scripted model on 127.0.0.1 and the same laptop-side OpenCode driving both.
//!
//! Printed, not asserted: wall time per turn (median over the turns, a fresh session each, as
//! the user's prompt to the answer), and the resident memory of the host-side process tree (the
//! stub; the reference's server) idle before a turn and at its peak during one.
//! Targets: wall time ≤ 0.5× the reference; stub peak RSS ≤ 32 MiB.
//!
//! Then the memory the stub needs for a long history: 100 sessions × 1,000 events (made from
//! a real turn's log, with fresh ids) are put in the workspace's log on the host, the stub is
//! restarted (the bridge reconnects, OpenCode syncs the whole history it did not have), and its
//! RSS is printed while OpenCode reads that history, idle after it, and during a turn.
//! Target: ≤ 32 MiB throughout.
//!
//! Usage: `opencode-remote-bench-agent [TURNS [SESSIONS EVENTS]]` (default 5, 100, 1000).
//! Needs sshd and OpenCode (`scripts/install-deps.sh`).
#![allow(clippy::print_stdout)] // a benchmark prints its table

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use integration_tests::http::Client;
use integration_tests::llm::ScriptedModel;
use integration_tests::opencode::{self, OpenCode};
use integration_tests::reference::{self, Both};
use integration_tests::sshd::Sshd;
use serde_json::{Value, json};

/// Tool calls in one turn.
const CALLS: usize = 20;
/// Files in each project, for the tools to work on.
const FILES: usize = 5;

const MIB: f64 = 1024.0 * 1024.0;

/// One side of the comparison.
struct Side {
    name: &'static str,
    workspace: String,
    /// The project directory on the host.
    project: PathBuf,
    /// Wall time per turn.
    times: Vec<Duration>,
    idle: Vec<u64>,
    peak: Vec<u64>,
    /// The peak of the main process alone (the stub; `opencode serve`), without children.
    own: Vec<u64>,
}

fn main() -> ExitCode {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: TURNS SESSIONS EVENTS"))
        .collect();
    let turns = args.first().copied().unwrap_or(5);
    let history = (
        args.get(1).copied().unwrap_or(100),
        args.get(2).copied().unwrap_or(1000),
    );
    let Some(sshd) = Sshd::start() else {
        eprintln!("error: no sshd on this machine");
        return ExitCode::FAILURE;
    };
    let model = ScriptedModel::start();
    let Some(both) = Both::start(&sshd, model.opencode_config(), "bench-host") else {
        eprintln!("error: OpenCode {} is not installed", opencode::VERSION);
        return ExitCode::FAILURE;
    };
    let Both {
        opencode,
        reference,
        ours,
    } = &both;
    for project in [ours, &reference.project] {
        fill(project);
    }

    let result = integration_tests::runtime().block_on(async {
        let mut client = Client::connect(&opencode.authority()).await;
        let mut sides = Vec::new();
        for (name, kind, extra, project) in [
            (
                "ours",
                "ssh-provider",
                json!({ "host": "bench-host" }),
                ours,
            ),
            ("reference", reference::TYPE, json!({}), &reference.project),
        ] {
            let workspace = opencode.create_workspace(&mut client, kind, extra).await?;
            sides.push(Side {
                name,
                workspace,
                project: project.canonicalize().unwrap(),
                times: Vec::new(),
                idle: Vec::new(),
                peak: Vec::new(),
                own: Vec::new(),
            });
        }
        let server = reference.wait_server(Duration::from_secs(60));
        // One turn each to warm up (first requests, caches), then alternate.
        for turn in 0..=turns {
            for side in &mut sides {
                let host = match side.name {
                    "ours" => stub_pids(&sshd),
                    _ => vec![server],
                };
                let idle = host.iter().filter_map(|&p| reference::tree_rss(p)).sum();
                let peak = Sampler::start(host);
                let took = run_turn(opencode, &mut client, side).await?;
                let (peak, own) = peak.stop();
                if turn > 0 {
                    side.times.push(took);
                    side.idle.push(idle);
                    side.peak.push(peak);
                    side.own.push(own);
                }
            }
        }
        let long = long_history(opencode, &mut client, &sshd, &sides[0], history).await?;
        Ok::<_, String>((sides, long))
    });
    let (sides, long) = match result {
        Ok(done) => done,
        Err(err) => {
            eprintln!(
                "error: {err}\n--- opencode log ---\n{}\n--- reference log ---\n{}",
                opencode.log(),
                reference.log()
            );
            return ExitCode::FAILURE;
        }
    };
    report(&sides, turns);
    long.report();
    ExitCode::SUCCESS
}

/// The stub's memory with a long history.
struct LongHistory {
    sessions: usize,
    events: usize,
    bytes: u64,
    /// After OpenCode synced, before the turn (the whole log open).
    idle: u64,
    syncing: u64,
    turn: u64,
    synced_in: Duration,
}

impl LongHistory {
    fn report(&self) {
        println!();
        println!(
            "history on the host: {} sessions × {} events ({:.0} MiB of log)",
            self.sessions,
            self.events,
            self.bytes as f64 / MIB
        );
        let verdict = |bytes: u64| {
            if bytes as f64 / MIB <= 32.0 {
                "PASS"
            } else {
                "MISS"
            }
        };
        for (what, bytes) in [
            ("stub RSS peak while OpenCode synced it", self.syncing),
            ("stub RSS idle with it open", self.idle),
            ("stub RSS peak during a turn", self.turn),
        ] {
            println!(
                "{what:<40}{:>8.1} MiB (target ≤ 32 MiB: {})",
                bytes as f64 / MIB,
                verdict(bytes)
            );
        }
        println!(
            "OpenCode had the whole history after {:.1} s",
            self.synced_in.as_secs_f64()
        );
    }
}

/// Fills the workspace's log with `sessions` × `events` made from a session of `side`, restarts
/// the stub and measures it.
async fn long_history(
    opencode: &OpenCode,
    client: &mut Client,
    sshd: &Sshd,
    side: &Side,
    (sessions, events): (usize, usize),
) -> Result<LongHistory, String> {
    let key = remote::session::store::workspace_key(&side.workspace);
    let dir = sshd
        .remote_home()
        .join(".opencode-remote/state/sessions")
        .join(key);
    // The longest session so far is the template.
    let template = std::fs::read_dir(&dir)
        .map_err(|err| format!("{}: {err}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "jsonl"))
        .max_by_key(|path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0))
        .ok_or("no session log to copy")?;
    let bytes = seed(&dir, &template, sessions, events)?;
    // A new stub: the bridge reconnects, OpenCode syncs what it lacks.
    for pid in stub_pids(sshd) {
        if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
    let restarted = Instant::now();
    let mut stubs = Vec::new();
    while stubs.is_empty() {
        if restarted.elapsed() > Duration::from_secs(60) {
            return Err("the stub did not come back".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        stubs = stub_pids(sshd);
    }
    let sampler = Sampler::start(stubs.clone());
    // OpenCode lists the sessions once it has replayed them.
    loop {
        let (_, listed) = client
            .json(
                "GET",
                &format!(
                    "/session{}",
                    opencode.query(&format!("workspace={}&path=&limit=100000", side.workspace))
                ),
                &Value::Null,
            )
            .await;
        if listed.as_array().is_some_and(|l| l.len() > sessions) {
            break;
        }
        if restarted.elapsed() > Duration::from_secs(600) {
            return Err(format!("OpenCode did not get the history: {listed}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let synced_in = restarted.elapsed();
    let (syncing, _) = sampler.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stubs = stub_pids(sshd);
    let idle = stubs.iter().filter_map(|&p| reference::rss(p)).sum();
    let sampler = Sampler::start(stubs);
    run_turn(opencode, client, side).await?;
    let (turn, _) = sampler.stop();
    Ok(LongHistory {
        sessions,
        events,
        bytes,
        idle,
        syncing,
        turn,
        synced_in,
    })
}

/// `line` with every message, part and event id replaced by its fresh one in `fresh` (made
/// on first sight).
fn renamed(line: &str, fresh: &mut std::collections::HashMap<String, String>) -> String {
    use remote::session::ids::{self, Order};
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = ["msg_", "prt_", "evt_"]
        .iter()
        .filter_map(|prefix| rest.find(prefix))
        .min()
    {
        out.push_str(&rest[..at]);
        let end = rest[at..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(rest.len(), |n| at + n);
        let id = &rest[at..end];
        let order = if id.starts_with("evt_") {
            Order::Descending
        } else {
            Order::Ascending
        };
        let new = fresh
            .entry(id.to_owned())
            .or_insert_with(|| ids::new(&id[..3], order));
        out.push_str(new);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Writes `sessions` logs of `events` events into `dir`, each the `template` log's events
/// (after its `session.created`) repeated with fresh session, message, part and event ids and
/// contiguous seqs. The bytes written.
fn seed(dir: &Path, template: &Path, sessions: usize, events: usize) -> Result<u64, String> {
    use remote::session::ids::{self, Order};
    let text = std::fs::read_to_string(template).map_err(|err| err.to_string())?;
    let rows: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|err| format!("{}: {err}", template.display()))?;
    let old_session = rows[0]["aggregate_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let copy = rows.len() - 1;
    let mut written = 0;
    let mut fresh = std::collections::HashMap::new();
    for _ in 0..sessions {
        let session = ids::new("ses", Order::Descending);
        let mut out = String::new();
        for seq in 0..events {
            let row = if seq == 0 {
                &rows[0]
            } else {
                &rows[1 + (seq - 1) % copy]
            };
            if seq == 0 || (seq - 1) % copy == 0 {
                // A new copy of the template: new ids, kept across the copy's events.
                fresh.clear();
            }
            let mut row = row.clone();
            row["seq"] = seq.into();
            let line = row.to_string().replace(&old_session, &session);
            out.push_str(&renamed(&line, &mut fresh));
            out.push('\n');
        }
        let path = dir.join(format!("{session}.jsonl"));
        std::fs::write(&path, &out).map_err(|err| format!("{}: {err}", path.display()))?;
        written += out.len() as u64;
    }
    Ok(written)
}

/// Files for the tools: `src/file<i>.txt`, 200 numbered lines each.
fn fill(project: &Path) {
    std::fs::create_dir_all(project.join("src")).unwrap();
    for i in 0..FILES {
        let text: String = (0..200)
            .map(|line| format!("file {i} line {line}: some text to read and search\n"))
            .collect();
        std::fs::write(project.join(format!("src/file{i}.txt")), text).unwrap();
    }
}

/// The prompt: `CALLS` scripted tool calls on `project`.
fn script(project: &Path) -> String {
    let mut lines = vec!["Look through the sources.".to_owned()];
    for i in 0..CALLS / 4 {
        let file = project.join(format!("src/file{}.txt", i % FILES));
        let calls = [
            ("read", json!({ "filePath": file })),
            ("glob", json!({ "pattern": "src/*.txt" })),
            (
                "grep",
                json!({ "pattern": format!("line {i}0:"), "include": "*.txt" }),
            ),
            (
                "bash",
                json!({ "command": format!("wc -l src/file{}.txt", i % FILES), "description": "Count lines" }),
            ),
        ];
        for (tool, arguments) in calls {
            lines.push(format!("CALL {tool} {arguments}"));
        }
    }
    lines.join("\n")
}

/// One turn in a fresh session of `side`'s workspace: the time from the prompt to its answer.
/// Checks that every tool call completed (in OpenCode's own replica).
async fn run_turn(
    opencode: &OpenCode,
    client: &mut Client,
    side: &Side,
) -> Result<Duration, String> {
    let query = opencode.query(&format!("workspace={}", side.workspace));
    let (status, session) = client
        .json("POST", &format!("/session{query}"), &json!({}))
        .await;
    if status != 200 {
        return Err(format!("{}: new session: {status} {session}", side.name));
    }
    let session = session["id"].as_str().unwrap().to_owned();
    let body = json!({
        "parts": [{ "type": "text", "text": script(&side.project) }],
        "model": { "providerID": "scripted", "modelID": "m" },
        "agent": "build",
    });
    let started = Instant::now();
    let (status, answer) = client
        .json(
            "POST",
            &format!("/session/{session}/message{}", opencode.query("")),
            &body,
        )
        .await;
    let took = started.elapsed();
    if status != 200 {
        return Err(format!("{}: prompt: {status} {answer}", side.name));
    }
    // The replica catches up right after the answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, messages) = client
            .json(
                "GET",
                &format!("/session/{session}/message{}", opencode.query("")),
                &Value::Null,
            )
            .await;
        let tools: Vec<&Value> = messages
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|m| m["parts"].as_array().into_iter().flatten())
            .filter(|p| p["type"] == "tool")
            .collect();
        let done = tools
            .iter()
            .filter(|p| p["state"]["status"] == "completed")
            .count();
        if done == CALLS {
            return Ok(took);
        }
        if Instant::now() > deadline {
            let states: Vec<String> = tools
                .iter()
                .map(|p| format!("{} {}", p["tool"], p["state"]["status"]))
                .collect();
            return Err(format!(
                "{}: {done} of {CALLS} tool calls completed: {states:?}\n{}",
                side.name,
                serde_json::to_string_pretty(&messages).unwrap_or_default()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The stub processes under the test sshd (one per connection).
fn stub_pids(sshd: &Sshd) -> Vec<u32> {
    let Some(sshd) = sshd.pid() else {
        return Vec::new();
    };
    reference::descendants(sshd)
        .into_iter()
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                let program = cmdline.split(|b| *b == 0).next().unwrap_or_default();
                program.ends_with(b"opencode-remote-stub")
            })
        })
        .collect()
}

/// Samples the resident memory of process trees (and of their roots alone) every 10 ms on a
/// thread of its own.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    own: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl Sampler {
    fn start(pids: Vec<u32>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let own = Arc::new(AtomicU64::new(0));
        let thread = std::thread::spawn({
            let (stop, peak, own) = (stop.clone(), peak.clone(), own.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    let tree = pids.iter().filter_map(|&p| reference::tree_rss(p)).sum();
                    peak.fetch_max(tree, Ordering::Relaxed);
                    let roots = pids.iter().filter_map(|&p| reference::rss(p)).sum();
                    own.fetch_max(roots, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        });
        Sampler {
            stop,
            peak,
            own,
            thread,
        }
    }

    /// The peaks: whole trees, roots alone.
    fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        (
            self.peak.load(Ordering::Relaxed),
            self.own.load(Ordering::Relaxed),
        )
    }
}

fn median<T: Copy + Ord>(values: &[T]) -> T {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2]
}

fn report(sides: &[Side], turns: usize) {
    let [ours, reference] = sides else {
        unreachable!("two sides")
    };
    println!(
        "agent turn with {CALLS} tool calls (read, glob, grep, bash; {} each), {turns} turns each after a warm-up, medians",
        CALLS / 4
    );
    println!("{:<34}{:>12}{:>12}", "", "ours", "reference");
    let ms = |side: &Side| median(&side.times).as_secs_f64() * 1e3;
    println!(
        "{:<34}{:>12.0}{:>12.0}",
        "wall time per turn (ms)",
        ms(ours),
        ms(reference)
    );
    let mib = |values: &[u64]| median(values) as f64 / MIB;
    println!(
        "{:<34}{:>12.1}{:>12.1}",
        "host RSS idle before a turn (MiB)",
        mib(&ours.idle),
        mib(&reference.idle)
    );
    let highest = |side: &Side| side.peak.iter().copied().max().unwrap_or(0) as f64 / MIB;
    println!(
        "{:<34}{:>12.1}{:>12.1}",
        "host RSS peak during turns (MiB)",
        highest(ours),
        highest(reference)
    );
    let own = |side: &Side| side.own.iter().copied().max().unwrap_or(0) as f64 / MIB;
    println!(
        "{:<34}{:>12.1}{:>12.1}",
        "  of which the main process (MiB)",
        own(ours),
        own(reference)
    );
    println!(
        "ours: the stub (and the commands it runs); reference: `opencode serve` on the host (and \
         its children), reached through ssh -N -L"
    );
    let ratio = ms(ours) / ms(reference);
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    println!(
        "wall time: {ratio:.2}× the reference (target ≤ 0.5×: {})",
        verdict(ratio <= 0.5)
    );
    println!(
        "stub peak RSS: {:.1} MiB, {:.2}× the reference (target ≤ 32 MiB: {})",
        highest(ours),
        highest(ours) / highest(reference),
        verdict(highest(ours) <= 32.0)
    );
}
