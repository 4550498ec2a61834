//! End to end through real sound devices, in real time: `lanlink talk
//! --input-device` captures through cpal → ALSA → the PulseAudio plugin,
//! the real `lanlink-server` relays, `lanlink listen --output-device` plays
//! through cpal → ALSA → PulseAudio, and the test records what reached the
//! "speaker" and judges the signal itself (frequency, level, duration,
//! gaps).
//!
//! Each test runs a PulseAudio daemon of its own (a scratch runtime
//! directory, anonymous auth on its own unix socket, no shared memory)
//! with two null sinks, which run on the system clock like a sound card:
//!
//! ```text
//! pacat (660 Hz tone) -> sink "mic" -> mic.monitor -> ALSA pcm lanlink_mic -> lanlink talk
//!   -> lanlink-server -> lanlink listen -> ALSA pcm lanlink_speaker -> sink "speaker"
//!   -> speaker.monitor -> parec -> the test
//! ```
//!
//! The `type pulse` PCMs are defined in a configuration file that only the
//! child processes see, through `ALSA_CONFIG_PATH`.
//!
//! Why the warm-up before any `lanlink` process opens a device: a null
//! sink that nobody asked for low latency renders in blocks of up to two
//! seconds, and a stream joining it (a record stream on its monitor above
//! all) waits for the end of the current block; the pulse plugin's
//! two-period buffer (cpal asks for two periods of ~7 ms) cannot take the
//! burst that follows. Capture ran at about half of real time and playback
//! stalled for seconds, while either ran at 100 % once the sink ticked in
//! short blocks (`cargo run -p lanlink-audio --example device_pace` shows
//! both). So the recorders and the tone player connect first, asking for
//! 10 ms, the sinks are suspended and resumed (which restarts their clocks
//! with the short blocks those streams ask for, instead of after the
//! current long block), and the test waits until real samples flow before
//! any `lanlink` process starts.
//!
//! A test fails, with a message saying why, if PulseAudio is missing or
//! does not start: `scripts/setup` installs it (and CI runs that).

#![cfg(target_os = "linux")]

mod audio_support;
mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use audio_support::{
    analyse, await_line, dominant_hz, kill, lines_of, received, rms, wait_exit, RATE, WINDOW,
};
use common::{Scratch, Server, PATIENCE};
use crossbeam_channel::Receiver;

/// The tone played into the "microphone".
const TONE_HZ: f64 = 660.0;
/// How long `lanlink talk` talks.
const TALK_SECS: f64 = 3.0;
const MIC_PCM: &str = "lanlink_mic";
const SPEAKER_PCM: &str = "lanlink_speaker";

/// A PulseAudio daemon for one test, killed on drop.
struct Pulse {
    child: Child,
    dir: PathBuf,
    /// `unix:PATH` of its socket.
    server: String,
    /// The ALSA configuration defining [`MIC_PCM`] and [`SPEAKER_PCM`].
    alsa_conf: PathBuf,
}

impl Pulse {
    /// Starts the daemon with sinks `mic` and `speaker` (48 kHz mono) and
    /// waits until it says it is up.
    fn start(dir: &Path) -> Pulse {
        let runtime = dir.join("runtime");
        std::fs::create_dir_all(&runtime).unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        let socket = dir.join("native");
        let mut child = Command::new("pulseaudio")
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--use-pid-file=no",
                "--disable-shm=yes",
                "--realtime=no",
                "--high-priority=no",
                "--log-target=stderr",
                "--log-level=info",
                "-L",
            ])
            .arg(format!(
                "module-native-protocol-unix auth-anonymous=1 socket={}",
                socket.display()
            ))
            .args([
                "-L",
                "module-null-sink sink_name=mic rate=48000 channels=1",
                "-L",
                "module-null-sink sink_name=speaker rate=48000 channels=1",
            ])
            .env("HOME", dir)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env_remove("PULSE_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run pulseaudio ({e}): this test needs the Debian packages \
                     pulseaudio, pulseaudio-utils and libasound2-plugins (scripts/setup)"
                )
            });
        let log = lines_of(child.stderr.take().unwrap());
        if let Err(seen) = await_line(&log, "Daemon startup complete", PATIENCE) {
            kill(&mut child);
            panic!(
                "pulseaudio did not start within {PATIENCE:?}:\n{}",
                seen.join("\n")
            );
        }
        // Keep draining its log so the daemon never blocks on a full pipe.
        std::thread::spawn(move || log.iter().count());
        let server = format!("unix:{}", socket.display());
        let alsa_conf = dir.join("asound.conf");
        std::fs::write(
            &alsa_conf,
            format!(
                r#"
pcm.{MIC_PCM} {{
    type pulse
    server "{server}"
    device "mic.monitor"
    hint {{ show on description "lanlink test microphone (PulseAudio)" }}
}}
pcm.{SPEAKER_PCM} {{
    type pulse
    server "{server}"
    device "speaker"
    hint {{ show on description "lanlink test speaker (PulseAudio)" }}
}}
"#
            ),
        )
        .unwrap();
        Pulse {
            child,
            dir: dir.to_path_buf(),
            server,
            alsa_conf,
        }
    }

    /// Restarts the sinks' clocks (a suspend and a resume), so they render
    /// in blocks as short as the streams now connected ask for, at once
    /// instead of after the current block of up to two seconds.
    fn restart_sinks(&self) {
        for sink in ["mic", "speaker"] {
            for suspend in ["1", "0"] {
                let status = self
                    .command("pactl")
                    .args(["suspend-sink", sink, suspend])
                    .status()
                    .expect("run pactl (Debian package pulseaudio-utils)");
                assert!(status.success(), "pactl suspend-sink {sink} {suspend}");
            }
        }
    }

    /// `program` as a client of this daemon, with the test ALSA PCMs.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("PULSE_SERVER", &self.server)
            .env("HOME", &self.dir)
            .env("XDG_RUNTIME_DIR", self.dir.join("runtime"))
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .env("ALSA_CONFIG_PATH", &self.alsa_conf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// `parec` on a source, its samples (48 kHz mono `f32`) collected as they
/// arrive. Killed on drop.
struct Recorder {
    child: Child,
    chunks: Receiver<Vec<f32>>,
    samples: Vec<f32>,
}

impl Recorder {
    fn start(pulse: &Pulse, source: &str) -> Recorder {
        let mut child = pulse
            .command("parec")
            .args(["-v", "-d", source, "--format=float32le", "--rate=48000"])
            .args(["--channels=1", "--latency-msec=10"])
            .spawn()
            .expect("run parec (Debian package pulseaudio-utils)");
        connected(&mut child, "parec", source);
        let mut out = child.stdout.take().unwrap();
        let (tx, chunks) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; WINDOW * 4];
            while out.read_exact(&mut buf).is_ok() {
                let chunk = buf
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                if tx.send(chunk).is_err() {
                    break;
                }
            }
        });
        Recorder {
            child,
            chunks,
            samples: Vec::new(),
        }
    }

    /// Everything recorded up to now.
    fn take_arrived(&mut self) -> &[f32] {
        self.samples.extend(self.chunks.try_iter().flatten());
        &self.samples
    }

    /// Takes what arrives until `done(samples so far)`; panics, naming
    /// `what`, if that takes longer than [`PATIENCE`].
    fn until(&mut self, what: &str, done: impl Fn(&[f32]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        self.take_arrived();
        while !done(&self.samples) {
            match self.chunks.recv_deadline(deadline) {
                Ok(chunk) => self.samples.extend(chunk),
                Err(_) => panic!(
                    "waiting for {what}: recorded {} samples in {PATIENCE:?}",
                    self.samples.len()
                ),
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// `pacat` playing a sine of amplitude `level` into a sink for as long as
/// it lives (at most a minute), fed by a thread. Killed on drop.
struct TonePlayer {
    child: Child,
}

impl TonePlayer {
    fn start(pulse: &Pulse, sink: &str, hz: f64, level: f64) -> TonePlayer {
        let mut child = pulse
            .command("pacat")
            .args(["--playback", "-v", "-d", sink, "--format=float32le"])
            .args(["--rate=48000", "--channels=1", "--latency-msec=10"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("run pacat (Debian package pulseaudio-utils)");
        connected(&mut child, "pacat", sink);
        let mut input = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            // pacat takes samples as fast as the sink plays them, so the
            // pipe paces this loop; it ends when pacat is killed.
            let step = std::f64::consts::TAU * hz / RATE;
            let mut n = 0u64;
            let mut buf = Vec::with_capacity(WINDOW * 4);
            for _ in 0..60 * 50 {
                buf.clear();
                for _ in 0..WINDOW {
                    let v = (level * (step * n as f64).sin()) as f32;
                    buf.extend_from_slice(&v.to_le_bytes());
                    n += 1;
                }
                if input.write_all(&buf).is_err() {
                    break;
                }
            }
        });
        TonePlayer { child }
    }
}

impl Drop for TonePlayer {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Waits until a verbose `pacat`/`parec` says its stream is connected,
/// then keeps draining its chatter.
fn connected(child: &mut Child, program: &str, device: &str) {
    let log = lines_of(child.stderr.take().unwrap());
    if let Err(seen) = await_line(&log, "Connected to device", PATIENCE) {
        kill(child);
        panic!("{program} on {device} did not connect: {seen:?}");
    }
    std::thread::spawn(move || log.iter().count());
}

/// Whether the last 20 ms of `x` are loud.
fn ends_loud(x: &[f32]) -> bool {
    x.len() >= WINDOW && rms(&x[x.len() - WINDOW..]) > 0.2
}

#[test]
fn a_tone_captured_from_a_device_is_heard_on_another_device() {
    let t = Scratch::new("audio-devices");
    let pulse = Pulse::start(&t.0);

    // Warm up both sinks (see the module docs): low-latency streams on
    // both, then a restart of the sinks' clocks. Then check that the
    // microphone carries the tone and the recorder hears the speaker
    // before any lanlink process opens a device.
    let mut speaker = Recorder::start(&pulse, "speaker.monitor");
    let mut mic = Recorder::start(&pulse, "mic.monitor");
    let _tone = TonePlayer::start(&pulse, "mic", TONE_HZ, 0.5);
    pulse.restart_sinks();
    mic.until("the tone on the microphone", ends_loud);
    speaker.until("the speaker sink to run", |s| s.len() >= 5 * WINDOW);

    let server = Server::start(&[]);
    let lanlink = env!("CARGO_BIN_EXE_lanlink");
    let mut listen = pulse
        .command(lanlink)
        .args(["listen", &server.addr, "--output-device", SPEAKER_PCM])
        .args(["--seconds", "15"])
        .spawn()
        .unwrap();
    let listen_out = lines_of(listen.stdout.take().unwrap());
    let listen_err = lines_of(listen.stderr.take().unwrap());
    if let Err(seen) = await_line(&listen_out, "listening", PATIENCE) {
        kill(&mut listen);
        panic!(
            "lanlink listen did not start: {seen:?} {:?}",
            listen_err.try_iter().collect::<Vec<_>>()
        );
    }
    let talk = pulse
        .command(lanlink)
        .args(["talk", &server.addr, "--input-device", MIC_PCM])
        .args(["--name", "mic", "--seconds", &TALK_SECS.to_string()])
        .output()
        .unwrap();
    assert!(
        talk.status.success(),
        "lanlink talk: {}{}",
        String::from_utf8_lossy(&talk.stdout),
        String::from_utf8_lossy(&talk.stderr)
    );

    // The listener ends once the stream ended and played out.
    let status = wait_exit(&mut listen, PATIENCE).unwrap_or_else(|| {
        kill(&mut listen);
        panic!("lanlink listen did not end after the talker");
    });
    let report: Vec<String> = listen_out.try_iter().collect();
    let report = report.join("\n");
    assert!(
        status.success(),
        "lanlink listen: {report}\n{:?}",
        listen_err.try_iter().collect::<Vec<_>>()
    );
    // Everything it queued has gone to PulseAudio; record 300 ms more so
    // the sink's own latency is covered.
    let end = speaker.take_arrived().len() + (0.3 * RATE) as usize;
    speaker.until("the end of playback", |s| s.len() >= end);
    assert!(server.terminate().success());

    // 150 packets were sent; the first may go out before the listener's
    // subscription reaches the server.
    assert!(received(&report, "mic") >= 145, "{report}");
    let a = analyse(&speaker.samples);
    assert!(
        (TALK_SECS - 0.3..=TALK_SECS + 0.3).contains(&a.audible_secs),
        "heard {:.2} s of {TALK_SECS} s of tone in {:.2} s recorded (peak {:.3})\n{report}",
        a.audible_secs,
        speaker.samples.len() as f64 / RATE,
        speaker.samples.iter().fold(0.0f32, |m, v| m.max(v.abs()))
    );
    assert!(
        a.longest_gap_ms <= 60.0,
        "a {} ms gap in the middle\n{report}",
        a.longest_gap_ms
    );
    assert!(
        (0.25..=0.45).contains(&a.level),
        "level {:.3} for a 0.5 sine (0.354 RMS)",
        a.level
    );
    assert_eq!(dominant_hz(&a.audible), TONE_HZ);
}
