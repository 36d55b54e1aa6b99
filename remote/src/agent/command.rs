//! `POST /session/:id/command`: a slash command becomes a prompt. The commands are the user's
//! own, as the laptop's OpenCode lists them (`GET /command`: name, template, agent, model);
//! `init` is ours, because the laptop's template names the laptop's directory and the file
//! must be written on the host. The template gets the arguments the way OpenCode expands
//! them (`$1`…`$N`, the last one taking the rest, `$ARGUMENTS`, or appended when it has no
//! placeholder) and the output of its `` !`command` `` snippets, run on the host in the
//! workspace directory.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::session::limits;

use super::Agent;
use super::prompt::{Accepted, Prompt, PromptModel};

/// The body OpenCode sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandBody {
    /// Id for the user message.
    #[serde(default, rename = "messageID")]
    pub message_id: Option<String>,
    /// Agent; the command's own wins.
    #[serde(default)]
    pub agent: Option<String>,
    /// `provider/model`; the command's own wins.
    #[serde(default)]
    pub model: Option<String>,
    /// What the user typed after the command.
    pub arguments: String,
    /// The command's name, without the slash.
    pub command: String,
    /// Model variant.
    #[serde(default)]
    pub variant: Option<String>,
    /// Attached files.
    #[serde(default)]
    pub parts: Option<Vec<Value>>,
}

/// A command as the laptop lists it.
#[derive(Debug, Clone, Deserialize)]
struct Listed {
    name: String,
    template: String,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    model: Option<String>,
}

/// `init`, in our words, for the host's directory.
const INIT: &str = "Create or improve the file AGENTS.md at the root of this project ({dir}) for \
coding agents who will work here. Study the code base first. Then write, in about 150 lines: the \
commands to build, lint and test (including how to run a single test), the code style \
(imports, formatting, types, naming, error handling) and where things live. If AGENTS.md \
already exists, improve it rather than starting over. If the project has rules for other \
assistants (.cursor/rules/, .cursorrules, .github/copilot-instructions.md, CLAUDE.md), fold \
their important points in.\n$ARGUMENTS";

/// Longest time a `` !`command` `` of a template may run.
const SNIPPET_TIMEOUT: Duration = Duration::from_secs(60);

impl Agent {
    /// Expands the command and prompts with it.
    ///
    /// # Errors
    ///
    /// 400 for bad input or an unknown command (naming the known ones), else as
    /// [`Agent::prompt`].
    pub async fn command(&self, session_id: &str, body: CommandBody) -> Result<Accepted, ApiError> {
        limits::name("command", &body.command)?;
        limits::text("arguments", &body.arguments, 1 << 20)?;
        let listed = match body.command.as_str() {
            "init" => Listed {
                name: "init".into(),
                template: INIT.replace("{dir}", &self.directory.display().to_string()),
                agent: None,
                model: None,
            },
            name => {
                let commands: Vec<Listed> = self
                    .setup()
                    .await
                    .and_then(|setup| serde_json::from_str(&setup.commands).ok())
                    .unwrap_or_default();
                let known: Vec<String> = commands.iter().map(|c| c.name.clone()).collect();
                commands
                    .into_iter()
                    .find(|c| c.name == name)
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "`command` {name} is not a command of this OpenCode (known: init{}{})",
                            if known.is_empty() { "" } else { ", " },
                            known.join(", ")
                        ))
                    })?
            }
        };
        let expanded = expand(&listed.template, &body.arguments);
        let text = self.run_snippets(&expanded).await.trim().to_owned();
        let model = listed
            .model
            .as_deref()
            .or(body.model.as_deref())
            .map(|model| {
                model
                    .split_once('/')
                    .map(|(provider, model)| PromptModel {
                        provider_id: provider.to_owned(),
                        model_id: model.to_owned(),
                    })
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "`model` must be provider/model, got `{model}`"
                        ))
                    })
            })
            .transpose()?;
        let mut parts = vec![json!({"type": "text", "text": text})];
        parts.extend(body.parts.unwrap_or_default());
        let prompt = Prompt {
            message_id: body.message_id,
            model,
            agent: listed.agent.or(body.agent),
            no_reply: None,
            tools: None,
            format: None,
            system: None,
            variant: body.variant,
            parts,
        };
        self.prompt(session_id, prompt).await
    }

    /// Replaces each `` !`command` `` with what the command prints on the host.
    async fn run_snippets(&self, template: &str) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("!`") {
            let Some(len) = rest[start + 2..].find('`') else {
                break;
            };
            out.push_str(&rest[..start]);
            let command = &rest[start + 2..start + 2 + len];
            out.push_str(&self.snippet(command).await);
            rest = &rest[start + 2 + len + 1..];
        }
        out.push_str(rest);
        out
    }

    async fn snippet(&self, command: &str) -> String {
        let child = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .current_dir(&self.directory)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(SNIPPET_TIMEOUT, child).await {
            Ok(Ok(output)) => {
                let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&output.stderr));
                text
            }
            Ok(Err(err)) => format!("Error executing command: {err}"),
            Err(_) => format!(
                "Error executing command: timed out after {} s",
                SNIPPET_TIMEOUT.as_secs()
            ),
        }
    }
}

/// The arguments as OpenCode splits them: quoted strings, `[Image N]` or runs of non-space,
/// with surrounding quotes removed.
fn split_arguments(arguments: &str) -> Vec<String> {
    let chars: Vec<char> = arguments.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let rest: String = chars[i..].iter().collect();
        if let Some(image) = image_token(&rest) {
            out.push(image.clone());
            i += image.chars().count();
            continue;
        }
        if (c == '"' || c == '\'')
            && let Some(len) = chars[i + 1..].iter().position(|&d| d == c)
        {
            out.push(chars[i + 1..i + 1 + len].iter().collect());
            i += len + 2;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '"' && chars[i] != '\'' {
            i += 1;
        }
        if i == start {
            // A lone quote: keep it as its own token, as the pattern's run would.
            i += 1;
            continue;
        }
        out.push(chars[start..i].iter().collect());
    }
    out
}

/// `[Image N]` at the start of `text`, any case.
fn image_token(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let after = lower.strip_prefix("[image")?;
    let spaces = after.len() - after.trim_start().len();
    if spaces == 0 {
        return None;
    }
    let digits = after[spaces..]
        .chars()
        .take_while(char::is_ascii_digit)
        .count();
    if digits == 0 || !after[spaces + digits..].starts_with(']') {
        return None;
    }
    let len = "[image".len() + spaces + digits + 1;
    Some(text[..len].to_owned())
}

/// The template with the arguments put in.
pub fn expand(template: &str, arguments: &str) -> String {
    let args = split_arguments(arguments);
    let placeholders = placeholders(template);
    let last = placeholders.iter().copied().max().unwrap_or(0);
    let mut out = String::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits: String = rest[at + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if digits.is_empty() {
            out.push('$');
            rest = &rest[at + 1..];
            continue;
        }
        let position: usize = digits.parse().unwrap_or(0);
        if position >= 1 && position <= args.len() {
            if position == last {
                out.push_str(&args[position - 1..].join(" "));
            } else {
                out.push_str(&args[position - 1]);
            }
        }
        rest = &rest[at + 1 + digits.len()..];
    }
    out.push_str(rest);
    let uses_arguments = template.contains("$ARGUMENTS");
    let mut out = out.replace("$ARGUMENTS", arguments);
    if placeholders.is_empty() && !uses_arguments && !arguments.trim().is_empty() {
        out = format!("{out}\n\n{arguments}");
    }
    out
}

fn placeholders(template: &str) -> Vec<usize> {
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        let digits: String = rest[at + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(n) = digits.parse() {
            found.push(n);
        }
        rest = &rest[at + 1 + digits.len()..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_should_fill_the_template_as_opencode_fills_it() {
        assert_eq!(
            split_arguments(r#"one "two words" 'three' [Image 1] x"#),
            ["one", "two words", "three", "[Image 1]", "x"]
        );
        assert_eq!(expand("Fix $1 in $2", "a b c d"), "Fix a in b c d");
        assert_eq!(expand("Fix $1 then $3", "a"), "Fix a then ");
        assert_eq!(expand("Review: $ARGUMENTS", "the diff"), "Review: the diff");
        assert_eq!(expand("Explain", "this"), "Explain\n\nthis");
        assert_eq!(expand("Explain", ""), "Explain");
        assert_eq!(expand("Cost is $ and $ARGUMENTS", "x"), "Cost is $ and x");
    }
}
