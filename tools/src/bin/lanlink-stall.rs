//! Work that must never stall a server's hub, asked for over and over by one
//! client (`scripts/bench-stall` runs it beside `lanlink-bench chat`):
//!
//! - `resume`: asks to resume a large shared file at `--offset` (default:
//!   one byte before its end) with a prefix hash that never matches, so the
//!   server hashes the whole prefix, finds it differs and offers the file
//!   from byte 0; the client cancels at once and asks again.
//! - `list`: lists a (large) shared folder and reads every `Listing` part.
//!
//! Requests go one after the other on each of `--connections` connections
//! until `--duration` has passed; prints one JSON line: requests answered,
//! and the mean and longest wait for an answer in ms.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use lanlink_client::{Session, Trust};
use lanlink_proto::file::{FileCancel, FileRequest, ListRequest};
use lanlink_proto::{Capabilities, ErrorCode, Frame, Message};
use lanlink_transport::Client;

/// Hammers a lanlink server with hash-heavy resumes or large listings.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// The server, as HOST:PORT.
    #[arg(long)]
    addr: String,
    /// What to ask for.
    #[arg(long, value_enum)]
    mode: Mode,
    /// The shared file (resume) or folder (list), relative to the share.
    #[arg(long)]
    name: String,
    /// Resume: the file's size in bytes.
    #[arg(long, default_value_t = 0)]
    size: u64,
    /// Resume: the offset asked for (default: size - 1).
    #[arg(long)]
    offset: Option<u64>,
    /// Seconds to keep asking.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Connections asking at the same time, each one request at a time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    connections: u32,
    /// Connect without TLS (to a server run with --plain).
    #[arg(long)]
    plain: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Resume,
    List,
}

/// What one connection saw.
#[derive(Debug, Default)]
struct Tally {
    answered: u64,
    wait_total: Duration,
    wait_max: Duration,
    errors: Vec<String>,
}

/// The longest the server may take to answer one request before the run
/// counts it as an error (a 4 GiB hash takes a few seconds).
const ANSWER_PATIENCE: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let args = Args::parse();
    let until = Instant::now() + Duration::from_secs_f64(args.duration.max(0.0));
    let threads: Vec<_> = (0..args.connections)
        .map(|i| {
            let args = Args {
                addr: args.addr.clone(),
                name: args.name.clone(),
                ..args
            };
            std::thread::spawn(move || run(&args, i, until))
        })
        .collect();
    let mut all = Tally::default();
    for t in threads {
        match t.join() {
            Ok(t) => {
                all.answered += t.answered;
                all.wait_total += t.wait_total;
                all.wait_max = all.wait_max.max(t.wait_max);
                all.errors.extend(t.errors);
            }
            Err(_) => all.errors.push("a connection's thread panicked".into()),
        }
    }
    let mean_ms = if all.answered > 0 {
        all.wait_total.as_secs_f64() * 1e3 / all.answered as f64
    } else {
        0.0
    };
    println!(
        "{{\"mode\":\"{:?}\",\"answered\":{},\"mean_wait_ms\":{:.1},\"max_wait_ms\":{:.1},\"errors\":{}}}",
        args.mode,
        all.answered,
        mean_ms,
        all.wait_max.as_secs_f64() * 1e3,
        all.errors.len()
    );
    for e in all.errors.iter().take(5) {
        eprintln!("lanlink-stall: {e}");
    }
    if all.answered == 0 || !all.errors.is_empty() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn run(args: &Args, index: u32, until: Instant) -> Tally {
    let mut tally = Tally::default();
    let trust = if args.plain {
        Trust::Plain
    } else {
        Trust::AnyCertificate
    };
    let client = match Session::builder(&args.addr)
        .name(format!("stall-{index}"))
        .trust(trust)
        .capabilities(Capabilities::FILE)
        .connect_transport()
    {
        Ok((c, _)) => c,
        Err(e) => {
            tally.errors.push(format!("connect: {e}"));
            return tally;
        }
    };
    // Bounded by time, and by count in case answers come back instantly.
    for _ in 0..1_000_000u32 {
        if Instant::now() >= until {
            break;
        }
        let asked = Instant::now();
        let answer = match args.mode {
            Mode::Resume => resume(&client, args),
            Mode::List => list(&client, args),
        };
        match answer {
            Ok(()) => {
                let wait = asked.elapsed();
                tally.answered += 1;
                tally.wait_total += wait;
                tally.wait_max = tally.wait_max.max(wait);
            }
            Err(e) => {
                tally.errors.push(e);
                break;
            }
        }
    }
    client.close("done");
    tally
}

/// One resume with a wrong prefix hash; waits for the offer, then cancels.
fn resume(client: &Client, args: &Args) -> Result<(), String> {
    let stream = client.open_stream();
    let offset = args.offset.unwrap_or(args.size.saturating_sub(1));
    client
        .send(&Frame::new(
            stream,
            FileRequest {
                name: args.name.clone(),
                offset,
                prefix_hash: Some([0x5a; 32]),
            },
        ))
        .map_err(|e| format!("send: {e}"))?;
    let deadline = Instant::now() + ANSWER_PATIENCE;
    while Instant::now() < deadline {
        let frame = match client.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(f)) => f,
            Ok(None) => continue,
            Err(e) => return Err(format!("recv: {e}")),
        };
        if frame.stream != stream {
            continue;
        }
        match frame.message {
            Message::FileOffer(_) => {
                client
                    .send(&Frame::new(
                        stream,
                        FileCancel {
                            code: ErrorCode::OTHER,
                            reason: "stall benchmark".into(),
                        },
                    ))
                    .map_err(|e| format!("send: {e}"))?;
                // The offer is the answer; chunks already on their way are
                // skipped by the next request's stream check.
                return Ok(());
            }
            Message::FileReject(r) => return Err(format!("rejected: {}", r.reason)),
            Message::FileCancel(c) => return Err(format!("cancelled: {}", c.reason)),
            _ => {}
        }
    }
    Err("no offer in time".into())
}

/// One listing, read to its last part.
fn list(client: &Client, args: &Args) -> Result<(), String> {
    let stream = client.open_stream();
    client
        .send(&Frame::new(
            stream,
            ListRequest {
                path: args.name.clone(),
                recursive: false,
            },
        ))
        .map_err(|e| format!("send: {e}"))?;
    let deadline = Instant::now() + ANSWER_PATIENCE;
    while Instant::now() < deadline {
        let frame = match client.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(f)) => f,
            Ok(None) => continue,
            Err(e) => return Err(format!("recv: {e}")),
        };
        if frame.stream != stream {
            continue;
        }
        match frame.message {
            Message::Listing(l) if l.done => return Ok(()),
            Message::Listing(_) => {}
            Message::FileReject(r) => return Err(format!("rejected: {}", r.reason)),
            _ => {}
        }
    }
    Err("listing not done in time".into())
}
