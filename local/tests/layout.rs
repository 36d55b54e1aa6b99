//! The shape of `local/src`, checked: imports between the top-level modules only point down
//! (`cli → {bridge, install, ssh, config}`, `bridge → {install, ssh}`, `install → ssh`, and
//! `fsutil` below all of them), no two files import each other (directly or in a longer
//! circle), and no file is much over 600 lines before its `#[cfg(test)] mod tests`.
//!
//! References are found in the text (`crate::…`, `super::…`, `use name::…` of a child module,
//! `local::…` in `main.rs`), outside comments. A parent module and its own children may refer
//! to each other (re-exports and shared errors); everything else is a plain arrow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_PRODUCT_LINES: usize = 600;

/// The allowed arrows between top-level modules (besides a module's own files).
const ALLOWED: &[(&str, &[&str])] = &[
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
            "crate" | "local" => (Vec::new(), &parts[1..]),
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

#[test]
fn modules_should_only_import_downwards_and_files_should_stay_small() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    files(&src, &mut paths);
    let modules: BTreeSet<Vec<String>> = paths.iter().map(|p| module_of(&src, p)).collect();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut problems = Vec::new();
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for path in &paths {
        let module = module_of(&src, path);
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
                "{}: top-level module not in ALLOWED",
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
    // No circles among the remaining arrows.
    let mut state: BTreeMap<Vec<String>, u8> = BTreeMap::new();
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
    for node in graph.keys() {
        visit(node, &graph, &mut state, &mut Vec::new(), &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
