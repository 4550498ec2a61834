//! Other servers' room messages in the stream's order.
//!
//! A message reaches this server twice: live by core NATS as its origin
//! publishes it, and from [`HISTORY_STREAM`](super::HISTORY_STREAM) once
//! JetStream has stored it. Live copies arrive in each origin's own order,
//! and two origins' messages can cross in different orders at different
//! servers; the stream has one order for everyone. So while the stream is
//! followed, a live copy waits here for its stream copy and is shown with
//! it, in the stream's order; one the stream has not brought within
//! [`HOLD`] (JetStream electing a leader, a node down) is shown anyway, so
//! a JetStream outage costs remote chat that much latency, not its flow.
//! A server's own users' messages come back the same way and are handed
//! to the hub in the same order (`NatsEvent::OwnSaid`), which shows them
//! to the other local members then; the hub holds them at most [`HOLD`]
//! itself, and not at all while NATS is unreachable (local service never
//! waits on NATS).

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

/// The longest a live copy waits for the stream's.
pub const HOLD: Duration = Duration::from_millis(500);

/// Live copies held at once; past it the oldest is let go at once.
const MAX_HELD: usize = 4096;

/// A message's identity: its origin server and sequence number.
pub(super) type Key = (String, u64);

/// Live copies (`T`: the message as received) waiting for the stream.
pub(super) struct Holding<T> {
    order: VecDeque<(Instant, Key, T)>,
    waiting: HashSet<Key>,
}

impl<T> Default for Holding<T> {
    fn default() -> Self {
        Holding {
            order: VecDeque::new(),
            waiting: HashSet::new(),
        }
    }
}

impl<T> Holding<T> {
    /// Holds a live copy; returns what must be let go at once to stay
    /// within [`MAX_HELD`].
    pub(super) fn hold(&mut self, key: Key, payload: T, now: Instant) -> Vec<T> {
        let mut out = Vec::new();
        if !self.waiting.insert(key.clone()) {
            return out;
        }
        self.order.push_back((now + HOLD, key, payload));
        while self.waiting.len() > MAX_HELD {
            match self.order.pop_front() {
                Some((_, k, p)) => {
                    if self.waiting.remove(&k) {
                        out.push(p);
                    }
                }
                None => break,
            }
        }
        out
    }

    /// The stream brought `key`: its live copy is no longer needed.
    pub(super) fn arrived(&mut self, key: &Key) {
        self.waiting.remove(key);
    }

    /// Live copies whose wait is over at `now`, oldest first (all of them
    /// when `all`, as when the stream is no longer followed).
    pub(super) fn due(&mut self, now: Instant, all: bool) -> Vec<T> {
        let mut out = Vec::new();
        while let Some((at, _, _)) = self.order.front() {
            if !all && *at > now {
                break;
            }
            if let Some((_, k, p)) = self.order.pop_front() {
                if self.waiting.remove(&k) {
                    out.push(p);
                }
            }
        }
        out
    }

    /// When the oldest copy still waiting is due.
    pub(super) fn next_due(&mut self) -> Option<Instant> {
        while let Some((at, k, _)) = self.order.front() {
            if self.waiting.contains(k) {
                return Some(*at);
            }
            self.order.pop_front();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn key(server: &str, seq: u64) -> Key {
        (server.to_owned(), seq)
    }

    #[test]
    fn live_copies_wait_for_the_stream_and_are_let_go_when_it_is_slow() {
        let t0 = Instant::now();
        let mut h = Holding::<Bytes>::default();
        assert!(h.hold(key("a", 1), Bytes::from("a1"), t0).is_empty());
        assert!(h.hold(key("b", 1), Bytes::from("b1"), t0).is_empty());
        assert!(h.hold(key("a", 1), Bytes::from("a1"), t0).is_empty());
        assert_eq!(h.next_due(), Some(t0 + HOLD));
        // The stream brings a1: only b1 is still waiting.
        h.arrived(&key("a", 1));
        assert!(h.due(t0 + HOLD / 2, false).is_empty());
        assert_eq!(h.due(t0 + HOLD, false), vec![Bytes::from("b1")]);
        assert_eq!(h.next_due(), None);
        // When the stream is no longer followed, everything goes at once.
        h.hold(key("c", 7), Bytes::from("c7"), t0);
        assert_eq!(h.due(t0, true), vec![Bytes::from("c7")]);
    }

    #[test]
    fn holding_is_bounded() {
        let t0 = Instant::now();
        let mut h = Holding::<Bytes>::default();
        let mut let_go = 0;
        for seq in 0..(MAX_HELD as u64 + 10) {
            let_go += h.hold(key("a", seq), Bytes::from("x"), t0).len();
        }
        assert_eq!(let_go, 10);
        assert_eq!(h.waiting.len(), MAX_HELD);
    }
}
