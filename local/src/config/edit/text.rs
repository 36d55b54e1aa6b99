//! The edits themselves, on text: `init`, `add`, `remove` and `list` of the plugin entry. Each
//! result is read back with the loader the bridge uses before it is returned.

use std::path::Path;

use jsonc_parser::cst::CstInputValue;

use super::document::{Document, Insertion, Style, Target, render};
use super::{DEFAULT_PROVIDER, EditError, SCHEMA, options_from_value};
use crate::config::{self, Host, Options, PLUGIN_PACKAGE, Ssh};

/// A host for [`add`](super::add).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewHost {
    /// Name of the entry.
    pub name: String,
    /// Address SSH connects to; default: `name`.
    pub address: Option<String>,
    /// Login user.
    pub user: String,
    /// Port.
    pub port: Option<u16>,
    /// Private key file.
    pub identity_file: Option<String>,
}

impl NewHost {
    fn to_input(&self) -> CstInputValue {
        let mut ssh = vec![
            (
                "host".to_owned(),
                CstInputValue::String(self.address.clone().unwrap_or_else(|| self.name.clone())),
            ),
            ("user".to_owned(), CstInputValue::String(self.user.clone())),
        ];
        if let Some(port) = self.port {
            ssh.push(("port".to_owned(), CstInputValue::Number(port.to_string())));
        }
        if let Some(file) = &self.identity_file {
            ssh.push((
                "identityFile".to_owned(),
                CstInputValue::String(file.clone()),
            ));
        }
        CstInputValue::Object(vec![
            ("name".to_owned(), CstInputValue::String(self.name.clone())),
            ("ssh".to_owned(), CstInputValue::Object(ssh)),
        ])
    }

    /// `user@host:port` as SSH would be asked to reach it.
    pub fn target(&self) -> String {
        ssh_target(
            &self.name,
            &Ssh {
                host: self.address.clone(),
                user: Some(self.user.clone()),
                port: self.port,
                ..Ssh::default()
            },
        )
    }
}

/// What [`remove`](super::remove) removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Canonical name of the removed host.
    pub name: String,
    /// The alias it was found by, when the argument was not its name.
    pub alias: Option<String>,
    /// Its SSH target.
    pub target: String,
}

/// A new config: `$schema` and the plugin entry with an empty `default` provider.
pub fn new_config() -> String {
    let style = Style {
        unit: "  ".to_owned(),
        newline: "\n",
        trailing_commas: false,
    };
    let config = CstInputValue::Object(vec![
        (
            "$schema".to_owned(),
            CstInputValue::String(SCHEMA.to_owned()),
        ),
        (
            "plugin".to_owned(),
            CstInputValue::Array(vec![init_entry()]),
        ),
    ]);
    let mut text = render(&config, "", &style, true);
    text.push('\n');
    text
}

fn init_entry() -> CstInputValue {
    CstInputValue::Array(vec![
        CstInputValue::String(PLUGIN_PACKAGE.to_owned()),
        CstInputValue::Object(vec![(
            "providers".to_owned(),
            CstInputValue::Object(vec![(DEFAULT_PROVIDER.to_owned(), new_provider(None))]),
        )]),
    ])
}

fn new_provider(host: Option<CstInputValue>) -> CstInputValue {
    CstInputValue::Object(vec![
        (
            "strategy".to_owned(),
            CstInputValue::String("first_available".to_owned()),
        ),
        (
            "hosts".to_owned(),
            CstInputValue::Array(host.into_iter().collect()),
        ),
    ])
}

/// What `init` makes of existing text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitText {
    /// The text with the entry added.
    Changed(String),
    /// The entry is there already.
    Present {
        /// Its specifier.
        spec: String,
    },
}

/// `init` on existing text.
///
/// # Errors
///
/// Malformed JSON, a document that is not an object, a `plugin` that is not an array, a
/// path-based registration.
pub fn init_text(text: &str, path: &Path) -> Result<InitText, EditError> {
    let doc = Document::parse(text, path)?;
    if let Some(entry) = doc.find_entry()? {
        if config::is_path_specifier(&entry.spec) {
            return Err(doc.path_based(entry.spec));
        }
        return Ok(InitText::Present { spec: entry.spec });
    }
    let insertion = match doc.root.value() {
        None => {
            // Empty, or only comments: write a whole new config.
            let marker = doc.marker();
            doc.root.set_value(CstInputValue::String(marker.clone()));
            let config = CstInputValue::Object(vec![
                (
                    "$schema".to_owned(),
                    CstInputValue::String(SCHEMA.to_owned()),
                ),
                (
                    "plugin".to_owned(),
                    CstInputValue::Array(vec![init_entry()]),
                ),
            ]);
            Insertion {
                marker,
                value: config,
                indent: None,
                multiline: true,
            }
        }
        Some(_) => {
            let root = doc.root_object()?;
            match root.get("plugin") {
                None => doc.insert(
                    Target::Property(root, "plugin".to_owned()),
                    CstInputValue::Array(vec![init_entry()]),
                ),
                Some(prop) => match prop.array_value() {
                    Some(plugins) => doc.insert(Target::Element(plugins), init_entry()),
                    None => return Err(doc.shape("\"plugin\"", "an array")),
                },
            }
        }
    };
    let changed = doc.finish(&insertion)?;
    check_result(&changed, path)?;
    Ok(InitText::Changed(changed))
}

/// `add` on text: the new text.
///
/// # Errors
///
/// See [`EditError`].
pub fn add_host(
    text: &str,
    path: &Path,
    provider: &str,
    host: &NewHost,
) -> Result<String, EditError> {
    let doc = Document::parse(text, path)?;
    let entry = doc.package_entry()?;
    let options = doc.options()?;
    if let Some(existing) = options.providers.get(provider) {
        check_duplicate(provider, &existing.hosts, &host.name)?;
    }
    let host_value = host.to_input();
    let insertion = match doc.options_object(&entry)? {
        Some(options_object) => match options_object.get("providers") {
            None => doc.insert(
                Target::Property(options_object, "providers".to_owned()),
                CstInputValue::Object(vec![(provider.to_owned(), new_provider(Some(host_value)))]),
            ),
            Some(providers) => {
                let providers = doc.object_of(&providers, "providers")?;
                match providers.get(provider) {
                    None => doc.insert(
                        Target::Property(providers, provider.to_owned()),
                        new_provider(Some(host_value)),
                    ),
                    Some(existing) => {
                        let key = format!("providers.{provider}");
                        let existing = doc.object_of(&existing, &key)?;
                        match existing.get("hosts") {
                            None => doc.insert(
                                Target::Property(existing, "hosts".to_owned()),
                                CstInputValue::Array(vec![host_value]),
                            ),
                            Some(hosts) => {
                                let hosts = doc.array_of(&hosts, &format!("{key}.hosts"))?;
                                doc.insert(Target::Element(hosts), host_value)
                            }
                        }
                    }
                }
            }
        },
        None => {
            let options = CstInputValue::Object(vec![(
                "providers".to_owned(),
                CstInputValue::Object(vec![(provider.to_owned(), new_provider(Some(host_value)))]),
            )]);
            doc.add_options(&entry, options)
        }
    };
    let changed = doc.finish(&insertion)?;
    let result = check_result(&changed, path)?;
    let added = result
        .providers
        .get(provider)
        .and_then(|p| p.hosts.iter().find(|h| h.name == host.name));
    let expected = Ssh {
        host: Some(host.address.clone().unwrap_or_else(|| host.name.clone())),
        user: Some(host.user.clone()),
        port: host.port,
        identity_file: host.identity_file.clone(),
        proxy_jump: None,
    };
    if added.map(|h| &h.ssh) != Some(&expected) {
        return Err(EditError::Unexpected {
            path: path.to_owned(),
            what: format!("host `{}` is not in the result as given", host.name),
        });
    }
    Ok(changed)
}

fn check_duplicate(provider: &str, hosts: &[Host], name: &str) -> Result<(), EditError> {
    for host in hosts {
        let target = ssh_target(&host.name, &host.ssh);
        if host.name == name {
            return Err(EditError::DuplicateName {
                provider: provider.to_owned(),
                name: name.to_owned(),
                target,
            });
        }
        if host.aliases.iter().any(|alias| alias == name) {
            return Err(EditError::DuplicateAlias {
                provider: provider.to_owned(),
                name: name.to_owned(),
                host: host.name.clone(),
                target,
            });
        }
    }
    Ok(())
}

/// `remove` on text: the new text and what was removed.
///
/// # Errors
///
/// See [`EditError`]; unknown providers and hosts are listed in the error.
pub fn remove_host(
    text: &str,
    path: &Path,
    provider: &str,
    host: &str,
) -> Result<(String, Removed), EditError> {
    let doc = Document::parse(text, path)?;
    let entry = doc.package_entry()?;
    let options = doc.options()?;
    let Some(hosts) = options.providers.get(provider).map(|p| &p.hosts) else {
        return Err(EditError::UnknownProvider {
            path: path.to_owned(),
            provider: provider.to_owned(),
            known: options.provider_names(),
        });
    };
    let found = hosts
        .iter()
        .find(|h| h.name == host)
        .or_else(|| hosts.iter().find(|h| h.aliases.iter().any(|a| a == host)));
    let Some(found) = found else {
        return Err(EditError::UnknownHost {
            provider: provider.to_owned(),
            host: host.to_owned(),
            known: hosts
                .iter()
                .map(|h| match h.aliases.as_slice() {
                    [] => h.name.clone(),
                    aliases => format!("{} (aliases {})", h.name, aliases.join(", ")),
                })
                .collect(),
        });
    };
    let removed = Removed {
        name: found.name.clone(),
        alias: (found.name != host).then(|| host.to_owned()),
        target: ssh_target(&found.name, &found.ssh),
    };
    let not_found = || EditError::Unexpected {
        path: path.to_owned(),
        what: format!("host `{}` not found in the document", removed.name),
    };
    let options_object = doc.options_object(&entry)?.ok_or_else(not_found)?;
    let providers = options_object.get("providers").ok_or_else(not_found)?;
    let providers = doc.object_of(&providers, "providers")?;
    let key = format!("providers.{provider}");
    let provider_object = doc.object_of(&providers.get(provider).ok_or_else(not_found)?, &key)?;
    let hosts_array = provider_object.get("hosts").ok_or_else(not_found)?;
    let hosts_array = doc.array_of(&hosts_array, &format!("{key}.hosts"))?;
    let element = hosts_array
        .elements()
        .into_iter()
        .find(|element| {
            element
                .as_object()
                .and_then(|object| object.get("name"))
                .and_then(|name| name.value())
                .and_then(|value| value.as_string_lit())
                .and_then(|lit| lit.decoded_value().ok())
                .is_some_and(|name| name == removed.name)
        })
        .ok_or_else(not_found)?;
    element.remove();
    let changed = doc.root.to_string();
    let result = check_result(&changed, path)?;
    let left = result.providers.get(provider).map_or(0, |p| p.hosts.len());
    let still_there = result
        .providers
        .get(provider)
        .is_some_and(|p| p.hosts.iter().any(|h| h.name == removed.name));
    if still_there || left + 1 != hosts.len() {
        return Err(EditError::Unexpected {
            path: path.to_owned(),
            what: format!("host `{}` was not removed cleanly", removed.name),
        });
    }
    Ok((changed, removed))
}

/// `list` on text: providers, hosts, aliases, labels and SSH targets, for people.
///
/// # Errors
///
/// Malformed JSON, no plugin entry, invalid options.
pub fn list(text: &str, path: &Path) -> Result<String, EditError> {
    let doc = Document::parse(text, path)?;
    let entry = doc.find_entry()?.ok_or_else(|| EditError::NoEntry {
        path: path.to_owned(),
    })?;
    let options = doc.options()?;
    let mut lines = vec![format!("Config: {}", path.display())];
    if config::is_path_specifier(&entry.spec) {
        lines.push(format!(
            "Plugin: {:?} [read-only: path-based entry; edit the file by hand]",
            entry.spec
        ));
    } else {
        lines.push(format!("Plugin: {:?} (package-based)", entry.spec));
    }
    if options.providers.is_empty() {
        lines.push(
            "No providers yet; add a host with: add <provider> <host> <user> [port] \
             [identity-file]"
                .to_owned(),
        );
    }
    for (name, provider) in &options.providers {
        let strategy = match provider.strategy {
            Some(config::Strategy::FirstAvailable) | None => "first_available",
        };
        let labels = match provider.labels.as_slice() {
            [] => String::new(),
            labels => format!("; labels {}", labels.join(", ")),
        };
        lines.push(String::new());
        lines.push(format!("provider {name} (strategy {strategy}{labels})"));
        if provider.hosts.is_empty() {
            lines.push("  (no hosts)".to_owned());
        }
        for host in &provider.hosts {
            lines.push(format!(
                "  {}  {}",
                host.name,
                ssh_target(&host.name, &host.ssh)
            ));
            let details = [
                ("aliases", host.aliases.join(", ")),
                ("labels", host.labels.join(", ")),
                (
                    "identity",
                    host.ssh.identity_file.clone().unwrap_or_default(),
                ),
                ("proxyJump", host.ssh.proxy_jump.clone().unwrap_or_default()),
                ("directory", host.directory.clone().unwrap_or_default()),
            ];
            for (label, value) in details {
                if !value.is_empty() {
                    lines.push(format!("      {label:<10} {value}"));
                }
            }
        }
    }
    lines.push(String::new());
    Ok(lines.join("\n"))
}

/// `user@host:port`, leaving out what is not set (the host defaults to the entry's name).
fn ssh_target(name: &str, ssh: &Ssh) -> String {
    let mut target = String::new();
    if let Some(user) = &ssh.user {
        target.push_str(user);
        target.push('@');
    }
    target.push_str(ssh.host.as_deref().unwrap_or(name));
    if let Some(port) = ssh.port {
        target.push(':');
        target.push_str(&port.to_string());
    }
    target
}

/// Reads `text` back the way the bridge will, so that a bad edit is never written.
pub(super) fn check_result(text: &str, path: &Path) -> Result<Options, EditError> {
    let broken = |source| EditError::WouldBreak {
        path: path.to_owned(),
        source,
    };
    let value = config::parse_jsonc(text, path).map_err(broken)?;
    let options = config::plugin_options(&value).ok_or_else(|| EditError::Unexpected {
        path: path.to_owned(),
        what: "the plugin entry is missing from the result".into(),
    })?;
    options_from_value(options, path).map_err(broken)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) const PATH: &str = "/home/u/.config/opencode/opencode.jsonc";

    /// A hand-written JSONC config: comments before, inside and after our entry, other plugins
    /// with options, trailing commas everywhere.
    const JSONC: &str = r#"// OpenCode config (hand-written)
{
  "$schema": "https://opencode.ai/config.json",
  /* the theme */
  "theme": "tokyonight", // dark
  "plugin": [
    "opencode-wakatime", // time tracking
    ["opencode-other", { /* other's options */ "x": 1, }],
    ["opencode-remote-provider", {
      // our providers
      "providers": {
        "staging": {
          // staging hosts
          "hosts": [
            { "name": "stage-1", "ssh": { "host": "10.1.0.1", "user": "deploy" } },
          ],
        },
        "default": {
          "strategy": "first_available",
          "hosts": [
            {
              "name": "prod-web-1",
              "aliases": ["web1"], // short
              "ssh": { "host": "203.0.113.10", "user": "ops", "port": 22 },
              "labels": ["linux", "production"],
            },
            /* db next */
            {
              "name": "db-1",
              "ssh": { "host": "203.0.113.20", "user": "ops" },
            },
          ],
        },
      },
    }],
  ],
  "model": "x/y", // trailing
}
"#;

    /// Plain JSON as `init` writes it, with one host.
    pub(crate) const JSON: &str = r#"{
  "$schema": "https://opencode.ai/config.json",
  "plugin": [
    [
      "opencode-remote-provider",
      {
        "providers": {
          "default": {
            "strategy": "first_available",
            "hosts": [
              {
                "name": "web-1",
                "ssh": {
                  "host": "10.0.0.1",
                  "user": "ops"
                }
              }
            ]
          }
        }
      }
    ]
  ],
  "theme": "system"
}
"#;

    pub(crate) fn path() -> &'static Path {
        Path::new(PATH)
    }

    pub(crate) fn host(name: &str) -> NewHost {
        NewHost {
            name: name.to_owned(),
            user: "me".to_owned(),
            ..NewHost::default()
        }
    }

    pub(crate) fn options(text: &str) -> Options {
        check_result(text, path()).unwrap()
    }

    /// `text` with `chunk` inserted right after `anchor`, which must occur once.
    fn insert_after(text: &str, anchor: &str, chunk: &str) -> String {
        assert_eq!(text.matches(anchor).count(), 1, "anchor {anchor:?}");
        text.replacen(anchor, &format!("{anchor}{chunk}"), 1)
    }

    /// `text` without `chunk`, which must occur once.
    fn without(text: &str, chunk: &str) -> String {
        assert_eq!(text.matches(chunk).count(), 1, "chunk {chunk:?}");
        text.replacen(chunk, "", 1)
    }

    #[test]
    fn new_config_should_hold_the_plugin_entry_with_an_empty_default_provider() {
        let text = new_config();
        let options = options(&text);
        assert_eq!(options.providers.len(), 1);
        let provider = &options.providers[DEFAULT_PROVIDER];
        assert_eq!(provider.strategy, Some(config::Strategy::FirstAvailable));
        assert!(provider.hosts.is_empty());
        assert!(text.contains("\"$schema\": \"https://opencode.ai/config.json\""));
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn init_text_should_add_the_entry_after_other_plugins_keeping_every_byte() {
        let before = "// my config\n{\n  \"theme\": \"x\", // dark\n  \"plugin\": [\n    \"a\", // first\n    [\"b\", {}],\n  ],\n}\n";
        let InitText::Changed(after) = init_text(before, path()).unwrap() else {
            panic!("nothing added");
        };
        assert_eq!(
            after,
            insert_after(
                before,
                "[\"b\", {}],",
                "\n    [\n      \"opencode-remote-provider\",\n      {\n        \"providers\": {\n          \"default\": {\n            \"strategy\": \"first_available\",\n            \"hosts\": [],\n          },\n        },\n      },\n    ],"
            )
        );
        assert!(options(&after).providers[DEFAULT_PROVIDER].hosts.is_empty());
    }

    #[test]
    fn init_text_should_create_the_plugin_array_when_missing() {
        let before = "{\n  // comment\n  \"theme\": \"x\"\n}\n";
        let InitText::Changed(after) = init_text(before, path()).unwrap() else {
            panic!("nothing added");
        };
        assert_eq!(
            after,
            "{\n  // comment\n  \"theme\": \"x\",\n  \"plugin\": [\n    [\n      \"opencode-remote-provider\",\n      {\n        \"providers\": {\n          \"default\": {\n            \"strategy\": \"first_available\",\n            \"hosts\": []\n          }\n        }\n      }\n    ]\n  ]\n}\n"
        );
    }

    #[test]
    fn init_text_should_fill_empty_and_comment_only_files() {
        for before in ["", "\n", "// nothing yet\n", "{}\n", "{\"plugin\": []}\n"] {
            let InitText::Changed(after) = init_text(before, path()).unwrap() else {
                panic!("nothing added to {before:?}");
            };
            assert!(
                options(&after).providers.contains_key(DEFAULT_PROVIDER),
                "{after}"
            );
        }
        let InitText::Changed(after) = init_text("// nothing yet\n", path()).unwrap() else {
            panic!("nothing added");
        };
        assert!(
            after.starts_with("// nothing yet\n{\n  \"$schema\""),
            "{after}"
        );
    }

    #[test]
    fn init_text_should_follow_a_single_line_plugin_array() {
        let before = "{\n  \"plugin\": [\"a\"]\n}\n";
        let InitText::Changed(after) = init_text(before, path()).unwrap() else {
            panic!("nothing added");
        };
        assert_eq!(
            after,
            insert_after(
                before,
                "\"a\"",
                ", [\"opencode-remote-provider\", {\"providers\": {\"default\": {\"strategy\": \"first_available\", \"hosts\": []}}}]"
            )
        );
    }

    #[test]
    fn init_text_should_find_an_existing_entry_in_every_form() {
        for (text, spec) in [
            (JSONC, "opencode-remote-provider"),
            (JSON, "opencode-remote-provider"),
            (
                r#"{"plugin": ["opencode-remote-provider@1.2.3"]}"#,
                "opencode-remote-provider@1.2.3",
            ),
            (
                r#"{"plugin": [["opencode-remote-provider"]]}"#,
                "opencode-remote-provider",
            ),
        ] {
            assert_eq!(
                init_text(text, path()).unwrap(),
                InitText::Present {
                    spec: spec.to_owned()
                }
            );
        }
    }

    #[test]
    fn edits_should_refuse_path_based_entries() {
        let text = r#"{"plugin": [["/src/opencode-remote/local/plugin", {"providers": {}}]]}"#;
        let expect = |err: EditError| {
            let message = err.to_string();
            assert!(matches!(err, EditError::PathBased { .. }), "{message}");
            assert!(
                message.contains("/src/opencode-remote/local/plugin"),
                "{message}"
            );
            assert!(message.contains("edit /home/u/.config/opencode/opencode.jsonc by hand"));
            assert!(message.contains("[\"opencode-remote-provider\", {…options…}]"));
        };
        expect(init_text(text, path()).unwrap_err());
        expect(add_host(text, path(), "p", &host("h")).unwrap_err());
        expect(remove_host(text, path(), "p", "h").unwrap_err());
        let file_url = r#"{"plugin": ["file:///src/opencode-remote/local/plugin/index.js"]}"#;
        expect(add_host(file_url, path(), "p", &host("h")).unwrap_err());
    }

    #[test]
    fn init_text_should_refuse_a_plugin_value_that_is_not_an_array() {
        let err = init_text(r#"{"plugin": "x"}"#, path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{PATH} is not an OpenCode config: \"plugin\" must be an array")
        );
        let err = init_text("[1]", path()).unwrap_err();
        assert!(err.to_string().contains("the top level must be an object"));
    }

    #[test]
    fn add_host_should_append_to_a_jsonc_provider_keeping_every_other_byte() {
        let new = NewHost {
            name: "web-2".into(),
            address: Some("10.0.0.2".into()),
            user: "ops".into(),
            port: Some(2222),
            identity_file: Some("~/.ssh/id_ed25519".into()),
        };
        let after = add_host(JSONC, path(), "default", &new).unwrap();
        assert_eq!(
            after,
            insert_after(
                JSONC,
                "\"203.0.113.20\", \"user\": \"ops\" },\n            },",
                "
            {
              \"name\": \"web-2\",
              \"ssh\": {
                \"host\": \"10.0.0.2\",
                \"user\": \"ops\",
                \"port\": 2222,
                \"identityFile\": \"~/.ssh/id_ed25519\",
              },
            },"
            )
        );
        let hosts = &options(&after).providers["default"].hosts;
        assert_eq!(hosts.len(), 3);
        assert_eq!(
            hosts[2].ssh.identity_file.as_deref(),
            Some("~/.ssh/id_ed25519")
        );
    }

    #[test]
    fn add_host_should_append_to_a_json_provider_keeping_every_other_byte() {
        let after = add_host(JSON, path(), "default", &host("web-2")).unwrap();
        assert_eq!(
            after,
            insert_after(
                JSON,
                "\"user\": \"ops\"\n                }\n              }",
                ",
              {
                \"name\": \"web-2\",
                \"ssh\": {
                  \"host\": \"web-2\",
                  \"user\": \"me\"
                }
              }"
            )
        );
        // Plain JSON stays plain JSON.
        assert!(serde_json::from_str::<serde_json::Value>(&after).is_ok());
    }

    #[test]
    fn add_host_should_create_a_missing_provider() {
        let after = add_host(JSON, path(), "lab", &host("box")).unwrap();
        assert_eq!(
            after,
            insert_after(
                JSON,
                "\"user\": \"ops\"\n                }\n              }\n            ]\n          }",
                ",
          \"lab\": {
            \"strategy\": \"first_available\",
            \"hosts\": [
              {
                \"name\": \"box\",
                \"ssh\": {
                  \"host\": \"box\",
                  \"user\": \"me\"
                }
              }
            ]
          }"
            )
        );
        let after = add_host(JSONC, path(), "lab", &host("box")).unwrap();
        assert_eq!(
            after,
            insert_after(
                JSONC,
                "\"203.0.113.20\", \"user\": \"ops\" },\n            },\n          ],\n        },",
                "
        \"lab\": {
          \"strategy\": \"first_available\",
          \"hosts\": [
            {
              \"name\": \"box\",
              \"ssh\": {
                \"host\": \"box\",
                \"user\": \"me\",
              },
            },
          ],
        },"
            )
        );
    }

    #[test]
    fn add_host_should_fill_empty_hosts_providers_and_options() {
        let readme_style = "{\n  \"plugin\": [\n    [\"opencode-remote-provider\", {\n      \"providers\": {}\n    }]\n  ]\n}\n";
        let after = add_host(readme_style, path(), "default", &host("h")).unwrap();
        assert_eq!(
            after,
            "{\n  \"plugin\": [\n    [\"opencode-remote-provider\", {\n      \"providers\": {\n        \"default\": {\n          \"strategy\": \"first_available\",\n          \"hosts\": [\n            {\n              \"name\": \"h\",\n              \"ssh\": {\n                \"host\": \"h\",\n                \"user\": \"me\"\n              }\n            }\n          ]\n        }\n      }\n    }]\n  ]\n}\n"
        );
        let empty_hosts = new_config();
        let after = add_host(&empty_hosts, path(), DEFAULT_PROVIDER, &host("h")).unwrap();
        assert_eq!(
            after,
            empty_hosts.replace(
                "\"hosts\": []",
                "\"hosts\": [\n              {\n                \"name\": \"h\",\n                \"ssh\": {\n                  \"host\": \"h\",\n                  \"user\": \"me\"\n                }\n              }\n            ]"
            )
        );
        let no_options = "{\n  \"plugin\": [\n    [\"opencode-remote-provider\"]\n  ]\n}\n";
        let after = add_host(no_options, path(), "p", &host("h")).unwrap();
        assert_eq!(options(&after).providers["p"].hosts[0].name, "h");
        assert!(after.starts_with("{\n  \"plugin\": [\n    [\n      \"opencode-remote-provider\",\n      {\n        \"providers\": {\n"), "{after}");
    }

    #[test]
    fn add_host_should_give_a_bare_entry_its_options() {
        let before = "{\n  \"plugin\": [\n    \"a\",\n    \"opencode-remote-provider@0.1.0\", // ours\n    \"b\"\n  ]\n}\n";
        let after = add_host(before, path(), "p", &host("h")).unwrap();
        assert_eq!(
            after,
            "{\n  \"plugin\": [\n    \"a\",\n    [\n      \"opencode-remote-provider@0.1.0\",\n      {\n        \"providers\": {\n          \"p\": {\n            \"strategy\": \"first_available\",\n            \"hosts\": [\n              {\n                \"name\": \"h\",\n                \"ssh\": {\n                  \"host\": \"h\",\n                  \"user\": \"me\"\n                }\n              }\n            ]\n          }\n        }\n      }\n    ], // ours\n    \"b\"\n  ]\n}\n"
        );
    }

    #[test]
    fn add_host_should_keep_tabs_and_crlf() {
        let tabs = "{\n\t\"plugin\": [\n\t\t[\"opencode-remote-provider\", {\"providers\": {\"p\": {\"hosts\": [\n\t\t\t{\"name\": \"a\"}\n\t\t]}}}]\n\t]\n}\n";
        let after = add_host(tabs, path(), "p", &host("b")).unwrap();
        assert_eq!(
            after,
            insert_after(
                tabs,
                "{\"name\": \"a\"}",
                ",\n\t\t\t{\n\t\t\t\t\"name\": \"b\",\n\t\t\t\t\"ssh\": {\n\t\t\t\t\t\"host\": \"b\",\n\t\t\t\t\t\"user\": \"me\"\n\t\t\t\t}\n\t\t\t}"
            )
        );
        let crlf = JSON.replace('\n', "\r\n");
        let after = add_host(&crlf, path(), "default", &host("b")).unwrap();
        let lf = add_host(JSON, path(), "default", &host("b")).unwrap();
        assert_eq!(after, lf.replace('\n', "\r\n"));
    }

    #[test]
    fn add_host_should_follow_single_line_host_arrays() {
        let before = r#"{"plugin": [["opencode-remote-provider", {"providers": {"p": {"hosts": [{"name": "a"}]}}}]]}"#;
        let after = add_host(before, path(), "p", &host("b")).unwrap();
        assert_eq!(
            after,
            insert_after(
                before,
                r#"{"name": "a"}"#,
                r#", {"name": "b", "ssh": {"host": "b", "user": "me"}}"#
            )
        );
    }

    #[test]
    fn add_host_should_keep_a_comment_after_the_last_host() {
        let before = "{\"plugin\": [[\"opencode-remote-provider\", {\"providers\": {\"p\": {\"hosts\": [\n  {\"name\": \"a\"} // first\n]}}}]]}";
        let after = add_host(before, path(), "p", &host("b")).unwrap();
        assert!(
            after.contains("{\"name\": \"a\"}, // first\n  {\n    \"name\": \"b\""),
            "{after}"
        );
    }

    #[test]
    fn add_host_should_refuse_duplicate_names_and_aliases() {
        let err = add_host(JSONC, path(), "default", &host("db-1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "provider `default` already has a host named `db-1` (ops@203.0.113.20)"
        );
        let err = add_host(JSONC, path(), "default", &host("web1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "provider `default` already has `web1` as an alias of host `prod-web-1` (ops@203.0.113.10:22)"
        );
        // Other providers may use the name.
        assert!(add_host(JSONC, path(), "staging", &host("db-1")).is_ok());
    }

    #[test]
    fn add_host_should_explain_a_missing_entry_and_invalid_options() {
        let err = add_host(r#"{"plugin": ["x"]}"#, path(), "p", &host("h")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{PATH} has no `opencode-remote-provider` entry in \"plugin\"; add it with \
                 `opencode-remote config init` (scripts/opencode-remote-cli.sh init)"
            )
        );
        let typo = r#"{"plugin": [["opencode-remote-provider", {"providers": {"p": {"hosts": [{"name": "a", "ssh": {"prot": 1}}]}}}]]}"#;
        let err = add_host(typo, path(), "p", &host("h"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("providers.p.hosts[0].ssh.prot"), "{err}");
    }

    #[test]
    fn parse_should_report_malformed_json_with_line_and_column() {
        let err = add_host(
            "{\n  \"plugin\": [\n    \"x\",\n    }\n  ]\n}",
            path(),
            "p",
            &host("h"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(&format!("config {PATH} is not valid JSON")),
            "{err}"
        );
        assert!(err.contains("line 4 column 5"), "{err}");
    }

    #[test]
    fn remove_host_should_remove_by_name_keeping_every_other_byte() {
        let (after, removed) = remove_host(JSONC, path(), "default", "prod-web-1").unwrap();
        assert_eq!(
            after,
            without(
                JSONC,
                "            {
              \"name\": \"prod-web-1\",
              \"aliases\": [\"web1\"], // short
              \"ssh\": { \"host\": \"203.0.113.10\", \"user\": \"ops\", \"port\": 22 },
              \"labels\": [\"linux\", \"production\"],
            },
"
            )
        );
        assert_eq!(
            removed,
            Removed {
                name: "prod-web-1".into(),
                alias: None,
                target: "ops@203.0.113.10:22".into()
            }
        );
        let hosts = &options(&after).providers["default"].hosts;
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].name, "db-1");
    }

    #[test]
    fn remove_host_should_remove_the_last_host_and_its_comma() {
        let (after, _) = remove_host(JSON, path(), "default", "web-1").unwrap();
        assert_eq!(after, JSON.replace("[\n              {\n                \"name\": \"web-1\",\n                \"ssh\": {\n                  \"host\": \"10.0.0.1\",\n                  \"user\": \"ops\"\n                }\n              }\n            ]", "[]"));
        let (after, _) = remove_host(JSONC, path(), "default", "db-1").unwrap();
        assert!(after.contains("\"labels\": [\"linux\", \"production\"],\n            },\n            /* db next */\n          ],"), "{after}");
    }

    #[test]
    fn remove_host_should_accept_an_alias() {
        let (after, removed) = remove_host(JSONC, path(), "default", "web1").unwrap();
        assert_eq!(removed.name, "prod-web-1");
        assert_eq!(removed.alias.as_deref(), Some("web1"));
        assert_eq!(
            after,
            remove_host(JSONC, path(), "default", "prod-web-1")
                .unwrap()
                .0
        );
    }

    #[test]
    fn remove_host_should_list_the_known_providers_and_hosts() {
        let err = remove_host(JSONC, path(), "prod", "db-1").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("provider `prod` not found in {PATH}; known providers: default, staging")
        );
        let err = remove_host(JSONC, path(), "default", "web-9").unwrap_err();
        assert_eq!(
            err.to_string(),
            "host `web-9` not found in provider `default`; known hosts: prod-web-1 (aliases web1), db-1"
        );
        let err = remove_host(&new_config(), path(), "default", "x").unwrap_err();
        assert!(err.to_string().ends_with("known hosts: (none)"), "{err}");
    }

    #[test]
    fn list_should_show_providers_hosts_and_targets() {
        let text = JSONC.replace(
            "\"labels\": [\"linux\", \"production\"],",
            "\"labels\": [\"linux\", \"production\"], \"directory\": \"/srv/app\",",
        );
        let text = text.replace(
            "\"user\": \"ops\" },",
            "\"user\": \"ops\", \"proxyJump\": \"bastion\", \"identityFile\": \"~/.ssh/db\" },",
        );
        assert_eq!(
            list(&text, path()).unwrap(),
            format!(
                "Config: {PATH}
Plugin: \"opencode-remote-provider\" (package-based)

provider default (strategy first_available)
  prod-web-1  ops@203.0.113.10:22
      aliases    web1
      labels     linux, production
      directory  /srv/app
  db-1  ops@203.0.113.20
      identity   ~/.ssh/db
      proxyJump  bastion

provider staging (strategy first_available)
  stage-1  deploy@10.1.0.1
"
            )
        );
    }

    #[test]
    fn list_should_mark_path_based_entries_read_only() {
        let text = r#"{"plugin": [["/src/opencode-remote/local/plugin", {"providers": {"p": {"labels": ["x"], "hosts": []}}}]]}"#;
        let out = list(text, path()).unwrap();
        assert!(
            out.contains(
                "Plugin: \"/src/opencode-remote/local/plugin\" [read-only: path-based entry; edit the file by hand]"
            ),
            "{out}"
        );
        assert!(
            out.contains("provider p (strategy first_available; labels x)\n  (no hosts)"),
            "{out}"
        );
        let out = list(r#"{"plugin": ["opencode-remote-provider"]}"#, path()).unwrap();
        assert!(out.contains("No providers yet"), "{out}");
    }
}
