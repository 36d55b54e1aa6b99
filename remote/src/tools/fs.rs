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
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use base64::Engine as _;
use ignore::{WalkBuilder, WalkState};
use serde::Serialize;

mod walk;

use walk::IgnoreRules;
pub(crate) use walk::{Walk, lock, ripgrep};

/// Largest file `/file/content` serves (OpenCode has no limit; whole files go into one JSON).
pub const MAX_READ_BYTES: u64 = 10 << 20;
/// Entries one walk visits at most (OpenCode's own file index stops at 100 000 files too).
pub const MAX_WALK_ENTRIES: usize = 100_000;
/// Time the file finder's walk may take; it answers with what it found by then.
pub const WALK_BUDGET: Duration = Duration::from_secs(5);
/// Entries one directory listing returns at most.
pub const MAX_LIST_ENTRIES: usize = 100_000;

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

    /// Files under the root, relative with `/` separators, sorted.
    pub(crate) fn walk_files(&self, cancel: &AtomicBool) -> Vec<String> {
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
    pub(crate) fn walker(&self) -> WalkBuilder {
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
pub(crate) fn slash_path(relative: &Path) -> String {
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
pub(crate) fn collate(a: &str, b: &str) -> Ordering {
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

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for the tools' tests.

    use super::*;

    pub(crate) fn workspace() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        (dir, Workspace::new(root))
    }

    pub(crate) fn write(workspace: &Workspace, path: &str, content: impl AsRef<[u8]>) {
        let path = workspace.root().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{workspace, write};
    use super::*;

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

    #[test]
    fn collate_should_ignore_case_and_put_lowercase_first_on_ties() {
        let mut names = vec!["b", "B", "a", "A", "_", "10", "9", "ä"];
        names.sort_by(|a, b| collate(a, b));
        assert_eq!(names, ["_", "10", "9", "a", "A", "b", "B", "ä"]);
    }
}
