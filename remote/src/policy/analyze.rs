//! Which paths does a shell command touch?
//!
//! [`analyze`] reads a command line the way a POSIX shell (with the common bash extensions)
//! would tokenise it and lists the paths it names: the working directory, path-like operands,
//! redirection targets and `cd`/`pushd` targets, each resolved to an absolute path with `..`
//! removed and symlinks followed ([`resolve`]). The caller checks every path against the roots a
//! workspace approved ([`is_within`]) and asks the user about the rest.
//!
//! # What is caught
//!
//! - The working directory itself (always the first [`Access`]).
//! - Operands that look like paths: absolute paths, `~`, `~/…` and `~user/…` (from
//!   `/etc/passwd`), words with a `..` component, relative words containing `/` (`src/main.rs`,
//!   `./x`), the value of `--opt=/abs` and `key=value` words (`dd of=/x`), paths glued to short
//!   options (`-I/usr/include`, `-L../lib`), each piece of `a:b` lists (`-v /etc:/x`,
//!   `PATH=/a:/b`), `file://` URLs, assignment values (`VAR=/x cmd`), `-…` words after `--`,
//!   and plain words that name a symlink (`cat link` with `link -> /etc/passwd`). The command
//!   word counts too (`/opt/tool/run`, `../bin/x`). URLs and `host:path` are not paths.
//! - Redirection targets, whatever the word (`> out.txt`, `2>/x`, `&>`, `>>`, `>|`, `<`, `<>`,
//!   `>&file`), but not fd duplications (`2>&1`, `>&-`), here-document delimiters or
//!   here-string data.
//! - Quoting as bash does it (checked against a real bash in the tests): `'…'`, `"…"`, `\x`,
//!   `$'\x2f…'`, `$"…"`, line continuations, comments, here-documents (`<<`, `<<-`, quoted
//!   delimiters).
//! - `cd`/`pushd` targets (kind [`AccessKind::ChangeDirectory`]), also behind `command`/`builtin`,
//!   with `CDPATH` set in the command, `cd`/`pushd` without operand, `cd -`, and both the
//!   logical (`cd -L`) and physical place of `link/..`. Relative operands after a `cd` resolve
//!   against the new directory; because a `cd` can fail or be skipped (`||`, `if`, pipelines),
//!   the earlier directories stay possible too, and every possible directory is checked. A
//!   subshell's `cd` does not leak out of `( … )`; a `cd` in a loop or function body counts
//!   from the start of the command.
//! - Variables assigned in the command (`X=/etc; cat $X/passwd`, `export`, `${X:-/default}`,
//!   `${X:=…}`), `$HOME` (also reassigned: `HOME=/etc; cat ~/x`), `$PWD`, `$OLDPWD`. A variable
//!   that may hold several values (conditional assignments, loops, function bodies, `readonly`,
//!   `read`, `unset`) yields every value.
//! - Code that runs nested: `$(…)`, backticks, `<(…)`/`>(…)`, `${…}` operands, `sh -c '…'`
//!   (also `bash -lc`, `$SHELL -c`, and behind `sudo`, `env`, `xargs`, `find -exec`), `su -c`,
//!   `flock … -c`, `eval`, `trap`, command substitutions in here-documents, and
//!   here-documents or here-strings fed to a shell (`bash <<EOF … EOF`).
//! - Symlink escapes: a link inside the workspace pointing to `/etc` resolves to `/etc`, also
//!   when dangling (`echo > x` with `x -> /etc/new` reports `/etc/new`), and `link/..` is the
//!   physical parent as the kernel sees it.
//! - Harmless device files (`/dev/null`, `/dev/zero`, `/dev/full`, `/dev/random`,
//!   `/dev/urandom`, `/dev/tty`, `/dev/std{in,out,err}`, `/dev/fd/N`) are not reported, so
//!   `2>/dev/null` does not ask.
//!
//! # What cannot be caught
//!
//! A shell is not a sandbox, and this is a best-effort reading of the text, not confinement:
//!
//! - Values only known at run time: variables from the environment (`$FOO`), command
//!   substitution output, `$(( ))`, `${X%/*}`-style operators, globs and brace expansion, `read`
//!   input, `$1`. The literal prefix is still checked (`/etc/$X` → `/etc`, `/srv/*` → `/srv`,
//!   `../$X` → `..`) and [`Analysis::notes`] says what was not known; a value like `../../etc`
//!   coming from outside is not seen. Word splitting of variable values is not modelled.
//! - Programs that open files on their own: scripts (`bash x.sh`, `source x`, `make`,
//!   `python x.py`, `git` hooks; the first two get a note), configuration files, `$PATH`
//!   lookups, and programs that change directory themselves (`env -C`, `git -C`, `tar -C`):
//!   their directory operand is checked when it looks like a path, but later relative operands
//!   resolve against the shell's directory. A plain word (no `/`, not a symlink) is never an
//!   operand: it names something in the working directory, which is checked anyway.
//! - Aliases, functions and `BASH_ENV`/`ENV`/`CDPATH` inherited from the environment, shell
//!   options (`extglob`, `globstar`, `cdable_vars`), and `case` patterns are not modelled: the
//!   caller should start the shell without them, and with `HOME` set to the `home` given here.
//! - The file system can change between the check and the run (a symlink the command itself
//!   creates is not seen). Paths are resolved as this process sees them.
//! - Limits keep hostile input cheap: nesting deeper than 16, more than 16 possible working
//!   directories or values of one word, words of more than 1024 parts or 4096 bytes are not
//!   followed further (with a note); a `{` whose brace expansion would be longer than 256
//!   characters is taken as an expansion (unknown, so only its prefix is checked).
//!
//! Anything that can run arbitrary code can reach any path the user can; the permission prompt
//! is a guard against accidents and surprises, not against a hostile command.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// Paths a shell command touches, and what could not be analysed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    /// Resolved accesses, deduplicated by resolved path, in order of appearance; the working
    /// directory first.
    pub paths: Vec<Access>,
    /// What could not be analysed, e.g. `$FOO expansion in $FOO/x` or `command substitution in
    /// $(pwd)`. Empty when every word was fully known.
    pub notes: Vec<String>,
}

/// One path a command touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The token as written in the command.
    pub raw: String,
    /// Absolute, normalised, symlinks followed (see [`resolve`]).
    pub resolved: PathBuf,
    /// How the command uses the path.
    pub kind: AccessKind,
    /// Whether the path exists and is a directory (false when it does not exist).
    pub is_dir: bool,
}

/// How a command uses a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessKind {
    /// The working directory the command starts in.
    Cwd,
    /// A path-like argument (or the command word itself, or an assignment value).
    Operand,
    /// The file of a redirection (`>`, `>>`, `<`, `&>`, …).
    RedirectTarget,
    /// The target of `cd`/`pushd`.
    ChangeDirectory,
}

/// Lists the paths `command` touches when run by a shell in `cwd` for a user whose home is
/// `home`.
///
/// Never fails: what cannot be analysed is listed in [`Analysis::notes`]. Blocking (it looks at
/// the file system to follow symlinks).
pub fn analyze(command: &str, cwd: &Path, home: &Path) -> Analysis {
    let mut out = Output::default();
    let cwd_resolved = out.resolve(&absolute(cwd));
    out.push(
        &cwd.to_string_lossy(),
        cwd_resolved.clone(),
        AccessKind::Cwd,
    );
    let state = State::new(cwd_resolved, home);
    let tokens = out.lex(command, 0);
    run_program(&mut out, &tokens, state, 0);
    Analysis {
        paths: out.paths,
        notes: out.notes,
    }
}

/// Resolves a path as a shell and the kernel would: `~` and `~/…` become `home`, a relative path
/// is taken from `cwd`, `..` is removed, and the longest existing prefix has its symlinks
/// followed (also a dangling last link); the rest is appended lexically.
pub fn resolve(raw: &str, cwd: &Path, home: &Path) -> PathBuf {
    let path = if raw == "~" {
        home.to_path_buf()
    } else if let Some(rest) = raw.strip_prefix("~/") {
        home.join(rest)
    } else {
        PathBuf::from(raw)
    };
    let path = if path.is_absolute() {
        path
    } else {
        absolute(cwd).join(path)
    };
    resolve_path(&absolute(&path))
}

/// Whether `path` is `root` or below it, compared component by component (`/srv/app2` is not
/// within `/srv/app`). `..` is removed lexically first; both must be absolute (else `false`).
/// Symlinks are not looked at: pass [`resolve`]d paths.
pub fn is_within(path: &Path, root: &Path) -> bool {
    if !path.is_absolute() || !root.is_absolute() {
        return false;
    }
    normalize_lexically(path).starts_with(normalize_lexically(root))
}

const MAX_DEPTH: usize = 16;
const MAX_SYMLINKS: usize = 40;
const MAX_VARIANTS: usize = 16;
const MAX_CWDS: usize = 16;
/// How far `{` looks for its closing brace (brace expansions are short).
const MAX_LOOKAHEAD: usize = 256;
/// Parts of one word whose value is tracked; beyond, the word is treated as unknown.
const MAX_PARTS: usize = 1024;
/// Longer expansions cannot be paths the kernel accepts (`PATH_MAX`).
const MAX_TEXT: usize = 4096;

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    std::path::absolute(path).unwrap_or_else(|_| Path::new("/").join(path))
}

fn is_dir(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| meta.is_dir())
}

/// Removes `.` and `..` without looking at the file system (`..` at the root stays at the root).
fn normalize_lexically(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(prefix) => out.push(prefix.as_os_str()),
            Component::RootDir => out.push("/"),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() && !out.has_root() {
                    out.push("..");
                }
            }
            Component::Normal(name) => out.push(name),
        }
    }
    out
}

/// Walks an absolute path component by component as the kernel does: symlinks are followed
/// (up to [`MAX_SYMLINKS`]), `..` goes to the physical parent; once a component does not exist
/// the rest is appended lexically.
fn resolve_path(path: &Path) -> PathBuf {
    let mut pending: std::collections::VecDeque<OsString> = std::collections::VecDeque::new();
    push_components(&mut pending, path, false);
    let mut out = PathBuf::from("/");
    // Components at the end of `out` that do not exist.
    let mut missing = 0usize;
    let mut links = 0usize;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            out.pop();
            missing = missing.saturating_sub(1);
            continue;
        }
        if missing > 0 {
            out.push(&name);
            missing += 1;
            continue;
        }
        let next = out.join(&name);
        match std::fs::symlink_metadata(&next) {
            Ok(meta) if meta.file_type().is_symlink() && links < MAX_SYMLINKS => {
                links += 1;
                match std::fs::read_link(&next) {
                    Ok(target) => {
                        if target.is_absolute() {
                            out = PathBuf::from("/");
                        }
                        push_components(&mut pending, &target, true);
                    }
                    Err(_) => {
                        out = next;
                        missing = 1;
                    }
                }
            }
            Ok(_) => out = next,
            Err(_) => {
                out = next;
                missing = 1;
            }
        }
    }
    out
}

/// Queues the components of `path` (`..` kept as a marker, `.` and the root dropped), either
/// at the back or, for a symlink target, at the front.
fn push_components(pending: &mut std::collections::VecDeque<OsString>, path: &Path, front: bool) {
    let names: Vec<OsString> = path
        .components()
        .filter_map(|component| match component {
            Component::ParentDir => Some(OsString::from("..")),
            Component::Normal(name) => Some(name.to_os_string()),
            Component::Prefix(_) | Component::RootDir | Component::CurDir => None,
        })
        .collect();
    if front {
        for name in names.into_iter().rev() {
            pending.push_front(name);
        }
    } else {
        pending.extend(names);
    }
}

/// Device files every command may use without asking.
fn is_harmless(path: &Path) -> bool {
    const DEVICES: [&str; 9] = [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/stdin",
        "/dev/stdout",
        "/dev/stderr",
    ];
    if DEVICES.iter().any(|device| path == Path::new(device)) {
        return true;
    }
    path.strip_prefix("/dev/fd").is_ok_and(|rest| {
        rest.to_str()
            .is_some_and(|fd| !fd.is_empty() && fd.bytes().all(|b| b.is_ascii_digit()))
    })
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(Word),
    Op(Op),
    /// A redirection operator; the target is the next word.
    Redirect(Redirect),
    Heredoc(Heredoc),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
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
enum Redirect {
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
struct Heredoc {
    body: String,
    /// Unquoted delimiter: `$…` and `` `…` `` in the body are expanded.
    expand: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Word {
    /// As written.
    raw: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
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
    fn shown(&self) -> String {
        const MAX: usize = 80;
        match self.raw.char_indices().nth(MAX) {
            Some((end, _)) => format!("{}…", self.raw.get(..end).unwrap_or("")),
            None => self.raw.clone(),
        }
    }

    /// The text when every part is literal.
    fn literal(&self) -> Option<String> {
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
    fn keyword(&self) -> Option<&str> {
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
    fn assignment(&self) -> Option<(&str, bool)> {
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

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[derive(Default)]
struct WordBuilder {
    parts: Vec<Part>,
    /// The last character pushed, when it was an unquoted literal.
    last_unquoted: Option<char>,
    /// The word so far is `NAME=` (bash expands `~` after its `=` and `:`).
    assignment_like: bool,
    seen_eq: bool,
}

impl WordBuilder {
    fn lit(&mut self, c: char, quoted: bool) {
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

    fn lit_str(&mut self, text: &str, quoted: bool) {
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

    fn part(&mut self, part: Part) {
        self.last_unquoted = None;
        self.parts.push(part);
    }

    fn unknown(&mut self, what: &'static str, runs: Vec<Vec<Token>>) {
        self.part(Part::Unknown { what, runs });
    }

    /// Tilde expansion happens at the start of a word and, in a `NAME=…` word, after the `=`
    /// and after each unquoted `:` (as bash does).
    fn tilde_ok(&self) -> bool {
        self.parts.is_empty()
            || (self.assignment_like && matches!(self.last_unquoted, Some('=' | ':')))
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
    notes: Vec<String>,
    /// Where the last `[` scan stopped, and whether it found `]`.
    bracket_scan: Option<(usize, bool)>,
}

struct PendingHeredoc {
    index: usize,
    delimiter: String,
    strip_tabs: bool,
    expand: bool,
}

fn is_word_end(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\n' | ';' | '&' | '|' | '(' | ')' | '<' | '>'
    )
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str, depth: usize) -> Self {
        Lexer {
            src,
            pos: 0,
            depth,
            notes: Vec::new(),
            bracket_scan: None,
        }
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.rest().chars().nth(n)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, prefix: &str) -> bool {
        if self.rest().starts_with(prefix) {
            self.pos += prefix.len();
            true
        } else {
            false
        }
    }

    fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    fn skip_blanks(&mut self) {
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
    fn lex_list(&mut self, inside_parens: bool) -> Vec<Token> {
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
    fn skip_io_number(&mut self) -> bool {
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

    fn lex_redirect(&mut self, tokens: &mut Vec<Token>, pending: &mut Vec<PendingHeredoc>) {
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

    fn read_heredocs(&mut self, tokens: &mut [Token], pending: &mut Vec<PendingHeredoc>) {
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
    fn lex_word(&mut self, at_blanks: bool) -> Word {
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

    fn single_quoted(&mut self) -> String {
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
    fn lex_double_quoted(&mut self, word: &mut WordBuilder, closing: bool) {
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

    fn lex_tilde(&mut self, word: &mut WordBuilder) {
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

    fn lex_dollar(&mut self, word: &mut WordBuilder, in_double_quotes: bool) {
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

    fn lex_backtick(&mut self, word: &mut WordBuilder, in_double_quotes: bool) {
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
    fn nested_list(&mut self) -> Vec<Vec<Token>> {
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

    fn sub_lex(&mut self, text: &str) -> Vec<Vec<Token>> {
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
    fn parameter_operation(&mut self, content: &str) -> Part {
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
    fn runs_in(&mut self, text: &str) -> Vec<Vec<Token>> {
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
    fn skip_parens(&mut self, open: usize) {
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
    fn braced(&mut self) -> String {
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
    fn ansi_c_quoted(&mut self) -> String {
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

    fn digits(&mut self, radix: u32, max: usize) -> Option<u32> {
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
    fn bracket_closes(&mut self) -> bool {
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
    fn brace_expands(&self) -> bool {
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
fn dequote(raw: &str) -> String {
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

#[derive(Default)]
struct Output {
    paths: Vec<Access>,
    /// Paths here are normalised, so bytes compare like `Path` (whose `==` and hash walk
    /// components, which is slow for the many comparisons a long command makes).
    seen: HashSet<OsString>,
    notes: Vec<String>,
    noted: HashSet<String>,
    passwd: Option<String>,
    /// [`resolve_path`] results: commands repeat paths, and each lookup walks the file system.
    resolved: HashMap<OsString, PathBuf>,
    symlinks: HashMap<OsString, bool>,
}

impl Output {
    /// Records an access unless its resolved path was already recorded.
    fn push(&mut self, raw: &str, resolved: PathBuf, kind: AccessKind) {
        if !self.seen.insert(resolved.as_os_str().to_owned()) {
            return;
        }
        let is_dir = is_dir(&resolved);
        self.paths.push(Access {
            raw: raw.to_owned(),
            resolved,
            kind,
            is_dir,
        });
    }

    fn resolve(&mut self, path: &Path) -> PathBuf {
        if let Some(resolved) = self.resolved.get(path.as_os_str()) {
            return resolved.clone();
        }
        let resolved = resolve_path(path);
        self.resolved
            .insert(path.as_os_str().to_owned(), resolved.clone());
        resolved
    }

    fn is_symlink(&mut self, path: &Path) -> bool {
        *self
            .symlinks
            .entry(path.as_os_str().to_owned())
            .or_insert_with(|| path.is_symlink())
    }

    fn note(&mut self, note: String) {
        if self.noted.insert(note.clone()) {
            self.notes.push(note);
        }
    }

    fn lex(&mut self, text: &str, depth: usize) -> Vec<Token> {
        let mut lexer = Lexer::new(text, depth);
        let tokens = lexer.lex_list(false);
        for note in lexer.notes {
            self.note(note);
        }
        tokens
    }

    /// The home directory of `user` from `/etc/passwd` (NSS sources like LDAP are not read).
    fn user_home(&mut self, user: &str) -> Option<String> {
        let passwd = self
            .passwd
            .get_or_insert_with(|| std::fs::read_to_string("/etc/passwd").unwrap_or_default());
        passwd.lines().find_map(|line| {
            let mut fields = line.split(':');
            (fields.next() == Some(user)).then(|| fields.nth(4).map(str::to_owned))?
        })
    }
}

/// What a shell knows while running a command list.
#[derive(Clone)]
struct State {
    /// Every directory the shell may be in (a `cd` can fail or be skipped, so earlier ones stay).
    cwds: Vec<PathBuf>,
    /// Every value a variable may have; `None` is a value not known here (the environment).
    /// Shared between the copies subshells save (cloned on write).
    vars: std::rc::Rc<HashMap<String, Vec<Option<String>>>>,
    /// Directories `cd -` may go back to.
    previous: Vec<PathBuf>,
}

impl State {
    fn new(cwd: PathBuf, home: &Path) -> State {
        let mut vars = HashMap::new();
        vars.insert("HOME".to_owned(), vec![home.to_str().map(str::to_owned)]);
        State {
            cwds: vec![cwd],
            vars: std::rc::Rc::new(vars),
            previous: Vec::new(),
        }
    }

    fn values(&self, name: &str) -> Vec<Option<String>> {
        let mut values = self.vars.get(name).cloned().unwrap_or_default();
        match name {
            "PWD" => values.extend(self.cwds.iter().map(|cwd| cwd.to_str().map(str::to_owned))),
            "OLDPWD" => {
                values.extend(
                    self.previous
                        .iter()
                        .map(|cwd| cwd.to_str().map(str::to_owned)),
                );
                if self.previous.is_empty() {
                    values.push(None);
                }
            }
            _ if !self.vars.contains_key(name) => values.push(None),
            _ => {}
        }
        dedup(values)
    }

    fn merge(&mut self, other: State) {
        for cwd in other.cwds {
            if !contains(&self.cwds, &cwd) && self.cwds.len() < MAX_CWDS {
                self.cwds.push(cwd);
            }
        }
        let vars = std::rc::Rc::make_mut(&mut self.vars);
        for (name, values) in other.vars.iter() {
            let mine = vars.entry(name.clone()).or_insert_with(|| vec![None]);
            mine.extend(values.iter().cloned());
            *mine = dedup(std::mem::take(mine));
        }
        for cwd in other.previous {
            if !contains(&self.previous, &cwd) {
                self.previous.push(cwd);
            }
        }
    }

    /// A new shell (`sh -c`) sees exported variables only; any of ours may not be exported.
    fn for_child_shell(&self) -> State {
        let mut child = self.clone();
        for (name, values) in std::rc::Rc::make_mut(&mut child.vars).iter_mut() {
            if name != "HOME" {
                values.push(Some(String::new()));
            }
        }
        child.previous.clear();
        child
    }
}

fn dedup<T: PartialEq>(values: Vec<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(values.len());
    for value in values {
        if !out.contains(&value) {
            out.push(value);
        }
    }
    out
}

/// What the first pass learns about a command list: effects that may happen at any point,
/// because loop bodies repeat and function bodies run when called.
#[derive(Default, Clone)]
struct Facts {
    /// Values assigned inside loop or function bodies.
    volatile: HashMap<String, Vec<Option<String>>>,
    /// Directories a `cd` inside a loop or function body may go to.
    volatile_cwds: Vec<PathBuf>,
    /// `readonly` variables: a later assignment fails, so it never replaces the value.
    read_only: HashSet<String>,
    /// `eval`, `source`, `trap`: any variable may change.
    dynamic: bool,
}

enum Frame {
    Subshell(State),
    /// `if`, `{ … }`
    Compound,
    /// `while`, `until`, `for`, `select`
    Loop,
    /// A function body.
    Function,
    Case,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Connector {
    Start,
    Seq,
    And,
    Or,
    Pipe,
    Background,
    End,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Leading {
    Loop,
    Case,
}

#[derive(Default)]
struct Command<'t> {
    items: Vec<Item<'t>>,
    leading: Option<Leading>,
    skip_function_name: bool,
}

enum Item<'t> {
    Word(&'t Word),
    Redirect(Redirect, Option<&'t Word>),
    Heredoc(&'t Heredoc),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Builtin {
    Cd,
    Declare,
    Read,
    Unset,
    Printf,
    Eval,
    Trap,
    Source,
    Other,
}

const SHELLS: [&str; 11] = [
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash", "posh", "lksh", "busybox",
];

const WRAPPERS: [&str; 20] = [
    "sudo", "doas", "env", "nice", "nohup", "timeout", "stdbuf", "ionice", "setsid", "chrt",
    "exec", "command", "builtin", "time", "xargs", "taskset", "runuser", "unbuffer", "chroot",
    "nsenter",
];

/// Where the script of a command that runs a shell comes from.
enum Script {
    None,
    /// `sh -c WORD`, `su -c WORD`: index of the script word.
    Arg(usize),
    /// A shell reading commands from standard input (no operand).
    Stdin,
    /// A shell running a script file (index of the operand).
    File(usize),
}

fn basename(text: &str) -> &str {
    text.rsplit('/').next().unwrap_or(text)
}

/// Runs both passes over a command list and returns the state after it.
fn run_program(out: &mut Output, tokens: &[Token], state: State, depth: usize) -> State {
    let facts = {
        let mut scratch = Output::default();
        let mut dry = Walker::new(&mut scratch, state.clone(), depth, Facts::default(), true);
        dry.run(tokens);
        dry.collected
    };
    let mut state = state;
    for cwd in &facts.volatile_cwds {
        if !state.cwds.contains(cwd) && state.cwds.len() < MAX_CWDS {
            state.cwds.push(cwd.clone());
        }
    }
    let mut walker = Walker::new(out, state, depth, facts, false);
    walker.run(tokens);
    walker.close_all();
    walker.state
}

struct Walker<'o> {
    out: &'o mut Output,
    state: State,
    frames: Vec<Frame>,
    previous: Connector,
    depth: usize,
    facts: Facts,
    /// First pass: only collect [`Facts`], no nested analysis.
    dry: bool,
    /// A function name was seen: the next `{` opens its body.
    function_body: bool,
    collected: Facts,
}

struct Variant {
    text: String,
    complete: bool,
}

impl<'o> Walker<'o> {
    fn new(out: &'o mut Output, state: State, depth: usize, facts: Facts, dry: bool) -> Self {
        Walker {
            out,
            state,
            frames: Vec::new(),
            previous: Connector::Start,
            depth,
            facts,
            dry,
            function_body: false,
            collected: Facts::default(),
        }
    }

    fn note(&mut self, note: String) {
        self.out.note(note);
    }

    fn run(&mut self, tokens: &[Token]) {
        let mut command = Command::default();
        let mut iter = tokens.iter().peekable();
        while let Some(token) = iter.next() {
            match token {
                Token::Word(word) => {
                    if command.skip_function_name {
                        command.skip_function_name = false;
                        self.function_body = true;
                        continue;
                    }
                    if self.function_body && word.keyword() != Some("{") {
                        self.function_body = false;
                    }
                    if command.items.is_empty()
                        && let Some(keyword) = word.keyword()
                        && self.keyword(keyword, &mut command)
                    {
                        continue;
                    }
                    command.items.push(Item::Word(word));
                }
                Token::Redirect(redirect) => {
                    let target = match iter.peek() {
                        Some(Token::Word(word)) => {
                            iter.next();
                            Some(word)
                        }
                        _ => None,
                    };
                    command.items.push(Item::Redirect(*redirect, target));
                }
                Token::Heredoc(doc) => command.items.push(Item::Heredoc(doc)),
                Token::Op(Op::Open) => {
                    if !command.items.is_empty() {
                        // `name ()`: a function definition; its body follows.
                        if matches!(iter.peek(), Some(Token::Op(Op::Close))) {
                            iter.next();
                        }
                        command = Command::default();
                        self.function_body = true;
                        continue;
                    }
                    self.function_body = false;
                    self.frames.push(Frame::Subshell(self.state.clone()));
                }
                Token::Op(Op::Close) => {
                    let command = std::mem::take(&mut command);
                    if matches!(self.frames.last(), Some(Frame::Case)) {
                        // The `)` of a case pattern: the words before it are not a command.
                        self.discard(&command);
                        continue;
                    }
                    self.finish(command, Connector::End);
                    if self.frames.iter().any(|f| matches!(f, Frame::Subshell(_))) {
                        self.close(|frame| matches!(frame, Frame::Subshell(_)));
                    }
                }
                Token::Op(op) => {
                    let connector = match op {
                        Op::And => Connector::And,
                        Op::Or => Connector::Or,
                        Op::Pipe => Connector::Pipe,
                        Op::Background => Connector::Background,
                        _ => Connector::Seq,
                    };
                    self.finish(std::mem::take(&mut command), connector);
                    self.previous = match connector {
                        Connector::Background => Connector::Seq,
                        other => other,
                    };
                }
            }
        }
        self.finish(command, Connector::End);
    }

    /// Handles a reserved word at the start of a command; `false` when it is a plain word here.
    fn keyword(&mut self, keyword: &str, command: &mut Command<'_>) -> bool {
        match keyword {
            "{" if self.function_body => {
                self.function_body = false;
                self.frames.push(Frame::Function);
            }
            "if" | "{" => self.frames.push(Frame::Compound),
            "while" | "until" => self.frames.push(Frame::Loop),
            "for" | "select" => {
                self.frames.push(Frame::Loop);
                command.leading = Some(Leading::Loop);
            }
            "case" => {
                self.frames.push(Frame::Case);
                command.leading = Some(Leading::Case);
            }
            "fi" => self.close(|frame| matches!(frame, Frame::Compound)),
            "done" => self.close(|frame| matches!(frame, Frame::Loop)),
            "}" => self.close(|frame| matches!(frame, Frame::Compound | Frame::Function)),
            "esac" => self.close(|frame| matches!(frame, Frame::Case)),
            "function" => command.skip_function_name = true,
            "then" | "else" | "elif" | "do" | "!" | "time" | "[[" | "coproc" => {}
            _ => return false,
        }
        true
    }

    /// Pops frames up to and including the first one matching; a subshell restores its state.
    fn close(&mut self, matching: impl Fn(&Frame) -> bool) {
        while let Some(frame) = self.frames.pop() {
            let done = matching(&frame);
            if let Frame::Subshell(state) = frame {
                self.state = state;
            }
            if done {
                return;
            }
        }
    }

    fn close_all(&mut self) {
        self.close(|_| false);
    }

    /// Words that are not a command (a `case` subject or pattern) still run their
    /// substitutions.
    fn discard(&mut self, command: &Command<'_>) {
        for item in &command.items {
            if let Item::Word(word) = item {
                self.expand(word);
            }
        }
    }

    fn finish(&mut self, command: Command<'_>, next: Connector) {
        let previous = self.previous;
        if command.items.is_empty() {
            return;
        }
        let conditional = !self.frames.is_empty()
            || matches!(previous, Connector::And | Connector::Or | Connector::Pipe)
            || matches!(next, Connector::Pipe | Connector::Background);
        match command.leading {
            Some(Leading::Case) => return self.discard(&command),
            Some(Leading::Loop) => return self.for_loop(&command),
            None => {}
        }
        let words: Vec<&Word> = command
            .items
            .iter()
            .filter_map(|item| match item {
                Item::Word(word) => Some(*word),
                _ => None,
            })
            .collect();
        let assignments = words
            .iter()
            .take_while(|w| w.assignment().is_some())
            .count();
        let standalone = assignments == words.len();
        let literals: Vec<Option<String>> = words.iter().map(|w| w.literal()).collect();
        // `command cd …`, `builtin cd …`: the builtin is the next word.
        let mut command_index = assignments;
        while let Some(Some(wrapper)) = literals.get(command_index)
            && matches!(wrapper.as_str(), "command" | "builtin")
        {
            command_index += 1;
            if literals.get(command_index).and_then(Option::as_deref) == Some("-p") {
                command_index += 1;
            }
        }
        let name = literals
            .get(command_index)
            .and_then(|name| name.as_deref())
            .map(basename)
            .unwrap_or("");
        let builtin = match name {
            _ if standalone => Builtin::Other,
            "cd" | "pushd" => Builtin::Cd,
            "export" | "local" | "declare" | "typeset" | "readonly" => Builtin::Declare,
            "read" | "mapfile" | "readarray" | "getopts" => Builtin::Read,
            "unset" => Builtin::Unset,
            "printf" => Builtin::Printf,
            "eval" => Builtin::Eval,
            "trap" => Builtin::Trap,
            "source" | "." => Builtin::Source,
            _ => Builtin::Other,
        };
        if matches!(builtin, Builtin::Eval | Builtin::Trap | Builtin::Source) {
            self.collected.dynamic = true;
        }
        let script = if standalone {
            Script::None
        } else {
            find_script(&literals, assignments)
        };
        let cd_target = (builtin == Builtin::Cd)
            .then(|| cd_operand(&literals, command_index))
            .flatten();
        let stdin_script = matches!(script, Script::Stdin);
        let has_stdin_source = command.items.iter().any(|item| {
            matches!(
                item,
                Item::Heredoc(_) | Item::Redirect(Redirect::HereString | Redirect::Input, _)
            )
        });
        match script {
            Script::Stdin if !has_stdin_source => self.note(format!(
                "{} runs a script from standard input (not analysed)",
                name
            )),
            Script::File(index) => {
                if let Some(word) = words.get(index) {
                    self.note(format!(
                        "{name} runs the script {} (its contents are not analysed)",
                        word.shown()
                    ));
                }
            }
            _ => {}
        }
        if builtin == Builtin::Source
            && let Some(word) = words.get(assignments + 1)
        {
            self.note(format!(
                "sources {} (its contents are not analysed)",
                word.shown()
            ));
        }

        let read_only = builtin == Builtin::Declare
            && (name == "readonly"
                || literals
                    .iter()
                    .skip(assignments + 1)
                    .flatten()
                    .any(|arg| arg.starts_with('-') && arg.contains('r')));
        let mut new_cwds = Vec::new();
        let mut printf_var = false;
        let mut options = true;
        let mut eval_words = Vec::new();
        let mut word_index = 0usize;
        for item in &command.items {
            let word = match item {
                Item::Word(word) => *word,
                Item::Redirect(redirect, target) => {
                    self.redirect(*redirect, *target, stdin_script);
                    continue;
                }
                Item::Heredoc(doc) => {
                    self.heredoc(doc, stdin_script);
                    continue;
                }
            };
            let position = word_index;
            word_index += 1;
            if position < assignments {
                let replace = standalone && !conditional;
                self.assignment(word, replace);
                continue;
            }
            if let Script::Arg(script_index) = script
                && position == script_index
            {
                self.script(word);
                continue;
            }
            let is_argument = position > command_index;
            match builtin {
                Builtin::Cd if is_argument => {
                    if cd_target == Some(position) {
                        self.cd(word, &mut new_cwds);
                    }
                    continue;
                }
                Builtin::Declare if is_argument && word.assignment().is_some() => {
                    if read_only && let Some((name, _)) = word.assignment() {
                        self.collected.read_only.insert(name.to_owned());
                    }
                    self.assignment(word, !conditional);
                    continue;
                }
                Builtin::Read | Builtin::Unset if is_argument => {
                    if let Some(name) = word.literal().filter(|name| is_name(name)) {
                        let value = (builtin == Builtin::Unset).then(String::new);
                        self.assign(&name, vec![value], false);
                        continue;
                    }
                }
                Builtin::Printf if is_argument => {
                    if printf_var {
                        printf_var = false;
                        if let Some(name) = word.literal().filter(|name| is_name(name)) {
                            self.assign(&name, vec![None], false);
                        }
                        continue;
                    }
                    printf_var = word.literal().as_deref() == Some("-v");
                }
                Builtin::Eval if is_argument => {
                    eval_words.push(word);
                    continue;
                }
                Builtin::Trap
                    if is_argument
                        && eval_words.is_empty()
                        && word.literal().is_none_or(|w| !w.starts_with('-')) =>
                {
                    eval_words.push(word);
                    continue;
                }
                _ => {}
            }
            let usage = if position <= command_index {
                Usage::Command
            } else if options && word.literal().as_deref() == Some("--") {
                options = false;
                continue;
            } else {
                Usage::Argument { options }
            };
            self.operand(word, usage);
        }
        if builtin == Builtin::Cd {
            match cd_target {
                Some(_) => {}
                // `pushd` alone swaps with the previous directory.
                None if name == "pushd" => new_cwds.extend(self.state.previous.clone()),
                None => self.cd_home(&mut new_cwds),
            }
            self.change_directory(new_cwds);
        }
        if !eval_words.is_empty() {
            self.eval(&eval_words);
        }
    }

    fn for_loop(&mut self, command: &Command<'_>) {
        let mut words = command.items.iter().filter_map(|item| match item {
            Item::Word(word) => Some(*word),
            _ => None,
        });
        let Some(variable) = words.next().and_then(Word::literal) else {
            return;
        };
        let mut values = Vec::new();
        let mut listed = false;
        for word in words {
            if !listed {
                listed = word.keyword() == Some("in");
                continue;
            }
            self.operand(word, Usage::Argument { options: false });
            for variant in self.expand(word) {
                values.push(variant.complete.then_some(variant.text));
            }
        }
        if !listed {
            values.push(None);
        }
        // Each iteration sets the variable to one of the listed values.
        self.assign(&variable, values, true);
    }

    /// Whether the current command may run at other times than its place in the text.
    fn deferred(&self) -> bool {
        self.frames
            .iter()
            .any(|frame| matches!(frame, Frame::Loop | Frame::Function))
    }

    /// Every value `name` may have here.
    fn values(&self, name: &str) -> Vec<Option<String>> {
        let mut values = self.state.values(name);
        if let Some(volatile) = self.facts.volatile.get(name) {
            values.extend(volatile.iter().cloned());
        }
        if self.facts.dynamic && name != "HOME" {
            values.push(None);
        }
        dedup(values)
    }

    /// The state a subshell starts with, including what loop and function bodies may set.
    fn child_state(&self) -> State {
        let mut state = self.state.clone();
        for name in self.facts.volatile.keys() {
            std::rc::Rc::make_mut(&mut state.vars).insert(name.clone(), self.values(name));
        }
        state
    }

    /// Gives `name` these possible values, replacing the old ones when `replace` (the
    /// assignment surely runs here and the variable is not read-only).
    fn assign(&mut self, name: &str, values: Vec<Option<String>>, replace: bool) {
        if self.deferred() {
            self.collected
                .volatile
                .entry(name.to_owned())
                .or_default()
                .extend(values.iter().cloned());
        }
        let replace = replace && !self.facts.read_only.contains(name);
        let old = self.values(name);
        let mut values = if replace {
            values
        } else {
            old.into_iter().chain(values).collect()
        };
        values = dedup(values);
        if values.len() > MAX_VARIANTS {
            values.truncate(MAX_VARIANTS);
            values.push(None);
        }
        std::rc::Rc::make_mut(&mut self.state.vars).insert(name.to_owned(), values);
    }

    /// `NAME=value`: the value is an operand when it looks like a path, and a new value of
    /// `NAME`.
    fn assignment(&mut self, word: &Word, replace: bool) {
        let Some((name, append)) = word.assignment() else {
            return;
        };
        let name = name.to_owned();
        let prefix = word
            .parts
            .first()
            .and_then(|part| match part {
                Part::Lit { text, .. } => text.find('=').map(|eq| eq + 1),
                _ => None,
            })
            .unwrap_or(0);
        let old = if append {
            self.values(&name)
        } else {
            vec![Some(String::new())]
        };
        let mut values = Vec::new();
        for variant in self.expand(word) {
            let value = variant.text.get(prefix..).unwrap_or("").to_owned();
            if variant.complete {
                self.path_pieces(&value, &word.raw, Usage::Value);
            } else {
                self.partial(&value, &word.raw, Usage::Value);
            }
            for base in &old {
                values.push(match base {
                    Some(base) if variant.complete => Some(format!("{base}{value}")),
                    _ => None,
                });
            }
        }
        self.assign(&name, values, replace);
    }

    fn expand(&mut self, word: &Word) -> Vec<Variant> {
        let mut variants = vec![Variant {
            text: String::new(),
            complete: true,
        }];
        for (index, part) in word.parts.iter().enumerate() {
            if index == MAX_PARTS {
                self.note(format!(
                    "{} has too many parts (not analysed)",
                    word.shown()
                ));
                for variant in &mut variants {
                    variant.complete = false;
                }
            }
            let tracking = variants.iter().any(|variant| variant.complete);
            let values = match part {
                Part::Lit { .. } | Part::Tilde { .. } | Part::Param(_) if !tracking => continue,
                Part::Lit { text, .. } => {
                    for variant in variants.iter_mut().filter(|v| v.complete) {
                        variant.text.push_str(text);
                    }
                    Vec::new()
                }
                Part::Tilde { user } if user.is_empty() => {
                    let values = self.values("HOME");
                    if values.contains(&None) {
                        self.note(format!("$HOME expansion in {}", word.shown()));
                    }
                    values
                }
                Part::Tilde { user } => {
                    let home = self.out.user_home(user);
                    if home.is_none() {
                        self.note(format!("unknown user in ~{user} in {}", word.shown()));
                    }
                    vec![home]
                }
                Part::Param(name) => {
                    let values = self.values(name);
                    // `$?`, `$#`, `$$`, `$!` are numbers, never paths: not worth a note.
                    if values.contains(&None) && !matches!(name.as_str(), "?" | "#" | "$" | "!") {
                        self.note(format!("${name} expansion in {}", word.shown()));
                    }
                    values
                }
                Part::ParamOr {
                    name,
                    keep_value,
                    operand,
                    assigns,
                } => {
                    let mut values = if *keep_value {
                        self.values(name)
                    } else {
                        vec![Some(String::new())]
                    };
                    if let Some(operand) = operand {
                        for variant in self.expand(operand) {
                            values.push(variant.complete.then_some(variant.text));
                        }
                    }
                    let values = dedup(values);
                    if *assigns {
                        self.assign(name, values.clone(), false);
                    }
                    if values.contains(&None) {
                        self.note(format!("${{{name}}} expansion in {}", word.shown()));
                    }
                    values
                }
                Part::Unknown { what, runs } => {
                    for run in runs {
                        self.subshell(run);
                    }
                    self.note(format!("{what} in {}", word.shown()));
                    vec![None]
                }
            };
            if !tracking {
                continue;
            }
            let mut next: Vec<Variant> = Vec::new();
            for mut variant in variants {
                match values.as_slice() {
                    _ if !variant.complete => push_variant(&mut next, variant),
                    // A literal, already appended.
                    [] => push_variant(&mut next, variant),
                    [value] => {
                        match value {
                            Some(value) => variant.text.push_str(value),
                            None => variant.complete = false,
                        }
                        push_variant(&mut next, variant);
                    }
                    values => {
                        for value in values {
                            let mut text = variant.text.clone();
                            if let Some(value) = value {
                                text.push_str(value);
                            }
                            push_variant(
                                &mut next,
                                Variant {
                                    text,
                                    complete: value.is_some(),
                                },
                            );
                        }
                    }
                }
            }
            for variant in &mut next {
                if variant.complete && variant.text.len() > MAX_TEXT {
                    // Longer than any path the kernel accepts: not worth building further.
                    variant.complete = false;
                    variant.text.truncate(
                        (0..=MAX_TEXT)
                            .rev()
                            .find(|&end| variant.text.is_char_boundary(end))
                            .unwrap_or(0),
                    );
                }
            }
            if next.len() > MAX_VARIANTS {
                next.truncate(MAX_VARIANTS);
                self.note(format!(
                    "too many possible values for {} (some not checked)",
                    word.shown()
                ));
            }
            variants = next;
        }
        variants
    }

    /// A word that names a path when it looks like one.
    fn operand(&mut self, word: &Word, usage: Usage) {
        for variant in self.expand(word) {
            if variant.complete {
                self.path_pieces(&variant.text, &word.raw, usage);
            } else {
                self.partial(&variant.text, &word.raw, usage);
            }
        }
    }

    /// The known prefix of a partly unknown word: up to its last `/`.
    fn partial(&mut self, known: &str, raw: &str, usage: Usage) {
        let prefix = match known.rfind('/') {
            Some(slash) => known.get(..=slash).unwrap_or(known),
            None if known == ".." => known,
            None => return,
        };
        self.path_pieces(prefix, raw, usage);
    }

    /// The paths in an operand: the value of `--opt=` and `key=`, a path glued to a short
    /// option, each piece of an `a:b` list; URLs and `host:path` are not paths. A plain word
    /// is a path only when it names a symlink (which may lead out of the directory).
    fn path_pieces(&mut self, text: &str, raw: &str, usage: Usage) {
        if text.is_empty() {
            return;
        }
        if usage == Usage::Redirect {
            self.access(text, raw, AccessKind::RedirectTarget);
            return;
        }
        let candidate = if usage == Usage::Value {
            text
        } else if let Some(option) = text
            .strip_prefix('-')
            .filter(|_| usage != Usage::Argument { options: false })
        {
            if let Some(eq) = text.find('=') {
                text.get(eq + 1..).unwrap_or("")
            } else if !option.starts_with('-')
                && let Some(slash) = text.find('/')
            {
                let head = text.get(..slash).unwrap_or("");
                let start = head.trim_end_matches(['.', '~']).len();
                text.get(start..).unwrap_or("")
            } else {
                return;
            }
        } else {
            match text.find('=') {
                Some(eq) if !text.get(..eq).unwrap_or("").contains('/') => {
                    text.get(eq + 1..).unwrap_or("")
                }
                _ => text,
            }
        };
        let candidate = candidate.strip_prefix("file://").unwrap_or(candidate);
        if candidate.contains("://") {
            return;
        }
        let starts_like_path = candidate.starts_with(['/', '.', '~']);
        if !starts_like_path
            && let Some(colon) = candidate.find(':')
            && candidate.find('/').is_none_or(|slash| colon < slash)
        {
            // `host:path`, `git@host:repo`, `localhost:8080/x`
            return;
        }
        for piece in candidate.split(':') {
            if piece.contains('/') || piece == ".." {
                self.access(piece, raw, AccessKind::Operand);
            } else if usage != Usage::Command && !piece.is_empty() && piece != "." {
                let candidates: Vec<PathBuf> =
                    self.state.cwds.iter().map(|cwd| cwd.join(piece)).collect();
                let links: Vec<PathBuf> = candidates
                    .into_iter()
                    .filter(|path| self.out.is_symlink(path))
                    .collect();
                for link in links {
                    self.access(&link, raw, AccessKind::Operand);
                }
            }
        }
    }

    fn access(&mut self, path: impl AsRef<Path>, raw: &str, kind: AccessKind) {
        let path = path.as_ref();
        let candidates: Vec<PathBuf> = if path.is_absolute() {
            vec![path.to_path_buf()]
        } else {
            self.state.cwds.iter().map(|cwd| cwd.join(path)).collect()
        };
        for candidate in candidates {
            if is_harmless(&normalize_lexically(&candidate)) {
                continue;
            }
            let resolved = self.out.resolve(&candidate);
            if is_harmless(&resolved) {
                continue;
            }
            self.out.push(raw, resolved, kind);
        }
    }

    fn redirect(&mut self, redirect: Redirect, target: Option<&Word>, stdin_script: bool) {
        let Some(target) = target else {
            self.note("redirection without a target".to_owned());
            return;
        };
        match redirect {
            Redirect::HereString => {
                if stdin_script {
                    self.script(target);
                } else {
                    self.expand(target);
                }
            }
            Redirect::Dup => {
                let is_descriptor = target.literal().is_some_and(|text| {
                    let digits = text.trim_end_matches('-');
                    digits.bytes().all(|b| b.is_ascii_digit())
                });
                if !is_descriptor {
                    self.operand(target, Usage::Redirect);
                }
            }
            Redirect::File => self.operand(target, Usage::Redirect),
            Redirect::Input => {
                self.operand(target, Usage::Redirect);
                if stdin_script {
                    self.note(format!(
                        "the shell runs the script {} (its contents are not analysed)",
                        target.shown()
                    ));
                }
            }
        }
    }

    fn heredoc(&mut self, doc: &Heredoc, stdin_script: bool) {
        if stdin_script {
            let text = if doc.expand {
                let word = self.heredoc_word(&doc.body);
                let variants = self.expand(&word);
                match variants.into_iter().find(|variant| variant.complete) {
                    Some(variant) => variant.text,
                    None => {
                        self.note("here-document script with unknown parts".to_owned());
                        doc.body.clone()
                    }
                }
            } else {
                doc.body.clone()
            };
            self.nested(&text, NestedKind::ChildShell);
        } else if doc.expand {
            let word = self.heredoc_word(&doc.body);
            for part in &word.parts {
                if let Part::Unknown { what, runs } = part
                    && !runs.is_empty()
                {
                    self.note(format!("{what} in a here-document"));
                    for run in runs {
                        self.subshell(run);
                    }
                }
            }
        }
    }

    fn heredoc_word(&mut self, body: &str) -> Word {
        let mut lexer = Lexer::new(body, self.depth + 1);
        let mut word = WordBuilder::default();
        lexer.lex_double_quoted(&mut word, false);
        for note in lexer.notes {
            self.note(note);
        }
        Word {
            raw: "here-document".to_owned(),
            parts: word.parts,
        }
    }

    /// The script of `sh -c` (`child`) or a here-string fed to a shell.
    fn script(&mut self, word: &Word) {
        let variants = self.expand(word);
        for variant in variants {
            if variant.complete {
                self.nested(&variant.text, NestedKind::ChildShell);
            } else {
                self.note(format!("shell script with unknown parts: {}", word.shown()));
            }
        }
    }

    fn eval(&mut self, words: &[&Word]) {
        let mut text = String::new();
        for word in words {
            let variants = self.expand(word);
            match variants.into_iter().find(|variant| variant.complete) {
                Some(variant) => {
                    if !text.is_empty() {
                        text.push(' ');
                    }
                    text.push_str(&variant.text);
                }
                None => self.note(format!("eval of an unknown string: {}", word.shown())),
            }
        }
        self.nested(&text, NestedKind::CurrentShell);
    }

    fn subshell(&mut self, tokens: &[Token]) {
        if self.dry {
            return;
        }
        if self.depth >= MAX_DEPTH {
            self.note("nested too deeply (not analysed)".to_owned());
            return;
        }
        let state = self.child_state();
        run_program(self.out, tokens, state, self.depth + 1);
    }

    fn nested(&mut self, text: &str, kind: NestedKind) {
        if self.dry {
            return;
        }
        if self.depth >= MAX_DEPTH {
            self.note("nested too deeply (not analysed)".to_owned());
            return;
        }
        let tokens = self.out.lex(text, self.depth + 1);
        match kind {
            NestedKind::ChildShell => {
                let state = self.child_state().for_child_shell();
                run_program(self.out, &tokens, state, self.depth + 1);
            }
            NestedKind::CurrentShell => {
                let state = self.child_state();
                let after = run_program(self.out, &tokens, state, self.depth + 1);
                self.state.merge(after);
            }
        }
    }

    /// `cd WORD`: the directories it may go to (relative to every possible directory, and to
    /// `CDPATH` entries set in the command).
    fn cd(&mut self, word: &Word, new_cwds: &mut Vec<PathBuf>) {
        if word.literal().as_deref() == Some("-") {
            if self.state.previous.is_empty() {
                self.note("cd - to a directory not known here".to_owned());
            }
            new_cwds.extend(self.state.previous.clone());
            return;
        }
        for variant in self.expand(word) {
            let (text, complete) = if variant.complete {
                (variant.text, true)
            } else {
                match variant.text.rfind('/') {
                    Some(slash) => (variant.text.get(..=slash).unwrap_or("").to_owned(), false),
                    None => {
                        self.note(format!(
                            "cd to an unknown directory ({}): later relative paths are resolved \
                             against the directories known before it",
                            word.shown()
                        ));
                        continue;
                    }
                }
            };
            if !complete {
                self.note(format!(
                    "cd to a partly unknown directory ({}): later relative paths are resolved \
                     against its known prefix",
                    word.shown()
                ));
            }
            let path = Path::new(&text);
            if !path.is_absolute() && self.deferred() {
                self.note(format!(
                    "relative cd {} in a loop or function: it may go further than checked",
                    word.shown()
                ));
            }
            let mut bases: Vec<PathBuf> = Vec::new();
            if path.is_absolute() {
                bases.push(PathBuf::from("/"));
            } else {
                bases.extend(self.state.cwds.iter().cloned());
                if !text.starts_with('.') {
                    let cdpath: Vec<String> = self
                        .state
                        .vars
                        .get("CDPATH")
                        .into_iter()
                        .flatten()
                        .flatten()
                        .cloned()
                        .collect();
                    for list in cdpath {
                        for entry in list.split(':').filter(|entry| !entry.is_empty()) {
                            bases.push(absolute_from(entry, &self.state.cwds));
                        }
                    }
                }
            }
            for base in bases {
                let joined = base.join(path);
                // bash's default `cd -L` removes `..` before looking at symlinks; the kernel
                // (and `cd -P`) does not: both may be where the shell ends up.
                for candidate in [
                    self.out.resolve(&joined),
                    self.out.resolve(&normalize_lexically(&joined)),
                ] {
                    self.out
                        .push(&word.raw, candidate.clone(), AccessKind::ChangeDirectory);
                    if !contains(new_cwds, &candidate) {
                        new_cwds.push(candidate);
                    }
                }
            }
        }
    }

    fn cd_home(&mut self, new_cwds: &mut Vec<PathBuf>) {
        for home in self.values("HOME") {
            match home {
                Some(home) => {
                    let resolved = self.out.resolve(&absolute_from(&home, &self.state.cwds));
                    self.out
                        .push("cd", resolved.clone(), AccessKind::ChangeDirectory);
                    new_cwds.push(resolved);
                }
                None => self.note("cd to an unknown $HOME".to_owned()),
            }
        }
    }

    fn change_directory(&mut self, new_cwds: Vec<PathBuf>) {
        let old = self.state.cwds.clone();
        if self.deferred() {
            self.collected
                .volatile_cwds
                .extend(new_cwds.iter().cloned());
        }
        for cwd in new_cwds {
            if contains(&self.state.cwds, &cwd) {
                continue;
            }
            if self.state.cwds.len() >= MAX_CWDS {
                self.note("too many possible working directories (some not checked)".to_owned());
                break;
            }
            self.state.cwds.push(cwd);
        }
        for cwd in old {
            if !contains(&self.state.previous, &cwd) {
                self.state.previous.push(cwd);
            }
        }
    }
}

/// Where a word appears, which decides what in it is a path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Usage {
    /// The command word: a plain name is looked up in `$PATH`, not the directory.
    Command,
    /// An argument; `-x…` is an option until `--`.
    Argument { options: bool },
    /// The value of an assignment.
    Value,
    /// A redirection target: any word is a path.
    Redirect,
}

enum NestedKind {
    /// `sh -c`: a new shell; its `cd` and variables do not come back.
    ChildShell,
    /// `eval`: runs in this shell.
    CurrentShell,
}

/// `paths.contains(path)` for normalised paths, comparing bytes.
fn contains(paths: &[PathBuf], path: &Path) -> bool {
    paths.iter().any(|p| p.as_os_str() == path.as_os_str())
}

fn absolute_from(path: &str, cwds: &[PathBuf]) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        return path.to_path_buf();
    }
    cwds.first()
        .map_or_else(|| Path::new("/").join(path), |cwd| cwd.join(path))
}

fn push_variant(variants: &mut Vec<Variant>, variant: Variant) {
    if !variants
        .iter()
        .any(|v| v.text == variant.text && v.complete == variant.complete)
    {
        variants.push(variant);
    }
}

/// Index of the `cd`/`pushd` operand (after `-L`, `-P`, `-e`, `-@`, `--`), if any.
fn cd_operand(literals: &[Option<String>], command: usize) -> Option<usize> {
    for (index, literal) in literals.iter().enumerate().skip(command + 1) {
        match literal.as_deref() {
            Some("--") => return (index + 1 < literals.len()).then_some(index + 1),
            Some(option) if option.len() > 1 && option.starts_with('-') => {}
            _ => return Some(index),
        }
    }
    None
}

/// Finds what script a command runs through a shell: `sh -c WORD` anywhere in the command
/// (`sudo sh -c`, `xargs sh -c`, `find -exec sh -c`), `su -c WORD`, `flock F -c WORD`; a shell
/// as the command (possibly behind wrappers) without `-c` reads a script file or stdin.
fn find_script(literals: &[Option<String>], command: usize) -> Script {
    if matches!(literals.get(command), Some(None)) {
        // An unknown program (`$SHELL -c …`): a `-c` script is analysed in case it is a shell.
        return shell_script(literals, command, false);
    }
    let mut wrapped = true;
    let mut checked_su = false;
    for (index, literal) in literals.iter().enumerate().skip(command) {
        let Some(text) = literal.as_deref() else {
            wrapped = false;
            continue;
        };
        let base = basename(text);
        if !checked_su && matches!(base, "su" | "flock" | "runuser") {
            checked_su = true;
            for (i, arg) in literals.iter().enumerate().skip(index + 1) {
                if matches!(arg.as_deref(), Some("-c" | "--command")) {
                    return if i + 1 < literals.len() {
                        Script::Arg(i + 1)
                    } else {
                        Script::None
                    };
                }
            }
        }
        if SHELLS.contains(&base) {
            return shell_script(literals, index, wrapped);
        }
        let is_wrapper_word = WRAPPERS.contains(&base)
            || (index > command
                && (text.starts_with('-')
                    || text.contains('=')
                    || text.bytes().all(|b| b.is_ascii_digit() || b == b'.')));
        if !is_wrapper_word {
            wrapped = false;
        }
    }
    Script::None
}

fn shell_script(literals: &[Option<String>], shell: usize, is_command: bool) -> Script {
    let mut with_c = false;
    let mut skip_next = false;
    for (index, literal) in literals.iter().enumerate().skip(shell + 1) {
        if skip_next {
            skip_next = false;
            continue;
        }
        let text = literal.as_deref().unwrap_or("");
        if matches!(text, "-o" | "+o" | "-O" | "+O" | "--rcfile" | "--init-file") {
            skip_next = true;
            continue;
        }
        if text == "--" {
            continue;
        }
        if text.starts_with("--") {
            continue;
        }
        if let Some(flags) = text.strip_prefix('-').or_else(|| text.strip_prefix('+'))
            && !flags.is_empty()
        {
            with_c |= text.starts_with('-') && flags.contains('c');
            continue;
        }
        if with_c {
            return Script::Arg(index);
        }
        return if is_command {
            Script::File(index)
        } else {
            Script::None
        };
    }
    if is_command && !with_c {
        Script::Stdin
    } else {
        Script::None
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A workspace with symlinks, an outside directory and a home, under one tempdir.
    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
        ws: PathBuf,
        home: PathBuf,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let root = std::fs::canonicalize(dir.path()).unwrap();
            let ws = root.join("ws");
            let home = root.join("home");
            for d in [
                "ws/src",
                "ws/sub/dir",
                "ws/dir with space",
                "ws/ünïcødé",
                "home/.ssh",
                "outside",
                "srv/app",
                "srv/app2",
            ] {
                std::fs::create_dir_all(root.join(d)).unwrap();
            }
            for f in [
                "ws/src/main.rs",
                "ws/sub/file.txt",
                "outside/secret.txt",
                "home/.bashrc",
            ] {
                std::fs::write(root.join(f), "x").unwrap();
            }
            symlink("/etc", ws.join("link_etc")).unwrap();
            symlink("../outside", ws.join("link_out")).unwrap();
            symlink(
                "/nonexistent-opencode-remote-test/target",
                ws.join("dangling"),
            )
            .unwrap();
            symlink("loop_b", ws.join("loop_a")).unwrap();
            symlink("loop_a", ws.join("loop_b")).unwrap();
            symlink("../srv/app2", ws.join("link_app2")).unwrap();
            Fixture {
                _dir: dir,
                root,
                ws,
                home,
            }
        }

        fn expand(&self, pattern: &str) -> PathBuf {
            PathBuf::from(
                pattern
                    .replace("{ws}", self.ws.to_str().unwrap())
                    .replace("{home}", self.home.to_str().unwrap())
                    .replace("{root}", self.root.to_str().unwrap()),
            )
        }

        fn analyze(&self, command: &str) -> Analysis {
            analyze(command, &self.ws, &self.home)
        }

        /// Resolved paths other than the working directory.
        fn paths(&self, command: &str) -> Vec<PathBuf> {
            let analysis = self.analyze(command);
            assert_eq!(analysis.paths[0].kind, AccessKind::Cwd, "{command}");
            analysis.paths[1..]
                .iter()
                .map(|a| a.resolved.clone())
                .collect()
        }
    }

    /// Command → every resolved path after the working directory, in order.
    const CORPUS: &[(&str, &[&str])] = &[
        // Plain words are not operands; path-like ones are.
        ("ls", &[]),
        ("ls -la", &[]),
        ("cat foo.txt", &[]),
        ("echo hello world", &[]),
        ("cat src/main.rs", &["{ws}/src/main.rs"]),
        ("cat ./src/main.rs", &["{ws}/src/main.rs"]),
        ("cat /etc/passwd", &["/etc/passwd"]),
        ("cat /etc/passwd /etc/hosts", &["/etc/passwd", "/etc/hosts"]),
        ("cat /etc/passwd /etc/passwd", &["/etc/passwd"]),
        ("ls /etc", &["/etc"]),
        ("cat ../outside/secret.txt", &["{root}/outside/secret.txt"]),
        ("cat ..", &["{root}"]),
        ("ls sub/../..", &["{root}"]),
        ("cat src/../../outside", &["{root}/outside"]),
        (
            "cat sub/file.txt sub/../src/main.rs",
            &["{ws}/sub/file.txt", "{ws}/src/main.rs"],
        ),
        ("cat ./sub/./dir/", &["{ws}/sub/dir"]),
        ("cat //etc//passwd", &["/etc/passwd"]),
        ("cat /etc/../etc/./hosts", &["/etc/hosts"]),
        ("cat /../../etc/hosts", &["/etc/hosts"]),
        ("ls ~", &["{home}"]),
        ("cat ~/.ssh/id_rsa", &["{home}/.ssh/id_rsa"]),
        ("cat ~root/.profile", &["/root/.profile"]),
        ("cat '~/x'", &["{ws}/~/x"]),
        ("cat \"~\"", &[]),
        ("cat a~/x", &["{ws}/a~/x"]),
        ("/usr/local/bin/tool --help", &["/usr/local/bin/tool"]),
        ("../outside/run.sh", &["{root}/outside/run.sh"]),
        ("./build.sh", &["{ws}/build.sh"]),
        // URLs and remote paths are not local paths; file:// is.
        ("curl https://example.com/a/b", &[]),
        ("curl http://localhost:8080/a/b", &[]),
        ("wget localhost:8080/a", &[]),
        ("git clone git@github.com:org/repo.git", &[]),
        ("scp user@host:/etc/passwd .", &[]),
        ("curl file:///etc/passwd", &["/etc/passwd"]),
        ("rsync -a src/ backup:/srv/", &["{ws}/src"]),
        // Quoting.
        ("cat \"/etc/passwd\"", &["/etc/passwd"]),
        ("cat '/etc/passwd'", &["/etc/passwd"]),
        ("cat /etc/pa\"ss\"wd", &["/etc/passwd"]),
        ("cat /etc/pa\\sswd", &["/etc/passwd"]),
        ("cat \"/etc/\"'passwd'", &["/etc/passwd"]),
        ("cat $'/etc/passwd'", &["/etc/passwd"]),
        ("cat $'\\x2fetc\\x2fpasswd'", &["/etc/passwd"]),
        ("cat $'\\057etc/passwd'", &["/etc/passwd"]),
        ("cat $'\\u002fetc/hosts'", &["/etc/hosts"]),
        ("cat $\"/etc/hosts\"", &["/etc/hosts"]),
        ("cat \"dir with space/x\"", &["{ws}/dir with space/x"]),
        ("cat dir\\ with\\ space/x", &["{ws}/dir with space/x"]),
        ("echo 'a;b' /etc/hosts", &["/etc/hosts"]),
        ("echo 'cat /etc/passwd'", &["{ws}/cat /etc/passwd"]),
        ("echo \"it's\" /etc/hosts", &["/etc/hosts"]),
        ("echo 'it'\\''s' /etc/hosts", &["/etc/hosts"]),
        ("cat \"/etc/$\"", &["/etc/$"]),
        ("cat \"a\\\"b/c\"", &["{ws}/a\"b/c"]),
        ("cat 'a\\b/c'", &["{ws}/a\\b/c"]),
        ("cat \"a\\b/c\"", &["{ws}/a\\b/c"]),
        ("cat a\\\\b/c", &["{ws}/a\\b/c"]),
        ("cat /etc/pass\\\nwd", &["/etc/passwd"]),
        ("cat \\\n/etc/hosts", &["/etc/hosts"]),
        ("# cat /etc/passwd", &[]),
        ("ls # /etc/passwd", &[]),
        ("ls #/etc/passwd\ncat /etc/hosts", &["/etc/hosts"]),
        ("echo a#/b", &["{ws}/a#/b"]),
        ("cat \"\"", &[]),
        ("cat '' /etc/hosts", &["/etc/hosts"]),
        ("echo '\"' /etc/hosts '\"'", &["/etc/hosts"]),
        ("echo \"'\" /etc/hosts", &["/etc/hosts"]),
        ("echo \\' /etc/hosts", &["/etc/hosts"]),
        ("echo \\# /etc/hosts", &["/etc/hosts"]),
        ("echo \\; cat /etc/hosts", &["/etc/hosts"]),
        ("echo '$(cat /etc/passwd)'", &["{ws}/$(cat /etc/passwd)"]),
        // Every operator separates commands.
        ("ls; cat /etc/passwd", &["/etc/passwd"]),
        ("ls;cat /etc/passwd", &["/etc/passwd"]),
        ("ls && cat /etc/passwd", &["/etc/passwd"]),
        ("ls&&cat /etc/passwd", &["/etc/passwd"]),
        ("ls || cat /etc/passwd", &["/etc/passwd"]),
        ("ls | cat /etc/passwd", &["/etc/passwd"]),
        ("ls|cat /etc/passwd", &["/etc/passwd"]),
        ("ls |& cat /etc/passwd", &["/etc/passwd"]),
        ("ls & cat /etc/passwd", &["/etc/passwd"]),
        ("ls&cat /etc/passwd", &["/etc/passwd"]),
        ("ls\ncat /etc/passwd", &["/etc/passwd"]),
        ("(cat /etc/passwd)", &["/etc/passwd"]),
        ("(ls)&&(cat /etc/passwd)", &["/etc/passwd"]),
        ("{ cat /etc/passwd; }", &["/etc/passwd"]),
        ("ls ;; cat /etc/hosts", &["/etc/hosts"]),
        (
            "true && (false || cat /etc/hosts) ; ls /etc",
            &["/etc/hosts", "/etc"],
        ),
        ("! cat /etc/hosts", &["/etc/hosts"]),
        ("time cat /etc/hosts", &["/etc/hosts"]),
        (
            "if test -f /etc/hosts; then cat /etc/passwd; else ls ../x; fi",
            &["/etc/hosts", "/etc/passwd", "{root}/x"],
        ),
        (
            "while read l; do echo \"$l\"; done < /etc/hosts",
            &["/etc/hosts"],
        ),
        ("until false; do rm -rf /tmp/x; done", &["/tmp/x"]),
        (
            "for f in /etc/hosts /etc/passwd; do cat \"$f\"; done",
            &["/etc/hosts", "/etc/passwd"],
        ),
        (
            "case x in a) cat /etc/passwd;; b|c) ls /etc;; esac",
            &["/etc/passwd", "/etc"],
        ),
        (
            "case \"$(cat /etc/hosts)\" in\n *) ls;;\nesac",
            &["/etc/hosts"],
        ),
        ("f() { cat /etc/passwd; }; f", &["/etc/passwd"]),
        ("function g { cat /etc/hosts; }", &["/etc/hosts"]),
        ("[[ -f /etc/hosts ]] && echo yes", &["/etc/hosts"]),
        ("[ -d /etc ] || mkdir x/y", &["/etc", "{ws}/x/y"]),
        ("ls *.rs && cat [ab]/x", &[]),
        // Redirections: any target word, but not fd duplications or here-document data.
        ("echo hi > out.txt", &["{ws}/out.txt"]),
        ("echo hi >out.txt", &["{ws}/out.txt"]),
        ("echo hi>out.txt", &["{ws}/out.txt"]),
        ("> out.txt echo hi", &["{ws}/out.txt"]),
        ("echo hi >> /tmp/log", &["/tmp/log"]),
        ("cat < /etc/passwd", &["/etc/passwd"]),
        ("cat </etc/passwd", &["/etc/passwd"]),
        ("cat 0</etc/hosts", &["/etc/hosts"]),
        ("ls 2> err.log", &["{ws}/err.log"]),
        ("ls 2>/dev/null", &[]),
        ("ls > /dev/null 2>&1", &[]),
        ("ls 2>&1 | tee log.txt", &[]),
        ("ls &> /tmp/all.log", &["/tmp/all.log"]),
        ("ls &>> /tmp/all.log", &["/tmp/all.log"]),
        ("ls >& /tmp/both.log", &["/tmp/both.log"]),
        ("ls >&2", &[]),
        ("ls 1>&2 3>&-", &[]),
        ("ls 2>&1 >/dev/stdout", &[]),
        ("exec 3< /etc/hosts", &["/etc/hosts"]),
        ("exec {fd}>/tmp/fd", &["/tmp/fd"]),
        ("ls 10>/tmp/ten", &["/tmp/ten"]),
        ("echo x >| /tmp/clobber", &["/tmp/clobber"]),
        ("cat <> /tmp/rw", &["/tmp/rw"]),
        (">/tmp/x", &["/tmp/x"]),
        ("echo > \"$HOME/x\"", &["{home}/x"]),
        ("echo 2>/etc/x", &["/etc/x"]),
        ("cat <<< /etc/passwd", &[]),
        ("cat <<<'/etc/passwd' > o/x", &["{ws}/o/x"]),
        ("cat <<EOF\n/etc/passwd\nEOF", &[]),
        ("cat <<EOF > /tmp/out\nhello\nEOF", &["/tmp/out"]),
        ("cat <<'EOF'\n$(cat /etc/passwd)\nEOF", &[]),
        ("cat <<\"EOF\"\n`cat /etc/passwd`\nEOF", &[]),
        ("cat <<EOF\n$(cat /etc/passwd)\nEOF", &["/etc/passwd"]),
        (
            "cat <<EOF\n`cat /etc/hosts` and \\$(cat /etc/passwd)\nEOF",
            &["/etc/hosts"],
        ),
        (
            "cat <<-EOF\n\tx /etc/passwd\n\tEOF\ncat /etc/hosts",
            &["/etc/hosts"],
        ),
        (
            "cat <<EOF; cat /etc/hosts\nbody /etc/passwd\nEOF",
            &["/etc/hosts"],
        ),
        ("cat <<A <<B\n/a\nA\n/b\nB\nls /etc", &["/etc"]),
        ("cat << EOF | grep x > ../out\nEOF\n", &["{root}/out"]),
        ("bash <<EOF\ncat /etc/passwd\nEOF", &["/etc/passwd"]),
        (
            "sh <<'EOF'\ncd /etc && cat ./shadow\nEOF",
            &["/etc", "{ws}/shadow", "/etc/shadow"],
        ),
        ("sh <<< 'cat /etc/hosts'", &["/etc/hosts"]),
        // cd changes where later relative operands resolve (the old directory stays possible).
        ("cd sub && cat file.txt", &["{ws}/sub"]),
        (
            "cd sub && cat dir/x",
            &["{ws}/sub", "{ws}/dir/x", "{ws}/sub/dir/x"],
        ),
        ("cd /etc && cat passwd", &["/etc"]),
        (
            "cd /etc; cat ./passwd",
            &["/etc", "{ws}/passwd", "/etc/passwd"],
        ),
        ("cd .. && ls", &["{root}"]),
        (
            "cd ../outside && cat ./secret.txt",
            &[
                "{root}/outside",
                "{ws}/secret.txt",
                "{root}/outside/secret.txt",
            ],
        ),
        ("cd", &["{home}"]),
        ("cd ~ && ls", &["{home}"]),
        ("cd -P /etc", &["/etc"]),
        ("cd -- /etc", &["/etc"]),
        ("cd \"dir with space\"", &["{ws}/dir with space"]),
        ("pushd /etc && popd", &["/etc"]),
        ("(cd /etc); cat ./passwd", &["/etc", "{ws}/passwd"]),
        (
            "(cd /etc && cat ./passwd)",
            &["/etc", "{ws}/passwd", "/etc/passwd"],
        ),
        ("(cd /etc) && (cat ./passwd)", &["/etc", "{ws}/passwd"]),
        (
            "cd /etc | cat ./hosts",
            &["/etc", "{ws}/hosts", "/etc/hosts"],
        ),
        (
            "cd link_etc && cat ./hosts",
            &["/etc", "{ws}/hosts", "/etc/hosts"],
        ),
        ("cd link_etc/.. && ls", &["/"]),
        (
            "cd /etc && cd .. && cat ./x",
            &["/etc", "{root}", "/", "{ws}/x", "/etc/x", "{root}/x", "/x"],
        ),
        ("cd /etc && cd - && cat ./x", &["/etc", "{ws}/x", "/etc/x"]),
        (
            "cd ünïcødé && ls ./файл",
            &["{ws}/ünïcødé", "{ws}/файл", "{ws}/ünïcødé/файл"],
        ),
        ("CDPATH=/etc cd ssh", &["/etc", "{ws}/ssh", "/etc/ssh"]),
        ("cd $DIR && cat ./x", &["{ws}/x"]),
        ("cd /srv/$X", &["/srv"]),
        ("HOME=/etc; cd; cat ./x", &["/etc", "{ws}/x", "/etc/x"]),
        (
            "if cd /etc; then cat ./passwd; fi",
            &["/etc", "{ws}/passwd", "/etc/passwd"],
        ),
        (
            "f() { cd /etc; }; f; cat ./passwd",
            &["/etc", "{ws}/passwd", "/etc/passwd"],
        ),
        ("$(cd /etc); cat ./x", &["/etc", "{ws}/x"]),
        // Variables assigned in the command are followed.
        ("X=/etc; cat $X/passwd", &["/etc", "/etc/passwd"]),
        ("X=/etc && cat \"${X}/passwd\"", &["/etc", "/etc/passwd"]),
        ("export X=/etc; cat $X/hosts", &["/etc", "/etc/hosts"]),
        ("X=/etc cat $X/passwd", &["/etc", "/etc/passwd"]),
        (
            "X=~/.ssh; cat $X/id_rsa",
            &["{home}/.ssh", "{home}/.ssh/id_rsa"],
        ),
        ("HOME=/etc; cat ~/passwd", &["/etc", "/etc/passwd"]),
        (
            "X=/srv/ok; false && X=/etc; cat $X/passwd",
            &["/srv/ok", "/etc", "/srv/ok/passwd", "/etc/passwd"],
        ),
        (
            "readonly X=/etc; X=/srv/ok; cat $X/passwd",
            &["/etc", "/srv/ok", "/etc/passwd", "/srv/ok/passwd"],
        ),
        (
            "X=/srv/ok; f() { X=/etc; }; f; cat $X/p",
            &["/srv/ok", "/etc", "/srv/ok/p", "/etc/p"],
        ),
        (
            "X=/srv/ok; eval X=/etc; cat $X/p",
            &["/srv/ok", "/etc", "/srv/ok/p", "/etc/p"],
        ),
        ("X=/srv/ok; read X; cat $X/p", &["/srv/ok", "/srv/ok/p"]),
        (
            "X=/srv/ok; unset X; cat $X/p",
            &["/srv/ok", "/srv/ok/p", "/p"],
        ),
        ("X=a; X+=/etc; cat $X", &["/etc", "{ws}/a/etc"]),
        (
            "PATH=/opt/bin:/usr/local/bin make",
            &["/opt/bin", "/usr/local/bin"],
        ),
        ("cat $HOME/.bashrc", &["{home}/.bashrc"]),
        ("cat ${HOME}/.bashrc", &["{home}/.bashrc"]),
        ("cat \"$PWD/src/main.rs\"", &["{ws}/src/main.rs"]),
        ("cat ${X:-/etc/passwd}", &["/etc/passwd"]),
        ("cat ${X:=/etc/hosts}; cat $X", &["/etc/hosts"]),
        ("cat ${X:+/etc/hosts}", &["/etc/hosts"]),
        ("cat ${X%/*}/y", &[]),
        (
            "X=/srv/ok; sh -c 'cat $X/p'",
            &["/srv/ok", "/srv/ok/p", "/p"],
        ),
        ("X=/srv/ok; sh -c \"cat $X/p\"", &["/srv/ok", "/srv/ok/p"]),
        // Unknown parts: the literal prefix is checked.
        ("cat $UNKNOWN", &[]),
        ("cat /etc/$X", &["/etc"]),
        ("cat /etc/*.conf", &["/etc"]),
        ("cat /etc/{passwd,shadow}", &["/etc"]),
        ("ls /e*", &["/"]),
        ("cat src/*.rs", &["{ws}/src"]),
        ("cat ~/$F", &["{home}"]),
        ("cat ../$F", &["{root}"]),
        ("cat ..$F", &["{root}"]),
        ("echo $? $# $$ /etc/hosts", &["/etc/hosts"]),
        ("echo $((1+2)) /etc/hosts", &["/etc/hosts"]),
        ("echo {a,b}/x", &[]),
        // Nested code is analysed.
        ("cat $(cat list.txt)", &[]),
        ("cat $(cat /etc/hosts)", &["/etc/hosts"]),
        ("cat `cat /etc/hosts`", &["/etc/hosts"]),
        ("echo \"$(cat /etc/passwd)\"", &["/etc/passwd"]),
        ("echo \"`cat \\\"/etc/passwd\\\"`\"", &["/etc/passwd"]),
        ("echo $(echo $(cat /etc/hosts))", &["/etc/hosts"]),
        (
            "echo $( (cd /etc && cat ./x) )",
            &["/etc", "{ws}/x", "/etc/x"],
        ),
        (
            "x=$(case a in a) cat /etc/hosts;; esac) && ls ../o",
            &["/etc/hosts", "{root}/o"],
        ),
        (
            "diff <(cat /etc/passwd) <(cat /etc/hosts)",
            &["/etc/passwd", "/etc/hosts"],
        ),
        ("tee >(gzip > /tmp/x.gz)", &["/tmp/x.gz"]),
        ("echo ${X:-$(cat /etc/hosts)}", &["/etc/hosts"]),
        ("sh -c 'cat /etc/passwd'", &["/etc/passwd"]),
        (
            "bash -lc \"cd /etc && cat ./shadow\"",
            &["/etc", "{ws}/shadow", "/etc/shadow"],
        ),
        ("bash -o pipefail -c 'cat /etc/hosts'", &["/etc/hosts"]),
        ("sh -e -c 'ls /etc'", &["/etc"]),
        ("sudo sh -c 'echo x > /etc/motd'", &["/etc/motd"]),
        (
            "env -i PATH=/usr/bin sh -c 'cat /etc/hosts'",
            &["/usr/bin", "/etc/hosts"],
        ),
        ("find . -exec sh -c 'cat /etc/hosts' \\;", &["/etc/hosts"]),
        ("xargs -n1 sh -c 'rm -rf /tmp/$1' _", &["/tmp"]),
        ("su -c 'cat /etc/shadow' root", &["/etc/shadow"]),
        ("eval 'cat /etc/passwd'", &["/etc/passwd"]),
        (
            "eval cd /etc; cat ./passwd",
            &["/etc", "{ws}/passwd", "/etc/passwd"],
        ),
        ("trap 'rm -f /tmp/lock' EXIT", &["/tmp/lock"]),
        ("bash script.sh", &[]),
        ("bash ./scripts/run.sh", &["{ws}/scripts/run.sh"]),
        ("curl https://x | sh", &[]),
        ("source ~/.bashrc", &["{home}/.bashrc"]),
        (". ./env.sh", &["{ws}/env.sh"]),
        // Wrappers need nothing special.
        ("find . -name '*.rs' -exec cat {} \\;", &[]),
        ("find /etc -name x -exec rm {} +", &["/etc"]),
        ("xargs -I{} cp {} /tmp/dest", &["/tmp/dest"]),
        ("sudo cat /etc/shadow", &["/etc/shadow"]),
        ("sudo -u root -- cat /etc/shadow", &["/etc/shadow"]),
        (
            "nohup ./run.sh > /tmp/log 2>&1 &",
            &["{ws}/run.sh", "/tmp/log"],
        ),
        ("env FOO=/etc/x ls", &["/etc/x"]),
        ("env -C /etc ls", &["/etc"]),
        ("git -C ../outside status", &["{root}/outside"]),
        ("tar -xzf a.tgz -C /opt", &["/opt"]),
        (
            "gcc -I/usr/include -L../lib -o./out main.c",
            &["/usr/include", "{root}/lib", "{ws}/out"],
        ),
        ("cmd --config=/etc/app.conf", &["/etc/app.conf"]),
        ("cmd --output ../x", &["{root}/x"]),
        ("cmd -- -x/y", &["{ws}/-x/y"]),
        ("cmd -x/y", &["/y"]),
        ("dd if=/dev/zero of=/tmp/disk.img bs=1M", &["/tmp/disk.img"]),
        ("docker run -v /etc:/host-etc img", &["/etc", "/host-etc"]),
        ("ls a/b=c", &["{ws}/a/b=c"]),
        // Symlinks are followed: escapes show up where they land.
        ("cat link_etc/passwd", &["/etc/passwd"]),
        ("cat link_etc", &["/etc"]),
        ("cat link_out/secret.txt", &["{root}/outside/secret.txt"]),
        (
            "echo x > dangling",
            &["/nonexistent-opencode-remote-test/target"],
        ),
        ("cat link_etc/../hosts", &["/hosts"]),
        ("cat link_app2/x", &["{root}/srv/app2/x"]),
        ("cat loop_a", &["{ws}/loop_a"]),
        ("cat sub/dir/../file.txt", &["{ws}/sub/file.txt"]),
        ("cat src/main.rs/../x", &["{ws}/src/x"]),
        // Multibyte paths.
        ("ls ünïcødé/файл.txt", &["{ws}/ünïcødé/файл.txt"]),
        ("cat /tmp/日本語/ファイル", &["/tmp/日本語/ファイル"]),
        ("echo 😀 > 😀/x", &["{ws}/😀/x"]),
        ("cat ../srv/app2/x", &["{root}/srv/app2/x"]),
        // Loop bodies repeat: what they set is possible before it in the text too.
        (
            "while true; do cat ./x; cd /etc; done",
            &["{ws}/x", "/etc/x", "/etc"],
        ),
        (
            "for i in 1 2; do cat $X/p; X=/etc; done",
            &["/etc/p", "/etc"],
        ),
        ("for f in /etc/hosts; do cat \"$f\"; done", &["/etc/hosts"]),
        (
            "f() { X=/etc; }; X=/srv/ok; f; cat $X/p",
            &["/etc", "/srv/ok", "/srv/ok/p", "/etc/p"],
        ),
        ("g() (cd /etc); g; cat ./x", &["/etc", "{ws}/x"]),
        // Wrappers of builtins and unknown shells.
        ("command cd /etc && cat ./x", &["/etc", "{ws}/x", "/etc/x"]),
        (
            "builtin cd link_etc; cat ./x",
            &["/etc", "{ws}/x", "/etc/x"],
        ),
        ("cd /etc && pushd && cat ./x", &["/etc", "{ws}/x", "/etc/x"]),
        ("$SHELL -c 'cat /etc/hosts'", &["/etc/hosts"]),
        ("\"$SHELL\" -lc \"cd /etc\"", &["/etc"]),
        ("cat <<< \"$(cat /etc/hosts)\"", &["/etc/hosts"]),
        ("exec > >(tee /tmp/log)", &["/tmp/log"]),
    ];

    #[test]
    fn analyze_should_resolve_the_corpus() {
        let fixture = Fixture::new();
        let mut failures = Vec::new();
        for (command, expected) in CORPUS {
            let expected: Vec<PathBuf> = expected.iter().map(|p| fixture.expand(p)).collect();
            let actual = fixture.paths(command);
            if actual != expected {
                failures.push(format!(
                    "{command:?}\n  expected {expected:?}\n  actual   {actual:?}\n  notes    {:?}",
                    fixture.analyze(command).notes
                ));
            }
        }
        assert!(CORPUS.len() >= 150, "corpus has {} commands", CORPUS.len());
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn analyze_should_report_kinds_in_order_of_appearance() {
        let fixture = Fixture::new();
        let analysis = fixture.analyze("cd sub && cat ./file.txt > ../out.log 2>&1 < /etc/hosts");
        let actual: Vec<(AccessKind, &str, PathBuf, bool)> = analysis
            .paths
            .iter()
            .map(|a| (a.kind, a.raw.as_str(), a.resolved.clone(), a.is_dir))
            .collect();
        // After `cd sub` both directories are possible (the cd may fail), so relative
        // operands appear twice.
        let ws = fixture.ws.to_str().unwrap();
        let expected = [
            (AccessKind::Cwd, ws, "{ws}", true),
            (AccessKind::ChangeDirectory, "sub", "{ws}/sub", true),
            (AccessKind::Operand, "./file.txt", "{ws}/file.txt", false),
            (
                AccessKind::Operand,
                "./file.txt",
                "{ws}/sub/file.txt",
                false,
            ),
            (
                AccessKind::RedirectTarget,
                "../out.log",
                "{root}/out.log",
                false,
            ),
            (
                AccessKind::RedirectTarget,
                "../out.log",
                "{ws}/out.log",
                false,
            ),
            (
                AccessKind::RedirectTarget,
                "/etc/hosts",
                "/etc/hosts",
                false,
            ),
        ]
        .map(|(kind, raw, path, dir)| (kind, raw, fixture.expand(path), dir));
        assert_eq!(actual, expected);
    }

    #[test]
    fn analyze_should_mark_existing_directories_only() {
        let fixture = Fixture::new();
        let analysis = fixture.analyze("ls sub/dir sub/file.txt sub/missing link_etc/");
        let dirs: Vec<bool> = analysis.paths.iter().map(|a| a.is_dir).collect();
        assert_eq!(dirs, [true, true, false, false, true]);
    }

    #[test]
    fn analyze_should_note_what_it_cannot_know() {
        let fixture = Fixture::new();
        let cases: &[(&str, &[&str])] = &[
            ("cat $FOO/x", &["$FOO expansion in $FOO/x"]),
            ("cat \"${FOO}\"", &["$FOO expansion in \"${FOO}\""]),
            ("cat $(pwd)/x", &["command substitution in $(pwd)/x"]),
            ("cat `pwd`/x", &["command substitution in `pwd`/x"]),
            ("ls *.rs", &["glob in *.rs"]),
            ("ls {a,b}", &["brace expansion in {a,b}"]),
            ("echo $((1+1))", &["arithmetic expansion in $((1+1))"]),
            ("echo ${X%/*}", &["parameter expansion in ${X%/*}"]),
            (
                "cat ~nosuchuser-xyz/x",
                &["unknown user in ~nosuchuser-xyz in ~nosuchuser-xyz/x"],
            ),
            (
                "bash run.sh",
                &["bash runs the script run.sh (its contents are not analysed)"],
            ),
            (
                "curl x | sh",
                &["sh runs a script from standard input (not analysed)"],
            ),
            (
                "sh < x.sh",
                &["the shell runs the script x.sh (its contents are not analysed)"],
            ),
            (
                "curl x | sh > log",
                &["sh runs a script from standard input (not analysed)"],
            ),
            ("source x", &["sources x (its contents are not analysed)"]),
            ("cd -", &["cd - to a directory not known here"]),
            ("cat 'x", &["unterminated single quote"]),
            ("cat \"x", &["unterminated double quote"]),
            (
                "echo $(ls",
                &[
                    "unterminated command substitution",
                    "command substitution in $(ls",
                ],
            ),
            ("cat <<EOF\nx", &["here-document not terminated by EOF"]),
            (
                "cat <<EOF\n$(date)\nEOF",
                &["command substitution in a here-document"],
            ),
            ("echo >", &["redirection without a target"]),
            (
                "sh -c \"$X\"",
                &[
                    "$X expansion in \"$X\"",
                    "shell script with unknown parts: \"$X\"",
                ],
            ),
            (
                "cd $D",
                &[
                    "$D expansion in $D",
                    "cd to an unknown directory ($D): later relative paths are resolved against \
                     the directories known before it",
                ],
            ),
        ];
        for (command, expected) in cases {
            let notes = fixture.analyze(command).notes;
            assert_eq!(&notes, expected, "{command}");
        }
        for quiet in [
            "ls -la",
            "cat src/main.rs > out 2>&1",
            "X=/etc; cat $X/passwd",
            "for f in a b; do echo $f; done",
            "echo $? $$ $# $!",
            "cat ~/x $HOME/y",
            "cat <<'EOF'\n$(x)\nEOF",
            "sh -c 'ls'",
        ] {
            assert_eq!(
                fixture.analyze(quiet).notes,
                Vec::<String>::new(),
                "{quiet}"
            );
        }
    }

    #[test]
    fn analyze_should_catch_symlink_escapes() {
        let fixture = Fixture::new();
        let within_ws = |command: &str| -> Vec<bool> {
            fixture
                .analyze(command)
                .paths
                .iter()
                .map(|a| is_within(&a.resolved, &fixture.ws))
                .collect()
        };
        // The link lives in the workspace, but it leads to /etc.
        assert_eq!(within_ws("cat link_etc/passwd"), [true, false]);
        assert_eq!(within_ws("cat link_etc"), [true, false]);
        assert_eq!(within_ws("cat < link_etc/hosts"), [true, false]);
        assert_eq!(within_ws("cd link_etc"), [true, false]);
        assert_eq!(within_ws("cat ./link_out/secret.txt"), [true, false]);
        assert_eq!(within_ws("echo x > dangling"), [true, false]);
        assert_eq!(within_ws("cp a link_app2"), [true, false]);
        assert_eq!(within_ws("cat sub/file.txt"), [true, true]);
        // A workspace that is itself reached through a symlink resolves to where it is.
        let alias = fixture.root.join("alias");
        symlink(&fixture.ws, &alias).unwrap();
        let analysis = analyze("cat ./src/main.rs", &alias, &fixture.home);
        assert_eq!(analysis.paths[0].resolved, fixture.ws);
        assert_eq!(analysis.paths[0].raw, alias.to_str().unwrap());
        assert_eq!(analysis.paths[1].resolved, fixture.ws.join("src/main.rs"));
    }

    #[test]
    fn is_within_should_compare_components_not_strings() {
        let fixture = Fixture::new();
        let app = fixture.root.join("srv/app");
        let app2 = fixture.root.join("srv/app2");
        assert!(is_within(&app, &app));
        assert!(is_within(&app.join("x/y"), &app));
        assert!(!is_within(&app2, &app));
        assert!(!is_within(&app2.join("x"), &app));
        assert!(!is_within(&fixture.root, &app));
        assert!(!is_within(&app.join("../app2/x"), &app));
        assert!(is_within(&app.join("x/../y"), &app));
        assert!(is_within(Path::new("/srv/app/"), Path::new("/srv/app")));
        assert!(is_within(Path::new("/srv/app"), Path::new("/srv/app/")));
        assert!(is_within(Path::new("/anything"), Path::new("/")));
        assert!(!is_within(Path::new("srv/app"), Path::new("srv")));
        assert!(!is_within(Path::new("/srv/app"), Path::new("srv")));

        let analysis = analyze("cat ../app2/secret", &app, &fixture.home);
        assert_eq!(analysis.paths[1].resolved, app2.join("secret"));
        assert!(!is_within(&analysis.paths[1].resolved, &app));
    }

    #[test]
    fn resolve_should_expand_home_join_cwd_and_follow_links() {
        let fixture = Fixture::new();
        let (ws, home) = (&fixture.ws, &fixture.home);
        assert_eq!(resolve("~", ws, home), *home);
        assert_eq!(resolve("~/", ws, home), *home);
        assert_eq!(resolve("~/.ssh/x", ws, home), home.join(".ssh/x"));
        assert_eq!(resolve("~x", ws, home), ws.join("~x"));
        assert_eq!(resolve("", ws, home), *ws);
        assert_eq!(resolve(".", ws, home), *ws);
        assert_eq!(resolve("src/../sub/./dir/", ws, home), ws.join("sub/dir"));
        assert_eq!(resolve("../../../../../../..", ws, home), Path::new("/"));
        assert_eq!(resolve("missing/../../x", ws, home), fixture.root.join("x"));
        assert_eq!(resolve("missing/a/b", ws, home), ws.join("missing/a/b"));
        assert_eq!(resolve("link_etc/hosts", ws, home), Path::new("/etc/hosts"));
        assert_eq!(resolve("link_etc/..", ws, home), Path::new("/"));
        assert_eq!(resolve("link_out/../ws/src", ws, home), ws.join("src"));
        assert_eq!(
            resolve("dangling", ws, home),
            Path::new("/nonexistent-opencode-remote-test/target")
        );
        assert_eq!(
            resolve("dangling/../x", ws, home),
            Path::new("/nonexistent-opencode-remote-test/x")
        );
        assert_eq!(resolve("src/main.rs/x", ws, home), ws.join("src/main.rs/x"));
        assert_eq!(
            resolve("/etc/hosts", Path::new("relative/cwd"), home),
            Path::new("/etc/hosts")
        );
        // Relative symlink chains.
        symlink("link_out", ws.join("chain")).unwrap();
        assert_eq!(
            resolve("chain/secret.txt", ws, home),
            fixture.root.join("outside/secret.txt")
        );
    }

    #[test]
    fn analyze_should_survive_hostile_nesting_and_size() {
        let fixture = Fixture::new();
        let deep = [
            "$(".repeat(5_000),
            "`".repeat(5_000),
            "${".repeat(5_000),
            "(".repeat(50_000),
            ")".repeat(50_000),
            "{ ".repeat(20_000),
            "<(".repeat(5_000),
            "$((".repeat(5_000),
            "${X:-".repeat(5_000),
            "'".repeat(50_001),
            "\"$(".repeat(3_000),
            "sh -c \"".repeat(200) + "cat /etc/passwd",
            "eval \"".repeat(200),
            format!("{}cat /etc/hosts{}", "$(echo ".repeat(100), ")".repeat(100)),
            "cat <<EOF\n".repeat(2_000),
            "cd a && ".repeat(2_000) + "ls ./x",
            "X=$X/a; ".repeat(500) + "cat $X",
            "echo ".to_owned() + &"a ".repeat(200_000),
            "echo ".to_owned() + &"[".repeat(200_000),
            "echo ".to_owned() + &"{".repeat(200_000),
            "su ".repeat(50_000),
            "X=/a; false && X=/b; cat ".to_owned() + &"$X".repeat(100_000),
            (0..5_000)
                .map(|i| format!("X{i}=/v{i}; "))
                .collect::<String>()
                + &"()".repeat(50_000),
            "cat /".to_owned() + &"a/".repeat(100_000),
            "cd ".to_owned() + &"../".repeat(50_000),
        ];
        for command in &deep {
            let started = std::time::Instant::now();
            let analysis = fixture.analyze(command);
            assert_eq!(analysis.paths[0].kind, AccessKind::Cwd);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "{:.40}",
                command
            );
        }
        // Deep but legal nesting is still analysed up to the limit.
        let nested = format!("{}cat /etc/hosts{}", "$(echo ".repeat(10), ")".repeat(10));
        assert_eq!(fixture.paths(&nested), [PathBuf::from("/etc/hosts")]);
        let big = "cat src/main.rs; ".repeat(50_000);
        let started = std::time::Instant::now();
        assert_eq!(fixture.paths(&big), [fixture.ws.join("src/main.rs")]);
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    /// A small deterministic PRNG, so the property tests need no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    #[test]
    fn analyze_should_keep_its_invariants_on_random_input() {
        let fixture = Fixture::new();
        let alphabet = [
            "a", "/", "..", ".", "~", " ", "\t", "\n", ";", "&", "|", "(", ")", "{", "}", "<", ">",
            "'", "\"", "\\", "$", "`", "*", "?", "[", "]", "#", "=", ":", "-", "é", "日", "cd ",
            "$(", "${", "<<", "2>&1", "etc", "link_etc", "sh -c ", "eval ", "EOF", "X=",
        ];
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for _ in 0..3_000 {
            let len = rng.below(40);
            let command: String = (0..len).map(|_| rng.pick(&alphabet)).collect();
            let analysis = fixture.analyze(&command);
            assert_eq!(analysis.paths[0].kind, AccessKind::Cwd, "{command:?}");
            assert_eq!(analysis.paths[0].resolved, fixture.ws);
            let mut seen = HashSet::new();
            for access in &analysis.paths {
                let path = &access.resolved;
                assert!(path.is_absolute(), "{command:?}: {path:?}");
                assert!(
                    path.components()
                        .all(|c| matches!(c, Component::RootDir | Component::Normal(_))),
                    "{command:?}: {path:?}"
                );
                assert!(seen.insert(path.clone()), "{command:?}: duplicate {path:?}");
            }
        }
    }

    /// Single-quotes `text` for a POSIX shell.
    fn sh_quote(text: &str) -> String {
        format!("'{}'", text.replace('\'', "'\\''"))
    }

    #[test]
    fn analyze_should_read_quoted_paths_exactly() {
        let fixture = Fixture::new();
        let alphabet = [
            "a", "b", "/", "..", ".", " ", "\t", "\n", ";", "&", "|", "(", ")", "<", ">", "'",
            "\"", "\\", "$", "`", "*", "?", "[", "]", "#", "{", "}", "é", "日", "😀", "-", "_",
        ];
        let mut rng = Rng(0xfeed_beef_0000_0042);
        let mut checked = 0;
        for _ in 0..2_000 {
            let len = 1 + rng.below(12);
            let body: String = (0..len).map(|_| rng.pick(&alphabet)).collect();
            let text = format!("{}{body}", rng.pick(&["/tmp/q/", "sub/", "../", "./x/"]));
            let expected = resolve(&text, &fixture.ws, &fixture.home);
            if is_harmless(&expected) || expected == fixture.ws {
                continue;
            }
            let double = format!(
                "\"{}\"",
                text.chars()
                    .flat_map(|c| match c {
                        '"' | '\\' | '$' | '`' => vec!['\\', c],
                        c => vec![c],
                    })
                    .collect::<String>()
            );
            let backslashed: String = text
                .chars()
                .map(|c| match c {
                    '\n' => "'\n'".to_owned(),
                    c => format!("\\{c}"),
                })
                .collect();
            let ansi_c = format!(
                "$'{}'",
                text.bytes()
                    .map(|b| format!("\\x{b:02x}"))
                    .collect::<String>()
            );
            for quoted in [sh_quote(&text), double, backslashed, ansi_c] {
                for command in [format!("cat -- {quoted}"), format!("echo x > {quoted}")] {
                    let paths = fixture.paths(&command);
                    assert_eq!(paths, std::slice::from_ref(&expected), "{command:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000);
    }

    /// The lexer agrees with bash on what each word is, for words without run-time parts.
    #[test]
    fn lexer_should_agree_with_bash() {
        let Ok(bash) = which("bash") else {
            eprintln!("skipped: no bash on this host");
            return;
        };
        let fragments = [
            "a",
            "b/",
            "'x y'",
            "\"d q\"",
            "\\ ",
            "\\'",
            "\\\"",
            "\\\\",
            "'\\'",
            "\"\\\\\"",
            "\"\\$\"",
            "\"\\`\"",
            "\"\\a\"",
            "$'\\x41'",
            "$'\\n'",
            "$'\\101'",
            "$'\\u00e9'",
            "$'\\t'",
            "$'\\''",
            "$\"l\"",
            "\"$HOME\"",
            "${HOME}",
            "\"${HOME}/s\"",
            "é",
            "日本",
            "=",
            ":",
            "~/",
            "X=",
            "#",
            "\\#",
            "''",
            "\"\"",
            "-",
            "..",
            "\\\n",
            "%",
            "+",
            ",",
            "@",
            "^",
            "!x",
        ];
        let home = "/home/tester";
        let mut rng = Rng(0x0bad_cafe_1234_5678);
        let mut words = Vec::new();
        for _ in 0..400 {
            let len = 1 + rng.below(5);
            let word: String = (0..len).map(|_| rng.pick(&fragments)).collect();
            if word.starts_with('#') {
                continue;
            }
            words.push(word);
        }
        let script = format!("printf '%s\\0' {}", words.join(" "));
        let output = std::process::Command::new(bash)
            .args(["--norc", "--noprofile", "-c", &script])
            .env_clear()
            .env("HOME", home)
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let expected: Vec<String> = output
            .stdout
            .split(|b| *b == 0)
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        let mut out = Output::default();
        let tokens = out.lex(&script, 0);
        assert!(out.notes.is_empty(), "{:?}", out.notes);
        let state = State::new(PathBuf::from("/"), Path::new(home));
        let mut walker = Walker::new(&mut out, state, 0, Facts::default(), false);
        let mut actual = Vec::new();
        for token in &tokens[2..] {
            let Token::Word(word) = token else {
                panic!("{token:?}")
            };
            let variants = walker.expand(word);
            assert_eq!(variants.len(), 1, "{}", word.raw);
            assert!(variants[0].complete, "{}", word.raw);
            actual.push(variants[0].text.clone());
        }
        // printf's output ends with a NUL, which leaves one empty piece at the end.
        assert_eq!(expected.last().map(String::as_str), Some(""));
        assert_eq!(actual, expected[..expected.len() - 1]);
    }

    fn which(name: &str) -> Result<PathBuf, ()> {
        ["/usr/bin", "/bin", "/usr/local/bin"]
            .iter()
            .map(|dir| Path::new(dir).join(name))
            .find(|path| path.exists())
            .ok_or(())
    }
}
