//! Reading configuration lines: files, keywords, argument splitting and time values.

use std::path::Path;
use std::time::Duration;
use std::{fs, io};

use super::SshConfigError;

pub(super) fn read_config(path: &Path) -> Result<Option<String>, SshConfigError> {
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
pub(super) fn split_args(s: &str) -> Option<Vec<String>> {
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
pub(super) fn split_keyword(line: &str) -> (&str, &str) {
    let end = line.find([' ', '\t', '=']).unwrap_or(line.len());
    let (keyword, rest) = line.split_at(end);
    let rest = rest.trim_start_matches([' ', '\t']);
    let rest = rest.strip_prefix('=').unwrap_or(rest);
    (keyword, rest.trim_start_matches([' ', '\t']))
}

/// Parses an OpenSSH time value: seconds, or a sequence of numbers with
/// `s`, `m`, `h`, `d` or `w` suffixes (e.g. `1h30m`).
pub(super) fn parse_time(value: &str) -> Option<Duration> {
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
