//! Plugin options: the providers and hosts users configure, read from an OpenCode config file
//! (JSON or JSONC) or from a bare options object.
//!
//! Two layers, like the rest of the code base: [`Options`] is the serde form with
//! `deny_unknown_fields` (a typo is an error naming the key path, never a silent drop), and
//! [`Options::validate`] checks what serde cannot (duplicate names and aliases, empty hosts,
//! bad lease modes).

pub mod edit;
pub mod provider;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Name under which the plugin is published on npm.
pub const PLUGIN_PACKAGE: &str = "opencode-remote-provider";

/// The plugin's options object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Options {
    /// Providers by name.
    #[serde(default)]
    pub providers: BTreeMap<String, Provider>,
    /// Remote install root; default `~/.opencode-remote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_root: Option<String>,
    /// Connection tuning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Tunnel>,
    /// Defaults for workspaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Defaults>,
    /// Path to the `opencode-remote` binary (read by the plugin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
}

/// A named group of hosts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Provider {
    /// How a host is picked when a workspace names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// Labels every host of this provider has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The hosts.
    #[serde(default)]
    pub hosts: Vec<Host>,
}

/// Host selection strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The first host (in config order) matching the requested labels.
    FirstAvailable,
}

/// One host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Host {
    /// Canonical name.
    pub name: String,
    /// Other names that resolve to this host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// How to reach it.
    #[serde(default)]
    pub ssh: Ssh,
    /// Labels for `first_available` selection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Default working directory on the host (default: the remote home).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
}

/// SSH settings of a host. Unset fields come from `~/.ssh/config`, then OpenSSH defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Ssh {
    /// Address or `~/.ssh/config` alias; default: the host's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Login user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Private key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_file: Option<String>,
    /// Jump host(s), `[user@]host[:port][,…]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_jump: Option<String>,
}

/// Connection tuning.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tunnel {
    /// Seconds between SSH keepalives (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_interval: Option<u64>,
    /// Unanswered keepalives before the connection counts as dead (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_count_max: Option<u32>,
    /// Seconds allowed for TCP connect + SSH handshake (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<u64>,
    /// Host key policy: `strict` (default) or `accept-new`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key_checking: Option<HostKeyChecking>,
}

/// Host key policy, like OpenSSH's `StrictHostKeyChecking`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyChecking {
    /// Unknown and changed keys are refused.
    #[default]
    Strict,
    /// Unknown keys are recorded and accepted; changed keys are refused.
    AcceptNew,
}

/// Workspace defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Defaults {
    /// Lease mode for new workspaces (default `shared`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_mode: Option<LeaseMode>,
    /// Provider used when a workspace names none (default: the only provider, or `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Working directory when neither the host nor the workspace sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
}

/// Whether several workspaces may use one host at a time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseMode {
    /// Any number of workspaces.
    #[default]
    Shared,
    /// One workspace at a time.
    Exclusive,
}

/// Where options came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A plugin entry in an OpenCode config file.
    OpenCodeConfig(PathBuf),
    /// A bare options file.
    OptionsFile(PathBuf),
    /// Given inline (environment or stdin).
    Inline,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::OpenCodeConfig(path) => {
                write!(f, "{} (plugin entry {PLUGIN_PACKAGE})", path.display())
            }
            Source::OptionsFile(path) => write!(f, "{}", path.display()),
            Source::Inline => f.write_str("inline options"),
        }
    }
}

/// Options together with their origin.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The options.
    pub options: Options,
    /// Their origin.
    pub source: Source,
}

/// Configuration problems, each naming the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not valid JSON/JSONC.
    #[error("config {} is not valid JSON: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Parser message with line and column.
        message: String,
    },
    /// A value has the wrong type or an unknown key.
    #[error("invalid option `{key}` in {source_name}: {message}")]
    Invalid {
        /// Where the options came from.
        source_name: String,
        /// Dotted key path.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The OpenCode config has no entry for our plugin.
    #[error(
        "{} has no `{PLUGIN_PACKAGE}` entry in \"plugin\"; run `opencode-remote config init` or \
         pass --config with an options file",
        path.display()
    )]
    NoPluginEntry {
        /// The file.
        path: PathBuf,
    },
    /// No config file at any default location.
    #[error(
        "no OpenCode config found (looked at {}); create one with `opencode-remote config init` \
         or pass --config",
        looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound {
        /// Paths tried.
        looked: Vec<PathBuf>,
    },
}

/// The default OpenCode config locations, in order: `$OPENCODE_CONFIG`, then
/// `~/.config/opencode/opencode.jsonc` and `opencode.json` (honouring `$XDG_CONFIG_HOME`).
pub fn default_paths(home: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(explicit) = std::env::var_os("OPENCODE_CONFIG").filter(|v| !v.is_empty()) {
        paths.push(PathBuf::from(explicit));
    }
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map_or_else(|| home.join(".config"), PathBuf::from);
    paths.push(config_home.join("opencode").join("opencode.jsonc"));
    paths.push(config_home.join("opencode").join("opencode.json"));
    paths
}

/// Loads options from `path` (either an OpenCode config or a bare options object), or from the
/// default locations when `path` is `None`.
///
/// # Errors
///
/// See [`ConfigError`].
pub fn load(path: Option<&Path>, home: &Path) -> Result<Loaded, ConfigError> {
    match path {
        Some(path) => load_file(path),
        None => {
            let looked = default_paths(home);
            match looked.iter().find(|p| p.is_file()) {
                Some(path) => load_file(path),
                None => Err(ConfigError::NotFound { looked }),
            }
        }
    }
}

/// Parses JSONC text (comments, trailing commas) into a JSON value.
///
/// # Errors
///
/// [`ConfigError::Syntax`] with the parser's line and column.
pub fn parse_jsonc(text: &str, path: &Path) -> Result<serde_json::Value, ConfigError> {
    let options = jsonc_parser::ParseOptions {
        allow_comments: true,
        allow_loose_object_property_names: false,
        allow_trailing_commas: true,
    };
    match jsonc_parser::parse_to_serde_value(text, &options) {
        Ok(Some(value)) => {
            // The JSONC parser is lenient beyond comments and trailing commas (it takes
            // missing commas and single quotes), which OpenCode does not: check strictly too,
            // so we never report a broken file as valid or edit it.
            serde_json::from_str::<serde::de::IgnoredAny>(&as_strict_json(text)).map_err(
                |err| ConfigError::Syntax {
                    path: path.to_owned(),
                    message: err.to_string(),
                },
            )?;
            Ok(value)
        }
        Ok(None) => Ok(serde_json::Value::Object(Default::default())),
        Err(err) => Err(ConfigError::Syntax {
            path: path.to_owned(),
            message: err.to_string(),
        }),
    }
}

/// `text` with its comments and trailing commas blanked out (replaced by spaces, newlines
/// kept), so a strict JSON parser sees the rest at the same lines and columns.
fn as_strict_json(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let mut comma = None;
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'"', _) => {
                comma = None;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            (b'/', Some(b'/')) => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    out[i] = b' ';
                    i += 1;
                }
                continue;
            }
            (b'/', Some(b'*')) => {
                let end = text[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |at| i + 2 + at + 2);
                for byte in &mut out[i..end] {
                    if *byte != b'\n' {
                        *byte = b' ';
                    }
                }
                i = end;
                continue;
            }
            (b',', _) => comma = Some(i),
            (b'}' | b']', _) => {
                if let Some(at) = comma.take() {
                    out[at] = b' ';
                }
            }
            (byte, _) if byte.is_ascii_whitespace() => {}
            _ => comma = None,
        }
        i += 1;
    }
    // Only ASCII bytes were replaced, by ASCII spaces.
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let value = parse_jsonc(&text, path)?;
    let looks_like_opencode = value.get("plugin").is_some() || value.get("$schema").is_some();
    if looks_like_opencode {
        let options = plugin_options(&value).ok_or_else(|| ConfigError::NoPluginEntry {
            path: path.to_owned(),
        })?;
        let source = Source::OpenCodeConfig(path.to_owned());
        return Ok(Loaded {
            options: from_value(options, &source)?,
            source,
        });
    }
    let source = Source::OptionsFile(path.to_owned());
    Ok(Loaded {
        options: from_value(value, &source)?,
        source,
    })
}

/// Parses options given inline as JSON.
///
/// # Errors
///
/// As for [`load`].
pub fn from_json(text: &str) -> Result<Loaded, ConfigError> {
    let value = parse_jsonc(text, Path::new("<inline options>"))?;
    let source = Source::Inline;
    Ok(Loaded {
        options: from_value(value, &source)?,
        source,
    })
}

/// Whether a `plugin` array entry specifier refers to our plugin: the npm package (optionally
/// with a version), or a path / file URL to a directory or file of the plugin.
pub fn is_plugin_specifier(spec: &str) -> bool {
    let name = spec.strip_prefix("npm:").unwrap_or(spec);
    if name == PLUGIN_PACKAGE
        || name
            .strip_prefix(PLUGIN_PACKAGE)
            .is_some_and(|v| v.starts_with('@'))
    {
        return true;
    }
    is_path_specifier(spec) && {
        let path = spec.strip_prefix("file://").unwrap_or(spec);
        let path = Path::new(path);
        let dir = if path.extension().is_some() {
            path.parent().unwrap_or(path)
        } else {
            path
        };
        std::fs::read_to_string(dir.join("package.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|pkg| {
                pkg.get("name")
                    .and_then(|n| n.as_str())
                    .map(|n| n == PLUGIN_PACKAGE)
            })
            .unwrap_or_else(|| {
                dir.ends_with("opencode-remote-provider") || dir.ends_with("local/plugin")
            })
    }
}

/// Whether a plugin specifier is a filesystem path or file URL (path-based registration).
pub fn is_path_specifier(spec: &str) -> bool {
    spec.starts_with('/')
        || spec.starts_with("./")
        || spec.starts_with("../")
        || spec.starts_with("~/")
        || spec.starts_with("file://")
}

/// Finds our plugin entry in an OpenCode config value and returns its options (an empty object
/// for a bare string entry).
pub fn plugin_options(config: &serde_json::Value) -> Option<serde_json::Value> {
    let entries = config.get("plugin")?.as_array()?;
    entries.iter().find_map(|entry| match entry {
        serde_json::Value::String(spec) if is_plugin_specifier(spec) => {
            Some(serde_json::Value::Object(Default::default()))
        }
        serde_json::Value::Array(pair) => match pair.as_slice() {
            [serde_json::Value::String(spec), rest @ ..] if is_plugin_specifier(spec) => Some(
                rest.first()
                    .cloned()
                    .unwrap_or_else(|| serde_json::Value::Object(Default::default())),
            ),
            _ => None,
        },
        _ => None,
    })
}

/// Deserialises and validates an options object, naming the key path of any problem.
pub(crate) fn from_value(
    value: serde_json::Value,
    source: &Source,
) -> Result<Options, ConfigError> {
    let options: Options = serde_path_to_error::deserialize(value).map_err(|err| {
        let key = err.path().to_string();
        ConfigError::Invalid {
            source_name: source.to_string(),
            key: if key == "." {
                "(top level)".into()
            } else {
                key
            },
            message: err.into_inner().to_string(),
        }
    })?;
    options.validate(source)?;
    Ok(options)
}

impl Options {
    /// Checks what serde cannot: unique host names and aliases per provider, non-empty names.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the key.
    pub fn validate(&self, source: &Source) -> Result<(), ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid {
            source_name: source.to_string(),
            key,
            message,
        };
        for (provider_name, provider) in &self.providers {
            if provider_name.trim().is_empty() {
                return Err(invalid(
                    "providers".into(),
                    "provider names must not be empty".into(),
                ));
            }
            let mut seen: HashSet<&str> = HashSet::new();
            for (index, host) in provider.hosts.iter().enumerate() {
                let key = format!("providers.{provider_name}.hosts[{index}]");
                if host.name.trim().is_empty() {
                    return Err(invalid(
                        format!("{key}.name"),
                        "host names must not be empty".into(),
                    ));
                }
                for name in std::iter::once(&host.name).chain(&host.aliases) {
                    if !seen.insert(name.as_str()) {
                        return Err(invalid(
                            key.clone(),
                            format!(
                                "name or alias `{name}` is used by more than one host of provider `{provider_name}`"
                            ),
                        ));
                    }
                }
                if host
                    .ssh
                    .host
                    .as_deref()
                    .is_some_and(|h| h.trim().is_empty())
                {
                    return Err(invalid(
                        format!("{key}.ssh.host"),
                        "must not be empty".into(),
                    ));
                }
                if host.ssh.port == Some(0) {
                    return Err(invalid(
                        format!("{key}.ssh.port"),
                        "must be between 1 and 65535".into(),
                    ));
                }
            }
        }
        if let Some(defaults) = &self.defaults
            && let Some(provider) = &defaults.provider
            && !self.providers.contains_key(provider)
        {
            return Err(invalid(
                "defaults.provider".into(),
                format!(
                    "unknown provider `{provider}`; known: {}",
                    self.provider_names().join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// Provider names, sorted.
    pub fn provider_names(&self) -> Vec<String> {
        self.providers.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonc_should_be_strict_apart_from_comments_and_trailing_commas() {
        let path = Path::new("opencode.jsonc");
        let ok = "{ // c\n  \"a\": [1, 2,], /* x, } */ \"b\": \"//,}\",\n}";
        assert_eq!(
            parse_jsonc(ok, path).unwrap(),
            serde_json::json!({ "a": [1, 2], "b": "//,}" })
        );
        for (bad, line) in [
            ("{\n  \"a\": 1\n  \"b\": 2\n}", 3),
            ("{\n  'a': 1\n}", 2),
            ("{\"plugin\": [\"x\" \"y\"]}", 1),
        ] {
            let err = parse_jsonc(bad, path).unwrap_err().to_string();
            assert!(err.contains(&format!("line {line}")), "{bad}: {err}");
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn load_should_read_the_plugin_entry_of_a_jsonc_opencode_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "opencode.jsonc",
            r#"{
              // comment
              "$schema": "https://opencode.ai/config.json",
              "plugin": [
                "other-plugin",
                ["opencode-remote-provider", {
                  "providers": {"default": {"strategy": "first_available", "hosts": [
                    {"name": "web-1", "aliases": ["w1"], "ssh": {"host": "10.0.0.1", "user": "ops", "port": 2222}, "labels": ["linux"]},
                  ]}},
                }],
              ],
            }"#,
        );
        let loaded = load(Some(&path), dir.path()).unwrap();
        let host = &loaded.options.providers["default"].hosts[0];
        assert_eq!(host.ssh.port, Some(2222));
        assert_eq!(host.aliases, ["w1"]);
        assert_eq!(loaded.source, Source::OpenCodeConfig(path));
    }

    #[test]
    fn load_should_accept_a_bare_options_object() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "opts.json",
            r#"{"providers":{"p":{"hosts":[{"name":"h"}]}}}"#,
        );
        let loaded = load(Some(&path), dir.path()).unwrap();
        assert_eq!(loaded.options.providers["p"].hosts[0].name, "h");
    }

    #[test]
    fn load_should_name_the_bad_key_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "opts.json",
            r#"{"providers":{"p":{"hosts":[{"name":"h","ssh":{"prot":22}}]}}}"#,
        );
        let err = load(Some(&path), dir.path()).unwrap_err().to_string();
        assert!(err.contains("providers.p.hosts[0].ssh.prot"), "{err}");
        assert!(err.contains("unknown field `prot`"), "{err}");

        let path = write(
            dir.path(),
            "opts2.json",
            r#"{"providers":{"p":{"hosts":[{"name":"h","ssh":{"port":"x"}}]}}}"#,
        );
        let err = load(Some(&path), dir.path()).unwrap_err().to_string();
        assert!(err.contains("providers.p.hosts[0].ssh.port"), "{err}");
    }

    #[test]
    fn load_should_report_syntax_errors_with_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "bad.json",
            "{\n  \"plugin\": [\n    \"x\",\n    }\n  ]\n}",
        );
        let err = load(Some(&path), dir.path()).unwrap_err().to_string();
        assert!(err.contains("bad.json"), "{err}");
        assert!(err.contains("line 4 column 5"), "{err}");
    }

    #[test]
    fn validate_should_refuse_duplicate_aliases() {
        let err = from_json(r#"{"providers":{"p":{"hosts":[{"name":"a","aliases":["x"]},{"name":"b","aliases":["x"]}]}}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`x` is used by more than one host"), "{err}");
    }

    #[test]
    fn load_should_explain_a_missing_plugin_entry_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "opencode.json",
            r#"{"plugin":["something-else"]}"#,
        );
        let err = load(Some(&path), dir.path()).unwrap_err().to_string();
        assert!(err.contains("no `opencode-remote-provider` entry"), "{err}");

        let err = load(None, &dir.path().join("nohome"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("opencode.json"), "{err}");
    }

    #[test]
    fn is_plugin_specifier_should_accept_package_versions_and_paths() {
        assert!(is_plugin_specifier("opencode-remote-provider"));
        assert!(is_plugin_specifier("opencode-remote-provider@0.1.0"));
        assert!(!is_plugin_specifier("opencode-remote-provider-x"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("package.json"),
            r#"{"name":"opencode-remote-provider"}"#,
        )
        .unwrap();
        assert!(is_plugin_specifier(&dir.path().display().to_string()));
        assert!(is_plugin_specifier(&format!(
            "file://{}/index.js",
            dir.path().display()
        )));
    }
}
