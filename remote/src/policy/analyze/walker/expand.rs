//! Expanding words to their possible values and reporting the paths in operands,
//! redirections, here-documents and nested code.

use super::super::*;
use super::*;

impl<'o> Walker<'o> {
    pub(in crate::policy::analyze) fn for_loop(&mut self, command: &Command<'_>) {
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
    pub(in crate::policy::analyze) fn deferred(&self) -> bool {
        self.frames
            .iter()
            .any(|frame| matches!(frame, Frame::Loop | Frame::Function))
    }

    /// Every value `name` may have here.
    pub(in crate::policy::analyze) fn values(&self, name: &str) -> Vec<Option<String>> {
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
    pub(in crate::policy::analyze) fn child_state(&self) -> State {
        let mut state = self.state.clone();
        for name in self.facts.volatile.keys() {
            std::rc::Rc::make_mut(&mut state.vars).insert(name.clone(), self.values(name));
        }
        state
    }

    /// Gives `name` these possible values, replacing the old ones when `replace` (the
    /// assignment surely runs here and the variable is not read-only).
    pub(in crate::policy::analyze) fn assign(
        &mut self,
        name: &str,
        values: Vec<Option<String>>,
        replace: bool,
    ) {
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
    pub(in crate::policy::analyze) fn assignment(&mut self, word: &Word, replace: bool) {
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

    pub(in crate::policy::analyze) fn expand(&mut self, word: &Word) -> Vec<Variant> {
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
    pub(in crate::policy::analyze) fn operand(&mut self, word: &Word, usage: Usage) {
        for variant in self.expand(word) {
            if variant.complete {
                self.path_pieces(&variant.text, &word.raw, usage);
            } else {
                self.partial(&variant.text, &word.raw, usage);
            }
        }
    }

    /// The known prefix of a partly unknown word: up to its last `/`.
    pub(in crate::policy::analyze) fn partial(&mut self, known: &str, raw: &str, usage: Usage) {
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
    pub(in crate::policy::analyze) fn path_pieces(&mut self, text: &str, raw: &str, usage: Usage) {
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

    pub(in crate::policy::analyze) fn access(
        &mut self,
        path: impl AsRef<Path>,
        raw: &str,
        kind: AccessKind,
    ) {
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

    pub(in crate::policy::analyze) fn redirect(
        &mut self,
        redirect: Redirect,
        target: Option<&Word>,
        stdin_script: bool,
    ) {
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

    pub(in crate::policy::analyze) fn heredoc(&mut self, doc: &Heredoc, stdin_script: bool) {
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

    pub(in crate::policy::analyze) fn heredoc_word(&mut self, body: &str) -> Word {
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
    pub(in crate::policy::analyze) fn script(&mut self, word: &Word) {
        let variants = self.expand(word);
        for variant in variants {
            if variant.complete {
                self.nested(&variant.text, NestedKind::ChildShell);
            } else {
                self.note(format!("shell script with unknown parts: {}", word.shown()));
            }
        }
    }

    pub(in crate::policy::analyze) fn eval(&mut self, words: &[&Word]) {
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

    pub(in crate::policy::analyze) fn subshell(&mut self, tokens: &[Token]) {
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

    pub(in crate::policy::analyze) fn nested(&mut self, text: &str, kind: NestedKind) {
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
}
