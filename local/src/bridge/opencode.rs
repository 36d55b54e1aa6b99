//! The client of the user's local OpenCode server (over HTTP, or relayed by the plugin over
//! this process's stdio).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};

use super::connector::{Body, BoxError};
use super::strip_hop_by_hop;

/// The user's local OpenCode server, which answers the user-level GETs (configuration,
/// providers, agents, commands) better than the host could, and which the bridge nudges to
/// resume syncing after a reconnect.
///
/// Two ways to reach it: over HTTP when it listens on a URL, or through the plugin that
/// started this bridge (`Stdio`): the plain OpenCode TUI serves its API in-process only, so
/// the bridge writes `{"call":N,"method","path"}` lines on stdout and the plugin answers with
/// `{"reply":N,"status","body"}` lines on stdin, using OpenCode's in-process client.
#[derive(Clone)]
pub struct LocalOpenCode {
    /// The local project directory (the `?directory=` OpenCode uses to pick the instance).
    pub directory: String,
    via: Via,
}

#[derive(Clone)]
enum Via {
    Http {
        url: String,
        authorization: Option<String>,
        // Boxed: the client is large, and clones of this are passed around.
        client: Box<
            hyper_util::client::legacy::Client<
                hyper_util::client::legacy::connect::HttpConnector,
                http_body_util::Empty<Bytes>,
            >,
        >,
    },
    Stdio(Arc<StdioCalls>),
}

impl std::fmt::Debug for LocalOpenCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = match &self.via {
            Via::Http { url, .. } => url.as_str(),
            Via::Stdio(_) => "stdio",
        };
        f.debug_struct("LocalOpenCode")
            .field("transport", &transport)
            .field("directory", &self.directory)
            .finish()
    }
}

/// Calls to the local OpenCode relayed by the plugin over this process's stdio.
#[derive(Debug, Default)]
pub struct StdioCalls {
    next: std::sync::atomic::AtomicU64,
    pending: std::sync::Mutex<
        std::collections::HashMap<u64, tokio::sync::oneshot::Sender<serde_json::Value>>,
    >,
}

impl StdioCalls {
    fn pending(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<u64, tokio::sync::oneshot::Sender<serde_json::Value>>,
    > {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn call(&self, method: &str, path: &str) -> Result<serde_json::Value, String> {
        use std::io::Write;
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending().insert(id, tx);
        let line = serde_json::json!({ "call": id, "method": method, "path": path }).to_string();
        let written = {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{line}").and_then(|()| stdout.flush())
        };
        if let Err(err) = written {
            self.pending().remove(&id);
            return Err(format!("cannot reach the plugin: {err}"));
        }
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err("the plugin dropped the call".into()),
            Err(_) => {
                self.pending().remove(&id);
                Err("the plugin did not answer within 10 s".into())
            }
        }
    }

    /// Hands a `{"reply": N, …}` line from stdin to the waiting call. Returns `false` when the
    /// line is not a reply.
    pub fn deliver(&self, line: &serde_json::Value) -> bool {
        let Some(id) = line.get("reply").and_then(serde_json::Value::as_u64) else {
            return false;
        };
        if let Some(tx) = self.pending().remove(&id) {
            // The caller may have timed out meanwhile.
            let _ignored = tx.send(line.clone());
        }
        true
    }
}

/// GET routes that describe the user's OpenCode setup rather than the host. (`/skill` is not
/// one: the stub answers it with the host project's skills and the user's own.)
pub(super) const USER_LEVEL: [&str; 7] = [
    "/config",
    "/config/providers",
    "/provider",
    "/provider/auth",
    "/agent",
    "/command",
    "/experimental/console",
];

impl LocalOpenCode {
    /// A local server reachable over HTTP.
    pub fn http(url: &str, directory: String, authorization: Option<String>) -> LocalOpenCode {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build_http();
        let url = url.trim_end_matches('/').to_owned();
        LocalOpenCode {
            directory,
            via: Via::Http {
                url,
                authorization,
                client: Box::new(client),
            },
        }
    }

    /// A local server reached through the plugin over stdio.
    pub fn stdio(calls: Arc<StdioCalls>, directory: String) -> LocalOpenCode {
        LocalOpenCode {
            directory,
            via: Via::Stdio(calls),
        }
    }

    fn uri(&self, url: &str, path: &str) -> Result<Uri, http::Error> {
        let mut uri = format!("{url}{path}?directory=");
        for byte in self.directory.bytes() {
            if byte.is_ascii_alphanumeric() || b"-_.~/".contains(&byte) {
                uri.push(byte as char);
            } else {
                uri.push_str(&format!("%{byte:02X}"));
            }
        }
        Ok(uri.parse::<Uri>()?)
    }

    async fn request(&self, method: Method, path: &str) -> Result<Response<Body>, String> {
        match &self.via {
            Via::Http {
                url,
                authorization,
                client,
            } => {
                let uri = self.uri(url, path).map_err(|err| err.to_string())?;
                let mut request = Request::builder().method(method).uri(uri);
                if let Some(authorization) = authorization {
                    request = request.header(header::AUTHORIZATION, authorization);
                }
                let request = request
                    .body(http_body_util::Empty::new())
                    .map_err(|err| err.to_string())?;
                let response =
                    tokio::time::timeout(Duration::from_secs(10), client.request(request))
                        .await
                        .map_err(|_| "timed out".to_owned())?
                        .map_err(|err| err.to_string())?;
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Ok(Response::from_parts(
                    parts,
                    body.map_err(|err| Box::new(err) as BoxError).boxed(),
                ))
            }
            Via::Stdio(calls) => {
                let reply = calls.call(method.as_str(), path).await?;
                let status = reply
                    .get("status")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|s| StatusCode::from_u16(s as u16).ok())
                    .ok_or("the plugin's reply has no status")?;
                let body = reply
                    .get("body")
                    .cloned()
                    .unwrap_or(serde_json::Value::Null);
                let mut response = Response::new(
                    Full::new(Bytes::from(body.to_string()))
                        .map_err(|never| match never {})
                        .boxed(),
                );
                *response.status_mut() = status;
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Ok(response)
            }
        }
    }

    pub(super) async fn get(&self, path: &str) -> Result<Response<Body>, String> {
        let response = self.request(Method::GET, path).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(format!("status {}", response.status()))
        }
    }

    /// Asks OpenCode to (re)start the sync loops of this project's workspaces: after a
    /// reconnect, a workspace whose stream failed stays in `error` until this call.
    pub async fn sync_start(&self) -> Result<(), String> {
        let response = self.request(Method::POST, "/sync/start").await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("status {}", response.status()))
        }
    }
}
