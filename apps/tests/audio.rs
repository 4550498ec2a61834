//! End to end: audio from `lanlink talk` through the real server to
//! `lanlink listen`, checked by the received signal itself (dominant
//! frequency, level, duration, gaps), through WAV files; device errors
//! through the real cpal → ALSA path on PCMs defined in a configuration
//! file. (Capture and playback through cpal on such PCMs are tested in
//! `media-audio/tests/alsa.rs`.)

mod audio_support;
mod common;

use std::path::Path;
use std::process::Child;

use audio_support::{analyse, dominant_hz, magnitude, read_wav, received, write_tone};
use common::{lanlink, lanlink_spawn, Scratch, Server};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
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
    assert!(received(&report, "wav") >= 145, "{report}");

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
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_lanlink"))
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
