//! Live audio and video through the run, in sessions of at most a minute
//! (so a long soak also starts and stops streams, and its files stay small).
//!
//! Each session: `lanlink listen --output-file` and an in-process probe
//! wait for `lanlink talk --tone 440`; `lanlink view --save` watches
//! `lanlink cam --test-pattern`. At the session's end the talker and the
//! camera get SIGTERM, which ends their streams: the listener and viewer
//! must then exit by themselves. Checked: the listener played the whole
//! session with the tone audible (concealment fills what did not arrive in
//! time, and is counted); packets crossed with bounded latency (the probe
//! compares each packet's capture timestamp with the clock, the same
//! machine's); the viewer kept receiving new frames, never stalling long.

use std::path::Path;
use std::time::{Duration, Instant};

use lanlink_proto::audio::AudioSubscribe;
use lanlink_proto::{Capabilities, Frame, Message};
use lanlink_tools::Latency;

use lanlink_tools::procs::{Lanlink, Proc};

/// The media figures of a run.
#[derive(Debug, Default)]
pub struct MediaReport {
    /// Sessions run.
    pub sessions: u64,
    /// Seconds the sessions lasted, together.
    pub seconds: f64,
    /// Audio packets the talker sent.
    pub sent: u64,
    /// Video frames the camera sent.
    pub frames_sent: u64,
    /// Audio packets the listener received.
    pub received: u64,
    /// Packets lost (never arrived in time to be waited for).
    pub lost: u64,
    /// Packets that arrived after their playout time.
    pub late: u64,
    /// Frames concealed.
    pub concealed: u64,
    /// Seconds the listener played.
    pub played: f64,
    /// Share of 20 ms frames, after the first second, in which the tone
    /// is audible.
    pub audible: f64,
    /// Sequence numbers the probe found missing (dropped by the server).
    pub probe_skipped: u64,
    /// Packet latency (capture to arrival at the probe), ms.
    pub audio_latency: Latency,
    /// Frames the viewer saved.
    pub frames: u64,
    /// Longest time without a new frame once frames flowed, seconds.
    pub longest_gap: f64,
    /// The viewer's own latency figures (p50, p99), ms, worst session.
    pub view_p50: f64,
    /// See `view_p50`.
    pub view_p99: f64,
    /// Everything that went wrong.
    pub failures: Vec<String>,
}

/// Limits the media checks hold to.
#[derive(Debug, Clone, Copy)]
pub struct MediaLimits {
    /// Audio packet latency p99, ms.
    pub audio_p99_ms: f64,
    /// Longest time without a new video frame, s.
    pub max_video_gap: f64,
    /// Least share of the output in which the tone must be audible.
    pub min_audible: f64,
}

const SESSION: Duration = Duration::from_secs(60);

/// Runs sessions until `until` (at most 1,000).
pub fn run(
    lanlink: &Lanlink,
    addr: &str,
    scratch: &Path,
    limits: MediaLimits,
    t0: Instant,
    until: Instant,
) -> MediaReport {
    let mut r = MediaReport::default();
    let mut n = 0;
    while n < 1000 && r.failures.len() < 5 {
        let left = until.saturating_duration_since(Instant::now());
        if left < Duration::from_secs(5) {
            break;
        }
        let end = Instant::now() + left.min(SESSION);
        session(lanlink, addr, scratch, n, (t0, end), limits, &mut r);
        n += 1;
        r.sessions += 1;
    }
    let p99 = r.audio_latency.percentile_ms(99.0);
    if p99 > limits.audio_p99_ms {
        r.failures.push(format!(
            "audio latency p99 {p99:.0} ms is above {:.0} ms",
            limits.audio_p99_ms
        ));
    }
    r
}

fn session(
    lanlink: &Lanlink,
    addr: &str,
    scratch: &Path,
    n: u64,
    (t0, end): (Instant, Instant),
    limits: MediaLimits,
    r: &mut MediaReport,
) {
    let started = Instant::now();
    let tone = format!("soak-tone-{n}");
    let cam_name = format!("soak-cam-{n}");
    let wav = scratch.join(format!("listen-{n}.wav"));
    let frames_dir = scratch.join(format!("frames-{n}"));

    let spawn = |label: &str, cmd| Proc::spawn(label, cmd, false);
    let mut listen_cmd = lanlink.client("listen");
    listen_cmd
        .arg(addr)
        .arg(&tone)
        .arg("--output-file")
        .arg(&wav);
    let mut listen = match spawn("lanlink listen", listen_cmd) {
        Ok(p) => p,
        Err(e) => return r.failures.push(e),
    };
    // The probe connects first too, so both hear the announcement.
    let probe = {
        let (lanlink, addr, tone) = (lanlink.clone(), addr.to_owned(), tone.clone());
        std::thread::spawn(move || {
            audio_probe(&lanlink, &addr, &tone, end + Duration::from_secs(5))
        })
    };
    if listen
        .expect("listening", Duration::from_secs(10))
        .is_none()
    {
        r.failures.push(format!(
            "lanlink listen did not start: {}",
            listen.stderr_tail()
        ));
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut talk_cmd = lanlink.client("talk");
    talk_cmd.arg(addr).args(["--tone", "440", "--name", &tone]);
    let mut cam_cmd = lanlink.client("cam");
    cam_cmd.arg(addr).args([
        "--test-pattern",
        "--size",
        "320x240",
        "--fps",
        "15",
        "--quality",
        "60",
        "--name",
        &cam_name,
    ]);
    let (mut talk, mut cam) = match (
        spawn("lanlink talk", talk_cmd),
        spawn("lanlink cam", cam_cmd),
    ) {
        (Ok(t), Ok(c)) => (t, c),
        (Err(e), _) | (_, Err(e)) => return r.failures.push(e),
    };
    if cam.expect("publishing", Duration::from_secs(10)).is_none() {
        r.failures
            .push(format!("lanlink cam did not start: {}", cam.stderr_tail()));
    }
    let mut view_cmd = lanlink.client("view");
    view_cmd
        .arg(addr)
        .arg(&cam_name)
        .arg("--save")
        .arg(&frames_dir);
    let mut view = match spawn("lanlink view", view_cmd) {
        Ok(p) => p,
        Err(e) => return r.failures.push(e),
    };

    // Frames keep coming: count new files each 100 ms (and delete them).
    let mut frames = 0u64;
    let mut last_new: Option<Instant> = None;
    let mut longest_gap = Duration::ZERO;
    // When the longest gap ended, in seconds since the run started.
    let mut gap_at = 0.0;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        let fresh = lanlink_tools::wav::take_jpegs(&frames_dir);
        let now = Instant::now();
        if fresh > 0 {
            frames += fresh;
            if let Some(t) = last_new {
                if now - t > longest_gap {
                    longest_gap = now - t;
                    gap_at = (now - t0).as_secs_f64();
                }
            }
            last_new = Some(now);
        }
        for p in [&mut listen, &mut talk, &mut cam, &mut view] {
            if let Some(s) = p.exited() {
                r.failures.push(format!(
                    "{} exited early ({s}): {}",
                    p.label,
                    p.stderr_tail()
                ));
                return;
            }
        }
    }
    if let Some(t) = last_new {
        longest_gap = longest_gap.max(Instant::now() - t);
    }

    // End the streams; the listener and viewer must notice and finish.
    let talk_status = talk.terminate(Duration::from_secs(10));
    let cam_status = cam.terminate(Duration::from_secs(10));
    for (label, s) in [("lanlink talk", talk_status), ("lanlink cam", cam_status)] {
        if !s.is_some_and(|s| s.success()) {
            r.failures
                .push(format!("{label} did not exit cleanly on SIGTERM ({s:?})"));
        }
    }
    let listen_status = listen.wait(Duration::from_secs(10));
    let view_status = view.wait(Duration::from_secs(10));
    for (p, s) in [(&mut listen, listen_status), (&mut view, view_status)] {
        match s {
            Some(s) if s.success() => {}
            Some(s) => r
                .failures
                .push(format!("{} exited with {s}: {}", p.label, p.stderr_tail())),
            None => {
                p.kill();
                r.failures.push(format!(
                    "{} did not finish within 10 s of its stream ending",
                    p.label
                ));
            }
        }
    }
    r.sent += talk.sent_count();
    r.frames_sent += cam.sent_count();
    frames += lanlink_tools::wav::take_jpegs(&frames_dir);
    let _ = std::fs::remove_dir_all(&frames_dir);

    let secs = started.elapsed().as_secs_f64();
    r.seconds += secs;
    r.frames += frames;
    r.longest_gap = r.longest_gap.max(longest_gap.as_secs_f64());
    if longest_gap.as_secs_f64() > limits.max_video_gap {
        r.failures.push(format!(
            "session {n}: no new video frame for {:.1} s, until {gap_at:.0} s into the run",
            longest_gap.as_secs_f64()
        ));
    }
    if frames == 0 {
        r.failures
            .push(format!("session {n}: no video frame saved"));
    }
    for line in view.output() {
        if let Some((p50, p99)) = view_latency(&line) {
            r.view_p50 = r.view_p50.max(p50);
            r.view_p99 = r.view_p99.max(p99);
        }
    }
    let out = listen.output();
    let mut stats_line = false;
    for line in &out {
        if let Some(rest) = line.strip_prefix(&format!("{tone}: ")) {
            stats_line = true;
            let [received, lost, late, concealed] = listen_stats(rest);
            r.received += received;
            r.lost += lost;
            r.late += late;
            r.concealed += concealed;
        }
        if let Some(s) = line
            .strip_prefix("played ")
            .and_then(|s| s.strip_suffix(" s"))
        {
            r.played += s.parse::<f64>().unwrap_or(0.0);
        }
    }
    if !stats_line {
        r.failures.push(format!(
            "session {n}: lanlink listen printed no statistics for {tone}: {out:?}"
        ));
    }
    match lanlink_tools::wav::audible_share(&wav) {
        Ok(share) => {
            // Weighted by session length.
            let before = r.seconds - secs;
            r.audible = (r.audible * before + share * secs) / r.seconds.max(1e-9);
            if share < limits.min_audible {
                r.failures.push(format!(
                    "session {n}: the tone is audible in only {:.1}% of the output",
                    share * 100.0
                ));
            }
        }
        Err(e) => r.failures.push(format!("session {n}: {e}")),
    }
    let _ = std::fs::remove_file(&wav);
    match probe.join() {
        Ok(Ok(p)) => {
            r.audio_latency.merge(&p.latencies);
            r.probe_skipped += p.skipped;
        }
        Ok(Err(e)) => r.failures.push(format!("session {n}: audio probe: {e}")),
        Err(_) => r.failures.push("the audio probe panicked".into()),
    }
}

/// `received 12 packets, lost 0, late 1, concealed 2` → [12, 0, 1, 2].
fn listen_stats(text: &str) -> [u64; 4] {
    let mut out = [0; 4];
    for part in text.split(", ") {
        let part = part.strip_suffix(" packets").unwrap_or(part);
        let Some((key, value)) = part.split_once(' ') else {
            continue;
        };
        let slot = match key {
            "received" => 0,
            "lost" => 1,
            "late" => 2,
            "concealed" => 3,
            _ => continue,
        };
        out[slot] = value.parse().unwrap_or(0);
    }
    out
}

/// `received … latency p50 1.2 ms, p99 3.4 ms` → (1.2, 3.4).
fn view_latency(line: &str) -> Option<(f64, f64)> {
    let rest = line.split("latency p50 ").nth(1)?;
    let (p50, rest) = rest.split_once(" ms, p99 ")?;
    let p99 = rest.split(" ms").next()?;
    Some((p50.parse().ok()?, p99.parse().ok()?))
}

/// What the in-process audio subscriber saw.
struct Probe {
    /// Each packet's capture-to-arrival latency.
    latencies: Latency,
    /// Sequence numbers skipped after the first packet: over TCP only the
    /// server drops packets (the oldest, when a subscriber's media queue is
    /// full because its link stalled).
    skipped: u64,
}

/// Subscribes to the audio stream `name` and records each packet's latency
/// until `until` or the stream ends.
fn audio_probe(lanlink: &Lanlink, addr: &str, name: &str, until: Instant) -> Result<Probe, String> {
    let client = lanlink.connect(addr, &format!("{name}-probe"), Capabilities::AUDIO)?;
    let mut stream = None;
    let mut latencies = Latency::new();
    let (mut last_seq, mut skipped): (Option<u32>, u64) = (None, 0);
    while Instant::now() < until {
        let Some(f) = client
            .recv_timeout(Duration::from_millis(100))
            .map_err(|e| e.to_string())?
        else {
            continue;
        };
        match f.message {
            Message::AudioAnnounce(a) if a.name == name && stream.is_none() => {
                client
                    .send(&Frame::new(f.stream, AudioSubscribe))
                    .map_err(|e| e.to_string())?;
                stream = Some(f.stream);
            }
            Message::AudioPacket(p) if Some(f.stream) == stream => {
                if let Some(last) = last_seq {
                    skipped += u64::from(p.seq.wrapping_sub(last).saturating_sub(1));
                }
                last_seq = Some(p.seq);
                latencies.record_us(lanlink_video::now_us().saturating_sub(p.timestamp_us));
            }
            Message::AudioEnd(_) if Some(f.stream) == stream => break,
            _ => {}
        }
    }
    client.close("done");
    if stream.is_none() {
        return Err(format!("{name} was never announced"));
    }
    Ok(Probe { latencies, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_viewer_summary() {
        let line = "received 10 frames in 1.0 s (10.0 fps), capture-to-receive latency p50 1.5 ms, p99 7.25 ms; the stream ended";
        assert_eq!(view_latency(line), Some((1.5, 7.25)));
    }

    #[test]
    fn parses_the_listener_summary() {
        let line = "received 2950 packets, lost 3, late 1, concealed 7";
        assert_eq!(listen_stats(line), [2950, 3, 1, 7]);
    }
}
