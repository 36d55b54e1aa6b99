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
//! - Aliases and functions, shell options (`extglob`, `globstar`, `cdable_vars`), and `case`
//!   patterns are not modelled. The caller ([`crate::tools::shell`]) starts the shell without
//!   inherited `BASH_ENV`/`ENV`, `CDPATH` and exported functions, with `HOME` set to the `home`
//!   given here; but it is a login shell, so what the user's own profile defines (a function
//!   named `cd`, say) still applies and is not seen here.
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

mod lexer;
mod walker;

use lexer::*;
use walker::*;

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
