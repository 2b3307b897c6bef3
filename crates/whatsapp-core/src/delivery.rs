//! When a received message counts as handled, and when its `<ack>` and delivery receipt may go out.
//!
//! A decrypted message is committed to the decrypt buffer with its Signal changes, emitted to the application, and
//! counted handled only once the application has finished with it. Until then the stanza's `<ack>` and delivery
//! receipt are held back, as whatsmeow does with `SynchronousAck` (`receipt.go` maybeDeferredAck, `message.go`
//! decryptMessages: the receipt goes out after the event handlers returned). The server redelivers every message
//! it holds no ack for, so a process that stops while the application handles a message is given that message
//! again after it restarts, and emits it from the buffer: a crash at any instant loses nothing.
//!
//! [`Deliveries`] is the bookkeeping, without I/O: which emitted messages the application still holds (by payload
//! hash), which stanzas' replies wait for them, which replies are ready to send, and which handled messages still
//! have their plaintext in the decrypt buffer (cleared later, with another write). The client keeps one for its
//! whole life, across connections.

use std::collections::HashSet;

use whatsapp_binary::Node;

/// The decrypt buffer's key of one payload: a hash of its ciphertext, sender and chat.
pub type PayloadHash = [u8; 32];

/// What is known of a payload whose plaintext the decrypt buffer still holds, when the server delivers it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redelivery {
    /// Not emitted by this process (it stopped after the commit): emit it from the buffer.
    Emit,
    /// Emitted and still with the application: emit nothing, and answer this stanza once it is handled.
    Wait,
    /// Handled already: answer at once, emit nothing.
    Answer,
}

/// Replies of one stanza, sent once none of its payloads is held by the application any more.
#[derive(Debug)]
struct Waiting {
    hashes: Vec<PayloadHash>,
    replies: Vec<Node>,
}

/// Emitted messages the application has not finished, the replies that wait for them, and handled messages
/// whose plaintext is still buffered.
#[derive(Debug, Default)]
pub struct Deliveries {
    in_flight: HashSet<PayloadHash>,
    waiting: Vec<Waiting>,
    ready: Vec<Node>,
    handled: Vec<PayloadHash>,
    /// Counts the hashes ever added to `handled`, so a caller can tell whether there is news since it last
    /// cleared.
    generation: u64,
}

impl Deliveries {
    /// What to do with a payload found in the decrypt buffer with its plaintext.
    pub fn redelivery(&self, hash: &PayloadHash) -> Redelivery {
        if self.in_flight.contains(hash) {
            Redelivery::Wait
        } else if self.handled.contains(hash) {
            Redelivery::Answer
        } else {
            Redelivery::Emit
        }
    }

    /// The message with this payload is being emitted: the application holds it until [`Deliveries::finished`].
    pub fn emitted(&mut self, hash: PayloadHash) {
        self.in_flight.insert(hash);
    }

    /// The application finished with a message (or never had it: a payload handled inside the client, or an
    /// event nobody listens to). Its plaintext may now be cleared, and replies that waited only for it are ready
    /// ([`Deliveries::take_ready`]). Returns whether any became ready.
    pub fn finished(&mut self, hash: PayloadHash) -> bool {
        self.in_flight.remove(&hash);
        if !self.handled.contains(&hash) {
            self.handled.push(hash);
            self.generation += 1;
        }
        let mut any = false;
        let mut i = 0;
        while i < self.waiting.len() {
            let waiting = &mut self.waiting[i];
            waiting.hashes.retain(|h| *h != hash);
            if waiting.hashes.is_empty() {
                let done = self.waiting.swap_remove(i);
                self.ready.extend(done.replies);
                any = true;
            } else {
                i += 1;
            }
        }
        any
    }

    /// Holds a stanza's `replies` until every payload of `hashes` still with the application is finished.
    /// Returns them at once when none is (the application may have finished before the stanza was answered).
    #[must_use]
    pub fn reply_after(&mut self, hashes: &[PayloadHash], replies: Vec<Node>) -> Vec<Node> {
        let hashes: Vec<PayloadHash> = hashes
            .iter()
            .filter(|h| self.in_flight.contains(*h))
            .copied()
            .collect();
        if hashes.is_empty() {
            return replies;
        }
        self.waiting.push(Waiting { hashes, replies });
        Vec::new()
    }

    /// Replies whose messages the application finished, in the order they became ready.
    pub fn take_ready(&mut self) -> Vec<Node> {
        std::mem::take(&mut self.ready)
    }

    /// The connection the held replies were for has ended: they are dropped, as the server redelivers those
    /// messages on the next connection, whose stanzas are answered instead. Messages still with the application
    /// stay in flight.
    pub fn connection_ended(&mut self) {
        self.waiting.clear();
        self.ready.clear();
    }

    /// Handled messages whose plaintext is still in the decrypt buffer, oldest first.
    pub fn handled(&self) -> &[PayloadHash] {
        &self.handled
    }

    /// The first `count` of [`Deliveries::handled`] were cleared from the buffer.
    pub fn cleared(&mut self, count: usize) {
        self.handled.drain(..count.min(self.handled.len()));
    }

    /// Changes whenever a hash is added to [`Deliveries::handled`].
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// How many emitted messages the application still holds.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(id: &'static str) -> Node {
        Node::new("ack").attr("id", id)
    }

    fn ids(nodes: &[Node]) -> Vec<&str> {
        nodes
            .iter()
            .map(|n| n.optional_str_attr("id").unwrap_or(""))
            .collect()
    }

    #[test]
    fn replies_wait_until_the_application_finished_every_payload() {
        let mut d = Deliveries::default();
        d.emitted([1; 32]);
        d.emitted([2; 32]);
        assert!(d.reply_after(&[[1; 32], [2; 32]], vec![reply("a")]).is_empty());
        assert!(!d.finished([1; 32]));
        assert!(d.take_ready().is_empty());
        assert!(d.finished([2; 32]));
        assert_eq!(ids(&d.take_ready()), ["a"]);
        assert_eq!(d.handled(), &[[1; 32], [2; 32]]);
        assert_eq!(d.in_flight(), 0);
    }

    #[test]
    fn a_message_finished_before_its_stanza_is_answered_is_answered_at_once() {
        let mut d = Deliveries::default();
        d.emitted([1; 32]);
        d.finished([1; 32]);
        assert_eq!(ids(&d.reply_after(&[[1; 32]], vec![reply("a")])), ["a"]);
        assert_eq!(ids(&d.reply_after(&[], vec![reply("b")])), ["b"]);
    }

    #[test]
    fn a_redelivery_is_emitted_held_or_answered_by_what_became_of_the_first() {
        let mut d = Deliveries::default();
        assert_eq!(d.redelivery(&[1; 32]), Redelivery::Emit);
        d.emitted([1; 32]);
        assert_eq!(d.redelivery(&[1; 32]), Redelivery::Wait);
        // The first delivery's connection ended before the application finished: the redelivery's ack waits.
        assert!(d.reply_after(&[[1; 32]], vec![reply("first")]).is_empty());
        d.connection_ended();
        assert!(d.reply_after(&[[1; 32]], vec![reply("second")]).is_empty());
        d.finished([1; 32]);
        assert_eq!(ids(&d.take_ready()), ["second"]);
        assert_eq!(d.redelivery(&[1; 32]), Redelivery::Answer);
        d.cleared(1);
        assert!(d.handled().is_empty());
        // Cleared from the buffer: the caller no longer finds its plaintext, so this is not asked again.
        assert_eq!(d.redelivery(&[1; 32]), Redelivery::Emit);
    }

    #[test]
    fn clearing_takes_the_oldest_and_keeps_what_came_since() {
        let mut d = Deliveries::default();
        d.finished([1; 32]);
        d.finished([2; 32]);
        let generation = d.generation();
        d.finished([2; 32]);
        assert_eq!(d.generation(), generation, "a hash is counted once");
        let snapshot = d.handled().len();
        d.finished([3; 32]);
        d.cleared(snapshot);
        assert_eq!(d.handled(), &[[3; 32]]);
        d.cleared(10);
        assert!(d.handled().is_empty());
    }
}
