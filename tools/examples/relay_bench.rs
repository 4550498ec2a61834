//! Measures the server's media relay: one publisher fanned out to N
//! subscribers over loopback, with the server as a separate process.
//!
//! ```text
//! cargo build --release -p lanlink-apps --bin lanlink-server
//! cargo run --release -p lanlink-tools --example relay_bench -- --video --viewers 50 [--seconds 10]
//! cargo run --release -p lanlink-tools --example relay_bench -- --audio --listeners 50 [--seconds 10]
//! ```
//!
//! It starts the `lanlink-server` of the same build (`target/release/`,
//! beside this program's `examples/` folder), or `--server PATH`, as
//! `lanlink-server --bind 127.0.0.1:0 --no-http --plain`, reads the port
//! from its first line, and then:
//!
//! * video: one connection publishes a 1280×720 30 fps test pattern (about
//!   60 JPEGs encoded once up front and replayed at 30 fps with fresh
//!   sequence numbers and capture timestamps, so the publisher's encoder
//!   stays out of the measurement; `--noise` makes them camera-sized), and N viewer connections, one thread
//!   each, count frames and capture→receive latency;
//! * audio: one talker encodes a speech-like signal with Opus (voice preset,
//!   48 kHz mono, 20 ms) in real time, and N listener connections count
//!   packets, wire bytes (frame header + payload as it arrives) and
//!   capture→receive latency.
//!
//! Measured over a window of `--seconds` after a one-second warm-up (by
//! sequence number, so every subscriber is judged on the same packets):
//! per-subscriber delivered rate (min/avg), latency p50/p99 pooled across
//! subscribers, the server's CPU (utime+stime from /proc/PID/stat over the
//! window, as % of one core) and its RSS (VmRSS/VmHWM from
//! /proc/PID/status). The whole machine's busy CPU and this process's own
//! CPU over the same window are printed too: the publisher and subscribers
//! share the machine with the server, which a loaded machine makes visible.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clap::Parser;
use lanlink_audio::{
    AudioSource, Format, FrameDuration, OpusConfig, OpusEncoder, SpeechLikeSource,
};
use lanlink_proto::audio::{AudioEnd, AudioPacket, AudioSubscribe};
use lanlink_proto::control::Hello;
use lanlink_proto::video::{VideoEnd, VideoFrame, VideoSubscribe};
use lanlink_proto::{Capabilities, Frame, Message, StreamId};
use lanlink_tools::procinfo::{self, CpuUse, CpuWindow, ProcSample};
use lanlink_tools::Latency;
use lanlink_transport::{Client, ClientConfig};
use lanlink_video::{now_us, JpegConfig, JpegEncoder, RgbImage, TestPattern};

/// The stream name the publisher announces.
const STREAM_NAME: &str = "relay-bench";
/// The publisher's own stream id (client ids are odd).
const PUB_STREAM: StreamId = 1;
/// The Python prototype's audio: raw 44.1 kHz 16-bit mono PCM.
const PROTOTYPE_BYTES_PER_SEC: f64 = 44_100.0 * 2.0;

#[derive(Parser, Debug)]
#[command(about = "Relay benchmark: one publisher, N subscribers, server in a child process")]
struct Args {
    /// Relay video (1280x720 30 fps MJPEG test pattern).
    #[arg(long, conflicts_with = "audio", required_unless_present = "audio")]
    video: bool,
    /// Relay audio (Opus 48 kHz mono, 20 ms packets).
    #[arg(long)]
    audio: bool,
    /// Video viewers.
    #[arg(long, default_value_t = 10)]
    viewers: usize,
    /// Audio listeners.
    #[arg(long, default_value_t = 10)]
    listeners: usize,
    /// Length of the measurement window, in seconds (after a 1 s warm-up).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// The server binary (default: the `lanlink-server` of the same build).
    #[arg(long)]
    server: Option<PathBuf>,
    /// JPEG quality of the test pattern.
    #[arg(long, default_value_t = 80)]
    quality: u8,
    /// Adds random noise of ± this much (0-255) to every pixel before
    /// encoding, for camera-sized JPEGs (the plain pattern compresses to
    /// about 35 KiB; 16 gives roughly camera-like sizes).
    #[arg(long, default_value_t = 0)]
    noise: u8,
}

/// How the run is timed: packets `0..warm` warm up, `warm..end` are measured,
/// `end..total` let the last measured ones drain.
#[derive(Clone, Copy)]
struct Plan {
    period: Duration,
    warm: u32,
    end: u32,
    total: u32,
}

impl Plan {
    fn new(rate: f64, seconds: f64) -> Plan {
        let warm = rate.round() as u32;
        let end = warm + (rate * seconds).round().max(1.0) as u32;
        Plan {
            period: Duration::from_secs_f64(1.0 / rate),
            warm,
            end,
            total: end + (rate / 2.0).round() as u32,
        }
    }

    fn measured(&self) -> u32 {
        self.end - self.warm
    }

    fn window_secs(&self) -> f64 {
        self.period.as_secs_f64() * f64::from(self.measured())
    }
}

/// What one subscriber saw of the measured packets.
#[derive(Default)]
struct SubStats {
    packets: u64,
    wire_bytes: u64,
    payload_bytes: u64,
    latency: Latency,
    error: Option<String>,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let server_path = match &args.server {
        Some(path) => path.clone(),
        // This program is PROFILE/examples/relay_bench; the server is
        // PROFILE/lanlink-server (whatever CARGO_TARGET_DIR says).
        None => std::env::current_exe()
            .map_err(|e| format!("where is this program: {e}"))?
            .parent()
            .and_then(std::path::Path::parent)
            .ok_or("this program has no folder above its own")?
            .join("lanlink-server"),
    };
    let mut server = Server::start(&server_path)?;
    let result = bench(args, &server);
    server.stop();
    result
}

fn bench(args: &Args, server: &Server) -> Result<(), String> {
    let video = args.video;
    let n = if video { args.viewers } else { args.listeners };
    if n == 0 {
        return Err("need at least one subscriber".into());
    }
    let seconds = args.seconds.clamp(1.0, 18.0);
    let rate = if video { 30.0 } else { 50.0 };
    let plan = Plan::new(rate, seconds);
    let addr = server.addr.clone();
    let caps = if video {
        Capabilities::VIDEO
    } else {
        Capabilities::AUDIO
    };

    // Video frames are encoded before anything connects.
    let jpegs = if video {
        let t = Instant::now();
        let frames = pre_encode(60, args.quality, args.noise)?;
        let avg = frames.iter().map(Bytes::len).sum::<usize>() / frames.len();
        println!(
            "pre-encoded {} frames 1280x720 q{} noise {} (avg {:.1} KiB) in {:.2} s",
            frames.len(),
            args.quality,
            args.noise,
            avg as f64 / 1024.0,
            t.elapsed().as_secs_f64()
        );
        frames
    } else {
        Vec::new()
    };

    let publisher = connect(&addr, "bench-pub", caps)?;
    let announce: Message = if video {
        lanlink_proto::video::VideoAnnounce {
            name: STREAM_NAME.into(),
            publisher: String::new(),
            codec: lanlink_proto::video::VideoCodec::MJPEG,
            width: 1280,
            height: 720,
            fps_milli: 30_000,
        }
        .into()
    } else {
        lanlink_client::audio::announce(STREAM_NAME).into()
    };
    publisher
        .send(&Frame::new(PUB_STREAM, announce))
        .map_err(|e| e.to_string())?;

    // Subscribers: each connects, finds the stream, subscribes, and waits.
    let ready = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(n + 1));
    let connect_started = Instant::now();
    let mut threads = Vec::with_capacity(n);
    for i in 0..n {
        let (addr, ready, failed, start) =
            (addr.clone(), ready.clone(), failed.clone(), start.clone());
        let t = std::thread::Builder::new()
            .name(format!("sub-{i}"))
            .spawn(move || subscriber(i, &addr, video, plan, &ready, &failed, &start))
            .map_err(|e| e.to_string())?;
        threads.push(t);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while ready.load(Ordering::SeqCst) + failed.load(Ordering::SeqCst) < n {
        if Instant::now() > deadline {
            return Err("subscribers did not get ready within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    // Let the last subscriptions reach the relay before the first packet.
    std::thread::sleep(Duration::from_millis(300));
    start.wait();
    if failed.load(Ordering::SeqCst) > 0 {
        return Err(format!(
            "{} subscribers failed to connect or subscribe",
            failed.load(Ordering::SeqCst)
        ));
    }

    // The publisher, on this thread, paced by the wall clock.
    let mut encoder = if video {
        None
    } else {
        Some(AudioTalker::new()?)
    };
    let mut window = Window::default();
    let began = Instant::now();
    for seq in 0..plan.total {
        let due = began + plan.period * seq;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if seq == plan.warm {
            window.begin(server.pid);
        }
        if seq == plan.end {
            window.finish(server.pid);
        }
        let message: Message = match &mut encoder {
            None => VideoFrame {
                seq,
                timestamp_us: now_us(),
                keyframe: true,
                data: jpegs[seq as usize % jpegs.len()].clone(),
            }
            .into(),
            Some(talker) => talker.next(seq)?.into(),
        };
        publisher
            .send(&Frame::new(PUB_STREAM, message))
            .map_err(|e| format!("publisher: {e}"))?;
    }
    let end: Message = if video {
        VideoEnd.into()
    } else {
        AudioEnd.into()
    };
    let _ = publisher.send(&Frame::new(PUB_STREAM, end));
    let stats: Vec<SubStats> = threads
        .into_iter()
        .map(|t| {
            t.join().unwrap_or_else(|_| SubStats {
                error: Some("thread panicked".into()),
                ..SubStats::default()
            })
        })
        .collect();
    publisher.close("done");

    report(video, n, plan, &window, &stats, connect_secs);
    Ok(())
}

/// Encodes `count` frames of the moving test pattern (plus `noise`).
fn pre_encode(count: usize, quality: u8, noise: u8) -> Result<Vec<Bytes>, String> {
    let jpeg = JpegConfig {
        quality: quality.clamp(1, 100),
        ..JpegConfig::default()
    };
    let pattern = TestPattern::new(1280, 720);
    let mut encoder = JpegEncoder::new(jpeg).map_err(|e| e.to_string())?;
    let mut image = RgbImage::new(1280, 720);
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count as u32)
        .map(|seq| {
            pattern.render(seq, now_us(), &mut image);
            if noise > 0 {
                let span = 2 * u64::from(noise) + 1;
                for px in image.as_bytes_mut() {
                    // xorshift64: cheap, and plenty random for a JPEG.
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let d = (rng % span) as i16 - i16::from(noise);
                    *px = (i16::from(*px) + d).clamp(0, 255) as u8;
                }
            }
            encoder
                .encode_rgb_to_bytes(&image)
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// Opus voice encoding of a speech-like signal, one 20 ms packet at a time.
struct AudioTalker {
    source: SpeechLikeSource,
    encoder: OpusEncoder,
    pcm: Vec<f32>,
    packet: Vec<u8>,
}

impl AudioTalker {
    fn new() -> Result<AudioTalker, String> {
        let format = Format::MONO_48K;
        let source = SpeechLikeSource::new(format, 0.5).map_err(|e| e.to_string())?;
        let encoder = OpusEncoder::new(OpusConfig::voice(1)).map_err(|e| e.to_string())?;
        let samples = FrameDuration::Ms20.samples(format);
        Ok(AudioTalker {
            source,
            encoder,
            pcm: vec![0.0; samples],
            packet: vec![0; 4000],
        })
    }

    fn next(&mut self, seq: u32) -> Result<AudioPacket, String> {
        let n = self.source.read(&mut self.pcm).map_err(|e| e.to_string())?;
        self.pcm[n..].fill(0.0);
        let timestamp_us = now_us();
        let len = self
            .encoder
            .encode(&self.pcm, &mut self.packet)
            .map_err(|e| e.to_string())?;
        Ok(AudioPacket {
            seq,
            timestamp_us,
            data: Bytes::copy_from_slice(&self.packet[..len]),
        })
    }
}

fn connect(addr: &str, name: &str, capabilities: Capabilities) -> Result<Client, String> {
    let hello = Hello {
        name: name.to_owned(),
        token: None,
        capabilities,
    };
    Client::connect(addr, hello, ClientConfig::default()).map_err(|e| format!("{name}: {e}"))
}

/// One subscriber thread: connect, subscribe, then count until the end.
fn subscriber(
    i: usize,
    addr: &str,
    video: bool,
    plan: Plan,
    ready: &AtomicUsize,
    failed: &AtomicUsize,
    start: &Barrier,
) -> SubStats {
    let caps = if video {
        Capabilities::VIDEO
    } else {
        Capabilities::AUDIO
    };
    let setup = || -> Result<(Client, StreamId), String> {
        let client = connect(addr, &format!("sub-{i}"), caps)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let id = loop {
            if Instant::now() > deadline {
                return Err("no announcement within 10 s".into());
            }
            match client
                .recv_timeout(Duration::from_millis(100))
                .map_err(|e| e.to_string())?
            {
                Some(Frame {
                    stream,
                    message: Message::VideoAnnounce(a),
                }) if video && a.name == STREAM_NAME => break stream,
                Some(Frame {
                    stream,
                    message: Message::AudioAnnounce(a),
                }) if !video && a.name == STREAM_NAME => break stream,
                _ => {}
            }
        };
        let sub: Message = if video {
            VideoSubscribe.into()
        } else {
            AudioSubscribe.into()
        };
        client
            .send(&Frame::new(id, sub))
            .map_err(|e| e.to_string())?;
        Ok((client, id))
    };
    let (client, id) = match setup() {
        Ok(c) => {
            ready.fetch_add(1, Ordering::SeqCst);
            c
        }
        Err(e) => {
            failed.fetch_add(1, Ordering::SeqCst);
            start.wait();
            return SubStats {
                error: Some(e),
                ..SubStats::default()
            };
        }
    };
    start.wait();
    let mut stats = SubStats::default();
    let mut head = BytesMut::with_capacity(64);
    // The publisher takes total × period; allow generous slack after that.
    let hard_stop = Instant::now() + plan.period * plan.total + Duration::from_secs(5);
    while Instant::now() < hard_stop {
        let frame = match client.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(f)) => f,
            Ok(None) => continue,
            Err(e) => {
                stats.error = Some(e.to_string());
                break;
            }
        };
        if frame.stream != id {
            continue;
        }
        let seq_ts = match &frame.message {
            Message::VideoFrame(f) => Some((f.seq, f.timestamp_us)),
            Message::AudioPacket(p) => Some((p.seq, p.timestamp_us)),
            Message::VideoEnd(_) | Message::AudioEnd(_) => break,
            _ => None,
        };
        let Some((seq, ts)) = seq_ts else { continue };
        let latency = now_us().saturating_sub(ts);
        if (plan.warm..plan.end).contains(&seq) {
            head.clear();
            let tail = frame
                .encode_head(&mut head)
                .ok()
                .flatten()
                .map_or(0, Bytes::len);
            stats.wire_bytes += (head.len() + tail) as u64;
            stats.payload_bytes += tail as u64;
            stats.packets += 1;
            stats.latency.record_us(latency);
        }
    }
    client.close("done");
    stats
}

/// CPU and memory readings at the edges of the measurement window.
#[derive(Default)]
struct Window {
    started: Option<CpuWindow>,
    cpu: Option<CpuUse>,
    server: Option<ProcSample>,
}

impl Window {
    fn begin(&mut self, pid: u32) {
        self.started = Some(CpuWindow::start(Some(pid)));
    }

    fn finish(&mut self, pid: u32) {
        self.cpu = self.started.map(|w| w.finish());
        self.server = ProcSample::of(pid);
    }
}

fn report(
    video: bool,
    n: usize,
    plan: Plan,
    window: &Window,
    stats: &[SubStats],
    connect_secs: f64,
) {
    let what = if video { "viewers" } else { "listeners" };
    let unit = if video { "fps" } else { "packets/s" };
    let secs = plan.window_secs();
    println!(
        "== {} relay: 1 publisher -> {n} {what}; window {:.1} s ({} {} sent, seq {}..{}); {n} subscribers ready in {connect_secs:.2} s",
        if video { "video 1280x720@30 MJPEG" } else { "audio Opus 48 kHz mono 20 ms voice" },
        secs,
        plan.measured(),
        if video { "frames" } else { "packets" },
        plan.warm,
        plan.end
    );
    for (i, s) in stats.iter().enumerate() {
        if let Some(e) = &s.error {
            println!("   subscriber {i}: {e}");
        }
    }
    let rates: Vec<f64> = stats.iter().map(|s| s.packets as f64 / secs).collect();
    let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let avg = rates.iter().sum::<f64>() / rates.len() as f64;
    let expected = f64::from(plan.measured()) / secs;
    let received: u64 = stats.iter().map(|s| s.packets).sum();
    let missing = u64::from(plan.measured()) * n as u64 - received;
    println!(
        "delivered per subscriber: min {min:.2} avg {avg:.2} {unit} (sent {expected:.2}); missing {missing} of {}",
        u64::from(plan.measured()) * n as u64
    );
    let mut all = Latency::new();
    for s in stats {
        all.merge(&s.latency);
    }
    let worst_p99 = stats
        .iter()
        .map(|s| s.latency.percentile_ms(99.0))
        .fold(0.0, f64::max);
    // Nothing received is no latency, not a good one.
    let p99 = if all.is_empty() {
        f64::NAN
    } else {
        all.percentile_ms(99.0)
    };
    println!(
        "capture->receive latency (all subscribers pooled): {all}; worst subscriber's p99 {worst_p99:.2} ms"
    );
    let bytes: Vec<f64> = stats.iter().map(|s| s.wire_bytes as f64 / secs).collect();
    let bytes_avg = bytes.iter().sum::<f64>() / bytes.len() as f64;
    let bytes_max = bytes.iter().copied().fold(0.0, f64::max);
    if video {
        println!(
            "per viewer: {:.2} MB/s ({:.1} Mbit/s) of frames; all viewers {:.1} MB/s out of the server",
            bytes_avg / 1e6,
            bytes_avg * 8.0 / 1e6,
            bytes_avg * n as f64 / 1e6
        );
    } else {
        let per_packet = |f: fn(&SubStats) -> u64| {
            stats.iter().map(f).sum::<u64>() as f64 / received.max(1) as f64
        };
        let (wire, payload) = (
            per_packet(|s| s.wire_bytes),
            per_packet(|s| s.payload_bytes),
        );
        println!(
            "per listener: avg {bytes_avg:.0} B/s, max {bytes_max:.0} B/s ({:.1} kbit/s; {wire:.1} B per packet: {payload:.1} B Opus + {:.1} B header and fields) vs prototype PCM {PROTOTYPE_BYTES_PER_SEC:.0} B/s: {:.3}x ({:.1} times less)",
            bytes_avg * 8.0 / 1000.0,
            wire - payload,
            bytes_avg / PROTOTYPE_BYTES_PER_SEC,
            PROTOTYPE_BYTES_PER_SEC / bytes_avg.max(1.0)
        );
    }
    // % of one core; NaN where /proc could not be read.
    let pct = |cores: Option<f64>| cores.map_or(f64::NAN, |c| c * 100.0);
    let cpu = window.cpu.unwrap_or_default();
    let server_cpu = pct(cpu.process);
    if let Some(m) = &window.server {
        println!(
            "server pid CPU: {server_cpu:.1}% of one core over {:.2} s (utime+stime, {} ticks/s); RSS {:.1} MiB (peak {:.1} MiB), {} threads",
            cpu.seconds,
            procinfo::ticks_per_second(),
            m.rss_kib as f64 / 1024.0,
            m.hwm_kib as f64 / 1024.0,
            m.threads
        );
    }
    println!(
        "same window: this bench process (publisher + subscribers) {:.1}% of one core; whole machine busy {:.1}% of one core (tick-sampled /proc/stat, undercounts short bursts; {} cores); loadavg {}",
        pct(cpu.me),
        pct(cpu.machine),
        std::thread::available_parallelism().map_or(0, usize::from),
        procinfo::load_average().unwrap_or_default()
    );
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    if video {
        println!(
            "targets: server < 50% of one core: {} ({server_cpu:.1}%); p99 < 50 ms: {} ({p99:.2} ms); full rate to every viewer: {} (min {min:.2} fps)",
            verdict(server_cpu < 50.0),
            verdict(p99 < 50.0),
            verdict(missing == 0)
        );
    } else {
        println!(
            "targets: server < 10% of one core: {} ({server_cpu:.1}%); bandwidth < 1/10 of prototype: {} ({:.3}x)",
            verdict(server_cpu < 10.0),
            verdict(bytes_max < PROTOTYPE_BYTES_PER_SEC / 10.0),
            bytes_max / PROTOTYPE_BYTES_PER_SEC
        );
    }
}

/// The lanlink server as a child process.
struct Server {
    child: Child,
    pid: u32,
    addr: String,
    stdout: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(path: &std::path::Path) -> Result<Server, String> {
        let mut command = Command::new(path);
        if std::env::var_os("RUST_LOG").is_none() {
            // Per-connection INFO lines would bury the figures (and cost CPU).
            command.env("RUST_LOG", "warn");
        }
        let mut child = command
            // The relay's own cost, without TLS (clients connect plain).
            .args(["--bind", "127.0.0.1:0", "--no-http", "--plain"])
            // All subscribers connect from 127.0.0.1 at once.
            .args(["--connect-burst", "10000", "--max-handshakes", "4096"])
            .arg("--no-address-limits")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {} (cargo build --release -p lanlink-apps --bin lanlink-server): {e}",
                    path.display()
                )
            })?;
        let pid = child.id();
        let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("lanlink server listening on ") {
                        break rest
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned();
                    }
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err("the server exited before listening".into());
                }
            }
        };
        // Keep its stdout drained until it exits.
        let stdout = std::thread::spawn(move || for _ in lines.by_ref() {});
        println!("server {} pid {pid} listening on {addr}", path.display());
        Ok(Server {
            child,
            pid,
            addr,
            stdout: Some(stdout),
        })
    }

    /// SIGTERM through `kill`, then wait (SIGKILL after 5 s).
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.pid.to_string())
            .stdout(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    println!("server stopped ({status})");
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    eprintln!("server ignored SIGTERM for 5 s; killing it");
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        if let Some(t) = self.stdout.take() {
            let _ = t.join();
        }
    }
}
