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
//!
//! Large frames still arriving count too ([`FrameReservation`]): their
//! lengths, against a limit in all and per address. When an address
//! holding none finds even twice the limit in all taken, the slowest
//! frames (whose connections bring less than the crowd rate) are ended to
//! make its room, so many addresses each sending one frame slowly cannot
//! keep a quick sender waiting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Shared;

/// The limits and the running total of one server.
#[derive(Debug)]
pub(crate) struct InboundBudget {
    used: AtomicUsize,
    limit: usize,
    per_conn: usize,
    /// Large frames peers have started and not finished.
    started: Mutex<Started>,
}

/// The shortest time a connection's rate (see [`ConnRate`]), or a frame's
/// own, is measured over: a connection or frame younger than this counts
/// as this old. Long enough that bytes sent in one burst with a header do
/// not look like a pace (D bytes count as 2·D a second, not the 10·D a
/// tenth of a second made of them: a peer must send at a pace for half a
/// second to look that fast), short enough that an honest sender's first
/// half second is soon behind it.
const RATE_FLOOR: Duration = Duration::from_millis(500);

/// The window a connection's rate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// The lengths of the large frames being received, in all and per address.
#[derive(Debug, Default)]
struct Started {
    total: usize,
    limit: usize,
    per_address: usize,
    by_address: HashMap<IpAddr, usize>,
    /// Bytes a second: a frame whose connection brings less than this
    /// (see [`ConnRate`]) may be ended when an address holding nothing
    /// finds the server full. 0: never.
    crowd_rate: u32,
    /// Every frame counted now, by reservation.
    frames: HashMap<u64, Arc<Progress>>,
    next: u64,
    /// Bytes of frames told to end and not let go yet.
    ending: usize,
    /// The part of `ending` not yet promised to a frame that waited for it.
    credit: usize,
    /// Until when a search for slow frames that found too few is not
    /// repeated (waiting connections ask again every millisecond).
    quiet_until: Option<Instant>,
}

/// How long a search for slow frames that found too few holds.
const SEARCH_AGAIN: Duration = Duration::from_millis(10);

/// How one reserved frame is arriving, shared by its connection (which
/// counts its bytes) and the budget (which may end it).
struct Progress {
    ip: IpAddr,
    len: usize,
    /// What its connection has brought lately.
    rate: Arc<ConnRate>,
    /// When it was reserved, and its bytes since: a connection that was
    /// quiet before it started counts them over a second, its frame alone
    /// shows their pace.
    since: Instant,
    arrived: AtomicUsize,
    /// Set while the server does not read its connection (the
    /// application is behind): the wait is ours, not the peer's, so it is
    /// not judged.
    held: AtomicBool,
    /// Set when the budget ends it to make room.
    cut: AtomicBool,
    /// Wakes its I/O thread to end it.
    conn: Option<Arc<Shared>>,
}

/// The bytes one connection has brought lately, for judging which frames
/// in progress are slow: a peer is judged by its connection, not by the
/// frame alone, because every frame is young at first (a fresh honest
/// frame and a header sent alone look the same), while a connection that
/// has been bringing data for a while has shown its pace.
#[derive(Debug)]
pub(crate) struct ConnRate(Mutex<Window>);

#[derive(Debug)]
struct Window {
    born: Instant,
    /// Start of the current window; `last` counts the one before it.
    start: Instant,
    last: u64,
    this: u64,
}

impl ConnRate {
    pub(crate) fn new(now: Instant) -> Arc<ConnRate> {
        Arc::new(ConnRate(Mutex::new(Window {
            born: now,
            start: now,
            last: 0,
            this: 0,
        })))
    }

    /// Counts `n` bytes read at `now`.
    pub(crate) fn add(&self, n: usize, now: Instant) {
        let mut w = lock(&self.0);
        w.roll(now);
        w.this = w.this.saturating_add(n as u64);
    }

    /// Bytes a second over the last one to two windows (at least
    /// [`RATE_FLOOR`], at most the connection's age).
    pub(crate) fn bytes_per_second(&self, now: Instant) -> f64 {
        let mut w = lock(&self.0);
        w.roll(now);
        let span = (now.saturating_duration_since(w.start) + RATE_WINDOW)
            .min(now.saturating_duration_since(w.born))
            .max(RATE_FLOOR);
        w.last.saturating_add(w.this) as f64 / span.as_secs_f64()
    }

    /// From when its rate says something: a connection younger than
    /// [`RATE_FLOOR`] has not had the time to show its pace (its first
    /// read may not have come yet), so its frames are not ended before.
    fn judged_from(&self) -> Instant {
        lock(&self.0).born + RATE_FLOOR
    }
}

impl Window {
    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed >= RATE_WINDOW * 2 {
            self.last = 0;
            self.this = 0;
            self.start = now;
        } else if elapsed >= RATE_WINDOW {
            self.last = self.this;
            self.this = 0;
            self.start += RATE_WINDOW;
        }
    }
}

impl Progress {
    /// The pace it is judged by: its connection's lately, or its own since
    /// it started (at least [`RATE_FLOOR`]), whichever is higher.
    fn bytes_per_second(&self, now: Instant) -> f64 {
        let age = now
            .saturating_duration_since(self.since)
            .max(RATE_FLOOR)
            .as_secs_f64();
        let own = self.arrived.load(Ordering::Acquire) as f64 / age;
        self.rate.bytes_per_second(now).max(own)
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("ip", &self.ip)
            .field("len", &self.len)
            .field("rate", &self.rate)
            .field("cut", &self.cut)
            .finish_non_exhaustive()
    }
}

impl InboundBudget {
    #[cfg(test)]
    pub(crate) fn new(limit: usize, per_conn: usize) -> Arc<InboundBudget> {
        InboundBudget::with_frames(limit, per_conn, usize::MAX, usize::MAX, 0)
    }

    /// With a limit on the lengths of the large frames being received at
    /// once, in all and from one address (see [`FrameReservation`]), and
    /// the rate below which a frame may be ended to make room (0: never).
    pub(crate) fn with_frames(
        limit: usize,
        per_conn: usize,
        frames: usize,
        frames_per_address: usize,
        crowd_rate: u32,
    ) -> Arc<InboundBudget> {
        Arc::new(InboundBudget {
            used: AtomicUsize::new(0),
            limit: limit.max(1),
            per_conn: per_conn.max(1),
            started: Mutex::new(Started {
                limit: frames,
                per_address: frames_per_address,
                crowd_rate,
                ..Started::default()
            }),
        })
    }

    /// Reserves `len` bytes for a large frame the peer of `conn` (at `ip`,
    /// bringing `rate`) has started, if its address and the server have
    /// room; `None`: not now (the connection is not read until there is).
    pub(crate) fn reserve_frame(
        self: &Arc<Self>,
        ip: IpAddr,
        len: usize,
        rate: &Arc<ConnRate>,
        conn: Option<Arc<Shared>>,
        now: Instant,
    ) -> Option<FrameReservation> {
        let ip = ip.to_canonical();
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        let mine = started.by_address.get(&ip).copied().unwrap_or(0);
        if mine != 0 && mine.saturating_add(len) > started.per_address {
            return None;
        }
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
        let over = (started.total.saturating_add(len)).saturating_sub(in_all);
        if started.total != 0 && over > 0 {
            // Twice the limit held, and this address holds nothing: frames
            // arriving too slowly are ended to make room for it, so peers
            // from however many addresses cannot keep the server full by
            // sending slowly. The room they leave is this frame's.
            if mine != 0 || !started.crowd(over, now) {
                return None;
            }
            started.credit -= over;
        }
        started.total += len;
        *started.by_address.entry(ip).or_default() += len;
        let id = started.next;
        started.next += 1;
        let progress = Arc::new(Progress {
            ip,
            len,
            rate: rate.clone(),
            since: now,
            arrived: AtomicUsize::new(0),
            held: AtomicBool::new(false),
            cut: AtomicBool::new(false),
            conn,
        });
        started.frames.insert(id, progress.clone());
        Some(FrameReservation {
            budget: self.clone(),
            id,
            progress,
        })
    }

    fn release_frame(&self, id: u64) {
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = started.frames.remove(&id) else {
            return;
        };
        started.total = started.total.saturating_sub(p.len);
        if let Some(mine) = started.by_address.get_mut(&p.ip) {
            *mine = mine.saturating_sub(p.len);
            if *mine == 0 {
                started.by_address.remove(&p.ip);
            }
        }
        if p.cut.load(Ordering::Acquire) {
            started.ending = started.ending.saturating_sub(p.len);
            started.credit = started.credit.min(started.ending);
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

impl Started {
    /// Whether `over` bytes can be had from frames being ended: takes
    /// them from the credit, ending the slowest frames that arrive below
    /// the crowd rate as needed. Ends none if they would not be enough.
    fn crowd(&mut self, over: usize, now: Instant) -> bool {
        if self.credit >= over {
            return true;
        }
        if self.crowd_rate == 0 || self.quiet_until.is_some_and(|t| now < t) {
            return false;
        }
        let rate = f64::from(self.crowd_rate);
        let mut slow: Vec<(f64, &Arc<Progress>)> = self
            .frames
            .values()
            .filter(|p| !p.cut.load(Ordering::Acquire) && !p.held.load(Ordering::Acquire))
            .filter_map(|p| {
                let speed = p.bytes_per_second(now);
                (speed < rate).then_some((speed, p))
            })
            .collect();
        slow.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut found = self.credit;
        let mut take = 0;
        for (_, p) in &slow {
            if found >= over {
                break;
            }
            found += p.len;
            take += 1;
        }
        if found < over {
            self.quiet_until = Some(now + SEARCH_AGAIN);
            return false;
        }
        // Thirteenth attack: a frame on a connection too young to have
        // shown its pace is not ended; the newcomer waits until it can be
        // judged (at most RATE_FLOOR), so headers sent in a burst just as
        // an honest upload starts cannot have it ended.
        let judged = slow
            .iter()
            .take(take)
            .map(|(_, p)| p.rate.judged_from())
            .max();
        if let Some(at) = judged.filter(|at| now < *at) {
            self.quiet_until = Some(at);
            return false;
        }
        let mut cut = 0;
        for (speed, p) in slow.into_iter().take(take) {
            p.cut.store(true, Ordering::Release);
            cut += p.len;
            tracing::info!(
                peer = %p.ip,
                "ending a frame of {} bytes arriving at {:.0} KiB/s to make room",
                p.len,
                speed / 1024.0
            );
            if let Some(conn) = &p.conn {
                conn.wake();
            }
        }
        self.ending += cut;
        self.credit += cut;
        true
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The length of one large frame being received, counted against the
/// server's [`ServerConfig::max_frames_in_progress`](crate::ServerConfig::max_frames_in_progress)
/// until the frame is whole or its connection is gone (dropped).
#[derive(Debug)]
pub(crate) struct FrameReservation {
    budget: Arc<InboundBudget>,
    id: u64,
    progress: Arc<Progress>,
}

impl FrameReservation {
    /// Counts `n` more bytes read while it arrives.
    pub(crate) fn arrived(&self, n: usize) {
        self.progress.arrived.fetch_add(n, Ordering::AcqRel);
    }

    /// Whether the server is holding its connection back (not reading
    /// it): a frame held is not judged.
    pub(crate) fn set_held(&self, held: bool) {
        self.progress.held.store(held, Ordering::Release);
    }

    /// Whether the server ended it to make room for others: the
    /// connection must be closed
    /// ([`CloseReason::FrameCrowdedOut`](crate::CloseReason::FrameCrowdedOut)).
    pub(crate) fn is_cut(&self) -> bool {
        self.progress.cut.load(Ordering::Acquire)
    }

    /// Bytes a second its connection has brought lately.
    pub(crate) fn rate(&self, now: Instant) -> u64 {
        self.progress.bytes_per_second(now) as u64
    }
}

impl Drop for FrameReservation {
    fn drop(&mut self) {
        self.budget.release_frame(self.id);
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

    /// The loopback address 127.0.0.`last`.
    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    /// A clock for a test: its start, and `ms` milliseconds after it.
    fn clock() -> (Instant, impl Fn(u64) -> Instant) {
        let t0 = Instant::now();
        (t0, move |ms| t0 + Duration::from_millis(ms))
    }

    fn reserve(budget: &Arc<InboundBudget>, ip: IpAddr, len: usize) -> Option<FrameReservation> {
        let now = Instant::now();
        budget.reserve_frame(ip, len, &ConnRate::new(now), None, now)
    }

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
        let budget = InboundBudget::with_frames(1, 1, 10, 6, 0);
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            "127.0.0.1".parse().unwrap(),
            "127.0.0.2".parse().unwrap(),
            "::ffff:127.0.0.3".parse().unwrap(),
        );
        let first = reserve(&budget, a, 4).expect("room");
        assert!(reserve(&budget, a, 4).is_none(), "8 past a's 6");
        let second = reserve(&budget, b, 4).expect("another address");
        let more_b = reserve(&budget, b, 2).expect("b: 6, in all: 10");
        let third = reserve(&budget, c, 4).expect("c holds nothing: up to twice the 10 in all");
        assert!(reserve(&budget, c, 1).is_none(), "c holds one: 15 > 10");
        let d: IpAddr = "127.0.0.4".parse().unwrap();
        let fourth = reserve(&budget, d, 4).expect("d holds nothing: 18 <= 20");
        let e: IpAddr = "127.0.0.5".parse().unwrap();
        assert!(reserve(&budget, e, 4).is_none(), "22 past twice the limit");
        drop(first);
        let again = reserve(&budget, a, 4).expect("a's frame was let go");
        drop((second, more_b, third, fourth, again));
        assert!(reserve(&budget, a, 6).is_some(), "all let go");
        assert!(
            reserve(&budget, a, 20).is_some(),
            "a frame over both limits goes alone"
        );
    }

    #[test]
    fn slow_frames_are_ended_to_make_room_for_an_address_holding_nothing() {
        // 10 in all (20 for an address holding nothing), 10 per address;
        // frames whose connections bring under 100 bytes a second may be
        // ended.
        let budget = InboundBudget::with_frames(1, 1, 10, 10, 100);
        let (t0, at) = clock();
        let rates: Vec<Arc<ConnRate>> = (0..4).map(|_| ConnRate::new(t0)).collect();
        let slow: Vec<FrameReservation> = (1..=4u8)
            .map(|last| {
                let rate = &rates[usize::from(last - 1)];
                budget
                    .reserve_frame(ip(last), 5, rate, None, t0)
                    .expect("room")
            })
            .collect();
        // 20 held. In the second before 2 s, two bring 50 and 75 bytes
        // (slow), two bring 1000 and 400.
        for (rate, bytes) in rates.iter().zip([50, 75, 1000, 400]) {
            rate.add(bytes, at(1500));
        }
        let fresh = ConnRate::new(at(1990));
        fresh.add(400, at(1990)); // 800 bytes a second over the floor: not slow
        assert!(
            budget
                .reserve_frame(ip(1), 1, &fresh, None, at(2000))
                .is_none(),
            "an address with a frame in progress waits for room"
        );
        assert!(slow.iter().all(|r| !r.is_cut()));
        let first = budget
            .reserve_frame(ip(9), 4, &fresh, None, at(2000))
            .expect("the slowest frame makes room");
        assert!(slow[0].is_cut(), "50 bytes a second: ended");
        assert!(!slow[1].is_cut() && !slow[2].is_cut() && !slow[3].is_cut());
        let second = budget
            .reserve_frame(ip(10), 2, &fresh, None, at(2000))
            .expect("the one byte left of that room and the next slowest (75 bytes/s)");
        assert!(slow[1].is_cut());
        assert!(
            budget
                .reserve_frame(ip(11), 4, &fresh, None, at(2000))
                .is_none(),
            "the rest bring enough: nothing is ended for nothing"
        );
        assert!(!slow[2].is_cut() && !slow[3].is_cut());
        // The ended frames let go: the room they left was promised once,
        // not counted again.
        let mut slow = slow.into_iter();
        drop((slow.next(), slow.next()));
        assert!(reserve(&budget, ip(12), 5).is_none(), "16 held: 21 > 20");
        drop((first, second));
        assert!(reserve(&budget, ip(12), 5).is_some(), "15 <= 20");
    }

    #[test]
    fn a_fresh_connection_that_brings_nothing_goes_before_an_older_slow_one() {
        // Tenth and eleventh attacks: headers from fresh addresses had a
        // slow but honest upload ended, because young frames were not
        // judged; they are, by what their connection brought.
        let budget = InboundBudget::with_frames(1, 1, 10, 10, 10_000);
        let (t0, at) = clock();
        let honest_rate = ConnRate::new(t0);
        let honest = budget
            .reserve_frame(ip(1), 8, &honest_rate, None, at(2000))
            .expect("room");
        honest_rate.add(1500, at(2950)); // about 1,400 bytes a second
        let quick_rate = ConnRate::new(at(2990));
        quick_rate.add(64 * 1024, at(2990)); // a fresh frame's first read
        let quick = budget
            .reserve_frame(ip(2), 6, &quick_rate, None, at(2990))
            .expect("up to 20 in all");
        let header_rate = ConnRate::new(at(2995));
        header_rate.add(15, at(2995));
        let header = budget
            .reserve_frame(ip(3), 6, &header_rate, None, at(2995))
            .expect("20 in all");
        let newcomer = ConnRate::new(at(3000));
        assert!(
            budget
                .reserve_frame(ip(4), 5, &newcomer, None, at(3000))
                .is_none(),
            "the header's connection is too young to be judged: wait"
        );
        assert!(!header.is_cut());
        let _mine = budget
            .reserve_frame(ip(4), 5, &newcomer, None, at(3500))
            .expect("the header alone, at 30 bytes a second, makes room");
        assert!(header.is_cut(), "the one bringing nothing is ended");
        assert!(!honest.is_cut(), "the older, faster one is kept");
        assert!(!quick.is_cut(), "a fresh one that brought its data is kept");
        let forgetting = ConnRate::new(t0);
        forgetting.add(1000, at(100));
        let young = forgetting.bytes_per_second(at(900));
        assert!(
            (young - 1000.0 / 0.9).abs() < 1.0,
            "{young}: over its 0.9 s"
        );
        assert_eq!(
            forgetting.bytes_per_second(at(3000)),
            0.0,
            "bytes older than two windows are forgotten"
        );
    }

    #[test]
    fn a_held_frame_is_not_judged() {
        let budget = InboundBudget::with_frames(1, 1, 5, 5, 10_000);
        let t0 = Instant::now();
        let idle = ConnRate::new(t0);
        let held = budget
            .reserve_frame(ip(1), 10, &idle, None, t0)
            .expect("room");
        held.set_held(true);
        let later = t0 + Duration::from_secs(5);
        assert!(
            budget.reserve_frame(ip(2), 5, &idle, None, later).is_none(),
            "the server not reading it is not the peer's slowness"
        );
        assert!(!held.is_cut());
        held.set_held(false);
        assert!(budget
            .reserve_frame(ip(2), 5, &idle, None, later + SEARCH_AGAIN)
            .is_some());
        assert!(held.is_cut());
    }

    #[test]
    fn a_quiet_connection_is_judged_by_its_frame_once_it_sends() {
        // Twelfth attack: a connection quiet for seconds that starts a
        // frame at 2 MiB/s counted it over a second (473 KiB/s at 0.3 s)
        // and was ended before fillers that brought 64 KiB each.
        let budget = InboundBudget::with_frames(1, 1, 10, 10, 1_000_000);
        let (t0, at) = clock();
        let quiet = ConnRate::new(t0);
        let honest = budget
            .reserve_frame(ip(1), 10, &quiet, None, at(5000))
            .expect("room");
        quiet.add(600_000, at(5300));
        honest.arrived(600_000); // 2 MB/s over 0.3 s, 1.2 MB/s over the floor
        let filler = ConnRate::new(at(5290));
        filler.add(80_000, at(5290)); // 160 KB/s over the floor
        let fill = budget
            .reserve_frame(ip(2), 10, &filler, None, at(5290))
            .expect("20 in all");
        let newcomer = ConnRate::new(at(5300));
        assert!(
            budget
                .reserve_frame(ip(3), 5, &newcomer, None, at(5300))
                .is_none(),
            "the filler's connection is judged only from 5.79 s"
        );
        let _mine = budget
            .reserve_frame(ip(3), 5, &newcomer, None, at(5800))
            .expect("room made");
        assert!(
            fill.is_cut(),
            "the filler is slower than the frame's own pace"
        );
        assert!(!honest.is_cut());
    }

    #[test]
    fn a_fresh_quick_frame_is_judged_before_it_can_be_ended() {
        // Thirteenth attack: an honest upload whose header has just been
        // read (its data not yet) looked slower than headers that came a
        // moment earlier in a burst, and was ended for them.
        let budget = InboundBudget::with_frames(1, 1, 10, 10, 1_000_000);
        let (t0, at) = clock();
        let header_rate = ConnRate::new(at(4000));
        header_rate.add(16, at(4000));
        let header = budget
            .reserve_frame(ip(1), 10, &header_rate, None, at(4000))
            .expect("room");
        let honest_rate = ConnRate::new(at(4100));
        honest_rate.add(16, at(4100));
        let honest = budget
            .reserve_frame(ip(2), 10, &honest_rate, None, at(4100))
            .expect("twice the limit for an address holding nothing");
        let newcomer = ConnRate::new(t0);
        assert!(
            budget
                .reserve_frame(ip(3), 5, &newcomer, None, at(4110))
                .is_none(),
            "neither connection has shown its pace yet"
        );
        assert!(!honest.is_cut() && !header.is_cut());
        // The honest upload brings its data; the header's brings nothing.
        honest_rate.add(600_000, at(4200));
        honest.arrived(600_000);
        let _mine = budget
            .reserve_frame(ip(3), 5, &newcomer, None, at(4610))
            .expect("judged: the header makes room");
        assert!(header.is_cut(), "the one that brought nothing is ended");
        assert!(!honest.is_cut(), "the honest upload is kept");
    }
}
