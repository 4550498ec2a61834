//! The server's event-driven I/O: a few threads (one per core, at most
//! [`MAX_IO_THREADS`]), each serving many established connections over
//! epoll (`mio`), instead of a reader and a writer thread per connection.
//!
//! A connection is handed to an I/O thread once its handshake is complete
//! (the handshake itself runs on a short-lived thread, at most
//! `ServerConfig::max_handshakes` of them at once). From then on the I/O
//! thread owns its socket, non-blocking: readable sockets are read into the
//! connection's [`FrameDecoder`] and frames become [`Event`]s; queued frames
//! are written out reliable first, media second, exactly as the writer
//! thread did, with the queue byte accounting unchanged (bytes count as
//! queued until the I/O thread takes them, and it takes at most
//! [`WRITE_BATCH`] bytes ahead of the socket). Frames are kept as the
//! shared [`Bytes`] of their [`EncodedFrame`](crate::EncodedFrame) and
//! written with vectored writes: a broadcast encoded once is never copied
//! per recipient on plain TCP (TLS seals each peer's copy, necessarily).
//!
//! [`ConnHandle`] sends wake the connection's I/O thread through a
//! [`mio::Waker`], once per burst. Keepalive pings, the idle timeout, the
//! close linger and the server's shutdown are checked on every
//! [`TICK`]. When the application's event channel is full, the I/O thread
//! stops reading that connection (TCP flow control slows the peer down)
//! and retries shortly, never blocking the other connections. The same
//! happens when the frames a connection handed over and the application
//! still holds pass its byte share or the server's total (see
//! [`InboundPermit`](crate::InboundPermit)): the channel is bounded in
//! events, the memory behind it in bytes.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Write};
use std::net::Shutdown as SockShutdown;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use crossbeam_channel::{Sender, TrySendError};
use lanlink_proto::{control, BufferPool, ErrorCode, Frame, FrameDecoder, Message, ProtoError};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::conn::{
    CloseReason, ConnConfig, ConnHandle, ConnInbound, ConnRate, Doorbell, EncodedFrame, Event,
    FrameReservation, InboundBudget, Outbound, Wake, WriterQueues,
};
use crate::socket::{ReadState, TICK};
use crate::Shutdown;

/// At most this many I/O threads, however many cores.
pub(crate) const MAX_IO_THREADS: usize = 8;
/// The waker's token; connections use their id.
const WAKER: Token = Token(usize::MAX);
/// Idle large-frame buffers an I/O thread keeps for its connections (at
/// most 1 MiB each, so at most 8 MiB a thread).
const IO_THREAD_POOLED: usize = 8;
/// Bytes taken off a connection's queues ahead of its socket.
const WRITE_BATCH: usize = 256 * 1024;
/// Plaintext sealed per TLS round.
const SEAL_CHUNK: usize = 64 * 1024;
/// A frame whose payload is longer than this is "large": its length is
/// reserved against the server's frames in progress before more of it is
/// read (smaller ones cost at most this each).
const LARGE_FRAME: u32 = 64 * 1024;
/// Reads per connection per turn, so one busy peer cannot starve the rest.
const READS_PER_TURN: usize = 16;
/// Bytes written to one connection per turn: a reader taking a burst (a
/// large listing, a file) does not hold up the other connections of its
/// I/O thread for the whole burst; it goes on in the next turn, at once.
const WRITE_PER_TURN: usize = 512 * 1024;
/// Buffers handed to one vectored write.
const MAX_IOVECS: usize = 64;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the other threads leave for one I/O thread.
struct Inbox {
    /// Rung by sends (see [`Wake`]) and by the server.
    bell: Arc<Doorbell>,
    /// Connections just handed over.
    new: Mutex<Vec<Established>>,
    /// Set when the server stops: exit once every connection is gone.
    stopping: AtomicBool,
}

/// A connection whose handshake is complete, ready for an I/O thread.
pub(crate) struct Established {
    pub(crate) handle: ConnHandle,
    pub(crate) queues: WriterQueues,
    pub(crate) decoder: FrameDecoder,
    pub(crate) read_state: ReadState,
    /// Released when the connection ends (the client count, the address slot).
    pub(crate) guards: Box<dyn Send>,
}

/// The I/O threads of one server.
pub(crate) struct Engine {
    inboxes: Vec<Arc<Inbox>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    next: AtomicUsize,
}

impl Engine {
    /// Starts one I/O thread per core (at most [`MAX_IO_THREADS`]).
    pub(crate) fn start(
        config: &ConnConfig,
        pace: FramePace,
        budget: Arc<InboundBudget>,
        shutdown: &Shutdown,
        events: &Sender<Event>,
    ) -> io::Result<Engine> {
        let n = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_IO_THREADS);
        let mut inboxes = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let poll = Poll::new()?;
            let waker = Waker::new(poll.registry(), WAKER)?;
            let inbox = Arc::new(Inbox {
                bell: Arc::new(Doorbell::new(waker)),
                new: Mutex::new(Vec::new()),
                stopping: AtomicBool::new(false),
            });
            let mut io = IoThread {
                inbox: inbox.clone(),
                poll,
                config: config.clone(),
                pace,
                budget: budget.clone(),
                shutdown: shutdown.clone(),
                events: events.clone(),
                conns: HashMap::new(),
                scratch: vec![0u8; 64 * 1024],
                pool: BufferPool::new(IO_THREAD_POOLED),
            };
            let thread = std::thread::Builder::new()
                .name(format!("io-{i}"))
                .spawn(move || io.run())?;
            inboxes.push(inbox);
            threads.push(thread);
        }
        // A shutdown is acted on at once, not at the next tick.
        let wakers: Vec<_> = inboxes.iter().map(Arc::downgrade).collect();
        shutdown.on_trigger(move || {
            for inbox in wakers.iter().filter_map(std::sync::Weak::upgrade) {
                let _ = inbox.bell.waker.wake();
            }
        });
        Ok(Engine {
            inboxes,
            threads: Mutex::new(threads),
            next: AtomicUsize::new(0),
        })
    }

    /// Picks the I/O thread that will serve `handle` and lets its sends
    /// wake that thread; returns the thread's lane for [`hand_over`](Self::hand_over).
    pub(crate) fn assign(&self, handle: &ConnHandle) -> usize {
        let lane = self.next.fetch_add(1, Ordering::Relaxed) % self.inboxes.len().max(1);
        if let Some(inbox) = self.inboxes.get(lane) {
            let _ = handle
                .shared
                .wake
                .set(Wake::new(inbox.bell.clone(), handle.id().0 as usize));
        }
        lane
    }

    /// Gives an established connection to the I/O thread of `lane`.
    pub(crate) fn hand_over(&self, lane: usize, conn: Established) {
        if let Some(inbox) = self.inboxes.get(lane) {
            lock(&inbox.new).push(conn);
            let _ = inbox.bell.waker.wake();
        }
    }

    /// Lets the I/O threads exit once their connections are gone, and
    /// joins them.
    pub(crate) fn stop(&self) {
        for inbox in &self.inboxes {
            inbox.stopping.store(true, Ordering::SeqCst);
            let _ = inbox.bell.waker.wake();
        }
        for t in std::mem::take(&mut *lock(&self.threads)) {
            let _ = t.join();
        }
    }
}

/// How a connection ends once its reading is over.
struct Ending {
    /// Finish at the latest then.
    deadline: Instant,
    /// The `Closed` event, when it is reported only once the last frame is out.
    closed: Option<Event>,
}

/// One established connection, as its I/O thread holds it.
struct Conn {
    handle: ConnHandle,
    queues: WriterQueues,
    decoder: FrameDecoder,
    read_state: ReadState,
    _guards: Box<dyn Send>,
    /// Bytes taken off the queues, not yet written (or sealed).
    out: VecDeque<Bytes>,
    out_len: usize,
    tls_flush: bool,
    /// The last frame (goodbye, refusal, error) is in `out`.
    close_after: bool,
    notify_sent: bool,
    /// Our direction is over: closed after the last frame, or failed.
    write_done: bool,
    writable: bool,
    read_ready: bool,
    /// Events waiting for room in the application's channel.
    pending: VecDeque<Event>,
    /// Its frames the application holds, counted against the budget.
    inbound: ConnInbound,
    /// Not read because of them: waiting for the application.
    held_back: bool,
    /// The large frame now arriving, counted against the server's frames
    /// in progress.
    reservation: Option<FrameReservation>,
    /// The peer closed its side (or the socket failed): a frame waiting
    /// for room will never be finished.
    peer_gone: bool,
    /// What the peer has brought lately (judges its frames when the
    /// server is full).
    rate: Arc<ConnRate>,
    /// When the frame now arriving started, moved on by the time the
    /// connection was held back (the wait is ours, not the peer's).
    frame_started: Option<Instant>,
    /// Since when a frame's clock has been stopped by holding back.
    held_since: Option<Instant>,
    last_rx: Instant,
    next_ping: Instant,
    ping_sent: Option<(u64, Instant)>,
    pings: u64,
    close_deadline: Option<Instant>,
    ending: Option<Ending>,
    finished: bool,
    in_retry: bool,
    /// The last write stopped at [`WRITE_PER_TURN`] with more to write.
    write_more: bool,
    /// The I/O thread's round this connection last had a turn in.
    round: u64,
}

impl Conn {
    fn new(e: Established, config: &ConnConfig, pool: BufferPool) -> Conn {
        let now = Instant::now();
        Conn {
            handle: e.handle,
            queues: e.queues,
            decoder: e.decoder.with_pool(pool),
            read_state: e.read_state,
            _guards: e.guards,
            out: VecDeque::new(),
            out_len: 0,
            tls_flush: false,
            close_after: false,
            notify_sent: false,
            write_done: false,
            writable: true,
            read_ready: true,
            pending: VecDeque::new(),
            inbound: ConnInbound::default(),
            held_back: false,
            frame_started: None,
            held_since: None,
            reservation: None,
            peer_gone: false,
            rate: ConnRate::new(now),
            last_rx: now,
            next_ping: now + config.ping_interval,
            ping_sent: None,
            pings: 0,
            close_deadline: None,
            ending: None,
            finished: false,
            in_retry: false,
            write_more: false,
            round: 0,
        }
    }

    fn token(&self) -> usize {
        self.handle.id().0 as usize
    }

    fn push_out(&mut self, frame: EncodedFrame) {
        self.out_len += frame.len();
        if !frame.head.is_empty() {
            self.out.push_back(frame.head);
        }
        if let Some(tail) = frame.tail {
            if !tail.is_empty() {
                self.out.push_back(tail);
            }
        }
    }

    /// Drops `n` written bytes off the front of `out`.
    fn advance(&mut self, mut n: usize) {
        self.out_len -= n;
        while n > 0 {
            let Some(front) = self.out.front_mut() else {
                break;
            };
            if front.len() <= n {
                n -= front.len();
                self.out.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }

    fn needs_retry(&self) -> bool {
        self.write_more
            || !self.pending.is_empty()
            || (!self.finished && self.read_ready && self.ending.is_none())
    }

    fn fail(&mut self, e: io::Error) {
        self.handle.shared.abort(CloseReason::Io(e.to_string()));
        self.write_done = true;
        self.read_ready = true;
    }

    /// Writes what the socket takes: first what is already taken off the
    /// queues, then more of them, reliable before media.
    fn write(&mut self) {
        let shared = self.handle.shared.clone();
        let stream = &shared.stream;
        let tcp = stream.tcp();
        let mut written = 0;
        self.write_more = false;
        while !self.write_done {
            if written >= WRITE_PER_TURN {
                self.write_more = true;
                return;
            }
            if stream.is_tls() {
                let Some(mut session) = stream.tls_session() else {
                    return;
                };
                if session.wants_write() {
                    // Sealed records go from rustls's buffer straight to
                    // the socket (non-blocking: the lock is held for one
                    // write; what the socket does not take stays there).
                    if !self.writable {
                        return;
                    }
                    match session.write_tls(&mut &*tcp) {
                        Ok(0) => {
                            drop(session);
                            return self.fail(io::ErrorKind::WriteZero.into());
                        }
                        Ok(n) => written += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.writable = false;
                            return;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            drop(session);
                            return self.fail(e);
                        }
                    }
                    continue;
                }
                if self.out_len > 0 || self.tls_flush {
                    // Seal at most SEAL_CHUNK, and only once everything
                    // sealed before is written: what rustls holds stays
                    // bounded.
                    self.tls_flush = false;
                    let mut budget = SEAL_CHUNK;
                    let mut taken = 0;
                    for chunk in &self.out {
                        if budget == 0 {
                            break;
                        }
                        let part = chunk.get(..budget.min(chunk.len())).unwrap_or_default();
                        if let Err(e) = session.writer().write_all(part) {
                            drop(session);
                            return self.fail(e);
                        }
                        budget -= part.len();
                        taken += part.len();
                    }
                    let more = session.wants_write() || self.out_len > taken;
                    drop(session);
                    self.advance(taken);
                    if more {
                        continue;
                    }
                }
            } else if self.out_len > 0 {
                if !self.writable {
                    return;
                }
                let slices: Vec<IoSlice<'_>> = self
                    .out
                    .iter()
                    .take(MAX_IOVECS)
                    .map(|b| IoSlice::new(b))
                    .collect();
                match (&*tcp).write_vectored(&slices) {
                    Ok(0) => return self.fail(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        self.advance(n);
                        written += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.writable = false;
                        return;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return self.fail(e),
                }
                continue;
            }
            // Everything taken is written: the end, or more from the queues.
            if self.close_after {
                if stream.is_tls() && !self.notify_sent {
                    if let Some(mut session) = stream.tls_session() {
                        session.send_close_notify();
                    }
                    self.notify_sent = true;
                    self.tls_flush = true;
                    continue;
                }
                // Half-close: the peer sees EOF after our last frame; reading
                // goes on until the peer closes too.
                let _ = tcp.shutdown(SockShutdown::Write);
                self.write_done = true;
                return;
            }
            let mut got = false;
            while self.out_len < WRITE_BATCH {
                let item = self
                    .queues
                    .reliable
                    .try_recv()
                    .ok()
                    .or_else(|| self.queues.media.try_recv().ok().map(Outbound::Data));
                match item {
                    None => break,
                    Some(Outbound::Data(frame)) => {
                        shared.dequeued(frame.cost());
                        self.push_out(frame);
                    }
                    Some(Outbound::Close(last)) => {
                        self.push_out(last);
                        self.close_after = true;
                        got = true;
                        break;
                    }
                    Some(Outbound::Flush) => self.tls_flush = true,
                }
                got = true;
            }
            if !got {
                return;
            }
        }
    }
}

struct IoThread {
    inbox: Arc<Inbox>,
    poll: Poll,
    config: ConnConfig,
    pace: FramePace,
    shutdown: Shutdown,
    events: Sender<Event>,
    budget: Arc<InboundBudget>,
    conns: HashMap<usize, Conn>,
    scratch: Vec<u8>,
    /// Large frames' buffers (uploads' chunks), shared by this thread's
    /// connections and used again once a frame is dropped.
    pool: BufferPool,
}

impl IoThread {
    fn run(&mut self) {
        let mut mio_events = Events::with_capacity(1024);
        let mut retry: Vec<usize> = Vec::new();
        // A connection in `retry` has more to write now (not only to read
        // once the application catches up): poll without waiting.
        let mut hurry = false;
        let mut next_tick = Instant::now() + TICK;
        let mut shutdown_seen = false;
        // Counts the loop's rounds; a connection remembers the last one it
        // had a turn in.
        let mut round: u64 = 0;
        loop {
            let timeout = if retry.is_empty() {
                next_tick.saturating_duration_since(Instant::now())
            } else if std::mem::take(&mut hurry) {
                Duration::ZERO
            } else {
                Duration::from_millis(1)
            };
            if let Err(e) = self.poll.poll(&mut mio_events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!("I/O thread: poll failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            let mut touched: Vec<usize> = Vec::new();
            let new = std::mem::take(&mut *lock(&self.inbox.new));
            for e in new {
                if let Some(token) = self.register(e) {
                    touched.push(token);
                }
            }
            // Rung connections are looked up once, in their turn below
            // (which also lets them ring again before it takes their queues).
            touched.append(&mut self.inbox.bell.ready());
            for ev in mio_events.iter() {
                if ev.token() == WAKER {
                    continue;
                }
                if let Some(c) = self.conns.get_mut(&ev.token().0) {
                    if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                        c.read_ready = true;
                        c.peer_gone |= ev.is_read_closed() || ev.is_error();
                    }
                    if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                        c.writable = true;
                    }
                    touched.push(ev.token().0);
                }
            }
            for token in std::mem::take(&mut retry) {
                if let Some(c) = self.conns.get_mut(&token) {
                    c.in_retry = false;
                    touched.push(token);
                }
            }
            let now = Instant::now();
            let shutting_down = !shutdown_seen && self.shutdown.is_triggered();
            shutdown_seen |= shutting_down;
            let tick = now >= next_tick || shutting_down;
            if tick {
                next_tick = now + TICK;
                touched = self.conns.keys().copied().collect();
            }
            // The map is taken out while the connections take their
            // turns, which need the rest of the thread: each connection is
            // served where it lies, not moved out and back.
            round = round.wrapping_add(1);
            let mut conns = std::mem::take(&mut self.conns);
            let mut done: Vec<usize> = Vec::new();
            for token in touched {
                let Some(c) = conns.get_mut(&token) else {
                    continue;
                };
                // Rung and polled both: one turn serves both.
                if c.round == round {
                    continue;
                }
                c.round = round;
                if let Some(w) = c.handle.shared.wake.get() {
                    w.scheduled.store(false, Ordering::Release);
                }
                if tick {
                    self.timers(c);
                }
                self.turn(c);
                if c.finished && c.pending.is_empty() {
                    let fd = c.handle.shared.stream.tcp().as_raw_fd();
                    let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
                    done.push(token);
                    continue;
                }
                hurry |= c.write_more;
                if c.needs_retry() && !c.in_retry {
                    c.in_retry = true;
                    retry.push(token);
                }
            }
            for token in done {
                conns.remove(&token);
            }
            self.conns = conns;
            if self.inbox.stopping.load(Ordering::SeqCst)
                && self.conns.is_empty()
                && lock(&self.inbox.new).is_empty()
            {
                return;
            }
        }
    }

    fn register(&mut self, e: Established) -> Option<usize> {
        let c = Conn::new(e, &self.config, self.pool.clone());
        let token = c.token();
        let tcp = c.handle.shared.stream.tcp();
        let fd = tcp.as_raw_fd();
        let registered = tcp.set_nonblocking(true).and_then(|()| {
            self.poll.registry().register(
                &mut SourceFd(&fd),
                Token(token),
                Interest::READABLE | Interest::WRITABLE,
            )
        });
        if let Some(w) = c.handle.shared.wake.get() {
            w.scheduled.store(false, Ordering::Release);
        }
        let mut c = c;
        if let Err(e) = registered {
            tracing::warn!(conn = %c.handle.id(), "cannot serve the connection: {e}");
            c.fail(e);
        }
        self.conns.insert(token, c);
        Some(token)
    }

    /// Writes, reads and reports what can be, without blocking.
    fn turn(&mut self, c: &mut Conn) {
        if c.finished {
            self.flush_pending(c);
            return;
        }
        if c.ending.is_none() && c.reservation.as_ref().is_some_and(FrameReservation::is_cut) {
            self.crowded_out(c);
        }
        c.write();
        if c.ending.is_none() && c.read_ready && c.pending.is_empty() {
            self.read(c);
            c.write();
        }
        self.flush_pending(c);
        if let Some(ending) = &c.ending {
            if c.write_done || Instant::now() >= ending.deadline {
                self.finish(c);
            }
        }
    }

    /// Hands waiting events to the application while its channel has room.
    fn flush_pending(&mut self, c: &mut Conn) {
        while let Some(event) = c.pending.pop_front() {
            let is_frame = matches!(event, Event::Frame { .. });
            match self.events.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    // Past a shutdown nobody may read any more: frames that
                    // find no room are dropped, the close is still reported.
                    if !(is_frame && self.shutdown.is_triggered()) {
                        c.pending.push_front(event);
                        return;
                    }
                }
                Err(TrySendError::Disconnected(_)) => {
                    c.pending.clear();
                    if c.ending.is_none() && !c.finished {
                        self.end(c, CloseReason::Shutdown);
                    }
                    c.pending.clear();
                    return;
                }
            }
        }
    }

    fn read(&mut self, c: &mut Conn) {
        for _ in 0..READS_PER_TURN {
            loop {
                // The application holds enough of this peer's frames (or
                // of everyone's): read on once it has handled some.
                c.held_back = !self.budget.may_take(&c.inbound);
                if let Some(r) = &c.reservation {
                    r.set_held(c.held_back);
                }
                if !c.held_back && !self.reserve(c) {
                    if c.peer_gone {
                        // It cannot finish the frame that waits for room.
                        return self.end(c, peer_closed(&c.decoder));
                    }
                    c.held_back = true;
                }
                if c.held_back {
                    return;
                }
                let before = c.decoder.buffered();
                match c.decoder.decode() {
                    Ok(Some(frame)) => {
                        c.frame_started = None;
                        c.held_since = None;
                        c.reservation = None;
                        let wire = before.saturating_sub(c.decoder.buffered());
                        // What the frame holds decoded: what the inbound
                        // budget is to bound.
                        let size = frame.message.memory_size(wire);
                        if let Some(reason) = self.on_frame(c, frame, size) {
                            return self.end(c, reason);
                        }
                        if !c.pending.is_empty() {
                            // The application is behind: read no more for now.
                            return;
                        }
                    }
                    Ok(None) => {
                        if c.decoder.is_mid_frame() && c.frame_started.is_none() {
                            c.frame_started = Some(Instant::now());
                        }
                        break;
                    }
                    Err(e) => {
                        let reason = malformed(&c.handle, e);
                        return self.end(c, reason);
                    }
                }
            }
            let shared = c.handle.shared.clone();
            let decoder = &mut c.decoder;
            let read =
                shared
                    .stream
                    .read_with(&mut c.read_state, &mut self.scratch, &mut |bytes| {
                        decoder.push(bytes)
                    });
            if std::mem::take(&mut c.read_state.wants_flush) {
                c.tls_flush = true;
            }
            match read {
                Ok(0) => return self.end(c, peer_closed(&c.decoder)),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return self.end(c, peer_closed(&c.decoder))
                }
                Ok(n) => {
                    c.last_rx = Instant::now();
                    c.rate.add(n, c.last_rx);
                    if let Some(r) = &c.reservation {
                        r.arrived(n);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidData && shared.stream.is_tls() => {
                    tracing::warn!(peer = %shared.peer, conn = %shared.id, "{e}");
                    return self.end(c, CloseReason::Tls(e.to_string()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.read_ready = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.end(c, CloseReason::Io(e.to_string())),
            }
        }
    }

    /// Whether the connection may be read on: a large frame it has
    /// started has its length reserved, or can have it now.
    fn reserve(&self, c: &mut Conn) -> bool {
        let Some(h) = c
            .decoder
            .frame_in_progress()
            .filter(|h| h.len > LARGE_FRAME)
        else {
            return true;
        };
        if c.reservation.is_none() {
            c.reservation = self.budget.reserve_frame(
                c.handle.peer().ip(),
                h.len as usize,
                &c.rate,
                Some(c.handle.shared.clone()),
                Instant::now(),
            );
        }
        c.reservation.is_some()
    }

    /// Ends a connection whose frame in progress the server ended to make
    /// room: it arrived too slowly while the server was full.
    fn crowded_out(&mut self, c: &mut Conn) {
        let len = c.decoder.frame_in_progress().map_or(0, |h| h.len);
        let rate = c.reservation.take().map_or(0, |r| r.rate(Instant::now()));
        let reason = CloseReason::FrameCrowdedOut {
            arrived: c.decoder.buffered(),
            len,
            rate,
        };
        self.cut(c, ErrorCode::TOO_SLOW, reason);
    }

    /// Ends a connection for what its peer did, telling it why.
    fn cut(&mut self, c: &mut Conn, code: ErrorCode, reason: CloseReason) {
        tracing::warn!(peer = %c.handle.peer(), conn = %c.handle.id(), "{reason}");
        c.handle
            .close_with_error(code, &reason.to_string(), reason.clone());
        self.end(c, reason);
    }

    /// Handles one frame; returns a reason when the connection must end.
    fn on_frame(&mut self, c: &mut Conn, frame: Frame, size: usize) -> Option<CloseReason> {
        match frame.message {
            Message::Ping(control::Ping { nonce }) => {
                let _ = c.handle.send(&Frame::control(control::Pong { nonce }));
            }
            Message::Pong(control::Pong { nonce }) => {
                if let Some((sent_nonce, at)) = c.ping_sent {
                    if sent_nonce == nonce {
                        let rtt = at.elapsed().as_micros() as u64;
                        c.handle.shared.rtt_us.store(rtt, Ordering::Relaxed);
                        c.ping_sent = None;
                    }
                }
            }
            Message::Goodbye(control::Goodbye { reason }) => {
                return Some(CloseReason::Goodbye(reason));
            }
            _ => {
                c.pending.push_back(Event::Frame {
                    conn: c.handle.id(),
                    frame,
                    permit: self.budget.take(&c.inbound, size),
                });
                self.flush_pending(c);
                if c.ending.is_some() || c.finished {
                    return Some(CloseReason::Shutdown);
                }
            }
        }
        None
    }

    /// Keepalive, idle timeout, close linger and shutdown, every tick.
    fn timers(&mut self, c: &mut Conn) {
        let now = Instant::now();
        if c.finished || c.ending.is_some() {
            return;
        }
        if (!c.pending.is_empty() || c.held_back) && !self.shutdown.is_triggered() {
            // Waiting for the application, as a blocked reader thread
            // did: the frame's clock stops (not restarts: a peer that
            // keeps the server behind gains no time).
            if c.frame_started.is_some() && c.held_since.is_none() {
                c.held_since = Some(now);
            }
            return;
        }
        if let (Some(started), Some(since)) = (c.frame_started, c.held_since.take()) {
            c.frame_started = Some(started + now.saturating_duration_since(since));
        }
        if c.handle.is_closing() {
            let deadline = *c
                .close_deadline
                .get_or_insert(now + self.config.close_linger);
            if now >= deadline {
                self.end(c, CloseReason::Local("closed".into()));
            }
            return;
        }
        if self.shutdown.is_triggered() {
            c.handle.close("server shutting down");
            c.handle.shared.set_reason(CloseReason::Shutdown);
            return;
        }
        if let Some(started) = c.frame_started {
            let len = c.decoder.frame_in_progress().map_or(0, |h| h.len);
            let allowed = self.pace.allowed(len);
            if now.duration_since(started) >= allowed {
                let reason = CloseReason::FrameTooSlow {
                    arrived: c.decoder.buffered(),
                    len,
                    allowed,
                };
                return self.cut(c, ErrorCode::TIMEOUT, reason);
            }
        }
        if now.duration_since(c.last_rx) >= self.config.idle_timeout {
            let reason = CloseReason::IdleTimeout(self.config.idle_timeout);
            c.handle
                .close_with_error(ErrorCode::TIMEOUT, &reason.to_string(), reason.clone());
            self.end(c, reason);
            return;
        }
        if now >= c.next_ping {
            c.pings += 1;
            let nonce = c.pings;
            c.ping_sent = Some((nonce, now));
            let _ = c.handle.send(&Frame::control(control::Ping { nonce }));
            c.next_ping = now + self.config.ping_interval;
        }
    }

    /// Reading is over for `reason`: reports the close (now, or once the
    /// last frame is out) and lets the writing finish.
    fn end(&mut self, c: &mut Conn, reason: CloseReason) {
        if c.ending.is_some() || c.finished {
            return;
        }
        let shared = c.handle.shared.clone();
        let peer_goodbye = matches!(reason, CloseReason::Goodbye(_)) && !c.handle.is_closing();
        let closed = shared.closed(reason);
        let deadline = Instant::now() + self.config.close_linger;
        if peer_goodbye {
            // The application may still answer what the peer sent just
            // before its goodbye: report the close now and wait (up to the
            // linger) for its own `close` to be flushed.
            c.pending.push_back(closed);
            c.ending = Some(Ending {
                deadline,
                closed: None,
            });
        } else if shared.closing.swap(true, Ordering::SeqCst) {
            // A graceful close is under way: let the last frame out first.
            c.ending = Some(Ending {
                deadline,
                closed: Some(closed),
            });
        } else {
            let _ = shared.stream.shutdown(SockShutdown::Both);
            c.pending.push_back(closed);
            c.finished = true;
        }
    }

    fn finish(&mut self, c: &mut Conn) {
        let shared = c.handle.shared.clone();
        shared.closing.store(true, Ordering::SeqCst);
        let _ = shared.stream.shutdown(SockShutdown::Both);
        if let Some(closed) = c.ending.take().and_then(|e| e.closed) {
            c.pending.push_back(closed);
        }
        c.finished = true;
        self.flush_pending(c);
    }
}

/// How long a frame may take to arrive once it has started: a grace, and
/// its length at a minimum rate. A peer cannot make the server hold a
/// frame's memory for longer by sending it slowly.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FramePace {
    pub(crate) grace: Duration,
    /// Bytes per second; 0 leaves frames unlimited in time.
    pub(crate) min_rate: u32,
}

impl FramePace {
    fn allowed(&self, len: u32) -> Duration {
        if self.min_rate == 0 {
            return Duration::MAX;
        }
        self.grace + Duration::from_secs_f64(f64::from(len) / f64::from(self.min_rate))
    }
}

fn peer_closed(decoder: &FrameDecoder) -> CloseReason {
    match decoder.buffered() {
        0 => CloseReason::PeerClosed,
        buffered => CloseReason::PeerClosedMidFrame { buffered },
    }
}

fn malformed(handle: &ConnHandle, e: ProtoError) -> CloseReason {
    tracing::warn!(peer = %handle.peer(), conn = %handle.id(), "malformed input: {e}");
    let code = match e {
        ProtoError::UnsupportedVersion { .. } => ErrorCode::VERSION_MISMATCH,
        ProtoError::FrameTooLarge { .. } => ErrorCode::TOO_LARGE,
        _ => ErrorCode::MALFORMED,
    };
    let reason = CloseReason::Malformed(e.clone());
    handle.close_with_error(code, &e.to_string(), reason.clone());
    reason
}
