//! OpenCode's wire schema (1.18.33), typed: every event and object the stub emits is built from
//! these types, and nothing else in the stub writes OpenCode JSON by hand.
//!
//! OpenCode validates what a remote publishes against its own schemas (objects with
//! `additionalProperties: false`, id prefixes, versioned durable event types) and silently drops
//! anything that does not match, so the shapes here follow its OpenAPI document exactly; the
//! end-to-end tests check every answer and event against the document the real OpenCode serves.
//!
//! - [`session`]: session info and the session status.
//! - [`message`]: user and assistant messages, message errors.
//! - [`part`]: message parts and the tool state machine.
//! - [`event`]: durable (sync) events with their versions, bus-only events, envelopes.
//! - [`permission`]: permission requests.
//! - [`project`]: the start-up answers (path, project, provider lists).

pub mod event;
pub mod message;
pub mod part;
pub mod permission;
pub mod project;
pub mod pty;
pub mod question;
pub mod session;
pub mod skill;

/// The OpenCode version whose schema this module follows.
pub const VERSION: &str = "1.18.33";

/// A JSON object (`metadata`, tool `input`), as OpenCode types them: any keys.
pub type Object = serde_json::Map<String, serde_json::Value>;

/// Token counts of a message, a step or a session.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tokens {
    /// Total (messages and steps only; absent on sessions and new messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Input tokens not read from the cache.
    pub input: u64,
    /// Output tokens, reasoning excluded.
    pub output: u64,
    /// Reasoning tokens.
    pub reasoning: u64,
    /// Cache reads and writes.
    pub cache: CacheTokens,
}

/// Cache part of [`Tokens`].
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CacheTokens {
    /// Tokens read from the provider's prompt cache.
    pub read: u64,
    /// Tokens written to it.
    pub write: u64,
}

impl Tokens {
    /// Adds `other` to these counts (session totals are sums over messages).
    pub fn add(&mut self, other: &Tokens) {
        self.input += other.input;
        self.output += other.output;
        self.reasoning += other.reasoning;
        self.cache.read += other.cache.read;
        self.cache.write += other.cache.write;
        if let Some(total) = other.total {
            self.total = Some(self.total.unwrap_or(0) + total);
        }
    }
}

/// A cost in dollars, written like JavaScript writes numbers (`0`, not `0.0`).
#[derive(Debug, Clone, Copy, Default, PartialEq, PartialOrd, serde::Deserialize)]
#[serde(transparent)]
pub struct Cost(pub f64);

impl serde::Serialize for Cost {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value = self.0;
        if value.fract() == 0.0 && value.is_finite() && value.abs() < 9.0e15 {
            serializer.serialize_i64(value as i64)
        } else {
            serializer.serialize_f64(value)
        }
    }
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, other: Cost) {
        self.0 += other.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_should_serialize_like_javascript_numbers() {
        assert_eq!(serde_json::to_string(&Cost(0.0)).unwrap(), "0");
        assert_eq!(serde_json::to_string(&Cost(3.0)).unwrap(), "3");
        assert_eq!(serde_json::to_string(&Cost(0.000991)).unwrap(), "0.000991");
        let parsed: Cost = serde_json::from_str("0.5").unwrap();
        assert_eq!(parsed, Cost(0.5));
    }

    #[test]
    fn tokens_should_add_up() {
        let mut total = Tokens::default();
        total.add(&Tokens {
            total: Some(10),
            input: 5,
            output: 3,
            reasoning: 2,
            cache: CacheTokens { read: 1, write: 0 },
        });
        total.add(&Tokens {
            input: 1,
            ..Tokens::default()
        });
        assert_eq!(total.input, 6);
        assert_eq!(total.total, Some(10));
        assert_eq!(
            serde_json::to_value(Tokens::default()).unwrap(),
            serde_json::json!({ "input": 0, "output": 0, "reasoning": 0, "cache": { "read": 0, "write": 0 } })
        );
    }
}
