//! OpenCode's file routes (SPEC §6 (iv)): `GET /file`, `/file/content`, `/file/status`,
//! `/find`, `/find/file` and `/find/symbol`, and the git views `/vcs`, `/vcs/status`,
//! `/vcs/diff`. Thin handlers: parse the query, run
//! [`crate::tools::fs`] (on a blocking thread where it touches the disk), encode JSON.
//!
//! Errors: a missing or invalid query parameter is 400 naming it, a path outside the workspace
//! 403, a missing one 404, a file over [`files::MAX_READ_BYTES`] 413. The `directory` and
//! `workspace` routing parameters OpenCode sends are accepted and ignored: the stub serves one
//! directory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{Method, Response, StatusCode};
use protocol::api::{ErrorBody, ErrorData};

use crate::app::App;
use crate::error::ApiError;
use crate::http::{Body, json_response};
use crate::tools::fs::{self as files, FindQuery, Kind, Workspace};
use crate::tools::vcs;

const ROUTES: [&str; 9] = [
    "/file",
    "/file/content",
    "/file/status",
    "/find",
    "/find/file",
    "/find/symbol",
    "/vcs",
    "/vcs/status",
    "/vcs/diff",
];

/// Handles the file and find routes; `Ok(None)` when `path` is not one of them. `query` is the
/// raw query string, without the `?`.
///
/// # Errors
///
/// 405 for methods other than GET, 400/403/404 as described in the module docs, 500 when the
/// disk fails.
pub async fn route(
    app: &App,
    method: &Method,
    path: &str,
    query: &str,
) -> Result<Option<Response<Body>>, ApiError> {
    if !ROUTES.contains(&path) {
        return Ok(None);
    }
    if method != Method::GET {
        return Err(ApiError::MethodNotAllowed {
            method: method.to_string(),
            path: path.to_owned(),
        });
    }
    let params = Params::parse(query)?;
    let workspace = Workspace::new(app.config().directory.clone());
    let response = match path {
        "/file" => {
            let requested = params.required("path")?;
            let nodes = blocking(move |_| workspace.list(&requested))
                .await?
                .map_err(api_error)?;
            json_response(StatusCode::OK, &nodes)
        }
        "/file/content" => {
            let requested = params.required("path")?;
            match blocking(move |_| workspace.read(&requested)).await? {
                Ok(content) => json_response(StatusCode::OK, &content),
                Err(err @ files::Error::TooLarge { .. }) => too_large(&err),
                Err(err) => return Err(api_error(err)),
            }
        }
        "/file/status" => {
            let changes = files::status(&app.config().directory, app.procs()).await;
            json_response(StatusCode::OK, &changes)
        }
        "/vcs" => json_response(
            StatusCode::OK,
            &vcs::info(&app.config().directory, app.procs()).await,
        ),
        "/vcs/status" => json_response(
            StatusCode::OK,
            &vcs::status(&app.config().directory, app.procs()).await,
        ),
        "/vcs/diff" => {
            let mode = match params.required("mode")?.as_str() {
                "git" => vcs::Mode::Git,
                "branch" => vcs::Mode::Branch,
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "query parameter `mode` must be `git` or `branch`, got `{other}`"
                    )));
                }
            };
            let context = match params.get("context") {
                None => None,
                Some(value) => Some(value.parse::<u32>().map_err(|_| {
                    ApiError::BadRequest(format!(
                        "query parameter `context` must be a non-negative integer, got `{value}`"
                    ))
                })?),
            };
            let diff = vcs::diff(&app.config().directory, app.procs(), mode, context).await;
            json_response(StatusCode::OK, &diff)
        }
        "/find" => {
            let pattern = params.required("pattern")?;
            let found = blocking(move |cancel| workspace.search(&pattern, cancel))
                .await?
                .map_err(api_error)?;
            json_response(StatusCode::OK, &found)
        }
        "/find/file" => {
            let query = find_query(&params)?;
            let found = blocking(move |cancel| Ok(workspace.find_files(&query, cancel)))
                .await?
                .map_err(api_error)?;
            json_response(StatusCode::OK, &found)
        }
        // No language servers run on the host.
        _ => {
            params.required("query")?;
            json_response(StatusCode::OK, &[(); 0])
        }
    };
    Ok(Some(response))
}

/// `query` (required), `dirs` (`true`|`false`, default `true`), `type` (`file`|`directory`,
/// overrides `dirs`), `limit` (1–200, default 10).
fn find_query(params: &Params) -> Result<FindQuery, ApiError> {
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
        None => files::DEFAULT_FIND_LIMIT,
        Some(value) => value
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=files::MAX_FIND_LIMIT).contains(limit))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "query parameter `limit` must be an integer from 1 to {}, got `{value}`",
                    files::MAX_FIND_LIMIT
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

/// Decoded query parameters (`application/x-www-form-urlencoded`, as `URLSearchParams`).
#[derive(Debug)]
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    pub(super) fn parse(query: &str) -> Result<Params, ApiError> {
        let mut pairs = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key).ok_or_else(|| {
                ApiError::BadRequest(format!("query parameter name `{key}` is not valid"))
            })?;
            let value = decode(value).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "query parameter `{key}` is not valid percent-encoded UTF-8"
                ))
            })?;
            pairs.push((key, value));
        }
        Ok(Params(pairs))
    }

    /// The first value of `name`.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A `true`/`false` parameter; `default` when absent.
    pub(super) fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(ApiError::BadRequest(format!(
                "query parameter `{name}` must be `true` or `false`, got `{other}`"
            ))),
        }
    }

    fn required(&self, name: &str) -> Result<String, ApiError> {
        self.get(name).map(str::to_owned).ok_or_else(|| {
            ApiError::BadRequest(format!("missing required query parameter `{name}`"))
        })
    }
}

/// Percent-decodes one component (`+` is a space); `None` for a bad escape or invalid UTF-8.
fn decode(component: &str) -> Option<String> {
    let mut bytes = component.bytes();
    let mut decoded = Vec::with_capacity(component.len());
    while let Some(byte) = bytes.next() {
        decoded.push(match byte {
            b'+' => b' ',
            b'%' => {
                let high = char::from(bytes.next()?).to_digit(16)?;
                let low = char::from(bytes.next()?).to_digit(16)?;
                u8::try_from(high * 16 + low).ok()?
            }
            other => other,
        });
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
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
        let response = match route(app, &Method::GET, path, query).await {
            Ok(Some(response)) => response,
            Ok(None) => panic!("{path} not routed"),
            Err(err) => return (err.status(), err.body()),
        };
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
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
    async fn route_should_leave_other_paths_and_refuse_other_methods() {
        let (_dir, app) = app();
        for path in ["/", "/files", "/file/", "/find/files", "/session"] {
            assert!(
                route(&app, &Method::GET, path, "").await.unwrap().is_none(),
                "{path}"
            );
        }
        let err = route(&app, &Method::POST, "/file/content", "path=a")
            .await
            .unwrap_err();
        assert_eq!(err.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn params_should_decode_like_url_search_params() {
        let params = Params::parse("pattern=a%2Bb+c&empty=&flag&pattern=second&x=%C3%A9").unwrap();
        assert_eq!(params.get("pattern"), Some("a+b c"));
        assert_eq!(params.get("empty"), Some(""));
        assert_eq!(params.get("flag"), Some(""));
        assert_eq!(params.get("x"), Some("é"));
        assert_eq!(params.get("missing"), None);
        for bad in ["path=%", "path=%4", "path=%zz", "path=%FF"] {
            let err = Params::parse(bad).unwrap_err();
            assert!(err.to_string().contains("`path`"), "{bad}: {err}");
        }
    }
}
