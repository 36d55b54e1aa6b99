//! Completing the settings once every file is read: `%` tokens and `~` in paths, `HostName`'s
//! `%h`, and OpenSSH's defaults for the known_hosts files.

use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

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
    /// `HostName` (lower-cased), or the lower-cased alias.
    hostname: &'a str,
    port: u16,
    remote_user: Option<&'a str>,
    /// `HostKeyAlias` (lower-cased), if set.
    host_key_alias: Option<&'a str>,
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
                Some('l') => out.push_str(&node_name()),
                Some('L') => out.push_str(node_name().split('.').next().unwrap_or_default()),
                Some('k') => out.push_str(self.host_key_alias.unwrap_or(self.alias)),
                Some('C') => {
                    // OpenSSH's connection hash: SHA-1 of %l%h%p%r, in hex (OpenSSH 9.x;
                    // versions that add %j to it differ only with ProxyJump set).
                    let remote_user = self.remote_user.ok_or_else(unknown_user)?;
                    let input =
                        format!("{}{}{}{remote_user}", node_name(), self.hostname, self.port);
                    for byte in Sha1::digest(input) {
                        out.push_str(&format!("{byte:02x}"));
                    }
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

    /// `UserKnownHostsFile` (expanded) or, with `expand` false, `GlobalKnownHostsFile` (used
    /// as written, as OpenSSH does).
    fn known_hosts(
        &self,
        configured: Option<Vec<Located>>,
        defaults: &[&str],
        expand: bool,
    ) -> Result<Vec<PathBuf>, SshConfigError> {
        match configured {
            Some(list) if matches!(list.as_slice(), [only] if only.value.eq_ignore_ascii_case("none")) => {
                Ok(Vec::new())
            }
            Some(list) if expand => list.iter().map(|l| self.path(l)).collect(),
            Some(list) => Ok(list.iter().map(|l| PathBuf::from(&l.value)).collect()),
            None => Ok(defaults
                .iter()
                .map(|d| expand_tilde(d, &self.ctx.home))
                .collect()),
        }
    }
}

/// The machine's name (`%l`), as `uname -n` prints it.
fn node_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
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
    // OpenSSH lower-cases the host it connects to (and the one `%h` stands for), and the
    // `HostKeyAlias`; `%n` and `Host` patterns keep the alias as given.
    let hostname = match &raw.hostname {
        Some(loc) => Some(
            expand_hostname(&loc.value, alias)
                .map(|h| h.to_ascii_lowercase())
                .ok_or_else(|| SshConfigError::InvalidValue {
                    path: loc.path.clone(),
                    line: loc.line,
                    keyword: loc.keyword.clone(),
                    value: loc.value.clone(),
                    reason: "only %h and %% are allowed".to_owned(),
                })?,
        ),
        None => None,
    };
    let remote_user = raw.user.as_deref().or(ctx.local_user.as_deref());
    let lower_alias = alias.to_ascii_lowercase();
    let host_key_alias = raw.host_key_alias.map(|a| a.to_ascii_lowercase());
    let tokens = Tokens {
        alias,
        hostname: hostname.as_deref().unwrap_or(&lower_alias),
        port: raw.port.unwrap_or(22),
        remote_user,
        host_key_alias: host_key_alias.as_deref(),
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
        tokens.known_hosts(raw.user_known_hosts, &DEFAULT_USER_KNOWN_HOSTS, true)?;
    let global_known_hosts_files =
        tokens.known_hosts(raw.global_known_hosts, &DEFAULT_GLOBAL_KNOWN_HOSTS, false)?;
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
        host_key_alias,
        connect_timeout: raw.connect_timeout,
        server_alive_interval: raw.server_alive_interval,
        server_alive_count_max: raw.server_alive_count_max,
        identity_agent,
        warnings: raw.warnings,
    })
}
