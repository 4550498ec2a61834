//! Added end-to-end audio latency through a real server, measured with
//! clicks: a click source goes through the talk path, the server and the
//! listen path to a sink that finds the clicks again, all in this process
//! on one clock. `scripts/bench-audio-latency` builds it, starts a release
//! `lanlink-server` on loopback and runs it.
//!
//! ```text
//! lanlink-server --bind 127.0.0.1:7878 --no-http &
//! cargo run --release -p lanlink-tools --example audio_latency -- --addr 127.0.0.1:7878 [--seconds 20] [--runs 5]
//! ```
//!
//! The talk path is [`audio::publish`] (Opus encoding, one
//! 20 ms frame per 20 ms of wall clock, the client's writer thread and
//! socket); the listen path is [`audio::play`] (the client's socket and
//! reader thread, a jitter buffer whose delay follows the jitter it
//! measures, Opus decoding, mixing, one frame per 20 ms pulled shortly after
//! the packets arrive) — the code `lanlink talk` and `lanlink listen` run.
//!
//! **What one figure is.** A click is a 10 ms tone burst that starts at
//! full level, every `--interval-ms`; its tone (one of eight, 500–2250 Hz,
//! in turn) tells clicks apart even when one is delayed by more than the
//! interval. Each side puts samples on a timeline: sample `k` of a frame is
//! at the moment the frame was handed over plus `k` / 48 kHz. On the way in,
//! "handed over" is when the source's `read` returns the frame to the
//! encoder; on the way out, when the frame is passed to the sink's `write`.
//! A click's latency is the time from its onset on the input timeline to
//! its onset on the output timeline (the first sample above 0.3 after half
//! an interval of quiet, paired with the latest input click of the same tone).
//! That includes encoding, both sockets and the server, the wait for the
//! listener's next pull, the jitter buffer, decoding and Opus's own delay
//! (the onset moves by the codec's lookahead). It excludes device buffers
//! on both sides (a capture device's ring and period before `read`, a
//! playback device's ring and period after `write`), which depend on the
//! sound card and its settings, not on lanlink.

use std::net::ToSocketAddrs;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use lanlink_audio::{AudioError, AudioSink, AudioSource, Format, JitterStats};
use lanlink_client::audio::ListenOptions;
use lanlink_client::{Session as Link, Trust};
use lanlink_proto::Capabilities;
use lanlink_tools::Latency;

/// Added audio latency (talk path, server, listen path) with clicks.
#[derive(Parser, Debug)]
struct Args {
    /// The server, as HOST:PORT; must be a loopback address.
    #[arg(long)]
    addr: String,
    /// Seconds of clicks.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Time between clicks in ms. Clicks carry one of 8 tones in turn, so
    /// latencies up to 8 intervals are told apart.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(100..=2000))]
    interval_ms: u32,
    /// Talker/listener sessions, each with fresh connections and the
    /// talker's 20 ms ticks shifted by another fraction of a frame against
    /// the listener's; figures are given per run and pooled.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
    runs: u32,
    /// Connect without TLS (to a server run with --plain).
    #[arg(long)]
    plain: bool,
    /// Also print every click's latency in order, to see when the slow
    /// ones came and how the delay recovered.
    #[arg(long)]
    trace: bool,
}

/// Connects as `name` to the server, over TLS (accepting the certificate it
/// presents) unless `--plain`.
fn connect(args: &Args, name: &str) -> Result<Link, String> {
    let trust = if args.plain {
        Trust::Plain
    } else {
        Trust::AnyCertificate
    };
    let (session, _events) = Link::builder(&args.addr)
        .name(name)
        .trust(trust)
        .capabilities(Capabilities::AUDIO)
        .connect()
        .map_err(|e| e.to_string())?;
    Ok(session)
}

const RATE: f64 = 48_000.0;
/// A click: 10 ms of a tone starting at its peak. Its frequency tells which
/// click it is (the index modulo [`TAGS`]), so a click delayed by more than
/// the interval is still paired with the right one.
const CLICK_SAMPLES: usize = 480;
const CLICK_LEVEL: f32 = 0.8;
const TAGS: u64 = 8;
/// The output onset: the first sample above this after half an interval of
/// samples below it.
const ONSET: f32 = 0.3;

/// The tone of click `index`: 500 Hz to 2250 Hz in 250 Hz steps (a 10 ms
/// burst resolves 100 Hz).
fn tag_hz(index: u64) -> f64 {
    500.0 + 250.0 * (index % TAGS) as f64
}

/// Which tag's tone `x` (one click's samples from its onset) carries.
fn tag_of(x: &[f32]) -> u64 {
    let power = |hz: f64| {
        let w = std::f64::consts::TAU * hz / RATE;
        let (mut re, mut im) = (0.0, 0.0);
        for (n, v) in x.iter().enumerate() {
            re += f64::from(*v) * (w * n as f64).cos();
            im += f64::from(*v) * (w * n as f64).sin();
        }
        re * re + im * im
    };
    (0..TAGS)
        .max_by(|a, b| power(tag_hz(*a)).total_cmp(&power(tag_hz(*b))))
        .unwrap_or(0)
}

/// The moment sample `k` of a frame handed over at `at` stands for.
fn on_timeline(at: Instant, k: usize) -> Instant {
    at + Duration::from_secs_f64(k as f64 / RATE)
}

/// A click found on one side: its tag and its onset on that side's
/// timeline.
type Onset = (u64, Instant);

/// Clicks every `interval` samples (the first after one interval);
/// records each onset on the input timeline.
struct ClickSource {
    interval: u64,
    next: u64,
    onsets: Arc<Mutex<Vec<Onset>>>,
}

impl AudioSource for ClickSource {
    fn format(&self) -> Format {
        Format::MONO_48K
    }

    fn read(&mut self, out: &mut [f32]) -> Result<usize, AudioError> {
        let start = self.next;
        let mut onsets = Vec::new();
        for (k, s) in out.iter_mut().enumerate() {
            let n = start + k as u64;
            let (index, phase) = (n / self.interval, (n % self.interval) as usize);
            *s = if index > 0 && phase < CLICK_SAMPLES {
                if phase == 0 {
                    onsets.push((index % TAGS, k));
                }
                let t = phase as f64 / RATE;
                CLICK_LEVEL * (std::f64::consts::TAU * tag_hz(index) * t).cos() as f32
            } else {
                0.0
            };
        }
        self.next += out.len() as u64;
        // Handed to the encoder now.
        let at = Instant::now();
        if let Ok(mut all) = self.onsets.lock() {
            all.extend(onsets.into_iter().map(|(t, k)| (t, on_timeline(at, k))));
        }
        Ok(out.len())
    }
}

/// Finds click onsets in what it is given and tells their tags; records
/// them on the output timeline.
struct ClickSink {
    /// Samples below [`ONSET`] before one above it starts a click.
    quiet_needed: u64,
    quiet: u64,
    /// The click being read: its onset time and its samples so far.
    current: Option<(Instant, Vec<f32>)>,
    onsets: Arc<Mutex<Vec<Onset>>>,
}

impl AudioSink for ClickSink {
    fn format(&self) -> Format {
        Format::MONO_48K
    }

    fn write(&mut self, frame: &[f32]) -> Result<(), AudioError> {
        let at = Instant::now();
        for (k, s) in frame.iter().enumerate() {
            if s.abs() > ONSET {
                if self.quiet >= self.quiet_needed && self.current.is_none() {
                    self.current = Some((on_timeline(at, k), Vec::with_capacity(CLICK_SAMPLES)));
                }
                self.quiet = 0;
            } else {
                self.quiet += 1;
            }
            if let Some((onset, samples)) = &mut self.current {
                samples.push(*s);
                if samples.len() == CLICK_SAMPLES {
                    let found = (tag_of(samples), *onset);
                    if let Ok(mut all) = self.onsets.lock() {
                        all.push(found);
                    }
                    self.current = None;
                }
            }
        }
        Ok(())
    }
}

/// Each output click against the latest input click with the same tag
/// before it: latencies in the order the clicks came out, and output clicks
/// with no such input click within `TAGS` intervals.
fn pair(inputs: &[Onset], outputs: &[Onset], interval: Duration) -> (Vec<Duration>, usize) {
    let horizon = interval * TAGS as u32;
    let (mut latencies, mut unmatched) = (Vec::new(), 0);
    for (tag, out) in outputs {
        let before = inputs.partition_point(|(_, i)| i <= out);
        let matched = inputs[..before]
            .iter()
            .rev()
            .find(|(t, _)| t == tag)
            .map(|(_, i)| *out - *i);
        match matched {
            Some(d) if d < horizon => latencies.push(d),
            _ => unmatched += 1,
        }
    }
    (latencies, unmatched)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// What one talker/listener session measured.
struct Session {
    sent: u64,
    clicks: usize,
    latencies: Latency,
    unmatched: usize,
    stats: JitterStats,
}

/// One talker and one listener, fresh connections, the talker starting
/// `offset` after the listener.
fn session(args: &Args, offset: Duration) -> Result<Session, String> {
    let interval = Duration::from_millis(u64::from(args.interval_ms));
    let inputs = Arc::new(Mutex::new(Vec::new()));
    let outputs = Arc::new(Mutex::new(Vec::new()));
    // The listener first, so it hears the announcement.
    let listener = connect(args, "latency-listener")?;
    let sink = ClickSink {
        quiet_needed: (interval.as_secs_f64() * RATE / 2.0) as u64,
        quiet: 0,
        current: None,
        onsets: Arc::clone(&outputs),
    };
    let options = ListenOptions {
        only: Some("clicks".into()),
        limit: Some(Duration::from_secs_f64(args.seconds + 10.0)),
    };
    let listening = listener.listen(sink, options).map_err(|e| e.to_string())?;

    // Not synchronisation: it moves the talker's 20 ms ticks against the
    // listener's start, which decided how long a packet waited for the next
    // tick while the listener's tick ran free (it now follows arrivals).
    std::thread::sleep(offset);
    let talker = connect(args, "latency-talker")?;
    let source = ClickSource {
        interval: (interval.as_secs_f64() * RATE) as u64,
        next: 0,
        onsets: Arc::clone(&inputs),
    };
    let sent = talker
        .publish_audio(
            "clicks",
            source,
            Some(Duration::from_secs_f64(args.seconds)),
        )
        .and_then(|p| p.wait());
    talker.close("done");
    let report = listening.wait().map_err(|e| e.to_string())?;
    listener.close("done");
    let sent = sent.map_err(|e| e.to_string())?;

    let inputs = inputs.lock().map_err(|_| "poisoned")?.clone();
    let outputs = outputs.lock().map_err(|_| "poisoned")?.clone();
    let (in_order, unmatched) = pair(&inputs, &outputs, interval);
    if args.trace {
        let all: Vec<_> = in_order.iter().map(|d| format!("{:.0}", ms(*d))).collect();
        println!("  every click, in order (ms): {}", all.join(" "));
    }
    let mut latencies = Latency::new();
    for d in in_order {
        latencies.record(d);
    }
    let stats = report
        .streams
        .iter()
        .find(|(name, _)| name == "clicks")
        .map(|(_, s)| *s)
        .unwrap_or_default();
    Ok(Session {
        sent,
        clicks: inputs.len(),
        latencies,
        unmatched,
        stats,
    })
}

fn run(args: &Args) -> Result<(), String> {
    let loopback = args
        .addr
        .to_socket_addrs()
        .map_err(|e| format!("{}: {e}", args.addr))?
        .all(|a| a.ip().is_loopback());
    if !loopback {
        return Err(format!("{} is not a loopback address", args.addr));
    }
    if !(1.0..=600.0).contains(&args.seconds) {
        return Err("--seconds must be between 1 and 600".into());
    }
    println!(
        "audio latency over {} via lanlink-server: {} run(s) of {:.0} s, a click every {} ms",
        args.addr, args.runs, args.seconds, args.interval_ms
    );
    let mut all = Session {
        sent: 0,
        clicks: 0,
        latencies: Latency::new(),
        unmatched: 0,
        stats: JitterStats::default(),
    };
    for run in 0..args.runs {
        // Talker phases spread evenly over one 20 ms frame.
        let offset = Duration::from_millis(20) * run / args.runs;
        let s = session(args, offset)?;
        print_session(&format!("run {} (+{:.0} ms)", run + 1, ms(offset)), &s);
        all.sent += s.sent;
        all.clicks += s.clicks;
        all.latencies.merge(&s.latencies);
        all.unmatched += s.unmatched;
        let (a, b) = (&mut all.stats, &s.stats);
        a.received += b.received;
        a.played += b.played;
        a.lost += b.lost;
        a.late += b.late;
        a.concealed += b.concealed;
        a.underruns += b.underruns;
        a.dropped += b.dropped;
        a.inserted += b.inserted;
        // Pooled: the worst run's interarrival jitter and final target.
        a.jitter = a.jitter.max(b.jitter);
        a.target = a.target.max(b.target);
    }
    print_session("all runs", &all);
    if all.latencies.is_empty() {
        return Err("no click came through".into());
    }
    Ok(())
}

fn print_session(label: &str, s: &Session) {
    let l = &s.latencies;
    println!(
        "{label}: {} packets, clicks {} sent / {} heard / {} unmatched",
        s.sent,
        s.clicks,
        l.count(),
        s.unmatched
    );
    if !l.is_empty() {
        println!("  added latency (encoder input -> sink input, no device buffers): {l}");
    }
    let j = &s.stats;
    println!(
        "  jitter buffer: received {}, played {}, lost {}, late {}, concealed {}, underruns {}, dropped {}, inserted {}, jitter {:.2} ms, target at the end {:.1} ms",
        j.received, j.played, j.lost, j.late, j.concealed, j.underruns, j.dropped, j.inserted,
        ms(j.jitter), ms(j.target)
    );
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("audio_latency: {e}");
            ExitCode::from(1)
        }
    }
}
