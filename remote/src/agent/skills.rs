//! Skills on the host: `SKILL.md` files (front matter with `name` and `description`, then
//! instructions) found where OpenCode 1.18.33 looks for them when it runs on a machine, so a
//! project's skills work the same in a remote workspace. Looked up, in this order (a later
//! skill of the same name wins, as in OpenCode):
//! - `~/.claude/skills/**/SKILL.md` and `~/.agents/skills/**/SKILL.md`;
//! - `.claude/skills/**` and `.agents/skills/**` in the workspace directory and each parent
//!   up to the work tree's root;
//! - `{skill,skills}/**/SKILL.md` under `~/.config/opencode` and under each `.opencode`
//!   directory from the work tree's root down to the workspace directory.
//!
//! The list goes into the system prompt; the `skill` tool hands one skill's instructions to
//! the model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How deep a skills folder is searched, and how many `SKILL.md` files one folder may hold:
/// a home directory full of clones must not stall a turn.
const MAX_DEPTH: usize = 8;
const MAX_PER_ROOT: usize = 200;
/// `SKILL.md` files larger than this are skipped.
const MAX_SIZE: u64 = 256 << 10;

/// One skill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skill {
    /// Its name (from the front matter).
    pub name: String,
    /// When to use it; skills without one are not listed to the model.
    pub description: Option<String>,
    /// The `SKILL.md` file.
    pub location: PathBuf,
    /// The instructions after the front matter.
    pub content: String,
    /// Whether it came from the user's laptop (its files are not on the host).
    pub laptop: bool,
}

/// The user's own skills sent by the laptop (`Setup::skills`, the local OpenCode's listing).
pub fn from_laptop(listed: &str) -> Vec<Skill> {
    #[derive(serde::Deserialize)]
    struct Listed {
        name: String,
        description: Option<String>,
        location: String,
        content: String,
    }
    serde_json::from_str::<Vec<Listed>>(listed)
        .unwrap_or_default()
        .into_iter()
        .map(|skill| Skill {
            name: skill.name,
            description: skill.description,
            location: PathBuf::from(skill.location),
            content: skill.content,
            laptop: true,
        })
        .collect()
}

/// `laptop` skills, then `host` ones (a host skill of the same name wins), sorted by name.
pub fn merge(laptop: Vec<Skill>, host: Vec<Skill>) -> Vec<Skill> {
    let mut all = BTreeMap::new();
    for skill in laptop.into_iter().chain(host) {
        all.insert(skill.name.clone(), skill);
    }
    all.into_values().collect()
}

/// The skills for a workspace at `directory` in the work tree rooted at `worktree`, sorted by
/// name.
pub fn discover(directory: &Path, worktree: &Path, home: &Path) -> Vec<Skill> {
    let mut found = BTreeMap::new();
    let mut scan = |root: &Path, folders: &[&str]| {
        for folder in folders {
            for file in skill_files(&root.join(folder)) {
                if let Some(skill) = load(&file) {
                    found.insert(skill.name.clone(), skill);
                }
            }
        }
    };
    // Upward from the workspace directory, stopping at the work tree's root.
    let ups: Vec<&Path> = {
        let mut ups = Vec::new();
        for dir in directory.ancestors() {
            ups.push(dir);
            if dir == worktree {
                break;
            }
        }
        ups
    };
    for external in [".claude", ".agents"] {
        scan(&home.join(external), &["skills"]);
    }
    for dir in &ups {
        for external in [".claude", ".agents"] {
            scan(&dir.join(external), &["skills"]);
        }
    }
    scan(&home.join(".config/opencode"), &["skill", "skills"]);
    for dir in ups.iter().rev() {
        scan(&dir.join(".opencode"), &["skill", "skills"]);
    }
    found.into_values().collect()
}

/// Every `SKILL.md` below `root` (hidden folders included, links followed), in path order.
fn skill_files(root: &Path) -> Vec<PathBuf> {
    if !root.is_dir() {
        return Vec::new();
    }
    let mut files: Vec<PathBuf> = ignore::WalkBuilder::new(root)
        .standard_filters(false)
        .follow_links(true)
        .max_depth(Some(MAX_DEPTH))
        .build()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry.file_name() == "SKILL.md" && entry.file_type().is_some_and(|t| t.is_file())
        })
        .map(ignore::DirEntry::into_path)
        .take(MAX_PER_ROOT)
        .collect();
    files.sort();
    files
}

/// A `SKILL.md`, when it has front matter with a name.
fn load(path: &Path) -> Option<Skill> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > MAX_SIZE {
        tracing::warn!(path = %path.display(), "skill file too large; skipped");
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let (fields, content) = front_matter(&text)?;
    let name = fields.get("name")?.clone();
    if name.is_empty() {
        return None;
    }
    Some(Skill {
        name,
        description: fields.get("description").cloned(),
        location: path.to_path_buf(),
        content: content.to_owned(),
        laptop: false,
    })
}

/// The top-level scalar fields of a YAML front matter block (`---` … `---`) and the text after
/// it. Plain, quoted and block (`|`, `>`) scalars are understood; nested values are skipped.
fn front_matter(text: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))?;
    let mut end = None;
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            end = Some((offset, offset + line.len()));
            break;
        }
        offset += line.len();
    }
    let (head_end, body_start) = end?;
    let head = &rest[..head_end];
    let body = &rest[body_start..];

    let mut fields = BTreeMap::new();
    let lines: Vec<&str> = head.lines().collect();
    let mut at = 0;
    while at < lines.len() {
        let line = lines[at];
        at += 1;
        if line.starts_with([' ', '\t', '#']) || line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim().to_owned();
        let value = value.trim();
        let value = if let Some(style) = value.strip_prefix(['|', '>']) {
            let folded = value.starts_with('>');
            let keep_newline = !style.starts_with('-');
            let mut block = Vec::new();
            while at < lines.len() && (lines[at].starts_with([' ', '\t']) || lines[at].is_empty()) {
                block.push(lines[at].trim());
                at += 1;
            }
            while block.last().is_some_and(|l| l.is_empty()) {
                block.pop();
            }
            let mut joined = if folded {
                block.join(" ")
            } else {
                block.join("\n")
            };
            if keep_newline && !joined.is_empty() {
                joined.push('\n');
            }
            joined
        } else if value.is_empty() {
            // A nested map or list: skip its lines.
            while at < lines.len() && lines[at].starts_with([' ', '\t', '-']) {
                at += 1;
            }
            continue;
        } else {
            unquote(value)
        };
        fields.insert(key, value);
    }
    Some((fields, body))
}

fn unquote(value: &str) -> String {
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        let inner = &value[1..value.len() - 1];
        return serde_json::from_str::<String>(value).unwrap_or_else(|_| inner.to_owned());
    }
    if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
        return value[1..value.len() - 1].replace("''", "'");
    }
    // A plain scalar ends before a comment.
    match value.find(" #") {
        Some(at) => value[..at].trim_end().to_owned(),
        None => value.to_owned(),
    }
}

/// The skills block of the system prompt (only skills with a description), or `None` when
/// there is nothing to list.
pub fn guidance(skills: &[Skill]) -> Option<String> {
    let listed: Vec<&Skill> = skills.iter().filter(|s| s.description.is_some()).collect();
    if listed.is_empty() {
        return None;
    }
    let mut text = String::from(
        "Skills are packaged instructions for particular kinds of work. When the task in \
         hand fits one of the skills below, load it with the skill tool before you start.\n\
         <available_skills>\n",
    );
    for skill in listed {
        text.push_str(&format!(
            "  <skill>\n    <name>{}</name>\n    <description>{}</description>\n    <location>{}</location>\n  </skill>\n",
            skill.name,
            skill.description.as_deref().unwrap_or_default(),
            escape(&skill.location.display().to_string()),
        ));
    }
    text.push_str("</available_skills>");
    Some(text)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Up to `limit` files of a skill's folder besides its `SKILL.md` (hidden ones included, links
/// not followed), sorted.
pub fn files(dir: &Path, limit: usize) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .max_depth(Some(MAX_DEPTH))
        .build()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry.file_type().is_some_and(|t| t.is_file())
                && entry.file_name() != "SKILL.md"
                && !entry.path().components().any(|c| c.as_os_str() == ".git")
        })
        .map(ignore::DirEntry::into_path)
        .take(limit)
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn front_matter_should_read_plain_quoted_and_block_scalars() {
        let text = "---\nname: deploy\ndescription: >-\n  Ships the app\n  to staging\nversion: \"1.2\" \nmeta:\n  a: b\nlicense: 'it''s MIT' \n---\n# Deploy\nsteps\n";
        let (fields, body) = front_matter(text).unwrap();
        assert_eq!(fields["name"], "deploy");
        assert_eq!(fields["description"], "Ships the app to staging");
        assert_eq!(fields["version"], "1.2");
        assert_eq!(fields["license"], "it's MIT");
        assert!(!fields.contains_key("meta") && !fields.contains_key("a"));
        assert_eq!(body, "# Deploy\nsteps\n");
        assert!(front_matter("no front matter\n").is_none());
        assert!(front_matter("---\nname: x\n").is_none());
    }

    #[test]
    fn discover_should_find_project_and_home_skills_and_let_the_nearest_config_win() {
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("home");
        let repo = root.path().join("repo");
        let sub = repo.join("app");
        std::fs::create_dir_all(&sub).unwrap();
        write(
            &home.join(".claude/skills/lint/SKILL.md"),
            "---\nname: lint\ndescription: home lint\n---\nhome\n",
        );
        write(
            &repo.join(".opencode/skills/lint/SKILL.md"),
            "---\nname: lint\ndescription: repo lint\n---\nrepo\n",
        );
        write(
            &sub.join(".agents/skills/a/b/SKILL.md"),
            "---\nname: deep\n---\nno description\n",
        );
        write(
            &sub.join(".opencode/skill/broken/SKILL.md"),
            "no front matter",
        );
        // Above the work tree: not looked at.
        write(
            &root.path().join(".opencode/skills/outside/SKILL.md"),
            "---\nname: outside\ndescription: x\n---\n",
        );
        let skills = discover(&sub, &repo, &home);
        let names: Vec<&str> = skills.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["deep", "lint"]);
        assert_eq!(skills[1].description.as_deref(), Some("repo lint"));
        assert_eq!(skills[1].content, "repo\n");
        let text = guidance(&skills).unwrap();
        assert!(text.contains("<name>lint</name>\n    <description>repo lint</description>"));
        assert!(!text.contains("deep"), "{text}");
        assert!(guidance(&skills[..1]).is_none());

        let laptop = from_laptop(
            r#"[{"name":"lint","description":"laptop lint","location":"/u/.claude/skills/lint/SKILL.md","content":"l"},
                {"name":"mine","description":"mine","location":"<built-in>","content":"m"}]"#,
        );
        let merged = merge(laptop, skills);
        let names: Vec<(&str, bool)> = merged.iter().map(|s| (s.name.as_str(), s.laptop)).collect();
        assert_eq!(names, [("deep", false), ("lint", false), ("mine", true)]);
        assert!(from_laptop("not json").is_empty());
    }
}
