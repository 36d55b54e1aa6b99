//! The GETs OpenCode's TUI makes when the workspace is the current one (SPEC §6 row T), and
//! the health route. Host-level answers come from the host; user-level ones (config,
//! providers, agents, commands) are normally answered by the bridge from the user's local
//! OpenCode, and the stub only gives schema-valid empty answers for manual use.

use http::Response;

use crate::app::App;
use crate::error::ApiError;
use crate::http::{Body, Req, ok};
use crate::opencode::project::{
    Capabilities, ConfigProviders, Console, Directory, PathInfo, Project, ProjectTime, ProviderList,
};
use crate::tools::git;

/// `GET /global/health`: OpenCode's health answer, with the stub's details.
pub async fn health(req: Req) -> Result<Response<Body>, ApiError> {
    ok(&req.app.health())
}

/// The git work tree containing the served directory, if any.
pub async fn git_toplevel(app: &App) -> Option<String> {
    let output = git::git(
        &app.config().directory,
        app.procs(),
        &["rev-parse", "--show-toplevel"],
    )
    .await?;
    let text = String::from_utf8(output).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn directory(app: &App) -> String {
    app.config().directory.to_string_lossy().into_owned()
}

/// `GET /path`
pub async fn path(req: Req) -> Result<Response<Body>, ApiError> {
    let app = &req.app;
    let home = app.home().to_string_lossy().into_owned();
    let directory = directory(app);
    ok(&PathInfo {
        state: app.config().state_dir.to_string_lossy().into_owned(),
        config: format!("{home}/.config/opencode"),
        worktree: git_toplevel(app).await.unwrap_or_else(|| directory.clone()),
        directory,
        home,
    })
}

/// `GET /project/current`
pub async fn project(req: Req) -> Result<Response<Body>, ApiError> {
    let app = &req.app;
    let started = app.started_ms();
    let toplevel = git_toplevel(app).await;
    let project_id = &app.config().project_id;
    ok(&Project {
        id: if project_id.is_empty() {
            "global".to_owned()
        } else {
            project_id.clone()
        },
        vcs: toplevel.is_some().then(|| "git".to_owned()),
        worktree: toplevel.unwrap_or_else(|| directory(app)),
        time: ProjectTime {
            created: started,
            updated: started,
        },
        sandboxes: Vec::new(),
    })
}

/// `GET /project/:id/directories`
pub async fn directories(req: Req) -> Result<Response<Body>, ApiError> {
    ok(&[Directory {
        directory: directory(&req.app),
    }])
}

/// `GET /config/providers`
pub async fn providers(_req: Req) -> Result<Response<Body>, ApiError> {
    ok(&ConfigProviders::default())
}

/// `GET /provider`
pub async fn provider_list(_req: Req) -> Result<Response<Body>, ApiError> {
    ok(&ProviderList::default())
}

/// `GET /experimental/capabilities`
pub async fn capabilities(_req: Req) -> Result<Response<Body>, ApiError> {
    ok(&Capabilities::default())
}

/// `GET /experimental/console`
pub async fn console(_req: Req) -> Result<Response<Body>, ApiError> {
    ok(&Console::default())
}

/// Routes with nothing to list on a host (`/lsp`, `/formatter`, `/agent`, `/command`).
pub async fn empty_list(_req: Req) -> Result<Response<Body>, ApiError> {
    ok(&[(); 0])
}

/// Routes whose answer is an empty object on a host (`/config`, `/provider/auth`, `/mcp`,
/// `/experimental/resource`).
pub async fn empty_object(_req: Req) -> Result<Response<Body>, ApiError> {
    ok(&serde_json::Map::new())
}
