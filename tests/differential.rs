//! Differential tests against the reference: the same scripted agent turns run once through
//! our stub and once with OpenCode 1.18.33 itself as the remote (`opencode serve` on the host
//! through `ssh -N -L`, `integration_tests::reference`), driven by the same laptop-side
//! OpenCode. What the user sees, OpenCode's own replica (`GET /session/:id/message`), must
//! match message for message and part for part once ids, times, paths and token counts are
//! normalised. When OpenCode is upgraded, this is the test that says what changed.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use integration_tests::http::Client;
use integration_tests::llm::ScriptedModel;
use integration_tests::opencode::OpenCode;
use integration_tests::reference::{self, Both};
use integration_tests::require_sshd;
use serde_json::{Value, json};

/// The project both hosts start from (besides the laptop's files).
fn fill(project: &Path) {
    std::fs::create_dir_all(project.join("src")).unwrap();
    let files = [
        ("src/main.txt", "first line\nsecond line\nthird line\n"),
        ("src/other.txt", "nothing to see\n"),
    ];
    for (name, text) in files {
        std::fs::write(project.join(name), text).unwrap();
    }
    // A project skill, with a script beside it.
    let skill = project.join(".claude/skills/deploy-notes");
    std::fs::create_dir_all(skill.join("scripts")).unwrap();
    std::fs::write(
        skill.join("SKILL.md"),
        "---\nname: deploy-notes\ndescription: How this project ships\n---\n\nRun scripts/deploy.sh.\n",
    )
    .unwrap();
    std::fs::write(skill.join("scripts/deploy.sh"), "echo deploy\n").unwrap();
}

/// The scripted turns, one session each: `CALL` lines for the scripted model, `{project}`
/// standing for the host project's path.
const TURNS: &[&str] = &[
    // Files: create, read, change, find.
    "CALL write {\"filePath\": \"{project}/notes.txt\", \"content\": \"alpha\\nbeta\\n\"}\n\
     CALL read {\"filePath\": \"{project}/notes.txt\"}\n\
     CALL edit {\"filePath\": \"{project}/notes.txt\", \"oldString\": \"beta\", \"newString\": \"gamma\"}\n\
     CALL read {\"filePath\": \"{project}/src/main.txt\", \"offset\": 2, \"limit\": 1}\n\
     CALL glob {\"pattern\": \"src/*.txt\"}\n\
     CALL grep {\"pattern\": \"second\", \"include\": \"*.txt\"}",
    // Commands and a plan.
    "CALL bash {\"command\": \"echo hello from the host && ls src\", \"description\": \"Say hello\"}\n\
     CALL todowrite {\"todos\": [{\"content\": \"ship it\", \"status\": \"in_progress\", \"priority\": \"high\"}]}",
    // Tool errors go back to the model and the turn goes on.
    "CALL read {\"filePath\": \"{project}/missing.txt\"}\n\
     CALL edit {\"filePath\": \"{project}/src/main.txt\", \"oldString\": \"not there\", \"newString\": \"x\"}\n\
     CALL glob {}\n\
     CALL glob {\"pattern\": 5}\n\
     CALL read {\"filePath\": \"{project}/src/main.txt\", \"offset\": \"two\"}\n\
     CALL todowrite {\"todos\": [{\"content\": \"x\"}]}\n\
     CALL todowrite {\"todos\": \"x\"}\n\
     CALL bash {\"command\": \"true\", \"timeout\": true}",
    // Skills: one of the project's, one that does not exist.
    "CALL skill {\"name\": \"deploy-notes\"}\n\
     CALL skill {\"name\": \"nope\"}",
    // No tool: text only.
    "Just say something.",
];

#[test]
fn agent_turns_should_match_opencode_itself_as_the_remote() {
    let sshd = require_sshd!();
    let model = ScriptedModel::start();
    let Some(both) = Both::start(&sshd, model.opencode_config(), "diff-host") else {
        return;
    };
    let Both {
        opencode,
        reference,
        ours,
    } = &both;
    let sides = [
        ("ours", ours.clone()),
        ("reference", reference.project.canonicalize().unwrap()),
    ];
    for (_, project) in &sides {
        fill(project);
    }
    integration_tests::runtime().block_on(async {
        let mut client = Client::connect(&opencode.authority()).await;
        let mut workspaces = Vec::new();
        for (kind, extra) in [
            ("ssh-provider", json!({ "host": "diff-host" })),
            (reference::TYPE, json!({})),
        ] {
            let id = opencode
                .create_workspace(&mut client, kind, extra)
                .await
                .unwrap_or_else(|err| panic!("{err}\n{}", opencode.log()));
            workspaces.push(id);
        }
        let mut mismatches = Vec::new();
        for (turn, script) in TURNS.iter().enumerate() {
            let mut seen = Vec::new();
            for ((name, project), workspace) in sides.iter().zip(&workspaces) {
                let text = script.replace("{project}", &project.to_string_lossy());
                let messages = run_turn(opencode, &mut client, workspace, &text).await;
                seen.push((name, normalised(&messages, project)));
            }
            let [(_, ours), (_, theirs)] = &seen[..] else {
                unreachable!()
            };
            if ours != theirs {
                mismatches.push(format!(
                    "turn {turn} ({}):\n{}",
                    script.lines().next().unwrap_or_default(),
                    difference(theirs, ours)
                ));
            }
        }
        assert!(
            mismatches.is_empty(),
            "OpenCode's replica differs between our stub and OpenCode as the remote \
             (- reference, + ours):\n{}",
            mismatches.join("\n")
        );
    });
}

/// Runs `text` as a prompt in a new session of `workspace`; the session's messages once the
/// turn is over and OpenCode's replica has settled.
async fn run_turn(
    opencode: &OpenCode,
    client: &mut Client,
    workspace: &str,
    text: &str,
) -> Vec<Value> {
    let (status, session) = client
        .json(
            "POST",
            &format!(
                "/session{}",
                opencode.query(&format!("workspace={workspace}"))
            ),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{session}");
    let session = session["id"].as_str().unwrap().to_owned();
    let body = json!({
        "parts": [{ "type": "text", "text": text }],
        "model": { "providerID": "scripted", "modelID": "m" },
        "agent": "build",
    });
    let path = format!("/session/{session}/message{}", opencode.query(""));
    let (status, answer) = client.json("POST", &path, &body).await;
    assert_eq!(status, 200, "{answer}\n{}", opencode.log());
    // Settled: the same answer twice in a row, the last assistant message completed.
    let started = Instant::now();
    let mut last = Value::Null;
    loop {
        let (_, messages) = client.json("GET", &path, &Value::Null).await;
        let completed = messages
            .as_array()
            .and_then(|m| m.last())
            .is_some_and(|m| m["info"]["time"]["completed"].is_number());
        if completed && messages == last {
            return messages.as_array().unwrap().clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the turn did not settle: {messages:#}"
        );
        last = messages;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `messages` with what legitimately differs between two runs replaced by placeholders: ids
/// (numbered by first appearance, so references between them still compare), times, token
/// counts and cost, snapshot hashes, and the host project's path.
fn normalised(messages: &[Value], project: &Path) -> Value {
    let mut ids = HashMap::new();
    let mut value = Value::Array(messages.to_vec());
    walk(&mut value, project, &mut ids);
    for message in value.as_array_mut().into_iter().flatten() {
        for part in message["parts"].as_array_mut().into_iter().flatten() {
            if part["tool"] == "glob" {
                sort_lines(&mut part["state"]["output"]);
            }
        }
    }
    value
}

/// `glob`'s paths in one order: the reference lists them in the order of `rg`'s parallel walk,
/// which changes with the number of threads and their timing (on one core it is directory
/// order, on more the reverse in a small directory, interleaved in a larger tree).
fn sort_lines(output: &mut Value) {
    if let Some(text) = output.as_str() {
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        *output = json!(lines.join("\n"));
    }
}

fn walk(value: &mut Value, project: &Path, ids: &mut HashMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                match key.as_str() {
                    "time" | "tokens" | "cost" => zeroed(inner),
                    // Git tree hashes: equal trees hash alike, but the hosts' trees need not
                    // be byte for byte the same.
                    "snapshot" | "hash" if inner.is_string() => *inner = json!("<snapshot>"),
                    _ => walk(inner, project, ids),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, project, ids);
            }
        }
        Value::String(text) => {
            let project = project.to_string_lossy();
            if text.contains(project.as_ref()) {
                *text = text.replace(project.as_ref(), "<project>");
            }
            // Nothing refers to a part by id: all alike (patch parts would shift numbers).
            if text.starts_with("prt_") {
                *text = "<prt>".to_owned();
            }
            for prefix in ["ses_", "msg_", "call_", "wrk_"] {
                if text.starts_with(prefix) && !text.contains(char::is_whitespace) {
                    let next = ids.keys().filter(|id| id.starts_with(prefix)).count();
                    *text = ids
                        .entry(text.clone())
                        .or_insert_with(|| format!("<{prefix}{next}>"))
                        .clone();
                }
            }
        }
        _ => {}
    }
}

/// Numbers under `value` become 0 (the shape stays).
fn zeroed(value: &mut Value) {
    match value {
        Value::Number(_) => *value = json!(0),
        Value::Object(map) => map.values_mut().for_each(zeroed),
        Value::Array(items) => items.iter_mut().for_each(zeroed),
        _ => {}
    }
}

/// A line diff of the two pretty-printed values: only the lines that differ, with a little
/// context.
fn difference(expected: &Value, actual: &Value) -> String {
    let expected = serde_json::to_string_pretty(expected).unwrap();
    let actual = serde_json::to_string_pretty(actual).unwrap();
    let (a, b): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    // Longest common subsequence, enough for replicas of a few hundred lines.
    let mut table = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            table[i][j] = if a[i] == b[j] {
                table[i + 1][j + 1] + 1
            } else {
                table[i + 1][j].max(table[i][j + 1])
            };
        }
    }
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(format!("  {}", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || table[i][j + 1] >= table[i + 1][j]) {
            out.push(format!("+ {}", b[j]));
            j += 1;
        } else {
            out.push(format!("- {}", a[i]));
            i += 1;
        }
    }
    // Keep changed lines and two lines around them.
    let changed: Vec<usize> = (0..out.len())
        .filter(|&k| !out[k].starts_with("  "))
        .collect();
    let mut shown = String::new();
    let mut last = None;
    for (k, line) in out.iter().enumerate() {
        if changed.iter().any(|&c| c.abs_diff(k) <= 2) {
            if last.is_some_and(|l: usize| k > l + 1) {
                shown.push_str("  ...\n");
            }
            shown.push_str(line);
            shown.push('\n');
            last = Some(k);
        }
    }
    shown
}
