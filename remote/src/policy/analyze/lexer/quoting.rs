//! Quoting and expansions inside a word: quotes, `~`, `$…`, backticks, `${…}` operators, ANSI-C
//! strings, and whether brackets and braces expand.

use super::super::*;

impl<'a> Lexer<'a> {
    pub(in crate::policy::analyze) fn single_quoted(&mut self) -> String {
        let rest = self.rest();
        match rest.find('\'') {
            Some(end) => {
                self.pos += end + 1;
                rest.get(..end).unwrap_or("").to_owned()
            }
            None => {
                self.note("unterminated single quote");
                self.pos += rest.len();
                rest.to_owned()
            }
        }
    }

    /// The inside of `"…"` (`closing`), or a here-document body (no closing quote).
    pub(in crate::policy::analyze) fn lex_double_quoted(
        &mut self,
        word: &mut WordBuilder,
        closing: bool,
    ) {
        loop {
            match self.peek() {
                None => {
                    if closing {
                        self.note("unterminated double quote");
                    }
                    return;
                }
                Some('"') if closing => {
                    self.bump();
                    return;
                }
                Some('\\') => {
                    self.bump();
                    match self.peek() {
                        Some(c @ ('$' | '`' | '\\')) => {
                            self.bump();
                            word.lit(c, true);
                        }
                        Some('"') if closing => {
                            self.bump();
                            word.lit('"', true);
                        }
                        Some('\n') => {
                            self.bump();
                        }
                        _ => word.lit('\\', true),
                    }
                }
                Some('$') => self.lex_dollar(word, true),
                Some('`') => self.lex_backtick(word, true),
                Some(c) => {
                    self.bump();
                    word.lit(c, true);
                }
            }
        }
    }

    pub(in crate::policy::analyze) fn lex_tilde(&mut self, word: &mut WordBuilder) {
        self.bump();
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            .unwrap_or(rest.len());
        let user = rest.get(..len).unwrap_or("").to_owned();
        let after = rest.get(len..).and_then(|r| r.chars().next());
        self.pos += len;
        let ends_prefix = match after {
            None | Some('/' | ':') => true,
            Some(c) => is_word_end(c),
        };
        if ends_prefix {
            word.part(Part::Tilde { user });
        } else {
            word.lit('~', false);
            for c in user.chars() {
                word.lit(c, false);
            }
        }
    }

    pub(in crate::policy::analyze) fn lex_dollar(
        &mut self,
        word: &mut WordBuilder,
        in_double_quotes: bool,
    ) {
        self.bump();
        match self.peek() {
            Some('\'') if !in_double_quotes => {
                self.bump();
                let text = self.ansi_c_quoted();
                word.lit_str(&text, true);
            }
            Some('"') if !in_double_quotes => {
                self.bump();
                word.lit_str("", true);
                self.lex_double_quoted(word, true);
            }
            Some('(') if self.peek_at(1) == Some('(') => {
                self.pos += 2;
                self.skip_parens(2);
                word.unknown("arithmetic expansion", Vec::new());
            }
            Some('(') => {
                self.bump();
                let runs = self.nested_list();
                word.unknown("command substitution", runs);
            }
            Some('{') => {
                self.bump();
                let content = self.braced();
                if is_name(&content)
                    || content.chars().all(|c| c.is_ascii_digit()) && !content.is_empty()
                    || matches!(content.as_str(), "@" | "*" | "#" | "?" | "-" | "$" | "!")
                {
                    word.part(Part::Param(content));
                } else {
                    let part = self.parameter_operation(&content);
                    word.part(part);
                }
            }
            Some(c) if c == '_' || c.is_ascii_alphabetic() => {
                let rest = self.rest();
                let len = rest
                    .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
                    .unwrap_or(rest.len());
                let name = rest.get(..len).unwrap_or("").to_owned();
                self.pos += len;
                word.part(Part::Param(name));
            }
            Some(c) if c.is_ascii_digit() || "@*#?-$!".contains(c) => {
                self.bump();
                word.part(Part::Param(c.to_string()));
            }
            _ => word.lit('$', in_double_quotes),
        }
    }

    pub(in crate::policy::analyze) fn lex_backtick(
        &mut self,
        word: &mut WordBuilder,
        in_double_quotes: bool,
    ) {
        self.bump();
        let mut inner = String::new();
        let mut closed = false;
        while let Some(c) = self.bump() {
            match c {
                '`' => {
                    closed = true;
                    break;
                }
                '\\' => match self.peek() {
                    Some(next @ ('$' | '`' | '\\')) => {
                        self.bump();
                        inner.push(next);
                    }
                    Some('"') if in_double_quotes => {
                        self.bump();
                        inner.push('"');
                    }
                    _ => inner.push('\\'),
                },
                c => inner.push(c),
            }
        }
        if !closed {
            self.note("unterminated backquote");
        }
        let runs = self.sub_lex(&inner);
        word.unknown("command substitution", runs);
    }

    /// After `$(` or `<(`: the nested command list up to the matching `)`.
    pub(in crate::policy::analyze) fn nested_list(&mut self) -> Vec<Vec<Token>> {
        if self.depth >= MAX_DEPTH {
            self.skip_parens(1);
            self.note("command substitution nested too deeply (not analysed)");
            return Vec::new();
        }
        self.depth += 1;
        let tokens = self.lex_list(true);
        self.depth -= 1;
        vec![tokens]
    }

    pub(in crate::policy::analyze) fn sub_lex(&mut self, text: &str) -> Vec<Vec<Token>> {
        if self.depth >= MAX_DEPTH {
            self.note("command substitution nested too deeply (not analysed)");
            return Vec::new();
        }
        let mut sub = Lexer::new(text, self.depth + 1);
        let tokens = sub.lex_list(false);
        self.notes.append(&mut sub.notes);
        vec![tokens]
    }

    /// `${…}` with an operator: defaults and alternatives are understood, anything else
    /// (`${X%/*}`, `${#X}`, `${X/a/b}`) is unknown.
    pub(in crate::policy::analyze) fn parameter_operation(&mut self, content: &str) -> Part {
        let name_len = content
            .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
            .unwrap_or(content.len());
        let (name, operation) = content.split_at(name_len);
        let operation = operation.strip_prefix(':').unwrap_or(operation);
        let mut chars = operation.chars();
        let operator = chars.next();
        let operand_text = chars.as_str();
        if !is_name(name) || !matches!(operator, Some('-' | '=' | '?' | '+')) {
            return Part::Unknown {
                what: "parameter expansion",
                runs: self.runs_in(content),
            };
        }
        let operand = match operator {
            Some('?') => None,
            _ if self.depth >= MAX_DEPTH => {
                self.note("parameter expansion nested too deeply (not analysed)");
                return Part::Unknown {
                    what: "parameter expansion",
                    runs: Vec::new(),
                };
            }
            _ => {
                let mut sub = Lexer::new(operand_text, self.depth + 1);
                let word = sub.lex_word(false);
                self.notes.append(&mut sub.notes);
                Some(Box::new(word))
            }
        };
        Part::ParamOr {
            name: name.to_owned(),
            keep_value: operator != Some('+'),
            operand,
            assigns: operator == Some('='),
        }
    }

    /// Command substitutions inside a `${…}` operand.
    pub(in crate::policy::analyze) fn runs_in(&mut self, text: &str) -> Vec<Vec<Token>> {
        if self.depth >= MAX_DEPTH {
            return Vec::new();
        }
        let mut sub = Lexer::new(text, self.depth + 1);
        let mut word = WordBuilder::default();
        sub.lex_double_quoted(&mut word, false);
        self.notes.append(&mut sub.notes);
        word.parts
            .into_iter()
            .flat_map(|part| match part {
                Part::Unknown { runs, .. } => runs,
                _ => Vec::new(),
            })
            .collect()
    }

    /// Skips to the `)` that brings the nesting from `open` to zero, minding quotes.
    pub(in crate::policy::analyze) fn skip_parens(&mut self, open: usize) {
        let mut depth = open;
        while let Some(c) = self.bump() {
            match c {
                '\\' => {
                    self.bump();
                }
                '\'' => {
                    self.single_quoted();
                }
                '"' => {
                    // Not `lex_double_quoted`: that would nest again on `$(`.
                    while let Some(c) = self.bump() {
                        match c {
                            '\\' => {
                                self.bump();
                            }
                            '"' => break,
                            _ => {}
                        }
                    }
                }
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
        self.note("unterminated parenthesis");
    }

    /// After `${`: the content up to the matching `}`.
    pub(in crate::policy::analyze) fn braced(&mut self) -> String {
        let start = self.pos;
        let mut depth = 1usize;
        while let Some(c) = self.bump() {
            match c {
                '\\' => {
                    self.bump();
                }
                '\'' => {
                    self.single_quoted();
                }
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return self.src.get(start..self.pos - 1).unwrap_or("").to_owned();
                    }
                }
                _ => {}
            }
        }
        self.note("unterminated ${");
        self.src.get(start..).unwrap_or("").to_owned()
    }

    /// `$'…'` with bash's escapes; `\xHH` and octal escapes are bytes, so `\xc3\xa9` is `é`.
    pub(in crate::policy::analyze) fn ansi_c_quoted(&mut self) -> String {
        let mut bytes = Vec::new();
        let mut closed = false;
        while let Some(c) = self.bump() {
            let decoded = match c {
                '\'' => {
                    closed = true;
                    break;
                }
                '\\' => match self.bump() {
                    Some('a') => '\x07',
                    Some('b') => '\x08',
                    Some('e' | 'E') => '\x1b',
                    Some('f') => '\x0c',
                    Some('n') => '\n',
                    Some('r') => '\r',
                    Some('t') => '\t',
                    Some('v') => '\x0b',
                    Some('x') => {
                        if let Some(byte) = self.digits(16, 2) {
                            bytes.push(byte as u8);
                            continue;
                        }
                        bytes.extend_from_slice(b"\\x");
                        continue;
                    }
                    Some('u') => self
                        .digits(16, 4)
                        .and_then(char::from_u32)
                        .unwrap_or('\u{fffd}'),
                    Some('U') => self
                        .digits(16, 8)
                        .and_then(char::from_u32)
                        .unwrap_or('\u{fffd}'),
                    Some(d @ '0'..='7') => {
                        let mut value = d.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            match self.peek().and_then(|c| c.to_digit(8)) {
                                Some(digit) => {
                                    self.bump();
                                    value = value * 8 + digit;
                                }
                                None => break,
                            }
                        }
                        bytes.push((value & 0xff) as u8);
                        continue;
                    }
                    Some('c') => match self.bump() {
                        Some(control) => char::from_u32(u32::from(control) & 0x1f).unwrap_or('?'),
                        None => 'c',
                    },
                    Some(other @ ('\\' | '\'' | '"' | '?')) => other,
                    Some(other) => {
                        bytes.push(b'\\');
                        other
                    }
                    None => '\\',
                },
                c => c,
            };
            let mut buf = [0u8; 4];
            bytes.extend_from_slice(decoded.encode_utf8(&mut buf).as_bytes());
        }
        if !closed {
            self.note("unterminated $'");
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub(in crate::policy::analyze) fn digits(&mut self, radix: u32, max: usize) -> Option<u32> {
        let mut value: Option<u32> = None;
        for _ in 0..max {
            match self.peek().and_then(|c| c.to_digit(radix)) {
                Some(digit) => {
                    self.bump();
                    value = Some(
                        value
                            .unwrap_or(0)
                            .saturating_mul(radix)
                            .saturating_add(digit),
                    );
                }
                None => break,
            }
        }
        value
    }

    /// An unquoted `[` is a glob when a `]` closes it within the word.
    pub(in crate::policy::analyze) fn bracket_closes(&mut self) -> bool {
        // The answer holds for every `[` up to where the last scan stopped, which keeps a
        // word of many `[` linear.
        if let Some((until, closes)) = self.bracket_scan
            && self.pos < until
        {
            return closes;
        }
        let mut end = self.pos + 1;
        for c in self.rest().chars().skip(1) {
            if c == ']' || is_word_end(c) {
                self.bracket_scan = Some((end, c == ']'));
                return c == ']';
            }
            end += c.len_utf8();
        }
        self.bracket_scan = Some((end, false));
        false
    }

    /// An unquoted `{` is brace expansion when its `}` encloses a `,` or `..`. Past
    /// [`MAX_LOOKAHEAD`] it is assumed to be one (unknown is the safe side).
    pub(in crate::policy::analyze) fn brace_expands(&self) -> bool {
        let mut depth = 0usize;
        let mut separator = false;
        let mut previous = ' ';
        let mut chars = self.rest().chars().take(MAX_LOOKAHEAD);
        let mut seen = 0usize;
        while let Some(c) = chars.next() {
            seen += 1;
            match c {
                '\\' => {
                    chars.next();
                }
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return separator;
                    }
                }
                ',' if depth == 1 => separator = true,
                '.' if depth == 1 && previous == '.' => separator = true,
                c if is_word_end(c) => return false,
                _ => {}
            }
            previous = c;
        }
        seen >= MAX_LOOKAHEAD
    }
}

/// A here-document delimiter without its quoting.
pub(in crate::policy::analyze) fn dequote(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(open), c) if c == open => quote = None,
            (None | Some('"'), '\\') => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            (_, c) => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Analysis
