//! `lanlink-soak`: an endurance and fault run against a real
//! `lanlink-server`, and a userspace network impairment relay.
//!
//! ```text
//! lanlink-soak run --duration 60s
//! lanlink-soak run --duration 40s --impair --delay 50ms --jitter 20ms --loss 1%
//! lanlink-soak impair --listen 127.0.0.1:9000 --to 127.0.0.1:7878 --seconds 600
//! ```
//!
//! `run` starts `lanlink-server` (sharing a scratch folder, with an inbox),
//! warms it up, samples its threads, open descriptors and resident memory,
//! and then for `--duration` runs at once:
//! - chat at a fixed load between in-process clients that check every line
//!   arrives in order, while `lanlink chat` processes join, leave, and are
//!   killed with SIGKILL ([`chat`]);
//! - `lanlink get` and `put`, every other one killed halfway and then
//!   resumed, each result's BLAKE3 checked and no killed transfer's file
//!   allowed under its final name ([`transfers`]);
//! - `lanlink talk --tone` heard by `lanlink listen --output-file`, and
//!   `lanlink cam --test-pattern` watched by `lanlink view --save`
//!   ([`media`]).
//!
//! Once every client has left it samples the server again: threads and
//! descriptors must be back within a small margin of the start, memory
//! within a bounded growth. It then stops the server with SIGTERM, which
//! must exit cleanly, prints a summary and exits non-zero on any failure.
//!
//! With `--impair` the clients reach the server through the impairment
//! relay ([`impair`]), for kernels without `sch_netem`; `scripts/netem`
//! sets up network namespaces and prefers the kernel's netem.
//!
//! Every loop is bounded by a count and by time; the server listens on a
//! loopback address or one the caller's namespaces provide.

mod chat;
mod impair;
mod media;
mod transfers;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use impair::Impairment;
use lanlink_tools::procinfo::{self, ProcSample};
use lanlink_tools::procs::{self, Lanlink, Proc};
use lanlink_tools::{mkdir, parse_duration, Scratch};

/// Endurance and fault runs against a real lanlink server.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Start a server and soak it: chat load and churn, interrupted
    /// transfers, audio and video; check it ends as it started.
    Run(RunArgs),
    /// Relay TCP connections with delay, jitter and loss stalls (a
    /// userspace stand-in for netem).
    Impair(ImpairArgs),
}

#[derive(clap::Args, Debug, Clone)]
struct ImpairSettings {
    /// One-way delay added to everything relayed.
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    delay: Duration,
    /// Uniform jitter around the delay (never reorders bytes).
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    jitter: Duration,
    /// Segment loss, as 1% or 0.01, modelled as retransmission stalls.
    #[arg(long, default_value = "1%", value_parser = parse_loss)]
    loss: f64,
}

impl ImpairSettings {
    fn impairment(&self) -> Impairment {
        Impairment {
            delay: self.delay,
            jitter: self.jitter,
            loss: self.loss,
        }
    }
}

#[derive(clap::Args, Debug)]
struct ImpairArgs {
    /// Where to listen.
    #[arg(long)]
    listen: String,
    /// Where to relay to.
    #[arg(long)]
    to: String,
    #[command(flatten)]
    settings: ImpairSettings,
    /// Stop after this long.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    seconds: Duration,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// How long the load runs (after a few seconds of warm-up).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Folder with `lanlink` and `lanlink-server` (default: this program's).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where the server listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: String,
    /// Run the server in this network namespace (`ip netns exec`).
    #[arg(long)]
    server_netns: Option<String>,
    /// Reach the server through the userspace impairment relay.
    #[arg(long)]
    impair: bool,
    #[command(flatten)]
    impairment: ImpairSettings,
    /// Describes the network between clients and server, for the report
    /// (scripts/netem says whether the kernel's netem is in the path).
    #[arg(long)]
    network: Option<String>,
    /// In-process chat clients under load.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u16).range(2..=200))]
    chat_clients: u16,
    /// Chat lines per second, all load clients together.
    #[arg(long, default_value_t = 60.0)]
    chat_rate: f64,
    /// No `lanlink chat` processes coming, going and being killed.
    #[arg(long)]
    no_churn: bool,
    /// No file transfers.
    #[arg(long)]
    no_transfers: bool,
    /// No audio or video.
    #[arg(long)]
    no_media: bool,
    /// Size of the files transferred (K, M, G).
    #[arg(long, default_value = "4M", value_parser = lanlink_apps::files::parse_rate)]
    file_size: u64,
    /// Rate cap of the transfers that get killed halfway (K, M, G per s).
    #[arg(long, default_value = "4M")]
    interrupted_rate: String,
    /// Audio packets' capture-to-arrival p99 must stay under this (ms).
    #[arg(long, default_value_t = 1000.0)]
    audio_p99_ms: f64,
    /// Longest time without a new video frame allowed (s).
    #[arg(long, default_value_t = 3.0)]
    max_video_gap: f64,
    /// Least share of the listener's output, once the tone started, in
    /// which it must be audible (concealment fills the rest).
    #[arg(long, default_value = "85%", value_parser = parse_fraction)]
    min_audible: f64,
    /// Threads the server may hold above its start once everyone left.
    #[arg(long, default_value_t = 2)]
    thread_margin: u64,
    /// Descriptors the server may hold above its start once everyone left.
    #[arg(long, default_value_t = 4)]
    fd_margin: u64,
    /// Resident memory growth allowed: this many percent, or
    /// `--rss-slack-mib`, whichever is larger.
    #[arg(long, default_value_t = 50.0)]
    rss_growth_percent: f64,
    /// See `--rss-growth-percent`.
    #[arg(long, default_value_t = 32)]
    rss_slack_mib: u64,
    /// Where to make the run's scratch folder (default: /dev/shm, or the
    /// temp folder without it).
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Keep the scratch folder afterwards.
    #[arg(long)]
    keep: bool,
}

/// Parses `85%` or `0.85`.
fn parse_fraction(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("not a fraction: {text:?} (try 1% or 0.01)"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{text:?}: not between 0 and 100%"));
    }
    Ok(v)
}

/// Parses a loss rate, `1%` or `0.01`, at most 50%.
fn parse_loss(text: &str) -> Result<f64, String> {
    let v = parse_fraction(text)?;
    if v > 0.5 {
        return Err(format!("{text:?}: loss runs from 0 to 50%"));
    }
    Ok(v)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Cmd::Run(a) => run(&a),
        Cmd::Impair(a) => run_impair(&a),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("lanlink-soak: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_impair(a: &ImpairArgs) -> Result<bool, String> {
    let to = resolve(&a.to)?;
    let imp = a.settings.impairment();
    let until = Instant::now() + a.seconds;
    let (local, stats) = impair::start(&a.listen, to, imp, until)
        .map_err(|e| format!("listen on {}: {e}", a.listen))?;
    println!("lanlink-soak impair: relaying {local} -> {to}: {imp}");
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("{}", relay_line(&stats));
    Ok(true)
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))
}

fn relay_line(s: &impair::RelayStats) -> String {
    format!(
        "relay: {} connections, {:.1} MB in {} chunks, {} retransmission stalls",
        s.connections.load(Ordering::Relaxed),
        s.bytes.load(Ordering::Relaxed) as f64 / 1e6,
        s.chunks.load(Ordering::Relaxed),
        s.stalls.load(Ordering::Relaxed)
    )
}

/// Starts the server; returns it with its address.
fn start_server(
    lanlink: &Lanlink,
    bind: &str,
    share: &Path,
    inbox: &Path,
) -> Result<(Proc, SocketAddr), String> {
    let mut server = Proc::spawn("lanlink-server", lanlink.server(bind, share, inbox), false)?;
    let line = server
        .expect("listening on", Duration::from_secs(15))
        .ok_or_else(|| format!("the server did not start: {}", server.stderr_tail()))?;
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .ok_or_else(|| format!("no address in {line:?}"))?;
    Ok((server, resolve(addr)?))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn run(a: &RunArgs) -> Result<bool, String> {
    let wall = Instant::now();
    let bin_dir = match &a.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .parent()
            .ok_or("no folder for this program")?
            .to_owned(),
    };
    let _ = lanlink_apps::files::parse_rate(&a.interrupted_rate)
        .map_err(|e| format!("--interrupted-rate: {e}"))?;
    let scratch = Scratch::make(a.scratch.as_deref(), "lanlink-soak", a.keep)?;
    let s = &scratch.path;
    let (share, inbox) = (mkdir(&s.join("share"))?, mkdir(&s.join("inbox"))?);
    let dirs = transfers::Dirs {
        share: share.clone(),
        inbox: inbox.clone(),
        downloads: mkdir(&s.join("downloads"))?,
    };
    let media_dir = mkdir(&s.join("media"))?;
    let lanlink = Lanlink {
        bin_dir,
        server_netns: a.server_netns.clone(),
        home: mkdir(&s.join("home"))?,
        data_dir: mkdir(&s.join("server-data"))?,
    };
    transfers::make_sources(&share, a.file_size)?;

    let (mut server, server_addr) = start_server(&lanlink, &a.bind, &share, &inbox)?;
    let pid = server.pid();
    let until_all = Instant::now() + a.duration + Duration::from_secs(300);
    let (addr, relay) = if a.impair {
        let imp = a.impairment.impairment();
        let (local, stats) = impair::start("127.0.0.1:0", server_addr, imp, until_all)
            .map_err(|e| format!("impairment relay: {e}"))?;
        (local.to_string(), Some((imp, stats)))
    } else {
        (server_addr.to_string(), None)
    };
    let network = match (&a.network, &relay) {
        (Some(n), _) => n.clone(),
        (None, Some((imp, _))) => format!("userspace impairment relay: {imp}"),
        (None, None) => "direct".into(),
    };
    println!("lanlink-soak: server pid {pid} at {server_addr}; clients connect to {addr}");
    println!("lanlink-soak: network: {network}");
    let idle = ProcSample::of(pid).unwrap_or_default();

    // Warm-up: a chat client, a listing, a download and an upload, so that
    // whatever the server sets up on first use is there at the baseline.
    let mut failures = Vec::new();
    warm_up(&lanlink, &addr, &share, &inbox, &mut failures);
    std::thread::sleep(Duration::from_secs(1));
    let start = ProcSample::of(pid).ok_or("the server died during warm-up")?;
    println!(
        "lanlink-soak: baseline after warm-up: {} threads, {} fds, {:.1} MiB RSS; running for {:.0} s",
        start.threads,
        start.fds,
        mib(start.rss_kib),
        a.duration.as_secs_f64()
    );

    let t0 = Instant::now();
    let until = t0 + a.duration;
    let sampling = Arc::new(AtomicBool::new(true));
    // Samples the server four times a second for the peak, and keeps one a
    // second to show the trend (RSS settling or climbing). Also notes when
    // this process itself was not scheduled on time: a video gap or an
    // audio latency spike that coincides with one is the machine's (2
    // shared cores), not the server's.
    let sampler = {
        let sampling = Arc::clone(&sampling);
        std::thread::spawn(move || {
            let (mut peak, mut trend, mut late) = (ProcSample::default(), Vec::new(), Vec::new());
            let mut n = 0u64;
            let tick = Duration::from_millis(250);
            while sampling.load(Ordering::Relaxed) && n < 1_000_000 {
                if let Some(s) = ProcSample::of(pid) {
                    peak = peak.max(s);
                    if n % 4 == 0 {
                        trend.push((t0.elapsed().as_secs_f64(), s));
                    }
                }
                n += 1;
                let before = Instant::now();
                std::thread::sleep(tick);
                let over = before.elapsed().saturating_sub(tick);
                if over > Duration::from_millis(300) && late.len() < 100 {
                    late.push((t0.elapsed().as_secs_f64(), over.as_secs_f64()));
                }
            }
            (peak, trend, late)
        })
    };
    let chat = {
        let (lanlink, addr) = (lanlink.clone(), addr.clone());
        let (clients, rate, churn) = (usize::from(a.chat_clients), a.chat_rate, !a.no_churn);
        std::thread::spawn(move || chat::run(&lanlink, &addr, clients, rate, churn, until))
    };
    let files = (!a.no_transfers).then(|| {
        let (lanlink, addr) = (lanlink.clone(), addr.clone());
        let (size, rate) = (a.file_size, a.interrupted_rate.clone());
        std::thread::spawn(move || transfers::run(&lanlink, &addr, &dirs, size, &rate, until))
    });
    let media = (!a.no_media).then(|| {
        let (lanlink, addr) = (lanlink.clone(), addr.clone());
        let limits = media::MediaLimits {
            audio_p99_ms: a.audio_p99_ms,
            max_video_gap: a.max_video_gap,
            min_audible: a.min_audible,
        };
        std::thread::spawn(move || media::run(&lanlink, &addr, &media_dir, limits, t0, until))
    });
    let chat = chat.join().map_err(|_| "the chat phase panicked")?;
    let files = files
        .map(|t| t.join().map_err(|_| "the transfer phase panicked"))
        .transpose()?;
    let media = media
        .map(|t| t.join().map_err(|_| "the media phase panicked"))
        .transpose()?;
    let ran = wall.elapsed();

    // Everyone has left: give the server a moment to close what it held.
    let settle_until = Instant::now() + Duration::from_secs(20);
    let mut end = ProcSample::of(pid).ok_or("the server died during the run")?;
    while Instant::now() < settle_until
        && (end.threads > start.threads + a.thread_margin || end.fds > start.fds + a.fd_margin)
    {
        std::thread::sleep(Duration::from_millis(200));
        end = ProcSample::of(pid).unwrap_or(end);
    }
    // And one more second, so the figures are the settled ones.
    std::thread::sleep(Duration::from_secs(1));
    end = ProcSample::of(pid).unwrap_or(end);
    sampling.store(false, Ordering::Relaxed);
    let (peak, trend, late) = sampler.join().unwrap_or_default();
    let peak = peak.max(end);

    let leftovers = leftover_files(&inbox);
    let stop = server.terminate(Duration::from_secs(15));
    if !stop.is_some_and(|s| s.success()) {
        failures.push(format!(
            "the server did not exit cleanly within 15 s of SIGTERM ({stop:?}): {}",
            server.stderr_tail()
        ));
    }

    // ------------------------------------------------------------ report
    println!();
    println!(
        "== lanlink soak: {:.0} s of load, {:.1} s in all; network: {network}",
        a.duration.as_secs_f64(),
        ran.as_secs_f64()
    );
    println!(
        "chat load    {} clients, {:.0} lines/s offered: sent {}, delivered {} of {} expected",
        chat.load_clients, chat.load_rate, chat.sent, chat.delivered, chat.expected
    );
    if !a.no_churn {
        println!(
            "chat churn   {} `lanlink chat` processes: {} left cleanly (their {} lines checked at every load client), {} killed -9 ({} while connecting)",
            chat.churn_started,
            chat.churn_clean,
            chat.churn_clean_lines,
            chat.churn_killed,
            chat.churn_killed_connecting
        );
    }
    failures.extend(chat.failures.iter().map(|f| format!("chat: {f}")));
    if let Some(t) = &files {
        println!(
            "transfers    {} gets + {} puts completed ({:.0} MiB), hashes right {}/{}; {} killed halfway, {} resumed; final-named files after a kill: {}; retries while the server still held a killed upload {} (longest {:.1} s); finished before the kill {}",
            t.completed_get,
            t.completed_put,
            t.bytes as f64 / 1048576.0,
            t.hashes_ok,
            t.completed_get + t.completed_put,
            t.killed,
            t.resumed,
            t.final_named_after_kill,
            t.busy_retries,
            t.busy_wait_max,
            t.finished_before_kill
        );
        failures.extend(t.failures.iter().map(|f| format!("transfers: {f}")));
        if t.completed_get + t.completed_put == 0 {
            failures.push("transfers: none completed".into());
        }
        if t.killed > 0 && t.resumed == 0 {
            failures.push("transfers: none of the killed transfers resumed".into());
        }
    }
    if let Some(m) = &media {
        println!(
            "audio        {} session(s), {:.1} s: talker sent {} packets, listener received {}, lost {}, late {}, concealed {}; played {:.1} s, tone audible {:.1}%; a second subscriber: {} packets skipped in sequence (dropped by the server), latency {}",
            m.sessions,
            m.seconds,
            m.sent,
            m.received,
            m.lost,
            m.late,
            m.concealed,
            m.played,
            m.audible * 100.0,
            m.probe_skipped,
            m.audio_latency
        );
        println!(
            "video        camera sent {} frames, viewer saved {} ({:.1} fps of 15), longest gap {:.2} s; viewer latency p50 {:.1} ms, p99 {:.1} ms (worst session)",
            m.frames_sent,
            m.frames,
            m.frames as f64 / m.seconds.max(1e-9),
            m.longest_gap,
            m.view_p50,
            m.view_p99
        );
        failures.extend(m.failures.iter().map(|f| format!("media: {f}")));
    }
    if let Some((_, stats)) = &relay {
        println!("{}", relay_line(stats));
    }
    let (partials, unchecked) = leftovers;
    if partials > 0 {
        println!("inbox        {partials} partial file(s) left (uploads killed and not resumed)");
    }
    if !unchecked.is_empty() {
        failures.push(format!(
            "files in the inbox that no completed upload accounts for: {}",
            unchecked.join(", ")
        ));
    }

    let rss_limit = start.rss_kib
        + ((start.rss_kib as f64 * a.rss_growth_percent / 100.0) as u64)
            .max(a.rss_slack_mib * 1024);
    if !late.is_empty() {
        let shown: Vec<String> = late
            .iter()
            .take(10)
            .map(|(t, s)| format!("{s:.1} s at {t:.0} s"))
            .collect();
        println!(
            "machine      this process overslept a 250 ms sleep by over 300 ms {} time(s): {} (load average now: {})",
            late.len(),
            shown.join(", "),
            procinfo::load_average().unwrap_or_default()
        );
    }
    // Eight points through the run: a leak climbs, an allocator settles.
    if trend.len() >= 2 {
        let points: Vec<String> = (0..8)
            .map(|i| i * (trend.len() - 1) / 7)
            .map(|i| {
                let (t, s) = trend[i];
                format!("{t:.0}s {:.1}/{}/{}", mib(s.rss_kib), s.threads, s.fds)
            })
            .collect();
        println!("server trend (RSS MiB/threads/fds): {}", points.join(", "));
    }
    println!();
    let limit = ProcSample {
        threads: start.threads + a.thread_margin,
        fds: start.fds + a.fd_margin,
        rss_kib: rss_limit,
        ..ProcSample::default()
    };
    let run = procinfo::Run {
        idle,
        start,
        peak,
        end,
    };
    failures.extend(run.check(["idle", "start", "peak", "end"], limit));
    println!();
    Ok(lanlink_tools::verdict("lanlink-soak", "", &failures))
}

fn warm_up(lanlink: &Lanlink, addr: &str, share: &Path, inbox: &Path, failures: &mut Vec<String>) {
    match lanlink.connect(addr, "soak-warmup", lanlink_proto::Capabilities::CHAT) {
        Ok(c) => c.close("warm-up done"),
        Err(e) => failures.push(format!("warm-up: {e}")),
    }
    let dest = share.with_file_name("warmup");
    let mut ls = lanlink.client("ls");
    ls.arg(addr);
    let mut get = lanlink.client("get");
    get.arg(addr).arg(transfers::FILES[1]).arg("-o").arg(&dest);
    let mut put = lanlink.client("put");
    put.arg(addr)
        .arg(share.join(transfers::FILES[1]))
        .args(["--as", "warmup.bin"]);
    for (what, cmd) in [("ls", ls), ("get", get), ("put", put)] {
        match procs::run(what, cmd, Duration::from_secs(60)) {
            Ok((Some(s), _, _)) if s.success() => {}
            Ok((s, _, err)) => failures.push(format!("warm-up {what}: {s:?}: {err}")),
            Err(e) => failures.push(format!("warm-up {what}: {e}")),
        }
    }
    let _ = std::fs::remove_dir_all(&dest);
    let _ = std::fs::remove_file(inbox.join("warmup.bin"));
}

/// Files left in the inbox: partial ones, and any other (every verified
/// upload was removed, so those are files nobody checked).
fn leftover_files(inbox: &Path) -> (usize, Vec<String>) {
    let (mut partial, mut other) = (0, Vec::new());
    for e in std::fs::read_dir(inbox).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".lanlink-part") {
            partial += 1;
        } else {
            other.push(name);
        }
    }
    (partial, other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_fractions() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("48h").is_err());
        assert_eq!(parse_fraction("1%"), Ok(0.01));
        assert_eq!(parse_fraction("0.02"), Ok(0.02));
        assert!(parse_loss("60%").is_err());
        assert!(parse_fraction("120%").is_err());
    }
}
