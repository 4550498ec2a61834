//! `lanlink-bench`: load generators for a lanlink server running on this
//! machine.
//!
//! ```text
//! lanlink-server --bind 127.0.0.1:7878 --rate-burst 1000 --rate-per-second 100000 --no-address-limits &
//! lanlink-bench chat --addr 127.0.0.1:7878 --clients 500 --rate 0.2 --duration 10 --server-pid $!
//! ```
//!
//! `chat` connects N clients (`bench-0`, `bench-1`, …) with
//! [`lanlink_transport::Client`] and has every client say a line at a fixed
//! rate. With one room (the default) everyone talks in the server's default
//! room, so every line goes to all N−1 others; with `--rooms R`, client *i*
//! joins `bench-{i mod R}` and the fan-out drops to about N/R − 1. Each line
//! carries the microsecond at which it was queued, measured from an
//! [`Instant`] shared by the whole process, so a receiver knows the
//! end-to-end latency the moment the line arrives: the sender's queue and
//! writer thread, the server, the recipient's socket and reader thread, up to
//! this program taking it off the recipient's event channel.
//!
//! # Threads
//! Each `Client` already has a reader and a writer thread. On top of those
//! there are only a few *sender* threads, each walking a fixed schedule over
//! its share of the clients (sleeping until the next line is due), and a few
//! *receiver* threads, each sweeping its share of the clients' event
//! channels. A receiver blocks (on a `Select` over its channels) only after
//! a sweep found nothing: registering with hundreds of channels is costly,
//! and under load the sweeps keep finding work and never block.
//!
//! The load generator shares the machine's cores with the server, and its
//! own clients cost about as much CPU as the server does: the report gives
//! both processes' CPU, and the whole machine's, so figures from a busy
//! machine can be recognised.
//!
//! Only loopback addresses are accepted, and every count and duration has
//! an upper limit: this is a tool for measuring one's own server.

use std::fmt::Write as _;
use std::net::ToSocketAddrs;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use crossbeam_channel::{Receiver, Select, TryRecvError};
use lanlink_client::{Session, Trust};
use lanlink_proto::{chat, Capabilities, ErrorCode, Frame, Message};
use lanlink_tools::fanout::FanoutArgs;
use lanlink_tools::procinfo::{self, CpuUse, CpuWindow, ProcSample};
use lanlink_tools::Latency;
use lanlink_transport::{Client, ConnHandle, Event};

/// Load generators for a lanlink server on this machine.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Chat load: N clients each saying a line at a fixed rate; reports
    /// delivered messages/s, end-to-end latency and the server's memory.
    Chat(ChatArgs),
    /// Chat fan-out in one room from a few event-driven threads, in plain
    /// lanlink or IRC (to compare with an IRC server); see
    /// lanlink_tools::fanout.
    Fanout(FanoutArgs),
}

/// Options of `lanlink-bench chat`.
#[derive(clap::Args, Debug, Clone)]
struct ChatArgs {
    /// The server, as HOST:PORT; must be a loopback address. Several,
    /// comma-separated (servers joined through NATS): client *i* connects
    /// to the (*i* mod count)th.
    #[arg(long, value_delimiter = ',', required = true)]
    addr: Vec<String>,
    /// Clients to connect (named bench-0, bench-1, …).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=5000))]
    clients: u32,
    /// Chat lines per second each client sends (fractions allowed).
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of sending before measuring starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Rooms the clients are spread over; each line reaches the other members
    /// of its sender's room.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=5000))]
    rooms: u32,
    /// Length of each chat line in bytes (at least the timestamp's).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    size: u32,
    /// The server's process id: report its memory and CPU from /proc (a
    /// process of this user: its descriptors are read too).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Threads that pace the senders.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    sender_threads: u32,
    /// Threads that poll the clients' incoming messages.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    receiver_threads: u32,
    /// Connect without TLS (to a server run with --plain).
    #[arg(long)]
    plain: bool,
    /// The server's certificate fingerprint (default: accept the one it
    /// presents, without remembering it).
    #[arg(long, conflicts_with = "plain")]
    server_fingerprint: Option<lanlink_transport::Fingerprint>,
    /// The server's access token, if it requires one.
    #[arg(long, env = "LANLINK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Also append the JSON object, as one line, to this file.
    #[arg(long, value_name = "PATH")]
    json_out: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    if std::env::var_os("RUST_LOG").is_some() {
        lanlink_apps::init_logging();
    }
    let args = match Args::parse().command {
        Cmd::Chat(args) => args,
        Cmd::Fanout(args) => return fanout(&args),
    };
    match run_chat(&args) {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            if let Some(path) = &args.json_out {
                if let Err(e) = append_line(path, &report.to_json()) {
                    eprintln!("lanlink-bench: cannot write {}: {e}", path.display());
                    return ExitCode::from(1);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lanlink-bench: {e}");
            ExitCode::from(1)
        }
    }
}

/// `lanlink-bench fanout`: the run and its report.
fn fanout(args: &FanoutArgs) -> ExitCode {
    let report = match lanlink_tools::fanout::run(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lanlink-bench: {e}");
            return ExitCode::from(1);
        }
    };
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if let Some(path) = &args.json_out {
        if let Err(e) = append_line(path, &report.to_json()) {
            eprintln!("lanlink-bench: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

/// The longest a receiver waits before looking at the stop flag again.
const RECEIVER_WAKE: Duration = Duration::from_millis(20);
/// Events taken from one client's channel before moving to the next, so a
/// busy client cannot starve the others' latency figures.
const POLL_BATCH: usize = 64;
/// After the senders stop, how long to wait for lines still in flight.
const DRAIN: Duration = Duration::from_secs(2);

/// Everything the threads share. Times are microseconds since `base`.
struct Run {
    base: Instant,
    /// Tags every line of this run, so lines replayed from a room's history
    /// by an earlier run are never mistaken for ours.
    tag: String,
    window_start_us: u64,
    window_end_us: u64,
    /// Lines of this run received so far, all receivers together.
    received: AtomicU64,
    /// Set once the clients start closing: from then on receivers only
    /// empty the channels (a client's reader waits for room in its channel,
    /// so nobody reading would stall its close), and count nothing.
    closing: AtomicBool,
    stop_receivers: AtomicBool,
}

impl Run {
    fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }
}

fn run_chat(args: &ChatArgs) -> Result<ChatReport, String> {
    check_args(args)?;
    let clients = args.clients as usize;
    check_fd_limit(clients)?;

    let base = Instant::now();
    let tag = format!(
        "lb{:08x}",
        std::process::id() ^ (base.elapsed().as_nanos() as u32) ^ wall_nanos()
    );
    let t_connect = Instant::now();
    let (mut connected, connect_errors) = connect_all(args);
    let connect_secs = t_connect.elapsed().as_secs_f64();
    if connected.len() < 2 {
        return Err(format!(
            "only {} of {clients} clients connected: {}",
            connected.len(),
            connect_errors.join("; ")
        ));
    }

    let rooms = (args.rooms as usize).min(connected.len());
    let mut room_size = vec![0u64; rooms];
    for i in 0..connected.len() {
        room_size[i % rooms] += 1;
    }
    let setup_start = base.elapsed();
    let warmup = Duration::from_secs_f64(args.warmup);
    let duration = Duration::from_secs_f64(args.duration);

    let inboxes = enter_rooms(&connected, rooms)?;
    let room_of: Vec<String> = inboxes.iter().map(|i| i.room.clone()).collect();
    let setup_secs = (base.elapsed() - setup_start).as_secs_f64();

    // The schedule starts just after this; measuring starts after the warm-up.
    let start_us = base.elapsed().as_micros() as u64 + 10_000;
    let window_start_us = start_us + warmup.as_micros() as u64;
    let run = Arc::new(Run {
        base,
        tag,
        window_start_us,
        window_end_us: window_start_us + duration.as_micros() as u64,
        received: AtomicU64::new(0),
        closing: AtomicBool::new(false),
        stop_receivers: AtomicBool::new(false),
    });

    // Receivers: client i is polled by thread i mod R.
    let receiver_threads = (args.receiver_threads as usize).min(inboxes.len());
    let mut shares: Vec<Vec<Inbox>> = (0..receiver_threads).map(|_| Vec::new()).collect();
    for (i, inbox) in inboxes.into_iter().enumerate() {
        shares[i % receiver_threads].push(inbox);
    }
    let receivers: Vec<JoinHandle<Received>> = shares
        .into_iter()
        .enumerate()
        .map(|(t, share)| {
            let run = run.clone();
            spawn(&format!("bench-recv-{t}"), move || receive(&run, share))
        })
        .collect();

    // Senders: client i is paced by thread i mod S.
    let sender_threads = (args.sender_threads as usize).min(connected.len());
    let mut outboxes: Vec<Vec<Outbox>> = (0..sender_threads).map(|_| Vec::new()).collect();
    for (i, c) in connected.iter().enumerate() {
        outboxes[i % sender_threads].push(Outbox {
            handle: c.handle().clone(),
            room: room_of[i].clone(),
            fanout: room_size[i % rooms] - 1,
            open: true,
        });
    }
    let senders: Vec<JoinHandle<Sent>> = outboxes
        .into_iter()
        .enumerate()
        .map(|(t, share)| {
            let run = run.clone();
            let plan = SendPlan {
                // Interleave the threads' schedules instead of firing together.
                first_due_us: start_us
                    + (t as f64 / (sender_threads as f64 * args.rate * share.len() as f64) * 1e6)
                        as u64,
                interval_us: 1e6 / (args.rate * share.len() as f64),
                end_us: run.window_end_us,
                size: args.size as usize,
            };
            spawn(&format!("bench-send-{t}"), move || send(&run, plan, share))
        })
        .collect();

    // CPU is sampled over the window; memory at its end, while everyone is
    // still connected and traffic is at its steady state.
    sleep_until(&run, run.window_start_us);
    let window = CpuWindow::start(args.server_pid);
    sleep_until(&run, run.window_end_us);
    let cpu = window.finish();
    let server = args.server_pid.and_then(ProcSample::of);

    let mut sent = Sent::default();
    for s in senders {
        sent.add(s.join().map_err(|_| "a sender thread panicked")?);
    }
    // Wait for lines still on their way.
    let drain_deadline = Instant::now() + DRAIN;
    while run.received.load(Ordering::Relaxed) < sent.expected && Instant::now() < drain_deadline {
        std::thread::sleep(Duration::from_millis(5));
    }

    // Close: queue every goodbye first so the server handles them together,
    // then wait for each connection to finish. The receivers keep emptying
    // the channels meanwhile, then stop.
    run.closing.store(true, Ordering::Relaxed);
    let t_close = Instant::now();
    for c in &connected {
        c.handle().close("bench finished");
    }
    for c in connected.drain(..) {
        c.close("bench finished");
    }
    run.stop_receivers.store(true, Ordering::Relaxed);
    let mut received = Received::new();
    for r in receivers {
        received.add(r.join().map_err(|_| "a receiver thread panicked")?);
    }
    let close_secs = t_close.elapsed().as_secs_f64();

    let window_secs = duration.as_secs_f64();
    Ok(ChatReport {
        clients_asked: clients,
        clients_connected: room_of.len(),
        connect_errors,
        connect_secs,
        setup_secs,
        close_secs,
        rooms,
        fanout_max: room_size.iter().max().copied().unwrap_or(1) - 1,
        rate: args.rate,
        size: args.size as usize,
        warmup_secs: args.warmup,
        window_secs,
        sent_per_sec: sent.in_window as f64 / window_secs,
        target_sent_per_sec: args.rate * room_of.len() as f64,
        sender_lag_max_ms: sent.max_lag_us as f64 / 1000.0,
        delivered_per_sec: received.in_window as f64 / window_secs,
        expected_delivered_per_sec: args.rate
            * room_size
                .iter()
                .map(|&n| (n * n.saturating_sub(1)) as f64)
                .sum::<f64>(),
        latency: received.latency,
        rate_limited: received.rate_limited,
        other_errors: received.other_errors,
        first_error: received.first_error,
        send_failures: sent.failures,
        disconnected: received.disconnected,
        owed: sent.expected,
        undelivered: sent.expected.saturating_sub(received.total),
        cpu,
        server,
    })
}

/// Connects `--clients` clients one by one. The server welcomes each, and
/// everyone already in its default room hears about it, so this is where the
/// O(N²) presence traffic happens, before anything is measured. Gives up
/// after ten failures: a full or unreachable server refuses the rest too.
fn connect_all(args: &ChatArgs) -> (Vec<Client>, Vec<String>) {
    let mut connected = Vec::with_capacity(args.clients as usize);
    let mut errors = Vec::new();
    let trust = match (args.plain, args.server_fingerprint) {
        (true, _) => Trust::Plain,
        (false, Some(fp)) => Trust::Fingerprint(fp),
        (false, None) => Trust::AnyCertificate,
    };
    for i in 0..args.clients {
        let addr = &args.addr[i as usize % args.addr.len()];
        let connected_one = Session::builder(addr)
            .name(format!("bench-{i}"))
            .token_opt(args.token.clone())
            .trust(trust.clone())
            .capabilities(Capabilities::CHAT)
            .connect_transport();
        match connected_one {
            Ok((c, _)) => connected.push(c),
            Err(e) => {
                errors.push(format!("bench-{i}: {e}"));
                if errors.len() >= 10 {
                    break;
                }
            }
        }
    }
    (connected, errors)
}

/// Puts client *i* in room *i* mod `rooms` and waits until all are there.
///
/// With one room, everyone talks in the server's default room, where
/// connecting already put them; its name comes with the roster every
/// newcomer gets. With more, client *i* joins `bench-{i mod rooms}`, and the
/// roster the server sends once the join took effect says it is in.
fn enter_rooms(connected: &[Client], rooms: usize) -> Result<Vec<Inbox>, String> {
    let mut inboxes: Vec<Inbox> = Vec::with_capacity(connected.len());
    let mut wanted: Vec<Option<String>> = Vec::with_capacity(connected.len());
    for (i, c) in connected.iter().enumerate() {
        let room = (rooms > 1).then(|| format!("bench-{}", i % rooms));
        if let Some(room) = &room {
            let join = chat::Join {
                room: room.clone(),
                password: None,
            };
            c.send(&Frame::control(join))
                .map_err(|e| format!("bench-{i}: cannot join {room}: {e}"))?;
        }
        wanted.push(room);
        inboxes.push(Inbox {
            events: c.events().clone(),
            room: String::new(),
            open: true,
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut joined = 0;
    while joined < inboxes.len() && Instant::now() < deadline {
        let mut idle = true;
        for (inbox, wanted) in inboxes.iter_mut().zip(&wanted) {
            while let Ok(event) = inbox.events.try_recv() {
                idle = false;
                let Event::Frame { frame, .. } = event else {
                    continue;
                };
                let Message::Roster(roster) = frame.message else {
                    continue;
                };
                if inbox.room.is_empty() && wanted.as_ref().is_none_or(|w| *w == roster.room) {
                    inbox.room = roster.room;
                    joined += 1;
                }
            }
        }
        if idle {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    if joined < inboxes.len() {
        return Err(format!(
            "only {joined} of {} clients got into their rooms within 30 s",
            inboxes.len()
        ));
    }
    if rooms == 1 && inboxes.iter().any(|i| i.room != inboxes[0].room) {
        return Err("the clients were put in different default rooms".into());
    }
    Ok(inboxes)
}

fn check_args(args: &ChatArgs) -> Result<(), String> {
    if !(args.rate > 0.0 && args.rate <= 10_000.0) {
        return Err("--rate must be above 0 and at most 10000 lines/s per client".into());
    }
    if !(args.duration > 0.0 && args.duration <= 600.0) {
        return Err("--duration must be above 0 and at most 600 s".into());
    }
    if !(args.warmup >= 0.0 && args.warmup <= 60.0) {
        return Err("--warmup must be between 0 and 60 s".into());
    }
    if args.rooms > args.clients {
        return Err("--rooms cannot exceed --clients".into());
    }
    // A load generator aimed at someone else's machine is an attack: only
    // this machine's loopback addresses are accepted.
    if args.addr.is_empty() || args.addr.len() > 16 {
        return Err("--addr takes 1 to 16 servers".into());
    }
    for addr in &args.addr {
        let addrs: Vec<_> = addr
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve --addr {addr}: {e}"))?
            .collect();
        if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
            return Err(format!(
                "--addr {addr} is not a loopback address; lanlink-bench only loads a server on this machine"
            ));
        }
    }
    Ok(())
}

/// Each client holds one socket; make sure the soft limit leaves room for
/// them and for the few files the process has open besides.
fn check_fd_limit(clients: usize) -> Result<(), String> {
    match procinfo::open_files_limit() {
        Some(soft) if soft < clients as u64 + 64 => Err(format!(
            "{clients} clients need about {} file descriptors, the limit is {soft}: \
             raise it with `ulimit -n {}` (the server needs as many)",
            clients + 64,
            (clients + 64).next_power_of_two()
        )),
        _ => Ok(()),
    }
}

fn append_line(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{line}")
}

fn wall_nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

fn spawn<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .unwrap_or_else(|e| panic!("cannot spawn thread {name}: {e}"))
}

fn sleep_until(run: &Run, at_us: u64) {
    let now = run.now_us();
    if at_us > now {
        std::thread::sleep(Duration::from_micros(at_us - now));
    }
}

// ---------------------------------------------------------------- senders

/// One client as its sender thread sees it.
struct Outbox {
    handle: ConnHandle,
    room: String,
    /// How many others receive each of its lines.
    fanout: u64,
    open: bool,
}

/// A sender thread's schedule: line *m* of the thread is due at
/// `first_due_us + m × interval_us`, and goes to client *m* mod the share.
struct SendPlan {
    first_due_us: u64,
    interval_us: f64,
    end_us: u64,
    size: usize,
}

#[derive(Default)]
struct Sent {
    total: u64,
    in_window: u64,
    /// Deliveries owed for the lines sent: each line × its room's fan-out.
    expected: u64,
    failures: u64,
    /// How far behind its schedule a sender thread fell.
    max_lag_us: u64,
}

impl Sent {
    fn add(&mut self, other: Sent) {
        self.total += other.total;
        self.in_window += other.in_window;
        self.expected += other.expected;
        self.failures += other.failures;
        self.max_lag_us = self.max_lag_us.max(other.max_lag_us);
    }
}

fn send(run: &Run, plan: SendPlan, mut share: Vec<Outbox>) -> Sent {
    let mut sent = Sent::default();
    let mut text = String::with_capacity(plan.size + 32);
    let mut m: u64 = 0;
    loop {
        let due = plan.first_due_us + (m as f64 * plan.interval_us) as u64;
        if due >= plan.end_us {
            break;
        }
        let now = run.now_us();
        if due > now {
            std::thread::sleep(Duration::from_micros(due - now));
            continue;
        }
        sent.max_lag_us = sent.max_lag_us.max(now - due);
        let n = share.len();
        let Some(out) = share.get_mut((m % n as u64) as usize) else {
            break;
        };
        m += 1;
        if !out.open {
            continue;
        }
        text.clear();
        let t = run.now_us();
        let _ = write!(text, "{} {t} ", run.tag);
        while text.len() < plan.size {
            text.push('.');
        }
        let line = chat::ChatMessage {
            room: out.room.clone(),
            from: String::new(),
            text: text.clone(),
            action: false,
            timestamp_ms: 0,
        };
        match out.handle.send(&Frame::control(line)) {
            Ok(()) => {
                sent.total += 1;
                sent.expected += out.fanout;
                if t >= run.window_start_us {
                    sent.in_window += 1;
                }
            }
            Err(_) => {
                sent.failures += 1;
                out.open = false;
            }
        }
    }
    sent
}

// -------------------------------------------------------------- receivers

/// One client as its receiver thread sees it.
struct Inbox {
    events: Receiver<Event>,
    /// The room it talks in; empty until the server confirms it is in.
    room: String,
    open: bool,
}

struct Received {
    /// Lines of this run received, window or not.
    total: u64,
    /// Lines received inside the measurement window.
    in_window: u64,
    /// Latency of the lines received inside the window.
    latency: Latency,
    rate_limited: u64,
    other_errors: u64,
    first_error: Option<String>,
    disconnected: u64,
}

impl Received {
    fn new() -> Received {
        Received {
            total: 0,
            in_window: 0,
            latency: Latency::new(),
            rate_limited: 0,
            other_errors: 0,
            first_error: None,
            disconnected: 0,
        }
    }

    fn add(&mut self, other: Received) {
        self.total += other.total;
        self.in_window += other.in_window;
        self.latency.merge(&other.latency);
        self.rate_limited += other.rate_limited;
        self.other_errors += other.other_errors;
        self.first_error = self.first_error.take().or(other.first_error);
        self.disconnected += other.disconnected;
    }
}

fn receive(run: &Run, mut share: Vec<Inbox>) -> Received {
    let mut got = Received::new();
    let mut published = 0;
    while !run.stop_receivers.load(Ordering::Relaxed) {
        // Waiting on hundreds of channels at once is costly (every channel
        // registers the waiter), so wait only when a whole pass found
        // nothing; under load, passes keep finding work and never wait.
        // A closed channel is always "ready": rebuild without it.
        let open: Vec<Receiver<Event>> = share
            .iter()
            .filter(|i| i.open)
            .map(|i| i.events.clone())
            .collect();
        let mut waiter = Select::new();
        for events in &open {
            waiter.recv(events);
        }
        while !run.stop_receivers.load(Ordering::Relaxed) {
            let (found, closed) = poll_pass(run, &mut share, &mut got);
            if got.total != published {
                run.received
                    .fetch_add(got.total - published, Ordering::Relaxed);
                published = got.total;
            }
            if closed {
                break;
            }
            if !found {
                let _ = waiter.ready_timeout(RECEIVER_WAKE);
            }
        }
    }
    got
}

/// Takes what is waiting on every open channel of `share`, a bounded batch
/// per channel; says whether anything came and whether a channel closed.
fn poll_pass(run: &Run, share: &mut [Inbox], got: &mut Received) -> (bool, bool) {
    let (mut found, mut closed) = (false, false);
    for inbox in share.iter_mut().filter(|i| i.open) {
        for _ in 0..POLL_BATCH {
            match inbox.events.try_recv() {
                Ok(event) => {
                    found = true;
                    on_event(run, inbox, event, got);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    inbox.open = false;
                    break;
                }
            }
        }
        closed |= !inbox.open;
    }
    (found, closed)
}

fn on_event(run: &Run, inbox: &mut Inbox, event: Event, got: &mut Received) {
    if run.closing.load(Ordering::Relaxed) {
        return;
    }
    let frame = match event {
        Event::Frame { frame, .. } => frame,
        Event::Closed { reason, .. } => {
            inbox.open = false;
            got.disconnected += 1;
            got.first_error
                .get_or_insert_with(|| format!("disconnected: {reason}"));
            return;
        }
        Event::Hello { .. } => return,
    };
    match frame.message {
        Message::ChatMessage(m) => {
            let Some(sent_us) = m
                .text
                .strip_prefix(run.tag.as_str())
                .and_then(|rest| rest.split(' ').nth(1))
                .and_then(|t| t.parse::<u64>().ok())
            else {
                return;
            };
            let now = run.now_us();
            got.total += 1;
            if now >= run.window_start_us && now < run.window_end_us {
                got.in_window += 1;
                got.latency.record_us(now.saturating_sub(sent_us));
            }
        }
        Message::Error(e) => {
            if e.code == ErrorCode::RATE_LIMITED {
                got.rate_limited += 1;
            } else {
                got.other_errors += 1;
            }
            got.first_error
                .get_or_insert_with(|| format!("server error {}: {}", e.code.0, e.message));
        }
        _ => {}
    }
}

// ----------------------------------------------------------------- report

struct ChatReport {
    clients_asked: usize,
    clients_connected: usize,
    connect_errors: Vec<String>,
    connect_secs: f64,
    setup_secs: f64,
    close_secs: f64,
    rooms: usize,
    fanout_max: u64,
    rate: f64,
    size: usize,
    warmup_secs: f64,
    window_secs: f64,
    sent_per_sec: f64,
    target_sent_per_sec: f64,
    sender_lag_max_ms: f64,
    delivered_per_sec: f64,
    expected_delivered_per_sec: f64,
    latency: Latency,
    rate_limited: u64,
    other_errors: u64,
    first_error: Option<String>,
    send_failures: u64,
    disconnected: u64,
    /// Deliveries owed for every line sent (each line × its fan-out).
    owed: u64,
    undelivered: u64,
    /// The server's, the bench's and the whole machine's CPU over the
    /// window: what is neither server nor bench is someone else's load,
    /// which skews every figure.
    cpu: CpuUse,
    /// The server at the window's end.
    server: Option<ProcSample>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl ChatReport {
    fn errors(&self) -> u64 {
        self.rate_limited
            + self.other_errors
            + self.send_failures
            + self.disconnected
            + self.connect_errors.len() as u64
    }

    fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "lanlink-bench chat: {} clients, {} room(s) (fan-out up to {}), {} line(s)/s each, \
             {}-byte lines, {:.0} s measured after {:.0} s warm-up",
            self.clients_asked,
            self.rooms,
            self.fanout_max,
            self.rate,
            self.size,
            self.window_secs,
            self.warmup_secs
        );
        let _ = writeln!(
            s,
            "  clients     {}/{} connected in {:.2} s, in their rooms {:.2} s later; closed in {:.2} s",
            self.clients_connected,
            self.clients_asked,
            self.connect_secs,
            self.setup_secs,
            self.close_secs
        );
        let _ = writeln!(
            s,
            "  sent        {:.0} msg/s (target {:.0}; sender lag up to {:.1} ms)",
            self.sent_per_sec, self.target_sent_per_sec, self.sender_lag_max_ms
        );
        let _ = writeln!(
            s,
            "  delivered   {:.0} msg/s (offered {:.0})",
            self.delivered_per_sec, self.expected_delivered_per_sec
        );
        let _ = writeln!(s, "  latency     {}", self.latency);
        let _ = writeln!(
            s,
            "  errors      {} (rate-limited {}, other server errors {}, failed sends {}, \
             disconnected {}, failed connects {})",
            self.errors(),
            self.rate_limited,
            self.other_errors,
            self.send_failures,
            self.disconnected,
            self.connect_errors.len(),
        );
        let _ = writeln!(
            s,
            "  backlog     {} of {} deliveries owed still missing {:.0} s after the last line was sent",
            self.undelivered,
            self.owed,
            DRAIN.as_secs_f64(),
        );
        if let Some(e) = self.first_error.as_ref().or(self.connect_errors.first()) {
            let _ = writeln!(s, "  first error {e}");
        }
        let cpu = &self.cpu;
        if let Some(m) = &self.server {
            let _ = writeln!(
                s,
                "  server      VmRSS {:.1} MiB, VmHWM {:.1} MiB, {} threads, CPU {:.0} % of one core",
                mib(m.rss_kib),
                mib(m.hwm_kib),
                m.threads,
                cpu.process.unwrap_or(0.0) * 100.0
            );
        }
        if let Some(me) = cpu.me {
            let _ = writeln!(s, "  bench       CPU {:.0} % of one core", me * 100.0);
        }
        if let Some(busy) = cpu.machine {
            let others = busy - cpu.me.unwrap_or(0.0) - cpu.process.unwrap_or(0.0);
            let _ = writeln!(
                s,
                "  machine     {:.0} % of one core busy in all ({:.0} % neither server nor bench), {} cores",
                busy * 100.0,
                others.max(0.0) * 100.0,
                std::thread::available_parallelism().map_or(0, |n| n.get())
            );
        }
        s
    }

    fn to_json(&self) -> String {
        let l = &self.latency;
        let opt = |v: Option<f64>| v.map_or_else(|| "null".to_owned(), |v| format!("{v:.3}"));
        let mut s = String::from("{");
        let _ = write!(
            s,
            "\"clients\":{},\"clients_connected\":{},\"rooms\":{},\"fanout_max\":{},\
             \"rate_per_client\":{},\"size\":{},\"warmup_s\":{},\"duration_s\":{},\
             \"connect_s\":{:.3},\"setup_s\":{:.3},\"close_s\":{:.3},\
             \"sent_per_s\":{:.1},\"target_sent_per_s\":{:.1},\"sender_lag_max_ms\":{:.3},\
             \"delivered_per_s\":{:.1},\"offered_delivered_per_s\":{:.1},\
             \"latency_ms\":{{\"p50\":{:.3},\"p99\":{:.3},\"p999\":{:.3},\"max\":{:.3},\"samples\":{}}},\
             \"errors\":{{\"total\":{},\"rate_limited\":{},\"other\":{},\"failed_sends\":{},\
             \"disconnected\":{},\"failed_connects\":{}}},\"owed\":{},\"undelivered\":{},\
             \"server_cpu_cores\":{},\"bench_cpu_cores\":{},\"machine_cpu_cores\":{}",
            self.clients_asked,
            self.clients_connected,
            self.rooms,
            self.fanout_max,
            self.rate,
            self.size,
            self.warmup_secs,
            self.window_secs,
            self.connect_secs,
            self.setup_secs,
            self.close_secs,
            self.sent_per_sec,
            self.target_sent_per_sec,
            self.sender_lag_max_ms,
            self.delivered_per_sec,
            self.expected_delivered_per_sec,
            l.percentile_ms(50.0),
            l.percentile_ms(99.0),
            l.percentile_ms(99.9),
            l.max_ms(),
            l.count(),
            self.errors(),
            self.rate_limited,
            self.other_errors,
            self.send_failures,
            self.disconnected,
            self.connect_errors.len(),
            self.owed,
            self.undelivered,
            opt(self.cpu.process),
            opt(self.cpu.me),
            opt(self.cpu.machine),
        );
        if let Some(m) = &self.server {
            let _ = write!(
                s,
                ",\"server\":{{\"vm_rss_mib\":{:.1},\"vm_hwm_mib\":{:.1},\"threads\":{}}}",
                mib(m.rss_kib),
                mib(m.hwm_kib),
                m.threads
            );
        }
        s.push('}');
        s
    }
}
