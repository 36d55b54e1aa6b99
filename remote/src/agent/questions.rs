//! Questions the agent's `question` tool is waiting on: announced on the bus
//! (`question.asked`), listed by `GET /question`, answered by
//! `POST /question/:id/reply {answers}` or dismissed by `/reject`. An abort dismisses its
//! session's questions.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::opencode::event::BusEvent;
use crate::opencode::question::QuestionRequest;
use crate::session::bus::Bus;
use crate::session::ids::{self, Order};

/// The user's answer: one list of chosen labels per question, or `None` when dismissed.
pub type Answers = Option<Vec<Vec<String>>>;

struct Pending {
    request: QuestionRequest,
    tx: oneshot::Sender<Answers>,
}

/// The pending questions of this stub.
#[derive(Default)]
pub struct Questions {
    pending: Mutex<BTreeMap<String, Pending>>,
}

impl std::fmt::Debug for Questions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Questions")
            .field("pending", &self.lock().len())
            .finish()
    }
}

impl Questions {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Pending>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Announces `request` (its id is given here) and returns the id and the answer to come.
    pub fn ask(
        &self,
        bus: &Bus,
        mut request: QuestionRequest,
    ) -> (String, oneshot::Receiver<Answers>) {
        request.id = ids::new("que", Order::Ascending);
        let id = request.id.clone();
        let (tx, rx) = oneshot::channel();
        self.lock().insert(
            id.clone(),
            Pending {
                request: request.clone(),
                tx,
            },
        );
        bus.emit(&BusEvent::QuestionAsked(request));
        (id, rx)
    }

    /// Pending questions, oldest first.
    pub fn list(&self) -> Vec<QuestionRequest> {
        self.lock().values().map(|p| p.request.clone()).collect()
    }

    /// Answers a question; `false` when it is not pending.
    pub fn reply(&self, bus: &Bus, id: &str, answers: Vec<Vec<String>>) -> bool {
        let Some(pending) = self.lock().remove(id) else {
            return false;
        };
        bus.emit(&BusEvent::QuestionReplied {
            session_id: pending.request.session_id.clone(),
            request_id: id.to_owned(),
            answers: answers.clone(),
        });
        let _ignored = pending.tx.send(Some(answers));
        true
    }

    /// Dismisses a question; `false` when it is not pending.
    pub fn reject(&self, bus: &Bus, id: &str) -> bool {
        let Some(pending) = self.lock().remove(id) else {
            return false;
        };
        bus.emit(&BusEvent::QuestionRejected {
            session_id: pending.request.session_id.clone(),
            request_id: id.to_owned(),
        });
        let _ignored = pending.tx.send(None);
        true
    }

    /// Dismisses every question of a session (abort).
    pub fn reject_session(&self, bus: &Bus, session_id: &str) {
        let ids: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, p)| p.request.session_id == session_id)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.reject(bus, &id);
        }
    }

    /// Forgets a question without an answer (its tool went away).
    pub fn withdraw(&self, id: &str) {
        self.lock().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opencode::question::{QuestionInfo, QuestionOption};

    fn request() -> QuestionRequest {
        QuestionRequest {
            id: String::new(),
            session_id: "ses_1".into(),
            questions: vec![QuestionInfo {
                question: "Proceed?".into(),
                header: "Proceed".into(),
                options: vec![QuestionOption {
                    label: "Yes".into(),
                    description: "Go".into(),
                }],
                multiple: None,
                custom: None,
            }],
            tool: None,
        }
    }

    #[tokio::test]
    async fn questions_should_be_listed_until_answered_or_dismissed() {
        let bus = Bus::new("/d", "p", "w");
        let mut events = bus.subscribe();
        let questions = Questions::default();
        let (id, answer) = questions.ask(&bus, request());
        assert!(id.starts_with("que_"));
        let asked = events.recv().await.unwrap();
        assert!(
            std::str::from_utf8(&asked.instance)
                .unwrap()
                .contains("\"question.asked\"")
        );
        assert_eq!(questions.list().len(), 1);
        assert!(questions.reply(&bus, &id, vec![vec!["Yes".into()]]));
        assert_eq!(answer.await.unwrap(), Some(vec![vec!["Yes".to_owned()]]));
        assert!(questions.list().is_empty());
        assert!(
            !questions.reply(&bus, &id, Vec::new()),
            "answered once only"
        );
        let (_, dismissed) = questions.ask(&bus, request());
        questions.reject_session(&bus, "ses_1");
        assert_eq!(dismissed.await.unwrap(), None);
    }
}
