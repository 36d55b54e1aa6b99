//! The single pass over the configuration files: `Host` and `Match` blocks, `Include`, and the
//! first value obtained for each option.

use std::path::{Path, PathBuf};
use std::{fs, io};

use super::expand::{expand_hostname, expand_tilde};
use super::lex::{parse_time, read_config, split_args, split_keyword};
use super::pattern::{ListMatch, match_pattern_list, wildcard_match};
use super::{
    ConfigWarning, Context, GLOBAL_CONFIG_DIR, Level, Located, MAX_INCLUDE_DEPTH, Proxy, Raw,
    SshConfigError, StrictHostKeyChecking, parse_jump_spec, parse_port,
};

pub(super) struct Parser<'a> {
    pub(super) alias: &'a str,
    pub(super) ctx: &'a Context,
    pub(super) raw: Raw,
    /// Whether this is OpenSSH's second ("final") pass, where `Match final` and
    /// `Match canonical` match.
    pub(super) final_pass: bool,
    /// Whether a `Match final` was read, which asks for that second pass.
    pub(super) wants_final_pass: bool,
}

/// Where a line is: for error construction.
pub(super) struct Pos<'a> {
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

fn parse_yes_no(pos: &Pos<'_>, value: &str) -> Result<bool, SshConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(pos.invalid(value, "expected yes or no")),
    }
}

impl Parser<'_> {
    pub(super) fn read_file(
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
        if self.final_pass {
            // Said in the first pass already.
            return;
        }
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
                // As OpenSSH: both match only in the final pass, which `final` asks for (we
                // never canonicalise, so only `final` leads to one).
                "final" | "canonical" => {
                    self.wants_final_pass |= criterion == "final";
                    self.final_pass
                }
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
                let list = if keyword == "identityfile" {
                    &mut raw.identity_files
                } else {
                    &mut raw.certificate_files
                };
                // OpenSSH ignores a file already listed (as written, before expansion).
                if active && !list.iter().any(|known| known.value == v) {
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
