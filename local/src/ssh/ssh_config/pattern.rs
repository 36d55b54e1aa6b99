//! `Host`/`Match` patterns: `*` and `?` wildcards and comma-separated lists with `!` negation,
//! as OpenSSH's `match.c` (also used for known_hosts host fields).

/// Matches `text` against one pattern with `*` (any run) and `?` (any one
/// character). Case-sensitive; callers lower-case both sides when needed.
pub fn wildcard_match(text: &str, pattern: &str) -> bool {
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
pub enum ListMatch {
    /// No pattern matched.
    None,
    /// A positive pattern matched and no negated one did.
    Positive,
    /// A negated (`!`) pattern matched.
    Negated,
}

/// Matches `text` against a comma-separated list of patterns, where a
/// matching `!pattern` vetoes the whole list (OpenSSH `match_pattern_list`).
pub fn match_pattern_list(text: &str, list: &str) -> ListMatch {
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
