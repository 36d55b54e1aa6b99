//! The tokeniser: a command line read the way bash reads it (words with their quoting,
//! operators, redirections, here-documents), enough to see which paths it names.

mod quoting;

use quoting::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::policy::analyze) enum Token {
    Word(Word),
    Op(Op),
    /// A redirection operator; the target is the next word.
    Redirect(Redirect),
    Heredoc(Heredoc),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::policy::analyze) enum Op {
    /// `;` or a newline.
    Seq,
    /// `;;`, `;&`, `;;&` (end of a `case` item).
    CaseEnd,
    /// `&`
    Background,
    /// `&&`
    And,
    /// `||`
    Or,
    /// `|` or `|&`
    Pipe,
    /// `(`
    Open,
    /// `)`
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::policy::analyze) enum Redirect {
    /// The target is a file written: `>`, `>>`, `>|`, `&>`, `&>>`.
    File,
    /// The target is a file read: `<`, `<>`.
    Input,
    /// `<&`, `>&`: a file descriptor (or `-`), else a file (bash's `>&file`).
    Dup,
    /// `<<<`: the target is data.
    HereString,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(in crate::policy::analyze) struct Heredoc {
    pub(in crate::policy::analyze) body: String,
    /// Unquoted delimiter: `$…` and `` `…` `` in the body are expanded.
    pub(in crate::policy::analyze) expand: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(in crate::policy::analyze) struct Word {
    /// As written.
    pub(in crate::policy::analyze) raw: String,
    pub(in crate::policy::analyze) parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::policy::analyze) enum Part {
    Lit {
        text: String,
        quoted: bool,
    },
    /// An unquoted `~` or `~user` (empty `user` for `$HOME`).
    Tilde {
        user: String,
    },
    /// `$NAME`, `${NAME}`, `$1`, `$@`, …
    Param(String),
    /// `${NAME-WORD}`, `${NAME:=WORD}`, `${NAME:?…}`, `${NAME:+WORD}`: the value of `NAME`
    /// (when `keep_value`), `WORD`, or (without `keep_value`) the empty string.
    ParamOr {
        name: String,
        keep_value: bool,
        operand: Option<Box<Word>>,
        /// `=` and `:=` also assign `NAME`.
        assigns: bool,
    },
    /// A value only known at run time. `runs` are command lists executed to produce it.
    Unknown {
        what: &'static str,
        runs: Vec<Vec<Token>>,
    },
}

impl Word {
    /// The word as written, shortened for notes.
    pub(in crate::policy::analyze) fn shown(&self) -> String {
        const MAX: usize = 80;
        match self.raw.char_indices().nth(MAX) {
            Some((end, _)) => format!("{}…", self.raw.get(..end).unwrap_or("")),
            None => self.raw.clone(),
        }
    }

    /// The text when every part is literal.
    pub(in crate::policy::analyze) fn literal(&self) -> Option<String> {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                Part::Lit { text: lit, .. } => text.push_str(lit),
                _ => return None,
            }
        }
        Some(text)
    }

    /// The word when it is one unquoted literal (reserved words must be unquoted).
    pub(in crate::policy::analyze) fn keyword(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [
                Part::Lit {
                    text,
                    quoted: false,
                },
            ] => Some(text),
            _ => None,
        }
    }

    /// `NAME` of a `NAME=…` or `NAME+=…` assignment word, and whether it appends.
    pub(in crate::policy::analyze) fn assignment(&self) -> Option<(&str, bool)> {
        let Some(Part::Lit {
            text,
            quoted: false,
        }) = self.parts.first()
        else {
            return None;
        };
        let eq = text.find('=')?;
        let name = text.get(..eq)?;
        let (name, append) = match name.strip_suffix('+') {
            Some(name) => (name, true),
            None => (name, false),
        };
        is_name(name).then_some((name, append))
    }
}

pub(in crate::policy::analyze) fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[derive(Default)]
pub(in crate::policy::analyze) struct WordBuilder {
    pub(in crate::policy::analyze) parts: Vec<Part>,
    /// The last character pushed, when it was an unquoted literal.
    pub(in crate::policy::analyze) last_unquoted: Option<char>,
    /// The word so far is `NAME=` (bash expands `~` after its `=` and `:`).
    pub(in crate::policy::analyze) assignment_like: bool,
    pub(in crate::policy::analyze) seen_eq: bool,
}

impl WordBuilder {
    pub(in crate::policy::analyze) fn lit(&mut self, c: char, quoted: bool) {
        if !quoted && c == '=' && !self.seen_eq {
            self.seen_eq = true;
            self.assignment_like = match self.parts.as_slice() {
                [
                    Part::Lit {
                        text,
                        quoted: false,
                    },
                ] => is_name(text.strip_suffix('+').unwrap_or(text)),
                _ => false,
            };
        }
        self.last_unquoted = (!quoted).then_some(c);
        if let Some(Part::Lit { text, quoted: q }) = self.parts.last_mut()
            && *q == quoted
        {
            text.push(c);
            return;
        }
        self.parts.push(Part::Lit {
            text: c.to_string(),
            quoted,
        });
    }

    pub(in crate::policy::analyze) fn lit_str(&mut self, text: &str, quoted: bool) {
        if text.is_empty() {
            // `''` and `""` still make a (possibly empty) word.
            self.last_unquoted = None;
            self.parts.push(Part::Lit {
                text: String::new(),
                quoted,
            });
            return;
        }
        for c in text.chars() {
            self.lit(c, quoted);
        }
    }

    pub(in crate::policy::analyze) fn part(&mut self, part: Part) {
        self.last_unquoted = None;
        self.parts.push(part);
    }

    pub(in crate::policy::analyze) fn unknown(
        &mut self,
        what: &'static str,
        runs: Vec<Vec<Token>>,
    ) {
        self.part(Part::Unknown { what, runs });
    }

    /// Tilde expansion happens at the start of a word and, in a `NAME=…` word, after the `=`
    /// and after each unquoted `:` (as bash does).
    pub(in crate::policy::analyze) fn tilde_ok(&self) -> bool {
        self.parts.is_empty()
            || (self.assignment_like && matches!(self.last_unquoted, Some('=' | ':')))
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer

pub(in crate::policy::analyze) struct Lexer<'a> {
    pub(in crate::policy::analyze) src: &'a str,
    pub(in crate::policy::analyze) pos: usize,
    pub(in crate::policy::analyze) depth: usize,
    pub(in crate::policy::analyze) notes: Vec<String>,
    /// Where the last `[` scan stopped, and whether it found `]`.
    pub(in crate::policy::analyze) bracket_scan: Option<(usize, bool)>,
}

pub(in crate::policy::analyze) struct PendingHeredoc {
    pub(in crate::policy::analyze) index: usize,
    pub(in crate::policy::analyze) delimiter: String,
    pub(in crate::policy::analyze) strip_tabs: bool,
    pub(in crate::policy::analyze) expand: bool,
}

pub(in crate::policy::analyze) fn is_word_end(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\n' | ';' | '&' | '|' | '(' | ')' | '<' | '>'
    )
}

impl<'a> Lexer<'a> {
    pub(in crate::policy::analyze) fn new(src: &'a str, depth: usize) -> Self {
        Lexer {
            src,
            pos: 0,
            depth,
            notes: Vec::new(),
            bracket_scan: None,
        }
    }

    pub(in crate::policy::analyze) fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    pub(in crate::policy::analyze) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    pub(in crate::policy::analyze) fn peek_at(&self, n: usize) -> Option<char> {
        self.rest().chars().nth(n)
    }

    pub(in crate::policy::analyze) fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    pub(in crate::policy::analyze) fn eat(&mut self, prefix: &str) -> bool {
        if self.rest().starts_with(prefix) {
            self.pos += prefix.len();
            true
        } else {
            false
        }
    }

    pub(in crate::policy::analyze) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    pub(in crate::policy::analyze) fn skip_blanks(&mut self) {
        loop {
            match self.peek() {
                Some(' ' | '\t') => {
                    self.bump();
                }
                Some('\\') if self.peek_at(1) == Some('\n') => {
                    self.pos += 2;
                }
                _ => return,
            }
        }
    }

    /// A command list, up to the end of input or (inside `$(`/`<(`) the closing `)`.
    pub(in crate::policy::analyze) fn lex_list(&mut self, inside_parens: bool) -> Vec<Token> {
        let mut tokens = Vec::new();
        let mut pending: Vec<PendingHeredoc> = Vec::new();
        let mut parens = 0usize;
        let mut cases = 0usize;
        let mut command_position = true;
        loop {
            self.skip_blanks();
            let Some(c) = self.peek() else {
                if inside_parens {
                    self.note("unterminated command substitution");
                }
                break;
            };
            let op = match c {
                '#' => {
                    let skip = self.rest().find('\n').unwrap_or(self.rest().len());
                    self.pos += skip;
                    continue;
                }
                '\n' => {
                    self.bump();
                    self.read_heredocs(&mut tokens, &mut pending);
                    Op::Seq
                }
                ';' => {
                    self.bump();
                    if self.eat(";&") || self.eat(";") || self.eat("&") {
                        Op::CaseEnd
                    } else {
                        Op::Seq
                    }
                }
                '&' => {
                    self.bump();
                    if self.eat("&") {
                        Op::And
                    } else if self.eat(">>") || self.eat(">") {
                        tokens.push(Token::Redirect(Redirect::File));
                        continue;
                    } else {
                        Op::Background
                    }
                }
                '|' => {
                    self.bump();
                    if self.eat("|") {
                        Op::Or
                    } else {
                        self.eat("&");
                        Op::Pipe
                    }
                }
                '(' => {
                    self.bump();
                    parens += 1;
                    Op::Open
                }
                ')' => {
                    self.bump();
                    if inside_parens && parens == 0 && cases == 0 {
                        return tokens;
                    }
                    parens = parens.saturating_sub(1);
                    Op::Close
                }
                '<' | '>' if self.peek_at(1) == Some('(') => {
                    let start = self.pos;
                    self.pos += 2;
                    let runs = self.nested_list();
                    let mut word = WordBuilder::default();
                    word.unknown("process substitution", runs);
                    tokens.push(Token::Word(Word {
                        raw: self.src.get(start..self.pos).unwrap_or("").to_owned(),
                        parts: word.parts,
                    }));
                    command_position = false;
                    continue;
                }
                '<' | '>' => {
                    self.lex_redirect(&mut tokens, &mut pending);
                    continue;
                }
                _ => {
                    if self.skip_io_number() {
                        continue;
                    }
                    let word = self.lex_word(true);
                    if command_position {
                        match word.keyword() {
                            Some("case") => cases += 1,
                            Some("esac") => cases = cases.saturating_sub(1),
                            _ => {}
                        }
                    }
                    command_position = matches!(
                        word.keyword(),
                        Some(
                            "if" | "then"
                                | "else"
                                | "elif"
                                | "do"
                                | "while"
                                | "until"
                                | "!"
                                | "{"
                                | "time"
                        )
                    );
                    tokens.push(Token::Word(word));
                    continue;
                }
            };
            tokens.push(Token::Op(op));
            command_position = true;
        }
        if !pending.is_empty() {
            self.note("here-document without a body");
        }
        tokens
    }

    /// `2>`, `10<`, `{fd}>`: the descriptor does not matter for paths.
    pub(in crate::policy::analyze) fn skip_io_number(&mut self) -> bool {
        let rest = self.rest();
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let len = if digits > 0 {
            digits
        } else if rest.starts_with('{') {
            match rest.find('}') {
                Some(end) if rest.get(1..end).is_some_and(is_name) => end + 1,
                _ => return false,
            }
        } else {
            return false;
        };
        if matches!(rest.as_bytes().get(len), Some(b'<' | b'>')) {
            self.pos += len;
            true
        } else {
            false
        }
    }

    pub(in crate::policy::analyze) fn lex_redirect(
        &mut self,
        tokens: &mut Vec<Token>,
        pending: &mut Vec<PendingHeredoc>,
    ) {
        let redirect = if self.eat("<<<") {
            Redirect::HereString
        } else if self.eat("<<") {
            let strip_tabs = self.eat("-");
            self.skip_blanks();
            if self.peek().is_none_or(is_word_end) {
                self.note("here-document without a delimiter");
                return;
            }
            let delimiter = self.lex_word(true);
            let quoted = delimiter.raw.contains(['\'', '"', '\\']);
            pending.push(PendingHeredoc {
                index: tokens.len(),
                delimiter: dequote(&delimiter.raw),
                strip_tabs,
                expand: !quoted,
            });
            tokens.push(Token::Heredoc(Heredoc::default()));
            return;
        } else if self.eat("<&") || self.eat(">&") {
            Redirect::Dup
        } else if self.eat("<>") || self.eat("<") {
            Redirect::Input
        } else {
            if !(self.eat(">>") || self.eat(">|")) {
                self.bump();
            }
            Redirect::File
        };
        tokens.push(Token::Redirect(redirect));
    }

    pub(in crate::policy::analyze) fn read_heredocs(
        &mut self,
        tokens: &mut [Token],
        pending: &mut Vec<PendingHeredoc>,
    ) {
        for doc in pending.drain(..) {
            let mut body = String::new();
            let mut terminated = false;
            while !self.rest().is_empty() {
                let rest = self.rest();
                let (line, advance) = match rest.find('\n') {
                    Some(end) => (rest.get(..end).unwrap_or(""), end + 1),
                    None => (rest, rest.len()),
                };
                self.pos += advance;
                let line = if doc.strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    line
                };
                if line == doc.delimiter {
                    terminated = true;
                    break;
                }
                body.push_str(line);
                body.push('\n');
            }
            if !terminated {
                self.notes
                    .push(format!("here-document not terminated by {}", doc.delimiter));
            }
            if let Some(slot) = tokens.get_mut(doc.index) {
                *slot = Token::Heredoc(Heredoc {
                    body,
                    expand: doc.expand,
                });
            }
        }
    }

    /// One word; `at_blanks` is false for a `${X:-…}` operand, which runs to the end.
    pub(in crate::policy::analyze) fn lex_word(&mut self, at_blanks: bool) -> Word {
        let start = self.pos;
        let mut word = WordBuilder::default();
        while let Some(c) = self.peek() {
            match c {
                c if at_blanks && is_word_end(c) => break,
                '\\' => {
                    self.bump();
                    match self.bump() {
                        Some('\n') => {}
                        Some(escaped) => word.lit(escaped, true),
                        None => word.lit('\\', true),
                    }
                }
                '\'' => {
                    self.bump();
                    let text = self.single_quoted();
                    word.lit_str(&text, true);
                }
                '"' => {
                    self.bump();
                    word.lit_str("", true);
                    self.lex_double_quoted(&mut word, true);
                }
                '$' => self.lex_dollar(&mut word, false),
                '`' => self.lex_backtick(&mut word, false),
                '*' | '?' => {
                    self.bump();
                    word.unknown("glob", Vec::new());
                }
                '[' if self.bracket_closes() => {
                    self.bump();
                    word.unknown("glob", Vec::new());
                }
                '{' if self.brace_expands() => {
                    self.bump();
                    word.unknown("brace expansion", Vec::new());
                }
                '~' if word.tilde_ok() => self.lex_tilde(&mut word),
                _ => {
                    self.bump();
                    word.lit(c, false);
                }
            }
        }
        Word {
            raw: self.src.get(start..self.pos).unwrap_or("").to_owned(),
            parts: word.parts,
        }
    }
}
