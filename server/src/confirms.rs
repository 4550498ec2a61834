//! Confirmations held back while a connection's private messages to users
//! on other servers wait for those servers' answers.
//!
//! A `Confirm` is answered once everything the connection sent before it
//! is handled, so that every refusal of those messages comes before the
//! `Confirmed` (docs/PROTOCOL.md, 6.7a). A private message to another
//! server (scale-out) is handled only when that server answers, a NATS
//! round trip later: its refusal ("no user named …") used to come after the
//! `Confirmed`, so a script whose last line was refused exited 0, and a
//! refusal arriving while the next line waited was charged to that line.
//! Now the answer to a `Confirm` waits for the private messages sent before
//! it, each at most [`HOLD_AT_MOST`] (an answer the NATS thread could not
//! hand back must not hold a connection's confirmations for ever).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lanlink_transport::ConnId;

/// The longest a `Confirm` waits for answers from other servers: their
/// own wait ([`crate::nats::WHISPER_WAIT`]) and a margin for the queues
/// on the way.
pub const HOLD_AT_MOST: Duration = Duration::from_secs(5);

/// Tokens one connection may have waiting; with more, the waiting ones
/// are answered at once (in order) and the newest waits: memory stays
/// bounded whatever a peer sends, and only a peer that sends hundreds of
/// confirmations within seconds loses the guarantee.
pub const MAX_HELD: usize = 256;

/// What one connection waits for.
#[derive(Debug, Default)]
struct Waiting {
    /// Its private messages handed to other servers and not answered yet.
    whispers: u32,
    /// When the latest was handed over.
    last_sent: Option<Instant>,
    /// Its confirmations held back, oldest first.
    tokens: Vec<u64>,
    /// When the oldest held token is answered whatever comes.
    until: Option<Instant>,
}

/// Every connection's held confirmations.
#[derive(Debug, Default)]
pub struct HeldConfirms {
    waiting: HashMap<ConnId, Waiting>,
}

impl HeldConfirms {
    /// `conn`'s private message went to another server at `now`.
    pub fn whisper_sent(&mut self, conn: ConnId, now: Instant) {
        let w = self.waiting.entry(conn).or_default();
        w.whispers = w.whispers.saturating_add(1);
        w.last_sent = Some(now);
    }

    /// `conn` asks for a confirmation: the tokens to answer now, in order
    /// (empty while it waits for other servers).
    pub fn confirm(&mut self, conn: ConnId, token: u64, now: Instant) -> Vec<u64> {
        let Some(w) = self.waiting.get_mut(&conn).filter(|w| w.whispers > 0) else {
            return vec![token];
        };
        // The answers to wait for are due HOLD_AT_MOST after the latest
        // of those messages went out; past that they are not waited for.
        let due = w.last_sent.unwrap_or(now) + HOLD_AT_MOST;
        if due <= now {
            let mut tokens = self
                .waiting
                .remove(&conn)
                .map(|w| w.tokens)
                .unwrap_or_default();
            tokens.push(token);
            return tokens;
        }
        let mut now_answered = Vec::new();
        if w.tokens.len() >= MAX_HELD {
            now_answered = std::mem::take(&mut w.tokens);
            w.until = None;
        }
        w.tokens.push(token);
        w.until.get_or_insert(due);
        now_answered
    }

    /// One of `conn`'s private messages was answered (its refusal, if
    /// any, is queued): the tokens to answer now, in order.
    pub fn answered(&mut self, conn: ConnId) -> Vec<u64> {
        let Some(w) = self.waiting.get_mut(&conn) else {
            return Vec::new();
        };
        w.whispers = w.whispers.saturating_sub(1);
        if w.whispers > 0 {
            return Vec::new();
        }
        self.waiting
            .remove(&conn)
            .map(|w| w.tokens)
            .unwrap_or_default()
    }

    /// Connections whose held tokens waited long enough, with the tokens
    /// to answer now; their unanswered private messages are forgotten (an
    /// answer that comes later holds nothing back).
    pub fn expired(&mut self, now: Instant) -> Vec<(ConnId, Vec<u64>)> {
        let due: Vec<ConnId> = self
            .waiting
            .iter()
            .filter(|(_, w)| {
                w.until.is_some_and(|until| until <= now)
                    || (w.tokens.is_empty()
                        && w.last_sent
                            .is_some_and(|t| now.duration_since(t) >= HOLD_AT_MOST))
            })
            .map(|(conn, _)| *conn)
            .collect();
        due.into_iter()
            .filter_map(|conn| {
                let w = self.waiting.remove(&conn)?;
                (!w.tokens.is_empty()).then_some((conn, w.tokens))
            })
            .collect()
    }

    /// `conn` is gone.
    pub fn closed(&mut self, conn: ConnId) {
        self.waiting.remove(&conn);
    }

    /// Connections with something waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirm_waits_for_the_private_messages_before_it() {
        let (t0, a, b) = (Instant::now(), ConnId(1), ConnId(2));
        let mut held = HeldConfirms::default();
        // Nothing sent: answered at once.
        assert_eq!(held.confirm(a, 1, t0), vec![1]);
        held.whisper_sent(a, t0);
        held.whisper_sent(a, t0);
        assert!(held.confirm(a, 2, t0).is_empty());
        assert!(held.confirm(a, 3, t0).is_empty());
        // Another connection is not held up.
        assert_eq!(held.confirm(b, 9, t0), vec![9]);
        assert!(held.answered(a).is_empty());
        assert_eq!(held.answered(a), vec![2, 3]);
        assert_eq!(held.len(), 0);
        // A late answer (after the wait ran out) holds nothing back.
        assert!(held.answered(a).is_empty());
        assert_eq!(held.confirm(a, 4, t0), vec![4]);
    }

    #[test]
    fn a_lost_answer_holds_a_confirm_at_most_a_while() {
        let (t0, a) = (Instant::now(), ConnId(1));
        let mut held = HeldConfirms::default();
        held.whisper_sent(a, t0);
        let asked = t0 + Duration::from_secs(2);
        assert!(held.confirm(a, 7, asked).is_empty());
        assert!(held
            .expired(t0 + HOLD_AT_MOST - Duration::from_millis(1))
            .is_empty());
        assert_eq!(held.expired(t0 + HOLD_AT_MOST), vec![(a, vec![7])]);
        assert_eq!(held.len(), 0);
        assert_eq!(held.confirm(a, 8, asked), vec![8]);
        // A private message whose answer never came, and no confirmation:
        // forgotten after the same while.
        held.whisper_sent(a, t0);
        assert!(held.expired(t0 + HOLD_AT_MOST).is_empty());
        assert_eq!(held.len(), 0);
        // A confirmation asked long after the message went: it waits
        // HOLD_AT_MOST from the message's sending, not from its own.
        held.whisper_sent(a, t0);
        let late = t0 + Duration::from_secs(4);
        assert!(held.confirm(a, 9, late).is_empty());
        assert_eq!(held.expired(t0 + HOLD_AT_MOST), vec![(a, vec![9])]);
    }

    #[test]
    fn held_tokens_are_bounded_and_stay_in_order() {
        let (t0, a) = (Instant::now(), ConnId(1));
        let mut held = HeldConfirms::default();
        held.whisper_sent(a, t0);
        for token in 0..MAX_HELD as u64 {
            assert!(held.confirm(a, token, t0).is_empty());
        }
        let early = held.confirm(a, 1_000, t0);
        assert_eq!(early, (0..MAX_HELD as u64).collect::<Vec<_>>());
        assert_eq!(held.answered(a), vec![1_000]);
        held.whisper_sent(a, t0);
        held.closed(a);
        assert_eq!(held.len(), 0);
    }
}
