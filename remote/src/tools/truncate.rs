//! OpenCode's limits on what a tool sends back to the model: the generic head truncation every
//! tool's output goes through ([`output`]), and the tail the `bash` tool keeps of a command's
//! output ([`Capture`], [`tail`]).
//!
//! Over the limits (2000 lines, 51200 bytes by default) the full text is saved to a file in a
//! directory the caller gives (OpenCode's `tool-output/`), created `0700` with files `0600`,
//! and the model is told where it is. The caller names the file (`tool_<ascending id>`).

use std::borrow::Cow;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::tools::js;

/// Lines a tool output keeps (`tool_output.max_lines`).
pub const MAX_LINES: usize = 2000;
/// Bytes a tool output keeps (`tool_output.max_bytes`).
pub const MAX_BYTES: usize = 50 * 1024;
/// UTF-16 units of the running output shown in a bash part's metadata.
pub const PREVIEW_LENGTH: usize = 30_000;
/// What an empty bash output reads as.
pub const NO_OUTPUT: &str = "(no output)";

/// The line and byte limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Lines kept at most.
    pub max_lines: usize,
    /// Bytes kept at most (UTF-8, one per line separator).
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_lines: MAX_LINES,
            max_bytes: MAX_BYTES,
        }
    }
}

/// Which advice ends the truncation notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// The agent may use the `task` tool: delegate to the explore agent.
    Task,
    /// It may not: search or page through the file itself.
    Search,
}

/// Where a full output is saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spill {
    /// The directory (created `0700` if missing).
    pub dir: PathBuf,
    /// The file name, `tool_<id>`.
    pub name: String,
}

impl Spill {
    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// Writes `text` as the file (`0600`, replacing one of the same name).
    ///
    /// # Errors
    ///
    /// When the directory or the file cannot be created or written.
    pub fn save(&self, text: &str) -> io::Result<PathBuf> {
        let mut file = self.open(false)?;
        file.write_all(text.as_bytes())?;
        Ok(self.path())
    }

    fn open(&self, append: bool) -> io::Result<fs::File> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .append(append)
            .truncate(!append)
            .mode(0o600)
            .open(self.path())
    }
}

/// The kept head of a text over the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head<'a> {
    /// The first lines that fit, joined by `\n`.
    pub kept: Cow<'a, str>,
    /// How many lines (or bytes, see `bytes`) were left out.
    pub removed: usize,
    /// Whether the byte limit cut it (then `removed` counts bytes).
    pub bytes: bool,
}

/// The head OpenCode's `Truncate.output` keeps, or `None` when the text fits: whole lines
/// from the top while their bytes (plus one per separator) fit and the line limit allows.
pub fn head(text: &str, limits: Limits) -> Option<Head<'_>> {
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.len() <= limits.max_lines && text.len() <= limits.max_bytes {
        return None;
    }
    let (mut kept, mut bytes, mut hit_bytes) = (0, 0, false);
    for (index, line) in lines.iter().take(limits.max_lines).enumerate() {
        let size = line.len() + usize::from(index > 0);
        if bytes + size > limits.max_bytes {
            hit_bytes = true;
            break;
        }
        bytes += size;
        kept += 1;
    }
    Some(Head {
        kept: Cow::Owned(lines[..kept].join("\n")),
        removed: if hit_bytes {
            text.len() - bytes
        } else {
            lines.len() - kept
        },
        bytes: hit_bytes,
    })
}

/// The text the model gets for a truncated output saved at `path`.
pub fn notice(head: &Head<'_>, path: &Path, hint: Hint) -> String {
    let unit = if head.bytes { "bytes" } else { "lines" };
    let path = path.display();
    let advice = match hint {
        Hint::Task => {
            "Use the Task tool to have explore agent process this file with Grep and Read (with offset/limit). Do NOT read the full file yourself - delegate to save context."
        }
        Hint::Search => {
            "Use Grep to search the full content or Read with offset/limit to view specific sections."
        }
    };
    format!(
        "{}\n\n...{} {unit} truncated...\n\nThe tool call succeeded but the output was truncated. Full output saved to: {path}\n{advice}",
        head.kept, head.removed
    )
}

/// A tool output after the generic truncation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncated {
    /// What the model gets.
    pub output: String,
    /// Where the full text was saved (`metadata.outputPath`); `None` when it fit
    /// (`metadata.truncated` is whether this is set).
    pub path: Option<PathBuf>,
}

/// OpenCode's `Truncate.output`: `text` unchanged when it fits, else its head with a notice,
/// the full text saved through `spill`.
///
/// # Errors
///
/// When the full text cannot be saved.
pub fn output(text: &str, limits: Limits, hint: Hint, spill: &Spill) -> io::Result<Truncated> {
    let Some(head) = head(text, limits) else {
        return Ok(Truncated {
            output: text.to_owned(),
            path: None,
        });
    };
    let path = spill.save(text)?;
    Ok(Truncated {
        output: notice(&head, &path, hint),
        path: Some(path),
    })
}

/// The tail the bash tool keeps: the last lines that fit (at most `max_lines`, their bytes plus
/// one per separator within `max_bytes`); when even the last line is too long, its last
/// `max_bytes` bytes from a character boundary. The flag tells whether anything was cut.
pub fn tail(text: &str, limits: Limits) -> (Cow<'_, str>, bool) {
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.len() <= limits.max_lines && text.len() <= limits.max_bytes {
        return (Cow::Borrowed(text), false);
    }
    let mut kept: Vec<&str> = Vec::new();
    let mut bytes = 0;
    for line in lines.iter().rev() {
        if kept.len() >= limits.max_lines {
            break;
        }
        let size = line.len() + usize::from(!kept.is_empty());
        if bytes + size > limits.max_bytes {
            if kept.is_empty() {
                let mut start = line.len().saturating_sub(limits.max_bytes);
                while !line.is_char_boundary(start) {
                    start += 1;
                }
                kept.push(&line[start..]);
            }
            break;
        }
        kept.push(line);
        bytes += size;
    }
    kept.reverse();
    (Cow::Owned(kept.join("\n")), true)
}

/// The bash part's running `metadata.output`: the last [`PREVIEW_LENGTH`] UTF-16 units,
/// after `...\n\n` when cut.
pub fn preview(text: &str) -> Cow<'_, str> {
    if js::utf16_len(text) <= PREVIEW_LENGTH {
        return Cow::Borrowed(text);
    }
    Cow::Owned(format!("...\n\n{}", js::utf16_suffix(text, PREVIEW_LENGTH)))
}

/// What a finished command's output becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// The text for the model (before any `<shell_metadata>` trailer the tool adds).
    pub output: String,
    /// Whether anything was left out (`metadata.truncated`).
    pub truncated: bool,
    /// Where the full output is (`metadata.outputPath`), when truncated.
    pub path: Option<PathBuf>,
    /// The running preview; when empty, OpenCode's metadata shows [`preview`] of the final
    /// output (with its trailer) instead.
    pub live: String,
}

/// A running command's output as the bash tool collects it: the decoded chunks (the oldest
/// dropped once more than twice `max_bytes` are held), the running [`preview`], and the full
/// output spilled to a file once it passes `max_bytes`.
#[derive(Debug)]
pub struct Capture {
    limits: Limits,
    spill: Spill,
    chunks: std::collections::VecDeque<String>,
    held: usize,
    /// Bytes of an incomplete UTF-8 sequence at the end of the last push.
    pending: Vec<u8>,
    /// The output so far, until it is spilled.
    full: String,
    file: Option<fs::File>,
    live: String,
    cut: bool,
}

impl Capture {
    /// An empty capture that spills through `spill` if it grows too long.
    pub fn new(limits: Limits, spill: Spill) -> Capture {
        Capture {
            limits,
            spill,
            chunks: std::collections::VecDeque::new(),
            held: 0,
            pending: Vec::new(),
            full: String::new(),
            file: None,
            live: String::new(),
            cut: false,
        }
    }

    /// Adds bytes from the command (stdout and stderr merged); invalid UTF-8 becomes U+FFFD,
    /// a sequence split across pushes is decoded whole.
    ///
    /// # Errors
    ///
    /// When the spill file cannot be written.
    pub fn push(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(bytes);
        let mut text = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    text.push_str(valid);
                    rest = &[];
                    break;
                }
                Err(err) => {
                    let (valid, after) = rest.split_at(err.valid_up_to());
                    text.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match err.error_len() {
                        Some(len) => {
                            text.push('\u{fffd}');
                            rest = &after[len..];
                        }
                        // An incomplete sequence at the end waits for the next push.
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        if text.is_empty() {
            return Ok(());
        }
        self.take(text)
    }

    fn take(&mut self, text: String) -> io::Result<()> {
        self.held += text.len();
        self.chunks.push_back(text.clone());
        while self.held > self.limits.max_bytes * 2 && self.chunks.len() > 1 {
            if let Some(old) = self.chunks.pop_front() {
                self.held -= old.len();
                self.cut = true;
            }
        }
        self.live = preview(&format!("{}{text}", self.live)).into_owned();
        if let Some(file) = &mut self.file {
            return file.write_all(text.as_bytes());
        }
        self.full.push_str(&text);
        if self.full.len() > self.limits.max_bytes {
            let mut file = self.spill.open(false)?;
            file.write_all(self.full.as_bytes())?;
            self.file = Some(file);
            self.full = String::new();
            self.cut = true;
        }
        Ok(())
    }

    /// The running preview, for the part's `metadata.output` while the command runs.
    pub fn live(&self) -> &str {
        &self.live
    }

    /// The final output: the tail of what was held, `(no output)` when empty, and the
    /// `...output truncated...` notice in front when anything was left out.
    ///
    /// # Errors
    ///
    /// When the spill file cannot be written.
    pub fn finish(mut self) -> io::Result<Captured> {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.take(String::from_utf8_lossy(&rest).into_owned())?;
        }
        let raw: String = self.chunks.iter().map(String::as_str).collect();
        let (end, cut) = tail(&raw, self.limits);
        self.cut |= cut;
        let mut path = self.file.is_some().then(|| self.spill.path());
        if path.is_none() && cut {
            path = Some(self.spill.save(&raw)?);
        }
        let mut output = if end.is_empty() {
            NO_OUTPUT.to_owned()
        } else {
            end.into_owned()
        };
        let truncated = self.cut;
        let path = path.filter(|_| truncated);
        if let Some(path) = &path {
            output = format!(
                "...output truncated...\n\nFull output saved to: {}\n\n{output}",
                path.display()
            );
        }
        Ok(Captured {
            output,
            truncated,
            path,
            live: self.live,
        })
    }
}

/// Removes the files in `dir` last modified more than `age` ago (OpenCode keeps tool outputs
/// 7 days); returns how many it removed. A missing directory has nothing to remove.
///
/// # Errors
///
/// When the directory exists but cannot be listed.
pub fn remove_older_than(dir: &Path, age: Duration) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(err),
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .ok()
            .filter(fs::Metadata::is_file)
            .and_then(|meta| meta.modified().ok())
            .and_then(|modified| now.duration_since(modified).ok())
            .is_some_and(|elapsed| elapsed > age);
        // A file that cannot be removed now is tried again on the next sweep.
        if old && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn spill(dir: &Path) -> Spill {
        Spill {
            dir: dir.join("tool-output"),
            name: "tool_test".into(),
        }
    }

    #[test]
    fn output_should_pass_small_texts_through() {
        let dir = tempfile::tempdir().unwrap();
        let out = output("a\nb", Limits::default(), Hint::Task, &spill(dir.path())).unwrap();
        assert_eq!(out.output, "a\nb");
        assert_eq!(out.path, None);
        assert!(!dir.path().join("tool-output").exists());
    }

    #[test]
    fn output_should_keep_the_head_and_save_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let spill = spill(dir.path());
        let text: String = (1..=5).map(|n| format!("{n}\n")).collect();
        let limits = Limits {
            max_lines: 3,
            max_bytes: 1000,
        };
        let out = output(&text, limits, Hint::Search, &spill).unwrap();
        let path = spill.path();
        assert_eq!(
            out.output,
            format!(
                "1\n2\n3\n\n...3 lines truncated...\n\nThe tool call succeeded but the output was truncated. Full output saved to: {}\nUse Grep to search the full content or Read with offset/limit to view specific sections.",
                path.display()
            )
        );
        assert_eq!(out.path.as_deref(), Some(path.as_path()));
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&spill.dir), 0o700);
        let bytes = Limits {
            max_lines: 100,
            max_bytes: 5,
        };
        let out = output("abc\ndef\nghi", bytes, Hint::Task, &spill).unwrap();
        assert!(
            out.output.starts_with("abc\n\n...8 bytes truncated...\n\n"),
            "{}",
            out.output
        );
        assert!(out.output.ends_with(
            "Use the Task tool to have explore agent process this file with Grep and Read (with offset/limit). Do NOT read the full file yourself - delegate to save context."
        ));
    }

    #[test]
    fn tail_should_keep_the_last_lines_and_cut_a_long_one_at_a_char_boundary() {
        let limits = Limits {
            max_lines: 2,
            max_bytes: 100,
        };
        assert_eq!(tail("a\nb\nc\n", limits), (Cow::Borrowed("c\n"), true));
        assert_eq!(tail("a\nb", limits), (Cow::Borrowed("a\nb"), false));
        let narrow = Limits {
            max_lines: 10,
            max_bytes: 4,
        };
        // "éé" is 4 bytes; the 5-byte cut would start inside the first é.
        assert_eq!(tail("xéé", narrow).0, "éé");
        assert_eq!(tail("ab\nxéé", narrow).0, "éé");
    }

    #[test]
    fn capture_should_report_no_output_and_short_output_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let capture = Capture::new(Limits::default(), spill(dir.path()));
        let done = capture.finish().unwrap();
        assert_eq!(done.output, "(no output)");
        assert!(!done.truncated && done.path.is_none() && done.live.is_empty());

        let mut capture = Capture::new(Limits::default(), spill(dir.path()));
        capture.push(b"hello world\nsecond ").unwrap();
        capture.push(&[b'l', b'i', 0xc3]).unwrap();
        capture.push(&[0xa9, b'\n']).unwrap();
        assert_eq!(capture.live(), "hello world\nsecond lié\n");
        let done = capture.finish().unwrap();
        assert_eq!(done.output, "hello world\nsecond lié\n");
        assert!(!done.truncated);
    }

    #[test]
    fn capture_should_keep_the_tail_and_spill_the_whole_output() {
        let dir = tempfile::tempdir().unwrap();
        let spill = spill(dir.path());
        let mut capture = Capture::new(Limits::default(), spill.clone());
        let mut all = String::new();
        for n in 1..=3000 {
            let line = format!("{n}\n");
            all.push_str(&line);
            capture.push(line.as_bytes()).unwrap();
        }
        let done = capture.finish().unwrap();
        let tail: String = (1002..=3000).map(|n| format!("{n}\n")).collect();
        assert_eq!(
            done.output,
            format!(
                "...output truncated...\n\nFull output saved to: {}\n\n{tail}",
                spill.path().display()
            )
        );
        assert!(done.truncated);
        assert_eq!(fs::read_to_string(spill.path()).unwrap(), all);
    }

    #[test]
    fn preview_should_keep_the_last_units() {
        let long = format!("{}end", "x".repeat(PREVIEW_LENGTH));
        let shown = preview(&long);
        assert!(shown.starts_with("...\n\nxx") && shown.ends_with("end"));
        assert_eq!(js::utf16_len(&shown), PREVIEW_LENGTH + 5);
        assert_eq!(preview("short"), "short");
    }

    #[test]
    fn remove_older_than_should_spare_fresh_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("tool_a"), "x").unwrap();
        assert_eq!(
            remove_older_than(dir.path(), Duration::from_secs(3600)).unwrap(),
            0
        );
        assert_eq!(
            remove_older_than(&dir.path().join("none"), Duration::ZERO).unwrap(),
            0
        );
    }
}
