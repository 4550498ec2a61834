//! The honest users, all real `lanlink` processes on 127.0.0.1 (plus one
//! browser-like MJPEG reader), doing what people do while the attack runs:
//!
//! - two `lanlink chat` in script mode saying a numbered line each every
//!   700 ms; each line must reach the other, and nothing either prints may
//!   hold a raw control, bidi or invisible character (peer text is
//!   escaped before it reaches a terminal);
//! - `lanlink get` and `lanlink put` in turn, each file's BLAKE3 checked
//!   against its source;
//! - `lanlink cam --test-pattern` watched by `lanlink view --save`, and by
//!   an HTTP MJPEG reader that checks every part is a JPEG image;
//! - `lanlink talk --tone 440` heard by two `lanlink listen
//!   --output-file`: one for that stream (the tone must be audible
//!   throughout) and one mixing every stream, the attackers' stereo and
//!   garbage ones included (it must live to the end).
//!
//! Every loop is bounded by the run's end and a count.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lanlink_tools::procs::{self, Lanlink, Proc};

use crate::net;

/// The honest chat names (look-alikes of these are an attack class).
pub const CHATTERS: [&str; 2] = ["honest-ada", "honest-bob"];
/// The honest streams (the attackers subscribe to them and never read).
pub const CAM: &str = "honest-cam";
/// See [`CAM`].
pub const TONE: &str = "honest-tone";
/// The shared file the honest downloads fetch.
pub const SHARED: &str = "honest.bin";

/// What the honest users got.
#[derive(Debug, Default)]
pub struct HonestReport {
    /// Chat lines said, and delivered to the other chatter.
    pub chat_sent: u64,
    /// See `chat_sent`.
    pub chat_delivered: u64,
    /// Lines the honest processes printed, and those holding a raw
    /// control, bidi or invisible character (any is a failure).
    pub lines_seen: u64,
    /// See `lines_seen`.
    pub dirty_lines: Vec<String>,
    /// Downloads and uploads run, and verified by hash.
    pub transfers_run: u64,
    /// See `transfers_run`.
    pub transfers_verified: u64,
    /// Frames `lanlink cam` sent and `lanlink view` saved; the longest time
    /// without a new one.
    pub frames_sent: u64,
    /// See `frames_sent`.
    pub frames_saved: u64,
    /// See `frames_sent`.
    pub longest_gap: f64,
    /// MJPEG parts the HTTP reader got, and those that were not a JPEG.
    pub http_frames: u64,
    /// See `http_frames`.
    pub http_bad_parts: u64,
    /// Audio packets `lanlink talk` sent, and what the tone's listener
    /// said it received.
    pub packets_sent: u64,
    /// See `packets_sent`.
    pub packets_received: u64,
    /// Share of the tone listener's output in which the tone is audible.
    pub audible: f64,
    /// Seconds the mixing listener played (it must play to the end).
    pub mixed_seconds: f64,
    /// Everything that went wrong: each is an honest loss.
    pub failures: Vec<String>,
}

/// Where the honest users work.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// The server's share (holds [`SHARED`]).
    pub share: PathBuf,
    /// The server's inbox.
    pub inbox: PathBuf,
    /// Scratch for downloads, recordings and saved frames.
    pub work: PathBuf,
}

/// The honest users' processes, started and running.
pub struct Honest {
    cam: Proc,
    view: Proc,
    talk: Proc,
    listen_tone: Proc,
    listen_all: Proc,
    /// Set when the run ends: the background loops stop.
    stop: Arc<AtomicBool>,
    chat_thread: std::thread::JoinHandle<(ChatSeen, Vec<Proc>)>,
    files_thread: std::thread::JoinHandle<(u64, u64, Vec<String>)>,
    http_thread: std::thread::JoinHandle<(u64, u64, Vec<String>)>,
    frames_thread: std::thread::JoinHandle<(u64, f64)>,
    dirs: Dirs,
}

/// A chat process's view: lines it printed, what it received.
#[derive(Debug, Default)]
struct ChatSeen {
    sent: [u64; 2],
    received: [BTreeSet<u64>; 2],
    lines: u64,
    dirty: Vec<String>,
    failures: Vec<String>,
}

/// True if `line` holds a character that acts on a terminal or reorders
/// the text around it: a control character (escape sequences, newlines,
/// bells), a line or paragraph separator, a bidi control. What chat
/// clients must have replaced before printing peer text.
pub fn is_dirty(line: &str) -> bool {
    line.chars().any(|c| {
        c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}')
            || lanlink_transport::text::is_bidi_control(c)
    })
}

fn spawn(lanlink: &Lanlink, label: &str, args: &[&str], extra: &[&Path]) -> Result<Proc, String> {
    let mut cmd = lanlink.client(args[0]);
    cmd.args(&args[1..]).args(extra);
    Proc::spawn(label, cmd, label.starts_with("lanlink chat"))
}

/// Starts every honest user; returns once they are all connected and the
/// streams flow.
pub fn start(
    lanlink: &Lanlink,
    addr: &str,
    http: SocketAddr,
    dirs: &Dirs,
) -> Result<Honest, String> {
    let mut chat = Vec::new();
    for name in CHATTERS {
        let mut p = spawn(
            lanlink,
            &format!("lanlink chat {name}"),
            &["chat", addr, "--name", name],
            &[],
        )?;
        if p.expect("-- connected to", Duration::from_secs(15))
            .is_none()
        {
            return Err(format!("{name} did not connect: {}", p.stderr_tail()));
        }
        chat.push(p);
    }
    let mut cam = spawn(
        lanlink,
        "lanlink cam",
        &[
            "cam",
            addr,
            "--test-pattern",
            "--size",
            "320x240",
            "--fps",
            "10",
            "--quality",
            "60",
            "--name",
            CAM,
        ],
        &[],
    )?;
    if cam.expect("publishing", Duration::from_secs(15)).is_none() {
        return Err(format!("lanlink cam did not start: {}", cam.stderr_tail()));
    }
    let mut talk = spawn(
        lanlink,
        "lanlink talk",
        &["talk", addr, "--tone", "440", "--name", TONE],
        &[],
    )?;
    if talk.expect("talking as", Duration::from_secs(15)).is_none() {
        return Err(format!(
            "lanlink talk did not start: {}",
            talk.stderr_tail()
        ));
    }
    // Listeners after the talker: a listener that heard nothing but an
    // attacker's short stream would be done when it ended.
    std::thread::sleep(Duration::from_millis(500));
    let frames_dir = dirs.work.join("frames");
    let view = spawn(
        lanlink,
        "lanlink view",
        &["view", addr, CAM, "--save"],
        &[&frames_dir],
    )?;
    let tone_wav = dirs.work.join("tone.wav");
    let mut listen_tone = spawn(
        lanlink,
        "lanlink listen (the tone)",
        &["listen", addr, TONE, "--output-file"],
        &[&tone_wav],
    )?;
    let all_wav = dirs.work.join("all.wav");
    let mut listen_all = spawn(
        lanlink,
        "lanlink listen (every stream)",
        &["listen", addr, "--output-file"],
        &[&all_wav],
    )?;
    for p in [&mut listen_tone, &mut listen_all] {
        if p.expect("listening", Duration::from_secs(15)).is_none() {
            return Err(format!("{} did not start: {}", p.label, p.stderr_tail()));
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let files_thread = {
        let (lanlink, addr, dirs, stop) =
            (lanlink.clone(), addr.to_owned(), dirs.clone(), stop.clone());
        std::thread::spawn(move || transfers(&lanlink, &addr, &dirs, &stop))
    };
    let http_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || mjpeg_reader(http, &stop))
    };
    let frames_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || watch_frames(&frames_dir, &stop))
    };
    // The chat loop owns the chat processes meanwhile.
    let chat_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let seen = chat_loop(&mut chat, &stop);
            (seen, chat)
        })
    };
    Ok(Honest {
        cam,
        view,
        talk,
        listen_tone,
        listen_all,
        stop,
        chat_thread,
        files_thread,
        http_thread,
        frames_thread,
        dirs: dirs.clone(),
    })
}

/// The token a chat line carries: `hm:NAME:SEQ`.
fn token_of(line: &str) -> Option<(usize, u64)> {
    let at = line.find("hm:")?;
    let mut parts = line[at + 3..].split(':');
    let who = parts.next()?;
    let seq = parts
        .next()?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let i = CHATTERS.iter().position(|n| *n == who)?;
    Some((i, seq))
}

fn look_at(seen: &mut ChatSeen, me: usize, line: &str) {
    seen.lines += 1;
    if is_dirty(line) && seen.dirty.len() < 10 {
        seen.dirty.push(format!("{}: {line:?}", CHATTERS[me]));
    }
    if let Some((from, seq)) = token_of(line) {
        if from != me {
            seen.received[from].insert(seq);
        }
    }
}

fn chat_loop(procs: &mut [Proc], stop: &AtomicBool) -> ChatSeen {
    let mut seen = ChatSeen::default();
    let mut next = Instant::now();
    let mut rounds = 0u64;
    while !stop.load(Ordering::Relaxed) && rounds < 100_000 {
        if Instant::now() >= next {
            next += Duration::from_millis(700);
            for (i, p) in procs.iter_mut().enumerate() {
                if p.say(&format!("hm:{}:{}", CHATTERS[i], seen.sent[i])) {
                    seen.sent[i] += 1;
                }
            }
        }
        for (i, p) in procs.iter_mut().enumerate() {
            for line in p.new_lines(10_000) {
                look_at(&mut seen, i, &line);
            }
            if let Some(s) = p.exited() {
                seen.failures.push(format!(
                    "{} exited during the run ({s}): {}",
                    p.label,
                    p.stderr_tail()
                ));
                return seen;
            }
        }
        rounds += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    seen
}

/// Downloads and uploads in turn until stopped; returns (run, verified,
/// failures).
fn transfers(
    lanlink: &Lanlink,
    addr: &str,
    dirs: &Dirs,
    stop: &AtomicBool,
) -> (u64, u64, Vec<String>) {
    let source = dirs.share.join(SHARED);
    let want = match hash_file(&source) {
        Ok(h) => h,
        Err(e) => return (0, 0, vec![e]),
    };
    let (mut run, mut ok, mut failures) = (0u64, 0u64, Vec::new());
    let mut round = 0u64;
    // A person's pace, not a benchmark's: a download and an upload every
    // two seconds (connection attempts per address are limited).
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) && round < 10_000 && failures.len() < 5 {
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        next += Duration::from_secs(2);
        let into = dirs.work.join(format!("get-{round}"));
        let mut get = lanlink.client("get");
        get.arg(addr).arg(SHARED).arg("-o").arg(&into);
        let as_name = format!("honest-put-{round}.bin");
        let mut put = lanlink.client("put");
        put.arg(addr).arg(&source).args(["--as", &as_name]);
        for (what, cmd, result) in [
            ("get", get, into.join(SHARED)),
            ("put", put, dirs.inbox.join(&as_name)),
        ] {
            run += 1;
            match procs::run(what, cmd, Duration::from_secs(120)) {
                Ok((Some(s), _, _)) if s.success() => match hash_file(&result) {
                    Ok(h) if h == want => ok += 1,
                    Ok(h) => failures.push(format!("{what} #{round}: hash {h}, expected {want}")),
                    Err(e) => failures.push(format!("{what} #{round}: {e}")),
                },
                Ok((s, _, err)) => failures.push(format!("{what} #{round}: {s:?}: {err}")),
                Err(e) => failures.push(format!("{what} #{round}: {e}")),
            }
            let _ = std::fs::remove_file(&result);
        }
        let _ = std::fs::remove_dir_all(&into);
        round += 1;
    }
    (run, ok, failures)
}

/// BLAKE3 of a file, as hex.
pub fn hash_file(path: &Path) -> Result<String, String> {
    let data = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    Ok(blake3::hash(&data).to_hex().to_string())
}

/// Counts the frames `lanlink view` saves (deleting them) until stopped;
/// returns (frames, longest gap in seconds once they flowed).
fn watch_frames(dir: &Path, stop: &AtomicBool) -> (u64, f64) {
    let (mut frames, mut longest, mut last) = (0u64, Duration::ZERO, None::<Instant>);
    let mut rounds = 0u64;
    while !stop.load(Ordering::Relaxed) && rounds < 1_000_000 {
        std::thread::sleep(Duration::from_millis(100));
        let fresh = lanlink_tools::wav::take_jpegs(dir);
        let now = Instant::now();
        if fresh > 0 {
            frames += fresh;
            if let Some(t) = last {
                longest = longest.max(now - t);
            }
            last = Some(now);
        }
        rounds += 1;
    }
    if let Some(t) = last {
        longest = longest.max(Instant::now() - t);
    }
    (
        frames + lanlink_tools::wav::take_jpegs(dir),
        longest.as_secs_f64(),
    )
}

/// A browser's view of the camera: `GET /stream/honest-cam` from
/// 127.0.0.1, reconnecting if cut, every part checked to be an
/// `image/jpeg` holding a JPEG image (SOI … EOI). Returns (frames, bad
/// parts, failures).
fn mjpeg_reader(http: SocketAddr, stop: &AtomicBool) -> (u64, u64, Vec<String>) {
    let (mut frames, mut bad, mut failures) = (0u64, 0u64, Vec::new());
    let mut attempts = 0;
    while !stop.load(Ordering::Relaxed) && attempts < 50 {
        attempts += 1;
        let request = format!("GET /stream/{CAM} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        let Ok(mut s) = net::tcp(net::ip(1), http) else {
            std::thread::sleep(Duration::from_millis(500));
            continue;
        };
        if std::io::Write::write_all(&mut s, request.as_bytes()).is_err() {
            continue;
        }
        let mut buf = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        let mut boundary = None;
        while !stop.load(Ordering::Relaxed) {
            match std::io::Read::read(&mut s, &mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(_) => break,
            }
            if boundary.is_none() {
                let Some(end) = net::memchr_find(&buf, b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                if !head.starts_with("HTTP/1.1 200") {
                    if failures.len() < 5 {
                        failures.push(format!(
                            "GET /stream/{CAM}: {}",
                            head.lines().next().unwrap_or("")
                        ));
                    }
                    break;
                }
                boundary = head.split("boundary=").nth(1).map(|b| {
                    format!(
                        "--{}",
                        b.split(|c: char| c.is_whitespace()).next().unwrap_or("")
                    )
                });
                buf.drain(..end + 4);
            }
            let Some(delim) = boundary.as_deref() else {
                continue;
            };
            // Parts: DELIM\r\nheaders\r\n\r\nJPEG\r\n
            while let Some(start) = net::memchr_find(&buf, delim.as_bytes()) {
                let after = start + delim.len();
                let Some(head_end) = net::memchr_find(&buf[after..], b"\r\n\r\n") else {
                    break;
                };
                let head = String::from_utf8_lossy(&buf[after..after + head_end]).into_owned();
                let len: Option<usize> = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse().ok());
                let body_at = after + head_end + 4;
                let Some(len) = len else {
                    bad += 1;
                    buf.drain(..body_at);
                    continue;
                };
                if buf.len() < body_at + len {
                    break;
                }
                let body = &buf[body_at..body_at + len];
                let jpeg = head.contains("Content-Type: image/jpeg")
                    && body.starts_with(&[0xFF, 0xD8])
                    && body.ends_with(&[0xFF, 0xD9]);
                if jpeg {
                    frames += 1;
                } else {
                    bad += 1;
                }
                buf.drain(..body_at + len);
            }
            if buf.len() > 8 * 1024 * 1024 {
                failures.push("an MJPEG part without end".into());
                break;
            }
        }
    }
    (frames, bad, failures)
}

impl Honest {
    /// Whether every honest process is still running (for the run's log).
    pub fn alive(&mut self) -> Vec<String> {
        let mut gone = Vec::new();
        for p in [
            &mut self.cam,
            &mut self.view,
            &mut self.talk,
            &mut self.listen_tone,
            &mut self.listen_all,
        ] {
            if let Some(s) = p.exited() {
                gone.push(format!("{} exited ({s}): {}", p.label, p.stderr_tail()));
            }
        }
        gone
    }

    /// Ends the honest users' work and checks it.
    pub fn finish(mut self) -> HonestReport {
        let mut r = HonestReport::default();
        r.failures.extend(self.alive());
        self.stop.store(true, Ordering::Relaxed);
        let (mut seen, mut chat) = self.chat_thread.join().unwrap_or_default();
        // End of input: each client says goodbye once its lines are
        // delivered; then whatever the other printed since is read.
        for p in &mut chat {
            p.close_stdin();
        }
        for (i, p) in chat.iter_mut().enumerate() {
            match p.wait(Duration::from_secs(20)) {
                Some(s) if s.success() => {}
                s => r
                    .failures
                    .push(format!("{} ended with {s:?}: {}", p.label, p.stderr_tail())),
            }
            for line in p.output() {
                look_at(&mut seen, i, &line);
            }
        }
        for (i, name) in CHATTERS.iter().enumerate() {
            let other = 1 - i;
            let got = seen.received[i].len() as u64;
            r.chat_sent += seen.sent[i];
            r.chat_delivered += got;
            if got != seen.sent[i] {
                let missing: Vec<u64> = (0..seen.sent[i])
                    .filter(|s| !seen.received[i].contains(s))
                    .take(10)
                    .collect();
                r.failures.push(format!(
                    "{} received {got} of the {} lines {name} said (missing e.g. {missing:?})",
                    CHATTERS[other], seen.sent[i]
                ));
            }
        }
        r.lines_seen += seen.lines;
        r.dirty_lines.extend(seen.dirty);
        r.failures.extend(seen.failures);

        let (run, ok, failures) = self.files_thread.join().unwrap_or_default();
        r.transfers_run = run;
        r.transfers_verified = ok;
        r.failures
            .extend(failures.into_iter().map(|f| format!("transfer: {f}")));
        if ok == 0 {
            r.failures.push("no transfer completed".into());
        }

        // End the streams; the viewer and the listeners must notice and
        // finish by themselves.
        for p in [&mut self.talk, &mut self.cam] {
            match p.terminate(Duration::from_secs(10)) {
                Some(s) if s.success() => {}
                s => r.failures.push(format!(
                    "{} did not exit cleanly on SIGTERM ({s:?})",
                    p.label
                )),
            }
        }
        r.packets_sent = self.talk.sent_count();
        r.frames_sent = self.cam.sent_count();
        for p in [&mut self.view, &mut self.listen_tone, &mut self.listen_all] {
            match p.wait(Duration::from_secs(15)) {
                Some(s) if s.success() => {}
                Some(s) => {
                    r.failures
                        .push(format!("{} exited with {s}: {}", p.label, p.stderr_tail()))
                }
                None => {
                    p.kill();
                    r.failures
                        .push(format!("{} did not finish after its stream ended", p.label));
                }
            }
        }
        let (frames, gap) = self.frames_thread.join().unwrap_or_default();
        r.frames_saved = frames;
        r.longest_gap = gap;
        if frames < r.frames_sent / 2 {
            r.failures.push(format!(
                "lanlink view saved {frames} of {} frames",
                r.frames_sent
            ));
        }
        if gap > 3.0 {
            r.failures
                .push(format!("lanlink view got no frame for {gap:.1} s"));
        }
        let (http_frames, bad, failures) = self.http_thread.join().unwrap_or_default();
        r.http_frames = http_frames;
        r.http_bad_parts = bad;
        r.failures
            .extend(failures.into_iter().map(|f| format!("browser: {f}")));
        if http_frames == 0 {
            r.failures.push("the MJPEG reader got no frame".into());
        }
        if bad > 0 {
            r.failures
                .push(format!("{bad} MJPEG part(s) were not JPEG images"));
        }

        for (p, who) in [
            (&mut self.listen_tone, "tone"),
            (&mut self.listen_all, "all"),
        ] {
            for line in p.output() {
                r.lines_seen += 1;
                if is_dirty(&line) && r.dirty_lines.len() < 10 {
                    r.dirty_lines.push(format!("{}: {line:?}", p.label));
                }
                if who == "tone" {
                    if let Some(rest) = line.strip_prefix(&format!("{TONE}: received ")) {
                        r.packets_received = rest
                            .split(' ')
                            .next()
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0);
                    }
                }
                if who == "all" {
                    if let Some(s) = line
                        .strip_prefix("played ")
                        .and_then(|s| s.strip_suffix(" s"))
                    {
                        r.mixed_seconds = s.parse().unwrap_or(0.0);
                    }
                }
            }
        }
        for p in [&mut self.view] {
            for line in p.output() {
                r.lines_seen += 1;
                if is_dirty(&line) && r.dirty_lines.len() < 10 {
                    r.dirty_lines.push(format!("{}: {line:?}", p.label));
                }
            }
        }
        match lanlink_tools::wav::audible_share(&self.dirs.work.join("tone.wav")) {
            Ok(share) => {
                r.audible = share;
                if share < 0.85 {
                    r.failures.push(format!(
                        "the tone is audible in only {:.1}% of its listener's output",
                        share * 100.0
                    ));
                }
            }
            Err(e) => r.failures.push(format!("the tone's listener: {e}")),
        }
        if r.packets_received < r.packets_sent * 9 / 10 {
            r.failures.push(format!(
                "the tone's listener received {} of {} packets",
                r.packets_received, r.packets_sent
            ));
        }
        if !r.dirty_lines.is_empty() {
            r.failures.push(format!(
                "{} honest output line(s) hold raw control or bidi characters, e.g. {}",
                r.dirty_lines.len(),
                r.dirty_lines[0]
            ));
        }
        r
    }
}
