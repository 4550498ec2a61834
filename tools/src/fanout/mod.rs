//! Chat fan-out load in one room, speaking plain lanlink or IRC, so that a
//! lanlink server and an IRC server (InspIRCd) can be measured with the
//! same load shape by the same load tool (`lanlink-bench fanout`,
//! `scripts/bench-irc`).
//!
//! N clients connect (a bounded number at a time) and get into one room:
//! lanlink's default room, or IRC channel `#bench` after registration.
//! Clients 0..S then say lines at a fixed aggregate rate, spread evenly over
//! the senders and the schedule; each line's text is `LB <sender> <seq>
//! <µs> ...` padded to its size, the microsecond being when it was written
//! to the socket, measured from an `Instant` shared by the whole process.
//! Every recipient takes the latency the moment its bytes are decoded, and
//! checks each sender's sequence numbers for gaps. After the window the
//! senders stop and lines in flight get a few seconds to arrive; what never
//! arrives is reported as lost.
//!
//! A few threads (the `engine` module) own every socket; nothing blocks, so 5,000
//! clients cost the load tool a few threads, not 10,000. Only loopback
//! addresses are accepted and every count and duration has a limit.

mod engine;
mod report;
mod wire;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::procinfo::{self, CpuWindow, ProcSample};
use engine::{Plan, Shared, Tally};
pub use report::FanoutReport;
pub use wire::Proto;

/// Options of `lanlink-bench fanout`.
#[derive(clap::Args, Debug, Clone)]
pub struct FanoutArgs {
    /// The server, as HOST:PORT; must be a loopback address.
    #[arg(long)]
    pub addr: String,
    /// The protocol the clients speak (lanlink means plain, no TLS).
    #[arg(long, value_enum, default_value_t = Proto::Lanlink)]
    pub proto: Proto,
    /// Clients in the room (named bench-0, bench-1, …).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(2..=10_000))]
    pub clients: u32,
    /// Clients that say lines (the first S); default every client.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub senders: Option<u32>,
    /// Delivered lines per second wanted, all recipients together: the
    /// senders say this ÷ (clients − 1) lines/s between them.
    #[arg(long, default_value_t = 50_000.0)]
    pub delivered: f64,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of sending before measuring starts.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Length of each line's text in bytes.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(32..=400))]
    pub size: u32,
    /// Threads that own the clients' sockets.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub threads: u32,
    /// The server's process id: report its memory and CPU from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also append the JSON object, as one line, to this file.
    #[arg(long, value_name = "PATH")]
    pub json_out: Option<std::path::PathBuf>,
}

/// The longest the clients may take to get into the room, all together.
const CONNECT_PATIENCE: Duration = Duration::from_secs(300);
/// After the last line, how long lines in flight may take to arrive.
const DRAIN: Duration = Duration::from_secs(5);
/// Pause between everyone being in the room and the first line, so that
/// the presence traffic of the last joins is out of the way.
const SETTLE: Duration = Duration::from_millis(500);
/// The most (receiver, sender) pairs tracked for gaps: 4 bytes each.
const MAX_PAIRS: u64 = 16_000_000;

/// Runs the load described by `args`; the report, or why it could not run.
pub fn run(args: &FanoutArgs) -> Result<FanoutReport, String> {
    let addr = check(args)?;
    let senders = args.senders.unwrap_or(args.clients).min(args.clients);
    let rate = args.delivered / f64::from(args.clients - 1);
    let plan = Plan {
        proto: args.proto,
        addr,
        clients: args.clients,
        threads: args.threads.min(args.clients),
        senders,
        rate,
        size: args.size as usize,
    };
    let shared = Arc::new(Shared::new(senders));
    let t_connect = Instant::now();
    let threads: Vec<_> = (0..plan.threads)
        .map(|t| {
            let (plan, shared) = (plan.clone(), shared.clone());
            std::thread::Builder::new()
                .name(format!("fanout-{t}"))
                .spawn(move || engine::run_thread(t, &plan, &shared))
                .map_err(|e| format!("cannot start a load thread: {e}"))
        })
        .collect::<Result<_, _>>()?;

    // Everyone in the room (or failed), within patience.
    let total = u64::from(args.clients);
    while shared.ready.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed) < total
        && t_connect.elapsed() < CONNECT_PATIENCE
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let connect_secs = t_connect.elapsed().as_secs_f64();
    let ready = shared.ready.load(Ordering::Relaxed);
    if ready < 2 {
        shared.stop.store(true, Ordering::Relaxed);
        for t in threads {
            let _ = t.join();
        }
        let why = shared
            .first_error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_else(|| "no error seen".into());
        return Err(format!(
            "only {ready} of {total} clients got into the room: {why}"
        ));
    }

    let start_us = shared.now_us() + SETTLE.as_micros() as u64;
    let window_start_us = start_us + (args.warmup * 1e6) as u64;
    let window_end_us = window_start_us + (args.duration * 1e6) as u64;
    shared
        .window_start_us
        .store(window_start_us, Ordering::Relaxed);
    shared.window_end_us.store(window_end_us, Ordering::Relaxed);
    shared.start_us.store(start_us, Ordering::Release);

    sleep_until(&shared, window_start_us);
    let cpu_window = CpuWindow::start(args.server_pid);
    sleep_until(&shared, window_end_us);
    let cpu = cpu_window.finish();
    let server = args.server_pid.and_then(ProcSample::of);
    let bench = ProcSample::of_self();

    // Lines in flight: each sent line is owed to everyone else in the room.
    let fanout = ready - 1;
    let drain_until = Instant::now() + DRAIN;
    while shared.received.load(Ordering::Relaxed) < shared.sent.load(Ordering::Relaxed) * fanout
        && Instant::now() < drain_until
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::empty();
    for t in threads {
        tally.add(&t.join().map_err(|_| "a load thread panicked")?);
    }
    let first_error = shared.first_error.lock().ok().and_then(|e| e.clone());
    Ok(FanoutReport {
        proto: args.proto,
        clients: args.clients,
        ready,
        connect_failures: shared.failed.load(Ordering::Relaxed),
        connect_secs,
        senders,
        threads: plan.threads,
        size: plan.size,
        warmup_secs: args.warmup,
        window_secs: args.duration,
        target_sent_per_sec: rate,
        target_delivered_per_sec: args.delivered,
        owed: tally.sent * fanout,
        tally,
        first_error,
        cpu,
        server,
        bench,
        load: procinfo::load_average(),
    })
}

fn check(args: &FanoutArgs) -> Result<SocketAddr, String> {
    if !(args.delivered > 0.0 && args.delivered <= 5_000_000.0) {
        return Err("--delivered must be above 0 and at most 5,000,000 lines/s".into());
    }
    if !(args.duration > 0.0 && args.duration <= 600.0) {
        return Err("--duration must be above 0 and at most 600 s".into());
    }
    if !(args.warmup >= 0.0 && args.warmup <= 60.0) {
        return Err("--warmup must be between 0 and 60 s".into());
    }
    let senders = u64::from(args.senders.unwrap_or(args.clients).min(args.clients));
    if senders * u64::from(args.clients) > MAX_PAIRS {
        return Err(format!(
            "{} clients × {senders} senders is more sequence counters than kept ({MAX_PAIRS}): \
             use fewer --senders",
            args.clients
        ));
    }
    if let Some(soft) = procinfo::open_files_limit() {
        let need = u64::from(args.clients) + 64;
        if soft < need {
            return Err(format!(
                "{} clients need about {need} file descriptors, the limit is {soft}: \
                 raise it with `ulimit -n` (the server needs as many)",
                args.clients
            ));
        }
    }
    // A load generator aimed at someone else's machine is an attack: only
    // this machine's loopback addresses are accepted.
    let addrs: Vec<SocketAddr> = args
        .addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve --addr {}: {e}", args.addr))?
        .collect();
    match addrs.first() {
        Some(a) if addrs.iter().all(|a| a.ip().is_loopback()) => Ok(*a),
        _ => Err(format!(
            "--addr {} is not a loopback address; lanlink-bench only loads a server on this machine",
            args.addr
        )),
    }
}

fn sleep_until(shared: &Shared, at_us: u64) {
    let now = shared.now_us();
    if at_us > now {
        std::thread::sleep(Duration::from_micros(at_us - now));
    }
}
