//! Completing the settings once every file is read: `%` tokens and `~` in paths, `HostName`'s
//! `%h`, and OpenSSH's defaults for the known_hosts files.

use std::path::{Path, PathBuf};

use super::{
    Context, DEFAULT_GLOBAL_KNOWN_HOSTS, DEFAULT_USER_KNOWN_HOSTS, HostSettings, Located, Proxy,
    Raw, SshConfigError,
};

/// Expands a leading `~` or `~/` to `home`; anything else is returned as is.
pub(super) fn expand_tilde(value: &str, home: &Path) -> PathBuf {
    if value == "~" {
        home.to_path_buf()
    } else if let Some(rest) = value.strip_prefix("~/") {
        home.join(rest)
    } else {
        PathBuf::from(value)
    }
}

/// Values for `%` tokens once the configuration is complete.
struct Tokens<'a> {
    alias: &'a str,
    hostname: &'a str,
    port: u16,
    remote_user: Option<&'a str>,
    ctx: &'a Context,
}

impl Tokens<'_> {
    fn expand(&self, loc: &Located) -> Result<String, SshConfigError> {
        let invalid = |reason: String| SshConfigError::InvalidValue {
            path: loc.path.clone(),
            line: loc.line,
            keyword: loc.keyword.clone(),
            value: loc.value.clone(),
            reason,
        };
        let unknown_user = || invalid("local user name unknown ($USER is not set)".to_owned());
        let mut out = String::new();
        let mut chars = loc.value.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('%') => out.push('%'),
                Some('h') => out.push_str(self.hostname),
                Some('n') => out.push_str(self.alias),
                Some('p') => out.push_str(&self.port.to_string()),
                Some('d') => out.push_str(&self.ctx.home.to_string_lossy()),
                Some('u') => out.push_str(self.ctx.local_user.as_deref().ok_or_else(unknown_user)?),
                Some('r') => out.push_str(self.remote_user.ok_or_else(unknown_user)?),
                Some('i') => out.push_str(&rustix::process::getuid().as_raw().to_string()),
                Some(t @ ('l' | 'L')) => {
                    let uname = rustix::system::uname();
                    let node = uname.nodename().to_string_lossy().into_owned();
                    let node = match t {
                        'L' => node.split('.').next().unwrap_or_default().to_owned(),
                        _ => node,
                    };
                    out.push_str(&node);
                }
                Some(t) => return Err(invalid(format!("unsupported token %{t}"))),
                None => return Err(invalid("trailing %".to_owned())),
            }
        }
        Ok(out)
    }

    /// Tilde expansion followed by token expansion, as OpenSSH does for paths.
    fn path(&self, loc: &Located) -> Result<PathBuf, SshConfigError> {
        let tilde = Located {
            value: expand_tilde(&loc.value, &self.ctx.home)
                .to_string_lossy()
                .into_owned(),
            ..loc.clone()
        };
        self.expand(&tilde).map(PathBuf::from)
    }

    fn known_hosts(
        &self,
        configured: Option<Vec<Located>>,
        defaults: &[&str],
    ) -> Result<Vec<PathBuf>, SshConfigError> {
        match configured {
            Some(list) if matches!(list.as_slice(), [only] if only.value.eq_ignore_ascii_case("none")) => {
                Ok(Vec::new())
            }
            Some(list) => list.iter().map(|l| self.path(l)).collect(),
            None => Ok(defaults
                .iter()
                .map(|d| expand_tilde(d, &self.ctx.home))
                .collect()),
        }
    }
}

/// Expands a `HostName` value, which only knows `%h` and `%%`.
pub(super) fn expand_hostname(value: &str, alias: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'h' => out.push_str(alias),
            '%' => out.push('%'),
            _ => return None,
        }
    }
    Some(out)
}

pub(super) fn finish(raw: Raw, alias: &str, ctx: &Context) -> Result<HostSettings, SshConfigError> {
    let hostname = match &raw.hostname {
        Some(loc) => Some(expand_hostname(&loc.value, alias).ok_or_else(|| {
            SshConfigError::InvalidValue {
                path: loc.path.clone(),
                line: loc.line,
                keyword: loc.keyword.clone(),
                value: loc.value.clone(),
                reason: "only %h and %% are allowed".to_owned(),
            }
        })?),
        None => None,
    };
    let remote_user = raw.user.as_deref().or(ctx.local_user.as_deref());
    let tokens = Tokens {
        alias,
        hostname: hostname.as_deref().unwrap_or(alias),
        port: raw.port.unwrap_or(22),
        remote_user,
        ctx,
    };
    let identity_files = raw
        .identity_files
        .iter()
        .map(|l| tokens.path(l))
        .collect::<Result<_, _>>()?;
    let certificate_files = raw
        .certificate_files
        .iter()
        .map(|l| tokens.path(l))
        .collect::<Result<_, _>>()?;
    let user_known_hosts_files =
        tokens.known_hosts(raw.user_known_hosts, &DEFAULT_USER_KNOWN_HOSTS)?;
    let global_known_hosts_files =
        tokens.known_hosts(raw.global_known_hosts, &DEFAULT_GLOBAL_KNOWN_HOSTS)?;
    let identity_agent = match &raw.identity_agent {
        Some(loc)
            if loc.value.eq_ignore_ascii_case("none")
                || loc.value == "SSH_AUTH_SOCK"
                || loc.value.starts_with('$') =>
        {
            Some(loc.value.clone())
        }
        Some(loc) => Some(tokens.path(loc)?.to_string_lossy().into_owned()),
        None => None,
    };
    let (proxy_jump, proxy_command) = match raw.proxy {
        Some(Proxy::Jump(j)) => (j, None),
        Some(Proxy::Command(c)) => (None, c),
        None => (None, None),
    };
    Ok(HostSettings {
        hostname,
        user: raw.user,
        port: raw.port,
        identity_files,
        certificate_files,
        identities_only: raw.identities_only,
        proxy_jump,
        proxy_command,
        user_known_hosts_files,
        global_known_hosts_files,
        strict_host_key_checking: raw.strict_host_key_checking,
        hash_known_hosts: raw.hash_known_hosts,
        host_key_alias: raw.host_key_alias,
        connect_timeout: raw.connect_timeout,
        server_alive_interval: raw.server_alive_interval,
        server_alive_count_max: raw.server_alive_count_max,
        identity_agent,
        warnings: raw.warnings,
    })
}
