//! `opencode-remote-bench-gateway`: what the model gateway costs. A fake provider on 127.0.0.1
//! streams tokens as OpenAI chat-completion chunks; the same streams are read
//!
//! * **raw**: by this process from the fake provider, scanning lines only (the floor: no
//!   parsing at all);
//! * **bridge**: by the bridge's gateway in this process, without any host: the provider's
//!   stream parsed and normalised, replies handed over (the baseline the targets are against);
//! * **host**: read on the host by the stub's diagnostic gateway route, as the agent loop reads
//!   an answer: host → stub → announce stream → bridge → provider, and every reply back over
//!   SSH; the stub times it and reports once;
//! * **echoed**: the same route streaming every reply back to this process (the road twice: a
//!   ceiling on what the host sees, for information).
//!
//! Printed: time to the first token (p50, p90) for short answers and tokens per second for long
//! ones, with ratios of host to bridge against the targets (≤ +2 ms p50 first token, ≥ 0.95×
//! throughput). The figures are printed, never asserted.
//!
//! ```text
//! cargo build --release
//! cargo run --release -p integration-tests --bin opencode-remote-bench-gateway -- [RUNS] [TOKENS]
//! ```

#![allow(clippy::print_stdout)] // a benchmark prints its table

use std::process::ExitCode;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use integration_tests::bins;
use integration_tests::bridge::BridgeProcess;
use integration_tests::fake_model::{FakeModel, Script, Step, chat_stream};
use integration_tests::http::Client;
use integration_tests::sshd::Sshd;
use local::bridge::{Gateway, LocalOpenCode};
use protocol::gateway::{
    Content, Message, ModelEvent, ModelOptions, ModelRequest, Reply, Request, Role,
};
use serde_json::json;

/// Tokens of the paced answers.
const PACED_TOKENS: usize = 500;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(40);
    let tokens: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(40_000);
    let Some(sshd) = Sshd::start() else {
        eprintln!("error: no sshd on this machine");
        return ExitCode::FAILURE;
    };
    let fake = FakeModel::start();
    let models: serde_json::Map<String, serde_json::Value> = ["short", "long", "paced"]
        .iter()
        .map(|id| {
            (
                id.to_string(),
                json!({"id": id, "name": id,
                "api": {"id": id, "url": "", "npm": "@ai-sdk/openai-compatible"},
                "limit": {"context": 100000, "output": 8000}}),
            )
        })
        .collect();
    fake.set_providers(
        json!({"providers": [{"id": "fake", "name": "Fake", "key": "sk-bench",
        "options": {"baseURL": format!("{}/v1", fake.url())}, "models": models}], "default": {}}),
    );
    let words: Vec<String> = (0..tokens).map(|i| format!("tok{i} ")).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    fake.script(
        "short",
        vec![Script::sse(&chat_stream(&["Hello", " world"], &[]), true)],
    );
    fake.script("long", vec![Script::sse(&chat_stream(&words, &[]), true)]);
    // A provider's pace (1 ms a token is still faster than any real model).
    let mut paced = Script::sse(
        &chat_stream(&words[..PACED_TOKENS.min(words.len())], &[]),
        true,
    );
    paced.steps = paced
        .steps
        .into_iter()
        .flat_map(|step| [Step::Pause(Duration::from_millis(1)), step])
        .collect();
    fake.script("paced", vec![paced]);
    let mut command = bins::local(&sshd);
    command
        .env("OPENCODE_REMOTE_LOG", "warn")
        .arg("bridge")
        .arg(bins::destination(&sshd))
        .args(["--opencode-url", &fake.url()]);
    let bridge = match BridgeProcess::spawn(command) {
        Ok(bridge) => bridge,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let gateway = match Gateway::new(Some(LocalOpenCode::http(
            &fake.url(),
            "/".into(),
            None,
        ))) {
            Ok(gateway) => gateway,
            Err(err) => {
                eprintln!("error: cannot start the gateway: {err}");
                return ExitCode::FAILURE;
            }
        };
        let mut raw = Client::connect(&fake.url().replace("http://", "")).await;
        let mut road = Client::connect(&bridge.authority()).await;
        let road_path = format!("{}/x-opencode-remote/diag/gateway", bridge.prefix());
        // Warm up all three (the bridge attaches to the gateway, connections open).
        for _ in 0..3 {
            while run_road(&mut road, &road_path, "short").await.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            run_raw(&mut raw, "short").await;
            run_bridge(&gateway, "short").await;
        }
        // Interleaved, so a noisy moment hits all three alike.
        let mut first = Table::default();
        for _ in 0..runs {
            first.raw.push(run_raw(&mut raw, "short").await.first);
            first.bridge.push(run_bridge(&gateway, "short").await.first);
            first.host.push(run_host(&mut road, &road_path, "short").await.first);
            first.echoed.push(run_road(&mut road, &road_path, "short").await.expect("road").first);
        }
        let mut flat = Table::default();
        let mut paced = Table::default();
        for (table, model, times) in [(&mut flat, "long", 5), (&mut paced, "paced", 3)] {
            for _ in 0..times {
                table.raw.push(run_raw(&mut raw, model).await.rate());
                table.bridge.push(run_bridge(&gateway, model).await.rate());
                table.host.push(run_host(&mut road, &road_path, model).await.rate());
                table.echoed.push(run_road(&mut road, &road_path, model).await.expect("road").rate());
            }
        }
        let p50 = first.map(|v| ms(percentile(v, 0.5)));
        let p90 = first.map(|v| ms(percentile(v, 0.9)));
        let flat = flat.map(|v| median(v));
        let paced = paced.map(|v| median(v));
        println!(
            "model gateway: {runs} short answers, 5 of {tokens} tokens flat out, 3 of {PACED_TOKENS} paced"
        );
        println!("{:<28}{:>10}{:>10}{:>10}{:>10}", "", "raw", "bridge", "host", "echoed");
        for (what, row, digits) in [
            ("first token p50 (ms)", p50, 2),
            ("first token p90 (ms)", p90, 2),
            ("tokens/s, flat out", flat, 0),
            ("tokens/s, 1 ms a token", paced, 0),
        ] {
            println!(
                "{what:<28}{:>10.digits$}{:>10.digits$}{:>10.digits$}{:>10.digits$}",
                row[0], row[1], row[2], row[3]
            );
        }
        println!(
            "raw: lines scanned, nothing parsed; bridge: the gateway without the host; \
             host: read on the host; echoed: every reply streamed back here too"
        );
        let extra = p50[2] - p50[1];
        println!(
            "first token: +{extra:.2} ms at p50 over the bridge alone (target ≤ +2 ms: {})",
            if extra <= 2.0 { "PASS" } else { "MISS" },
        );
        for (what, row) in [("flat out", flat), ("at a provider's pace", paced)] {
            let ratio = row[2] / row[1];
            println!(
                "throughput {what}: {ratio:.2}× the bridge alone, {:.2}× raw, echoed {:.2}× (target ≥ 0.95× the bridge: {})",
                row[2] / row[0],
                row[3] / row[1],
                if ratio >= 0.95 { "PASS" } else { "MISS" },
            );
        }
        ExitCode::SUCCESS
    })
}

/// One figure per reader, collected over runs.
#[derive(Default)]
struct Table<T> {
    raw: Vec<T>,
    bridge: Vec<T>,
    host: Vec<T>,
    echoed: Vec<T>,
}

impl<T> Table<T> {
    /// `[raw, bridge, host, echoed]`, each reduced by `f`.
    fn map(&mut self, f: impl Fn(&mut Vec<T>) -> f64) -> [f64; 4] {
        [
            f(&mut self.raw),
            f(&mut self.bridge),
            f(&mut self.host),
            f(&mut self.echoed),
        ]
    }
}

struct Timing {
    first: Duration,
    last: Duration,
    tokens: usize,
}

impl Timing {
    fn new() -> Timing {
        Timing {
            first: Duration::ZERO,
            last: Duration::ZERO,
            tokens: 0,
        }
    }

    /// `count` tokens arrived now.
    fn arrived(&mut self, started: Instant, count: usize) {
        if count == 0 {
            return;
        }
        let now = started.elapsed();
        if self.tokens == 0 {
            self.first = now;
        }
        self.last = now;
        self.tokens += count;
    }

    /// Tokens per second over the whole answer, from the request to the last token (a rate
    /// from the first token would count the tokens joined into the first reply for free).
    fn rate(&self) -> f64 {
        let span = self.last.as_secs_f64();
        if span > 0.0 {
            self.tokens as f64 / span
        } else {
            f64::INFINITY
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(values: &mut [Duration], q: f64) -> Duration {
    values.sort();
    values[((values.len() - 1) as f64 * q).round() as usize]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Reads a streamed body line by line; `tokens` says how many tokens a line carries (the stub
/// joins tokens that arrive together into one reply).
async fn time_lines(
    started: Instant,
    mut body: Incoming,
    tokens: impl Fn(&str) -> usize,
) -> Timing {
    let mut buffer = Vec::new();
    let mut timing = Timing::new();
    while let Some(Ok(frame)) = body.frame().await {
        let Some(data) = frame.data_ref() else {
            continue;
        };
        buffer.extend_from_slice(data);
        while let Some(at) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=at).collect();
            timing.arrived(started, tokens(&String::from_utf8_lossy(&line)));
        }
    }
    timing
}

async fn run_raw(client: &mut Client, model: &str) -> Timing {
    let body =
        json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let started = Instant::now();
    let response = client
        .send(
            "POST",
            "/v1/chat/completions",
            body.to_string().as_bytes(),
            &[],
        )
        .await;
    time_lines(started, response.into_body(), |line| {
        usize::from(line.contains("\"content\""))
    })
    .await
}

fn model_request(model: &str) -> Request {
    Request::Model(ModelRequest {
        provider_id: "fake".into(),
        model_id: model.into(),
        system: Vec::new(),
        messages: vec![Message {
            role: Role::User,
            content: vec![Content::Text("hi".into())],
        }],
        tools: Vec::new(),
        options: ModelOptions::default(),
    })
}

/// Tokens in a piece of text: every long or paced token is `tok{i} `; a short answer's pieces
/// count one each.
fn tokens_in(text: &str) -> usize {
    text.matches("tok").count().max(1)
}

/// The bridge's gateway in this process, as it hands replies to the road.
async fn run_bridge(gateway: &Gateway, model: &str) -> Timing {
    let (replies, mut queued) = tokio::sync::mpsc::channel(16);
    let started = Instant::now();
    let performing = gateway.perform_here(model_request(model), replies);
    let reading = async {
        let mut timing = Timing::new();
        while let Some(reply) = queued.recv().await {
            if let Reply::Model(ModelEvent::TextDelta(text)) = reply {
                timing.arrived(started, tokens_in(&text));
            }
        }
        timing
    };
    tokio::join!(performing, reading).1
}

/// The road timed on the host (the stub reports when text arrived there).
async fn run_host(client: &mut Client, path: &str, model: &str) -> Timing {
    let body = serde_json::to_vec(&model_request(model)).expect("json");
    let response = client
        .send("POST", &format!("{path}?timing=true"), &body, &[])
        .await;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let timing: serde_json::Value = serde_json::from_slice(&body).expect("timing JSON");
    assert_eq!(timing["ended"], "End", "{timing}");
    let at = |field: &str| Duration::from_secs_f64(timing[field].as_f64().expect(field) / 1e3);
    Timing {
        first: at("first_text_ms"),
        last: at("last_text_ms"),
        tokens: tokens_in(timing["text"].as_str().expect("text")),
    }
}

/// `None` while the bridge has not attached to the gateway yet.
async fn run_road(client: &mut Client, path: &str, model: &str) -> Option<Timing> {
    let body = serde_json::to_vec(&model_request(model)).expect("json");
    let started = Instant::now();
    let response = client.send("POST", path, &body, &[]).await;
    if response.status() != 200 {
        let _ = response.into_body().collect().await;
        return None;
    }
    Some(
        time_lines(started, response.into_body(), |line| {
            if line.contains("TextDelta") {
                tokens_in(line)
            } else {
                0
            }
        })
        .await,
    )
}
