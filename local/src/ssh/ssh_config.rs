//! OpenSSH client configuration (`~/.ssh/config`, `/etc/ssh/ssh_config`) resolution.
//!
//! [`resolve`] reads the user file and then the global file and returns the
//! [`HostSettings`] that apply to one destination, following `ssh_config(5)`:
//!
//! * keywords are case-insensitive; `Key Value`, `Key=Value` and quoted values
//!   (`"..."`, `'...'`, backslash escapes) are accepted, and a `#` at the start
//!   of a word begins a comment;
//! * the first value obtained for a single-valued option wins, while
//!   `IdentityFile` and `CertificateFile` accumulate in order (a file already
//!   listed is not listed again);
//! * `Host` patterns (`*`, `?`, `!negation`) are matched against the host name
//!   given on the command line (the alias), case-sensitively as OpenSSH does,
//!   while `Match host` and `Match originalhost` compare case-insensitively;
//!   `Match host` compares against the `HostName` obtained so far;
//! * a `Match final` anywhere asks for OpenSSH's second pass over the files, in
//!   which `Match final` and `Match canonical` match and `Match host` sees the
//!   `HostName` of the first pass; values from the first pass stay;
//! * `Include` resolves relative paths against `~/.ssh` (against `/etc/ssh` for
//!   the global file), supports `*` and `?` in the last path component, and is
//!   limited to [`MAX_INCLUDE_DEPTH`] nested levels;
//! * the host name (`HostName`, else the alias) and `HostKeyAlias` are
//!   lower-cased; `%` tokens (`%% %h %n %p %d %u %r %i %l %L %k %C`) and a
//!   leading `~` are expanded in `IdentityFile`, `CertificateFile`,
//!   `UserKnownHostsFile` and `IdentityAgent` once the whole configuration has
//!   been read (`HostName` knows `%h` only); `GlobalKnownHostsFile` is used as
//!   written. All as OpenSSH does.
//!
//! # Checked against OpenSSH
//!
//! We resolve the configuration ourselves instead of asking `ssh -G`: the
//! bridge must work where no OpenSSH client is installed, must not run `Match
//! exec` commands or spawn a process per connect, and needs file and line for
//! its errors. To keep it honest, a differential test (`openssh.rs`, run with
//! the unit tests) resolves a corpus of configurations (Include, Host and Match
//! blocks, `%` tokens, ProxyJump chains, wildcards and negation, quoting) with
//! both and compares every field of [`HostSettings`]; it found the
//! lower-casing, the final pass, the repeated identity files, `%k`/`%C` and the
//! literal `GlobalKnownHostsFile`. Where we still differ, on purpose:
//!
//! * `Match exec`, `localnetwork`, `tagged`, `command`, `version`,
//!   `sessiontype` and unknown criteria never match and produce a
//!   [`ConfigWarning`] (OpenSSH runs `exec` commands, and rejects criteria it
//!   does not know); hostname canonicalisation is not supported, so only `Match
//!   final` leads to a second pass;
//! * the local user name comes from `$USER` (or `$LOGNAME`), not from the
//!   passwd database, and `~user` paths are left untouched;
//! * unknown keywords and malformed values of keywords we do not use are
//!   ignored instead of being an error, `ProxyJump ssh://` URIs may hold IPv6
//!   addresses (OpenSSH 9.2 refuses them), and file ownership and permissions
//!   are not checked;
//! * `%C` is the hash of `%l%h%p%r` (OpenSSH 9.x); OpenSSH versions that add
//!   `%j` to it differ when a ProxyJump is set.

mod expand;
mod lex;
#[cfg(test)]
mod openssh;
mod parser;
mod pattern;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use expand::finish;
use parser::Parser;
pub(crate) use pattern::{ListMatch, match_pattern_list};

/// Maximum nesting of `Include` directives, as in OpenSSH.
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// The system-wide client configuration file read after the user's.
pub const GLOBAL_CONFIG_FILE: &str = "/etc/ssh/ssh_config";

/// Directory against which relative `Include` paths of the global file resolve.
const GLOBAL_CONFIG_DIR: &str = "/etc/ssh";

/// `UserKnownHostsFile` when the configuration does not set it.
const DEFAULT_USER_KNOWN_HOSTS: [&str; 2] = ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"];

/// `GlobalKnownHostsFile` when the configuration does not set it.
const DEFAULT_GLOBAL_KNOWN_HOSTS: [&str; 2] =
    ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"];

/// Identity files OpenSSH tries when no `IdentityFile` is configured, in order.
const DEFAULT_IDENTITY_FILES: [&str; 5] = [
    ".ssh/id_rsa",
    ".ssh/id_ecdsa",
    ".ssh/id_ecdsa_sk",
    ".ssh/id_ed25519",
    ".ssh/id_ed25519_sk",
];

/// Value of the `StrictHostKeyChecking` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrictHostKeyChecking {
    /// Never add keys automatically; refuse unknown and changed hosts.
    Yes,
    /// Add keys of unknown hosts automatically; refuse changed keys.
    AcceptNew,
    /// Add keys of unknown hosts automatically (`no` or `off`).
    No,
    /// Ask the user before adding an unknown host key.
    Ask,
}

/// One hop of a `ProxyJump` specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpHost {
    /// User name given before `@`, if any.
    pub user: Option<String>,
    /// Host name or address, without brackets for IPv6 literals.
    pub host: String,
    /// Port given after the host, if any.
    pub port: Option<u16>,
}

/// A configuration construct that was accepted but could not be honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// File that holds the construct.
    pub path: PathBuf,
    /// One-based line number in `path`.
    pub line: usize,
    /// What was not honoured and how it was treated.
    pub message: String,
}

/// The effective client settings for one destination.
///
/// Options that are not configured are `None` (the caller applies its own
/// default, e.g. port 22), except the known-hosts lists, which hold OpenSSH's
/// defaults when unset and are empty when set to `none`. All paths are
/// expanded (`~` and `%` tokens).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct HostSettings {
    /// `HostName`, with `%h` substituted, lower-cased; `None` means "connect to the
    /// alias" (lower-cased, as OpenSSH does).
    pub hostname: Option<String>,
    /// `User`.
    pub user: Option<String>,
    /// `Port`.
    pub port: Option<u16>,
    /// `IdentityFile` entries, expanded, in configuration order. Empty when
    /// none is configured; see [`default_identity_files`].
    pub identity_files: Vec<PathBuf>,
    /// `CertificateFile` entries, expanded, in configuration order.
    pub certificate_files: Vec<PathBuf>,
    /// `IdentitiesOnly`.
    pub identities_only: Option<bool>,
    /// `ProxyJump` raw value (see [`parse_jump_spec`]); `none` yields `None`.
    pub proxy_jump: Option<String>,
    /// `ProxyCommand` raw value; `none` yields `None`. Only the first of
    /// `ProxyJump` and `ProxyCommand` obtained is kept, as in OpenSSH.
    pub proxy_command: Option<String>,
    /// Effective `UserKnownHostsFile` list.
    pub user_known_hosts_files: Vec<PathBuf>,
    /// Effective `GlobalKnownHostsFile` list (used as written: no `~` or `%` expansion).
    pub global_known_hosts_files: Vec<PathBuf>,
    /// `StrictHostKeyChecking`.
    pub strict_host_key_checking: Option<StrictHostKeyChecking>,
    /// `HashKnownHosts`.
    pub hash_known_hosts: Option<bool>,
    /// `HostKeyAlias` (lower-cased): the name to look up in known_hosts instead of the host.
    pub host_key_alias: Option<String>,
    /// `ConnectTimeout`.
    pub connect_timeout: Option<Duration>,
    /// `ServerAliveInterval`.
    pub server_alive_interval: Option<Duration>,
    /// `ServerAliveCountMax`.
    pub server_alive_count_max: Option<u32>,
    /// `IdentityAgent`: `none`, `SSH_AUTH_SOCK` and `$VARIABLE` values are kept
    /// raw, anything else is a socket path with `~` and `%` tokens expanded.
    pub identity_agent: Option<String>,
    /// Constructs that were not honoured (already logged with `tracing::warn!`).
    pub warnings: Vec<ConfigWarning>,
}

impl HostSettings {
    /// Known-hosts files to consult, user files first, then global ones.
    pub fn known_hosts_files(&self) -> Vec<PathBuf> {
        self.user_known_hosts_files
            .iter()
            .chain(&self.global_known_hosts_files)
            .cloned()
            .collect()
    }
}

/// Errors while reading or interpreting a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum SshConfigError {
    /// A configuration file exists but could not be read.
    #[error("cannot read ssh config {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A quoted value is not closed before the end of the line.
    #[error("{}:{line}: unterminated quote", path.display())]
    UnterminatedQuote {
        /// The file.
        path: PathBuf,
        /// One-based line number.
        line: usize,
    },
    /// A keyword that needs a value has none.
    #[error("{}:{line}: missing argument for {keyword}", path.display())]
    MissingArgument {
        /// The file.
        path: PathBuf,
        /// One-based line number.
        line: usize,
        /// The keyword as written.
        keyword: String,
    },
    /// A keyword that takes one value was given more.
    #[error("{}:{line}: unexpected extra argument {extra:?} for {keyword}", path.display())]
    ExtraArgument {
        /// The file.
        path: PathBuf,
        /// One-based line number.
        line: usize,
        /// The keyword as written.
        keyword: String,
        /// The first superfluous argument.
        extra: String,
    },
    /// A value is malformed (bad port, time, yes/no, token...).
    #[error("{}:{line}: invalid {keyword} value {value:?}: {reason}", path.display())]
    InvalidValue {
        /// The file.
        path: PathBuf,
        /// One-based line number.
        line: usize,
        /// The keyword as written.
        keyword: String,
        /// The offending value.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// `Include` directives nest deeper than [`MAX_INCLUDE_DEPTH`].
    #[error("{}:{line}: includes nested deeper than {MAX_INCLUDE_DEPTH} levels", path.display())]
    IncludeDepth {
        /// The file holding the `Include` that went too deep.
        path: PathBuf,
        /// One-based line number.
        line: usize,
    },
    /// A `ProxyJump`-style specification is malformed.
    #[error("invalid jump host specification {spec:?}: {reason}")]
    InvalidJumpSpec {
        /// The whole specification.
        spec: String,
        /// Why it is invalid.
        reason: String,
    },
}

/// A value together with where it came from, for errors at expansion time.
#[derive(Debug, Clone)]
struct Located {
    value: String,
    path: PathBuf,
    line: usize,
    keyword: String,
}

#[derive(Debug)]
enum Proxy {
    Jump(Option<String>),
    Command(Option<String>),
}

/// Values as obtained from the files, before token expansion.
#[derive(Debug, Default)]
struct Raw {
    hostname: Option<Located>,
    user: Option<String>,
    port: Option<u16>,
    identity_files: Vec<Located>,
    certificate_files: Vec<Located>,
    identities_only: Option<bool>,
    proxy: Option<Proxy>,
    user_known_hosts: Option<Vec<Located>>,
    global_known_hosts: Option<Vec<Located>>,
    strict_host_key_checking: Option<StrictHostKeyChecking>,
    hash_known_hosts: Option<bool>,
    host_key_alias: Option<String>,
    connect_timeout: Option<Duration>,
    server_alive_interval: Option<Duration>,
    server_alive_count_max: Option<u32>,
    identity_agent: Option<Located>,
    warnings: Vec<ConfigWarning>,
}

/// Resolves the settings for `host` (the name given on the command line) from
/// `home/.ssh/config` and then [`GLOBAL_CONFIG_FILE`]. Missing files are fine.
pub fn resolve(host: &str, home: &Path) -> Result<HostSettings, SshConfigError> {
    let files = [
        (home.join(".ssh").join("config"), Level::User),
        (PathBuf::from(GLOBAL_CONFIG_FILE), Level::Global),
    ];
    resolve_inner(&files, host, &Context::from_env(home))
}

/// Resolves the settings for `host` from `files`, read in order; relative
/// `Include` paths resolve against `home/.ssh`. Missing files are fine.
pub fn resolve_from(
    files: &[PathBuf],
    host: &str,
    home: &Path,
) -> Result<HostSettings, SshConfigError> {
    let files: Vec<(PathBuf, Level)> = files.iter().map(|f| (f.clone(), Level::User)).collect();
    resolve_inner(&files, host, &Context::from_env(home))
}

/// Identity files OpenSSH tries when no `IdentityFile` is configured (without
/// the obsolete `id_xmss` and `id_dsa`).
pub fn default_identity_files(home: &Path) -> Vec<PathBuf> {
    DEFAULT_IDENTITY_FILES
        .iter()
        .map(|f| home.join(f))
        .collect()
}

/// Parses a `ProxyJump` / `-J` value: comma-separated hops, each
/// `[user@]host[:port]` (IPv6 literals in brackets) or
/// `ssh://[user@]host[:port]`. `none` yields no hop.
pub fn parse_jump_spec(spec: &str) -> Result<Vec<JumpHost>, SshConfigError> {
    let invalid = |reason: &str| SshConfigError::InvalidJumpSpec {
        spec: spec.to_owned(),
        reason: reason.to_owned(),
    };
    if spec.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    if spec.is_empty() {
        return Err(invalid("empty specification"));
    }
    spec.split(',')
        .map(|hop| parse_jump_hop(hop).map_err(|reason| invalid(&reason)))
        .collect()
}

fn parse_jump_hop(hop: &str) -> Result<JumpHost, String> {
    if hop.is_empty() {
        return Err("empty hop".to_owned());
    }
    if hop.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("hop {hop:?} contains whitespace"));
    }
    let (user, host_port) = if let Some(rest) = strip_prefix_ignore_case(hop, "ssh://") {
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(format!("hop {hop:?} has a path"));
        }
        match rest.rsplit_once('@') {
            Some((user_info, host_port)) => {
                // Connection parameters after ';' are ignored, as by OpenSSH.
                let user = user_info.split(';').next().unwrap_or_default();
                (Some(percent_decode(user)?), host_port)
            }
            None => (None, rest),
        }
    } else {
        match hop.rsplit_once('@') {
            Some((user, host_port)) => (Some(user.to_owned()), host_port),
            None => (None, hop),
        }
    };
    if user.as_deref() == Some("") {
        return Err(format!("hop {hop:?} has an empty user"));
    }
    let (host, port) = split_host_port(host_port).ok_or_else(|| format!("bad host in {hop:?}"))?;
    let port = match port {
        Some(p) => Some(parse_port(p).map_err(|e| format!("hop {hop:?}: {e}"))?),
        None => None,
    };
    Ok(JumpHost {
        user,
        host: host.to_owned(),
        port,
    })
}

/// Splits `host[:port]` or `[v6]:port`; a bare IPv6 literal has no port.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        if host.is_empty() {
            return None;
        }
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    let (host, port) = match s.matches(':').count() {
        0 => (s, None),
        1 => s.split_once(':').map(|(h, p)| (h, Some(p)))?,
        _ => (s, None), // bare IPv6 literal
    };
    if host.is_empty() || host.contains(['[', ']']) {
        return None;
    }
    Some((host, port))
}

fn percent_decode(s: &str) -> Result<String, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes().enumerate();
    while let Some((i, b)) = bytes.next() {
        if b == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {s:?}"))?;
            out.push(hex);
            bytes.nth(1);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).map_err(|_| format!("user {s:?} is not UTF-8"))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn parse_port(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{s:?} is not a port number (1-65535)")),
        Ok(p) => Ok(p),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    User,
    Global,
}

/// Inputs the resolution depends on besides the files.
#[derive(Debug)]
struct Context {
    home: PathBuf,
    local_user: Option<String>,
}

impl Context {
    fn from_env(home: &Path) -> Self {
        let local_user = ["USER", "LOGNAME"]
            .iter()
            .filter_map(|v| std::env::var(v).ok())
            .find(|u| !u.is_empty());
        Self {
            home: home.to_path_buf(),
            local_user,
        }
    }
}

fn resolve_inner(
    files: &[(PathBuf, Level)],
    host: &str,
    ctx: &Context,
) -> Result<HostSettings, SshConfigError> {
    let mut parser = Parser {
        alias: host,
        ctx,
        raw: Raw::default(),
        final_pass: false,
        wants_final_pass: false,
    };
    for (file, level) in files {
        parser.read_file(file, *level, true, false, 0)?;
    }
    if parser.wants_final_pass {
        // Values obtained in the first pass stay (first one wins); `Match host` now sees the
        // `HostName` it obtained.
        parser.final_pass = true;
        for (file, level) in files {
            parser.read_file(file, *level, true, false, 0)?;
        }
    }
    finish(parser.raw, host, ctx)
}

#[cfg(test)]
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use std::fs;

    use super::pattern::wildcard_match;
    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            fs::create_dir_all(dir.path().join(".ssh")).expect("mkdir .ssh");
            Self { dir }
        }

        fn home(&self) -> &Path {
            self.dir.path()
        }

        fn write(&self, rel: &str, text: &str) -> PathBuf {
            let path = self.home().join(rel);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).expect("mkdir");
            }
            fs::write(&path, text).expect("write config");
            path
        }

        fn ctx(&self) -> Context {
            Context {
                home: self.home().to_path_buf(),
                local_user: Some("alice".to_owned()),
            }
        }

        fn resolve(&self, text: &str, host: &str) -> Result<HostSettings, SshConfigError> {
            let path = self.write(".ssh/config", text);
            resolve_inner(&[(path, Level::User)], host, &self.ctx())
        }
    }

    #[test]
    fn resolve_should_keep_first_obtained_value() {
        let fx = Fixture::new();
        let s = fx
            .resolve(
                "Host web\n  Port 2222\n  User deploy\nHost *\n  Port 22\n  User root\n  \
                 ConnectTimeout 7\n",
                "web",
            )
            .expect("resolve");
        assert_eq!(s.port, Some(2222));
        assert_eq!(s.user.as_deref(), Some("deploy"));
        assert_eq!(s.connect_timeout, Some(Duration::from_secs(7)));
    }

    #[test]
    fn resolve_should_accept_equals_quotes_and_case() {
        let fx = Fixture::new();
        let s = fx
            .resolve(
                "HOST=web\nhostNAME = example.org\nIdentityFile \"~/my keys/id\" # comment\n\
                 ServerAliveInterval=1m30s\nServerAliveCountMax 5\nStrictHostKeyChecking \
                 accept-new\nIdentitiesOnly yes\n",
                "web",
            )
            .expect("resolve");
        assert_eq!(s.hostname.as_deref(), Some("example.org"));
        assert_eq!(s.identity_files, vec![fx.home().join("my keys/id")]);
        assert_eq!(s.server_alive_interval, Some(Duration::from_secs(90)));
        assert_eq!(s.server_alive_count_max, Some(5));
        assert_eq!(
            s.strict_host_key_checking,
            Some(StrictHostKeyChecking::AcceptNew)
        );
        assert_eq!(s.identities_only, Some(true));
    }

    #[test]
    fn resolve_should_apply_wildcards_and_negation() {
        let fx = Fixture::new();
        let text = "Host *.prod !bastion.prod\n  User ops\nHost web?\n  Port 2200\n";
        let s = fx.resolve(text, "db.prod").expect("resolve");
        assert_eq!(s.user.as_deref(), Some("ops"));
        let s = fx.resolve(text, "bastion.prod").expect("resolve");
        assert_eq!(s.user, None);
        let s = fx.resolve(text, "web1").expect("resolve");
        assert_eq!(s.port, Some(2200));
        // `Host` compares case-sensitively, like OpenSSH.
        let s = fx.resolve(text, "WEB1").expect("resolve");
        assert_eq!(s.port, None);
        let s = fx
            .resolve(
                "Match originalhost WEB1
  Port 7
",
                "web1",
            )
            .expect("resolve");
        assert_eq!(s.port, Some(7));
        let s = fx.resolve(text, "web10").expect("resolve");
        assert_eq!(s.port, None);
    }

    #[test]
    fn resolve_should_follow_includes_with_globs() {
        let fx = Fixture::new();
        fx.write(".ssh/conf.d/10-web.conf", "Host web\n  User fromten\n");
        fx.write(".ssh/conf.d/20-all.conf", "User fromtwenty\nPort 2022\n");
        fx.write(".ssh/conf.d/.hidden.conf", "Port 1\n");
        fx.write("other/abs.conf", "IdentityFile ~/abs_id\n");
        let abs = fx.home().join("other/abs.conf");
        let text = format!(
            "Include conf.d/*.conf\nInclude {}\nInclude missing.conf\nHost web\n  Port 9\n",
            abs.display()
        );
        let s = fx.resolve(&text, "web").expect("resolve");
        assert_eq!(s.user.as_deref(), Some("fromten"));
        // The included `Host web` block does not leak: 20-all.conf applies to all.
        assert_eq!(s.port, Some(2022));
        assert_eq!(s.identity_files, vec![fx.home().join("abs_id")]);
    }

    #[test]
    fn resolve_should_scope_include_to_enclosing_block() {
        let fx = Fixture::new();
        fx.write(".ssh/inc.conf", "Port 1234\nHost *\n  User inc\n");
        let text = "Host other\n  Include inc.conf\nHost web\n  HostName web.example\n";
        let s = fx.resolve(text, "web").expect("resolve");
        assert_eq!(s.port, None);
        assert_eq!(s.user, None);
        assert_eq!(s.hostname.as_deref(), Some("web.example"));
    }

    #[test]
    fn resolve_should_reject_include_loops() {
        let fx = Fixture::new();
        let path = fx.write(".ssh/loop.conf", "Include loop.conf\n");
        let err = resolve_inner(&[(path.clone(), Level::User)], "h", &fx.ctx())
            .expect_err("loop must fail");
        match err {
            SshConfigError::IncludeDepth { path: p, line } => {
                assert_eq!(p, path);
                assert_eq!(line, 1);
            }
            other => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn resolve_should_match_host_after_hostname_substitution() {
        let fx = Fixture::new();
        let text = "Host web\n  HostName %h.internal.example\n\
                    Match host *.internal.example\n  User internal\n\
                    Match originalhost web\n  Port 2201\n\
                    Match user internal\n  IdentitiesOnly yes\n\
                    Match localuser alice !host nomatch\n  ConnectTimeout 3\n";
        let s = fx.resolve(text, "web").expect("resolve");
        assert_eq!(s.hostname.as_deref(), Some("web.internal.example"));
        assert_eq!(s.user.as_deref(), Some("internal"));
        assert_eq!(s.port, Some(2201));
        assert_eq!(s.identities_only, Some(true));
        assert_eq!(s.connect_timeout, Some(Duration::from_secs(3)));
        assert!(s.warnings.is_empty());
    }

    #[test]
    fn resolve_should_warn_and_skip_unsupported_match() {
        let fx = Fixture::new();
        let text = "Match exec \"true\"\n  Port 1\nMatch all\n  Port 2\n";
        let s = fx.resolve(text, "web").expect("resolve");
        assert_eq!(s.port, Some(2));
        assert_eq!(s.warnings.len(), 1);
        assert_eq!(s.warnings[0].line, 1);
    }

    #[test]
    fn resolve_should_expand_tokens() {
        let fx = Fixture::new();
        let text = "Host web\n  HostName web.example\n  User bob\n  Port 2022\n  \
                    IdentityFile ~/.ssh/%r@%h-%p\n  IdentityFile %d/keys/%u-%n%%\n  \
                    UserKnownHostsFile ~/.ssh/kh_%h /tmp/kh2\n  IdentityAgent ~/agent.sock\n";
        let s = fx.resolve(text, "web").expect("resolve");
        let home = fx.home();
        assert_eq!(
            s.identity_files,
            vec![
                home.join(".ssh/bob@web.example-2022"),
                home.join("keys/alice-web%"),
            ]
        );
        assert_eq!(
            s.user_known_hosts_files,
            vec![home.join(".ssh/kh_web.example"), PathBuf::from("/tmp/kh2")]
        );
        assert_eq!(
            s.identity_agent,
            Some(home.join("agent.sock").to_string_lossy().into_owned())
        );
        assert_eq!(
            s.global_known_hosts_files,
            vec![
                PathBuf::from("/etc/ssh/ssh_known_hosts"),
                PathBuf::from("/etc/ssh/ssh_known_hosts2")
            ]
        );
    }

    #[test]
    fn resolve_should_reject_unknown_token_with_location() {
        let fx = Fixture::new();
        let err = fx
            .resolve("\n\nIdentityFile ~/.ssh/%Z\n", "web")
            .expect_err("bad token");
        assert!(
            matches!(err, SshConfigError::InvalidValue { line: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn resolve_should_lowercase_the_host_name_and_host_key_alias() {
        let fx = Fixture::new();
        let text = "Host Web*\n  HostName %h.Example.COM\n  HostKeyAlias MyAlias\n  \
                    IdentityFile ~/.ssh/%h-%n-%k\n";
        let s = fx.resolve(text, "WebOne").expect("resolve");
        assert_eq!(s.hostname.as_deref(), Some("webone.example.com"));
        assert_eq!(s.host_key_alias.as_deref(), Some("myalias"));
        assert_eq!(
            s.identity_files,
            [fx.home().join(".ssh/webone.example.com-WebOne-myalias")]
        );
        let s = fx
            .resolve("UserKnownHostsFile /k/%h-%k\n", "UPPER")
            .expect("resolve");
        assert_eq!(s.user_known_hosts_files, [PathBuf::from("/k/upper-UPPER")]);
    }

    #[test]
    fn resolve_should_make_a_second_pass_for_match_final() {
        let fx = Fixture::new();
        let text = "Match final\n  User final-user\n\
                    Match canonical\n  Port 2345\n\
                    Host f*\n  User first-pass\n  HostName %h.example\n\
                    Match host foo.example final\n  IdentityFile ~/.ssh/second\n\
                    Host *\n  IdentityFile ~/.ssh/first\n";
        let s = fx.resolve(text, "foo").expect("resolve");
        // First pass: `final` and `canonical` do not match, `Host f*` sets the user.
        assert_eq!(s.user.as_deref(), Some("first-pass"));
        // Second pass: they do, and `Match host` sees the HostName of the first pass.
        assert_eq!(s.port, Some(2345));
        let ssh = fx.home().join(".ssh");
        assert_eq!(s.identity_files, [ssh.join("first"), ssh.join("second")]);
        let s = fx.resolve(text, "bar").expect("resolve");
        assert_eq!(s.user.as_deref(), Some("final-user"));
        // Without `Match final` there is no second pass, and `canonical` never matches.
        let s = fx
            .resolve("Match canonical\n  Port 2345\n", "bar")
            .expect("resolve");
        assert_eq!(s.port, None);
    }

    #[test]
    fn resolve_should_list_a_repeated_identity_file_once() {
        let fx = Fixture::new();
        let text = "Host a\n  IdentityFile ~/.ssh/k\n  CertificateFile ~/c\n\
                    Host *\n  IdentityFile ~/.ssh/k\n  IdentityFile ~/.ssh/j\n  CertificateFile ~/c\n";
        let s = fx.resolve(text, "a").expect("resolve");
        let home = fx.home();
        assert_eq!(s.identity_files, [home.join(".ssh/k"), home.join(".ssh/j")]);
        assert_eq!(s.certificate_files, [home.join("c")]);
    }

    #[test]
    fn resolve_should_expand_the_connection_hash() {
        let fx = Fixture::new();
        let text = "Host h\n  HostName Example.org\n  User u\n  Port 2200\n  \
                    UserKnownHostsFile /k/%C\n";
        let s = fx.resolve(text, "h").expect("resolve");
        let node = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        use sha1::Digest;
        let hash: String = sha1::Sha1::digest(format!("{node}example.org2200u"))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            s.user_known_hosts_files,
            [PathBuf::from(format!("/k/{hash}"))]
        );
    }

    #[test]
    fn resolve_should_use_global_known_hosts_files_as_written() {
        let fx = Fixture::new();
        let s = fx
            .resolve("GlobalKnownHostsFile ~/g %d/h\n", "a")
            .expect("resolve");
        assert_eq!(
            s.global_known_hosts_files,
            [PathBuf::from("~/g"), PathBuf::from("%d/h")]
        );
    }

    #[test]
    fn resolve_should_accumulate_identity_files() {
        let fx = Fixture::new();
        let text = "Host web\n  IdentityFile ~/.ssh/a\nHost *\n  IdentityFile ~/.ssh/b\n  \
                    CertificateFile ~/.ssh/b-cert.pub\nHost nope\n  IdentityFile ~/.ssh/c\n";
        let s = fx.resolve(text, "web").expect("resolve");
        let ssh = fx.home().join(".ssh");
        assert_eq!(s.identity_files, vec![ssh.join("a"), ssh.join("b")]);
        assert_eq!(s.certificate_files, vec![ssh.join("b-cert.pub")]);
    }

    #[test]
    fn resolve_should_treat_proxy_jump_none_as_first_value() {
        let fx = Fixture::new();
        let text = "Host inner\n  ProxyJump none\nHost *\n  ProxyJump jump@bastion:2222\n";
        let s = fx.resolve(text, "inner").expect("resolve");
        assert_eq!(s.proxy_jump, None);
        let s = fx.resolve(text, "outer").expect("resolve");
        assert_eq!(s.proxy_jump.as_deref(), Some("jump@bastion:2222"));
        let s = fx
            .resolve("ProxyCommand nc %h %p\nProxyJump b\n", "x")
            .expect("resolve");
        assert_eq!(s.proxy_command.as_deref(), Some("nc %h %p"));
        assert_eq!(s.proxy_jump, None);
    }

    #[test]
    fn resolve_should_map_known_hosts_none_to_empty() {
        let fx = Fixture::new();
        let s = fx
            .resolve("UserKnownHostsFile none\nGlobalKnownHostsFile none\n", "x")
            .expect("resolve");
        assert!(s.known_hosts_files().is_empty());
        let s = fx.resolve("", "x").expect("resolve");
        assert_eq!(
            s.user_known_hosts_files,
            vec![
                fx.home().join(".ssh/known_hosts"),
                fx.home().join(".ssh/known_hosts2")
            ]
        );
    }

    #[test]
    fn resolve_should_report_bad_values_with_file_and_line() {
        let fx = Fixture::new();
        let err = fx
            .resolve("# comment\nHost other\n  Port 70000\n", "web")
            .expect_err("bad port");
        let path = fx.home().join(".ssh/config");
        match &err {
            SshConfigError::InvalidValue {
                path: p,
                line,
                keyword,
                ..
            } => {
                assert_eq!(p, &path);
                assert_eq!(*line, 3);
                assert_eq!(keyword, "Port");
            }
            other => panic!("unexpected error {other}"),
        }
        assert!(err.to_string().contains(&format!("{}:3", path.display())));
        let err = fx.resolve("User \"open\n", "web").expect_err("quote");
        assert!(matches!(
            err,
            SshConfigError::UnterminatedQuote { line: 1, .. }
        ));
        let err = fx.resolve("Port\n", "web").expect_err("missing");
        assert!(matches!(
            err,
            SshConfigError::MissingArgument { line: 1, .. }
        ));
        let err = fx.resolve("Port 22 23\n", "web").expect_err("extra");
        assert!(matches!(err, SshConfigError::ExtraArgument { line: 1, .. }));
        let err = fx
            .resolve("ConnectTimeout soon\n", "web")
            .expect_err("time");
        assert!(matches!(err, SshConfigError::InvalidValue { line: 1, .. }));
        let err = fx.resolve("ProxyJump a@:x\n", "web").expect_err("jump");
        assert!(matches!(err, SshConfigError::InvalidValue { line: 1, .. }));
    }

    #[test]
    fn resolve_should_ignore_unknown_keywords_and_missing_files() {
        let fx = Fixture::new();
        let s = fx
            .resolve("FrobnicateLevel 11\nForwardAgent yes\nPort 23\n", "x")
            .expect("resolve");
        assert_eq!(s.port, Some(23));
        let s = resolve_from(&[fx.home().join("nope")], "x", fx.home()).expect("missing");
        assert_eq!(s.port, None);
    }

    #[test]
    fn resolve_should_read_user_file_before_global() {
        let fx = Fixture::new();
        let user = fx.write("u.conf", "Port 1\n");
        let global = fx.write("g.conf", "Port 2\nUser g\n");
        let s = resolve_from(&[user, global], "x", fx.home()).expect("resolve");
        assert_eq!(s.port, Some(1));
        assert_eq!(s.user.as_deref(), Some("g"));
    }

    #[test]
    fn parse_jump_spec_should_parse_hops() {
        let hops =
            parse_jump_spec("user@h1:2222,h2,ssh://u%40x@[::1]:23/,[fe80::1],::1").expect("parse");
        assert_eq!(
            hops,
            vec![
                JumpHost {
                    user: Some("user".into()),
                    host: "h1".into(),
                    port: Some(2222)
                },
                JumpHost {
                    user: None,
                    host: "h2".into(),
                    port: None
                },
                JumpHost {
                    user: Some("u@x".into()),
                    host: "::1".into(),
                    port: Some(23)
                },
                JumpHost {
                    user: None,
                    host: "fe80::1".into(),
                    port: None
                },
                JumpHost {
                    user: None,
                    host: "::1".into(),
                    port: None
                },
            ]
        );
        assert_eq!(parse_jump_spec("none").expect("none"), Vec::new());
    }

    #[test]
    fn parse_jump_spec_should_reject_malformed_hops() {
        for bad in [
            "",
            "h1,,h2",
            "h:0",
            "h:99999",
            "@h",
            "u@",
            "[::1",
            "ssh://h/path",
            "a b",
        ] {
            assert!(parse_jump_spec(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn wildcard_match_should_handle_stars_and_questions() {
        assert!(wildcard_match("abc", "a*"));
        assert!(wildcard_match("abc", "*c"));
        assert!(wildcard_match("abc", "a?c"));
        assert!(wildcard_match("", "*"));
        assert!(wildcard_match("a.b.c", "*.*.c"));
        assert!(!wildcard_match("abc", "a?"));
        assert!(!wildcard_match("abc", "*d"));
        assert_eq!(match_pattern_list("web1", "db*,web*"), ListMatch::Positive);
        assert_eq!(match_pattern_list("web1", "*,!web1"), ListMatch::Negated);
        assert_eq!(match_pattern_list("web1", "db"), ListMatch::None);
    }
}
