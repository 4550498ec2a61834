//! The real cpal → ALSA path, without a sound card.
//!
//! Each test writes an ALSA configuration into a temporary directory that
//! defines two PCMs of `type file` over `type null`, then re-runs this test
//! binary as a child process with `ALSA_CONFIG_PATH` pointing at it (so the
//! process-wide ALSA configuration is never changed under other tests). In
//! the child, [`CaptureStream`] and [`PlaybackStream`] open those PCMs by
//! name through cpal exactly as they would a sound card:
//!
//! * capture reads a raw file the test wrote (44.1 kHz, 16-bit, stereo, a
//!   440 Hz tone at different levels left and right) and must yield 48 kHz
//!   mono with the right frequency and the averaged level;
//! * playback writes a 48 kHz mono tone and the PCM's output file must hold
//!   it at 44.1 kHz, 16-bit, stereo (silence from underruns aside);
//! * a name that does not exist must fail with an error that lists these
//!   PCMs.
//!
//! The `null` PCM has no clock: callbacks run as fast as the CPU allows. So
//! the tests stop after a known number of samples instead of sleeping, the
//! capture ring is sized to hold everything read, and playback output is
//! judged with the underrun silence removed.
//!
//! A test is skipped, with a message saying so, only when ALSA does not work
//! on the machine at all (checked with its own configuration, before the
//! child starts); any failure under the test configuration fails it.

#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{channel, rms, tone_amplitude, zero_crossing_hz};
use lanlink_audio::device::{host_name, list_devices, SampleFormat};
use lanlink_audio::{
    AudioError, AudioSink, AudioSource, CaptureStream, Format, PlaybackStream, StreamOptions,
};

const SCENARIO: &str = "LANLINK_ALSA_SCENARIO";
const DIR: &str = "LANLINK_ALSA_DIR";
const CAPTURE_PCM: &str = "lanlink_capture";
const PLAYBACK_PCM: &str = "lanlink_playback";
const RATE: u32 = 44_100;
const LEFT: f32 = 0.6;
const RIGHT: f32 = 0.2;

fn write_config(dir: &Path) -> PathBuf {
    let conf = dir.join("asound.conf");
    let text = format!(
        r#"
pcm.{CAPTURE_PCM} {{
    type file
    slave.pcm {{ type null }}
    file "{dir}/captured-copy.raw"
    infile "{dir}/in.raw"
    format "raw"
    hint {{ show on description "lanlink test capture" }}
}}
pcm.{PLAYBACK_PCM} {{
    type file
    slave.pcm {{ type null }}
    file "{dir}/played.raw"
    format "raw"
    hint {{ show on description "lanlink test playback" }}
}}
"#,
        dir = dir.display()
    );
    std::fs::write(&conf, text).unwrap();
    conf
}

/// 2 s of 440 Hz, S16_LE stereo at 44.1 kHz, `LEFT` and `RIGHT` levels.
fn write_infile(dir: &Path) {
    let mut bytes = Vec::new();
    for n in 0..2 * RATE {
        let s = (std::f64::consts::TAU * 440.0 * f64::from(n) / f64::from(RATE)).sin() as f32;
        for level in [LEFT, RIGHT] {
            let v = (s * level * f32::from(i16::MAX)).round() as i16;
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(dir.join("in.raw"), bytes).unwrap();
}

/// Runs `scenario` in a child process under the test ALSA configuration.
/// Returns the child's output, or `None` when ALSA is unavailable.
fn run_child(scenario: &str) -> Option<(tempfile::TempDir, String)> {
    // Skip only if ALSA itself does not work here (checked with the
    // machine's own configuration). Under the test configuration the child
    // has no way out: anything that goes wrong there is a failure.
    if let Err(e) = host_name() {
        println!("SKIPPED {scenario}: ALSA is unavailable on this machine: {e}");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = write_config(dir.path());
    write_infile(dir.path());
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ALSA_CONFIG_PATH", &conf)
        .env(SCENARIO, scenario)
        .env(DIR, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ALSA-OK"),
        "child {scenario} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    print!("{stdout}");
    Some((dir, stdout))
}

#[test]
fn capture_reads_the_file_pcm_through_cpal() {
    run_child("capture");
}

#[test]
fn playback_writes_the_file_pcm_through_cpal() {
    let Some((dir, _)) = run_child("playback") else {
        return;
    };
    let raw = std::fs::read(dir.path().join("played.raw")).unwrap();
    let samples: Vec<f32> = raw
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / f32::from(i16::MAX))
        .collect();
    // Drop the silence the callback played while the ring was empty: runs of
    // at least 4 all-zero frames (a 440 Hz tone never has two in a row).
    let frames: Vec<&[f32]> = samples.chunks_exact(2).collect();
    let mut audio = Vec::new();
    let mut i = 0;
    while i < frames.len() {
        let run = frames[i..]
            .iter()
            .take_while(|f| f.iter().all(|s| *s == 0.0))
            .count();
        if run >= 4 {
            i += run;
        } else {
            audio.extend_from_slice(frames[i]);
            i += 1;
        }
    }
    let len = audio.len() / 2;
    println!("played.raw: {} frames, {} of them audio", frames.len(), len);
    assert!(
        (RATE as usize - 50..=RATE as usize + 50).contains(&len),
        "1 s at 44.1 kHz, got {len} frames"
    );
    for (which, name) in [(0, "left"), (1, "right")] {
        let ch = channel(&audio, 2, which);
        let steady = &ch[2000..len - 2000];
        let hz = zero_crossing_hz(steady, RATE);
        let amp = tone_amplitude(steady, RATE, 440.0);
        println!("{name}: {hz:.2} Hz, amplitude {amp:.4}");
        assert!((hz - 440.0).abs() < 1.0, "{name}: {hz} Hz");
        assert!((amp - 0.5).abs() < 0.01, "{name}: amplitude {amp}");
        // Continuity: the 440 Hz bin holds all the power, so no gaps or jumps.
        assert!(
            (rms(steady) - amp / 2f64.sqrt()).abs() < 0.01,
            "{name}: rms {}",
            rms(steady)
        );
    }
}

#[test]
fn a_missing_device_error_lists_the_devices() {
    run_child("missing");
}

/// The child side: runs only when a test above started this binary with
/// the scenario variables set.
#[test]
#[ignore = "entry point for the child processes of the other tests in this file"]
fn child() {
    let Ok(scenario) = std::env::var(SCENARIO) else {
        println!("nothing to do: run without --ignored");
        return;
    };
    let devices = list_devices().expect("list devices under the test configuration");
    for d in &devices {
        println!(
            "device {:?} ({:?}) default in/out {:?}",
            d.id,
            d.name,
            (d.default_input_config, d.default_output_config)
        );
    }
    let capture = devices
        .iter()
        .find(|d| d.id == CAPTURE_PCM)
        .expect("test capture PCM listed");
    assert_eq!(capture.name, "lanlink test capture");
    assert!(!capture.input_configs.is_empty());
    let dir = PathBuf::from(std::env::var(DIR).unwrap());
    match scenario.as_str() {
        "capture" => child_capture(),
        "playback" => child_playback(&dir),
        "missing" => child_missing(),
        other => panic!("unknown scenario {other}"),
    }
    println!("ALSA-OK {scenario}");
}

/// What the tests open the PCMs at: not 48 kHz, not f32, not mono, so every
/// conversion runs.
fn device_options() -> StreamOptions {
    StreamOptions {
        format: Format::MONO_48K,
        sample_rate: Some(RATE),
        channels: Some(2),
        sample_format: Some(SampleFormat::I16),
        // No clock: the ring must hold all we read before the flood of
        // callbacks overruns it.
        latency: Duration::from_secs(2),
        stall_timeout: Duration::from_secs(5),
    }
}

fn child_capture() {
    let mut stream = CaptureStream::open(Some(CAPTURE_PCM), device_options()).unwrap();
    assert_eq!(stream.device(), CAPTURE_PCM);
    let config = stream.device_config();
    assert_eq!(
        (config.sample_rate, config.channels, config.sample_format),
        (RATE, 2, SampleFormat::I16)
    );
    // 0.5 s in 20 ms frames, well inside the 2 s ring and 2 s file.
    let mut all = Vec::new();
    let mut frame = vec![0.0; 960];
    for _ in 0..25 {
        assert_eq!(stream.read(&mut frame).unwrap(), 960);
        all.extend_from_slice(&frame);
    }
    let stats = stream.stats();
    println!("capture stats: {stats:?}");
    assert!(stats.callbacks > 0 && stats.frames >= 22_050);
    let steady = &all[1000..];
    let hz = zero_crossing_hz(steady, 48_000);
    let amp = tone_amplitude(steady, 48_000, 440.0);
    println!(
        "captured: {hz:.2} Hz, amplitude {amp:.4} (expected 440 Hz, {})",
        (LEFT + RIGHT) / 2.0
    );
    assert!((hz - 440.0).abs() < 1.0, "{hz} Hz");
    assert!(
        (amp - f64::from(LEFT + RIGHT) / 2.0).abs() < 0.01,
        "amplitude {amp}"
    );
    assert!(
        (rms(steady) - amp / 2f64.sqrt()).abs() < 0.01,
        "rms {}",
        rms(steady)
    );
}

fn child_playback(dir: &Path) {
    let mut stream = PlaybackStream::open(Some(PLAYBACK_PCM), device_options()).unwrap();
    let config = stream.device_config();
    assert_eq!(
        (config.sample_rate, config.channels, config.sample_format),
        (RATE, 2, SampleFormat::I16)
    );
    let mut tone = lanlink_audio::ToneSource::new(Format::MONO_48K, 440.0, 0.5).unwrap();
    let mut frame = vec![0.0; 960];
    for _ in 0..50 {
        tone.read(&mut frame).unwrap();
        stream.write(&frame).unwrap();
    }
    stream.finish().unwrap();
    let stats = stream.stats();
    println!("playback stats: {stats:?}");
    assert!(stats.frames >= u64::from(RATE) - 50, "{stats:?}");
    drop(stream);
    assert!(dir.join("played.raw").exists());

    // The device's own default configuration opens too, by its name rather
    // than its id (on the other PCM, so played.raw stays as it is).
    let defaults = StreamOptions::default();
    let mut stream = PlaybackStream::open(Some("lanlink test capture"), defaults).unwrap();
    stream.write(&frame).unwrap();
    println!("default playback config: {:?}", stream.device_config());
}

fn child_missing() {
    for err in [
        CaptureStream::open(Some("no-such-device"), StreamOptions::default()).unwrap_err(),
        PlaybackStream::open(Some("no-such-device"), StreamOptions::default()).unwrap_err(),
    ] {
        println!("error: {err}");
        let AudioError::DeviceNotFound {
            name, available, ..
        } = &err
        else {
            panic!("expected DeviceNotFound, got {err:?}");
        };
        assert_eq!(name, "no-such-device");
        assert!(
            available.iter().any(|d| d.starts_with(CAPTURE_PCM)),
            "{available:?}"
        );
        assert!(
            available.iter().any(|d| d.starts_with(PLAYBACK_PCM)),
            "{available:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("no-such-device") && text.contains(CAPTURE_PCM),
            "{text}"
        );
    }
}
