//! HTTP/2 abuse against the stub on its own pipes (the `--stdio` preface path, no SSH): floods
//! and malformed frames must end in a GOAWAY, a stream reset or a clean close, never a panic or
//! unbounded memory, and where the connection survives it must still answer.
//! Cases and figures from RELIABILITY.md §3.1 (H2-03).

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use integration_tests::bins::static_stub;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK "literal without indexing, indexed name" (names from the static table).
fn literal(name_index: u8, value: &str) -> Vec<u8> {
    assert!(name_index < 16 && value.len() < 127);
    let mut out = vec![name_index, value.len() as u8];
    out.extend_from_slice(value.as_bytes());
    out
}

/// A header block for `GET /global/health`.
fn get_health() -> Vec<u8> {
    // :method GET (2), :scheme http (6), then :authority and :path by indexed name.
    let mut block = vec![0x82, 0x86];
    block.extend(literal(1, "stub"));
    block.extend(literal(4, "/global/health"));
    block
}

/// `opencode-remote-stub --stdio` with its home, state and log in `home` (under `/usr/bin/time`
/// reporting the peak RSS when `time` is given).
fn stub_command(time: Option<&str>, home: &std::path::Path) -> Command {
    let mut command = match time {
        Some(time) => {
            let mut command = Command::new(time);
            command.args(["-f", "maxrss_kib=%M"]).arg(static_stub());
            command
        }
        None => Command::new(static_stub()),
    };
    command
        .args(["--stdio", "--state-dir"])
        .arg(home.join("state"))
        .arg("--log-file")
        .arg(home.join("stub.log"))
        .current_dir(home)
        .env("HOME", home);
    command
}

struct Outcome {
    /// (type, flags, stream, first 8 payload bytes) of every frame the stub sent.
    frames: Vec<(u8, u8, u32, Vec<u8>)>,
    exited: bool,
    /// Killed after 30 s without finishing.
    hung: bool,
    stderr: String,
    peak_kib: u64,
}

impl Outcome {
    fn goaway(&self) -> Option<u32> {
        self.frames
            .iter()
            .find(|f| f.0 == GOAWAY)
            .map(|f| u32::from_be_bytes(f.3[4..8].try_into().unwrap()))
    }

    fn answered(&self, stream: u32) -> bool {
        self.frames.iter().any(|f| f.0 == HEADERS && f.2 == stream)
    }

    fn count(&self, kind: u8) -> usize {
        self.frames.iter().filter(|f| f.0 == kind).count()
    }
}

/// Runs the stub with `attack` after the preface and an empty SETTINGS, then (when
/// `then_ask` is set) a `GET /global/health` on that stream; closes stdin once everything is
/// written and the answer arrived (or 10 s passed).
fn run(attack: Vec<u8>, then_ask: Option<u32>) -> Outcome {
    let home = tempfile::tempdir().unwrap();
    let mut child = stub_command(Some("/usr/bin/time"), home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a hung stub (a child of `time`) can be killed with it.
        .process_group(0)
        .spawn()
        .unwrap();
    let (finished_tx, finished_rx) = std::sync::mpsc::channel::<()>();
    let hung = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let hung = hung.clone();
        let group = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        std::thread::spawn(move || {
            if finished_rx.recv_timeout(Duration::from_secs(30)).is_err() {
                hung.store(true, Ordering::SeqCst);
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
        })
    };
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(SETTINGS, 0, 0, &[]));
        bytes.extend(attack);
        if let Some(stream) = then_ask {
            bytes.extend(frame(
                HEADERS,
                END_STREAM | END_HEADERS,
                stream,
                &get_health(),
            ));
        }
        // The stub may stop reading (GOAWAY) and exit: a broken pipe is an outcome, not a
        // failure.
        let _ = stdin.write_all(&bytes);
        let _ = stdin.flush();
        // Keep the connection open until the reader has what it waits for.
        let _ = done_rx.recv_timeout(Duration::from_secs(10));
        drop(stdin);
    });
    let mut frames = Vec::new();
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let mut signalled = false;
    loop {
        let read = match stdout.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        buffer.extend_from_slice(&chunk[..read]);
        while buffer.len() >= 9 {
            let len = (usize::from(buffer[0]) << 16)
                | (usize::from(buffer[1]) << 8)
                | usize::from(buffer[2]);
            if buffer.len() < 9 + len {
                break;
            }
            let stream = u32::from_be_bytes(buffer[5..9].try_into().unwrap()) & 0x7fff_ffff;
            let head = buffer[9..9 + len.min(8)].to_vec();
            frames.push((buffer[3], buffer[4], stream, head));
            buffer.drain(..9 + len);
        }
        let finished = frames.iter().any(|f| f.0 == GOAWAY)
            || then_ask.is_some_and(|s| frames.iter().any(|f| f.0 == HEADERS && f.2 == s));
        if finished && !signalled {
            signalled = true;
            let _ = done_tx.send(());
        }
    }
    let _ = done_tx.send(());
    writer.join().unwrap();
    let started = Instant::now();
    let mut exited = false;
    while started.elapsed() < Duration::from_secs(10) {
        if child.try_wait().unwrap().is_some() {
            exited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Reaps it (a no-op kill when it already exited).
    let _ = child.kill();
    let _ = child.wait();
    let _ = finished_tx.send(());
    watchdog.join().unwrap();
    let mut text = String::new();
    let _ = stderr.read_to_string(&mut text);
    let peak_kib = text
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kib="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(u64::MAX);
    Outcome {
        frames,
        exited,
        hung: hung.load(Ordering::SeqCst),
        stderr: text,
        peak_kib,
    }
}

/// What every case must hold: the stub exits by itself once its stdin closes, did not panic,
/// and stayed within 16 MiB.
fn check_sane(name: &str, outcome: &Outcome) {
    check_sane_within(name, outcome, 16 * 1024);
}

fn check_sane_within(name: &str, outcome: &Outcome, limit_kib: u64) {
    assert!(!outcome.hung, "{name}: the stub hung (killed after 30 s)");
    assert!(
        outcome.exited,
        "{name}: the stub did not exit after its stdin closed"
    );
    assert!(
        !outcome.stderr.contains("panicked"),
        "{name}: {}",
        outcome.stderr
    );
    eprintln!(
        "{name}: peak {} KiB, goaway {:?}, {} frames back",
        outcome.peak_kib,
        outcome.goaway(),
        outcome.frames.len()
    );
    assert!(
        outcome.peak_kib <= limit_kib,
        "{name}: peak RSS {} KiB (limit {limit_kib})",
        outcome.peak_kib
    );
}

#[test]
fn floods_should_be_answered_or_refused_within_bounded_memory() {
    // PING flood: every PING is answered and the connection still serves.
    let pings: Vec<u8> = (0..100_000u64)
        .flat_map(|n| frame(PING, 0, 0, &n.to_be_bytes()))
        .collect();
    let outcome = run(pings, Some(1));
    check_sane("ping flood", &outcome);
    assert!(outcome.answered(1), "ping flood: no answer afterwards");
    assert!(
        outcome.count(PING) >= 100_000,
        "{} pongs",
        outcome.count(PING)
    );

    // Rapid reset (CVE-2023-44487): requests cancelled at once. Either the stub calls it
    // abuse (GOAWAY ENHANCE_YOUR_CALM; 10 000 is past its 8 192 pending-reset allowance, which
    // foundation.rs shows an ordinary burst of cancellations stays under) or it keeps serving.
    let mut resets = Vec::new();
    for n in 0..10_000u32 {
        let stream = 2 * n + 1;
        resets.extend(frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            stream,
            &get_health(),
        ));
        resets.extend(frame(RST_STREAM, 0, stream, &8u32.to_be_bytes()));
    }
    let outcome = run(resets, Some(20_001));
    // Up to 8 192 reset streams are held before the GOAWAY (measured peak 10–17 MiB).
    check_sane_within("rapid reset", &outcome, 32 * 1024);
    assert!(
        outcome.goaway() == Some(11) || outcome.answered(20_001),
        "rapid reset: neither refused nor still serving"
    );

    // CONTINUATION flood: a header block that never ends.
    let mut flood = frame(HEADERS, END_STREAM, 1, &[0x82, 0x86]);
    for _ in 0..200_000 {
        flood.extend(frame(CONTINUATION, 0, 1, &[0x40, 0x01, b'a', 0x01, b'b']));
    }
    let outcome = run(flood, None);
    check_sane("continuation flood", &outcome);
    assert!(
        outcome.goaway().is_some() || outcome.count(RST_STREAM) > 0,
        "continuation flood: not refused"
    );

    // HPACK bomb: one 4000-byte header referenced 4000 times (16 MB decoded).
    let mut block = vec![0x82, 0x86];
    block.extend(literal(1, "stub"));
    block.extend(literal(4, "/global/health"));
    // Literal with incremental indexing, new name "x", value 4000 × 'v' (length 4000 as an
    // HPACK integer with a 7-bit prefix).
    block.extend([0x40, 0x01, b'x', 0x7f]);
    let mut rest = 4000 - 127;
    while rest >= 128 {
        block.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    block.push(rest as u8);
    block.extend(std::iter::repeat_n(b'v', 4000));
    // Index 62: the entry just added.
    block.extend(std::iter::repeat_n(0xbe, 4000));
    let mut bomb = Vec::new();
    let mut chunks = block.chunks(16_000).peekable();
    let first = chunks.next().unwrap();
    let flags = if chunks.peek().is_none() {
        END_STREAM | END_HEADERS
    } else {
        END_STREAM
    };
    bomb.extend(frame(HEADERS, flags, 1, first));
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            END_HEADERS
        } else {
            0
        };
        bomb.extend(frame(CONTINUATION, flags, 1, chunk));
    }
    let outcome = run(bomb, Some(3));
    check_sane("hpack bomb", &outcome);
    let refused = outcome.goaway().is_some()
        || outcome
            .frames
            .iter()
            .any(|f| f.2 == 1 && (f.0 == RST_STREAM || f.0 == HEADERS));
    assert!(refused, "hpack bomb: stream 1 neither refused nor answered");
}

#[test]
fn malformed_frames_should_end_the_connection_with_the_right_error() {
    // A DATA frame larger than the 16 KiB SETTINGS_MAX_FRAME_SIZE: a connection error
    // (FRAME_SIZE_ERROR by the RFC; the h2 crate's codec reports PROTOCOL_ERROR).
    let oversize = frame(DATA, 0, 1, &vec![0u8; 20_000]);
    let outcome = run(oversize, None);
    check_sane("oversize frame", &outcome);
    assert!(
        matches!(outcome.goaway(), Some(1 | 6)),
        "oversize frame: {:?}",
        outcome.goaway()
    );

    // The connection window pushed past 2^31-1: FLOW_CONTROL_ERROR (3).
    let overflow = frame(WINDOW_UPDATE, 0, 0, &0x7fff_ffffu32.to_be_bytes());
    let outcome = run(overflow, None);
    check_sane("window overflow", &outcome);
    assert_eq!(outcome.goaway(), Some(3), "window overflow");

    // An HTTP/1 request where the preface should be: no HTTP/2, no crash, no answer on the wire
    // but a clean exit.
    let home = tempfile::tempdir().unwrap();
    let mut child = stub_command(None, home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET /global/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !output.stdout.windows(8).any(|w| w == b"HTTP/1.1"),
        "the stub answered HTTP/1.1 on the wire"
    );
}
