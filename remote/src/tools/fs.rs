//! The workspace's files for OpenCode's file browser and search (SPEC §6 (iv)): directory
//! listings, file contents, git status, text search and the fuzzy file finder.
//!
//! Every path is relative to the workspace directory and confined to it: a path that leaves it
//! lexically (`..`, another absolute path) or through a symlink is refused with
//! [`Error::Escapes`]. Walks and searches use ripgrep's own crates (`ignore`, `grep-searcher`),
//! so the host needs no `rg`; like OpenCode's `rg --hidden --glob=!.git/*` they honour
//! `.gitignore` (inside git repositories) and `.ignore`, include hidden files, skip `.git` and do
//! not follow symlinks.
//!
//! Huge trees stay cheap: a walk stops after [`MAX_WALK_ENTRIES`] entries or its time budget
//! ([`WALK_BUDGET`], [`SEARCH_BUDGET`]), whichever comes first, or as soon as its caller sets the
//! cancel flag (the request went away). Listings, reads, results and git output are capped as
//! well. Everything here blocks except [`status`]; callers run it on a blocking thread.

use std::cmp::Ordering;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::{Duration, Instant};

use base64::Engine as _;
use grep_matcher::Matcher as _;
use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkMatch};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::{WalkBuilder, WalkState};
use serde::Serialize;
use tokio::io::AsyncReadExt as _;

use crate::tools::procs::Procs;

/// Largest file `/file/content` serves (OpenCode has no limit; whole files go into one JSON).
pub const MAX_READ_BYTES: u64 = 10 << 20;
/// Entries one walk visits at most (OpenCode's own file index stops at 100 000 files too).
pub const MAX_WALK_ENTRIES: usize = 100_000;
/// Entries one directory listing returns at most.
pub const MAX_LIST_ENTRIES: usize = 100_000;
/// Time the file finder's walk may take; it answers with what it found by then.
pub const WALK_BUDGET: Duration = Duration::from_secs(5);
/// Time a text search may take; it answers with the matches found by then.
pub const SEARCH_BUDGET: Duration = Duration::from_secs(10);
/// Matching lines one text search returns at most.
pub const MAX_SEARCH_RESULTS: usize = 1_000;
/// Matching lines per file (OpenCode runs `rg --max-count=10`).
pub const MAX_MATCHES_PER_FILE: u64 = 10;
/// Longer matching lines are cut to this many bytes and end in `...` (as OpenCode does).
pub const MAX_LINE_BYTES: usize = 2_000;
/// Submatches reported per line (as OpenCode).
pub const MAX_SUBMATCHES: usize = 100;
/// Results of `/find/file` without a `limit` (OpenCode's default).
pub const DEFAULT_FIND_LIMIT: usize = 10;
/// Largest `limit` `/find/file` accepts (OpenCode's schema).
pub const MAX_FIND_LIMIT: usize = 200;
/// Time one `git` command may take.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Output of one `git` command kept at most; more means the status is not computed.
const MAX_GIT_OUTPUT: u64 = 64 << 20;
/// Entries `/file/status` reports at most.
pub const MAX_STATUS_ENTRIES: usize = 100_000;
/// Untracked files whose lines `/file/status` counts; the rest report 0 added lines.
const MAX_UNTRACKED_COUNTED: usize = 10_000;
/// Bytes read in total to count the lines of untracked files.
const MAX_UNTRACKED_BYTES: u64 = 64 << 20;
/// Buffer one search may grow to for a single line; files with longer lines are skipped.
const SEARCH_HEAP_LIMIT: usize = 16 << 20;

/// A request this module could not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The path is not usable as given (e.g. it contains a NUL byte).
    #[error("invalid path: {path:?}")]
    InvalidPath {
        /// The path as requested.
        path: String,
    },
    /// The path leaves the workspace directory, lexically or through a symlink.
    #[error("path escapes the workspace directory: {path}")]
    Escapes {
        /// The path as requested.
        path: String,
    },
    /// Nothing exists at the path.
    #[error("no such file or directory: {path}")]
    NotFound {
        /// The path as requested.
        path: String,
    },
    /// The host refused access to the path.
    #[error("permission denied: {path}")]
    PermissionDenied {
        /// The path as requested.
        path: String,
    },
    /// A listing was asked for something that is not a directory.
    #[error("not a directory: {path}")]
    NotADirectory {
        /// The path as requested.
        path: String,
    },
    /// A read was asked for a directory.
    #[error("is a directory: {path}")]
    IsADirectory {
        /// The path as requested.
        path: String,
    },
    /// A read was asked for a socket, FIFO or device.
    #[error("not a regular file: {path}")]
    NotAFile {
        /// The path as requested.
        path: String,
    },
    /// The file exceeds [`MAX_READ_BYTES`].
    #[error("file {path} is {size} bytes; files over {limit} bytes are not served")]
    TooLarge {
        /// The path as requested.
        path: String,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The search pattern is not a valid regular expression.
    #[error("invalid regular expression in `pattern`: {message}")]
    InvalidPattern {
        /// What the regex parser said.
        message: String,
    },
    /// Any other I/O failure.
    #[error("cannot access {path}")]
    Io {
        /// The path as requested.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl Error {
    fn from_io(path: &str, source: io::Error) -> Error {
        let path = path.to_owned();
        match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => Error::NotFound { path },
            io::ErrorKind::PermissionDenied => Error::PermissionDenied { path },
            _ => Error::Io { path, source },
        }
    }
}

/// `file` or `directory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A file (or a symlink to one).
    File,
    /// A directory (or a symlink to one).
    Directory,
}

/// One entry of `GET /file` (OpenCode's `FileNode`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// File name.
    pub name: String,
    /// Path relative to the workspace, with a trailing `/` for directories.
    pub path: String,
    /// Absolute path (under the workspace directory, symlinks not resolved).
    pub absolute: String,
    /// Whether it is a file or a directory.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Whether `.gitignore`/`.ignore` rules exclude it.
    pub ignored: bool,
}

/// The body of `GET /file/content` (OpenCode's `FileContent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Content {
    /// UTF-8 text without NUL bytes, trimmed like OpenCode does.
    Text {
        /// The text.
        content: String,
    },
    /// Anything else, base64-encoded.
    Binary {
        /// The bytes in standard base64.
        content: String,
        /// Always `base64`.
        encoding: &'static str,
        /// Guessed from the file name.
        #[serde(rename = "mimeType")]
        mime_type: String,
    },
}

/// How a file differs from `HEAD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// New (staged or untracked).
    Added,
    /// Removed.
    Deleted,
    /// Anything else (content, mode, type).
    Modified,
}

/// One entry of `GET /file/status` (OpenCode's `File`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileStatus {
    /// Path relative to the workspace.
    pub path: String,
    /// Lines added (0 for binary files).
    pub added: u64,
    /// Lines removed (0 for binary files).
    pub removed: u64,
    /// The kind of change.
    pub status: Change,
}

/// `{"text": …}`, as ripgrep's JSON output wraps strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Text {
    /// The string.
    pub text: String,
}

/// One match within a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Submatch {
    /// The matched text.
    #[serde(rename = "match")]
    pub matched: Text,
    /// Byte offset of the match in the line.
    pub start: usize,
    /// Byte offset just past the match in the line.
    pub end: usize,
}

/// One matching line of `GET /find`, in the shape of ripgrep's `--json` `match` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Match {
    /// File path relative to the workspace.
    pub path: Text,
    /// The line, with its line terminator.
    pub lines: Text,
    /// 1-based line number.
    pub line_number: u64,
    /// Byte offset of the line in the file.
    pub absolute_offset: u64,
    /// The matches within the line.
    pub submatches: Vec<Submatch>,
}

/// What `GET /find/file` looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindQuery {
    /// Fuzzy query; whitespace separates terms that must all match.
    pub query: String,
    /// Only files, only directories, or both (`None`).
    pub kind: Option<Kind>,
    /// Results returned at most.
    pub limit: usize,
}

/// The workspace directory and everything that reads from it.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
}

/// A requested path, resolved and checked.
struct Target {
    /// Under the root, `.` and `..` resolved, symlinks not.
    lexical: PathBuf,
    /// Relative to the root with `/` separators; empty for the root.
    relative: String,
    /// With symlinks resolved; inside the root.
    real: PathBuf,
}

impl Workspace {
    /// A workspace rooted at `root`, an absolute path.
    pub fn new(root: impl Into<PathBuf>) -> Workspace {
        Workspace { root: root.into() }
    }

    /// The workspace directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn resolve(&self, input: &str) -> Result<Target, Error> {
        if input.contains('\0') {
            return Err(Error::InvalidPath {
                path: input.to_owned(),
            });
        }
        let requested = Path::new(input);
        let joined = if requested.is_absolute() {
            requested.to_path_buf()
        } else {
            self.root.join(requested)
        };
        let lexical = normalize(&joined);
        let Ok(relative) = lexical.strip_prefix(&self.root) else {
            return Err(Error::Escapes {
                path: input.to_owned(),
            });
        };
        let relative = slash_path(relative);
        let real = fs::canonicalize(&lexical).map_err(|err| Error::from_io(input, err))?;
        let root = fs::canonicalize(&self.root).map_err(|err| Error::from_io(".", err))?;
        if !real.starts_with(&root) {
            return Err(Error::Escapes {
                path: input.to_owned(),
            });
        }
        Ok(Target {
            lexical,
            relative,
            real,
        })
    }

    /// Lists the directory at `path`: directories first, then files, each ordered by name the
    /// way OpenCode's `localeCompare` orders them (case-insensitively, punctuation before digits
    /// before letters). Sockets, FIFOs and devices are left out; symlinks appear as what they
    /// point to. At most [`MAX_LIST_ENTRIES`] entries.
    ///
    /// # Errors
    ///
    /// When the path escapes the workspace, does not exist or is not a directory.
    pub fn list(&self, path: &str) -> Result<Vec<Node>, Error> {
        let target = self.resolve(path)?;
        let metadata = fs::metadata(&target.real).map_err(|err| Error::from_io(path, err))?;
        if !metadata.is_dir() {
            return Err(Error::NotADirectory {
                path: path.to_owned(),
            });
        }
        let rules = IgnoreRules::load(&self.root, &target.lexical);
        let inside_ignored = rules.dir_ignored(&self.root, &target.lexical);
        let prefix = if target.relative.is_empty() {
            String::new()
        } else {
            format!("{}/", target.relative)
        };
        let entries = fs::read_dir(&target.real).map_err(|err| Error::from_io(path, err))?;
        let mut nodes = Vec::new();
        for entry in entries.take(MAX_LIST_ENTRIES) {
            // An entry that vanished or cannot be inspected is left out, as `ls` would.
            let Ok(entry) = entry else { continue };
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            let kind = if file_type.is_dir() {
                Kind::Directory
            } else if file_type.is_file() {
                Kind::File
            } else if file_type.is_symlink() {
                match fs::metadata(entry.path()) {
                    Ok(meta) if meta.is_dir() => Kind::Directory,
                    Ok(meta) if !meta.is_file() => continue,
                    // A dangling link still shows, as a file.
                    Ok(_) | Err(_) => Kind::File,
                }
            } else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            let absolute = target.lexical.join(entry.file_name());
            let is_dir = kind == Kind::Directory;
            nodes.push(Node {
                path: format!("{prefix}{name}{}", if is_dir { "/" } else { "" }),
                absolute: absolute.to_string_lossy().into_owned(),
                ignored: inside_ignored || rules.is_ignored(&absolute, is_dir),
                kind,
                name,
            });
        }
        nodes.sort_by(|a, b| {
            (a.kind == Kind::File)
                .cmp(&(b.kind == Kind::File))
                .then_with(|| collate(&a.name, &b.name))
        });
        Ok(nodes)
    }

    /// Reads the file at `path`: UTF-8 text without NUL bytes comes back trimmed (OpenCode trims
    /// too), anything else base64-encoded with a MIME type guessed from the name.
    ///
    /// # Errors
    ///
    /// When the path escapes the workspace, does not exist, is not a regular file or is larger
    /// than [`MAX_READ_BYTES`].
    pub fn read(&self, path: &str) -> Result<Content, Error> {
        let target = self.resolve(path)?;
        let metadata = fs::metadata(&target.real).map_err(|err| Error::from_io(path, err))?;
        if metadata.is_dir() {
            return Err(Error::IsADirectory {
                path: path.to_owned(),
            });
        }
        if !metadata.is_file() {
            return Err(Error::NotAFile {
                path: path.to_owned(),
            });
        }
        let too_large = |size| Error::TooLarge {
            path: path.to_owned(),
            size,
            limit: MAX_READ_BYTES,
        };
        if metadata.len() > MAX_READ_BYTES {
            return Err(too_large(metadata.len()));
        }
        let file = fs::File::open(&target.real).map_err(|err| Error::from_io(path, err))?;
        let mut bytes = Vec::with_capacity(metadata.len() as usize);
        // The file may grow between stat and read.
        file.take(MAX_READ_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|err| Error::from_io(path, err))?;
        if bytes.len() as u64 > MAX_READ_BYTES {
            return Err(too_large(bytes.len() as u64));
        }
        if !bytes.contains(&0)
            && let Ok(text) = std::str::from_utf8(&bytes)
        {
            return Ok(Content::Text {
                content: text.trim_matches(is_js_space).to_owned(),
            });
        }
        Ok(Content::Binary {
            content: base64::engine::general_purpose::STANDARD.encode(&bytes),
            encoding: "base64",
            mime_type: mime_type(&target.lexical).to_owned(),
        })
    }

    /// Searches every file for `pattern` (a Rust regex, as `rg` takes): at most
    /// [`MAX_MATCHES_PER_FILE`] lines per file and [`MAX_SEARCH_RESULTS`] in all, ordered by
    /// path and line. Binary files (a NUL byte) are skipped like `rg` skips them.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPattern`] when `pattern` does not parse.
    pub fn search(&self, pattern: &str, cancel: &AtomicBool) -> Result<Vec<Match>, Error> {
        let matcher = RegexMatcherBuilder::new()
            .line_terminator(Some(b'\n'))
            .build(pattern)
            .map_err(|err| Error::InvalidPattern {
                message: err.to_string(),
            })?;
        let found = Mutex::new(Vec::new());
        let walk = Walk::new(SEARCH_BUDGET, cancel);
        self.walker().build_parallel().run(|| {
            let matcher = matcher.clone();
            let mut searcher = SearcherBuilder::new()
                .binary_detection(BinaryDetection::quit(0))
                .line_number(true)
                .max_matches(Some(MAX_MATCHES_PER_FILE))
                .heap_limit(Some(SEARCH_HEAP_LIMIT))
                .build();
            let found = &found;
            let walk = &walk;
            Box::new(move |entry| {
                if let Some(stop) = walk.step() {
                    return stop;
                }
                let Ok(entry) = entry else {
                    return WalkState::Continue;
                };
                if !entry.file_type().is_some_and(|kind| kind.is_file()) {
                    return WalkState::Continue;
                }
                let Ok(relative) = entry.path().strip_prefix(&self.root) else {
                    return WalkState::Continue;
                };
                let mut sink = Collect {
                    matcher: &matcher,
                    path: slash_path(relative),
                    found: Vec::new(),
                    binary: false,
                };
                if let Err(err) = searcher.search_path(&matcher, entry.path(), &mut sink) {
                    // Unreadable files and lines over the heap limit are skipped, as `rg` does.
                    tracing::debug!(path = %entry.path().display(), %err, "search skipped a file");
                }
                if sink.binary || sink.found.is_empty() {
                    return WalkState::Continue;
                }
                let mut found = lock(found);
                found.extend(sink.found);
                if found.len() >= MAX_SEARCH_RESULTS {
                    return WalkState::Quit;
                }
                WalkState::Continue
            })
        });
        walk.report("search");
        let mut found = found
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        found.sort_by(|a, b| {
            a.path
                .text
                .cmp(&b.path.text)
                .then(a.line_number.cmp(&b.line_number))
        });
        found.truncate(MAX_SEARCH_RESULTS);
        Ok(found)
    }

    /// Finds files and directories whose paths fuzzily match the query, best first, the way
    /// OpenCode's file finder does: files come from the same walk as `rg --files --hidden`,
    /// directories are their parents (with a trailing `/`), and hidden directories sort last
    /// unless the query asks for them. An empty query lists files in path order, or directories
    /// (also when both kinds are asked for, as OpenCode does).
    pub fn find_files(&self, query: &FindQuery, cancel: &AtomicBool) -> Vec<String> {
        let files = self.walk_files(cancel);
        let dirs = parent_dirs(&files);
        let text = query.query.trim().replace('\\', "/");
        let prefer_hidden = text.starts_with('.') || text.contains("/.");
        if text.is_empty() {
            if query.kind == Some(Kind::File) {
                return files.into_iter().take(query.limit).collect();
            }
            let mut dirs = dirs;
            dirs.sort();
            return hidden_last(dirs, prefer_hidden)
                .into_iter()
                .take(query.limit)
                .collect();
        }
        let items: Vec<String> = match query.kind {
            Some(Kind::File) => files,
            Some(Kind::Directory) => dirs,
            None => files.into_iter().chain(dirs).collect(),
        };
        let sorted = fuzzy_sort(&text, items);
        if query.kind == Some(Kind::Directory) {
            return hidden_last(sorted, prefer_hidden)
                .into_iter()
                .take(query.limit)
                .collect();
        }
        sorted.into_iter().take(query.limit).collect()
    }

    /// Files under the root, relative with `/` separators, sorted.
    fn walk_files(&self, cancel: &AtomicBool) -> Vec<String> {
        let found = Mutex::new(Vec::new());
        let walk = Walk::new(WALK_BUDGET, cancel);
        self.walker().build_parallel().run(|| {
            let found = &found;
            let walk = &walk;
            Box::new(move |entry| {
                if let Some(stop) = walk.step() {
                    return stop;
                }
                if let Ok(entry) = entry
                    && entry.file_type().is_some_and(|kind| kind.is_file())
                    && let Ok(relative) = entry.path().strip_prefix(&self.root)
                {
                    lock(found).push(slash_path(relative));
                }
                WalkState::Continue
            })
        });
        walk.report("file walk");
        let mut files = found
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        files.sort();
        files
    }

    /// The walk `rg --hidden --glob=!.git/*` does.
    fn walker(&self) -> WalkBuilder {
        let mut builder = WalkBuilder::new(&self.root);
        builder
            .hidden(false)
            .follow_links(false)
            .filter_entry(|entry| entry.file_name() != ".git")
            .threads(
                std::thread::available_parallelism()
                    .map_or(2, std::num::NonZeroUsize::get)
                    .min(8),
            );
        builder
    }
}

/// The budget of one parallel walk, shared by its threads.
struct Walk<'a> {
    visited: AtomicUsize,
    deadline: Instant,
    cancel: &'a AtomicBool,
    started: Instant,
}

impl<'a> Walk<'a> {
    fn new(budget: Duration, cancel: &'a AtomicBool) -> Walk<'a> {
        let started = Instant::now();
        Walk {
            visited: AtomicUsize::new(0),
            deadline: started + budget,
            cancel,
            started,
        }
    }

    /// Counts one entry; `Some(Quit)` when the walk must stop.
    fn step(&self) -> Option<WalkState> {
        use std::sync::atomic::Ordering::Relaxed;
        let visited = self.visited.fetch_add(1, Relaxed);
        let over = visited >= MAX_WALK_ENTRIES
            || self.cancel.load(Relaxed)
            || Instant::now() >= self.deadline;
        over.then_some(WalkState::Quit)
    }

    fn report(&self, what: &str) {
        use std::sync::atomic::Ordering::Relaxed;
        let visited = self.visited.load(Relaxed);
        if self.cancel.load(Relaxed) {
            tracing::debug!(visited, "{what} cancelled");
        } else if visited > MAX_WALK_ENTRIES || Instant::now() >= self.deadline {
            tracing::warn!(
                visited,
                elapsed = ?self.started.elapsed(),
                "{what} stopped early; results are partial"
            );
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Only plain pushes happen under these locks, so a poisoned one is still consistent.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Collects the matching lines of one file.
struct Collect<'a> {
    matcher: &'a RegexMatcher,
    path: String,
    found: Vec<Match>,
    /// Set when a NUL byte showed up: the file is skipped, matches and all (as `rg` skips
    /// binary files it comes across in a walk).
    binary: bool,
}

impl Sink for Collect<'_> {
    type Error = io::Error;

    fn binary_data(&mut self, _searcher: &Searcher, _offset: u64) -> Result<bool, io::Error> {
        self.binary = true;
        Ok(false)
    }

    fn matched(&mut self, _searcher: &Searcher, found: &SinkMatch<'_>) -> Result<bool, io::Error> {
        let line = found.bytes();
        // Submatches are found in the line without its terminator, as `rg --json` does, so
        // `$` and look-arounds see the end of the line.
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let mut submatches = Vec::new();
        // `RegexMatcher::Error` is `NoError`: finding within a line cannot fail.
        let _infallible = self.matcher.find_iter(content, |range| {
            if range.is_empty() && range.start() == content.len() && !content.is_empty() {
                return true;
            }
            submatches.push((range.start(), range.end()));
            submatches.len() < MAX_SUBMATCHES
        });
        let mut text = String::from_utf8_lossy(line).into_owned();
        let mut kept = text.len();
        if text.len() > MAX_LINE_BYTES {
            kept = MAX_LINE_BYTES;
            while !text.is_char_boundary(kept) {
                kept -= 1;
            }
            text.truncate(kept);
            text.push_str("...");
        }
        let submatches = submatches
            .into_iter()
            .filter(|&(_, end)| end <= kept)
            .filter_map(|(start, end)| {
                Some(Submatch {
                    matched: Text {
                        text: String::from_utf8_lossy(line.get(start..end)?).into_owned(),
                    },
                    start,
                    end,
                })
            })
            .collect();
        self.found.push(Match {
            path: Text {
                text: self.path.clone(),
            },
            lines: Text { text },
            line_number: found.line_number().unwrap_or(0),
            absolute_offset: found.absolute_byte_offset(),
            submatches,
        });
        Ok(true)
    }
}

/// `.gitignore` (inside a git repository), `.git/info/exclude` and `.ignore` files from the
/// repository root (or the workspace root outside one) down to one directory.
struct IgnoreRules {
    /// Lowest precedence first: shallower directories, and within one directory `exclude`,
    /// then `.gitignore`, then `.ignore` (as ripgrep orders them).
    levels: Vec<Gitignore>,
}

impl IgnoreRules {
    fn load(root: &Path, dir: &Path) -> IgnoreRules {
        let git_root = root
            .ancestors()
            .take(256)
            .find(|candidate| candidate.join(".git").exists());
        let base = git_root.unwrap_or(root);
        let mut chain: Vec<&Path> = dir
            .ancestors()
            .take_while(|ancestor| ancestor.starts_with(base))
            .collect();
        chain.reverse();
        let mut levels = Vec::new();
        let mut add = |dir: &Path, file: PathBuf| {
            if !file.is_file() {
                return;
            }
            let mut builder = GitignoreBuilder::new(dir);
            if let Some(err) = builder.add(&file) {
                // Valid lines still apply; the rest are reported once here.
                tracing::debug!(file = %file.display(), %err, "ignore file has invalid lines");
            }
            match builder.build() {
                Ok(rules) => levels.push(rules),
                Err(err) => tracing::debug!(file = %file.display(), %err, "ignore file unusable"),
            }
        };
        for dir in chain {
            if git_root == Some(dir) {
                add(dir, dir.join(".git").join("info").join("exclude"));
            }
            if git_root.is_some() {
                add(dir, dir.join(".gitignore"));
            }
            add(dir, dir.join(".ignore"));
        }
        IgnoreRules { levels }
    }

    /// Whether the most specific rule about `path` (absolute, under the loaded chain) ignores it.
    fn is_ignored(&self, path: &Path, is_dir: bool) -> bool {
        for rules in self.levels.iter().rev() {
            if path == rules.path() || !path.starts_with(rules.path()) {
                continue;
            }
            let matched = rules.matched(path, is_dir);
            if matched.is_ignore() {
                return true;
            }
            if matched.is_whitelist() {
                return false;
            }
        }
        false
    }

    /// Whether `dir` or one of its ancestors below `root` is ignored, which ignores everything
    /// inside it (git cannot re-include files in an excluded directory).
    fn dir_ignored(&self, root: &Path, dir: &Path) -> bool {
        dir.ancestors()
            .take_while(|ancestor| *ancestor != root && ancestor.starts_with(root))
            .any(|ancestor| self.is_ignored(ancestor, true))
    }
}

/// Resolves `.` and `..` without touching the file system; `..` at `/` stays at `/`.
fn normalize(path: &Path) -> PathBuf {
    let mut normalized = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normalized.pop();
            }
            other => normalized.push(other),
        }
    }
    normalized
}

/// A relative path with `/` separators.
fn slash_path(relative: &Path) -> String {
    let parts: Vec<_> = relative
        .components()
        .map(|component| component.as_os_str().to_string_lossy())
        .collect();
    parts.join("/")
}

/// Whitespace as JavaScript's `String.prototype.trim` sees it.
fn is_js_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

/// Orders names roughly as ICU's root collation (JavaScript's `localeCompare`) does: letters
/// compare case-insensitively, punctuation sorts before digits and digits before letters; on a
/// tie, lowercase comes first. Accents are not folded.
fn collate(a: &str, b: &str) -> Ordering {
    fn class(c: char) -> u8 {
        if c.is_alphabetic() {
            2
        } else if c.is_numeric() {
            1
        } else {
            0
        }
    }
    let primary = |s: &str| {
        s.chars()
            .flat_map(char::to_lowercase)
            .map(|c| (class(c), c))
            .collect::<Vec<_>>()
    };
    primary(a)
        .cmp(&primary(b))
        .then_with(|| {
            a.chars()
                .map(char::is_uppercase)
                .cmp(b.chars().map(char::is_uppercase))
        })
        .then_with(|| a.cmp(b))
}

/// MIME type from the file name; `application/octet-stream` when unknown.
fn mime_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .map(|ext| ext.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "tif" | "tiff" => "image/tiff",
        "svg" | "svgz" => "image/svg+xml",
        "avif" => "image/avif",
        "apng" => "image/apng",
        "jxl" => "image/jxl",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "bz2" => "application/x-bzip2",
        "xz" => "application/x-xz",
        "7z" => "application/x-7z-compressed",
        "wasm" => "application/wasm",
        "jar" => "application/java-archive",
        "class" => "application/java-vm",
        "sqlite" | "db" => "application/vnd.sqlite3",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "ogg" | "oga" => "audio/ogg",
        "flac" => "audio/flac",
        "m4a" => "audio/mp4",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        "avi" => "video/x-msvideo",
        "mkv" => "video/x-matroska",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "json" => "application/json",
        "txt" | "log" => "text/plain",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" | "mjs" | "cjs" => "text/javascript",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "xml" => "application/xml",
        _ => "application/octet-stream",
    }
}

/// The parent directories of `files`, each once with a trailing `/`, in first-seen order.
fn parent_dirs(files: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut dirs = Vec::new();
    for file in files {
        let mut end = file.len();
        while let Some(slash) = file.get(..end).and_then(|head| head.rfind('/')) {
            let dir = &file[..=slash];
            if !seen.insert(dir.to_owned()) {
                break;
            }
            dirs.push(dir.to_owned());
            end = slash;
        }
    }
    dirs
}

/// Whether a path has a hidden component (`.name`).
fn is_hidden(item: &str) -> bool {
    item.trim_end_matches('/')
        .split('/')
        .any(|part| part.starts_with('.') && part.len() > 1)
}

fn hidden_last(items: Vec<String>, prefer_hidden: bool) -> Vec<String> {
    if prefer_hidden {
        return items;
    }
    let (hidden, visible): (Vec<_>, Vec<_>) = items.into_iter().partition(|item| is_hidden(item));
    visible.into_iter().chain(hidden).collect()
}

/// Items that contain every whitespace-separated term of `query` as a case-insensitive
/// subsequence, best match first; equal scores keep their input order.
fn fuzzy_sort(query: &str, items: Vec<String>) -> Vec<String> {
    let terms: Vec<Vec<char>> = query
        .split_whitespace()
        .map(|term| term.chars().flat_map(char::to_lowercase).collect())
        .collect();
    let mut scored: Vec<(i64, usize, String)> = items
        .into_iter()
        .enumerate()
        .filter_map(|(index, item)| Some((fuzzy_score(&terms, &item)?, index, item)))
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(_, _, item)| item).collect()
}

const SCORE_MATCH: i64 = 16;
const SCORE_CONSECUTIVE: i64 = 8;
const BONUS_SEGMENT: i64 = 12;
const BONUS_WORD: i64 = 9;
const BONUS_CAMEL: i64 = 8;
const PENALTY_GAP_OPEN: i64 = 5;
const PENALTY_GAP_EXTEND: i64 = 1;

/// The sum of each term's best alignment in `target`, less a small penalty for long targets;
/// `None` when a term does not match.
fn fuzzy_score(terms: &[Vec<char>], target: &str) -> Option<i64> {
    let original: Vec<char> = target.chars().collect();
    let lower: Vec<char> = original
        .iter()
        .map(|c| c.to_lowercase().next().unwrap_or(*c))
        .collect();
    let bonus: Vec<i64> = (0..original.len())
        .map(|index| {
            let Some(previous) = index.checked_sub(1).and_then(|i| original.get(i)) else {
                return BONUS_SEGMENT;
            };
            let current = original.get(index).copied().unwrap_or_default();
            match previous {
                '/' => BONUS_SEGMENT,
                '_' | '-' | '.' | ' ' => BONUS_WORD,
                p if p.is_lowercase() && current.is_uppercase() => BONUS_CAMEL,
                _ => 0,
            }
        })
        .collect();
    let mut total = 0;
    for term in terms {
        total += term_score(term, &lower, &bonus)?;
    }
    Some(total - original.len() as i64 / 4)
}

/// Best alignment of `term` as a subsequence of `target`: every matched char scores, more at
/// word starts and in runs; gaps cost. Linear in `term.len() * target.len()`.
fn term_score(term: &[char], target: &[char], bonus: &[i64]) -> Option<i64> {
    let mut chars = target.iter();
    if !term.iter().all(|c| chars.any(|t| t == c)) {
        return None;
    }
    let width = target.len();
    // previous[j]: best score with the term so far ending in a match at j.
    let mut previous: Vec<Option<i64>> = target
        .iter()
        .zip(bonus)
        .map(|(t, b)| term.first().filter(|c| *c == t).map(|_| SCORE_MATCH + b))
        .collect();
    for c in term.iter().skip(1) {
        let mut current = vec![None; width];
        // Best of previous[k] for k <= j - 2, less the cost of the gap up to j.
        let mut gap: Option<i64> = None;
        for j in 1..width {
            if j >= 2 {
                let opened = previous[j - 2].map(|score| score - PENALTY_GAP_OPEN);
                gap = gap.map(|score| score - PENALTY_GAP_EXTEND).max(opened);
            }
            if target[j] != *c {
                continue;
            }
            let run = previous[j - 1].map(|score| score + SCORE_CONSECUTIVE);
            current[j] = run.max(gap).map(|score| score + SCORE_MATCH + bonus[j]);
        }
        previous = current;
    }
    previous.into_iter().flatten().max()
}

/// `git status` of the workspace as OpenCode reports it: changes against `HEAD` (staged or
/// not; renames as a deletion plus an addition) with their line counts, then untracked files
/// as added with their line count; at most [`MAX_STATUS_ENTRIES`]. Empty when the directory is not in a git work tree, `git`
/// is missing, or a `git` command fails or exceeds [`GIT_TIMEOUT`].
pub async fn status(dir: &Path, procs: &Procs) -> Vec<FileStatus> {
    match head_or_empty_tree(dir, procs).await {
        Some(base) => changes_since(dir, procs, &base).await.unwrap_or_default(),
        None => Vec::new(),
    }
}

/// `HEAD`, or the empty tree when the repository has no commit yet (everything staged is
/// new); `None` outside a git work tree or without `git`.
pub(crate) async fn head_or_empty_tree(dir: &Path, procs: &Procs) -> Option<String> {
    let inside = git(dir, procs, &["rev-parse", "--is-inside-work-tree"]).await?;
    if inside.trim_ascii() != b"true" {
        return None;
    }
    let head = ["rev-parse", "--verify", "--quiet", "HEAD^{commit}"];
    match git(dir, procs, &head).await {
        Some(_) => Some("HEAD".to_owned()),
        None => {
            let tree = git(dir, procs, &["hash-object", "-t", "tree", "/dev/null"]).await?;
            Some(String::from_utf8(tree).ok()?.trim().to_owned())
        }
    }
}

/// The working tree's changes against the commit or tree `base` (staged or not, renames as a
/// deletion plus an addition), then untracked files as added; at most
/// [`MAX_STATUS_ENTRIES`]. `None` when a `git` command fails.
pub(crate) async fn changes_since(
    dir: &Path,
    procs: &Procs,
    base: &str,
) -> Option<Vec<FileStatus>> {
    let diff = [
        "diff",
        "--no-ext-diff",
        "--no-textconv",
        "--no-renames",
        "--relative",
        "-z",
    ];
    let numstat_args: Vec<&str> = diff
        .iter()
        .copied()
        .chain(["--numstat", base, "--"])
        .collect();
    let names_args: Vec<&str> = diff
        .iter()
        .copied()
        .chain(["--name-status", base, "--"])
        .collect();
    let (numstat, names, untracked) = tokio::join!(
        git(dir, procs, &numstat_args),
        git(dir, procs, &names_args),
        git(
            dir,
            procs,
            &["ls-files", "--others", "--exclude-standard", "-z"]
        ),
    );
    let mut changes = tracked_changes(&numstat?, &names?);
    let untracked: Vec<String> = untracked?
        .split(|byte| *byte == 0)
        .filter(|path| !path.is_empty())
        .map(|path| String::from_utf8_lossy(path).into_owned())
        .collect();
    let dir = dir.to_path_buf();
    let added = tokio::task::spawn_blocking(move || count_untracked(&dir, untracked))
        .await
        .ok()?;
    changes.extend(added);
    if changes.len() > MAX_STATUS_ENTRIES {
        tracing::warn!(
            changes = changes.len(),
            "git status truncated to {MAX_STATUS_ENTRIES}"
        );
        changes.truncate(MAX_STATUS_ENTRIES);
    }
    Some(changes)
}

/// Joins `git diff --numstat -z` and `git diff --name-status -z` output (without renames).
fn tracked_changes(numstat: &[u8], names: &[u8]) -> Vec<FileStatus> {
    let mut counts = std::collections::HashMap::new();
    for record in numstat.split(|byte| *byte == 0) {
        let mut fields = record.splitn(3, |byte| *byte == b'\t');
        let (Some(added), Some(removed), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        // Binary files show `-`.
        let count = |field: &[u8]| {
            std::str::from_utf8(field)
                .ok()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        counts.insert(path.to_vec(), (count(added), count(removed)));
    }
    let mut tokens = names
        .split(|byte| *byte == 0)
        .filter(|token| !token.is_empty());
    let mut changes = Vec::new();
    while let (Some(letter), Some(path)) = (tokens.next(), tokens.next()) {
        let status = match letter.first() {
            Some(b'A') => Change::Added,
            Some(b'D') => Change::Deleted,
            _ => Change::Modified,
        };
        let (added, removed) = counts.get(path).copied().unwrap_or((0, 0));
        changes.push(FileStatus {
            path: String::from_utf8_lossy(path).into_owned(),
            added,
            removed,
            status,
        });
    }
    changes
}

/// Untracked files as added, with their line counts (0 for binary files, non-regular files and
/// beyond the counting budget).
fn count_untracked(dir: &Path, paths: Vec<String>) -> Vec<FileStatus> {
    let mut budget = MAX_UNTRACKED_BYTES;
    paths
        .into_iter()
        .enumerate()
        .map(|(index, path)| {
            let added = if index < MAX_UNTRACKED_COUNTED && budget > 0 {
                count_lines(&dir.join(&path), &mut budget)
            } else {
                0
            };
            FileStatus {
                path,
                added,
                removed: 0,
                status: Change::Added,
            }
        })
        .collect()
}

/// Lines in a regular file as git counts them (a last line without newline counts); 0 for
/// binary files and anything unreadable. Reads at most `budget` bytes and deducts them.
fn count_lines(path: &Path, budget: &mut u64) -> u64 {
    let Ok(metadata) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !metadata.is_file() {
        return 0;
    }
    let Ok(file) = fs::File::open(path) else {
        return 0;
    };
    let mut reader = file.take(*budget);
    let mut buffer = vec![0u8; 64 << 10];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return 0,
        };
        *budget = budget.saturating_sub(read as u64);
        let chunk = buffer.get(..read).unwrap_or_default();
        if chunk.contains(&0) {
            return 0;
        }
        lines += chunk.iter().filter(|byte| **byte == b'\n').count() as u64;
        last = chunk.last().copied().unwrap_or(last);
    }
    lines + u64::from(last != b'\n')
}

/// Runs `git` in `dir` and returns its stdout when it succeeds within [`GIT_TIMEOUT`] and
/// [`MAX_GIT_OUTPUT`]. The child never sees the stub's stdio (the wire).
pub(crate) async fn git(dir: &Path, procs: &Procs, args: &[&str]) -> Option<Vec<u8>> {
    let mut command = tokio::process::Command::new("git");
    command
        .args(["-c", "core.quotepath=false", "-c", "core.fsmonitor=false"])
        .args(args)
        .current_dir(dir)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // stdin from /dev/null, own process group, killed with the stub or when dropped.
    Procs::prepare(&mut command);
    let (mut child, _registration) = match procs.spawn(&mut command) {
        Ok(spawned) => spawned,
        Err(err) => {
            tracing::debug!(%err, "cannot run git");
            return None;
        }
    };
    let mut stdout = child.stdout.take()?;
    let run = async {
        let mut output = Vec::new();
        (&mut stdout)
            .take(MAX_GIT_OUTPUT + 1)
            .read_to_end(&mut output)
            .await
            .ok()?;
        if output.len() as u64 > MAX_GIT_OUTPUT {
            tracing::warn!(?args, "git output exceeds {MAX_GIT_OUTPUT} bytes; ignored");
            return None;
        }
        let status = child.wait().await.ok()?;
        status.success().then_some(output)
    };
    match tokio::time::timeout(GIT_TIMEOUT, run).await {
        Ok(output) => output,
        Err(_elapsed) => {
            tracing::warn!(?args, "git took longer than {GIT_TIMEOUT:?}; killed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        (dir, Workspace::new(root))
    }

    fn write(workspace: &Workspace, path: &str, content: impl AsRef<[u8]>) {
        let path = workspace.root().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn names(nodes: &[Node]) -> Vec<&str> {
        nodes.iter().map(|node| node.path.as_str()).collect()
    }

    #[test]
    fn list_should_put_directories_first_and_order_names_like_locale_compare() {
        let (_dir, workspace) = workspace();
        for file in [
            "README.md",
            "agent.txt",
            "opencode.json",
            "src/main.rs",
            "Zeta",
            "_x",
            "1.txt",
        ] {
            write(&workspace, file, "x");
        }
        fs::create_dir_all(workspace.root().join(".git")).unwrap();
        fs::create_dir_all(workspace.root().join("Build")).unwrap();
        let nodes = workspace.list(".").unwrap();
        assert_eq!(
            names(&nodes),
            [
                ".git/",
                "Build/",
                "src/",
                "_x",
                "1.txt",
                "agent.txt",
                "opencode.json",
                "README.md",
                "Zeta"
            ]
        );
        let src = nodes.iter().find(|node| node.name == "src").unwrap();
        assert_eq!(src.kind, Kind::Directory);
        assert_eq!(src.absolute, workspace.root().join("src").to_string_lossy());
        let json = serde_json::to_value(&nodes[2]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "src", "path": "src/", "type": "directory", "ignored": false,
                "absolute": workspace.root().join("src").to_string_lossy(),
            })
        );
    }

    #[test]
    fn list_should_give_paths_relative_to_the_workspace_for_subdirectories() {
        let (_dir, workspace) = workspace();
        write(&workspace, "src/lib/a.rs", "x");
        write(&workspace, "src/main.rs", "x");
        for request in [
            "src",
            "src/",
            "./src",
            "src/lib/..",
            &format!("{}/src", workspace.root().display()),
        ] {
            let nodes = workspace.list(request).unwrap();
            assert_eq!(names(&nodes), ["src/lib/", "src/main.rs"], "{request}");
        }
        assert_eq!(names(&workspace.list("").unwrap()), ["src/"]);
    }

    #[test]
    fn list_should_flag_ignored_entries_from_gitignore_and_ignore_files() {
        let (_dir, workspace) = workspace();
        fs::create_dir_all(workspace.root().join(".git/info")).unwrap();
        write(&workspace, ".git/info/exclude", "excluded.txt\n");
        write(&workspace, ".gitignore", "target/\n*.log\n!keep.log\n");
        write(&workspace, ".ignore", "secret.txt\n");
        write(&workspace, "target/debug/app", "x");
        write(&workspace, "a.log", "x");
        write(&workspace, "keep.log", "x");
        write(&workspace, "secret.txt", "x");
        write(&workspace, "excluded.txt", "x");
        write(&workspace, "main.rs", "x");
        write(&workspace, "sub/.gitignore", "local.txt\n");
        write(&workspace, "sub/local.txt", "x");
        write(&workspace, "sub/other.txt", "x");
        let ignored = |path: &str| -> Vec<(String, bool)> {
            workspace
                .list(path)
                .unwrap()
                .into_iter()
                .map(|node| (node.path, node.ignored))
                .collect()
        };
        let root = ignored(".");
        let flag = |name: &str| root.iter().find(|(path, _)| path == name).unwrap().1;
        assert!(flag("target/"));
        assert!(flag("a.log"));
        assert!(!flag("keep.log"));
        assert!(flag("secret.txt"));
        assert!(flag("excluded.txt"));
        assert!(!flag("main.rs"));
        assert!(!flag(".git/"), "OpenCode reports .git as not ignored");
        // Inside an ignored directory everything is ignored.
        assert_eq!(ignored("target"), [("target/debug/".to_owned(), true)]);
        assert_eq!(
            ignored("target/debug"),
            [("target/debug/app".to_owned(), true)]
        );
        // Nested .gitignore files apply to their own directory.
        assert_eq!(
            ignored("sub"),
            [
                ("sub/.gitignore".to_owned(), false),
                ("sub/local.txt".to_owned(), true),
                ("sub/other.txt".to_owned(), false)
            ]
        );
    }

    #[test]
    fn list_should_not_apply_gitignore_outside_git_repositories() {
        let (_dir, workspace) = workspace();
        write(&workspace, ".gitignore", "a.txt\n");
        write(&workspace, ".ignore", "b.txt\n");
        write(&workspace, "a.txt", "x");
        write(&workspace, "b.txt", "x");
        let nodes = workspace.list(".").unwrap();
        let flag = |name: &str| nodes.iter().find(|node| node.name == name).unwrap().ignored;
        assert!(!flag("a.txt"));
        assert!(flag("b.txt"));
    }

    #[test]
    fn resolve_should_refuse_traversal_absolute_paths_and_symlink_escapes() {
        let (_dir, workspace) = workspace();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "top secret").unwrap();
        std::os::unix::fs::symlink(outside.path(), workspace.root().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), workspace.root().join("s"))
            .unwrap();
        let escapes = [
            "..",
            "../",
            "a/../../x",
            "/etc/passwd",
            "/",
            "link",
            "link/secret",
            "s",
        ];
        for path in escapes {
            assert!(
                matches!(workspace.read(path), Err(Error::Escapes { .. })),
                "read {path}: {:?}",
                workspace.read(path)
            );
            assert!(
                matches!(workspace.list(path), Err(Error::Escapes { .. })),
                "list {path}"
            );
        }
        // The link itself still shows in the listing, as what it points to.
        let nodes = workspace.list(".").unwrap();
        assert_eq!(names(&nodes), ["link/", "s"]);
    }

    #[test]
    fn resolve_should_allow_symlinks_within_the_workspace() {
        let (_dir, workspace) = workspace();
        write(&workspace, "real/file.txt", "inside\n");
        std::os::unix::fs::symlink("real", workspace.root().join("alias")).unwrap();
        assert_eq!(
            workspace.read("alias/file.txt").unwrap(),
            Content::Text {
                content: "inside".to_owned()
            }
        );
        assert_eq!(names(&workspace.list("alias").unwrap()), ["alias/file.txt"]);
    }

    #[test]
    fn errors_should_name_the_path() {
        let (_dir, workspace) = workspace();
        write(&workspace, "file.txt", "x");
        let err = workspace.read("nope/missing.rs").unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "no such file or directory: nope/missing.rs"
        );
        assert!(matches!(
            workspace.read("file.txt/x"),
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            workspace.list("file.txt"),
            Err(Error::NotADirectory { .. })
        ));
        assert!(matches!(
            workspace.read("."),
            Err(Error::IsADirectory { .. })
        ));
        assert!(matches!(
            workspace.read("a\0b"),
            Err(Error::InvalidPath { .. })
        ));
        assert_eq!(
            workspace.list("../x").unwrap_err().to_string(),
            "path escapes the workspace directory: ../x"
        );
    }

    #[test]
    fn read_should_return_trimmed_text_and_base64_for_binary_files() {
        let (_dir, workspace) = workspace();
        write(
            &workspace,
            "README.md",
            "\n  hello from the REMOTE host\n\n",
        );
        write(&workspace, "image.png", b"\x89PNG\r\n\x1a\n\0\0");
        write(&workspace, "latin1.txt", b"caf\xe9");
        write(&workspace, "empty", "");
        assert_eq!(
            serde_json::to_value(workspace.read("README.md").unwrap()).unwrap(),
            serde_json::json!({ "type": "text", "content": "hello from the REMOTE host" })
        );
        assert_eq!(
            serde_json::to_value(workspace.read("image.png").unwrap()).unwrap(),
            serde_json::json!({
                "type": "binary", "content": "iVBORw0KGgoAAA==",
                "encoding": "base64", "mimeType": "image/png",
            })
        );
        assert_eq!(
            workspace.read("latin1.txt").unwrap(),
            Content::Binary {
                content: "Y2Fm6Q==".to_owned(),
                encoding: "base64",
                mime_type: "text/plain".to_owned()
            }
        );
        assert_eq!(
            workspace.read("empty").unwrap(),
            Content::Text {
                content: String::new()
            }
        );
    }

    #[test]
    fn read_should_refuse_files_over_the_limit() {
        let (_dir, workspace) = workspace();
        let file = fs::File::create(workspace.root().join("big.bin")).unwrap();
        file.set_len(MAX_READ_BYTES + 1).unwrap();
        let err = workspace.read("big.bin").unwrap_err();
        assert!(
            matches!(err, Error::TooLarge { size, .. } if size == MAX_READ_BYTES + 1),
            "{err:?}"
        );
        assert!(err.to_string().contains("big.bin"), "{err}");
    }

    fn search(workspace: &Workspace, pattern: &str) -> Result<Vec<Match>, Error> {
        workspace.search(pattern, &AtomicBool::new(false))
    }

    #[test]
    fn search_should_report_matches_like_rg_json() {
        let (_dir, workspace) = workspace();
        write(&workspace, "README.md", "hello from the REMOTE host\n");
        write(
            &workspace,
            "src/main.rs",
            "fn main() { println!(\"hello\"); }\n",
        );
        write(
            &workspace,
            "notes.txt",
            "first line\nsay hello, hello\nno newline hello",
        );
        let found = search(&workspace, "hello").unwrap();
        let json = serde_json::to_value(&found).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"path": {"text": "README.md"}, "lines": {"text": "hello from the REMOTE host\n"},
                 "line_number": 1, "absolute_offset": 0,
                 "submatches": [{"match": {"text": "hello"}, "start": 0, "end": 5}]},
                {"path": {"text": "notes.txt"}, "lines": {"text": "say hello, hello\n"},
                 "line_number": 2, "absolute_offset": 11,
                 "submatches": [{"match": {"text": "hello"}, "start": 4, "end": 9},
                                {"match": {"text": "hello"}, "start": 11, "end": 16}]},
                {"path": {"text": "notes.txt"}, "lines": {"text": "no newline hello"},
                 "line_number": 3, "absolute_offset": 28,
                 "submatches": [{"match": {"text": "hello"}, "start": 11, "end": 16}]},
                {"path": {"text": "src/main.rs"},
                 "lines": {"text": "fn main() { println!(\"hello\"); }\n"},
                 "line_number": 1, "absolute_offset": 0,
                 "submatches": [{"match": {"text": "hello"}, "start": 22, "end": 27}]},
            ])
        );
    }

    #[test]
    fn search_should_use_byte_offsets_in_multibyte_text() {
        let (_dir, workspace) = workspace();
        write(&workspace, "utf8.txt", "ça va\nhéllo wörld\n");
        let found = search(&workspace, "w.rld").unwrap();
        assert_eq!(found.len(), 1);
        let hit = &found[0];
        assert_eq!(hit.line_number, 2);
        assert_eq!(hit.absolute_offset, "ça va\n".len() as u64);
        assert_eq!(hit.lines.text, "héllo wörld\n");
        assert_eq!(
            hit.submatches,
            [Submatch {
                matched: Text {
                    text: "wörld".to_owned()
                },
                start: 7,
                end: 13
            }]
        );
    }

    #[test]
    fn search_should_skip_binary_ignored_and_git_files_but_not_hidden_ones() {
        let (_dir, workspace) = workspace();
        fs::create_dir_all(workspace.root().join(".git")).unwrap();
        write(&workspace, ".git/config", "needle\n");
        write(&workspace, ".gitignore", "ignored.txt\n");
        write(&workspace, "ignored.txt", "needle\n");
        write(&workspace, "binary.bin", b"needle\n\0\x01\x02");
        write(&workspace, ".hidden/file", "needle\n");
        write(&workspace, "plain.txt", "needle\n");
        let paths: Vec<String> = search(&workspace, "needle")
            .unwrap()
            .into_iter()
            .map(|hit| hit.path.text)
            .collect();
        assert_eq!(paths, [".hidden/file", "plain.txt"]);
    }

    #[test]
    fn search_should_cap_lines_per_file_and_line_length() {
        let (_dir, workspace) = workspace();
        write(&workspace, "many.txt", "x\n".repeat(50));
        let long = format!("{}needle{}needle\n", "é".repeat(990), "a".repeat(3000));
        write(&workspace, "long.txt", &long);
        let found = search(&workspace, "x|needle").unwrap();
        let many = found
            .iter()
            .filter(|hit| hit.path.text == "many.txt")
            .count();
        assert_eq!(many as u64, MAX_MATCHES_PER_FILE);
        let long = found
            .iter()
            .find(|hit| hit.path.text == "long.txt")
            .unwrap();
        assert!(long.lines.text.ends_with("..."));
        assert!(long.lines.text.len() <= MAX_LINE_BYTES + 3);
        // The first match fits within the kept text, the second does not.
        assert_eq!(long.submatches.len(), 1);
        assert_eq!(long.submatches[0].start, 1980);
    }

    #[test]
    fn search_should_reject_an_invalid_regex() {
        let (_dir, workspace) = workspace();
        let err = search(&workspace, "fn (").unwrap_err();
        assert!(matches!(err, Error::InvalidPattern { .. }), "{err:?}");
        assert!(err.to_string().contains("`pattern`"), "{err}");
    }

    #[test]
    fn search_should_stop_when_cancelled() {
        let (_dir, workspace) = workspace();
        write(&workspace, "a.txt", "needle\n");
        let found = workspace.search("needle", &AtomicBool::new(true)).unwrap();
        assert!(found.is_empty());
    }

    fn find(workspace: &Workspace, query: &str, kind: Option<Kind>) -> Vec<String> {
        let query = FindQuery {
            query: query.to_owned(),
            kind,
            limit: DEFAULT_FIND_LIMIT,
        };
        workspace.find_files(&query, &AtomicBool::new(false))
    }

    #[test]
    fn find_files_should_rank_word_starts_and_short_paths_first() {
        let (_dir, workspace) = workspace();
        for file in [
            "README.md",
            "agent.txt",
            "opencode.json",
            "src/main.rs",
            "src/domain_info.rs",
            "docs/guide/readme-old.md",
            "src/fabric.rs",
            "src/foo_bar.rs",
        ] {
            write(&workspace, file, "x");
        }
        assert_eq!(
            find(&workspace, "READ", None),
            ["README.md", "docs/guide/readme-old.md"]
        );
        assert_eq!(
            find(&workspace, "main", None),
            ["src/main.rs", "src/domain_info.rs"]
        );
        assert_eq!(
            find(&workspace, "fb", Some(Kind::File))[..2],
            ["src/foo_bar.rs", "src/fabric.rs"]
        );
        assert_eq!(find(&workspace, "src", Some(Kind::Directory)), ["src/"]);
        assert_eq!(
            find(&workspace, "src main", Some(Kind::File)),
            ["src/main.rs", "src/domain_info.rs"]
        );
        assert!(find(&workspace, "zzz", None).is_empty());
    }

    #[test]
    fn find_files_should_list_without_a_query_and_put_hidden_dirs_last() {
        let (_dir, workspace) = workspace();
        for file in [".config/x", "b/y", "a/z", "top.txt", "ignored/file"] {
            write(&workspace, file, "x");
        }
        write(&workspace, ".ignore", "ignored/\n");
        assert_eq!(find(&workspace, "", None), ["a/", "b/", ".config/"]);
        assert_eq!(
            find(&workspace, " ", Some(Kind::File)),
            [".config/x", ".ignore", "a/z", "b/y", "top.txt"]
        );
        assert_eq!(find(&workspace, "c", Some(Kind::Directory)), [".config/"]);
        assert_eq!(find(&workspace, ".c", Some(Kind::Directory)), [".config/"]);
        let limited = FindQuery {
            query: String::new(),
            kind: Some(Kind::File),
            limit: 2,
        };
        assert_eq!(
            workspace.find_files(&limited, &AtomicBool::new(false)),
            [".config/x", ".ignore"]
        );
    }

    #[test]
    fn parent_dirs_should_list_each_directory_once() {
        let files = ["a/b/c.txt", "a/b/d.txt", "a/e.txt", "f.txt"].map(str::to_owned);
        assert_eq!(parent_dirs(&files), ["a/b/", "a/"]);
    }

    #[test]
    fn collate_should_ignore_case_and_put_lowercase_first_on_ties() {
        let mut names = vec!["b", "B", "a", "A", "_", "10", "9", "ä"];
        names.sort_by(|a, b| collate(a, b));
        assert_eq!(names, ["_", "10", "9", "a", "A", "b", "B", "ä"]);
    }

    fn git_available() -> bool {
        std::process::Command::new("git")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    fn run_git(dir: &Path, args: &[&str]) {
        let status = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }

    #[tokio::test]
    async fn status_should_report_changes_against_head_and_untracked_files() {
        if !git_available() {
            eprintln!("skipped: git is not installed");
            return;
        }
        let (_dir, workspace) = workspace();
        let root = workspace.root();
        run_git(root, &["init", "-q"]);
        let procs = Procs::default();
        // A repository without commits: staged files are new.
        write(&workspace, "staged.txt", "one\ntwo\n");
        run_git(root, &["add", "staged.txt"]);
        assert_eq!(
            status(root, &procs).await,
            [FileStatus {
                path: "staged.txt".to_owned(),
                added: 2,
                removed: 0,
                status: Change::Added
            }]
        );
        write(&workspace, "edit.txt", "a\nb\nc\n");
        write(&workspace, "gone.txt", "x\ny\n");
        write(&workspace, "sub/old name.txt", "same\n");
        write(&workspace, ".gitignore", "*.log\n");
        run_git(root, &["add", "."]);
        run_git(root, &["commit", "-q", "-m", "init"]);

        write(&workspace, "edit.txt", "a\nB\nc\nd\n");
        fs::remove_file(root.join("gone.txt")).unwrap();
        run_git(root, &["mv", "sub/old name.txt", "sub/new name.txt"]);
        write(&workspace, "new.txt", "1\n2\n3");
        write(&workspace, "bin.dat", b"\0\x01");
        write(&workspace, "debug.log", "ignored\n");
        let mut changes = status(root, &procs).await;
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        let entry = |path: &str, added, removed, status| FileStatus {
            path: path.to_owned(),
            added,
            removed,
            status,
        };
        assert_eq!(
            changes,
            [
                entry("bin.dat", 0, 0, Change::Added),
                entry("edit.txt", 2, 1, Change::Modified),
                entry("gone.txt", 0, 2, Change::Deleted),
                entry("new.txt", 3, 0, Change::Added),
                entry("sub/new name.txt", 1, 0, Change::Added),
                entry("sub/old name.txt", 0, 1, Change::Deleted),
            ]
        );
        // From a subdirectory, paths are relative to it and limited to it.
        let sub = status(&root.join("sub"), &procs).await;
        let paths: Vec<&str> = sub.iter().map(|change| change.path.as_str()).collect();
        assert_eq!(paths, ["new name.txt", "old name.txt"]);
    }

    #[tokio::test]
    async fn status_should_be_empty_outside_a_git_repository() {
        let (_dir, workspace) = workspace();
        write(&workspace, "a.txt", "x\n");
        assert!(status(workspace.root(), &Procs::default()).await.is_empty());
    }
}
