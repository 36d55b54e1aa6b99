//! The session title after the first prompt (AGENT.md §4): one extra model call with the
//! user's small model (or the prompt's model when none is set), no tools, a title-writer
//! system prompt and the prompt's text; the answer becomes the title through
//! `session.updated`. A failed call leaves the default title, as OpenCode does.

use protocol::gateway::{
    Content, Message, ModelEvent, ModelOptions, ModelRequest, Reply, Request, Role,
};

use crate::opencode::message::ModelRef;
use crate::session::record::Recorder;

use super::Agent;

/// Titles a session keeps until the first prompt names it.
const DEFAULT_PREFIXES: [&str; 2] = ["New session - ", "Child session - "];

/// The title writer's instructions (our own words).
const TITLE_PROMPT: &str = "You write the title of a conversation between a user and a coding \
assistant. Answer with the title only: one line, at most 50 characters, in the user's language, \
naming the task or question (keep file names, tools and technical terms as written). No quotes, \
no trailing punctuation, no preamble such as \"Title:\", and never answer the request itself.";

/// Longest title kept, in characters.
const MAX_TITLE: usize = 100;

/// Whether `title` is still a default one.
pub fn is_default(title: &str) -> bool {
    DEFAULT_PREFIXES.iter().any(|p| title.starts_with(p))
}

/// The first usable line of a model's answer, cleaned: reasoning blocks, quotes and a
/// `Title:` preamble removed, cut to [`MAX_TITLE`] characters.
pub fn clean(answer: &str) -> Option<String> {
    let mut text = answer.to_owned();
    while let (Some(start), Some(end)) = (text.find("<think>"), text.find("</think>")) {
        if end < start {
            break;
        }
        text.replace_range(start..end + "</think>".len(), "");
    }
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let unquote = |s: &str| {
        s.trim()
            .trim_matches(|c| c == '"' || c == '\'' || c == '`' || c == '*')
            .trim()
            .to_owned()
    };
    let line = unquote(line);
    let line = unquote(
        line.strip_prefix("Title:")
            .or_else(|| line.strip_prefix("title:"))
            .unwrap_or(&line),
    );
    if line.is_empty() {
        return None;
    }
    let cut: String = line.chars().take(MAX_TITLE).collect();
    Some(if line.chars().count() > MAX_TITLE {
        format!("{}...", cut.trim_end())
    } else {
        cut
    })
}

impl Agent {
    /// Names the session after `text` when it still has a default title; runs beside the turn.
    pub(super) async fn title(&self, recorder: Recorder, model: ModelRef, text: String) {
        let Some(info) = recorder.store().info(recorder.session_id()) else {
            return;
        };
        if !is_default(&info.title) || text.trim().is_empty() {
            return;
        }
        let (provider_id, model_id) = self
            .small_model()
            .await
            .unwrap_or((model.provider_id.clone(), model.model_id.clone()));
        let request = ModelRequest {
            provider_id,
            model_id,
            system: vec![TITLE_PROMPT.to_owned()],
            messages: vec![Message {
                role: Role::User,
                content: vec![Content::Text(format!(
                    "Generate a title for this conversation:\n{text}"
                ))],
            }],
            tools: Vec::new(),
            options: ModelOptions {
                max_tokens: Some(200),
                session_id: Some(recorder.session_id().to_owned()),
                ..ModelOptions::default()
            },
        };
        let mut answer = match self.gateway.request(Request::Model(request)).await {
            Ok(answer) => answer,
            Err(err) => {
                tracing::debug!(%err, "no title: the gateway is not reachable");
                return;
            }
        };
        let mut written = String::new();
        while let Some(reply) = answer.next().await {
            match reply {
                Reply::Model(ModelEvent::TextDelta(delta)) => written.push_str(&delta),
                Reply::End => break,
                Reply::Error(failure) => {
                    tracing::debug!(message = %failure.message, "no title: the call failed");
                    return;
                }
                _ => {}
            }
        }
        let Some(title) = clean(&written) else {
            return;
        };
        // The user may have renamed the session meanwhile: only a default title is replaced.
        let Some(mut info) = recorder.store().info(recorder.session_id()) else {
            return;
        };
        if !is_default(&info.title) {
            return;
        }
        info.title = title;
        info.time.updated = crate::session::ids::now_ms();
        if let Err(err) = recorder.session(info) {
            tracing::warn!(%err, "could not store the session title");
        }
    }

    /// The user's `small_model`, from the laptop's setup.
    async fn small_model(&self) -> Option<(String, String)> {
        let setup = self.setup().await?;
        let (provider, model) = setup.small_model.as_deref()?.split_once('/')?;
        Some((provider.to_owned(), model.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_should_be_cleaned_like_a_person_would_write_them() {
        assert_eq!(clean("Fix login bug\n").as_deref(), Some("Fix login bug"));
        assert_eq!(
            clean("<think>the user wants…</think>\n\n\"Title: Parse CSV files\"").as_deref(),
            Some("Parse CSV files")
        );
        assert_eq!(clean("  \n\n"), None);
        let long = "x".repeat(150);
        let cut = clean(&long).unwrap();
        assert_eq!(cut.chars().count(), MAX_TITLE + 3);
        assert!(is_default("New session - 2026-12-05T06:00:00.000Z"));
        assert!(!is_default("Parse CSV files"));
    }
}
