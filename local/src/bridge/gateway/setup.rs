//! The user's OpenCode setup for the stub (providers with their models, costs and limits but
//! never a key; default models; agents, commands and permission config as the local OpenCode
//! resolves them; global instructions), and web fetches done from the laptop.

use std::path::PathBuf;
use std::time::Duration;

use protocol::gateway::{FailureKind, FetchRequest, Reply, Setup};
use serde_json::Value;

use super::providers::get_json;
use super::{Gone, Replies, Shared, failure};

/// Largest instruction file sent.
const MAX_INSTRUCTIONS: u64 = 1 << 20;
/// Longest fetch allowed, whatever the stub asks.
const MAX_FETCH_TIME: Duration = Duration::from_secs(120);
/// Largest fetch body allowed, whatever the stub asks.
const MAX_FETCH_BYTES: u64 = 32 << 20;
/// Bytes per `Data` frame.
const DATA_CHUNK: usize = 64 << 10;

/// Answers `Request::Setup`.
pub(super) async fn setup(shared: &Shared, replies: &Replies) -> Result<(), Gone> {
    let catalog = match shared.providers.catalog(true).await {
        Ok(catalog) => catalog,
        Err(failure) => return replies.send(Reply::Error(failure)).await,
    };
    let mut setup = Setup {
        providers: catalog.providers.iter().map(|p| p.public()).collect(),
        defaults: catalog
            .default
            .iter()
            .map(|(p, m)| (p.clone(), m.clone()))
            .collect(),
        permission: "null".into(),
        agents: "[]".into(),
        commands: "[]".into(),
        skills: "[]".into(),
        ..Setup::default()
    };
    if let Some(local) = &shared.local {
        match get_json::<Value>(local, "/config").await {
            Ok(config) => {
                setup.model = config["model"].as_str().map(str::to_owned);
                setup.small_model = config["small_model"].as_str().map(str::to_owned);
                setup.permission = config["permission"].to_string();
                let listed = config["instructions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                setup.instructions =
                    instructions(listed.iter().filter_map(Value::as_str).map(str::to_owned)).await;
            }
            Err(err) => tracing::warn!("cannot read the local OpenCode's config: {err}"),
        }
        for (path, into) in [
            ("/agent", &mut setup.agents),
            ("/command", &mut setup.commands),
        ] {
            match get_json::<Value>(local, path).await {
                Ok(value) => *into = value.to_string(),
                Err(err) => tracing::warn!("cannot read {path} from the local OpenCode: {err}"),
            }
        }
        match get_json::<Value>(local, "/skill").await {
            Ok(listed) => {
                setup.skills = Value::Array(own_skills(listed, &global_dirs())).to_string()
            }
            Err(err) => tracing::warn!("cannot read /skill from the local OpenCode: {err}"),
        }
    }
    replies.send(Reply::Setup(Box::new(setup))).await?;
    replies.send(Reply::End).await
}

/// Where the user's own skills live on the laptop (OpenCode's global skill folders).
fn global_dirs() -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let config_dir = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".config")));
    let mut dirs: Vec<PathBuf> = home
        .iter()
        .flat_map(|home| [home.join(".claude"), home.join(".agents")])
        .collect();
    dirs.extend(config_dir.map(|dir| dir.join("opencode")));
    dirs
}

/// The skills of `listed` (the local OpenCode's `GET /skill`) that belong to the user rather
/// than to the laptop's project: built-in ones and those under `global` folders.
fn own_skills(listed: Value, global: &[PathBuf]) -> Vec<Value> {
    let Value::Array(listed) = listed else {
        return Vec::new();
    };
    listed
        .into_iter()
        .filter(|skill| {
            let location = skill["location"].as_str().unwrap_or_default();
            !location.starts_with('/')
                || global
                    .iter()
                    .any(|dir| std::path::Path::new(location).starts_with(dir))
        })
        .collect()
}

/// The user's global instruction files: OpenCode's global `AGENTS.md`, and the configured
/// `instructions` that name files on the laptop (absolute or `~/` paths; relative ones belong
/// to the project, which lives on the host).
async fn instructions(configured: impl Iterator<Item = String>) -> Vec<(String, String)> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let config_dir = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".config")));
    let mut paths: Vec<PathBuf> = config_dir
        .map(|dir| dir.join("opencode").join("AGENTS.md"))
        .into_iter()
        .collect();
    for entry in configured {
        let path = match (entry.strip_prefix("~/"), &home) {
            (Some(rest), Some(home)) => home.join(rest),
            _ if entry.starts_with('/') => PathBuf::from(&entry),
            _ => continue,
        };
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    let mut found = Vec::new();
    for path in paths {
        let Ok(metadata) = tokio::fs::metadata(&path).await else {
            continue;
        };
        if !metadata.is_file() || metadata.len() > MAX_INSTRUCTIONS {
            continue;
        }
        if let Ok(text) = tokio::fs::read_to_string(&path).await {
            found.push((path.display().to_string(), text));
        }
    }
    found
}

/// Answers `Request::Fetch`: `Head`, then the body as `Data`, within the stub's limits (and
/// the bridge's own).
pub(super) async fn fetch(
    shared: &Shared,
    request: FetchRequest,
    replies: &Replies,
) -> Result<(), Gone> {
    let fail = |message: String| Reply::Error(failure(FailureKind::Fetch, message));
    let url = match reqwest::Url::parse(&request.url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url,
        Ok(_) | Err(_) => {
            return replies
                .send(fail(format!("`{}` is not an http(s) URL", request.url)))
                .await;
        }
    };
    let limit = Duration::from_millis(request.timeout_ms).min(MAX_FETCH_TIME);
    let max_bytes = request.max_bytes.min(MAX_FETCH_BYTES);
    let deadline = tokio::time::Instant::now() + limit;
    let sent = shared
        .http
        .get(url)
        .header("accept", request.accept.as_str())
        .timeout(limit)
        .send();
    let mut response = match tokio::time::timeout_at(deadline, sent).await {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => return replies.send(fail(format!("fetch failed: {err}"))).await,
        Err(_) => {
            return replies
                .send(fail(format!(
                    "fetch timed out after {} ms",
                    limit.as_millis()
                )))
                .await;
        }
    };
    if response.content_length().is_some_and(|len| len > max_bytes) {
        return replies
            .send(fail(format!(
                "response too large (exceeds {max_bytes} bytes)"
            )))
            .await;
    }
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    replies
        .send(Reply::Head {
            status: response.status().as_u16(),
            content_type,
        })
        .await?;
    let mut total: u64 = 0;
    loop {
        let chunk = match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => return replies.send(Reply::End).await,
            Ok(Err(err)) => return replies.send(fail(format!("fetch failed: {err}"))).await,
            Err(_) => {
                return replies
                    .send(fail(format!(
                        "fetch timed out after {} ms",
                        limit.as_millis()
                    )))
                    .await;
            }
        };
        total += chunk.len() as u64;
        if total > max_bytes {
            return replies
                .send(fail(format!(
                    "response too large (exceeds {max_bytes} bytes)"
                )))
                .await;
        }
        for piece in chunk.chunks(DATA_CHUNK) {
            replies.send(Reply::Data(piece.to_vec())).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_built_in_and_global_skills_should_travel_to_the_host() {
        let listed = serde_json::json!([
            { "name": "customize-opencode", "location": "<built-in>", "content": "c" },
            { "name": "mine", "location": "/home/u/.claude/skills/mine/SKILL.md", "content": "m" },
            { "name": "conf", "location": "/home/u/.config/opencode/skills/conf/SKILL.md", "content": "o" },
            { "name": "project", "location": "/home/u/src/app/.opencode/skills/p/SKILL.md", "content": "p" },
            { "name": "lookalike", "location": "/home/u/.claudex/skills/l/SKILL.md", "content": "l" },
        ]);
        let global = [
            PathBuf::from("/home/u/.claude"),
            PathBuf::from("/home/u/.agents"),
            PathBuf::from("/home/u/.config/opencode"),
        ];
        let names: Vec<String> = own_skills(listed, &global)
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["customize-opencode", "mine", "conf"]);
        assert!(own_skills(Value::Null, &global).is_empty());
    }
}
