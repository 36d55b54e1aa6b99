//! The walker: runs the tokens like a shell would, without running anything, keeping track of
//! the possible working directories and variable values, and reports every path a command
//! reaches.

mod cd;
mod expand;
mod state;

use cd::*;
pub(in crate::policy::analyze) use state::*;

use super::*;

/// What the first pass learns about a command list: effects that may happen at any point,
/// because loop bodies repeat and function bodies run when called.
#[derive(Default, Clone)]
pub(in crate::policy::analyze) struct Facts {
    /// Values assigned inside loop or function bodies.
    pub(in crate::policy::analyze) volatile: HashMap<String, Vec<Option<String>>>,
    /// Directories a `cd` inside a loop or function body may go to.
    pub(in crate::policy::analyze) volatile_cwds: Vec<PathBuf>,
    /// `readonly` variables: a later assignment fails, so it never replaces the value.
    pub(in crate::policy::analyze) read_only: HashSet<String>,
    /// `eval`, `source`, `trap`: any variable may change.
    pub(in crate::policy::analyze) dynamic: bool,
}

pub(in crate::policy::analyze) enum Frame {
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
pub(in crate::policy::analyze) enum Connector {
    Start,
    Seq,
    And,
    Or,
    Pipe,
    Background,
    End,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(in crate::policy::analyze) enum Leading {
    Loop,
    Case,
}

#[derive(Default)]
pub(in crate::policy::analyze) struct Command<'t> {
    pub(in crate::policy::analyze) items: Vec<Item<'t>>,
    pub(in crate::policy::analyze) leading: Option<Leading>,
    pub(in crate::policy::analyze) skip_function_name: bool,
}

pub(in crate::policy::analyze) enum Item<'t> {
    Word(&'t Word),
    Redirect(Redirect, Option<&'t Word>),
    Heredoc(&'t Heredoc),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(in crate::policy::analyze) enum Builtin {
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

pub(in crate::policy::analyze) const SHELLS: [&str; 11] = [
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash", "posh", "lksh", "busybox",
];

pub(in crate::policy::analyze) const WRAPPERS: [&str; 20] = [
    "sudo", "doas", "env", "nice", "nohup", "timeout", "stdbuf", "ionice", "setsid", "chrt",
    "exec", "command", "builtin", "time", "xargs", "taskset", "runuser", "unbuffer", "chroot",
    "nsenter",
];

/// Where the script of a command that runs a shell comes from.
pub(in crate::policy::analyze) enum Script {
    None,
    /// `sh -c WORD`, `su -c WORD`: index of the script word.
    Arg(usize),
    /// A shell reading commands from standard input (no operand).
    Stdin,
    /// A shell running a script file (index of the operand).
    File(usize),
}

pub(in crate::policy::analyze) fn basename(text: &str) -> &str {
    text.rsplit('/').next().unwrap_or(text)
}

/// Runs both passes over a command list and returns the state after it.
pub(in crate::policy::analyze) fn run_program(
    out: &mut Output,
    tokens: &[Token],
    state: State,
    depth: usize,
) -> State {
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

pub(in crate::policy::analyze) struct Walker<'o> {
    pub(in crate::policy::analyze) out: &'o mut Output,
    pub(in crate::policy::analyze) state: State,
    pub(in crate::policy::analyze) frames: Vec<Frame>,
    pub(in crate::policy::analyze) previous: Connector,
    pub(in crate::policy::analyze) depth: usize,
    pub(in crate::policy::analyze) facts: Facts,
    /// First pass: only collect [`Facts`], no nested analysis.
    pub(in crate::policy::analyze) dry: bool,
    /// A function name was seen: the next `{` opens its body.
    pub(in crate::policy::analyze) function_body: bool,
    pub(in crate::policy::analyze) collected: Facts,
}

pub(in crate::policy::analyze) struct Variant {
    pub(in crate::policy::analyze) text: String,
    pub(in crate::policy::analyze) complete: bool,
}

impl<'o> Walker<'o> {
    pub(in crate::policy::analyze) fn new(
        out: &'o mut Output,
        state: State,
        depth: usize,
        facts: Facts,
        dry: bool,
    ) -> Self {
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

    pub(in crate::policy::analyze) fn note(&mut self, note: String) {
        self.out.note(note);
    }

    pub(in crate::policy::analyze) fn run(&mut self, tokens: &[Token]) {
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
    pub(in crate::policy::analyze) fn keyword(
        &mut self,
        keyword: &str,
        command: &mut Command<'_>,
    ) -> bool {
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
    pub(in crate::policy::analyze) fn close(&mut self, matching: impl Fn(&Frame) -> bool) {
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

    pub(in crate::policy::analyze) fn close_all(&mut self) {
        self.close(|_| false);
    }

    /// Words that are not a command (a `case` subject or pattern) still run their
    /// substitutions.
    pub(in crate::policy::analyze) fn discard(&mut self, command: &Command<'_>) {
        for item in &command.items {
            if let Item::Word(word) = item {
                self.expand(word);
            }
        }
    }

    pub(in crate::policy::analyze) fn finish(&mut self, command: Command<'_>, next: Connector) {
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
}

/// Where a word appears, which decides what in it is a path.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(in crate::policy::analyze) enum Usage {
    /// The command word: a plain name is looked up in `$PATH`, not the directory.
    Command,
    /// An argument; `-x…` is an option until `--`.
    Argument { options: bool },
    /// The value of an assignment.
    Value,
    /// A redirection target: any word is a path.
    Redirect,
}

pub(in crate::policy::analyze) enum NestedKind {
    /// `sh -c`: a new shell; its `cd` and variables do not come back.
    ChildShell,
    /// `eval`: runs in this shell.
    CurrentShell,
}

/// `paths.contains(path)` for normalised paths, comparing bytes.
pub(in crate::policy::analyze) fn contains(paths: &[PathBuf], path: &Path) -> bool {
    paths.iter().any(|p| p.as_os_str() == path.as_os_str())
}

pub(in crate::policy::analyze) fn absolute_from(path: &str, cwds: &[PathBuf]) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        return path.to_path_buf();
    }
    cwds.first()
        .map_or_else(|| Path::new("/").join(path), |cwd| cwd.join(path))
}

pub(in crate::policy::analyze) fn push_variant(variants: &mut Vec<Variant>, variant: Variant) {
    if !variants
        .iter()
        .any(|v| v.text == variant.text && v.complete == variant.complete)
    {
        variants.push(variant);
    }
}
