//! `opencode-remote-bench-gateway`: what the model gateway costs. A fake provider on 127.0.0.1
//! streams tokens as OpenAI chat-completion chunks; the same streams are read
//!
//! * **direct**: by this process from the fake provider (the floor: a client on the laptop);
//! * **road**: on the host, through the stub's diagnostic gateway route: host → stub → announce
//!   stream → bridge → provider, and every event back over SSH (what the agent loop will see).
//!
//! Printed: time to the first token (p50, p90) for short answers and tokens per second for long
//! ones, with ratios against the targets (≤ +2 ms p50 first token, ≥ 0.95× throughput). The
//! figures are printed, never asserted.
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
use protocol::gateway::{Content, Message, ModelOptions, ModelRequest, Request, Role};
use serde_json::json;

/// Tokens of the paced answers.
const PACED_TOKENS: usize = 500;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(40);
    let tokens: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4000);
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
        let mut direct = Client::connect(&fake.url().replace("http://", "")).await;
        let mut road = Client::connect(&bridge.authority()).await;
        let road_path = format!("{}/x-opencode-remote/diag/gateway", bridge.prefix());
        // Warm up both (the bridge attaches to the gateway, connections open).
        for _ in 0..3 {
            while run_road(&mut road, &road_path, "short").await.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            run_direct(&mut direct, "short").await;
        }
        let mut first_direct = Vec::new();
        let mut first_road = Vec::new();
        for _ in 0..runs {
            first_direct.push(run_direct(&mut direct, "short").await.first);
            first_road.push(run_road(&mut road, &road_path, "short").await.expect("road").first);
        }
        let mut rate_direct = Vec::new();
        let mut rate_road = Vec::new();
        for _ in 0..5 {
            rate_direct.push(run_direct(&mut direct, "long").await.rate());
            rate_road.push(run_road(&mut road, &road_path, "long").await.expect("road").rate());
        }
        let mut paced_direct = Vec::new();
        let mut paced_road = Vec::new();
        for _ in 0..3 {
            paced_direct.push(run_direct(&mut direct, "paced").await.rate());
            paced_road.push(run_road(&mut road, &road_path, "paced").await.expect("road").rate());
        }
        let (d50, d90) = percentiles(&mut first_direct);
        let (r50, r90) = percentiles(&mut first_road);
        let direct_rate = median(&mut rate_direct);
        let road_rate = median(&mut rate_road);
        let extra = r50.as_secs_f64() * 1e3 - d50.as_secs_f64() * 1e3;
        let ratio = road_rate / direct_rate;
        let paced_direct = median(&mut paced_direct);
        let paced_road = median(&mut paced_road);
        let paced_ratio = paced_road / paced_direct;
        println!("model gateway: {runs} short answers, 5 of {tokens} tokens flat out, 3 of {PACED_TOKENS} paced");
        println!("{:<28}{:>12}{:>12}", "", "direct", "road");
        println!("{:<28}{:>12.2}{:>12.2}", "first token p50 (ms)", ms(d50), ms(r50));
        println!("{:<28}{:>12.2}{:>12.2}", "first token p90 (ms)", ms(d90), ms(r90));
        println!("{:<28}{:>12.0}{:>12.0}", "tokens/s, flat out", direct_rate, road_rate);
        println!("{:<28}{:>12.0}{:>12.0}", "tokens/s, 1 ms a token", paced_direct, paced_road);
        println!(
            "first token: +{extra:.2} ms at p50 (target ≤ +2 ms: {})",
            if extra <= 2.0 { "PASS" } else { "MISS" },
        );
        for (what, ratio) in [("flat out", ratio), ("at a provider's pace", paced_ratio)] {
            println!(
                "throughput {what}: {ratio:.2}× (target ≥ 0.95×: {})",
                if ratio >= 0.95 { "PASS" } else { "MISS" },
            );
        }
    });
    ExitCode::SUCCESS
}

struct Timing {
    first: Duration,
    last: Duration,
    tokens: usize,
}

impl Timing {
    fn rate(&self) -> f64 {
        let span = self.last.saturating_sub(self.first).as_secs_f64();
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

fn percentiles(values: &mut [Duration]) -> (Duration, Duration) {
    values.sort();
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9))
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
    let mut timing = Timing {
        first: Duration::ZERO,
        last: Duration::ZERO,
        tokens: 0,
    };
    while let Some(Ok(frame)) = body.frame().await {
        let Some(data) = frame.data_ref() else {
            continue;
        };
        buffer.extend_from_slice(data);
        while let Some(at) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=at).collect();
            let count = tokens(&String::from_utf8_lossy(&line));
            if count > 0 {
                let now = started.elapsed();
                if timing.tokens == 0 {
                    timing.first = now;
                }
                timing.last = now;
                timing.tokens += count;
            }
        }
    }
    timing
}

async fn run_direct(client: &mut Client, model: &str) -> Timing {
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

/// `None` while the bridge has not attached to the gateway yet.
async fn run_road(client: &mut Client, path: &str, model: &str) -> Option<Timing> {
    let request = Request::Model(ModelRequest {
        provider_id: "fake".into(),
        model_id: model.into(),
        system: Vec::new(),
        messages: vec![Message {
            role: Role::User,
            content: vec![Content::Text("hi".into())],
        }],
        tools: Vec::new(),
        options: ModelOptions::default(),
    });
    let body = serde_json::to_vec(&request).expect("json");
    let started = Instant::now();
    let response = client.send("POST", path, &body, &[]).await;
    if response.status() != 200 {
        let _ = response.into_body().collect().await;
        return None;
    }
    Some(
        time_lines(started, response.into_body(), |line| {
            if line.contains("TextDelta") {
                // Every long or paced token is `tok{i} `; a short answer's pieces count one each.
                line.matches("tok").count().max(1)
            } else {
                0
            }
        })
        .await,
    )
}
