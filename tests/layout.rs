//! The shape of the code (issue: "make the architecture visible"): in both crates, arrows
//! between modules point one way (no module imports one that imports it back, directly or
//! around a circle, whether files or top-level rooms), and no product file is much over 600
//! lines, not counting its in-file tests.
//!
//! Imports are read from the source text (`crate::…` and `super::…` paths outside comments and
//! tests), resolved to the deepest module that exists. A module and its own submodules are one
//! unit: a child using its parent's items, or a parent its child's, is not an arrow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Product lines a file may have (the guideline is ~600).
const MAX_PRODUCT_LINES: usize = 650;

struct Module {
    file: PathBuf,
    product: String,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// Every module of the crate whose sources are in `src`, by path (`""` for the root).
fn modules(src: &Path) -> BTreeMap<String, Module> {
    let mut found = BTreeMap::new();
    let mut stack = vec![src.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("::");
            if name == "lib" || name == "main" {
                name = String::new();
            }
            if name.starts_with("bin::") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let product = match text.find("\n#[cfg(test)]") {
                Some(at) => text[..at].to_owned(),
                None => text,
            };
            found.insert(name, Module { file: path, product });
        }
    }
    found
}

fn parent(module: &str) -> String {
    module.rsplit_once("::").map_or(String::new(), |(p, _)| p.to_owned())
}

/// The deepest existing module `path` (segments after `crate::`) names.
fn resolve(path: &[&str], modules: &BTreeMap<String, Module>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|candidate| modules.contains_key(candidate))
}

/// The modules `module` refers to.
fn references(module: &str, text: &str, modules: &BTreeMap<String, Module>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::").or_else(|| rest.find("super::")) {
            let is_crate = rest[at..].starts_with("crate::");
            let after = &rest[at + 7..];
            let base: Vec<String> = if is_crate {
                Vec::new()
            } else {
                // `super::super::…` climbs once per `super`.
                let mut base = parent(module);
                let mut tail = after;
                while let Some(next) = tail.strip_prefix("super::") {
                    base = parent(&base);
                    tail = next;
                }
                base.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect()
            };
            let mut tail = after;
            while let Some(next) = tail.strip_prefix("super::") {
                tail = next;
            }
            let groups: Vec<String> = if let Some(group) = tail.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                group[..end].split(',').map(|s| s.trim().to_owned()).collect()
            } else {
                let end = tail
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(tail.len());
                vec![tail[..end].to_owned()]
            };
            for group in groups {
                let mut segments: Vec<&str> = base.iter().map(String::as_str).collect();
                segments.extend(group.split("::").filter(|s| {
                    !s.is_empty() && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                }));
                if let Some(target) = resolve(&segments, modules) {
                    out.insert(target);
                }
            }
            rest = &rest[at + 7..];
        }
    }
    out.remove(module);
    out
}

fn related(a: &str, b: &str) -> bool {
    let within = |outer: &str, inner: &str| {
        outer.is_empty() || inner == outer || inner.starts_with(&format!("{outer}::"))
    };
    within(a, b) || within(b, a)
}

fn room(module: &str) -> &str {
    module.split("::").next().unwrap_or("")
}

/// Strongly connected components with more than one member (circles), by Tarjan.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(state: &mut State<'g>, node: &'g str) {
        state.index.insert(node, state.next);
        state.low.insert(node, state.next);
        state.next += 1;
        state.stack.push(node);
        state.on_stack.insert(node);
        let graph = state.graph;
        for target in graph.get(node).into_iter().flatten() {
            let target = target.as_str();
            if !state.index.contains_key(target) {
                visit(state, target);
                let low = state.low[target].min(state.low[node]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(target) {
                let low = state.index[target].min(state.low[node]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack.remove(member);
                component.push(member.to_owned());
                if member == node {
                    break;
                }
            }
            if component.len() > 1 {
                state.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.found
}

/// The problems of one crate, described.
fn check(src: &Path) -> Vec<String> {
    let modules = modules(src);
    let mut files: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut rooms: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, module) in &modules {
        let targets = references(name, &module.product, &modules);
        for target in targets {
            if related(name, &target) {
                continue;
            }
            files.entry(name.clone()).or_default().insert(target.clone());
            if !name.is_empty() && room(name) != room(&target) && !room(&target).is_empty() {
                rooms
                    .entry(room(name).to_owned())
                    .or_default()
                    .insert(room(&target).to_owned());
            }
        }
    }
    let mut problems = Vec::new();
    for circle in circles(&files) {
        problems.push(format!("modules import each other in a circle: {circle:?}"));
    }
    for circle in circles(&rooms) {
        problems.push(format!("rooms import each other in a circle: {circle:?}"));
    }
    for module in modules.values() {
        let lines = module.product.lines().count();
        if lines > MAX_PRODUCT_LINES {
            problems.push(format!(
                "{} has {lines} product lines (at most {MAX_PRODUCT_LINES})",
                module.file.display()
            ));
        }
    }
    problems
}

#[test]
fn arrows_should_point_one_way_and_files_stay_small_in_the_stub() {
    let problems = check(&repo().join("remote/src"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_should_see_a_circle_and_a_big_file() {
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
            "// filler\n".repeat(MAX_PRODUCT_LINES + 1)
        ),
    )
    .unwrap();
    let problems = check(src);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("modules import each other") && p.contains("\"a::inner\"")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("rooms import each other")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("b.rs has")),
        "{problems:?}"
    );
}
