//! The stub's end of the reverse road ([`protocol::gateway`]): what the stub needs from the
//! laptop (model calls, web fetches, the user's OpenCode setup) is announced on the stream the
//! bridge keeps open, and each answer arrives on a stream of its own.
//!
//! A caller gets an [`Answer`] and reads [`Reply`]s from it; dropping the `Answer` cancels the
//! request (the answer stream is reset, or a `Cancel` is announced when it was not open yet).
//! Nothing here holds a credential: the bridge resolves providers and keys on the laptop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use protocol::gateway::{self, Announce, GATEWAY_VERSION, Reply, Request};
use tokio::sync::mpsc;

/// Frames an announce stream may queue before the stub waits for the bridge to read.
const ANNOUNCE_QUEUE: usize = 64;
/// Replies queued per request before the answer stream stops being read (HTTP/2 flow control
/// then holds the bridge back).
const REPLY_QUEUE: usize = 32;

/// Why a request cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// No bridge listens (a manual connection, or an older bridge).
    #[error(
        "no laptop is connected to this stub: model calls and web fetches go through the opencode-remote bridge"
    )]
    NoBridge,
    /// The request does not fit in a frame.
    #[error("request of {len} bytes exceeds the gateway limit of {limit} bytes")]
    TooLarge {
        /// Its encoded size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// It could not be encoded.
    #[error("cannot encode the request: {0}")]
    Encode(String),
}

/// The gateway room. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Gateway(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    next_id: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The announce stream the bridge reads, if one is open.
    announcer: Option<mpsc::Sender<Bytes>>,
    pending: HashMap<u64, Pending>,
}

#[derive(Debug)]
struct Pending {
    /// The `Request` frame, to announce again on a new announce stream.
    frame: Bytes,
    replies: mpsc::Sender<Reply>,
    /// Whether the bridge opened the answer stream.
    opened: bool,
}

impl Gateway {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new announce stream for the bridge: `Hello`, then every request not yet answered.
    /// A previous announce stream ends.
    pub fn attach(&self) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(ANNOUNCE_QUEUE);
        let hello = gateway::encode(&Announce::Hello {
            version: GATEWAY_VERSION,
        });
        let mut state = self.lock();
        match hello {
            Ok(frame) => {
                // A fresh channel has room.
                let _sent = tx.try_send(Bytes::from(frame));
            }
            Err(err) => tracing::error!(%err, "cannot encode the gateway hello"),
        }
        for pending in state.pending.values().filter(|p| !p.opened) {
            if tx.try_send(pending.frame.clone()).is_err() {
                tracing::warn!("announce queue full while re-announcing requests");
                break;
            }
        }
        state.announcer = Some(tx);
        tracing::info!("the bridge attached to the gateway");
        rx
    }

    /// Whether a bridge reads the announce stream.
    pub fn is_attached(&self) -> bool {
        self.lock()
            .announcer
            .as_ref()
            .is_some_and(|tx| !tx.is_closed())
    }

    /// Asks the laptop for `request`.
    ///
    /// # Errors
    ///
    /// [`GatewayError`] when no bridge listens or the request is too large to send.
    pub async fn request(&self, request: Request) -> Result<Answer, GatewayError> {
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let frame = match gateway::encode(&Announce::Request { id, request }) {
            Ok(frame) => Bytes::from(frame),
            Err(gateway::FrameError::TooLarge { len }) => {
                return Err(GatewayError::TooLarge {
                    len,
                    limit: gateway::MAX_FRAME_LEN,
                });
            }
            Err(err) => return Err(GatewayError::Encode(err.to_string())),
        };
        let (tx, rx) = mpsc::channel(REPLY_QUEUE);
        let announcer = {
            let mut state = self.lock();
            let Some(announcer) = state.announcer.clone().filter(|tx| !tx.is_closed()) else {
                return Err(GatewayError::NoBridge);
            };
            state.pending.insert(
                id,
                Pending {
                    frame: frame.clone(),
                    replies: tx,
                    opened: false,
                },
            );
            announcer
        };
        let answer = Answer {
            id,
            replies: rx,
            held: None,
            gateway: self.clone(),
        };
        if announcer.send(frame).await.is_err() {
            return Err(GatewayError::NoBridge);
        }
        Ok(answer)
    }

    /// Where the replies of request `id` go (the bridge opened its answer stream); `None` for
    /// an unknown or cancelled request.
    pub fn open(&self, id: u64) -> Option<mpsc::Sender<Reply>> {
        let mut state = self.lock();
        let pending = state.pending.get_mut(&id)?;
        pending.opened = true;
        Some(pending.replies.clone())
    }

    fn cancel(&self, id: u64) {
        let (pending, announcer) = {
            let mut state = self.lock();
            (state.pending.remove(&id), state.announcer.clone())
        };
        // An answer stream that is open ends when its receiver goes (the route stops reading
        // and the stream is reset); one not yet opened needs the bridge to be told.
        if let (Some(pending), Some(announcer)) = (pending, announcer)
            && !pending.opened
            && let Ok(frame) = gateway::encode(&Announce::Cancel { id })
            && announcer.try_send(Bytes::from(frame)).is_err()
        {
            tracing::debug!(
                id,
                "could not announce a cancel (queue full or bridge gone)"
            );
        }
    }
}

/// The replies to one request. Dropping it cancels the request.
#[derive(Debug)]
pub struct Answer {
    id: u64,
    replies: mpsc::Receiver<Reply>,
    /// A reply taken from the queue that did not join the one before it; it comes next.
    held: Option<Reply>,
    gateway: Gateway,
}

impl Answer {
    /// The next reply; `None` when the bridge went away without finishing (the caller reports
    /// that as a lost connection to the laptop). Pieces of one stream that have already
    /// arrived come joined ([`Reply::absorb`]): a caller that fell behind catches up in one
    /// step, with the same text in the same order. Cancel-safe: nothing is lost when the
    /// future is dropped before it is ready.
    pub async fn next(&mut self) -> Option<Reply> {
        let first = match self.held.take() {
            Some(reply) => reply,
            None => self.replies.recv().await?,
        };
        Some(self.join_ready(first))
    }

    /// A reply that has already arrived, without waiting (joined like [`Answer::next`]).
    pub fn ready(&mut self) -> Option<Reply> {
        let first = self.held.take().or_else(|| self.replies.try_recv().ok())?;
        Some(self.join_ready(first))
    }

    fn join_ready(&mut self, mut reply: Reply) -> Reply {
        while let Ok(more) = self.replies.try_recv() {
            if let Some(apart) = reply.absorb(more) {
                self.held = Some(apart);
                break;
            }
        }
        reply
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.gateway.cancel(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::gateway::{Decoder, FetchRequest};

    fn fetch() -> Request {
        Request::Fetch(FetchRequest {
            url: "https://example.org/".into(),
            accept: "text/html".into(),
            timeout_ms: 1000,
            max_bytes: 1 << 20,
        })
    }

    fn frames(bytes: &[Bytes]) -> Vec<Announce> {
        let mut decoder = Decoder::default();
        for chunk in bytes {
            decoder.push(chunk);
        }
        std::iter::from_fn(|| decoder.decode().unwrap()).collect()
    }

    #[tokio::test]
    async fn requests_should_need_a_bridge_and_be_announced_after_hello() {
        let gateway = Gateway::default();
        assert_eq!(
            gateway.request(fetch()).await.unwrap_err(),
            GatewayError::NoBridge
        );
        let mut announced = gateway.attach();
        let mut answer = gateway.request(fetch()).await.unwrap();
        let mut seen = vec![announced.recv().await.unwrap()];
        seen.push(announced.recv().await.unwrap());
        let frames = frames(&seen);
        assert!(matches!(frames[0], Announce::Hello { version } if version == GATEWAY_VERSION));
        let Announce::Request { id, .. } = frames[1] else {
            panic!("{frames:?}")
        };
        let replies = gateway.open(id).unwrap();
        replies.send(Reply::End).await.unwrap();
        assert_eq!(answer.next().await, Some(Reply::End));
    }

    #[tokio::test]
    async fn replies_that_already_arrived_should_come_joined_and_in_order() {
        use protocol::gateway::ModelEvent::{ReasoningDelta, TextDelta, TextEnd};
        let gateway = Gateway::default();
        let mut announced = gateway.attach();
        let mut answer = gateway.request(fetch()).await.unwrap();
        let (_hello, request) = (announced.recv().await, announced.recv().await.unwrap());
        let Announce::Request { id, .. } = frames(&[request])[0].clone() else {
            panic!()
        };
        let replies = gateway.open(id).unwrap();
        for reply in [
            Reply::Model(ReasoningDelta("think".into())),
            Reply::Model(TextDelta("Hel".into())),
            Reply::Model(TextDelta("lo".into())),
            Reply::Model(TextEnd),
            Reply::Model(TextDelta("again".into())),
            Reply::End,
        ] {
            replies.send(reply).await.unwrap();
        }
        let mut seen = Vec::new();
        while let Some(reply) = answer.ready() {
            seen.push(reply);
        }
        assert_eq!(
            seen,
            [
                Reply::Model(ReasoningDelta("think".into())),
                Reply::Model(TextDelta("Hello".into())),
                Reply::Model(TextEnd),
                Reply::Model(TextDelta("again".into())),
                Reply::End,
            ]
        );
    }

    #[tokio::test]
    async fn dropping_an_answer_should_cancel_it() {
        let gateway = Gateway::default();
        let mut announced = gateway.attach();
        let answer = gateway.request(fetch()).await.unwrap();
        let (_hello, request) = (announced.recv().await, announced.recv().await.unwrap());
        let Announce::Request { id, .. } = frames(&[request])[0].clone() else {
            panic!()
        };
        drop(answer);
        let cancel = frames(&[announced.recv().await.unwrap()]);
        assert_eq!(cancel, [Announce::Cancel { id }]);
        assert!(
            gateway.open(id).is_none(),
            "a cancelled request has no answer stream"
        );

        // Once its answer stream is open, dropping ends the stream instead.
        let answer = gateway.request(fetch()).await.unwrap();
        let Announce::Request { id, .. } = frames(&[announced.recv().await.unwrap()])[0].clone()
        else {
            panic!()
        };
        let replies = gateway.open(id).unwrap();
        drop(answer);
        assert!(replies.is_closed());
        assert!(announced.try_recv().is_err(), "no cancel frame needed");
    }

    #[tokio::test]
    async fn a_new_announce_stream_should_carry_unanswered_requests() {
        let gateway = Gateway::default();
        let first = gateway.attach();
        let _answer = gateway.request(fetch()).await.unwrap();
        drop(first);
        let mut second = gateway.attach();
        let frames = frames(&[second.recv().await.unwrap(), second.recv().await.unwrap()]);
        assert!(matches!(frames[1], Announce::Request { .. }), "{frames:?}");
    }

    #[tokio::test]
    async fn oversized_requests_should_be_refused_before_sending() {
        let gateway = Gateway::default();
        let _announced = gateway.attach();
        let huge = Request::Fetch(FetchRequest {
            url: "x".repeat(gateway::MAX_FRAME_LEN + 1),
            accept: String::new(),
            timeout_ms: 0,
            max_bytes: 0,
        });
        assert!(matches!(
            gateway.request(huge).await,
            Err(GatewayError::TooLarge { .. })
        ));
    }
}
