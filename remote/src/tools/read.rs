//! The execution half of OpenCode's `read` tool: a file's numbered lines in the
//! `<path>…</path>\n<type>file</type>\n<content>…</content>` frame, a directory's entries,
//! images and PDFs as data URLs, binary files refused, and the "did you mean" list for a
//! missing path.
//!
//! Paths are absolute and not confined (the tool asks permission for paths outside the
//! project before calling here). The caller decides the order OpenCode uses: `stat`, the
//! external-directory and `read` permissions, then [`not_found`], [`directory`] or [`file`].
//! Everything here blocks on the disk; [`text`] alone is pure and reads from any reader.
//!
//! Lines end at `\n`, `\r\n` or a lone `\r` (Node's `readline`, which OpenCode streams the file
//! through), invalid UTF-8 becomes U+FFFD, and a BOM stays in the first line as Node keeps it.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use base64::Engine as _;
use serde::Serialize;

use crate::tools::fs::collate;
use crate::tools::js;

/// Lines (or directory entries) returned without a `limit`.
pub const DEFAULT_LIMIT: usize = 2000;
/// Longer lines are cut to this many UTF-16 units.
pub const MAX_LINE_LENGTH: usize = 2000;
/// Bytes of numbered lines one read returns at most.
pub const MAX_BYTES: usize = 50 * 1024;
/// Bytes sampled to recognise images, PDFs and binary files.
pub const SAMPLE_BYTES: usize = 4096;
/// Lines (or entries) in `metadata.preview`.
const PREVIEW_LINES: usize = 20;
/// What a cut line ends with.
const LINE_SUFFIX: &str = "... (line truncated to 2000 chars)";
/// Bytes of a line kept while reading: more than any 2000 UTF-16 units take.
const LINE_KEEP: usize = 4 * MAX_LINE_LENGTH + 4;

/// Extensions OpenCode never reads as text.
const BINARY_EXTENSIONS: &[&str] = &[
    "zip", "tar", "gz", "exe", "dll", "so", "class", "jar", "war", "7z", "doc", "docx", "xls",
    "xlsx", "ppt", "pptx", "odt", "ods", "odp", "bin", "dat", "obj", "o", "a", "lib", "wasm",
    "pyc", "pyo",
];

/// Why a read failed. `Display` is the exact text OpenCode's tool reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Nothing at the path; `suggestions` are up to 3 similar names beside it.
    #[error("File not found: {path}{}", did_you_mean(suggestions))]
    NotFound {
        /// The absolute path.
        path: String,
        /// Full paths of similarly named entries of the parent directory.
        suggestions: Vec<String>,
    },
    /// The file is binary.
    #[error("Cannot read binary file: {path}")]
    Binary {
        /// The absolute path.
        path: String,
    },
    /// `offset` is past the last line.
    #[error("Offset {offset} is out of range for this file ({lines} lines)")]
    OffsetOutOfRange {
        /// The 1-based offset asked for.
        offset: usize,
        /// The lines the file has.
        lines: usize,
    },
    /// The file or directory could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The absolute path.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn did_you_mean(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("\n\nDid you mean one of these?\n{}", suggestions.join("\n"))
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ReadError + '_ {
    move |source| ReadError::Io {
        path: path.to_string_lossy().into_owned(),
        source,
    }
}

/// The part of the file or directory to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The first line (or entry), 1-based.
    pub offset: usize,
    /// Lines (or entries) at most.
    pub limit: usize,
}

impl Window {
    /// The tool's `offset` and `limit`: a missing or zero offset is 1, a missing limit is
    /// [`DEFAULT_LIMIT`].
    pub fn new(offset: Option<u64>, limit: Option<u64>) -> Window {
        let offset = offset.filter(|offset| *offset > 0).unwrap_or(1);
        let limit = limit.map_or(DEFAULT_LIMIT as u64, |limit| limit);
        Window {
            offset: usize::try_from(offset).unwrap_or(usize::MAX),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        }
    }
}

impl Default for Window {
    fn default() -> Window {
        Window::new(None, None)
    }
}

/// `metadata.display` of a file read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename = "file", rename_all = "camelCase")]
pub struct FileDisplay {
    /// The absolute path.
    pub path: String,
    /// The shown lines (cut as shown, without numbers) joined by `\n`.
    pub text: String,
    /// The first line shown.
    pub line_start: usize,
    /// The last line shown (`offset - 1` when none).
    pub line_end: usize,
    /// The lines counted (all of them, unless the byte cap stopped the reading).
    pub total_lines: usize,
    /// Whether lines remain after `line_end`.
    pub truncated: bool,
}

/// A text file's read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    /// The tool output (append reminders with [`append_reminders`]).
    pub output: String,
    /// `metadata.preview`: the first 20 shown lines.
    pub preview: String,
    /// `metadata.truncated`.
    pub truncated: bool,
    /// `metadata.display`.
    pub display: FileDisplay,
}

/// An image or PDF, sent as an attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// `image/png`, `image/jpeg`, `image/gif`, `image/webp` or `application/pdf`.
    pub mime: &'static str,
    /// `data:<mime>;base64,…` with the whole file.
    pub url: String,
    /// The tool output, also `metadata.preview`: `Image read successfully` or
    /// `PDF read successfully`.
    pub output: &'static str,
}

/// What reading a file gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum File {
    /// Numbered lines.
    Text(Text),
    /// An attachment.
    Media(Media),
}

/// `metadata.display` of a directory read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename = "directory", rename_all = "camelCase")]
pub struct DirectoryDisplay {
    /// The absolute path.
    pub path: String,
    /// The shown entries.
    pub entries: Vec<String>,
    /// The first entry shown, 1-based.
    pub offset: usize,
    /// All entries.
    pub total_entries: usize,
    /// Whether entries remain.
    pub truncated: bool,
}

/// A directory's read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    /// The tool output.
    pub output: String,
    /// `metadata.preview`: the first 20 shown entries.
    pub preview: String,
    /// `metadata.truncated`.
    pub truncated: bool,
    /// `metadata.display`.
    pub display: DirectoryDisplay,
}

/// The error for a missing `path`, with the parent's entries whose lower-case names contain
/// the lower-case file name or are contained in it (the first 3, in directory order).
pub fn not_found(path: &Path) -> ReadError {
    let base = path
        .file_name()
        .map(|name| name.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let parent = path.parent().unwrap_or(Path::new("/"));
    let suggestions = fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().to_lowercase();
            name.contains(&base) || base.contains(&name)
        })
        .take(3)
        .map(|entry| {
            parent
                .join(entry.file_name())
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    ReadError::NotFound {
        path: path.to_string_lossy().into_owned(),
        suggestions,
    }
}

/// The directory listing: entries ordered as `localeCompare` orders them, directories (and
/// symlinks to directories) with a trailing `/`.
///
/// # Errors
///
/// When the directory cannot be listed.
pub fn directory(path: &Path, window: Window) -> Result<Directory, ReadError> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(path).map_err(io_error(path))? {
        let entry = entry.map_err(io_error(path))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = match entry.file_type() {
            Ok(kind) if kind.is_symlink() => entry.path().is_dir(),
            Ok(kind) => kind.is_dir(),
            Err(_) => false,
        };
        entries.push(if is_dir { format!("{name}/") } else { name });
    }
    entries.sort_by(|a, b| collate(a, b));
    Ok(listing(&path.to_string_lossy(), &entries, window))
}

/// The directory output for `entries` (already ordered).
pub fn listing(path: &str, entries: &[String], window: Window) -> Directory {
    let start = window.offset - 1;
    let shown: Vec<String> = entries
        .iter()
        .skip(start)
        .take(window.limit)
        .cloned()
        .collect();
    let truncated = start + shown.len() < entries.len();
    let footer = if truncated {
        format!(
            "\n(Showing {} of {} entries. Use 'offset' parameter to read beyond entry {})",
            shown.len(),
            entries.len(),
            window.offset + shown.len()
        )
    } else {
        format!("\n({} entries)", entries.len())
    };
    let output = [
        format!("<path>{path}</path>"),
        "<type>directory</type>".to_owned(),
        "<entries>".to_owned(),
        shown.join("\n"),
        footer,
        "</entries>".to_owned(),
    ]
    .join("\n");
    Directory {
        output,
        preview: shown
            .iter()
            .take(PREVIEW_LINES)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        truncated,
        display: DirectoryDisplay {
            path: path.to_owned(),
            entries: shown,
            offset: window.offset,
            total_entries: entries.len(),
            truncated,
        },
    }
}

/// Reads a file: an image or PDF (by magic bytes, else by extension) as a [`Media`], any
/// other binary file refused, text as numbered lines.
///
/// # Errors
///
/// [`ReadError::Binary`], [`ReadError::OffsetOutOfRange`] or [`ReadError::Io`].
pub fn file(path: &Path, window: Window) -> Result<File, ReadError> {
    let mut handle = fs::File::open(path).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound => not_found(path),
        _ => io_error(path)(err),
    })?;
    let mut sample = Vec::with_capacity(SAMPLE_BYTES);
    (&mut handle)
        .take(SAMPLE_BYTES as u64)
        .read_to_end(&mut sample)
        .map_err(io_error(path))?;
    if let Some(mime) = media_type(path, &sample) {
        let bytes = fs::read(path).map_err(io_error(path))?;
        let data = base64::engine::general_purpose::STANDARD.encode(bytes);
        return Ok(File::Media(Media {
            mime,
            url: format!("data:{mime};base64,{data}"),
            output: if mime == "application/pdf" {
                "PDF read successfully"
            } else {
                "Image read successfully"
            },
        }));
    }
    if is_binary(path, &sample) {
        return Err(ReadError::Binary {
            path: path.to_string_lossy().into_owned(),
        });
    }
    let reader = BufReader::new(io::Cursor::new(sample).chain(handle));
    text(&path.to_string_lossy(), reader, window)
        .map(File::Text)
        .map_err(|err| match err {
            ReadError::Io { source, .. } => io_error(path)(source),
            other => other,
        })
}

/// The MIME type of an image or PDF the read tool attaches, from the first bytes or else the
/// extension; `None` for everything else.
pub fn media_type(path: &Path, sample: &[u8]) -> Option<&'static str> {
    let magic = if sample.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if sample.starts_with(b"\xff\xd8\xff") {
        Some("image/jpeg")
    } else if sample.starts_with(b"GIF87a") || sample.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if sample.starts_with(b"RIFF") && sample.get(8..12) == Some(b"WEBP") {
        Some("image/webp")
    } else if sample.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else {
        None
    };
    magic.or_else(|| match extension(path).as_str() {
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "gif" => Some("image/gif"),
        "webp" => Some("image/webp"),
        "pdf" => Some("application/pdf"),
        _ => None,
    })
}

fn extension(path: &Path) -> String {
    path.extension()
        .map(|ext| ext.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

/// Whether OpenCode refuses the file as binary: a listed extension, a NUL byte in the sample,
/// or more than 30 % of its bytes control characters other than `\t\n\v\f\r`.
pub fn is_binary(path: &Path, sample: &[u8]) -> bool {
    if BINARY_EXTENSIONS.contains(&extension(path).as_str()) {
        return true;
    }
    if sample.is_empty() {
        return false;
    }
    if sample.contains(&0) {
        return true;
    }
    let control = sample
        .iter()
        .filter(|byte| **byte < 9 || (14..32).contains(*byte))
        .count();
    control as f64 / sample.len() as f64 > 0.3
}

/// Reads lines the way Node's `readline` splits them, keeping at most [`LINE_KEEP`] bytes of
/// each (enough for the cut) and the count of all of them.
struct Lines<R> {
    reader: R,
    /// A `\r` ended the last line; a `\n` right after it belongs to it.
    after_cr: bool,
}

impl<R: BufRead> Lines<R> {
    /// The next line's kept bytes, `None` at the end.
    fn next_line(&mut self, keep: bool) -> io::Result<Option<Vec<u8>>> {
        let mut line = Vec::new();
        let mut any = false;
        loop {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                return Ok(any.then_some(line));
            }
            let mut start = 0;
            if std::mem::take(&mut self.after_cr) && buffer[0] == b'\n' {
                start = 1;
            }
            let rest = &buffer[start..];
            match rest.iter().position(|b| *b == b'\n' || *b == b'\r') {
                Some(end) => {
                    if keep {
                        let room = LINE_KEEP.saturating_sub(line.len());
                        line.extend_from_slice(&rest[..end.min(room)]);
                    }
                    self.after_cr = rest[end] == b'\r';
                    self.reader.consume(start + end + 1);
                    return Ok(Some(line));
                }
                None => {
                    any |= !rest.is_empty();
                    if keep {
                        let room = LINE_KEEP.saturating_sub(line.len());
                        line.extend_from_slice(&rest[..rest.len().min(room)]);
                    }
                    let used = start + rest.len();
                    self.reader.consume(used);
                }
            }
        }
    }
}

/// The numbered lines of a text in the read tool's frame, `path` shown as given.
///
/// # Errors
///
/// [`ReadError::OffsetOutOfRange`] when the text has fewer lines than `offset` (an empty text
/// read from line 1 is fine), or [`ReadError::Io`] from the reader.
pub fn text(path: &str, reader: impl BufRead, window: Window) -> Result<Text, ReadError> {
    let mut lines = Lines {
        reader,
        after_cr: false,
    };
    let start = window.offset - 1;
    let (mut count, mut bytes) = (0, 0);
    let (mut more, mut cut) = (false, false);
    let mut shown: Vec<String> = Vec::new();
    loop {
        let keep = count >= start && shown.len() < window.limit;
        let Some(raw) = lines.next_line(keep).map_err(|source| ReadError::Io {
            path: path.to_owned(),
            source,
        })?
        else {
            break;
        };
        count += 1;
        if count <= start {
            continue;
        }
        if shown.len() >= window.limit {
            more = true;
            continue;
        }
        let decoded = String::from_utf8_lossy(&raw);
        let line = if js::utf16_len(&decoded) > MAX_LINE_LENGTH {
            format!(
                "{}{LINE_SUFFIX}",
                js::utf16_prefix(&decoded, MAX_LINE_LENGTH)
            )
        } else {
            decoded.into_owned()
        };
        let size = line.len() + usize::from(!shown.is_empty());
        if bytes + size > MAX_BYTES {
            cut = true;
            more = true;
            break;
        }
        bytes += size;
        shown.push(line);
    }
    if count < window.offset && !(count == 0 && window.offset == 1) {
        return Err(ReadError::OffsetOutOfRange {
            offset: window.offset,
            lines: count,
        });
    }
    let last = window.offset + shown.len() - 1;
    let mut output = format!("<path>{path}</path>\n<type>file</type>\n<content>\n");
    let numbered: Vec<String> = shown
        .iter()
        .enumerate()
        .map(|(index, line)| format!("{}: {line}", window.offset + index))
        .collect();
    output.push_str(&numbered.join("\n"));
    if cut {
        output.push_str(&format!(
            "\n\n(Output capped at 50 KB. Showing lines {}-{last}. Use offset={} to continue.)",
            window.offset,
            last + 1
        ));
    } else if more {
        output.push_str(&format!(
            "\n\n(Showing lines {}-{last} of {count}. Use offset={} to continue.)",
            window.offset,
            last + 1
        ));
    } else {
        output.push_str(&format!("\n\n(End of file - total {count} lines)"));
    }
    output.push_str("\n</content>");
    let truncated = more || cut;
    Ok(Text {
        output,
        preview: shown
            .iter()
            .take(PREVIEW_LINES)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        truncated,
        display: FileDisplay {
            path: path.to_owned(),
            text: shown.join("\n"),
            line_start: window.offset,
            line_end: last,
            total_lines: count,
            truncated,
        },
    })
}

/// Appends the instruction files found near the read file, as OpenCode does:
/// `\n\n<system-reminder>\n<contents joined by a blank line>\n</system-reminder>`.
pub fn append_reminders(output: &mut String, contents: &[String]) {
    if contents.is_empty() {
        return;
    }
    output.push_str("\n\n<system-reminder>\n");
    output.push_str(&contents.join("\n\n"));
    output.push_str("\n</system-reminder>");
}

/// The data URL of a file's bytes, for callers that already hold them.
pub fn data_url(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(content: &str, window: Window) -> Result<Text, ReadError> {
        text("/p/f.txt", content.as_bytes(), window)
    }

    /// T1 of `samples-agent.json`: the read of hello.txt, output and metadata.
    #[test]
    fn text_should_reproduce_the_captured_read() {
        let read = text(
            "/home/dev/project/hello.txt",
            &b"hello edited world\nsecond line\n"[..],
            Window::default(),
        )
        .unwrap();
        assert_eq!(
            read.output,
            "<path>/home/dev/project/hello.txt</path>\n<type>file</type>\n<content>\n1: hello edited world\n2: second line\n\n(End of file - total 2 lines)\n</content>"
        );
        assert_eq!(read.preview, "hello edited world\nsecond line");
        assert!(!read.truncated);
        assert_eq!(
            serde_json::to_value(&read.display).unwrap(),
            serde_json::json!({"type": "file", "path": "/home/dev/project/hello.txt",
                "text": "hello edited world\nsecond line", "lineStart": 1, "lineEnd": 2,
                "totalLines": 2, "truncated": false})
        );
    }

    #[test]
    fn text_should_page_and_count_all_lines() {
        let content: String = (1..=10).map(|n| format!("l{n}\r\n")).collect();
        let read = read(&content, Window::new(Some(3), Some(2))).unwrap();
        assert!(
            read.output.ends_with(
                "\n3: l3\n4: l4\n\n(Showing lines 3-4 of 10. Use offset=5 to continue.)\n</content>"
            ),
            "{}",
            read.output
        );
        assert!(read.truncated);
        let err = super::tests::read("a\nb", Window::new(Some(3), None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Offset 3 is out of range for this file (2 lines)"
        );
        let empty = super::tests::read("", Window::new(Some(0), None)).unwrap();
        assert!(
            empty
                .output
                .ends_with("<content>\n\n\n(End of file - total 0 lines)\n</content>")
        );
        assert_eq!(empty.display.line_end, 0);
    }

    #[test]
    fn text_should_split_lines_like_readline() {
        let read = read("a\rb\r\nc\n\nd", Window::default()).unwrap();
        assert_eq!(read.display.text, "a\nb\nc\n\nd");
        assert_eq!(read.display.total_lines, 5);
    }

    #[test]
    fn text_should_cut_long_lines_and_cap_bytes() {
        let long = format!("{}\nshort\n", "x".repeat(2500));
        let read = read(&long, Window::default()).unwrap();
        assert!(read.output.contains(&format!(
            "1: {}... (line truncated to 2000 chars)\n2: short",
            "x".repeat(2000)
        )));
        let many: String = (0..100)
            .map(|_| format!("{}\n", "y".repeat(1000)))
            .collect();
        let read = super::tests::read(&many, Window::default()).unwrap();
        assert!(
            read.output
                .ends_with("\n\n(Output capped at 50 KB. Showing lines 1-51. Use offset=52 to continue.)\n</content>"),
            "{}",
            &read.output[read.output.len() - 120..]
        );
    }

    #[test]
    fn listing_should_frame_entries_and_page() {
        let entries: Vec<String> = ["a/", "b.txt", "c"].map(String::from).to_vec();
        let all = listing("/p", &entries, Window::default());
        assert_eq!(
            all.output,
            "<path>/p</path>\n<type>directory</type>\n<entries>\na/\nb.txt\nc\n\n(3 entries)\n</entries>"
        );
        let page = listing("/p", &entries, Window::new(Some(2), Some(1)));
        assert!(page.output.contains(
            "\nb.txt\n\n(Showing 1 of 3 entries. Use 'offset' parameter to read beyond entry 3)\n</entries>"
        ));
        assert!(page.truncated);
        assert_eq!(
            listing("/e", &[], Window::default()).output,
            "<path>/e</path>\n<type>directory</type>\n<entries>\n\n\n(0 entries)\n</entries>"
        );
    }

    #[test]
    fn files_on_disk_should_be_classified() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("sub")).unwrap();
        fs::write(root.join("hello.txt"), "hi\n").unwrap();
        fs::write(root.join("Hello.md"), "x").unwrap();
        fs::write(root.join("pic.png"), b"\x89PNG\r\n\x1a\nrest").unwrap();
        fs::write(root.join("blob"), b"a\0b").unwrap();
        fs::write(root.join("lib.so"), b"").unwrap();
        std::os::unix::fs::symlink(root.join("sub"), root.join("link")).unwrap();

        let listed = directory(root, Window::default()).unwrap();
        assert_eq!(
            listed.display.entries,
            [
                "blob",
                "Hello.md",
                "hello.txt",
                "lib.so",
                "link/",
                "pic.png",
                "sub/"
            ]
        );
        let Ok(File::Media(media)) = file(&root.join("pic.png"), Window::default()) else {
            panic!("an image");
        };
        assert_eq!(media.mime, "image/png");
        assert_eq!(media.url, data_url("image/png", b"\x89PNG\r\n\x1a\nrest"));
        assert_eq!(media.output, "Image read successfully");
        for name in ["blob", "lib.so"] {
            let path = root.join(name);
            let err = file(&path, Window::default()).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("Cannot read binary file: {}", path.display())
            );
        }
        assert!(matches!(
            file(&root.join("hello.txt"), Window::default()),
            Ok(File::Text(_))
        ));
        let missing = root.join("hello");
        let err = not_found(&missing).to_string();
        assert!(err.starts_with(&format!(
            "File not found: {}\n\nDid you mean one of these?\n",
            missing.display()
        )));
        assert!(err.contains(&root.join("hello.txt").to_string_lossy().into_owned()));
        assert_eq!(
            not_found(&root.join("zzz")).to_string(),
            format!("File not found: {}", root.join("zzz").display())
        );
    }

    #[test]
    fn binary_detection_should_count_control_bytes() {
        let path = Path::new("/p/x");
        assert!(!is_binary(path, b""));
        assert!(!is_binary(path, b"plain\ttext\r\n"));
        assert!(is_binary(path, &[1, 2, 3, b'a']));
        assert!(!is_binary(path, &[1, b'a', b'b', b'c']));
    }
}
