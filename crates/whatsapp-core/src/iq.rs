//! Matching IQ requests with their responses, with deadlines on a clock the caller passes in.
//!
//! The driver sends the stanza, keeps the id it got from [`IqTracker::register`], and feeds every incoming
//! `<iq type="result|error">` to [`IqTracker::resolve`]. [`IqTracker::expire`] reports requests whose deadline has
//! passed; nothing here reads a clock or sleeps.

use std::collections::HashMap;
use std::time::Duration;

use rand_core::RngCore;
use whatsapp_binary::Node;

/// The default time to wait for an IQ response (protocol-facts §3.3).
pub const DEFAULT_IQ_TIMEOUT: Duration = Duration::from_secs(75);

/// A point in time on the driver's monotonic clock, as the duration since the driver started.
pub type Instant = Duration;

/// How an IQ ended.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum IqOutcome {
    /// The server answered `type="result"`.
    Result(Node),
    /// The server answered `type="error"`; `code` and `text` come from its `<error>` child.
    Error {
        /// The error code, 0 when absent.
        code: u16,
        /// The error text, empty when absent.
        text: String,
        /// The whole response.
        node: Node,
    },
}

/// The requests waiting for a response.
#[derive(Debug)]
pub struct IqTracker<T> {
    prefix: String,
    counter: u64,
    pending: HashMap<String, (Instant, T)>,
}

impl<T> IqTracker<T> {
    /// A tracker whose ids start with a random prefix, so ids of two connections never collide
    /// (`"<rand>.<rand>-<counter>"`, protocol-facts §3.3).
    pub fn new(rng: &mut impl RngCore) -> IqTracker<T> {
        let prefix = format!("{}.{}-", rng.next_u32() % 100_000, rng.next_u32() % 100_000);
        IqTracker {
            prefix,
            counter: 0,
            pending: HashMap::new(),
        }
    }

    /// Allocates an id for a request that expires at `deadline`; `waiter` is handed back when it resolves.
    pub fn register(&mut self, deadline: Instant, waiter: T) -> String {
        self.counter += 1;
        let id = format!("{}{}", self.prefix, self.counter);
        self.pending.insert(id.clone(), (deadline, waiter));
        id
    }

    /// Matches a response to its request. Returns `None` for stanzas that answer nothing we asked (an `iq` from
    /// the server that is a request of its own, or a late answer after expiry).
    pub fn resolve(&mut self, node: &Node) -> Option<(T, IqOutcome)> {
        if node.tag != "iq" {
            return None;
        }
        let kind = node.optional_str_attr("type")?;
        if kind != "result" && kind != "error" {
            return None;
        }
        let id = node.optional_str_attr("id")?;
        let (_, waiter) = self.pending.remove(id)?;
        let outcome = if kind == "result" {
            IqOutcome::Result(node.clone())
        } else {
            let error = node.child("error");
            IqOutcome::Error {
                code: error
                    .and_then(|e| e.optional_str_attr("code"))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0),
                text: error
                    .and_then(|e| e.optional_str_attr("text"))
                    .unwrap_or_default()
                    .to_owned(),
                node: node.clone(),
            }
        };
        Some((waiter, outcome))
    }

    /// Removes and returns the requests whose deadline is at or before `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<(String, T)> {
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, (deadline, _))| *deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|id| self.pending.remove(&id).map(|(_, w)| (id, w)))
            .collect()
    }

    /// The earliest deadline, for the driver's timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|(deadline, _)| *deadline).min()
    }

    /// Drops every pending request (the connection is gone) and returns their waiters.
    pub fn drain(&mut self) -> Vec<(String, T)> {
        self.pending.drain().map(|(id, (_, w))| (id, w)).collect()
    }

    /// Number of requests waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no request is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn tracker() -> IqTracker<u32> {
        IqTracker::new(&mut rand::rngs::StdRng::seed_from_u64(7))
    }

    fn response(id: &str, kind: &'static str) -> Node {
        Node::new("iq").attr("id", id.to_owned()).attr("type", kind)
    }

    #[test]
    fn result_resolves_its_request_once() {
        let mut iqs = tracker();
        let a = iqs.register(Duration::from_secs(10), 1);
        let b = iqs.register(Duration::from_secs(10), 2);
        assert_ne!(a, b);
        let (waiter, outcome) = iqs.resolve(&response(&b, "result")).unwrap();
        assert_eq!(waiter, 2);
        assert!(matches!(outcome, IqOutcome::Result(_)));
        assert!(
            iqs.resolve(&response(&b, "result")).is_none(),
            "a second answer matches nothing"
        );
        assert_eq!(iqs.len(), 1);
    }

    #[test]
    fn error_carries_code_and_text() {
        let mut iqs = tracker();
        let id = iqs.register(Duration::from_secs(10), 9);
        let node = response(&id, "error").children([Node::new("error")
            .attr("code", "404")
            .attr("text", "item-not-found")]);
        let (_, outcome) = iqs.resolve(&node).unwrap();
        match outcome {
            IqOutcome::Error { code, text, .. } => assert_eq!((code, text.as_str()), (404, "item-not-found")),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn server_requests_are_not_responses() {
        let mut iqs = tracker();
        let id = iqs.register(Duration::from_secs(10), 1);
        assert!(iqs.resolve(&response(&id, "get")).is_none());
        assert!(
            iqs.resolve(&Node::new("message").attr("id", id.clone()).attr("type", "result"))
                .is_none()
        );
        assert_eq!(iqs.len(), 1);
    }

    #[test]
    fn expiry_follows_the_passed_in_clock() {
        let mut iqs = tracker();
        let early = iqs.register(Duration::from_secs(5), 1);
        let _late = iqs.register(Duration::from_secs(75), 2);
        assert_eq!(iqs.next_deadline(), Some(Duration::from_secs(5)));
        assert!(iqs.expire(Duration::from_secs(4)).is_empty());
        assert_eq!(iqs.expire(Duration::from_secs(5)), vec![(early, 1)]);
        assert_eq!(iqs.next_deadline(), Some(Duration::from_secs(75)));
    }
}
