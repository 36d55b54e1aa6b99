//! The agent's permission rules, as the user's OpenCode defines them: each agent of
//! `GET /agent` on the laptop carries a ruleset (`{permission, pattern, action}` in order, the
//! defaults merged with the user's `permission` config and the agent's own). The last rule
//! whose permission and pattern match decides (`allow`, `deny` or `ask`); no match asks.
//! A tool whose permission ends in a `*` → `deny` rule is not offered at all (so `plan` keeps
//! only the edits its rules allow).
//!
//! When the laptop cannot be asked, the built-in defaults of OpenCode's `build` and `plan`
//! agents apply.

use serde::{Deserialize, Serialize};

/// What a rule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Go on.
    Allow,
    /// Refuse; the model reads why.
    Deny,
    /// Ask the user.
    Ask,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Permission name or wildcard (`edit`, `bash`, `*`).
    pub permission: String,
    /// Pattern the call's subject must match (a path, a command, a glob).
    pub pattern: String,
    /// The decision.
    pub action: Action,
}

/// An agent's rules, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules(pub Vec<Rule>);

fn rule(permission: &str, pattern: &str, action: Action) -> Rule {
    Rule {
        permission: permission.to_owned(),
        pattern: pattern.to_owned(),
        action,
    }
}

/// The tools whose permission is `edit`.
const EDITS: [&str; 4] = ["edit", "write", "apply_patch", "multiedit"];

/// The permission a tool is checked under.
pub fn permission_of(tool: &str) -> &str {
    if EDITS.contains(&tool) { "edit" } else { tool }
}

impl Rules {
    /// OpenCode's defaults for `agent` (`plan` forbids edits outside `.opencode/plans/`).
    pub fn defaults(agent: &str) -> Rules {
        use Action::{Allow, Ask, Deny};
        let mut rules = vec![
            rule("*", "*", Allow),
            rule("doom_loop", "*", Ask),
            rule("external_directory", "*", Ask),
            rule("question", "*", Deny),
            rule("plan_enter", "*", Deny),
            rule("plan_exit", "*", Deny),
            rule("read", "*", Allow),
            rule("read", "*.env", Ask),
            rule("read", "*.env.*", Ask),
            rule("read", "*.env.example", Allow),
        ];
        match agent {
            "plan" => rules.extend([
                rule("question", "*", Allow),
                rule("plan_exit", "*", Allow),
                rule("edit", "*", Deny),
                rule("edit", ".opencode/plans/*.md", Allow),
            ]),
            _ => rules.extend([rule("question", "*", Allow), rule("plan_enter", "*", Allow)]),
        }
        Rules(rules)
    }

    /// The rules of `agent` in the laptop's `GET /agent` answer (JSON text), if listed.
    pub fn from_agents(agents: &str, agent: &str) -> Option<Rules> {
        #[derive(Deserialize)]
        struct Listed {
            name: String,
            #[serde(default)]
            permission: Vec<Rule>,
        }
        let listed: Vec<Listed> = serde_json::from_str(agents).ok()?;
        listed
            .into_iter()
            .find(|a| a.name == agent)
            .map(|a| Rules(a.permission))
    }

    /// The decision for `pattern` under `permission`, and the rule that made it.
    pub fn evaluate(&self, permission: &str, pattern: &str) -> (Action, Option<&Rule>) {
        self.0
            .iter()
            .rev()
            .find(|r| wildcard(&r.permission, permission) && wildcard(&r.pattern, pattern))
            .map_or((Action::Ask, None), |r| (r.action, Some(r)))
    }

    /// Whether `tool` is switched off entirely.
    pub fn disabled(&self, tool: &str) -> bool {
        let permission = permission_of(tool);
        self.0
            .iter()
            .rev()
            .find(|r| wildcard(&r.permission, permission))
            .is_some_and(|r| r.pattern == "*" && r.action == Action::Deny)
    }

    /// The rules that concern `permission` (for the model's explanation of a refusal).
    pub fn relevant(&self, permission: &str) -> Vec<&Rule> {
        self.0
            .iter()
            .filter(|r| wildcard(&r.permission, permission))
            .collect()
    }
}

/// OpenCode's wildcard match: `*` is any run of characters (slashes included), `?` one
/// character, the whole text must match, and a trailing ` *` also matches nothing (so
/// `git *` covers `git` alone). Backslashes count as slashes.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let pattern = pattern.replace('\\', "/");
    let text = text.replace('\\', "/");
    if let Some(head) = pattern.strip_suffix(" *")
        && glob(head.as_bytes(), text.as_bytes())
    {
        return true;
    }
    glob(pattern.as_bytes(), text.as_bytes())
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative matching with one backtrack point per `*` (linear in practice).
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    let chars: Vec<char> = String::from_utf8_lossy(text).chars().collect();
    let pat: Vec<char> = String::from_utf8_lossy(pattern).chars().collect();
    while t < chars.len() {
        if p < pat.len() && (pat[p] == '?' || (pat[p] != '*' && pat[p] == chars[t])) {
            p += 1;
            t += 1;
        } else if p < pat.len() && pat[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while p < pat.len() && pat[p] == '*' {
        p += 1;
    }
    p == pat.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_should_match_as_opencode_matches_them() {
        assert!(wildcard("*", "src/a/b.rs"));
        assert!(wildcard("*.env", ".env"));
        assert!(wildcard("*.env", "config/prod.env"));
        assert!(!wildcard("*.env", ".env.local"));
        assert!(wildcard("*.env.*", ".env.local"));
        assert!(wildcard("git *", "git"));
        assert!(wildcard("git *", "git status"));
        assert!(!wildcard("git *", "gitk"));
        assert!(wildcard("fil?.txt", "file.txt"));
        assert!(wildcard(".opencode/plans/*.md", ".opencode/plans/x.md"));
    }

    #[test]
    fn the_last_matching_rule_should_decide() {
        let build = Rules::defaults("build");
        assert_eq!(build.evaluate("read", "src/main.rs").0, Action::Allow);
        assert_eq!(build.evaluate("read", ".env").0, Action::Ask);
        assert_eq!(build.evaluate("read", ".env.example").0, Action::Allow);
        assert_eq!(build.evaluate("edit", "src/main.rs").0, Action::Allow);
        assert!(!build.disabled("edit"));
        let plan = Rules::defaults("plan");
        assert_eq!(plan.evaluate("edit", "src/main.rs").0, Action::Deny);
        assert_eq!(
            plan.evaluate("edit", ".opencode/plans/a.md").0,
            Action::Allow
        );
        assert!(!plan.disabled("write"), "plan keeps edits its rules allow");
        let denied = Rules(vec![
            rule("*", "*", Action::Allow),
            rule("bash", "*", Action::Deny),
        ]);
        assert!(denied.disabled("bash"));
        assert!(!denied.disabled("read"));
        assert_eq!(Rules::default().evaluate("bash", "ls").0, Action::Ask);
    }

    #[test]
    fn rules_should_come_from_the_laptops_agent_list() {
        let agents = r#"[{"name":"build","mode":"primary","options":{},"permission":[
            {"permission":"*","pattern":"*","action":"allow"},
            {"permission":"bash","pattern":"rm *","action":"deny"}]},
            {"name":"plan","mode":"primary","options":{},"permission":[]}]"#;
        let build = Rules::from_agents(agents, "build").unwrap();
        assert_eq!(build.evaluate("bash", "rm -rf x").0, Action::Deny);
        assert_eq!(build.evaluate("bash", "ls").0, Action::Allow);
        assert!(Rules::from_agents(agents, "nope").is_none());
        assert!(Rules::from_agents("not json", "build").is_none());
    }
}
