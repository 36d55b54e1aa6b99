//! POSIX shell quoting for every argument of a remote command.
//!
//! SSH has no argv: an exec request carries one string that the remote user's login shell
//! parses (`$SHELL -c "<string>"`). Anything we interpolate into that string must therefore be
//! quoted, or a path with a space, `;` or `$(…)` would be split or executed. Single quotes are
//! used because nothing is special inside them except the quote itself, which is written as
//! `'\''`.

use std::borrow::Cow;

/// Quotes `arg` for a POSIX shell. Strings made only of safe characters are returned as is.
pub fn sh(arg: &str) -> Cow<'_, str> {
    let safe = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b));
    if safe {
        return Cow::Borrowed(arg);
    }
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    Cow::Owned(out)
}

/// Quotes and joins several arguments.
pub fn join<'a>(args: impl IntoIterator<Item = &'a str>) -> String {
    args.into_iter().map(sh).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sh_should_leave_safe_words_alone() {
        assert_eq!(
            sh("/home/u/.opencode-remote/bin/stub"),
            "/home/u/.opencode-remote/bin/stub"
        );
        assert_eq!(sh("--stdio"), "--stdio");
    }

    #[test]
    fn sh_should_round_trip_hostile_strings_through_a_real_shell() {
        let cases = [
            "",
            " ",
            "a b",
            "it's",
            "'",
            "''",
            "$(touch /tmp/pwned)",
            "`id`",
            "a;b|c&d",
            "new\nline",
            "tab\there",
            "back\\slash",
            "*?[x]",
            "~",
            "~/x",
            "-n",
            "é ü 漢字",
            "\"double\"",
            "!bang",
        ];
        for case in cases {
            let script = format!("printf '%s' {}", sh(case));
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .output()
                .unwrap();
            assert!(out.status.success(), "{case:?}");
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                case,
                "script: {script}"
            );
        }
    }

    #[test]
    fn join_should_quote_each_argument() {
        assert_eq!(join(["mv", "a b", "c"]), "mv 'a b' c");
    }
}
