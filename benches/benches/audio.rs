//! The live-audio hot path, per 20 ms frame: Opus encode and decode (mono
//! voice at 24 kbit/s, stereo music at 128 kbit/s), resampling a 44.1 kHz
//! device to 48 kHz, and a jitter-buffer push + pop. `opus_stream` encodes
//! and decodes 60 s of mono speech-like audio with `opusenc`'s settings (32
//! kbit/s, 20 ms, complexity 10), the workload the opus-tools baseline
//! times.
//!
//! Target: encode + decode of one mono voice stream within 1.3x the CPU of
//! `opusenc` + `opusdec` on the same 60 s, and under 2 % of one core (400 µs
//! per 20 ms frame). The baseline is measured in the same run by
//! `cargo run --release -p lanlink-audio --example opus_baseline`.
//!
//! ```text
//! cargo bench -p lanlink-benches --bench audio
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lanlink_audio::codec::MAX_PACKET_BYTES;
use lanlink_audio::{
    AudioSource, Format, JitterBuffer, JitterConfig, OpusApplication, OpusConfig, OpusDecoder,
    OpusEncoder, Resampler, SpeechLikeSource, ToneSource,
};

/// `secs` of speech-like audio in `format`; stereo gets a 440 Hz tone on the
/// right so the channels differ.
fn signal(format: Format, secs: usize) -> Vec<f32> {
    let mut speech = SpeechLikeSource::new(Format::new(format.sample_rate, 1), 0.7).unwrap();
    let mut tone = ToneSource::new(Format::new(format.sample_rate, 1), 440.0, 0.3).unwrap();
    let frames = format.sample_rate as usize * secs;
    let (mut s, mut t) = (vec![0.0; frames], vec![0.0; frames]);
    speech.read(&mut s).unwrap();
    tone.read(&mut t).unwrap();
    match format.channels {
        1 => s,
        _ => s.iter().zip(&t).flat_map(|(a, b)| [*a, *b]).collect(),
    }
}

fn opus(c: &mut Criterion) {
    let mut group = c.benchmark_group("opus_20ms");
    group.throughput(Throughput::Elements(1));
    for (name, config) in [
        ("mono_voice", OpusConfig::voice(1)),
        ("stereo_music", OpusConfig::music(2)),
    ] {
        let pcm = signal(config.format(), 2);
        let frame = config.frame.samples(config.format());
        let frames: Vec<&[f32]> = pcm.chunks_exact(frame).collect();
        let mut enc = OpusEncoder::new(config).unwrap();
        let packets: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| enc.encode_to_vec(f).unwrap())
            .collect();

        group.bench_function(format!("encode/{name}"), |b| {
            let mut enc = OpusEncoder::new(config).unwrap();
            let mut out = [0u8; MAX_PACKET_BYTES];
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % frames.len();
                black_box(enc.encode(black_box(frames[i]), &mut out).unwrap())
            })
        });
        group.bench_function(format!("decode/{name}"), |b| {
            let mut dec = OpusDecoder::new(config.channels, config.frame).unwrap();
            let mut out = vec![0.0; frame];
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % packets.len();
                black_box(dec.decode(black_box(&packets[i]), &mut out).unwrap())
            })
        });
    }
    group.finish();
}

fn resample(c: &mut Criterion) {
    let mut group = c.benchmark_group("resample_20ms_44k1_to_48k");
    group.throughput(Throughput::Elements(1));
    for channels in [1u16, 2] {
        let input = signal(Format::new(44_100, channels), 1);
        let frame = 882 * usize::from(channels);
        let frames: Vec<&[f32]> = input.chunks_exact(frame).collect();
        group.bench_function(if channels == 1 { "mono" } else { "stereo" }, |b| {
            let mut r = Resampler::new(44_100, 48_000, channels).unwrap();
            let mut out = Vec::with_capacity(4 * frame);
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % frames.len();
                out.clear();
                r.process(black_box(frames[i]), &mut out).unwrap();
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn jitter(c: &mut Criterion) {
    let mut group = c.benchmark_group("jitter_buffer");
    group.throughput(Throughput::Elements(1));
    group.bench_function("push_pop", |b| {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let payload = Bytes::from(vec![0u8; 80]);
        let t0 = Instant::now();
        let mut seq = 0u32;
        b.iter(|| {
            // Steady state: one packet in, one frame out, 20 ms apart.
            let now = t0 + Duration::from_millis(20 * u64::from(seq));
            jb.push(seq, u64::from(seq) * 20_000, payload.clone(), now);
            seq = seq.wrapping_add(1);
            black_box(jb.pop(now))
        })
    });
    group.finish();
}

/// 60 s of mono speech-like audio through encode and decode, with the
/// settings `opusenc --bitrate 32 --framesize 20` uses.
fn opus_stream(c: &mut Criterion) {
    let config = OpusConfig {
        bitrate: 32_000,
        application: OpusApplication::Audio,
        fec: false,
        expected_loss_percent: 0,
        ..OpusConfig::voice(1)
    };
    let pcm = signal(config.format(), 60);
    let frame = config.frame.samples(config.format());
    let mut group = c.benchmark_group("opus_stream_60s_mono_32k");
    group.sample_size(10);
    group.throughput(Throughput::Elements((pcm.len() / frame) as u64));
    group.bench_function("encode_decode", |b| {
        b.iter(|| {
            let mut enc = OpusEncoder::new(config).unwrap();
            let mut dec = OpusDecoder::new(1, config.frame).unwrap();
            let mut packet = [0u8; MAX_PACKET_BYTES];
            let mut out = vec![0.0; frame];
            for f in pcm.chunks_exact(frame) {
                let n = enc.encode(f, &mut packet).unwrap();
                dec.decode(&packet[..n], &mut out).unwrap();
            }
            black_box(out[0])
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .without_plots();
    targets = opus, resample, jitter, opus_stream
}
criterion_main!(benches);
