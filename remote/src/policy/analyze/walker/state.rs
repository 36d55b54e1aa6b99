//! What a shell knows while it runs a command list: possible working directories and
//! variable values.

use super::super::*;

/// What a shell knows while running a command list.
#[derive(Clone)]
pub(in crate::policy::analyze) struct State {
    /// Every directory the shell may be in (a `cd` can fail or be skipped, so earlier ones stay).
    pub(in crate::policy::analyze) cwds: Vec<PathBuf>,
    /// Every value a variable may have; `None` is a value not known here (the environment).
    /// Shared between the copies subshells save (cloned on write).
    pub(in crate::policy::analyze) vars: std::rc::Rc<HashMap<String, Vec<Option<String>>>>,
    /// Directories `cd -` may go back to.
    pub(in crate::policy::analyze) previous: Vec<PathBuf>,
}

impl State {
    pub(in crate::policy::analyze) fn new(cwd: PathBuf, home: &Path) -> State {
        let mut vars = HashMap::new();
        vars.insert("HOME".to_owned(), vec![home.to_str().map(str::to_owned)]);
        State {
            cwds: vec![cwd],
            vars: std::rc::Rc::new(vars),
            previous: Vec::new(),
        }
    }

    pub(in crate::policy::analyze) fn values(&self, name: &str) -> Vec<Option<String>> {
        let mut values = self.vars.get(name).cloned().unwrap_or_default();
        match name {
            "PWD" => values.extend(self.cwds.iter().map(|cwd| cwd.to_str().map(str::to_owned))),
            "OLDPWD" => {
                values.extend(
                    self.previous
                        .iter()
                        .map(|cwd| cwd.to_str().map(str::to_owned)),
                );
                if self.previous.is_empty() {
                    values.push(None);
                }
            }
            _ if !self.vars.contains_key(name) => values.push(None),
            _ => {}
        }
        dedup(values)
    }

    pub(in crate::policy::analyze) fn merge(&mut self, other: State) {
        for cwd in other.cwds {
            if !contains(&self.cwds, &cwd) && self.cwds.len() < MAX_CWDS {
                self.cwds.push(cwd);
            }
        }
        let vars = std::rc::Rc::make_mut(&mut self.vars);
        for (name, values) in other.vars.iter() {
            let mine = vars.entry(name.clone()).or_insert_with(|| vec![None]);
            mine.extend(values.iter().cloned());
            *mine = dedup(std::mem::take(mine));
        }
        for cwd in other.previous {
            if !contains(&self.previous, &cwd) {
                self.previous.push(cwd);
            }
        }
    }

    /// A new shell (`sh -c`) sees exported variables only; any of ours may not be exported.
    pub(in crate::policy::analyze) fn for_child_shell(&self) -> State {
        let mut child = self.clone();
        for (name, values) in std::rc::Rc::make_mut(&mut child.vars).iter_mut() {
            if name != "HOME" {
                values.push(Some(String::new()));
            }
        }
        child.previous.clear();
        child
    }
}

pub(in crate::policy::analyze) fn dedup<T: PartialEq>(values: Vec<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(values.len());
    for value in values {
        if !out.contains(&value) {
            out.push(value);
        }
    }
    out
}
