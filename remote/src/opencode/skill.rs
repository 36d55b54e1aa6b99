//! A skill as `GET /skill` lists it (`Skill.Info`).

use serde::Serialize;

/// One skill of the workspace.
#[derive(Debug, Clone, Serialize)]
pub struct SkillInfo {
    /// Its name.
    pub name: String,
    /// When to use it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its `SKILL.md`.
    pub location: String,
    /// Its instructions.
    pub content: String,
}
