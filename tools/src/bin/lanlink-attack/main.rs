//! `lanlink-attack`: issue 13's attack run. A release `lanlink-server`
//! (TLS on, default limits) is attacked from 127.0.0.2-20 by every class
//! of hostile peer the issue lists while honest `lanlink` processes on
//! 127.0.0.1 chat, transfer files, watch video and listen; then everything
//! is checked.
//!
//! ```text
//! lanlink-attack --bin-dir target/release --duration 60s
//! lanlink-attack --bin-dir target/release --ci
//! ```
//!
//! The classes ([`attacks`]): 1 admin token guessing; 2 floods of nick
//! changes, joins, leaves, messages, and room password guessing; 3 escape
//! sequences in every peer string; 4 look-alike names; 5 rooms, streams,
//! announcements, offers and partial files en masse, and media
//! subscribers that never read; 6 silent and bursting connections per
//! address, slow-drip and too many browser connections, browser viewers
//! that never read; 7 disk-filling offers; 8 stereo and garbage audio,
//! non-JPEG video and JPEGs claiming huge pictures; 9 malformed bytes inside and instead of TLS.
//!
//! The honest side is in [`honest`]. It exits non-zero on any honest loss
//! (a chat line not delivered, a transfer not verified, video or audio
//! that stopped, a raw control character on an honest terminal), any
//! breach (an attack that got what it must not), a raw control character
//! or forged line in the server's log, a server that did not stop cleanly,
//! or server threads, descriptors or memory not back near their baseline.
//! Every loop is bounded by time and count; all traffic is on 127.0.0.0/8.

mod attacks;
mod honest;
mod net;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use lanlink_tools::procinfo::{self, ProcSample};
use lanlink_tools::procs::{Lanlink, Proc};
use lanlink_tools::{mkdir, parse_duration, Scratch};

use net::{Tally, Target};

/// Attack a release lanlink server with every kind of hostile peer while
/// honest clients use it.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// How long the attacks run (the honest users start before and stop a
    /// few seconds after).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// The short, light run CI does (at most 60 s in all).
    #[arg(long)]
    ci: bool,
    /// Folder with `lanlink` and `lanlink-server` (default: this program's).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Size of the file the honest users download and upload (K, M).
    #[arg(long, default_value = "4M", value_parser = lanlink_apps::files::parse_rate)]
    file_size: u64,
    /// Threads the server may hold above its baseline at the end.
    #[arg(long, default_value_t = 2)]
    thread_margin: u64,
    /// Descriptors the server may hold above its baseline at the end.
    #[arg(long, default_value_t = 4)]
    fd_margin: u64,
    /// Resident memory the server may hold above its baseline at the end
    /// (MiB; freed memory is not always given back to the system).
    #[arg(long, default_value_t = 64)]
    rss_slack_mib: u64,
    /// Where to make the run's scratch folder (default: /dev/shm, or the
    /// temp folder without it).
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Keep the scratch folder (and the server's log) afterwards.
    #[arg(long)]
    keep: bool,
}

const ADMIN_TOKEN: &str = "operator-secret-8213";

/// The classes, in the report's order: name, what it does.
const CLASSES: [(&str, &str); 9] = [
    (
        "1 admin",
        "wrong admin tokens, queued and across connections",
    ),
    (
        "2 floods",
        "nick/join/leave/room/message floods, password guessing",
    ),
    (
        "3 escapes",
        "control, bidi and invisible characters in every string",
    ),
    (
        "4 look-alikes",
        "confusable, fullwidth, case and hidden-character names",
    ),
    (
        "5 en masse",
        "rooms, streams, renames, offers, partials, non-readers",
    ),
    (
        "6 connections",
        "silent and bursting TCP, HTTP floods, drips, non-readers",
    ),
    (
        "7 disk",
        "huge, deep and empty uploads, offers that hog free space",
    ),
    (
        "8 media",
        "stereo and garbage audio, non-JPEG and huge-claiming video",
    ),
    ("9 malformed", "garbage inside and instead of TLS"),
];

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("lanlink-attack: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Starts the release server as anyone would: TLS, default limits, a
/// share, an inbox, an admin token, plain HTTP (allowed on loopback) on an ephemeral port.
fn start_server(
    lanlink: &Lanlink,
    share: &Path,
    inbox: &Path,
    log: &Path,
) -> Result<(Proc, Target), String> {
    let mut cmd = std::process::Command::new(lanlink.bin_dir.join("lanlink-server"));
    cmd.args(["--bind", "127.0.0.1:0", "--http", "http://127.0.0.1:0"])
        .arg("--share")
        .arg(share)
        .arg("--inbox")
        .arg(inbox)
        .arg("--data-dir")
        .arg(&lanlink.data_dir)
        .env("LANLINK_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "info");
    let mut server = Proc::spawn_logging_to("lanlink-server", cmd, log)?;
    let wait = Duration::from_secs(20);
    let after = |line: Option<String>, prefix: &str| {
        line.and_then(|l| {
            l.split(prefix)
                .nth(1)
                .map(|r| r.trim().trim_end_matches('/').to_owned())
        })
    };
    let http = after(server.expect("browser page:", wait), "http://");
    let fingerprint = after(server.expect("TLS certificate", wait), "TLS certificate ");
    let addr = server.expect("listening on", wait).and_then(|l| {
        l.split("listening on ")
            .nth(1)?
            .split_whitespace()
            .next()
            .map(str::to_owned)
    });
    let (Some(http), Some(fingerprint), Some(addr)) = (http, fingerprint, addr) else {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        return Err(format!("the server did not start: {log}"));
    };
    let target = Target {
        addr: addr.parse().map_err(|e| format!("{addr}: {e}"))?,
        http: http.parse().map_err(|e| format!("{http}: {e}"))?,
        fingerprint: fingerprint
            .parse()
            .map_err(|e| format!("{fingerprint}: {e:?}"))?,
        admin_token: ADMIN_TOKEN.into(),
    };
    Ok((server, target))
}

/// What the server's log must never hold: anything
/// `lanlink_transport::text::display_safe` escapes (controls, bidi and
/// invisible characters; the log's own colour codes aside), or a line a
/// peer forged. Returns the offending lines (at most 10) and the count
/// of log lines.
fn dirty_log(log: &Path) -> (Vec<String>, usize) {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let mut bad = Vec::new();
    let mut lines = 0;
    for line in text.lines() {
        lines += 1;
        let plain = without_colours(line);
        let forged = plain.starts_with("2026-01-01T00:00:00");
        let raw = matches!(
            lanlink_transport::text::display_safe(&plain),
            std::borrow::Cow::Owned(_)
        );
        if (forged || raw) && bad.len() < 10 {
            bad.push(plain);
        }
    }
    (bad, lines)
}

/// `line` without the log formatter's own colour codes (`ESC [ 1;32 m`);
/// any other escape left is one a peer smuggled in.
fn without_colours(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("\u{1b}[") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let digits = after
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or(after.len());
        if after[digits..].starts_with('m') {
            rest = &after[digits + 1..];
        } else {
            out.push_str(&rest[at..at + 2]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Warm-up: a listing, a download, an upload, a chat client and a browser
/// page, so that what the server sets up on first use is in the baseline.
fn warm_up(lanlink: &Lanlink, t: &Target, dirs: &honest::Dirs) -> Result<(), String> {
    let addr = t.addr.to_string();
    let dest = dirs.work.join("warmup");
    let mut get = lanlink.client("get");
    get.arg(&addr).arg(honest::SHARED).arg("-o").arg(&dest);
    let mut put = lanlink.client("put");
    put.arg(&addr)
        .arg(dirs.share.join(honest::SHARED))
        .args(["--as", "warmup.bin"]);
    let mut ls = lanlink.client("ls");
    ls.arg(&addr);
    for (what, cmd) in [("ls", ls), ("get", get), ("put", put)] {
        match lanlink_tools::procs::run(what, cmd, Duration::from_secs(60)) {
            Ok((Some(s), _, _)) if s.success() => {}
            Ok((s, _, err)) => return Err(format!("warm-up {what}: {s:?}: {err}")),
            Err(e) => return Err(format!("warm-up {what}: {e}")),
        }
    }
    let _ = std::fs::remove_dir_all(&dest);
    let _ = std::fs::remove_file(dirs.inbox.join("warmup.bin"));
    let _ = net::http(
        net::ip(1),
        t.http,
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        1 << 16,
        Duration::from_secs(2),
    );
    Ok(())
}

fn run(a: &Args) -> Result<bool, String> {
    let wall = Instant::now();
    let duration = if a.ci {
        a.duration.min(Duration::from_secs(25))
    } else {
        a.duration
    };
    let bin_dir = match &a.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .parent()
            .ok_or("no folder for this program")?
            .to_owned(),
    };
    let scratch = Scratch::make(a.scratch.as_deref(), "lanlink-attack", a.keep)?;
    let s = &scratch.path;
    let dirs = honest::Dirs {
        share: mkdir(&s.join("share"))?,
        inbox: mkdir(&s.join("inbox"))?,
        work: mkdir(&s.join("work"))?,
    };
    let lanlink = Lanlink {
        bin_dir,
        server_netns: None,
        home: mkdir(&s.join("home"))?,
        data_dir: mkdir(&s.join("server-data"))?,
    };
    let source: Vec<u8> = (0..a.file_size)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dirs.share.join(honest::SHARED), &source).map_err(|e| e.to_string())?;
    let log = s.join("server.log");

    let (mut server, target) = start_server(&lanlink, &dirs.share, &dirs.inbox, &log)?;
    let pid = server.pid();
    println!(
        "lanlink-attack: release server pid {pid} at {} (HTTP {}), TLS {}",
        target.addr, target.http, target.fingerprint
    );
    let idle = ProcSample::of(pid).unwrap_or_default();
    warm_up(&lanlink, &target, &dirs)?;
    std::thread::sleep(Duration::from_secs(1));
    let baseline = ProcSample::of(pid).ok_or("the server died during warm-up")?;
    println!(
        "lanlink-attack: baseline {} threads, {} fds, {:.1} MiB RSS; attacks run {:.0} s",
        baseline.threads,
        baseline.fds,
        mib(baseline.rss_kib),
        duration.as_secs_f64()
    );

    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut peak = ProcSample::default();
            let mut n = 0;
            while sampling.load(Ordering::Relaxed) && n < 1_000_000 {
                if let Some(s) = ProcSample::of(pid) {
                    peak = peak.max(s);
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            peak
        })
    };

    // The honest users first, then the attackers.
    let addr = target.addr.to_string();
    let honest = honest::start(&lanlink, &addr, target.http, &dirs)?;
    std::thread::sleep(Duration::from_secs(2));
    let t0 = Instant::now();
    let until = t0 + duration;
    let intensity = attacks::Intensity::new(a.ci);
    let tallies: Vec<Arc<Tally>> = CLASSES.iter().map(|_| Arc::new(Tally::default())).collect();
    let mut threads = Vec::new();
    for (i, tally) in tallies.iter().enumerate() {
        let (t, tally, inbox) = (target.clone(), tally.clone(), dirs.inbox.clone());
        threads.push(std::thread::spawn(move || match i {
            0 => attacks::admin_guessing(&t, &tally, until, intensity),
            1 => attacks::floods(&t, &tally, until, intensity),
            2 => attacks::escapes(&t, &tally, until),
            3 => attacks::look_alike_names(&t, &tally, until),
            4 => attacks::mass(&t, &tally, until),
            5 => attacks::connections(&t, &tally, until, intensity),
            6 => attacks::disk(&t, &tally, &inbox, until),
            7 => attacks::media(&t, &tally, until),
            _ => attacks::malformed(&t, &tally, until),
        }));
    }
    let mut honest = honest;
    let mut lost_early = Vec::new();
    while Instant::now() < until + Duration::from_secs(30)
        && !threads.iter().all(|t| t.is_finished())
    {
        std::thread::sleep(Duration::from_millis(500));
        if lost_early.is_empty() {
            lost_early = honest.alive();
        }
    }
    for (i, th) in threads.into_iter().enumerate() {
        if th.join().is_err() {
            tallies[i].breach("the attack thread panicked");
        }
    }
    let attacked = t0.elapsed();
    // The honest users go on a little after the attacks: service is back.
    std::thread::sleep(Duration::from_secs(if a.ci { 3 } else { 5 }));
    let report = honest.finish();

    // Everyone has left: the server must let go of what it held.
    let settle_until = Instant::now() + Duration::from_secs(20);
    let mut end = ProcSample::of(pid).ok_or("the server died during the run")?;
    while Instant::now() < settle_until
        && (end.threads > baseline.threads + a.thread_margin
            || end.fds > baseline.fds + a.fd_margin)
    {
        std::thread::sleep(Duration::from_millis(250));
        end = ProcSample::of(pid).unwrap_or(end);
    }
    std::thread::sleep(Duration::from_secs(1));
    end = ProcSample::of(pid).unwrap_or(end);
    sampling.store(false, Ordering::Relaxed);
    let peak = sampler.join().unwrap_or_default().max(end);
    let stop = server.terminate(Duration::from_secs(15));

    // ---------------------------------------------------------- report
    let mut failures = Vec::new();
    println!();
    println!(
        "== lanlink attack: {:.0} s of attacks from 127.0.0.2-20 against a release server, {:.0} s in all{}",
        attacked.as_secs_f64(),
        wall.elapsed().as_secs_f64(),
        if a.ci { " (CI run)" } else { "" }
    );
    println!(
        "{:<15} {:>10} {:>10} {:>9}  what",
        "class", "tried", "refused", "breaches"
    );
    for ((name, what), tally) in CLASSES.iter().zip(&tallies) {
        let breaches = tally.breaches.lock().map(|b| b.clone()).unwrap_or_default();
        println!(
            "{name:<15} {:>10} {:>10} {:>9}  {what}",
            tally.tried.load(Ordering::Relaxed),
            tally.refused.load(Ordering::Relaxed),
            breaches.len()
        );
        for note in tally.notes.lock().map(|n| n.clone()).unwrap_or_default() {
            println!("{:<15} note: {note}", "");
        }
        failures.extend(
            breaches
                .into_iter()
                .map(|b| format!("breach ({name}): {b}")),
        );
        if tally.tried.load(Ordering::Relaxed) == 0 {
            failures.push(format!("class {name} tried nothing"));
        }
    }
    println!();
    println!(
        "honest chat      {} lines delivered of {} sent (two `lanlink chat`, script mode)",
        report.chat_delivered, report.chat_sent
    );
    println!(
        "honest files     {} of {} transfers verified by BLAKE3 (`lanlink get` and `put`, {} each)",
        report.transfers_verified,
        report.transfers_run,
        human(a.file_size)
    );
    println!(
        "honest video     `lanlink cam` sent {} frames, `lanlink view --save` saved {} (longest gap {:.1} s); browser reader got {} JPEG parts, {} others",
        report.frames_sent, report.frames_saved, report.longest_gap, report.http_frames, report.http_bad_parts
    );
    println!(
        "honest audio     `lanlink talk` sent {} packets, its `lanlink listen --output-file` received {} (tone audible {:.1}%); the listener mixing every stream played {:.1} s",
        report.packets_sent, report.packets_received, report.audible * 100.0, report.mixed_seconds
    );
    println!(
        "honest terminals {} lines printed, {} with raw control or bidi characters",
        report.lines_seen,
        report.dirty_lines.len()
    );
    failures.extend(lost_early.into_iter().map(|l| format!("honest: {l}")));
    failures.extend(report.failures.iter().map(|f| format!("honest: {f}")));
    let (dirty, log_lines) = dirty_log(&log);
    println!(
        "server log       {log_lines} lines, {} with raw control/bidi/invisible characters or forged",
        dirty.len()
    );
    failures.extend(dirty.iter().map(|l| format!("server log: {l:?}")));
    if !stop.is_some_and(|s| s.success()) {
        failures.push(format!(
            "the server did not exit cleanly within 15 s of SIGTERM ({stop:?})"
        ));
    }

    println!();
    let limit = ProcSample {
        threads: baseline.threads + a.thread_margin,
        fds: baseline.fds + a.fd_margin,
        rss_kib: baseline.rss_kib + a.rss_slack_mib * 1024,
        ..ProcSample::default()
    };
    let figures = procinfo::Run {
        idle,
        start: baseline,
        peak,
        end,
    };
    failures.extend(figures.check(["idle", "before", "peak", "after"], limit));
    println!(
        "machine      load average {}",
        procinfo::load_average().unwrap_or_default()
    );
    println!();
    if a.keep {
        println!(
            "lanlink-attack: kept {} (server log: {})",
            s.display(),
            log.display()
        );
    }
    Ok(lanlink_tools::verdict(
        "lanlink-attack",
        " (0 honest losses, 0 breaches, resources back to baseline)",
        &failures,
    ))
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.0} MiB", bytes as f64 / 1048576.0)
    } else {
        format!("{:.0} KiB", bytes as f64 / 1024.0)
    }
}
