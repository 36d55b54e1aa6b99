//! OpenCode's file routes (SPEC §6 (iv)): `GET /file`, `/file/content`, `/file/status`,
//! `/find`, `/find/file` and `/find/symbol`. Thin handlers: parse the query, run
//! [`crate::tools::fs`] (on a blocking thread where it touches the disk), encode JSON.
//!
//! Errors: a missing or invalid query parameter is 400 naming it, a path outside the workspace
//! 403, a missing one 404, a file over [`files::MAX_READ_BYTES`] 413. The `directory` and
//! `workspace` routing parameters OpenCode sends are accepted and ignored: the stub serves one
//! directory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{Response, StatusCode};
use protocol::api::{ErrorBody, ErrorData};

use crate::error::ApiError;
use crate::http::query::Query;
use crate::http::{Body, Req, json_response, ok};
use crate::tools::find::{self, FindQuery};
use crate::tools::fs::{self as files, Kind, Workspace};
use crate::tools::git;

fn workspace(req: &Req) -> Workspace {
    Workspace::new(req.app.config().directory.clone())
}

/// `GET /file?path=`: a directory listing.
pub async fn list(req: Req) -> Result<Response<Body>, ApiError> {
    let requested = req.query.required("path")?;
    let workspace = workspace(&req);
    let nodes = blocking(move |_| workspace.list(&requested))
        .await?
        .map_err(api_error)?;
    ok(&nodes)
}

/// `GET /file/content?path=`: a file's text (or base64 for binary files).
pub async fn content(req: Req) -> Result<Response<Body>, ApiError> {
    let requested = req.query.required("path")?;
    let workspace = workspace(&req);
    match blocking(move |_| workspace.read(&requested)).await? {
        Ok(content) => ok(&content),
        Err(err @ files::Error::TooLarge { .. }) => Ok(too_large(&err)),
        Err(err) => Err(api_error(err)),
    }
}

/// `GET /file/status`: changed files (git).
pub async fn status(req: Req) -> Result<Response<Body>, ApiError> {
    ok(&git::status(&req.app.config().directory, req.app.procs()).await)
}

/// `GET /find?pattern=`: text search.
pub async fn search(req: Req) -> Result<Response<Body>, ApiError> {
    let pattern = req.query.required("pattern")?;
    let workspace = workspace(&req);
    let found = blocking(move |cancel| workspace.search(&pattern, cancel))
        .await?
        .map_err(api_error)?;
    ok(&found)
}

/// `GET /find/file?query=`: fuzzy file and directory names.
pub async fn find(req: Req) -> Result<Response<Body>, ApiError> {
    let query = find_query(&req.query)?;
    let workspace = workspace(&req);
    let found = blocking(move |cancel| Ok(workspace.find_files(&query, cancel)))
        .await?
        .map_err(api_error)?;
    ok(&found)
}

/// `GET /find/symbol?query=`: no language servers run on the host.
pub async fn symbols(req: Req) -> Result<Response<Body>, ApiError> {
    req.query.required("query")?;
    ok(&[(); 0])
}

/// `query` (required), `dirs` (`true`|`false`, default `true`), `type` (`file`|`directory`,
/// overrides `dirs`), `limit` (1–200, default 10).
fn find_query(params: &Query) -> Result<FindQuery, ApiError> {
    let query = params.required("query")?;
    let dirs = params.flag("dirs", true)?;
    let kind = match params.get("type") {
        None => (!dirs).then_some(Kind::File),
        Some("file") => Some(Kind::File),
        Some("directory") => Some(Kind::Directory),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "query parameter `type` must be `file` or `directory`, got `{other}`"
            )));
        }
    };
    let limit = match params.get("limit") {
        None => find::DEFAULT_FIND_LIMIT,
        Some(value) => value
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=find::MAX_FIND_LIMIT).contains(limit))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "query parameter `limit` must be an integer from 1 to {}, got `{value}`",
                    find::MAX_FIND_LIMIT
                ))
            })?,
    };
    Ok(FindQuery { query, kind, limit })
}

/// Runs `work` on a blocking thread. Its flag is set when the request goes away before the
/// work is done, so long walks stop early.
async fn blocking<T, F>(work: F) -> Result<Result<T, files::Error>, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&AtomicBool) -> Result<T, files::Error> + Send + 'static,
{
    /// Sets the flag when dropped, i.e. also when the handler's future is dropped.
    struct CancelOnDrop(Arc<AtomicBool>);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    tokio::task::spawn_blocking(move || work(&cancel))
        .await
        .map_err(ApiError::internal)
}

fn api_error(err: files::Error) -> ApiError {
    use files::Error as E;
    match err {
        E::Escapes { .. } | E::PermissionDenied { .. } => ApiError::Forbidden(err.to_string()),
        E::NotFound { .. } => ApiError::NotFound(err.to_string()),
        E::InvalidPath { .. }
        | E::NotADirectory { .. }
        | E::IsADirectory { .. }
        | E::NotAFile { .. }
        | E::InvalidPattern { .. } => ApiError::BadRequest(err.to_string()),
        E::TooLarge { limit, .. } => ApiError::PayloadTooLarge {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        },
        E::Io { .. } => ApiError::internal(err),
    }
}

/// 413 naming the file; `ApiError::PayloadTooLarge` speaks of request bodies.
fn too_large(err: &files::Error) -> Response<Body> {
    let body = ErrorBody {
        name: "PayloadTooLarge".to_owned(),
        data: ErrorData {
            message: err.to_string(),
        },
    };
    json_response(StatusCode::PAYLOAD_TOO_LARGE, &body)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::handshake::HostInfo;
    use crate::tools::procs::Procs;
    use crate::{App, Config};

    fn app() -> (tempfile::TempDir, App) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("README.md"), "hello from the REMOTE host\n").unwrap();
        std::fs::write(
            root.join("src/main.rs"),
            "fn main() { println!(\"hello\"); }\n",
        )
        .unwrap();
        let config = Config {
            state_dir: root.join(".state"),
            directory: root.clone(),
            manual: true,
            workspace_id: String::new(),
            project_id: String::new(),
        };
        let host = HostInfo::current(root);
        let app = App::new(
            config,
            host,
            Procs::default(),
            tokio_util::sync::CancellationToken::new(),
        );
        (dir, app)
    }

    async fn get(app: &App, path: &str, query: &str) -> (StatusCode, Value) {
        let uri = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        crate::server::testing::call(app, http::Method::GET, &uri, None).await
    }

    #[tokio::test]
    async fn route_should_answer_in_opencode_shapes() {
        let (_dir, app) = app();
        let root = app.config().directory.to_string_lossy().into_owned();

        let (status, body) = get(&app, "/file", "path=.").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!([
                {"name": "src", "path": "src/", "absolute": format!("{root}/src"),
                 "type": "directory", "ignored": false},
                {"name": "README.md", "path": "README.md", "absolute": format!("{root}/README.md"),
                 "type": "file", "ignored": false},
            ])
        );

        let (status, body) = get(&app, "/file/content", "path=README.md").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"type": "text", "content": "hello from the REMOTE host"})
        );

        let (status, body) = get(&app, "/find", "pattern=hel%2Bo&directory=%2Fx").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.as_array().unwrap().len(), 2, "{body}");
        assert_eq!(
            body[1],
            json!({"path": {"text": "src/main.rs"},
                   "lines": {"text": "fn main() { println!(\"hello\"); }\n"},
                   "line_number": 1, "absolute_offset": 0,
                   "submatches": [{"match": {"text": "hello"}, "start": 22, "end": 27}]})
        );

        let (status, body) = get(&app, "/find/file", "query=READ").await;
        assert_eq!((status, body), (StatusCode::OK, json!(["README.md"])));
        let (_, body) = get(&app, "/find/file", "query=s&type=directory&limit=5").await;
        assert_eq!(body, json!(["src/"]));
        let (_, body) = get(&app, "/find/file", "query=s").await;
        assert_eq!(body, json!(["src/", "src/main.rs"]));
        let (_, body) = get(&app, "/find/file", "query=s&dirs=false").await;
        assert_eq!(body, json!(["src/main.rs"]));

        let (status, body) = get(&app, "/find/symbol", "query=main").await;
        assert_eq!((status, body), (StatusCode::OK, json!([])));
        let (status, body) = get(&app, "/file/status", "").await;
        assert_eq!((status, body), (StatusCode::OK, json!([])));
    }

    #[tokio::test]
    async fn route_should_map_failures_to_status_codes_naming_the_culprit() {
        let (_dir, app) = app();
        let cases = [
            ("/file", "", StatusCode::BAD_REQUEST, "`path`"),
            ("/file", "path=..%2F..", StatusCode::FORBIDDEN, "../.."),
            ("/file", "path=%2Fetc", StatusCode::FORBIDDEN, "/etc"),
            ("/file", "path=nope", StatusCode::NOT_FOUND, "nope"),
            (
                "/file",
                "path=README.md",
                StatusCode::BAD_REQUEST,
                "README.md",
            ),
            ("/file/content", "path=src", StatusCode::BAD_REQUEST, "src"),
            (
                "/file/content",
                "path=%FF",
                StatusCode::BAD_REQUEST,
                "`path`",
            ),
            ("/find", "", StatusCode::BAD_REQUEST, "`pattern`"),
            ("/find", "pattern=(", StatusCode::BAD_REQUEST, "`pattern`"),
            ("/find/file", "", StatusCode::BAD_REQUEST, "`query`"),
            (
                "/find/file",
                "query=a&limit=0",
                StatusCode::BAD_REQUEST,
                "`limit`",
            ),
            (
                "/find/file",
                "query=a&limit=201",
                StatusCode::BAD_REQUEST,
                "`limit`",
            ),
            (
                "/find/file",
                "query=a&dirs=yes",
                StatusCode::BAD_REQUEST,
                "`dirs`",
            ),
            (
                "/find/file",
                "query=a&type=link",
                StatusCode::BAD_REQUEST,
                "`type`",
            ),
            ("/find/symbol", "", StatusCode::BAD_REQUEST, "`query`"),
        ];
        for (path, query, expected, culprit) in cases {
            let (status, body) = get(&app, path, query).await;
            assert_eq!(status, expected, "{path}?{query}: {body}");
            let message = body["data"]["message"].as_str().unwrap();
            assert!(message.contains(culprit), "{path}?{query}: {message}");
        }
        let (_, body) = get(&app, "/file", "path=..").await;
        assert_eq!(body["name"], "Forbidden");
    }

    #[tokio::test]
    async fn route_should_refuse_large_files_with_413() {
        let (_dir, app) = app();
        let big = app.config().directory.join("big.log");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(files::MAX_READ_BYTES + 1)
            .unwrap();
        let (status, body) = get(&app, "/file/content", "path=big.log").await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["name"], "PayloadTooLarge");
        assert!(
            body["data"]["message"]
                .as_str()
                .unwrap()
                .contains("big.log"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn other_paths_should_be_404_and_other_methods_405() {
        let (_dir, app) = app();
        for path in ["/", "/files", "/file/", "/find/files"] {
            let (status, _) = get(&app, path, "").await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
        let (status, _) =
            crate::server::testing::call(&app, http::Method::POST, "/file/content?path=a", None)
                .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }
}
