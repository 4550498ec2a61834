//! End to end: audio from `lanlink talk` through the real server to
//! `lanlink listen`, checked by the received signal itself (dominant
//! frequency, level, duration, gaps), through WAV files; device errors
//! through the real cpal → ALSA path on PCMs defined in a configuration
//! file. (Capture and playback through cpal on such PCMs are tested in
//! `media-audio/tests/alsa.rs`.)

mod common;

use std::path::Path;
use std::process::Child;

use common::{lanlink, lanlink_spawn, Scratch, Server};
use lanlink_audio::{AudioSink, AudioSource, Format, ToneSource, WavSink, WavSource};

const RATE: f64 = 48_000.0;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn write_tone(path: &Path, hz: f32, secs: f64) {
    let mut tone = ToneSource::new(Format::MONO_48K, hz, 0.5)
        .unwrap()
        .with_duration(std::time::Duration::from_secs_f64(secs));
    let mut sink = WavSink::create(path, Format::MONO_48K).unwrap();
    let mut buf = vec![0.0; 960];
    loop {
        let n = tone.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        sink.write(&buf[..n]).unwrap();
    }
    sink.finish().unwrap();
}

fn read_wav(path: &Path) -> Vec<f32> {
    let mut src = WavSource::open(path, Format::MONO_48K).unwrap();
    let (mut all, mut buf) = (Vec::new(), vec![0.0; 4800]);
    loop {
        let n = src.read(&mut buf).unwrap();
        if n == 0 {
            return all;
        }
        all.extend_from_slice(&buf[..n]);
    }
}

/// Magnitude of the DFT of `x` at `hz`.
fn magnitude(x: &[f32], hz: f64) -> f64 {
    let w = std::f64::consts::TAU * hz / RATE;
    let (mut re, mut im) = (0.0, 0.0);
    for (n, v) in x.iter().enumerate() {
        let a = w * n as f64;
        re += f64::from(*v) * a.cos();
        im -= f64::from(*v) * a.sin();
    }
    (re * re + im * im).sqrt() / x.len() as f64
}

/// What the received signal looks like, judged on 20 ms windows.
struct Analysis {
    /// Seconds of signal above the noise floor.
    audible_secs: f64,
    /// The longest silence between the first and last audible window, ms.
    longest_gap_ms: f64,
    /// RMS of the audible windows.
    level: f64,
    /// The audible part, for spectra.
    audible: Vec<f32>,
}

fn analyse(x: &[f32]) -> Analysis {
    let windows: Vec<&[f32]> = x.chunks(960).collect();
    let rms = |w: &[f32]| {
        (w.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>() / w.len().max(1) as f64)
            .sqrt()
    };
    let loud: Vec<bool> = windows.iter().map(|w| rms(w) > 0.05).collect();
    let first = loud.iter().position(|l| *l).unwrap_or(0);
    let last = loud.iter().rposition(|l| *l).unwrap_or(0);
    let (mut gap, mut longest) = (0, 0);
    for l in &loud[first..=last] {
        gap = if *l { 0 } else { gap + 1 };
        longest = longest.max(gap);
    }
    let audible: Vec<f32> = windows
        .iter()
        .zip(&loud)
        .filter(|(_, l)| **l)
        .flat_map(|(w, _)| w.iter().copied())
        .collect();
    Analysis {
        audible_secs: loud.iter().filter(|l| **l).count() as f64 * 0.02,
        longest_gap_ms: longest as f64 * 20.0,
        level: rms(&audible),
        audible,
    }
}

/// The strongest frequency between 100 Hz and 4 kHz, on a 10 Hz grid,
/// over one second of the middle of the signal.
fn dominant_hz(x: &[f32]) -> f64 {
    let mid = x.len() / 2;
    let slice = &x[mid.saturating_sub(24_000)..(mid + 24_000).min(x.len())];
    (10..=400)
        .map(|k| f64::from(k) * 10.0)
        .max_by(|a, b| magnitude(slice, *a).total_cmp(&magnitude(slice, *b)))
        .unwrap()
}

fn listener(server: &Server, out: &Path, extra: &[&str]) -> Child {
    let mut args = vec![
        "listen",
        &server.addr,
        "--output-file",
        s(out),
        "--seconds",
        "20",
    ];
    args.extend_from_slice(extra);
    lanlink_spawn(&args)
}

fn wait_ok(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn a_wav_file_is_heard_as_the_same_tone() {
    let t = Scratch::new("audio-wav");
    let (input, output) = (t.0.join("in.wav"), t.0.join("out.wav"));
    write_tone(&input, 1000.0, 3.0);
    let server = Server::start(&[]);
    let listen = listener(&server, &output, &[]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let talk = lanlink(&[
        "talk",
        &server.addr,
        "--input-file",
        s(&input),
        "--name",
        "wav",
    ]);
    assert!(
        talk.status.success(),
        "{}",
        String::from_utf8_lossy(&talk.stderr)
    );
    let report = wait_ok(listen);
    // 150 packets were sent; the first may go out before the subscription
    // reaches the server.
    let received: u32 = report
        .split("wav: received ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(received >= 145, "{report}");

    let a = analyse(&read_wav(&output));
    assert!(
        (2.7..=3.3).contains(&a.audible_secs),
        "heard {:.2} s of a 3 s tone",
        a.audible_secs
    );
    assert!(
        a.longest_gap_ms <= 60.0,
        "a {} ms gap in the middle",
        a.longest_gap_ms
    );
    assert!(
        (0.28..=0.42).contains(&a.level),
        "level {:.3} for a 0.5 sine (0.354 RMS)",
        a.level
    );
    assert_eq!(dominant_hz(&a.audible), 1000.0);
    assert!(server.terminate().success());
}

#[test]
fn two_talkers_are_mixed_at_the_listener() {
    let t = Scratch::new("audio-mix");
    let output = t.0.join("out.wav");
    let server = Server::start(&[]);
    let listen = listener(&server, &output, &[]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let low = lanlink_spawn(&[
        "talk",
        &server.addr,
        "--tone",
        "440",
        "--name",
        "low",
        "--seconds",
        "2",
    ]);
    let high = lanlink_spawn(&[
        "talk",
        &server.addr,
        "--tone",
        "1500",
        "--name",
        "high",
        "--seconds",
        "2",
    ]);
    wait_ok(low);
    wait_ok(high);
    let report = wait_ok(listen);
    assert!(
        report.contains("+ low") && report.contains("+ high"),
        "{report}"
    );
    let a = analyse(&read_wav(&output));
    let mid = &a.audible[a.audible.len() / 4..a.audible.len() * 3 / 4];
    let (m440, m1500, m1000) = (
        magnitude(mid, 440.0),
        magnitude(mid, 1500.0),
        magnitude(mid, 1000.0),
    );
    assert!(
        m440 > 0.1 && m1500 > 0.1,
        "both tones present: 440 Hz {m440:.3}, 1500 Hz {m1500:.3}"
    );
    assert!(m1000 < m440 / 10.0, "nothing at 1 kHz ({m1000:.3})");
    assert!(server.terminate().success());
}

/// A device name that does not exist gets an error that names the devices
/// that do (here a PCM defined in an ALSA configuration file, opened through
/// cpal), and nothing is sent.
#[test]
fn a_missing_device_is_a_clear_error_listing_the_real_ones() {
    if lanlink_audio::device::host_name().is_err() {
        assert!(std::env::var_os("CI").is_none(), "ALSA must work in CI");
        eprintln!("skipping: ALSA is unavailable on this machine");
        return;
    }
    let t = Scratch::new("audio-missing");
    let conf = t.0.join("asound.conf");
    std::fs::write(
        &conf,
        "pcm.lanlink_mic {\n type file\n slave.pcm { type null }\n file \"/dev/null\"\n infile \"/dev/zero\"\n format \"raw\"\n hint { show on description \"lanlink test microphone\" }\n}\n",
    )
    .unwrap();
    let server = Server::start(&[]);
    for (args, asked) in [
        (
            ["talk", &server.addr, "--input-device", "no_such_mic"],
            "no_such_mic",
        ),
        (
            ["listen", &server.addr, "--output-device", "no_such_speaker"],
            "no_such_speaker",
        ),
    ] {
        let out = common::lanlink_command()
            .args(args)
            .env("ALSA_CONFIG_PATH", &conf)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(asked) && err.contains("lanlink_mic"), "{err}");
    }
    assert!(server.terminate().success());
}
