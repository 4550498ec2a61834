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
//! Now the answer to a `Confirm` waits for the answers to the private
//! messages sent before it, each at most [`HOLD_AT_MOST`] from its sending
//! (an answer the NATS thread could not hand back must not hold a
//! connection's confirmations for ever). Each private message is known by
//! an id, so that a late answer to one given up on releases nothing it was
//! not waited for.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use lanlink_transport::ConnId;

/// How long the answer to one private message is waited for: the other
/// server's own wait ([`crate::nats::WHISPER_WAIT`]) and a margin for the
/// queues on the way.
pub const HOLD_AT_MOST: Duration = Duration::from_secs(5);

/// Tokens one connection may have waiting; with more, the waiting ones
/// are answered at once (in order) and the newest waits: memory stays
/// bounded whatever a peer sends, and only a peer that sends hundreds of
/// confirmations within seconds loses the guarantee.
pub const MAX_HELD: usize = 256;

/// Private messages to other servers one connection may have waiting for
/// answers (the NATS link bounds them too): past this, the oldest is
/// given up on.
const MAX_PENDING: usize = 1024;

/// What one connection waits for.
#[derive(Debug, Default)]
struct Waiting {
    /// Its private messages handed to other servers and not answered yet,
    /// by id, with when each is given up on.
    pending: BTreeMap<u64, Instant>,
    /// Its confirmations held back, oldest first, each with the id of the
    /// last private message sent before it.
    tokens: VecDeque<(u64, u64)>,
}

impl Waiting {
    /// Gives up on the answers due by `now`, then takes the tokens whose
    /// private messages are all answered (or given up on), in order.
    fn release(&mut self, now: Instant, out: &mut Vec<u64>) {
        self.pending.retain(|_, due| *due > now);
        let oldest = self.pending.keys().next().copied();
        while let Some(&(token, after)) = self.tokens.front() {
            if oldest.is_some_and(|id| id <= after) {
                break;
            }
            out.push(token);
            self.tokens.pop_front();
        }
    }

    fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.tokens.is_empty()
    }
}

/// Every connection's held confirmations.
#[derive(Debug, Default)]
pub struct HeldConfirms {
    waiting: HashMap<ConnId, Waiting>,
    next_id: u64,
}

impl HeldConfirms {
    /// `conn`'s private message went to another server at `now`: the id
    /// its answer is to come back with.
    pub fn whisper_sent(&mut self, conn: ConnId, now: Instant) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let w = self.waiting.entry(conn).or_default();
        if w.pending.len() >= MAX_PENDING {
            w.pending.pop_first();
        }
        w.pending.insert(id, now + HOLD_AT_MOST);
        id
    }

    /// `conn` asks for a confirmation: the tokens to answer now, in order
    /// (empty while it waits for other servers).
    pub fn confirm(&mut self, conn: ConnId, token: u64, now: Instant) -> Vec<u64> {
        let Some(w) = self.waiting.get_mut(&conn) else {
            return vec![token];
        };
        let mut out = Vec::new();
        w.release(now, &mut out);
        let Some(&after) = w.pending.keys().next_back() else {
            // Nothing to wait for (and nothing held: released above).
            out.push(token);
            self.waiting.remove(&conn);
            return out;
        };
        if w.tokens.len() >= MAX_HELD {
            out.extend(w.tokens.drain(..).map(|(t, _)| t));
        }
        w.tokens.push_back((token, after));
        out
    }

    /// The answer to `conn`'s private message `id` came (its refusal, if
    /// any, is queued): the tokens to answer now, in order.
    pub fn answered(&mut self, conn: ConnId, id: u64, now: Instant) -> Vec<u64> {
        let Some(w) = self.waiting.get_mut(&conn) else {
            return Vec::new();
        };
        w.pending.remove(&id);
        let mut out = Vec::new();
        w.release(now, &mut out);
        if w.is_idle() {
            self.waiting.remove(&conn);
        }
        out
    }

    /// The tokens whose private messages' answers are all in or given up
    /// on by `now`, per connection.
    pub fn expired(&mut self, now: Instant) -> Vec<(ConnId, Vec<u64>)> {
        let mut due = Vec::new();
        self.waiting.retain(|conn, w| {
            let mut out = Vec::new();
            w.release(now, &mut out);
            if !out.is_empty() {
                due.push((*conn, out));
            }
            !w.is_idle()
        });
        due
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

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_confirm_waits_for_the_private_messages_before_it() {
        let (t0, a, b) = (Instant::now(), ConnId(1), ConnId(2));
        let mut held = HeldConfirms::default();
        // Nothing sent: answered at once.
        assert_eq!(held.confirm(a, 1, t0), vec![1]);
        let x = held.whisper_sent(a, t0);
        let y = held.whisper_sent(a, t0);
        assert!(held.confirm(a, 2, t0).is_empty());
        assert!(held.confirm(a, 3, t0).is_empty());
        // Another connection is not held up.
        assert_eq!(held.confirm(b, 9, t0), vec![9]);
        assert!(held.answered(a, y, t0).is_empty());
        assert_eq!(held.answered(a, x, t0), vec![2, 3]);
        assert_eq!(held.len(), 0);
        // A late answer holds nothing back.
        assert!(held.answered(a, x, t0).is_empty());
        assert_eq!(held.confirm(a, 4, t0), vec![4]);
    }

    /// A confirmation waits only for the private messages sent before
    /// it: the one sent after does not hold it, and an earlier one's late
    /// answer does not release a later confirmation (helper-77: both
    /// happened when answers were counted per connection).
    #[test]
    fn each_confirm_waits_for_its_own_private_messages() {
        let (t0, a) = (Instant::now(), ConnId(1));
        let mut held = HeldConfirms::default();
        let x1 = held.whisper_sent(a, t0);
        assert!(held.confirm(a, 1, t0).is_empty());
        let x2 = held.whisper_sent(a, t0 + 2500 * MS);
        assert!(held.confirm(a, 2, t0 + 2500 * MS).is_empty());
        // x1 given up on at 5 s: token 1 goes, token 2 waits for x2.
        assert_eq!(held.expired(t0 + HOLD_AT_MOST), vec![(a, vec![1])]);
        let x3 = held.whisper_sent(a, t0 + 5200 * MS);
        assert!(held.confirm(a, 3, t0 + 5200 * MS).is_empty());
        // x1's late answer releases nothing; x2's releases token 2 only.
        assert!(held.answered(a, x1, t0 + 5400 * MS).is_empty());
        assert_eq!(held.answered(a, x2, t0 + 5500 * MS), vec![2]);
        // Token 3 waits until x3's own 5 s, not the first message's.
        assert!(held.expired(t0 + 7 * HOLD_AT_MOST / 5).is_empty());
        assert_eq!(held.expired(t0 + 10_200 * MS), vec![(a, vec![3])]);
        assert_eq!(held.len(), 0);
        assert!(held.answered(a, x3, t0 + 11 * HOLD_AT_MOST).is_empty());
    }

    #[test]
    fn a_lost_answer_holds_a_confirm_at_most_a_while() {
        let (t0, a) = (Instant::now(), ConnId(1));
        let mut held = HeldConfirms::default();
        held.whisper_sent(a, t0);
        let asked = t0 + Duration::from_secs(2);
        assert!(held.confirm(a, 7, asked).is_empty());
        assert!(held.expired(t0 + HOLD_AT_MOST - MS).is_empty());
        assert_eq!(held.expired(t0 + HOLD_AT_MOST), vec![(a, vec![7])]);
        assert_eq!(held.len(), 0);
        assert_eq!(held.confirm(a, 8, asked), vec![8]);
        // A private message whose answer never came, and no confirmation:
        // forgotten after the same while.
        held.whisper_sent(a, t0);
        assert!(held.expired(t0 + HOLD_AT_MOST).is_empty());
        assert_eq!(held.len(), 0);
        // A confirmation asked after the answer was due: at once.
        held.whisper_sent(a, t0);
        assert_eq!(held.confirm(a, 9, t0 + HOLD_AT_MOST), vec![9]);
    }

    #[test]
    fn held_tokens_are_bounded_and_stay_in_order() {
        let (t0, a) = (Instant::now(), ConnId(1));
        let mut held = HeldConfirms::default();
        let x = held.whisper_sent(a, t0);
        for token in 0..MAX_HELD as u64 {
            assert!(held.confirm(a, token, t0).is_empty());
        }
        let early = held.confirm(a, 1_000, t0);
        assert_eq!(early, (0..MAX_HELD as u64).collect::<Vec<_>>());
        assert_eq!(held.answered(a, x, t0), vec![1_000]);
        for _ in 0..MAX_PENDING + 10 {
            held.whisper_sent(a, t0);
        }
        assert_eq!(held.waiting[&a].pending.len(), MAX_PENDING);
        held.closed(a);
        assert_eq!(held.len(), 0);
    }
}
