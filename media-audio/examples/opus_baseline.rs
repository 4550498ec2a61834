//! Times our Opus encode + decode of 60 s of 48 kHz mono speech-like audio
//! against libopus's own command-line tools on the same WAV, in one run:
//! `opusenc --bitrate 32 --framesize 20` and `opusdec` (CPU from bash's
//! `time`), then our `OpusEncoder`/`OpusDecoder` (CPU time of the thread)
//! with the same settings and with the voice preset. Prints each figure, the ratio and the share of
//! one core; best of three runs each.
//!
//! ```text
//! apt-get install -y opus-tools
//! cargo run --release -p lanlink-audio --example opus_baseline [input.wav]
//! ```
//!
//! With a path, that WAV (any rate/channels, converted to 48 kHz mono) is
//! used instead of the synthetic signal, for example speech from espeak-ng.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use lanlink_audio::codec::MAX_PACKET_BYTES;
use lanlink_audio::{
    AudioError, AudioSink, AudioSource, Format, OpusApplication, OpusConfig, OpusDecoder,
    OpusEncoder, SpeechLikeSource, WavSink, WavSource,
};

const SECS: u64 = 60;

fn main() -> Result<(), AudioError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("in.wav");
    let pcm = match std::env::args().nth(1) {
        Some(path) => read_all(&mut WavSource::open(path, Format::MONO_48K)?)?,
        None => {
            let mut src = SpeechLikeSource::new(Format::MONO_48K, 0.7)?;
            let mut pcm = vec![0.0; 48_000 * SECS as usize];
            src.read(&mut pcm)?;
            pcm
        }
    };
    let mut sink = WavSink::create(&wav, Format::MONO_48K)?;
    sink.write(&pcm)?;
    sink.finish()?;
    let audio_secs = pcm.len() as f64 / 48_000.0;
    println!("input: {audio_secs:.1} s of 48 kHz mono");

    let opusenc = format!(
        "opusenc --quiet --bitrate 32 --framesize 20 {} {}/out.opus",
        wav.display(),
        dir.path().display()
    );
    let opusdec = format!(
        "opusdec --quiet {0}/out.opus {0}/dec.wav",
        dir.path().display()
    );
    let tools = match (cpu_of(&opusenc), cpu_of(&opusdec)) {
        (Some(e), Some(d)) => {
            let size = std::fs::metadata(dir.path().join("out.opus"))
                .map(|m| m.len())
                .unwrap_or(0);
            println!("opus-tools                  encode {:>7.1} ms  decode {:>7.1} ms  ({} kbit/s in Ogg)", ms(e), ms(d), size * 8 / 1000 / audio_secs as u64);
            Some(e + d)
        }
        _ => {
            println!("opus-tools not found: apt-get install -y opus-tools");
            None
        }
    };

    let same = OpusConfig {
        bitrate: 32_000,
        application: OpusApplication::Audio,
        fec: false,
        expected_loss_percent: 0,
        ..OpusConfig::voice(1)
    };
    for (name, config) in [
        ("lanlink (opusenc settings)", same),
        ("lanlink (voice preset)", OpusConfig::voice(1)),
    ] {
        let (enc, dec, bytes) = ours(config, &pcm)?;
        let total = enc + dec;
        let core = total.as_secs_f64() / audio_secs * 100.0;
        print!(
            "{name:<27} encode {:>7.1} ms  decode {:>7.1} ms  ({:.1} kbit/s)  {:.2} % of a core",
            ms(enc),
            ms(dec),
            bytes as f64 * 8.0 / 1000.0 / audio_secs,
            core
        );
        match tools {
            Some(t) => println!("  {:.2}x opus-tools", total.as_secs_f64() / t.as_secs_f64()),
            None => println!(),
        }
    }
    Ok(())
}

fn read_all(src: &mut WavSource) -> Result<Vec<f32>, AudioError> {
    let mut all = Vec::new();
    let mut buf = vec![0.0; 960];
    loop {
        let n = src.read(&mut buf)?;
        all.extend_from_slice(&buf[..n]);
        if n < buf.len() {
            // Whole 20 ms frames only.
            all.truncate(all.len() / 960 * 960);
            return Ok(all);
        }
    }
}

/// CPU time this thread has used: from `/proc/thread-self/schedstat`
/// (nanoseconds on CPU), so other load on the machine does not count, as it
/// does not for `time`'s user + sys of the tools. Falls back to wall time.
fn cpu_now() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .unwrap_or_else(|| START.with(|t| t.elapsed()))
}

thread_local! {
    static START: Instant = Instant::now();
}

/// Best-of-three encode and decode CPU times and the encoded size.
fn ours(config: OpusConfig, pcm: &[f32]) -> Result<(Duration, Duration, usize), AudioError> {
    let frame = config.frame.samples(config.format());
    let mut best = (Duration::MAX, Duration::MAX, 0);
    for _ in 0..3 {
        let mut enc = OpusEncoder::new(config)?;
        let mut packets = Vec::with_capacity(pcm.len() / frame);
        let mut buf = [0u8; MAX_PACKET_BYTES];
        let t = cpu_now();
        for f in pcm.chunks_exact(frame) {
            let n = enc.encode(f, &mut buf)?;
            packets.push(buf[..n].to_vec());
        }
        let enc_time = cpu_now() - t;
        let mut dec = OpusDecoder::new(1, config.frame)?;
        let mut out = vec![0.0; frame];
        let t = cpu_now();
        for p in &packets {
            dec.decode(p, &mut out)?;
        }
        let dec_time = cpu_now() - t;
        let bytes = packets.iter().map(Vec::len).sum();
        best = (best.0.min(enc_time), best.1.min(dec_time), bytes);
    }
    Ok(best)
}

/// Best-of-three user + system CPU of a shell command, from bash's `time`.
fn cpu_of(command: &str) -> Option<Duration> {
    let program = command.split_whitespace().next()?;
    if !Path::new("/usr/bin").join(program).exists() && which(program).is_none() {
        return None;
    }
    (0..3)
        .filter_map(|_| {
            let out = Command::new("bash")
                .args([
                    "-c",
                    &format!("TIMEFORMAT='%3U %3S'; time ( {command} 2>/dev/null )"),
                ])
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stderr);
            let mut parts = text
                .split_whitespace()
                .filter_map(|s| s.parse::<f64>().ok());
            let (user, sys) = (parts.next()?, parts.next()?);
            out.status
                .success()
                .then(|| Duration::from_secs_f64(user + sys))
        })
        .min()
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
