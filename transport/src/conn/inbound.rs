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

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The limits and the running total of one server.
#[derive(Debug)]
pub(crate) struct InboundBudget {
    used: AtomicUsize,
    limit: usize,
    per_conn: usize,
    /// Large frames peers have started and not finished.
    started: Mutex<Started>,
}

/// The lengths of the large frames being received, in all and per address.
#[derive(Debug, Default)]
struct Started {
    total: usize,
    limit: usize,
    per_address: usize,
    by_address: HashMap<IpAddr, usize>,
}

impl InboundBudget {
    #[cfg(test)]
    pub(crate) fn new(limit: usize, per_conn: usize) -> Arc<InboundBudget> {
        InboundBudget::with_frames(limit, per_conn, usize::MAX, usize::MAX)
    }

    /// With a limit on the lengths of the large frames being received at
    /// once, in all and from one address (see [`FrameReservation`]).
    pub(crate) fn with_frames(
        limit: usize,
        per_conn: usize,
        frames: usize,
        frames_per_address: usize,
    ) -> Arc<InboundBudget> {
        Arc::new(InboundBudget {
            used: AtomicUsize::new(0),
            limit: limit.max(1),
            per_conn: per_conn.max(1),
            started: Mutex::new(Started {
                limit: frames,
                per_address: frames_per_address,
                ..Started::default()
            }),
        })
    }

    /// Reserves `len` bytes for a large frame a peer at `ip` has started,
    /// if its address and the server have room; `None`: not now (the
    /// connection is not read until there is).
    pub(crate) fn reserve_frame(
        self: &Arc<Self>,
        ip: IpAddr,
        len: usize,
    ) -> Option<FrameReservation> {
        let ip = ip.to_canonical();
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        let mine = started.by_address.get(&ip).copied().unwrap_or(0);
        // An address with no frame in progress may start one past the
        // limit in all, up to twice it: addresses that fill the limit
        // cannot hold up everyone else's next frame (fewer than a few
        // dozen would need to fill twice the limit). And a frame larger
        // than a limit still goes when nothing else is counted there: it
        // cannot wait for room that never comes.
        let in_all = if mine == 0 {
            started.limit.saturating_mul(2)
        } else {
            started.limit
        };
        if (mine != 0 && mine.saturating_add(len) > started.per_address)
            || (started.total != 0 && started.total.saturating_add(len) > in_all)
        {
            return None;
        }
        started.total += len;
        *started.by_address.entry(ip).or_default() += len;
        Some(FrameReservation {
            budget: self.clone(),
            ip,
            len,
        })
    }

    fn release_frame(&self, ip: IpAddr, len: usize) {
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        started.total = started.total.saturating_sub(len);
        if let Some(mine) = started.by_address.get_mut(&ip) {
            *mine = mine.saturating_sub(len);
            if *mine == 0 {
                started.by_address.remove(&ip);
            }
        }
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

/// The length of one large frame being received, counted against the
/// server's [`ServerConfig::max_frames_in_progress`](crate::ServerConfig::max_frames_in_progress)
/// until the frame is whole or its connection is gone (dropped).
#[derive(Debug)]
pub(crate) struct FrameReservation {
    budget: Arc<InboundBudget>,
    ip: IpAddr,
    len: usize,
}

impl Drop for FrameReservation {
    fn drop(&mut self) {
        self.budget.release_frame(self.ip, self.len);
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

    #[test]
    fn frames_in_progress_are_held_per_address_and_in_all() {
        let budget = InboundBudget::with_frames(1, 1, 10, 6);
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            "127.0.0.1".parse().unwrap(),
            "127.0.0.2".parse().unwrap(),
            "::ffff:127.0.0.3".parse().unwrap(),
        );
        let first = budget.reserve_frame(a, 4).expect("room");
        assert!(budget.reserve_frame(a, 4).is_none(), "8 past a's 6");
        let second = budget.reserve_frame(b, 4).expect("another address");
        let more_b = budget.reserve_frame(b, 2).expect("b: 6, in all: 10");
        let third = budget
            .reserve_frame(c, 4)
            .expect("c holds nothing: up to twice the 10 in all");
        assert!(budget.reserve_frame(c, 1).is_none(), "c holds one: 15 > 10");
        let d: IpAddr = "127.0.0.4".parse().unwrap();
        let fourth = budget
            .reserve_frame(d, 4)
            .expect("d holds nothing: 18 <= 20");
        let e: IpAddr = "127.0.0.5".parse().unwrap();
        assert!(
            budget.reserve_frame(e, 4).is_none(),
            "22 past twice the limit"
        );
        drop(first);
        let again = budget.reserve_frame(a, 4).expect("a's frame was let go");
        drop((second, more_b, third, fourth, again));
        assert!(budget.reserve_frame(a, 6).is_some(), "all let go");
        assert!(
            budget.reserve_frame(a, 20).is_some(),
            "a frame over both limits goes alone"
        );
    }
}
