//! `skill`: hands one of the host's skills ([`crate::agent::skills`]) to the model, with the
//! folder it lives in and a sample of the files beside it, as OpenCode's tool does.

use std::path::PathBuf;

use serde_json::json;

use super::super::skills::{self, Skill};
use super::{Ctx, Done, object, text_arg};

/// Files of the skill's folder listed to the model.
const FILES: usize = 10;

impl super::super::Agent {
    /// The skills of this workspace, found afresh (a skill added between prompts is seen).
    pub async fn skills(&self) -> Vec<Skill> {
        let host = self.host_skills().await;
        let laptop = self
            .setup()
            .await
            .map(|setup| skills::from_laptop(&setup.skills))
            .unwrap_or_default();
        skills::merge(laptop, host)
    }

    /// The skills found on the host only.
    pub async fn host_skills(&self) -> Vec<Skill> {
        let worktree = self.worktree().await.unwrap_or_else(|| PathBuf::from("/"));
        let (directory, home) = (self.directory.clone(), self.home.clone());
        tokio::task::spawn_blocking(move || skills::discover(&directory, &worktree, &home))
            .await
            .unwrap_or_default()
    }
}

/// `skill`
pub async fn load(ctx: &Ctx) -> Done {
    let name = match text_arg(&ctx.input, "name") {
        Ok(name) => name.to_owned(),
        Err(done) => return done,
    };
    let all = ctx.agent.skills().await;
    let Some(skill) = all.iter().find(|s| s.name == name).cloned() else {
        let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        let available = if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        };
        return Done::error(format!(
            "Skill \"{name}\" not found. Available skills: {available}"
        ));
    };
    if skill.laptop {
        return from_laptop(&skill);
    }
    let dir = skill
        .location
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let listed = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || skills::files(&dir, FILES))
            .await
            .unwrap_or_default()
    };
    let files: Vec<String> = listed
        .iter()
        .map(|file| format!("<file>{}</file>", file.display()))
        .collect();
    let output = [
        format!("<skill_content name=\"{}\">", skill.name),
        format!("# Skill: {}", skill.name),
        String::new(),
        skill.content.trim().to_owned(),
        String::new(),
        format!("Base directory for this skill: {}", dir.display()),
        "Relative paths in this skill (e.g., scripts/, reference/) are relative to this base directory.".to_owned(),
        "Note: file list is sampled.".to_owned(),
        String::new(),
        "<skill_files>".to_owned(),
        files.join("\n"),
        "</skill_files>".to_owned(),
        "</skill_content>".to_owned(),
    ]
    .join("\n");
    Done::Completed {
        output,
        title: format!("Loaded skill: {}", skill.name),
        metadata: object(
            json!({ "name": skill.name, "dir": dir.display().to_string(), "truncated": false }),
        ),
    }
}

/// A skill from the user's laptop: its instructions travel, its folder stays there.
fn from_laptop(skill: &Skill) -> Done {
    let output = [
        format!("<skill_content name=\"{}\">", skill.name),
        format!("# Skill: {}", skill.name),
        String::new(),
        skill.content.trim().to_owned(),
        String::new(),
        "This skill comes from the user's own machine: files it refers to by relative path are \
         not on this host."
            .to_owned(),
        "</skill_content>".to_owned(),
    ]
    .join("\n");
    Done::Completed {
        output,
        title: format!("Loaded skill: {}", skill.name),
        metadata: object(json!({
            "name": skill.name,
            "dir": skill.location.parent().map(|d| d.display().to_string()).unwrap_or_default(),
            "truncated": false,
        })),
    }
}
