//! The load engine: a few threads, each one `mio` poll over its share of
//! the clients' non-blocking sockets (client *i* belongs to thread *i* mod
//! T), connecting them a bounded number at a time, pacing its share of the
//! senders and measuring every line its clients receive.
//!
//! A thread's whole state is its own; what the threads share is a handful
//! of atomics: how many clients are in the room or failed, the schedule's
//! times (set by the main thread once everyone is in), and running totals
//! the main thread watches while lines drain.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::wire::{Codec, Proto, Seen};
use crate::Latency;

/// Handshakes a thread has in flight at once: enough to connect thousands
/// of clients in seconds, few enough not to overflow the server's accept
/// backlog.
const CONNECTS_IN_FLIGHT: usize = 64;
/// How long one client may take from `connect` to being in the room.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a thread sleeps in `poll` before looking at the clock and
/// the shared flags again.
const POLL_TICK: Duration = Duration::from_millis(5);
/// Bytes read from one socket per `read` call.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes queued for one client before it counts as stuck (the server not
/// reading): it is dropped rather than grow without bound.
const MAX_QUEUED: usize = 4 * 1024 * 1024;
/// Marks this tool's chat lines: `LB <sender> <seq> <µs> ...`.
const LINE_TAG: &str = "LB";

/// What every thread needs to know, fixed before they start.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub proto: Proto,
    pub addr: SocketAddr,
    pub clients: u32,
    pub threads: u32,
    /// Clients 0..senders say lines.
    pub senders: u32,
    /// Lines per second, all senders together.
    pub rate: f64,
    /// Length of each line's text in bytes.
    pub size: usize,
}

/// What the threads share. Times are microseconds since `base`; 0 means
/// "not set yet".
pub(crate) struct Shared {
    pub base: Instant,
    /// Clients in the room.
    pub ready: AtomicU64,
    /// Clients that could not connect or get into the room.
    pub failed: AtomicU64,
    /// When the first line is due; set last, after the other times.
    pub start_us: AtomicU64,
    pub window_start_us: AtomicU64,
    pub window_end_us: AtomicU64,
    /// Lines of this run received, every thread together (published after
    /// each poll round).
    pub received: AtomicU64,
    /// Lines sent, every thread together.
    pub sent: AtomicU64,
    pub stop: AtomicBool,
    pub first_error: Mutex<Option<String>>,
    /// Lines each sender has sent so far: what a receiver that is not
    /// missing any should have seen at the end.
    pub sent_by: Vec<AtomicU32>,
}

impl Shared {
    pub(crate) fn new(senders: u32) -> Shared {
        Shared {
            sent_by: (0..senders).map(|_| AtomicU32::new(0)).collect(),
            base: Instant::now(),
            ready: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            start_us: AtomicU64::new(0),
            window_start_us: AtomicU64::new(0),
            window_end_us: AtomicU64::new(0),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            first_error: Mutex::new(None),
        }
    }

    pub(crate) fn now_us(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn error(&self, e: String) {
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(e);
        }
    }
}

/// One thread's findings.
#[derive(Debug)]
pub(crate) struct Tally {
    /// Lines sent (whole run) and inside the window.
    pub sent: u64,
    pub sent_in_window: u64,
    /// Lines received (whole run) and inside the window.
    pub received: u64,
    pub received_in_window: u64,
    /// Latency of the lines received inside the window.
    pub latency: Latency,
    /// Lines missing between two a receiver got from the same sender.
    pub gaps: u64,
    /// Lines that came again, or after a later one of the same sender.
    pub out_of_order: u64,
    /// Lines not of this tool, or unreadable.
    pub foreign: u64,
    /// Clients the server closed once they were in the room.
    pub disconnected: u64,
    /// Clients dropped because the server stopped reading them.
    pub stuck: u64,
    /// How far behind its schedule the thread's sending fell.
    pub max_lag_us: u64,
    /// Deliveries missing at the end after the last line each receiver
    /// got from a sender (lost at the tail, where no gap shows them).
    pub missing_tail: u64,
    /// One such: (receiver, sender, first sequence number missing).
    pub tail_example: Option<(u32, u32, u32)>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            sent: 0,
            sent_in_window: 0,
            received: 0,
            received_in_window: 0,
            latency: Latency::new(),
            gaps: 0,
            out_of_order: 0,
            foreign: 0,
            disconnected: 0,
            stuck: 0,
            max_lag_us: 0,
            missing_tail: 0,
            tail_example: None,
        }
    }

    pub(crate) fn add(&mut self, o: &Tally) {
        self.sent += o.sent;
        self.sent_in_window += o.sent_in_window;
        self.received += o.received;
        self.received_in_window += o.received_in_window;
        self.latency.merge(&o.latency);
        self.gaps += o.gaps;
        self.out_of_order += o.out_of_order;
        self.foreign += o.foreign;
        self.disconnected += o.disconnected;
        self.stuck += o.stuck;
        self.max_lag_us = self.max_lag_us.max(o.max_lag_us);
        self.missing_tail += o.missing_tail;
        self.tail_example = self.tail_example.or(o.tail_example);
    }

    pub(crate) fn empty() -> Tally {
        Tally::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not started yet.
    Idle,
    /// `connect` issued, not known to have succeeded.
    Connecting,
    /// Connected, hello sent, not yet in the room.
    Handshake,
    /// In the room.
    Ready,
    Closed,
}

struct Client {
    index: u32,
    state: State,
    stream: Option<TcpStream>,
    codec: Codec,
    out: Vec<u8>,
    /// How much of `out` has been written.
    written: usize,
    since: Instant,
    /// Lines this client sent (its next sequence number).
    seq: u32,
    /// For each sender, the sequence number expected next from it.
    next_from: Vec<u32>,
}

/// Runs thread `t` of `plan` until `shared.stop`; returns its tally.
pub(crate) fn run_thread(t: u32, plan: &Plan, shared: &Arc<Shared>) -> Tally {
    let mut tally = Tally::new();
    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            shared.error(format!("cannot make a poll: {e}"));
            let mine = (t..plan.clients).step_by(plan.threads as usize).count();
            shared.failed.fetch_add(mine as u64, Ordering::Relaxed);
            return tally;
        }
    };
    let mut clients: Vec<Client> = (t..plan.clients)
        .step_by(plan.threads as usize)
        .map(|index| Client {
            index,
            state: State::Idle,
            stream: None,
            codec: Codec::new(plan.proto),
            out: Vec::new(),
            written: 0,
            since: Instant::now(),
            seq: 0,
            next_from: Vec::new(),
        })
        .collect();
    let senders: Vec<usize> = clients
        .iter()
        .enumerate()
        .filter(|(_, c)| c.index < plan.senders)
        .map(|(slot, _)| slot)
        .collect();
    let thread_rate = plan.rate * senders.len() as f64 / f64::from(plan.senders.max(1));
    let interval_us = if thread_rate > 0.0 {
        1e6 / thread_rate
    } else {
        f64::INFINITY
    };
    // Interleave the threads' schedules instead of firing together.
    let offset_us = interval_us * f64::from(t) / f64::from(plan.threads);

    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; READ_CHUNK];
    let mut text = String::with_capacity(plan.size + 32);
    let mut next_connect = 0usize;
    let mut in_flight = 0usize;
    let mut line_no: u64 = 0;
    let mut published = 0u64;
    let mut last_sweep = Instant::now();

    while !shared.stop.load(Ordering::Relaxed) {
        // Start connects, a bounded number in flight.
        while in_flight < CONNECTS_IN_FLIGHT && next_connect < clients.len() {
            let slot = next_connect;
            next_connect += 1;
            if let Some(c) = clients.get_mut(slot) {
                match start(c, slot, plan, &poll) {
                    Ok(()) => in_flight += 1,
                    Err(e) => {
                        c.state = State::Closed;
                        fail(shared, c, &e);
                    }
                }
            }
        }

        // Sleep until the next line is due, or a tick.
        let start_us = shared.start_us.load(Ordering::Acquire);
        let end_us = shared.window_end_us.load(Ordering::Relaxed);
        let due_us = (start_us != 0 && !senders.is_empty())
            .then(|| start_us + (offset_us + line_no as f64 * interval_us) as u64)
            .filter(|&d| d < end_us);
        let timeout = due_us.map_or(POLL_TICK, |d| {
            Duration::from_micros(d.saturating_sub(shared.now_us())).min(POLL_TICK)
        });
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                shared.error(format!("poll failed: {e}"));
                break;
            }
        }
        for event in events.iter() {
            let slot = event.token().0;
            let Some(c) = clients.get_mut(slot) else {
                continue;
            };
            let was = c.state;
            service(
                c,
                plan,
                shared,
                &mut scratch,
                &mut tally,
                event.is_writable(),
            );
            settle(c, was, shared, &mut in_flight, &poll);
        }

        // Lines due now (the schedule catches up if the thread fell behind).
        if let Some(first_due) = due_us {
            let window_start = shared.window_start_us.load(Ordering::Relaxed);
            let mut due = first_due;
            loop {
                let now = shared.now_us();
                if due > now || due >= end_us {
                    break;
                }
                tally.max_lag_us = tally.max_lag_us.max(now - due);
                let slot = senders
                    .get((line_no % senders.len() as u64) as usize)
                    .copied()
                    .unwrap_or(0);
                line_no += 1;
                due = start_us + (offset_us + line_no as f64 * interval_us) as u64;
                let Some(c) = clients.get_mut(slot) else {
                    continue;
                };
                if c.state != State::Ready {
                    continue;
                }
                text.clear();
                use std::fmt::Write as _;
                let _ = write!(text, "{LINE_TAG} {} {} {now} ", c.index, c.seq);
                while text.len() < plan.size {
                    text.push('.');
                }
                if let Err(e) = c.codec.say(&text, &mut c.out) {
                    shared.error(e);
                    continue;
                }
                c.seq += 1;
                if let Some(n) = shared.sent_by.get(c.index as usize) {
                    n.store(c.seq, Ordering::Relaxed);
                }
                tally.sent += 1;
                if now >= window_start {
                    tally.sent_in_window += 1;
                }
                shared.sent.fetch_add(1, Ordering::Relaxed);
                let was = c.state;
                flush(c, shared, &mut tally);
                settle(c, was, shared, &mut in_flight, &poll);
            }
        }

        if tally.received != published {
            shared
                .received
                .fetch_add(tally.received - published, Ordering::Relaxed);
            published = tally.received;
        }

        // Handshakes past their deadline fail.
        if last_sweep.elapsed() >= Duration::from_millis(200) {
            last_sweep = Instant::now();
            for c in clients.iter_mut() {
                if matches!(c.state, State::Connecting | State::Handshake)
                    && c.since.elapsed() > HANDSHAKE_TIMEOUT
                {
                    let was = c.state;
                    fail(shared, c, "not in the room within 60 s");
                    close(c, &poll);
                    settle(c, was, shared, &mut in_flight, &poll);
                }
            }
        }
    }
    for c in clients.iter().filter(|c| c.state == State::Ready) {
        for (sender, sent) in shared.sent_by.iter().enumerate() {
            let sent = sent.load(Ordering::Relaxed);
            let seen = c.next_from.get(sender).copied().unwrap_or(0);
            if sender as u32 != c.index && seen < sent {
                tally.missing_tail += u64::from(sent - seen);
                tally
                    .tail_example
                    .get_or_insert((c.index, sender as u32, seen));
            }
        }
    }
    tally
}

/// Issues client `c`'s connect and queues its hello.
fn start(c: &mut Client, slot: usize, plan: &Plan, poll: &Poll) -> Result<(), String> {
    let mut stream =
        TcpStream::connect(plan.addr).map_err(|e| format!("connect to {}: {e}", plan.addr))?;
    poll.registry()
        .register(
            &mut stream,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        )
        .map_err(|e| format!("register: {e}"))?;
    c.codec.hello(&format!("bench-{}", c.index), &mut c.out)?;
    c.stream = Some(stream);
    c.state = State::Connecting;
    c.since = Instant::now();
    Ok(())
}

/// Handles readiness of client `c`.
fn service(
    c: &mut Client,
    plan: &Plan,
    shared: &Shared,
    scratch: &mut [u8],
    tally: &mut Tally,
    writable: bool,
) {
    if c.state == State::Connecting {
        let Some(stream) = c.stream.as_ref() else {
            return;
        };
        if let Ok(Some(e)) | Err(e) = stream.take_error() {
            fail(shared, c, &format!("connect: {e}"));
            return;
        }
        match stream.peer_addr() {
            Ok(_) => {
                let _ = stream.set_nodelay(true);
                c.state = State::Handshake;
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
            Err(e) => {
                fail(shared, c, &format!("connect: {e}"));
                return;
            }
        }
    }
    if writable {
        flush(c, shared, tally);
    }
    // Edge-triggered: read until the socket is empty.
    loop {
        if matches!(c.state, State::Closed | State::Idle) {
            return;
        }
        let Some(stream) = c.stream.as_mut() else {
            return;
        };
        match stream.read(scratch) {
            Ok(0) => {
                lost(shared, c, tally, "the server closed the connection".into());
                return;
            }
            Ok(n) => {
                let bytes = scratch.get(..n).unwrap_or_default();
                if let Err(e) = take(c, bytes, plan, shared, tally) {
                    lost(shared, c, tally, e);
                    return;
                }
                if !c.out.is_empty() {
                    flush(c, shared, tally);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                lost(shared, c, tally, format!("read: {e}"));
                return;
            }
        }
    }
}

/// Feeds `bytes` from the server to `c`'s codec and counts what came.
fn take(
    c: &mut Client,
    bytes: &[u8],
    plan: &Plan,
    shared: &Shared,
    tally: &mut Tally,
) -> Result<(), String> {
    let window_start = shared.window_start_us.load(Ordering::Relaxed);
    let window_end = shared.window_end_us.load(Ordering::Relaxed);
    let me = c.index;
    let mut joined = false;
    let next_from = &mut c.next_from;
    c.codec.feed(bytes, &mut c.out, &mut |seen| match seen {
        Seen::Welcomed => {}
        Seen::Joined => joined = true,
        Seen::Line(text) => {
            let Some((sender, seq, sent_us)) = parse_line(text) else {
                tally.foreign += 1;
                return;
            };
            if sender == me {
                return;
            }
            if sender >= plan.senders {
                tally.foreign += 1;
                return;
            }
            if next_from.is_empty() {
                next_from.resize(plan.senders as usize, 0);
            }
            if let Some(next) = next_from.get_mut(sender as usize) {
                if seq >= *next {
                    tally.gaps += u64::from(seq - *next);
                    *next = seq + 1;
                } else {
                    tally.out_of_order += 1;
                }
            }
            let now = shared.now_us();
            tally.received += 1;
            if now >= window_start && now < window_end {
                tally.received_in_window += 1;
                tally.latency.record_us(now.saturating_sub(sent_us));
            }
        }
    })?;
    if joined && c.state == State::Handshake {
        c.state = State::Ready;
    }
    Ok(())
}

/// `LB <sender> <seq> <µs> ...` → (sender, seq, µs).
fn parse_line(text: &str) -> Option<(u32, u32, u64)> {
    let mut words = text.split(' ');
    if words.next()? != LINE_TAG {
        return None;
    }
    let sender = words.next()?.parse().ok()?;
    let seq = words.next()?.parse().ok()?;
    let us = words.next()?.parse().ok()?;
    Some((sender, seq, us))
}

/// Writes what `c` has queued, as far as the socket takes it.
fn flush(c: &mut Client, shared: &Shared, tally: &mut Tally) {
    if matches!(c.state, State::Connecting | State::Closed | State::Idle) {
        return;
    }
    let Some(stream) = c.stream.as_mut() else {
        return;
    };
    while c.written < c.out.len() {
        let pending = c.out.get(c.written..).unwrap_or_default();
        match stream.write(pending) {
            Ok(0) => break,
            Ok(n) => c.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                lost(shared, c, tally, format!("write: {e}"));
                return;
            }
        }
    }
    if c.written == c.out.len() {
        c.out.clear();
        c.written = 0;
    } else if c.out.len() - c.written > MAX_QUEUED {
        tally.stuck += 1;
        lost(shared, c, tally, "the server stopped reading".into());
    } else if c.written > READ_CHUNK {
        c.out.drain(..c.written);
        c.written = 0;
    }
}

/// Counts a client's state change: into the room, or out of the handshake.
fn settle(c: &mut Client, was: State, shared: &Shared, in_flight: &mut usize, poll: &Poll) {
    let handshaking = |s| matches!(s, State::Connecting | State::Handshake);
    if handshaking(was) && !handshaking(c.state) {
        *in_flight = in_flight.saturating_sub(1);
        if c.state == State::Ready {
            shared.ready.fetch_add(1, Ordering::Relaxed);
        }
    }
    if c.state == State::Closed {
        close(c, poll);
    }
}

/// A client that never got into the room.
fn fail(shared: &Shared, c: &mut Client, why: &str) {
    shared.failed.fetch_add(1, Ordering::Relaxed);
    shared.error(format!("bench-{}: {why}", c.index));
    c.state = State::Closed;
}

/// A client that is gone: failed if it was not in the room yet.
fn lost(shared: &Shared, c: &mut Client, tally: &mut Tally, why: String) {
    match c.state {
        State::Ready => {
            tally.disconnected += 1;
            shared.error(format!("bench-{}: {why}", c.index));
            c.state = State::Closed;
        }
        State::Closed | State::Idle => {}
        State::Connecting | State::Handshake => fail(shared, c, &why),
    }
}

fn close(c: &mut Client, poll: &Poll) {
    if let Some(mut stream) = c.stream.take() {
        let _ = poll.registry().deregister(&mut stream);
    }
    c.out = Vec::new();
    c.next_from = Vec::new();
    c.state = State::Closed;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse() {
        assert_eq!(parse_line("LB 3 17 123456 ....."), Some((3, 17, 123_456)));
        assert_eq!(parse_line("LB 3 17"), None);
        assert_eq!(parse_line("hello 3 17 1"), None);
    }
}
