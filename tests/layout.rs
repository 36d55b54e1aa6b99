//! The shape of the code, checked in both crates: imports between top-level modules only point
//! the allowed ways (the tables below, the ones `lib.rs` of each crate describes), no two files
//! import each other (directly or around a longer circle), and no file is much over 600 lines
//! before its `#[cfg(test)] mod tests`.
//!
//! References are found in the text (`crate::…`, `super::…`, `use name::…` of a child module,
//! the crate's own name in `main.rs`), outside comments. A parent module and its own children
//! may refer to each other (re-exports and shared errors); everything else is a plain arrow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_PRODUCT_LINES: usize = 600;

/// Allowed arrows between the top-level modules of `opencode-remote` (local/).
const LOCAL: &[(&str, &[&str])] = &[
    ("main", &["cli"]),
    (
        "lib",
        &["bridge", "cli", "config", "fsutil", "install", "ssh"],
    ),
    ("cli", &["bridge", "install", "ssh", "config", "fsutil"]),
    ("bridge", &["install", "ssh", "fsutil"]),
    ("install", &["ssh", "fsutil"]),
    ("ssh", &["fsutil"]),
    ("config", &["fsutil"]),
    ("fsutil", &[]),
];

/// Allowed arrows between the top-level modules of the stub (remote/).
const REMOTE: &[(&str, &[&str])] = &[
    (
        "main",
        &["server", "app", "handshake", "stdio", "logging", "tools"],
    ),
    (
        "lib",
        &[
            "agent",
            "api",
            "app",
            "error",
            "gateway",
            "handshake",
            "http",
            "logging",
            "opencode",
            "policy",
            "server",
            "session",
            "stdio",
            "terminal",
            "tools",
        ],
    ),
    ("server", &["api", "http", "app", "error"]),
    (
        "api",
        &[
            "http", "app", "agent", "gateway", "session", "policy", "terminal", "tools",
            "opencode", "error",
        ],
    ),
    ("http", &["app", "error"]),
    (
        "app",
        &[
            "agent",
            "gateway",
            "session",
            "policy",
            "terminal",
            "tools",
            "handshake",
            "error",
        ],
    ),
    (
        "agent",
        &["gateway", "session", "policy", "tools", "opencode", "error"],
    ),
    ("gateway", &[]),
    ("policy", &["session", "opencode", "error"]),
    ("session", &["opencode", "error"]),
    ("terminal", &["session", "tools", "opencode"]),
    ("tools", &[]),
    ("opencode", &[]),
    ("handshake", &[]),
    ("stdio", &[]),
    ("logging", &[]),
    ("error", &[]),
];

/// A source file as a module path: `ssh/connect.rs` → `["ssh", "connect"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    parts.push(last.trim_end_matches(".rs").to_owned());
    parts
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its trailing test module.
fn product_code(text: &str) -> (String, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let mut end = lines.len();
    for (index, line) in lines.iter().enumerate() {
        let opens_tests = lines
            .iter()
            .skip(index + 1)
            .take(8)
            .any(|l| l.contains("mod tests"));
        if *line == "#[cfg(test)]" && opens_tests {
            end = index;
        }
    }
    let code = lines[..end]
        .iter()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") { "" } else { line }
        })
        .collect::<Vec<_>>()
        .join("\n");
    (code, end)
}

/// Module paths a file refers to, resolved to the modules that exist.
fn references(
    module: &[String],
    code: &str,
    modules: &BTreeSet<Vec<String>>,
) -> BTreeSet<Vec<String>> {
    let mut found = BTreeSet::new();
    let is_root = |m: &[String]| m.len() == 1 && (m[0] == "lib" || m[0] == "main");
    let here: Vec<String> = if is_root(module) {
        Vec::new()
    } else {
        module.to_vec()
    };
    let mut candidates: Vec<Vec<String>> = Vec::new();
    let words: Vec<&str> = code
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.contains("::"))
        .collect();
    for word in words {
        let parts: Vec<&str> = word.split("::").filter(|p| !p.is_empty()).collect();
        let Some(first) = parts.first() else { continue };
        let (mut base, rest): (Vec<String>, &[&str]) = match *first {
            "crate" | "local" | "remote" => (Vec::new(), &parts[1..]),
            "super" => {
                let mut base = here.clone();
                let mut rest = &parts[..];
                while rest.first() == Some(&"super") {
                    base.pop();
                    rest = &rest[1..];
                }
                (base, rest)
            }
            // `use child::Item` inside a parent module.
            name => {
                let mut child = here.clone();
                child.push(name.to_owned());
                if !modules.contains(&child) {
                    continue;
                }
                (here.clone(), &parts[..])
            }
        };
        for part in rest {
            base.push((*part).to_owned());
            candidates.push(base.clone());
        }
    }
    for candidate in candidates {
        if modules.contains(&candidate) && candidate != module {
            found.insert(candidate);
        }
    }
    // Keep only the deepest module of each path (`ssh::ssh_config` implies `ssh`).
    let deepest: BTreeSet<Vec<String>> = found
        .iter()
        .filter(|m| !found.iter().any(|o| o.len() > m.len() && o.starts_with(m)))
        .cloned()
        .collect();
    deepest
}

fn top(module: &[String]) -> &str {
    &module[0]
}

/// The problems of the crate whose sources are in `src`, given its allowed arrows.
fn check(src: &Path, allowed: &[(&str, &[&str])]) -> Vec<String> {
    let mut paths = Vec::new();
    files(src, &mut paths);
    let modules: BTreeSet<Vec<String>> = paths.iter().map(|p| module_of(src, p)).collect();
    let allowed: BTreeMap<&str, &[&str]> = allowed.iter().copied().collect();
    let mut problems = Vec::new();
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for path in &paths {
        let module = module_of(src, path);
        let text = std::fs::read_to_string(path).expect("readable source");
        let (code, product_lines) = product_code(&text);
        if product_lines > MAX_PRODUCT_LINES {
            problems.push(format!(
                "{} has {product_lines} lines before its tests (at most {MAX_PRODUCT_LINES})",
                path.display()
            ));
        }
        let Some(may) = allowed.get(top(&module)) else {
            problems.push(format!(
                "{}: top-level module not in the allowed table",
                path.display()
            ));
            continue;
        };
        for target in references(&module, &code, &modules) {
            if top(&target) != top(&module) && !may.contains(&top(&target)) {
                problems.push(format!(
                    "{} imports {} ({} must not depend on {})",
                    path.display(),
                    target.join("::"),
                    top(&module),
                    top(&target)
                ));
            }
            // A parent and its own children may refer to each other.
            let related = target.starts_with(&module) || module.starts_with(&target);
            if !related {
                graph.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    problems.extend(circles(&graph));
    problems
}

/// Every circle among the arrows, described.
fn circles(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<String> {
    fn visit(
        node: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
        problems: &mut Vec<String>,
    ) {
        match state.get(node) {
            Some(2) => return,
            Some(1) => {
                let start = stack.iter().position(|n| n == node).unwrap_or(0);
                let circle: Vec<String> = stack[start..]
                    .iter()
                    .chain(std::iter::once(node))
                    .map(|m| m.join("::"))
                    .collect();
                problems.push(format!("import circle: {}", circle.join(" → ")));
                return;
            }
            _ => {}
        }
        state.insert(node.clone(), 1);
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, state, stack, problems);
        }
        stack.pop();
        state.insert(node.clone(), 2);
    }
    let mut state = BTreeMap::new();
    let mut problems = Vec::new();
    for node in graph.keys() {
        visit(node, graph, &mut state, &mut Vec::new(), &mut problems);
    }
    problems
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

#[test]
fn local_modules_should_only_import_downwards_and_files_should_stay_small() {
    let problems = check(&repo().join("local/src"), LOCAL);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn stub_modules_should_only_import_downwards_and_files_should_stay_small() {
    let problems = check(&repo().join("remote/src"), REMOTE);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_should_see_a_forbidden_arrow_a_circle_and_a_big_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\n").unwrap();
    std::fs::write(src.join("a.rs"), "pub mod inner;\nuse crate::b::thing;\n").unwrap();
    std::fs::write(src.join("a/inner.rs"), "use super::*;\nuse crate::b::y;\n").unwrap();
    std::fs::write(
        src.join("b.rs"),
        format!(
            "use crate::a::inner::x;\n{}\n#[cfg(test)]\nmod tests {{}}\n",
            "fn filler() {}\n".repeat(MAX_PRODUCT_LINES + 1)
        ),
    )
    .unwrap();
    let allowed: &[(&str, &[&str])] = &[("lib", &["a", "b"]), ("a", &["b"]), ("b", &[])];
    let problems = check(src, allowed);
    let said = |needle: &str| problems.iter().any(|p| p.contains(needle));
    assert!(said("b must not depend on a"), "{problems:?}");
    assert!(said("import circle") && said("a::inner"), "{problems:?}");
    assert!(said("b.rs has"), "{problems:?}");
}
