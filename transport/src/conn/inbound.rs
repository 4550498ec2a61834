//! Bytes a server has read from its peers and handed to the application,
//! which has not let go of them yet: [`InboundPermit`], [`InboundBudget`].
//!
//! The application's event channel is bounded in events, and an event can
//! carry a frame of up to `max_payload` bytes: without a byte count, peers
//! sending fast could make the server hold the channel's capacity times a
//! large frame. Each frame handed over counts against its connection's
//! share and the server's total until its permit is dropped; a connection
//! over either is not read (TCP slows its peer down) until the application
//! catches up. A connection holding nothing may always hand over one frame,
//! so a peer that sends a little (a chat line) is never held up behind
//! peers that send a lot.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The limits and the running total of one server.
#[derive(Debug)]
pub(crate) struct InboundBudget {
    used: AtomicUsize,
    limit: usize,
    per_conn: usize,
}

impl InboundBudget {
    pub(crate) fn new(limit: usize, per_conn: usize) -> Arc<InboundBudget> {
        Arc::new(InboundBudget {
            used: AtomicUsize::new(0),
            limit: limit.max(1),
            per_conn: per_conn.max(1),
        })
    }

    /// Whether a connection already holding `held` bytes may hand over
    /// another frame.
    pub(crate) fn may_take(&self, held: &ConnInbound) -> bool {
        let held = held.0.load(Ordering::Acquire);
        held == 0 || (held < self.per_conn && self.used.load(Ordering::Acquire) < self.limit)
    }

    /// Counts `bytes` of one frame from the connection `conn` until the
    /// permit is dropped.
    pub(crate) fn take(self: &Arc<Self>, conn: &ConnInbound, bytes: usize) -> InboundPermit {
        self.used.fetch_add(bytes, Ordering::AcqRel);
        conn.0.fetch_add(bytes, Ordering::AcqRel);
        InboundPermit {
            held: Some(Held {
                bytes,
                conn: conn.0.clone(),
                budget: self.clone(),
            }),
        }
    }

    /// Bytes counted now, from every connection.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// One connection's bytes counted against the budget.
#[derive(Debug, Default, Clone)]
pub(crate) struct ConnInbound(Arc<AtomicUsize>);

/// Keeps one received frame's bytes counted against the server's inbound
/// budget ([`ServerConfig::max_inbound_bytes`](crate::ServerConfig::max_inbound_bytes))
/// until it is dropped, which happens with its [`Event`](crate::Event)
/// unless the application moves it out.
///
/// A server stops reading a connection while the frames it handed over
/// and still counted pass its share, so an application that keeps permits
/// holds that peer back; one that drops each event once handled never
/// notices them. Frames a client receives carry a permit that counts
/// nothing.
#[derive(Debug, Default)]
pub struct InboundPermit {
    held: Option<Held>,
}

#[derive(Debug)]
struct Held {
    bytes: usize,
    conn: Arc<AtomicUsize>,
    budget: Arc<InboundBudget>,
}

impl InboundPermit {
    /// A permit that counts nothing (frames a client receives, tests).
    pub fn none() -> InboundPermit {
        InboundPermit::default()
    }

    /// The bytes this permit keeps counted (0 for [`none`](Self::none)).
    pub fn bytes(&self) -> usize {
        self.held.as_ref().map_or(0, |h| h.bytes)
    }
}

impl Drop for InboundPermit {
    fn drop(&mut self) {
        if let Some(h) = self.held.take() {
            h.budget.used.fetch_sub(h.bytes, Ordering::AcqRel);
            h.conn.fetch_sub(h.bytes, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_held_at_its_share_and_the_server_at_its_total() {
        let budget = InboundBudget::new(100, 60);
        let (a, b) = (ConnInbound::default(), ConnInbound::default());
        let first = budget.take(&a, 50);
        assert!(budget.may_take(&a), "under its share and the total");
        let second = budget.take(&a, 20);
        assert!(!budget.may_take(&a), "70 bytes are past a 60-byte share");
        assert!(budget.may_take(&b), "another connection holding nothing");
        let third = budget.take(&b, 40);
        assert_eq!(budget.used(), 110);
        assert!(
            budget.may_take(&ConnInbound::default()),
            "a connection holding nothing may always hand over one frame"
        );
        assert!(!budget.may_take(&b), "the total is spent");
        drop(second);
        drop(first);
        assert!(budget.may_take(&a) && budget.may_take(&b));
        drop(third);
        assert_eq!(budget.used(), 0);
        assert_eq!(InboundPermit::none().bytes(), 0);
    }
}
