//! OpenSSH client configuration (`~/.ssh/config`, `/etc/ssh/ssh_config`) resolution.
//!
//! [`resolve`] reads the user file and then the global file and returns the
//! [`HostSettings`] that apply to one destination, following `ssh_config(5)`:
//!
//! * keywords are case-insensitive; `Key Value`, `Key=Value` and quoted values
//!   (`"..."`, `'...'`, backslash escapes) are accepted, and a `#` at the start
//!   of a word begins a comment;
//! * the first value obtained for a single-valued option wins, while
//!   `IdentityFile` and `CertificateFile` accumulate in order;
//! * `Host` patterns (`*`, `?`, `!negation`) are matched against the host name
//!   given on the command line (the alias), case-sensitively as OpenSSH does,
//!   while `Match host` and `Match originalhost` compare case-insensitively;
//! * `Include` resolves relative paths against `~/.ssh` (against `/etc/ssh` for
//!   the global file), supports `*` and `?` in the last path component, and is
//!   limited to [`MAX_INCLUDE_DEPTH`] nested levels;
//! * `%` tokens and a leading `~` are expanded in `HostName`, `IdentityFile`,
//!   `CertificateFile`, `UserKnownHostsFile`, `GlobalKnownHostsFile` and
//!   `IdentityAgent` once the whole configuration has been read, as OpenSSH does.
//!
//! Simplifications compared to OpenSSH:
//!
//! * the configuration is read in a single pass. `Match host` compares against
//!   the `HostName` obtained *so far* (with `%h` substituted), or the alias when
//!   none was set yet; OpenSSH does the same in its first pass but may re-read
//!   the files after canonicalisation. `Match final` is treated as matching
//!   (OpenSSH's final pass would match it) and `Match canonical` never matches
//!   (hostname canonicalisation is not supported);
//! * `Match all`, `host`, `originalhost`, `user` and `localuser` are supported;
//!   `exec`, `localnetwork`, `tagged`, `command`, `version`, `sessiontype` and
//!   unknown criteria never match and produce a [`ConfigWarning`];
//! * the local user name comes from `$USER` (or `$LOGNAME`); the passwd
//!   database is never consulted. `~user` paths are left untouched;
//! * unknown keywords are ignored instead of being an error, and file
//!   ownership and permissions are not checked.

use std::{
    fs, io,
    path::{Path, PathBuf},
    time::Duration,
};

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
    /// `HostName`, with `%h` substituted; `None` means "connect to the alias".
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
    /// Effective `GlobalKnownHostsFile` list.
    pub global_known_hosts_files: Vec<PathBuf>,
    /// `StrictHostKeyChecking`.
    pub strict_host_key_checking: Option<StrictHostKeyChecking>,
    /// `HashKnownHosts`.
    pub hash_known_hosts: Option<bool>,
    /// `HostKeyAlias`: the name to look up in known_hosts instead of the host.
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

/// Matches `text` against one pattern with `*` (any run) and `?` (any one
/// character). Case-sensitive; callers lower-case both sides when needed.
pub(crate) fn wildcard_match(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut ti, mut pi) = (0, 0);
    // Where the last `*` was seen and the text position it currently covers up to.
    let mut star: Option<(usize, usize)> = None;
    while let Some(&tc) = t.get(ti) {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&pc) if pc == '?' || pc == tc => {
                ti += 1;
                pi += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|&c| c == '*')
}

/// Outcome of matching a string against a comma-separated pattern list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListMatch {
    /// No pattern matched.
    None,
    /// A positive pattern matched and no negated one did.
    Positive,
    /// A negated (`!`) pattern matched.
    Negated,
}

/// Matches `text` against a comma-separated list of patterns, where a
/// matching `!pattern` vetoes the whole list (OpenSSH `match_pattern_list`).
pub(crate) fn match_pattern_list(text: &str, list: &str) -> ListMatch {
    let mut result = ListMatch::None;
    for pattern in list.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        if wildcard_match(text, pattern) {
            if negated {
                return ListMatch::Negated;
            }
            result = ListMatch::Positive;
        }
    }
    result
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

struct Parser<'a> {
    alias: &'a str,
    ctx: &'a Context,
    raw: Raw,
}

/// Where a line is: for error construction.
struct Pos<'a> {
    path: &'a Path,
    line: usize,
    keyword: &'a str,
}

impl Pos<'_> {
    fn invalid(&self, value: &str, reason: impl Into<String>) -> SshConfigError {
        SshConfigError::InvalidValue {
            path: self.path.to_path_buf(),
            line: self.line,
            keyword: self.keyword.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }

    fn missing(&self) -> SshConfigError {
        SshConfigError::MissingArgument {
            path: self.path.to_path_buf(),
            line: self.line,
            keyword: self.keyword.to_owned(),
        }
    }

    /// The only argument of a single-valued keyword.
    fn single<'v>(&self, args: &'v [String]) -> Result<&'v str, SshConfigError> {
        match args {
            [] => Err(self.missing()),
            [one] => Ok(one),
            [_, extra, ..] => Err(SshConfigError::ExtraArgument {
                path: self.path.to_path_buf(),
                line: self.line,
                keyword: self.keyword.to_owned(),
                extra: extra.clone(),
            }),
        }
    }

    fn located(&self, value: &str) -> Located {
        Located {
            value: value.to_owned(),
            path: self.path.to_path_buf(),
            line: self.line,
            keyword: self.keyword.to_owned(),
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
    };
    for (file, level) in files {
        parser.read_file(file, *level, true, false, 0)?;
    }
    finish(parser.raw, host, ctx)
}

fn read_config(path: &Path) -> Result<Option<String>, SshConfigError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(source) => Err(SshConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Splits a line's arguments like OpenSSH's `argv_split`: whitespace
/// separates words, quotes group, `\"`, `\'`, `\\` and (unquoted) `\ ` escape,
/// and a word starting with `#` ends the line. `None` on an open quote.
fn split_args(s: &str) -> Option<Vec<String>> {
    let mut args = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        match chars.peek() {
            None | Some('#') => return Some(args),
            Some(_) => {}
        }
        let mut arg = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.peek() {
                    Some(&n @ ('\'' | '"' | '\\')) => {
                        arg.push(n);
                        chars.next();
                    }
                    Some(' ') if quote.is_none() => {
                        arg.push(' ');
                        chars.next();
                    }
                    _ => arg.push('\\'),
                },
                ' ' | '\t' if quote.is_none() => break,
                '"' | '\'' if quote.is_none() => quote = Some(c),
                c if Some(c) == quote => quote = None,
                c => arg.push(c),
            }
        }
        if quote.is_some() {
            return None;
        }
        args.push(arg);
    }
}

/// Splits `Keyword value`, `Keyword=value` or `Keyword = value`.
fn split_keyword(line: &str) -> (&str, &str) {
    let end = line.find([' ', '\t', '=']).unwrap_or(line.len());
    let (keyword, rest) = line.split_at(end);
    let rest = rest.trim_start_matches([' ', '\t']);
    let rest = rest.strip_prefix('=').unwrap_or(rest);
    (keyword, rest.trim_start_matches([' ', '\t']))
}

fn parse_yes_no(pos: &Pos<'_>, value: &str) -> Result<bool, SshConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(pos.invalid(value, "expected yes or no")),
    }
}

/// Parses an OpenSSH time value: seconds, or a sequence of numbers with
/// `s`, `m`, `h`, `d` or `w` suffixes (e.g. `1h30m`).
fn parse_time(value: &str) -> Option<Duration> {
    if value.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in value.chars() {
        if let Some(d) = c.to_digit(10) {
            number = Some(
                number
                    .unwrap_or(0)
                    .checked_mul(10)?
                    .checked_add(u64::from(d))?,
            );
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        total = total.checked_add(number.take()?.checked_mul(unit)?)?;
    }
    if let Some(seconds) = number {
        total = total.checked_add(seconds)?;
    }
    Some(Duration::from_secs(total))
}

impl Parser<'_> {
    fn read_file(
        &mut self,
        path: &Path,
        level: Level,
        initially_active: bool,
        never_match: bool,
        depth: usize,
    ) -> Result<(), SshConfigError> {
        let Some(text) = read_config(path)? else {
            return Ok(());
        };
        let mut active = initially_active;
        for (index, line) in text.split('\n').enumerate() {
            let line_no = index + 1;
            let line = line.trim_matches([' ', '\t', '\r', '\x0c']);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, rest) = split_keyword(line);
            if keyword.is_empty() {
                continue;
            }
            let args = split_args(rest).ok_or_else(|| SshConfigError::UnterminatedQuote {
                path: path.to_path_buf(),
                line: line_no,
            })?;
            let pos = Pos {
                path,
                line: line_no,
                keyword,
            };
            let lower = keyword.to_ascii_lowercase();
            match lower.as_str() {
                "host" => active = self.host_line(&pos, &args, never_match)?,
                "match" => active = self.match_line(&pos, &args, never_match)?,
                "include" => {
                    if args.is_empty() {
                        return Err(pos.missing());
                    }
                    if depth >= MAX_INCLUDE_DEPTH {
                        return Err(SshConfigError::IncludeDepth {
                            path: path.to_path_buf(),
                            line: line_no,
                        });
                    }
                    for arg in &args {
                        for file in self.include_targets(&pos, arg, level)? {
                            self.read_file(
                                &file,
                                level,
                                active,
                                never_match || !active,
                                depth + 1,
                            )?;
                        }
                    }
                }
                _ => self.option(&pos, &lower, rest, &args, active)?,
            }
        }
        Ok(())
    }

    fn warn(&mut self, pos: &Pos<'_>, message: String) {
        tracing::warn!(path = %pos.path.display(), line = pos.line, "ssh config: {message}");
        self.raw.warnings.push(ConfigWarning {
            path: pos.path.to_path_buf(),
            line: pos.line,
            message,
        });
    }

    fn host_line(
        &self,
        pos: &Pos<'_>,
        args: &[String],
        never_match: bool,
    ) -> Result<bool, SshConfigError> {
        if args.is_empty() {
            return Err(pos.missing());
        }
        if never_match {
            return Ok(false);
        }
        let mut active = false;
        for arg in args {
            let (negated, pattern) = match arg.strip_prefix('!') {
                Some(p) => (true, p),
                None => (false, arg.as_str()),
            };
            if wildcard_match(self.alias, pattern) {
                if negated {
                    return Ok(false);
                }
                active = true;
            }
        }
        Ok(active)
    }

    fn match_line(
        &mut self,
        pos: &Pos<'_>,
        args: &[String],
        never_match: bool,
    ) -> Result<bool, SshConfigError> {
        if args.is_empty() {
            return Err(pos.missing());
        }
        let mut result = true;
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let (negated, criterion) = match arg.strip_prefix('!') {
                Some(c) => (true, c.to_ascii_lowercase()),
                None => (false, arg.to_ascii_lowercase()),
            };
            let matched = match criterion.as_str() {
                "all" => true,
                "final" => true,
                "canonical" => false,
                _ => {
                    let Some(value) = iter.next() else {
                        return Err(pos.invalid(arg, "match criterion needs an argument"));
                    };
                    let host_patterns = value.to_ascii_lowercase();
                    match criterion.as_str() {
                        "host" => {
                            let current = self.current_host();
                            match_pattern_list(&current, &host_patterns) == ListMatch::Positive
                        }
                        "originalhost" => {
                            match_pattern_list(&self.alias.to_ascii_lowercase(), &host_patterns)
                                == ListMatch::Positive
                        }
                        "user" => self
                            .raw
                            .user
                            .as_deref()
                            .or(self.ctx.local_user.as_deref())
                            .is_some_and(|u| match_pattern_list(u, value) == ListMatch::Positive),
                        "localuser" => {
                            self.ctx.local_user.as_deref().is_some_and(|u| {
                                match_pattern_list(u, value) == ListMatch::Positive
                            })
                        }
                        _ => {
                            if result && !never_match {
                                self.warn(
                                    pos,
                                    format!(
                                        "Match criterion {criterion:?} is not supported; \
                                         treating the block as not matching"
                                    ),
                                );
                            }
                            // Unsupported criteria never match, even negated.
                            result = false;
                            continue;
                        }
                    }
                }
            };
            if matched == negated {
                result = false;
            }
        }
        Ok(result && !never_match)
    }

    /// The host `Match host` compares against: the `HostName` obtained so
    /// far with `%h` substituted, else the alias.
    fn current_host(&self) -> String {
        let host = match &self.raw.hostname {
            Some(h) => expand_hostname(&h.value, self.alias).unwrap_or_else(|| h.value.clone()),
            None => self.alias.to_owned(),
        };
        host.to_ascii_lowercase()
    }

    fn include_targets(
        &mut self,
        pos: &Pos<'_>,
        arg: &str,
        level: Level,
    ) -> Result<Vec<PathBuf>, SshConfigError> {
        let expanded = expand_tilde(arg, &self.ctx.home);
        let path = if expanded.is_absolute() {
            expanded
        } else {
            match level {
                Level::User => self.ctx.home.join(".ssh").join(expanded),
                Level::Global => Path::new(GLOBAL_CONFIG_DIR).join(expanded),
            }
        };
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Ok(Vec::new());
        };
        let name = name.to_string_lossy().into_owned();
        let has_glob = |s: &str| s.contains(['*', '?']);
        if has_glob(&dir.to_string_lossy()) {
            self.warn(
                pos,
                format!(
                    "Include {arg:?}: wildcards are supported only in the last path \
                     component; ignored"
                ),
            );
            return Ok(Vec::new());
        }
        if !has_glob(&name) {
            return Ok(vec![path]);
        }
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(Vec::new());
            }
            Err(source) => {
                return Err(SshConfigError::Read {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        };
        let mut matches: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| {
                let file_name = e.file_name();
                let file_name = file_name.to_string_lossy();
                (!file_name.starts_with('.') || name.starts_with('.'))
                    && wildcard_match(&file_name, &name)
                    && e.path().is_file()
            })
            .map(|e| e.path())
            .collect();
        matches.sort();
        Ok(matches)
    }

    fn option(
        &mut self,
        pos: &Pos<'_>,
        keyword: &str,
        rest: &str,
        args: &[String],
        active: bool,
    ) -> Result<(), SshConfigError> {
        let raw = &mut self.raw;
        match keyword {
            "hostname" => {
                let v = pos.single(args)?;
                if active && raw.hostname.is_none() {
                    raw.hostname = Some(pos.located(v));
                }
            }
            "user" => {
                let v = pos.single(args)?;
                if active && raw.user.is_none() {
                    raw.user = Some(v.to_owned());
                }
            }
            "port" => {
                let v = pos.single(args)?;
                let port = parse_port(v).map_err(|e| pos.invalid(v, e))?;
                if active && raw.port.is_none() {
                    raw.port = Some(port);
                }
            }
            "identityfile" | "certificatefile" => {
                let v = pos.single(args)?;
                if active {
                    let list = if keyword == "identityfile" {
                        &mut raw.identity_files
                    } else {
                        &mut raw.certificate_files
                    };
                    list.push(pos.located(v));
                }
            }
            "identitiesonly" => {
                let v = parse_yes_no(pos, pos.single(args)?)?;
                if active && raw.identities_only.is_none() {
                    raw.identities_only = Some(v);
                }
            }
            "hashknownhosts" => {
                let v = parse_yes_no(pos, pos.single(args)?)?;
                if active && raw.hash_known_hosts.is_none() {
                    raw.hash_known_hosts = Some(v);
                }
            }
            "proxyjump" => {
                let v = pos.single(args)?;
                let value = if v.eq_ignore_ascii_case("none") {
                    None
                } else {
                    parse_jump_spec(v).map_err(|e| pos.invalid(v, e.to_string()))?;
                    Some(v.to_owned())
                };
                if active && raw.proxy.is_none() {
                    raw.proxy = Some(Proxy::Jump(value));
                }
            }
            "proxycommand" => {
                if args.is_empty() {
                    return Err(pos.missing());
                }
                // The command is the rest of the line, unsplit, as in OpenSSH.
                let value = (!rest.eq_ignore_ascii_case("none")).then(|| rest.to_owned());
                if active && raw.proxy.is_none() {
                    raw.proxy = Some(Proxy::Command(value));
                }
            }
            "userknownhostsfile" | "globalknownhostsfile" => {
                if args.is_empty() {
                    return Err(pos.missing());
                }
                let slot = if keyword == "userknownhostsfile" {
                    &mut raw.user_known_hosts
                } else {
                    &mut raw.global_known_hosts
                };
                if active && slot.is_none() {
                    *slot = Some(args.iter().map(|a| pos.located(a)).collect());
                }
            }
            "stricthostkeychecking" => {
                let v = pos.single(args)?;
                let value = match v.to_ascii_lowercase().as_str() {
                    "yes" | "true" => StrictHostKeyChecking::Yes,
                    "no" | "false" | "off" => StrictHostKeyChecking::No,
                    "ask" => StrictHostKeyChecking::Ask,
                    "accept-new" => StrictHostKeyChecking::AcceptNew,
                    _ => return Err(pos.invalid(v, "expected yes, no, ask or accept-new")),
                };
                if active && raw.strict_host_key_checking.is_none() {
                    raw.strict_host_key_checking = Some(value);
                }
            }
            "hostkeyalias" => {
                let v = pos.single(args)?;
                if active && raw.host_key_alias.is_none() {
                    raw.host_key_alias = Some(v.to_owned());
                }
            }
            "connecttimeout" | "serveraliveinterval" => {
                let v = pos.single(args)?;
                let value = parse_time(v).ok_or_else(|| pos.invalid(v, "invalid time value"))?;
                let slot = if keyword == "connecttimeout" {
                    &mut raw.connect_timeout
                } else {
                    &mut raw.server_alive_interval
                };
                if active && slot.is_none() {
                    *slot = Some(value);
                }
            }
            "serveralivecountmax" => {
                let v = pos.single(args)?;
                let value: u32 = v
                    .parse()
                    .map_err(|_| pos.invalid(v, "expected a non-negative integer"))?;
                if active && raw.server_alive_count_max.is_none() {
                    raw.server_alive_count_max = Some(value);
                }
            }
            "identityagent" => {
                let v = pos.single(args)?;
                if active && raw.identity_agent.is_none() {
                    raw.identity_agent = Some(pos.located(v));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Expands a leading `~` or `~/` to `home`; anything else is returned as is.
fn expand_tilde(value: &str, home: &Path) -> PathBuf {
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
fn expand_hostname(value: &str, alias: &str) -> Option<String> {
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

fn finish(raw: Raw, alias: &str, ctx: &Context) -> Result<HostSettings, SshConfigError> {
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

#[cfg(test)]
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
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
