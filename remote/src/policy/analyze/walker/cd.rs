//! `cd`, `pushd` and `popd`: where a command may move its working directory.

use super::super::*;
use super::*;

impl<'o> Walker<'o> {
    /// `cd WORD`: the directories it may go to (relative to every possible directory, and to
    /// `CDPATH` entries set in the command).
    pub(in crate::policy::analyze) fn cd(&mut self, word: &Word, new_cwds: &mut Vec<PathBuf>) {
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

    pub(in crate::policy::analyze) fn cd_home(&mut self, new_cwds: &mut Vec<PathBuf>) {
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

    pub(in crate::policy::analyze) fn change_directory(&mut self, new_cwds: Vec<PathBuf>) {
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

/// Index of the `cd`/`pushd` operand (after `-L`, `-P`, `-e`, `-@`, `--`), if any.
pub(in crate::policy::analyze) fn cd_operand(
    literals: &[Option<String>],
    command: usize,
) -> Option<usize> {
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
pub(in crate::policy::analyze) fn find_script(
    literals: &[Option<String>],
    command: usize,
) -> Script {
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

pub(in crate::policy::analyze) fn shell_script(
    literals: &[Option<String>],
    shell: usize,
    is_command: bool,
) -> Script {
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
