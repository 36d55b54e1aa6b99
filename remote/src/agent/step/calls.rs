//! The tool calls of a step: a call whose arguments are complete is recorded running and run
//! on the step's task set; calls that never ran end as errors.

use crate::error::ApiError;
use crate::opencode::Object;
use crate::opencode::part::{Finished, Part, PartKind, Started, ToolPart, ToolState};
use crate::session::ids;

use super::super::tools::{self, Ctx, Done};
use super::{Calling, Stream};

/// Identical calls in a row that make OpenCode ask before the last one runs.
const DOOM_LOOP: usize = 3;

impl Stream<'_> {
    pub(super) fn tool_part(&self, call_id: &str, calling: &Calling, state: ToolState) -> Part {
        Part {
            id: calling.part_id.clone(),
            ..self.new_part(PartKind::Tool(ToolPart {
                call_id: call_id.to_owned(),
                tool: calling.name.clone(),
                state,
                metadata: None,
            }))
        }
    }

    /// The call's arguments are complete: record it running and start it.
    pub(super) fn run_tool(&mut self, call_id: &str) {
        let Some(calling) = self.calling.get_mut(call_id) else {
            return;
        };
        calling.start = ids::now_ms();
        let parsed = if calling.raw.trim().is_empty() {
            Ok(Object::new())
        } else {
            serde_json::from_str::<Object>(&calling.raw)
        };
        let start = calling.start;
        let (input, invalid) = match parsed {
            Ok(input) => (input, None),
            Err(err) => (
                Object::new(),
                Some(format!(
                    "The arguments for the {} tool are not a valid JSON object ({err}). Call it again with a JSON object matching its parameters.",
                    calling.name
                )),
            ),
        };
        calling.input = input.clone();
        let running = ToolState::Running {
            input: input.clone(),
            title: None,
            metadata: None,
            time: Started { start },
        };
        let part = self.tool_part(call_id, &self.calling[call_id], running);
        self.put(part.clone());
        let ctx = Ctx {
            agent: self.agent.clone(),
            rules: self.rules.clone(),
            recorder: self.recorder.clone(),
            message_id: self.message.id.clone(),
            part_id: part.id.clone(),
            call_id: call_id.to_owned(),
            tool: self.calling[call_id].name.clone(),
            input,
            start,
            cancel: self.cancel.clone(),
        };
        let repeated = invalid.is_none() && self.repeats(&part);
        let call_id = call_id.to_owned();
        self.tasks.spawn(async move {
            let done = match invalid {
                Some(error) => Done::error(error),
                None if repeated => match tools::permit::repeated(&ctx).await {
                    Ok(()) => tools::run(&ctx).await,
                    Err(done) => done,
                },
                None => tools::run(&ctx).await,
            };
            let end = ids::now_ms();
            let time = Finished {
                start: ctx.start,
                end,
                compacted: None,
            };
            let state = match &done {
                Done::Completed {
                    output,
                    title,
                    metadata,
                } => ToolState::Completed {
                    input: ctx.input.clone(),
                    output: output.clone(),
                    title: title.clone(),
                    metadata: metadata.clone(),
                    time,
                    attachments: None,
                },
                Done::Failed { error, aborted, .. } => ToolState::Error {
                    input: ctx.input.clone(),
                    error: error.clone(),
                    metadata: aborted.then(|| {
                        let mut map = Object::new();
                        map.insert("interrupted".into(), true.into());
                        map
                    }),
                    time,
                },
            };
            let PartKind::Tool(mut tool) = part.kind.clone() else {
                unreachable!("a tool part")
            };
            tool.state = state;
            let part = Part {
                kind: PartKind::Tool(tool),
                ..part
            };
            (call_id, part, done)
        });
    }

    /// Whether `part` (just recorded running) ends [`DOOM_LOOP`] parts of this step that are
    /// calls of the same tool with the same input, none still pending (AGENT.md §7).
    fn repeats(&self, part: &Part) -> bool {
        let PartKind::Tool(current) = &part.kind else {
            return false;
        };
        let Some(last) = self.parts.len().checked_sub(DOOM_LOOP) else {
            return false;
        };
        self.parts[last..].iter().all(|p| match &p.kind {
            PartKind::Tool(tool) => {
                tool.tool == current.tool
                    && !matches!(tool.state, ToolState::Pending { .. })
                    && tool.state.input() == current.state.input()
            }
            _ => false,
        })
    }

    /// Calls that never ran (their arguments never completed) end as errors.
    pub(super) fn close_calls(&mut self, error: &str) -> Result<(), ApiError> {
        let open: Vec<String> = self
            .calls
            .iter()
            .filter(|id| self.calling.get(*id).is_some_and(|c| !c.done))
            .cloned()
            .collect();
        for call_id in open {
            let now = ids::now_ms();
            let calling = &self.calling[&call_id];
            let state = ToolState::Error {
                input: calling.input.clone(),
                error: error.to_owned(),
                metadata: None,
                time: Finished {
                    start: if calling.start == 0 {
                        now
                    } else {
                        calling.start
                    },
                    end: now,
                    compacted: None,
                },
            };
            let part = self.tool_part(&call_id, calling, state);
            self.put(part);
            if let Some(calling) = self.calling.get_mut(&call_id) {
                calling.done = true;
            }
        }
        Ok(())
    }
}
