//! The reverse road: what the stub asks of the laptop (model calls, web fetches, the user's
//! OpenCode setup), performed by the bridge, so that no credential ever reaches the host and
//! the host needs no network.
//!
//! # How it rides the connection
//!
//! HTTP/2 cannot carry requests from server to client, so the bridge, which is the HTTP/2
//! client, opens streams on the stub's behalf:
//!
//! 1. Once connected, the bridge opens one long-lived stream, `GET` [`REQUESTS_PATH`]. Its
//!    response body carries [`Announce`] frames from the stub: first [`Announce::Hello`] with
//!    the stub's gateway version, then one [`Announce::Request`] per request, and
//!    [`Announce::Cancel`] when the stub gives a request up before its answer stream exists.
//! 2. For each request the bridge opens `POST` [`REQUESTS_PATH`]`/{id}` and streams the answer
//!    in that request's body as [`Reply`] frames, ending with [`Reply::End`] or
//!    [`Reply::Error`].
//!
//! Every request is thus its own HTTP/2 stream: many run at once; each has HTTP/2's flow
//! control (when the stub reads slowly the bridge's writes wait, it stops reading the provider,
//! and TCP pushes back on the provider: nothing is buffered without bound); and cancelling is
//! closing that stream (the stub drops the body, hyper resets the stream, the bridge's next
//! write fails and it drops the upstream request at once).
//!
//! Not chosen: a second exec channel (it would start a second stub process, with no way to
//! reach the first: the stub has no listener); one multiplexed stream with our own framing (it
//! would re-implement the flow control and cancellation HTTP/2 gives each stream).
//!
//! # Frames
//!
//! A `u32` big-endian length, then a bincode 2 body (standard config) of at most
//! [`MAX_FRAME_LEN`] bytes. JSON that must pass through unchanged (tool parameter schemas,
//! tool-call arguments, agent and command definitions) travels as strings.
//!
//! # Versions
//!
//! [`GATEWAY_VERSION`] follows the handshake's rules: same major, compatible. The stub's
//! [`Announce::Hello`] names its version; a bridge that does not speak it closes the stream and
//! says so naming both versions, and the stub answers every request with an error naming them.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::handshake::Version;

/// The gateway version this build speaks.
pub const GATEWAY_VERSION: Version = Version { major: 1, minor: 0 };

/// Path of the announce stream; answers go to `{REQUESTS_PATH}/{id}`.
pub const REQUESTS_PATH: &str = "/x-opencode-remote/gateway/requests";

/// Largest frame body accepted, in bytes: a model request carries the whole conversation.
pub const MAX_FRAME_LEN: usize = 32 << 20;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// Stub → bridge, on the announce stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Announce {
    /// First frame: the stub's gateway version.
    Hello {
        /// The stub's [`GATEWAY_VERSION`].
        version: Version,
    },
    /// Please perform this; answer on `{REQUESTS_PATH}/{id}`.
    Request {
        /// Unique within this connection.
        id: u64,
        /// What to do.
        request: Request,
    },
    /// The stub no longer wants the answer to `id`.
    Cancel {
        /// The request.
        id: u64,
    },
}

/// What the stub asks of the laptop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// A streamed model call ([`Reply::Model`] events).
    Model(ModelRequest),
    /// A web fetch ([`Reply::Head`], then [`Reply::Data`]).
    Fetch(FetchRequest),
    /// The user's OpenCode setup ([`Reply::Setup`]).
    Setup,
}

/// A model call in provider-neutral form; the bridge speaks the provider's wire format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRequest {
    /// OpenCode's provider id (`anthropic`, `openai`, a configured one…).
    pub provider_id: String,
    /// The model's key in that provider (not the API id; the bridge resolves it).
    pub model_id: String,
    /// System prompt parts, in order.
    pub system: Vec<String>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    pub tools: Vec<Tool>,
    /// Sampling and limits.
    pub options: ModelOptions,
}

/// Options of a model call; `None` leaves the provider's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelOptions {
    /// Temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Output token limit.
    pub max_tokens: Option<u32>,
    /// Reasoning effort (`low`, `medium`, `high`…), for models that reason.
    pub reasoning_effort: Option<String>,
    /// The OpenCode session (prompt caching and affinity headers, as OpenCode sends them).
    pub session_id: Option<String>,
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What it holds, in order.
    pub content: Vec<Content>,
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// The user (and tool results, which providers want in the user's turn or their own).
    User,
    /// The model.
    Assistant,
}

/// A piece of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Content {
    /// Text.
    Text(String),
    /// The model's reasoning, with the provider's opaque signature when it gave one.
    Reasoning {
        /// The text.
        text: String,
        /// Signature or encrypted content to send back unchanged.
        signature: Option<String>,
    },
    /// A file (image, PDF) as a data URL.
    File {
        /// MIME type.
        mime: String,
        /// `data:…;base64,…`
        url: String,
    },
    /// A call the model made.
    ToolCall {
        /// The call id.
        id: String,
        /// The tool.
        name: String,
        /// Arguments, JSON text.
        arguments: String,
    },
    /// The result of a call.
    ToolResult {
        /// The call id.
        id: String,
        /// The tool.
        name: String,
        /// Output or error text.
        output: String,
        /// Whether it failed.
        is_error: bool,
    },
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Its name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its arguments, JSON text.
    pub parameters: String,
}

/// A web fetch (the agent's `webfetch`), done from the laptop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    /// `http://` or `https://` URL.
    pub url: String,
    /// `Accept` header to send.
    pub accept: String,
    /// Give up after this many milliseconds.
    pub timeout_ms: u64,
    /// Refuse bodies larger than this.
    pub max_bytes: u64,
}

/// Bridge → stub, on a request's answer stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// An event of a model call.
    Model(ModelEvent),
    /// Status and content type of a fetch.
    Head {
        /// HTTP status.
        status: u16,
        /// `content-type`.
        content_type: String,
    },
    /// Body bytes of a fetch.
    Data(Vec<u8>),
    /// The user's setup.
    Setup(Box<Setup>),
    /// The request failed; nothing follows.
    Error(Failure),
    /// Done; nothing follows.
    End,
}

/// Largest text, arguments or data a [`Reply::absorb`] grows one reply to, in bytes.
pub const MERGE_LIMIT: usize = 16 << 10;

impl Reply {
    /// Joins `next` onto this reply when both are pieces of one stream: text after text,
    /// reasoning after reasoning, arguments of the same tool call, fetched bytes after fetched
    /// bytes, as long as the result stays within [`MERGE_LIMIT`]. Anything else comes back,
    /// untouched, as `Some(next)`; `None` means it was absorbed.
    ///
    /// A reader that fell behind catches up with one reply instead of a thousand: what it sees
    /// is the same text in the same order, in fewer pieces.
    pub fn absorb(&mut self, next: Reply) -> Option<Reply> {
        fn fits(a: usize, b: usize) -> bool {
            a.saturating_add(b) <= MERGE_LIMIT
        }
        match (self, next) {
            (
                Reply::Model(ModelEvent::TextDelta(held)),
                Reply::Model(ModelEvent::TextDelta(more)),
            )
            | (
                Reply::Model(ModelEvent::ReasoningDelta(held)),
                Reply::Model(ModelEvent::ReasoningDelta(more)),
            ) if fits(held.len(), more.len()) => {
                held.push_str(&more);
                None
            }
            (
                Reply::Model(ModelEvent::ToolCallDelta {
                    id: held_id,
                    arguments: held,
                }),
                Reply::Model(ModelEvent::ToolCallDelta {
                    id: more_id,
                    arguments: more,
                }),
            ) if *held_id == more_id && fits(held.len(), more.len()) => {
                held.push_str(&more);
                None
            }
            (Reply::Data(held), Reply::Data(more)) if fits(held.len(), more.len()) => {
                held.extend_from_slice(&more);
                None
            }
            (_, next) => Some(next),
        }
    }

    /// Adds `next` to the run kept in `open`: joined onto it when it can be ([`Reply::absorb`]),
    /// else it takes the run's place and the finished run comes back, to be sent.
    pub fn join(open: &mut Option<Reply>, next: Reply) -> Option<Reply> {
        let apart = match open.as_mut() {
            None => Some(next),
            Some(run) => run.absorb(next),
        };
        apart.and_then(|apart| open.replace(apart))
    }
}

/// A model call's progress, normalised across providers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelEvent {
    /// The model the bridge resolved and is calling (before any output).
    Started(ModelInfo),
    /// The provider refused for now; the bridge retries at `next_ms` (epoch ms).
    Retrying {
        /// Attempt number, from 1.
        attempt: u32,
        /// The provider's message.
        message: String,
        /// When the next attempt starts.
        next_ms: u64,
    },
    /// Text arrived.
    TextDelta(String),
    /// Reasoning arrived.
    ReasoningDelta(String),
    /// A reasoning block ended (with its signature, if the provider gave one).
    ReasoningEnd {
        /// Signature or encrypted content.
        signature: Option<String>,
    },
    /// A text block ended.
    TextEnd,
    /// A tool call began; its arguments stream next.
    ToolCallStart {
        /// The call id.
        id: String,
        /// The tool.
        name: String,
    },
    /// More arguments of a call.
    ToolCallDelta {
        /// The call id.
        id: String,
        /// JSON text to append.
        arguments: String,
    },
    /// A call's arguments are complete.
    ToolCallEnd {
        /// The call id.
        id: String,
    },
    /// Token counts (may come more than once; the last wins).
    Usage(Usage),
    /// The model finished.
    Finish(FinishReason),
}

/// Token counts as providers report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens not read from the cache.
    pub input: u64,
    /// Output tokens, reasoning excluded.
    pub output: u64,
    /// Reasoning tokens.
    pub reasoning: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write: u64,
}

/// Why the model stopped (the AI SDK's unified reasons, as OpenCode records them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FinishReason {
    /// Done.
    Stop,
    /// Hit the output limit.
    Length,
    /// Blocked by the provider's filter.
    ContentFilter,
    /// Wants tool results.
    ToolCalls,
    /// Something else.
    Other,
}

/// A resolved model (no credentials).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Provider id.
    pub provider_id: String,
    /// The model's key.
    pub model_id: String,
    /// The id sent to the API (`api.id`).
    pub api_id: String,
    /// API style (`@ai-sdk/anthropic`, …).
    pub npm: String,
    /// Display name.
    pub name: String,
    /// Dollars per million tokens.
    pub cost: Cost,
    /// Context window, in tokens (0 when unknown).
    pub context_limit: u64,
    /// Output limit, in tokens (0 when unknown).
    pub output_limit: u64,
    /// Whether it accepts `temperature`.
    pub temperature: bool,
    /// Whether it reasons.
    pub reasoning: bool,
    /// Whether it can call tools.
    pub tool_call: bool,
    /// Whether it takes attachments (images).
    pub attachment: bool,
}

/// Price of a model, dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Input.
    pub input: f64,
    /// Output (and reasoning).
    pub output: f64,
    /// Cache reads.
    pub cache_read: f64,
    /// Cache writes.
    pub cache_write: f64,
}

/// The user's OpenCode setup as the stub needs it (never a credential).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    /// Usable providers and their models.
    pub providers: Vec<ProviderInfo>,
    /// The user's default model (`provider/model`), if any.
    pub model: Option<String>,
    /// The small model for titles (`provider/model`), if configured.
    pub small_model: Option<String>,
    /// Default model per provider.
    pub defaults: Vec<(String, String)>,
    /// The user's `permission` config, JSON text (`null` when absent).
    pub permission: String,
    /// Agents as the local OpenCode lists them (`GET /agent`), JSON text.
    pub agents: String,
    /// Commands as the local OpenCode lists them (`GET /command`), JSON text.
    pub commands: String,
    /// The user's global instructions from the laptop: `(path, content)`.
    pub instructions: Vec<(String, String)>,
    /// The user's own skills from the laptop (OpenCode's built-in ones and those in the
    /// laptop's global skill folders, not the laptop project's), as the local OpenCode lists
    /// them (`GET /skill`), JSON text.
    pub skills: String,
}

/// A provider and its models.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderInfo {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Models.
    pub models: Vec<ModelInfo>,
}

/// Why a request failed, typed so the stub can record it the way OpenCode does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// The message to show (the provider's own when there is one).
    pub message: String,
    /// HTTP status from the provider.
    pub status: Option<u16>,
    /// Whether retrying may help.
    pub retryable: bool,
    /// The provider's response body (capped).
    pub response_body: Option<String>,
    /// The provider's response headers (without cookies).
    pub response_headers: Vec<(String, String)>,
    /// The URL called (without credentials).
    pub url: Option<String>,
}

/// Kinds of [`Failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureKind {
    /// The provider answered with an error.
    Api,
    /// The credentials were refused (401/403) or are missing.
    Auth,
    /// The conversation does not fit the model's context.
    ContextOverflow,
    /// The provider or model is not configured in the local OpenCode.
    UnknownModel,
    /// The provider's API style is not one the bridge speaks.
    UnsupportedApi,
    /// The laptop could not reach the provider.
    Network,
    /// The provider's stream could not be read.
    Malformed,
    /// The request itself is invalid (too large, cannot be decoded).
    BadRequest,
    /// The two sides speak incompatible gateway versions.
    Version,
    /// A fetch failed (status, size, time).
    Fetch,
}

/// Errors of gateway frames.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame announces more than [`MAX_FRAME_LEN`] bytes.
    #[error("gateway frame of {len} bytes exceeds the limit of {MAX_FRAME_LEN} bytes")]
    TooLarge {
        /// The announced or encoded length.
        len: usize,
    },
    /// The body is not a valid message.
    #[error("malformed gateway frame")]
    Malformed(#[source] bincode::error::DecodeError),
    /// The body has bytes after the message.
    #[error("gateway frame has {0} trailing bytes")]
    TrailingBytes(usize),
    /// The message could not be encoded.
    #[error("cannot encode gateway frame")]
    Encode(#[source] bincode::error::EncodeError),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_LEN>()
}

/// Encodes one frame, length prefix included.
///
/// # Errors
///
/// [`FrameError::Encode`], or [`FrameError::TooLarge`] beyond [`MAX_FRAME_LEN`].
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let mut frame = vec![0u8; LENGTH_PREFIX_LEN];
    bincode::serde::encode_into_std_write(message, &mut frame, config())
        .map_err(FrameError::Encode)?;
    let len = frame.len() - LENGTH_PREFIX_LEN;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge { len });
    }
    // `len <= MAX_FRAME_LEN` fits in u32.
    if let Some(prefix) = frame.first_chunk_mut::<LENGTH_PREFIX_LEN>() {
        *prefix = (len as u32).to_be_bytes();
    }
    Ok(frame)
}

/// Splits a byte stream into frames: push bytes as they arrive, take messages as they
/// complete. Checks each length before buffering its body.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: Vec<u8>,
}

impl Decoder {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes received but not yet decoded.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }

    /// The next complete message, if one has arrived.
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLarge`] as soon as a length over the limit arrives, or a decoding error
    /// for a malformed body. The stream cannot be used after an error.
    pub fn decode<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        let Some(prefix) = self.buffer.first_chunk::<LENGTH_PREFIX_LEN>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*prefix) as usize;
        if len > MAX_FRAME_LEN {
            return Err(FrameError::TooLarge { len });
        }
        let Some(body) = self.buffer.get(LENGTH_PREFIX_LEN..LENGTH_PREFIX_LEN + len) else {
            return Ok(None);
        };
        let (message, used) =
            bincode::serde::decode_from_slice(body, config()).map_err(FrameError::Malformed)?;
        if used != len {
            return Err(FrameError::TrailingBytes(len - used));
        }
        self.buffer.drain(..LENGTH_PREFIX_LEN + len);
        Ok(Some(message))
    }

    /// After [`FrameError::Malformed`] or [`FrameError::TrailingBytes`]: removes the frame that
    /// failed and returns its body, so the stream can go on with the next frame (the length
    /// prefix still delimits it). `None` when no complete frame is buffered.
    pub fn skip(&mut self) -> Option<Vec<u8>> {
        let prefix = self.buffer.first_chunk::<LENGTH_PREFIX_LEN>()?;
        let len = u32::from_be_bytes(*prefix) as usize;
        if len > MAX_FRAME_LEN || self.buffer.len() < LENGTH_PREFIX_LEN + len {
            return None;
        }
        let mut frame: Vec<u8> = self.buffer.drain(..LENGTH_PREFIX_LEN + len).collect();
        frame.drain(..LENGTH_PREFIX_LEN);
        Some(frame)
    }
}

/// The id of an [`Announce::Request`] whose request could not be decoded (a newer stub's
/// request kind, a damaged body), read from the frame's start so that the request can still be
/// answered with [`Reply::Error`] instead of waiting forever.
pub fn request_id(body: &[u8]) -> Option<u64> {
    // The variant index of `Announce::Request`, then its `id`, as bincode lays them out.
    let ((variant, id), _): ((u32, u64), usize) =
        bincode::serde::decode_from_slice(body, config()).ok()?;
    (variant == 1).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_should_round_trip_in_pieces() {
        let request = Announce::Request {
            id: 7,
            request: Request::Model(ModelRequest {
                provider_id: "anthropic".into(),
                model_id: "claude".into(),
                system: vec!["be brief".into()],
                messages: vec![Message {
                    role: Role::User,
                    content: vec![Content::Text("hi".into())],
                }],
                tools: vec![Tool {
                    name: "read".into(),
                    description: "reads".into(),
                    parameters: "{\"type\":\"object\"}".into(),
                }],
                options: ModelOptions::default(),
            }),
        };
        let mut bytes = encode(&Announce::Hello {
            version: GATEWAY_VERSION,
        })
        .unwrap();
        bytes.extend(encode(&request).unwrap());
        let mut decoder = Decoder::default();
        let mut seen = Vec::new();
        for byte in bytes {
            decoder.push(&[byte]);
            while let Some(message) = decoder.decode::<Announce>().unwrap() {
                seen.push(message);
            }
        }
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1], request);
        assert_eq!(decoder.pending(), 0);
    }

    #[test]
    fn decoder_should_refuse_an_oversized_length_before_buffering() {
        let mut decoder = Decoder::default();
        decoder.push(&(MAX_FRAME_LEN as u32 + 1).to_be_bytes());
        assert!(matches!(
            decoder.decode::<Reply>(),
            Err(FrameError::TooLarge { .. })
        ));
        let mut garbage = Decoder::default();
        garbage.push(&[0, 0, 0, 2, 0xff, 0xff]);
        assert!(garbage.decode::<Reply>().is_err());
    }

    #[test]
    fn a_request_that_cannot_be_decoded_should_still_give_its_id() {
        let good = encode(&Announce::Cancel { id: 3 }).unwrap();
        // A request whose kind this build does not know: variant 1, id 42, request variant 99.
        let mut body = Vec::new();
        bincode::serde::encode_into_std_write((1u32, 42u64, 99u32), &mut body, config()).unwrap();
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend(&body);
        bytes.extend(&good);
        let mut decoder = Decoder::default();
        decoder.push(&bytes);
        assert!(decoder.decode::<Announce>().is_err());
        let skipped = decoder.skip().unwrap();
        assert_eq!(request_id(&skipped), Some(42));
        assert_eq!(
            decoder.decode::<Announce>().unwrap(),
            Some(Announce::Cancel { id: 3 })
        );
        assert_eq!(request_id(&good[LENGTH_PREFIX_LEN..]), None);
        let real = encode(&Announce::Request {
            id: 7,
            request: Request::Setup,
        })
        .unwrap();
        assert_eq!(request_id(&real[LENGTH_PREFIX_LEN..]), Some(7));
    }

    #[test]
    fn replies_should_round_trip() {
        for reply in [
            Reply::Model(ModelEvent::TextDelta("a".into())),
            Reply::Model(ModelEvent::Usage(Usage {
                input: 1,
                output: 2,
                reasoning: 3,
                cache_read: 4,
                cache_write: 5,
            })),
            Reply::Model(ModelEvent::Finish(FinishReason::ToolCalls)),
            Reply::Setup(Box::default()),
            Reply::Error(Failure {
                kind: FailureKind::Auth,
                message: "bad key".into(),
                status: Some(401),
                retryable: false,
                response_body: None,
                response_headers: vec![("x".into(), "y".into())],
                url: Some("https://api.example/v1".into()),
            }),
            Reply::End,
        ] {
            let frame = encode(&reply).unwrap();
            let mut decoder = Decoder::default();
            decoder.push(&frame);
            assert_eq!(decoder.decode::<Reply>().unwrap(), Some(reply));
        }
    }

    #[test]
    fn absorb_should_join_pieces_of_one_stream_only() {
        let text = |t: &str| Reply::Model(ModelEvent::TextDelta(t.into()));
        let reasoning = |t: &str| Reply::Model(ModelEvent::ReasoningDelta(t.into()));
        let args = |id: &str, a: &str| {
            Reply::Model(ModelEvent::ToolCallDelta {
                id: id.into(),
                arguments: a.into(),
            })
        };

        let mut open = None;
        assert_eq!(Reply::join(&mut open, text("a")), None);
        assert_eq!(Reply::join(&mut open, text("b")), None);
        assert_eq!(Reply::join(&mut open, Reply::End), Some(text("ab")));
        assert_eq!(open, Some(Reply::End));

        let mut held = text("Hel");
        assert_eq!(held.absorb(text("lo")), None);
        assert_eq!(held, text("Hello"));
        // Text and reasoning are different parts: kept apart, order kept by the caller.
        assert_eq!(held.absorb(reasoning("hm")), Some(reasoning("hm")));
        assert_eq!(held.absorb(Reply::End), Some(Reply::End));

        let mut held = reasoning("a");
        assert_eq!(held.absorb(reasoning("b")), None);
        assert_eq!(held, reasoning("ab"));

        let mut held = args("c1", "{\"a\":");
        assert_eq!(held.absorb(args("c1", "1}")), None);
        assert_eq!(held, args("c1", "{\"a\":1}"));
        assert_eq!(held.absorb(args("c2", "{")), Some(args("c2", "{")));

        let mut held = Reply::Data(vec![1, 2]);
        assert_eq!(held.absorb(Reply::Data(vec![3])), None);
        assert_eq!(held, Reply::Data(vec![1, 2, 3]));

        // Never past the limit.
        let mut held = text(&"x".repeat(MERGE_LIMIT - 1));
        assert_eq!(held.absorb(text("y")), None);
        assert_eq!(held.absorb(text("z")), Some(text("z")));
        let mut held = Reply::Data(vec![0; MERGE_LIMIT]);
        assert_eq!(
            held.absorb(Reply::Data(vec![1])),
            Some(Reply::Data(vec![1]))
        );
    }
}
