//! The system prompt of a turn: our own base instructions, the model line, the `<env>` block
//! in OpenCode's exact layout (models are tuned on it), and the project's instruction files.

use std::path::Path;

use crate::session::ids;
use crate::session::info::iso8601;

/// Base instructions for the coding agent, in our own words.
const BASE: &str = "\
You are OpenCode, an interactive coding agent working in a software project on the user's \
behalf. The project lives on a remote Linux host; every tool you call runs on that host.

# How to work
- Be concise and direct. Answer in plain text that reads well in a terminal; use Markdown \
sparingly. Do not pad answers with summaries of what you just did unless asked.
- Understand before you change: read the relevant files, search with grep and glob, and \
follow the conventions, libraries and style the project already uses.
- Prefer editing existing files to creating new ones. Never create documentation files \
unless the user asks for them.
- Use the todowrite tool to plan and track work that has several steps, and mark items done \
as soon as they are.
- After changing code, run the project's own checks (build, tests, linters) when you can \
find how, and fix what you broke.
- Never reveal or log secrets, and never commit changes unless the user asks you to.
- When you refer to code, give `path:line` so the user can jump to it.

# Tools
- Use read, grep and glob rather than shell commands to read and search files; use bash \
for builds, tests, git and other programs. Give bash commands that finish on their own.
- Use edit (or apply_patch) for changes to existing files and write for new ones; paths \
are absolute.
- Call several independent tools in one step when you can.";

/// Where a turn runs.
#[derive(Debug, Clone)]
pub struct Env<'a> {
    /// The workspace directory.
    pub directory: &'a Path,
    /// The git worktree root (the directory itself when not in git).
    pub worktree: &'a Path,
    /// Whether the directory is in a git repository.
    pub git: bool,
}

/// The system prompt for a call to `provider_id/api_id`, with the host's skills (when the
/// `skill` tool is offered), the instruction files found, as `(path, contents)`, and the
/// user's `extra` system text (from the prompt).
pub fn prompt(
    provider_id: &str,
    api_id: &str,
    env: &Env<'_>,
    skills: Option<&str>,
    instructions: &[(String, String)],
    extra: Option<&str>,
) -> Vec<String> {
    let mut text = String::from(BASE);
    text.push_str("\n\n");
    text.push_str(&format!(
        "You are powered by the model named {api_id}. The exact model ID is {provider_id}/{api_id}\n"
    ));
    text.push_str("Here is some useful information about the environment you are running in:\n");
    text.push_str("<env>\n");
    text.push_str(&format!(
        "  Working directory: {}\n",
        env.directory.display()
    ));
    text.push_str(&format!(
        "  Workspace root folder: {}\n",
        env.worktree.display()
    ));
    text.push_str(&format!(
        "  Is directory a git repo: {}\n",
        if env.git { "yes" } else { "no" }
    ));
    text.push_str("  Platform: linux\n");
    text.push_str(&format!("  Today's date: {}\n", date_string(ids::now_ms())));
    text.push_str("</env>");
    if let Some(skills) = skills {
        text.push('\n');
        text.push_str(skills);
    }
    let mut parts = vec![text];
    for (path, contents) in instructions {
        parts.push(format!("Instructions from: {path}\n{contents}"));
    }
    if let Some(extra) = extra.filter(|extra| !extra.is_empty()) {
        parts.push(extra.to_owned());
    }
    parts
}

/// The project's instruction files: the first `AGENTS.md` (else `CLAUDE.md`) found from
/// `directory` up to `worktree`, read with a size cap.
pub fn instructions(directory: &Path, worktree: &Path) -> Vec<(String, String)> {
    const MAX: u64 = 256 << 10;
    let mut found = Vec::new();
    for dir in directory.ancestors() {
        for name in ["AGENTS.md", "CLAUDE.md"] {
            let path = dir.join(name);
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() || meta.len() > MAX {
                continue;
            }
            if let Ok(contents) = std::fs::read_to_string(&path) {
                found.push((path.display().to_string(), contents));
                break;
            }
        }
        if !found.is_empty() || dir == worktree {
            break;
        }
    }
    found
}

/// JavaScript's `Date.prototype.toDateString()` in UTC: `Fri Dec 04 2026`.
pub fn date_string(ms: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let iso = iso8601(ms);
    let year = &iso[0..4];
    let month: usize = iso[5..7].parse().unwrap_or(1);
    let day = &iso[8..10];
    // 1970-01-01 was a Thursday.
    let weekday = ((ms / 86_400_000 + 4) % 7) as usize;
    format!(
        "{} {} {day} {year}",
        DAYS[weekday],
        MONTHS[month.clamp(1, 12) - 1]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_string_should_match_javascript() {
        // 2026-12-04T10:00:00Z
        assert_eq!(date_string(1_796_378_400_000), "Fri Dec 04 2026");
        assert_eq!(date_string(0), "Thu Jan 01 1970");
    }

    #[test]
    fn prompt_should_carry_the_model_line_and_env_block() {
        let env = Env {
            directory: Path::new("/srv/app"),
            worktree: Path::new("/srv/app"),
            git: true,
        };
        let parts = prompt(
            "fake",
            "upstream",
            &env,
            Some("<available_skills>\n</available_skills>"),
            &[("/srv/app/AGENTS.md".into(), "use tabs".into())],
            Some("be brief"),
        );
        assert_eq!(parts.len(), 3);
        assert!(parts[0].contains(
            "You are powered by the model named upstream. The exact model ID is fake/upstream\n"
        ));
        assert!(parts[0].contains("<env>\n  Working directory: /srv/app\n  Workspace root folder: /srv/app\n  Is directory a git repo: yes\n  Platform: linux\n"));
        assert!(parts[0].ends_with("</env>\n<available_skills>\n</available_skills>"));
        assert_eq!(parts[1], "Instructions from: /srv/app/AGENTS.md\nuse tabs");
        assert_eq!(parts[2], "be brief");
    }
}
