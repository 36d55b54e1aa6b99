//! Which provider, model, endpoint and key a request means, resolved the way the user's local
//! OpenCode resolves them: its `GET /config/providers` lists the usable providers with their
//! resolved credential (`key`), `options.baseURL` and `options.headers`, and per model the API
//! style (`api.npm`) and the id to send (`api.id`). The answer is cached and read again when a
//! provider or model is unknown or a call gets 401, so a key added later works at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use protocol::gateway::{Cost, Failure, FailureKind, ModelInfo, ProviderInfo};
use serde::Deserialize;

use super::super::opencode::LocalOpenCode;
use super::failure;

/// The key `/config/providers` shows for providers signed in with OAuth (the real token is
/// added by an OpenCode plugin on each request).
const OAUTH_PLACEHOLDER: &str = "opencode-oauth-dummy-key";

/// Largest `/config/providers` answer read.
const MAX_CATALOG: usize = 32 << 20;

/// An API style the bridge speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    /// OpenAI chat completions (`@ai-sdk/openai-compatible` and the providers using it).
    Chat,
    /// The OpenAI Responses API (`@ai-sdk/openai`).
    Responses,
    /// Anthropic messages (`@ai-sdk/anthropic`).
    Anthropic,
}

/// How [`Style`]s are named in errors.
const SUPPORTED: &str = "@ai-sdk/openai-compatible (chat completions), \
    @ai-sdk/openai (Responses API), @ai-sdk/anthropic (messages)";

impl Style {
    /// The style of an `api.npm` package, as OpenCode picks its SDK.
    pub(super) fn of(npm: &str) -> Option<Style> {
        match npm {
            "@ai-sdk/openai-compatible"
            | "@ai-sdk/groq"
            | "@ai-sdk/deepseek"
            | "@ai-sdk/togetherai"
            | "@ai-sdk/cerebras"
            | "@ai-sdk/deepinfra"
            | "@ai-sdk/fireworks"
            | "@openrouter/ai-sdk-provider"
            | "ollama-ai-provider"
            | "ollama-ai-provider-v2" => Some(Style::Chat),
            "@ai-sdk/openai" | "@ai-sdk/xai" => Some(Style::Responses),
            "@ai-sdk/anthropic" => Some(Style::Anthropic),
            _ => None,
        }
    }

    /// The SDK's base URL when neither the provider nor the model gives one.
    fn default_url(self, npm: &str) -> Option<&'static str> {
        match (self, npm) {
            (Style::Anthropic, _) => Some("https://api.anthropic.com/v1"),
            (_, "@ai-sdk/openai") => Some("https://api.openai.com/v1"),
            (_, "@ai-sdk/xai") => Some("https://api.x.ai/v1"),
            (_, "@ai-sdk/groq") => Some("https://api.groq.com/openai/v1"),
            (_, "@ai-sdk/deepseek") => Some("https://api.deepseek.com/v1"),
            (_, "@ai-sdk/togetherai") => Some("https://api.together.xyz/v1"),
            (_, "@ai-sdk/cerebras") => Some("https://api.cerebras.ai/v1"),
            (_, "@ai-sdk/deepinfra") => Some("https://api.deepinfra.com/v1/openai"),
            (_, "@ai-sdk/fireworks") => Some("https://api.fireworks.ai/inference/v1"),
            (_, "@openrouter/ai-sdk-provider") => Some("https://openrouter.ai/api/v1"),
            _ => None,
        }
    }
}

/// A credential. Never printed: its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Key(pub(super) String);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(…)")
    }
}

/// A model ready to call.
#[derive(Debug, Clone)]
pub(super) struct Resolved {
    /// What the stub is told about it.
    pub info: ModelInfo,
    pub style: Style,
    /// Without a trailing slash.
    pub base_url: String,
    /// Provider `options.headers`, then the model's `headers`.
    pub headers: Vec<(String, String)>,
    pub key: Option<Key>,
}

/// `GET /config/providers`, as far as the gateway reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Catalog {
    pub providers: Vec<Provider>,
    pub default: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Provider {
    pub id: String,
    pub name: String,
    key: Option<String>,
    options: ProviderOptions,
    pub models: BTreeMap<String, Model>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ProviderOptions {
    #[serde(rename = "baseURL")]
    base_url: Option<String>,
    /// A key written in the provider's config; OpenCode prefers it to the resolved `key`.
    #[serde(rename = "apiKey")]
    api_key: Option<String>,
    headers: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Model {
    id: String,
    name: String,
    api: Api,
    capabilities: Capabilities,
    cost: RawCost,
    limit: Limit,
    headers: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Api {
    id: String,
    url: String,
    npm: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Capabilities {
    temperature: bool,
    reasoning: bool,
    toolcall: bool,
    attachment: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawCost {
    input: f64,
    output: f64,
    cache: CacheCost,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CacheCost {
    read: f64,
    write: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Limit {
    context: u64,
    output: u64,
}

impl Provider {
    fn info(&self, key: &str, model: &Model) -> ModelInfo {
        ModelInfo {
            provider_id: self.id.clone(),
            model_id: key.to_owned(),
            api_id: if model.api.id.is_empty() {
                model.id.clone()
            } else {
                model.api.id.clone()
            },
            npm: model.api.npm.clone(),
            name: model.name.clone(),
            cost: Cost {
                input: model.cost.input,
                output: model.cost.output,
                cache_read: model.cost.cache.read,
                cache_write: model.cost.cache.write,
            },
            context_limit: model.limit.context,
            output_limit: model.limit.output,
            temperature: model.capabilities.temperature,
            reasoning: model.capabilities.reasoning,
            tool_call: model.capabilities.toolcall,
            attachment: model.capabilities.attachment,
        }
    }

    /// The stub's view: ids, names, costs and limits, never a key.
    pub(super) fn public(&self) -> ProviderInfo {
        ProviderInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            models: self
                .models
                .iter()
                .map(|(key, model)| self.info(key, model))
                .collect(),
        }
    }
}

fn header_pairs(headers: &BTreeMap<String, serde_json::Value>) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(name, value)| match value {
            serde_json::Value::String(text) => Some((name.clone(), text.clone())),
            serde_json::Value::Number(n) => Some((name.clone(), n.to_string())),
            serde_json::Value::Bool(b) => Some((name.clone(), b.to_string())),
            _ => None,
        })
        .collect()
}

impl Catalog {
    /// Resolves `provider/model`; `Err(None)` when either is unknown.
    fn resolve(&self, provider_id: &str, model_id: &str) -> Result<Resolved, Option<Failure>> {
        let provider = self
            .providers
            .iter()
            .find(|p| p.id == provider_id)
            .ok_or(None)?;
        let model = provider.models.get(model_id).ok_or(None)?;
        let info = provider.info(model_id, model);
        let Some(style) = Style::of(&info.npm) else {
            return Err(Some(failure(
                FailureKind::UnsupportedApi,
                format!(
                    "provider `{provider_id}` model `{model_id}` uses the API style `{}`, which the \
                     opencode-remote bridge does not speak; supported: {SUPPORTED}",
                    if info.npm.is_empty() {
                        "(none)"
                    } else {
                        &info.npm
                    }
                ),
            )));
        };
        // As OpenCode builds its SDK: `options.apiKey` when set, else the resolved key.
        let key = provider
            .options
            .api_key
            .clone()
            .filter(|k| !k.is_empty())
            .or_else(|| provider.key.clone().filter(|k| !k.is_empty()));
        if key.as_deref() == Some(OAUTH_PLACEHOLDER) {
            return Err(Some(failure(
                FailureKind::Auth,
                format!(
                    "provider `{provider_id}` is signed in through OpenCode's OAuth login, whose \
                     tokens only OpenCode's own auth plugin can use; the opencode-remote bridge \
                     needs an API key for it (`opencode auth login`, choose API key)"
                ),
            )));
        }
        let base_url = provider
            .options
            .base_url
            .clone()
            .filter(|url| !url.is_empty())
            .or_else(|| Some(model.api.url.clone()).filter(|url| !url.is_empty()))
            .or_else(|| style.default_url(&info.npm).map(str::to_owned))
            .ok_or_else(|| {
                Some(failure(
                    FailureKind::UnknownModel,
                    format!("provider `{provider_id}` has no base URL (options.baseURL)"),
                ))
            })?;
        let mut headers = header_pairs(&provider.options.headers);
        headers.extend(header_pairs(&model.headers));
        Ok(Resolved {
            info,
            style,
            base_url: base_url.trim_end_matches('/').to_owned(),
            headers,
            key: key.map(Key),
        })
    }
}

/// The providers of the local OpenCode, cached.
#[derive(Debug)]
pub(super) struct Providers {
    local: Option<LocalOpenCode>,
    cached: Mutex<Option<Arc<Catalog>>>,
}

impl Providers {
    pub(super) fn new(local: Option<LocalOpenCode>) -> Providers {
        Providers {
            local,
            cached: Mutex::new(None),
        }
    }

    fn cached(&self) -> Option<Arc<Catalog>> {
        self.cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Forgets the cache (after a 401): the next resolution reads the local OpenCode again.
    pub(super) fn forget(&self) {
        *self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// The catalog, read from the local OpenCode when not cached (or `fresh`).
    pub(super) async fn catalog(&self, fresh: bool) -> Result<Arc<Catalog>, Failure> {
        if !fresh && let Some(catalog) = self.cached() {
            return Ok(catalog);
        }
        let Some(local) = &self.local else {
            return Err(failure(
                FailureKind::UnknownModel,
                "the bridge was started without the local OpenCode server, so it knows no \
                 providers (start it from the plugin, or pass --opencode-url)"
                    .into(),
            ));
        };
        let catalog: Catalog = get_json(local, "/config/providers").await.map_err(|err| {
            failure(
                FailureKind::UnknownModel,
                format!("cannot read the providers from the local OpenCode: {err}"),
            )
        })?;
        let catalog = Arc::new(catalog);
        *self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(catalog.clone());
        Ok(catalog)
    }

    /// Resolves a model, reading the local OpenCode again once when it is unknown.
    pub(super) async fn resolve(
        &self,
        provider_id: &str,
        model_id: &str,
    ) -> Result<Resolved, Failure> {
        let mut fresh = false;
        loop {
            let catalog = self.catalog(fresh).await?;
            match catalog.resolve(provider_id, model_id) {
                Ok(resolved) => return Ok(resolved),
                Err(Some(failure)) => return Err(failure),
                Err(None) if !fresh => fresh = true,
                Err(None) => {
                    let known = catalog.providers.iter().any(|p| p.id == provider_id);
                    let message = if known {
                        format!(
                            "model `{model_id}` of provider `{provider_id}` is not configured in the local OpenCode"
                        )
                    } else {
                        format!(
                            "provider `{provider_id}` is not configured (or has no credential) in the local OpenCode"
                        )
                    };
                    return Err(failure(FailureKind::UnknownModel, message));
                }
            }
        }
    }
}

/// `GET path` on the local OpenCode as JSON.
pub(super) async fn get_json<T: serde::de::DeserializeOwned>(
    local: &LocalOpenCode,
    path: &str,
) -> Result<T, String> {
    let mut body = local.get(path).await?.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| format!("reading {path}: {err}"))?;
        if let Some(data) = frame.data_ref() {
            if bytes.len() + data.len() > MAX_CATALOG {
                return Err(format!("{path} is larger than {MAX_CATALOG} bytes"));
            }
            bytes.extend_from_slice(data);
        }
    }
    serde_json::from_slice(&bytes).map_err(|err| format!("{path} is not the expected JSON: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(json: serde_json::Value) -> Catalog {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_key_in_the_provider_config_should_win_over_the_resolved_one() {
        let model =
            serde_json::json!({"m": {"api": {"id": "m", "npm": "@ai-sdk/openai-compatible"}}});
        let catalog = catalog(serde_json::json!({
            "providers": [{
                "id": "cfg", "name": "Cfg", "key": "sk-env",
                "options": {"baseURL": "http://127.0.0.1:9/v1", "apiKey": "sk-config"},
                "models": model,
            }, {
                "id": "env", "name": "Env", "key": "sk-env",
                "options": {"baseURL": "http://127.0.0.1:9/v1", "apiKey": ""},
                "models": model,
            }, {
                "id": "none", "name": "None",
                "options": {"baseURL": "http://127.0.0.1:9/v1"},
                "models": model,
            }]
        }));
        let key = |provider: &str| catalog.resolve(provider, "m").unwrap().key;
        assert_eq!(key("cfg"), Some(Key("sk-config".into())));
        assert_eq!(key("env"), Some(Key("sk-env".into())));
        assert_eq!(key("none"), None);
    }

    #[test]
    fn models_should_resolve_with_their_style_url_headers_and_key() {
        let catalog = catalog(serde_json::json!({
            "providers": [{
                "id": "fake", "name": "Fake", "key": "sk-1",
                "options": {"baseURL": "http://127.0.0.1:9/v1/", "headers": {"X-A": "a"}},
                "models": {"m": {"id": "m", "name": "M",
                    "api": {"id": "upstream", "url": "", "npm": "@ai-sdk/openai-compatible"},
                    "limit": {"context": 100, "output": 10}, "headers": {"X-B": "b"}}}
            }, {
                "id": "anthropic", "name": "Anthropic", "key": "sk-2", "options": {},
                "models": {"c": {"api": {"id": "claude", "npm": "@ai-sdk/anthropic"}}}
            }, {
                "id": "copilot", "name": "C", "key": "opencode-oauth-dummy-key", "options": {},
                "models": {"x": {"api": {"id": "x", "npm": "@ai-sdk/openai-compatible"}}}
            }, {
                "id": "g", "name": "G", "models": {"x": {"api": {"id": "x", "npm": "@ai-sdk/google"}}}
            }],
            "default": {"fake": "m"}
        }));
        let fake = catalog.resolve("fake", "m").unwrap();
        assert_eq!(fake.style, Style::Chat);
        assert_eq!(fake.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(fake.info.api_id, "upstream");
        assert_eq!(fake.info.output_limit, 10);
        assert_eq!(
            fake.headers,
            [("X-A".into(), "a".into()), ("X-B".into(), "b".into())]
        );
        assert_eq!(fake.key, Some(Key("sk-1".into())));
        assert!(!format!("{fake:?}").contains("sk-1"));
        let claude = catalog.resolve("anthropic", "c").unwrap();
        assert_eq!(
            (claude.style, claude.base_url.as_str()),
            (Style::Anthropic, "https://api.anthropic.com/v1")
        );
        let Err(Some(unsupported)) = catalog.resolve("g", "x") else {
            panic!()
        };
        assert_eq!(unsupported.kind, FailureKind::UnsupportedApi);
        for needle in ["`g`", "@ai-sdk/google", "@ai-sdk/anthropic"] {
            assert!(
                unsupported.message.contains(needle),
                "{}",
                unsupported.message
            );
        }
        assert!(matches!(catalog.resolve("nope", "m"), Err(None)));
        let Err(Some(oauth)) = catalog.resolve("copilot", "x") else {
            panic!()
        };
        assert_eq!(oauth.kind, FailureKind::Auth);
        assert!(oauth.message.contains("OAuth"), "{}", oauth.message);
    }
}
