//! Resolving what the user asked for (provider + host or alias, or an ssh-style destination)
//! to one [`ResolvedHost`].

use crate::config::{Loaded, Ssh};

/// A host ready to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedHost {
    /// Provider it came from (`None` for a bare destination).
    pub provider: Option<String>,
    /// Canonical host name (or the destination as typed).
    pub name: String,
    /// SSH settings from the options; `~/.ssh/config` fills the gaps later.
    pub ssh: Ssh,
    /// Working directory on the host, if configured.
    pub directory: Option<String>,
    /// Host labels plus provider labels.
    pub labels: Vec<String>,
}

impl ResolvedHost {
    /// The name or address SSH is asked to reach (before `~/.ssh/config` HostName).
    pub fn ssh_target(&self) -> &str {
        self.ssh.host.as_deref().unwrap_or(&self.name)
    }
}

/// Why a host could not be resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// No such provider.
    #[error("unknown provider `{name}` in {source_name}; known providers: {known}")]
    UnknownProvider {
        /// What was asked for.
        name: String,
        /// The config.
        source_name: String,
        /// Known providers, comma separated (or "none").
        known: String,
    },
    /// No provider named and no default.
    #[error("no provider given and {source_name} defines {count} providers ({known}); choose one")]
    AmbiguousProvider {
        /// The config.
        source_name: String,
        /// How many.
        count: usize,
        /// Their names.
        known: String,
    },
    /// No such host or alias.
    #[error(
        "unknown host `{name}` in provider `{provider}` of {source_name}; known hosts: {known}"
    )]
    UnknownHost {
        /// What was asked for.
        name: String,
        /// The provider.
        provider: String,
        /// The config.
        source_name: String,
        /// Known hosts with aliases.
        known: String,
    },
    /// No host has the labels.
    #[error(
        "no host of provider `{provider}` in {source_name} has the labels [{labels}]; known hosts: {known}"
    )]
    NoHostWithLabels {
        /// The provider.
        provider: String,
        /// The config.
        source_name: String,
        /// Labels asked for.
        labels: String,
        /// Known hosts with their labels.
        known: String,
    },
    /// An ssh-style destination that does not parse.
    #[error("invalid destination `{0}`: expected [user@]host[:port]")]
    BadDestination(String),
}

/// Resolves `provider`/`host` against loaded options. Without a host, the provider's strategy
/// (`first_available`) picks the first host carrying all `labels`.
///
/// # Errors
///
/// See [`ResolveError`]; messages name the config file and the known providers/hosts.
pub fn resolve(
    loaded: &Loaded,
    provider: Option<&str>,
    host: Option<&str>,
    labels: &[String],
) -> Result<ResolvedHost, ResolveError> {
    let options = &loaded.options;
    let source_name = loaded.source.to_string();
    let known_providers = || {
        let names = options.provider_names();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    let provider_name = match provider.filter(|p| !p.is_empty()) {
        Some(name) => name.to_owned(),
        None => match options.defaults.as_ref().and_then(|d| d.provider.clone()) {
            Some(name) => name,
            None if options.providers.len() == 1 => options.provider_names().remove(0),
            None if options.providers.contains_key("default") => "default".to_owned(),
            None => {
                return Err(ResolveError::AmbiguousProvider {
                    source_name,
                    count: options.providers.len(),
                    known: known_providers(),
                });
            }
        },
    };
    let Some(config) = options.providers.get(&provider_name) else {
        return Err(ResolveError::UnknownProvider {
            name: provider_name,
            source_name,
            known: known_providers(),
        });
    };
    let known_hosts = || {
        if config.hosts.is_empty() {
            return "none".to_owned();
        }
        config
            .hosts
            .iter()
            .map(|h| {
                let mut s = h.name.clone();
                if !h.aliases.is_empty() {
                    s.push_str(&format!(" (aliases: {})", h.aliases.join(", ")));
                }
                if !h.labels.is_empty() {
                    s.push_str(&format!(" [{}]", h.labels.join(", ")));
                }
                s
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let chosen = match host.filter(|h| !h.is_empty()) {
        Some(wanted) => config
            .hosts
            .iter()
            .find(|h| h.name == wanted)
            .or_else(|| {
                config
                    .hosts
                    .iter()
                    .find(|h| h.aliases.iter().any(|a| a == wanted))
            })
            .ok_or_else(|| ResolveError::UnknownHost {
                name: wanted.to_owned(),
                provider: provider_name.clone(),
                source_name: source_name.clone(),
                known: known_hosts(),
            })?,
        // `first_available` is the only strategy: config order, first match on labels.
        None => config
            .hosts
            .iter()
            .find(|h| {
                labels
                    .iter()
                    .all(|l| h.labels.contains(l) || config.labels.contains(l))
            })
            .ok_or_else(|| ResolveError::NoHostWithLabels {
                provider: provider_name.clone(),
                source_name: source_name.clone(),
                labels: labels.join(", "),
                known: known_hosts(),
            })?,
    };
    let mut all_labels = chosen.labels.clone();
    all_labels.extend(
        config
            .labels
            .iter()
            .filter(|l| !chosen.labels.contains(l))
            .cloned(),
    );
    Ok(ResolvedHost {
        provider: Some(provider_name),
        name: chosen.name.clone(),
        ssh: chosen.ssh.clone(),
        directory: chosen
            .directory
            .clone()
            .or_else(|| options.defaults.as_ref().and_then(|d| d.directory.clone())),
        labels: all_labels,
    })
}

/// Parses an ssh-style destination: `[user@]host[:port]`, `[user@][v6addr][:port]` or
/// `ssh://[user@]host[:port]`.
///
/// # Errors
///
/// [`ResolveError::BadDestination`].
pub fn parse_destination(
    destination: &str,
    identity: Option<&str>,
) -> Result<ResolvedHost, ResolveError> {
    let bad = || ResolveError::BadDestination(destination.to_owned());
    let rest = destination
        .strip_prefix("ssh://")
        .unwrap_or(destination)
        .trim_end_matches('/');
    let (user, rest) = match rest.rsplit_once('@') {
        Some((user, rest)) if !user.is_empty() => (Some(user.to_owned()), rest),
        Some(_) => return Err(bad()),
        None => (None, rest),
    };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port.parse::<u16>().map_err(|_| bad())?),
            None if after.is_empty() => None,
            None => return Err(bad()),
        };
        (addr.to_owned(), port)
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (
                host.to_owned(),
                Some(port.parse::<u16>().map_err(|_| bad())?),
            ),
            None => (rest.to_owned(), None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) || port == Some(0) {
        return Err(bad());
    }
    Ok(ResolvedHost {
        provider: None,
        name: destination.to_owned(),
        ssh: Ssh {
            host: Some(host),
            user,
            port,
            identity_file: identity.map(str::to_owned),
            proxy_jump: None,
        },
        directory: None,
        labels: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_json;

    fn loaded() -> Loaded {
        from_json(
            r#"{"providers":{
                "default":{"labels":["team"],"hosts":[
                    {"name":"web-1","aliases":["w1","web"],"ssh":{"host":"10.0.0.1","user":"ops"},"labels":["linux","prod"]},
                    {"name":"db-1","labels":["linux","db"],"directory":"/srv/db"}
                ]},
                "lab":{"hosts":[]}
            }}"#,
        )
        .unwrap()
    }

    #[test]
    fn resolve_should_find_hosts_by_name_and_alias() {
        let loaded = loaded();
        let by_name = resolve(&loaded, Some("default"), Some("web-1"), &[]).unwrap();
        let by_alias = resolve(&loaded, Some("default"), Some("w1"), &[]).unwrap();
        assert_eq!(by_name, by_alias);
        assert_eq!(by_alias.name, "web-1");
        assert_eq!(by_alias.ssh_target(), "10.0.0.1");
        assert_eq!(by_alias.labels, ["linux", "prod", "team"]);
    }

    #[test]
    fn resolve_should_pick_the_first_host_with_all_labels() {
        let loaded = loaded();
        let host = resolve(&loaded, Some("default"), None, &["db".into()]).unwrap();
        assert_eq!(host.name, "db-1");
        assert_eq!(host.ssh_target(), "db-1");
        assert_eq!(host.directory.as_deref(), Some("/srv/db"));
        let first = resolve(&loaded, Some("default"), None, &["team".into()]).unwrap();
        assert_eq!(first.name, "web-1");
    }

    #[test]
    fn resolve_should_name_config_and_known_hosts_on_errors() {
        let loaded = loaded();
        let err = resolve(&loaded, Some("default"), Some("nope"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown host `nope` in provider `default` of inline options"),
            "{err}"
        );
        assert!(err.contains("web-1 (aliases: w1, web)"), "{err}");
        assert!(err.contains("db-1"), "{err}");

        let err = resolve(&loaded, Some("prod"), Some("x"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("known providers: default, lab"), "{err}");

        let err = resolve(&loaded, None, Some("web-1"), &[]).unwrap();
        assert_eq!(err.provider.as_deref(), Some("default"));

        let err = resolve(&loaded, Some("lab"), None, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("known hosts: none"), "{err}");
    }

    #[test]
    fn parse_destination_should_handle_users_ports_and_ipv6() {
        let d = parse_destination("ops@example.com:2222", Some("~/.ssh/k")).unwrap();
        assert_eq!(d.ssh.user.as_deref(), Some("ops"));
        assert_eq!(d.ssh.host.as_deref(), Some("example.com"));
        assert_eq!(d.ssh.port, Some(2222));
        assert_eq!(d.ssh.identity_file.as_deref(), Some("~/.ssh/k"));

        let d = parse_destination("[::1]:22", None).unwrap();
        assert_eq!(d.ssh.host.as_deref(), Some("::1"));
        let d = parse_destination("ssh://u@h", None).unwrap();
        assert_eq!(
            (d.ssh.user.as_deref(), d.ssh.host.as_deref(), d.ssh.port),
            (Some("u"), Some("h"), None)
        );

        for bad in ["", "@h", "h:0", "h:x", "h:99999", "[::1", "a b"] {
            assert!(parse_destination(bad, None).is_err(), "{bad}");
        }
    }
}
