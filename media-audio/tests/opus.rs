//! Opus round trips: a tone keeps its frequency and level; lost packets are
//! rebuilt from FEC or concealed; bad input is an error or a concealment,
//! never a panic.

mod common;

use common::{channel, dominant_hz, tone_amplitude, zero_crossing_hz};
use lanlink_audio::codec::{DecoderStats, MAX_PACKET_BYTES};
use lanlink_audio::{
    AudioError, AudioSource, Format, FrameDuration, OpusConfig, OpusDecoder, OpusEncoder, Playout,
    ToneSource,
};

/// Encodes `secs` of a tone, returning the packets.
fn encode_tone(config: OpusConfig, freq: f32, amp: f32, secs: usize) -> Vec<Vec<u8>> {
    let format = config.format();
    let mut tone = ToneSource::new(format, freq, amp).unwrap();
    let mut enc = OpusEncoder::new(config).unwrap();
    let mut pcm = vec![0.0; enc.frame_samples()];
    let frames = secs * 1000 / config.frame.duration().as_millis() as usize;
    (0..frames)
        .map(|_| {
            tone.read(&mut pcm).unwrap();
            enc.encode_to_vec(&pcm).unwrap()
        })
        .collect()
}

fn decode_all(config: OpusConfig, packets: &[Vec<u8>]) -> Vec<f32> {
    let mut dec = OpusDecoder::new(config.channels, config.frame).unwrap();
    let mut pcm = vec![0.0; dec.frame_samples()];
    let mut out = Vec::new();
    for p in packets {
        let n = dec.decode(p, &mut pcm).unwrap();
        out.extend_from_slice(&pcm[..n]);
    }
    out
}

fn check_tone(samples: &[f32], freq: f64, amp: f64, what: &str) {
    // Skip the first 200 ms: encoder look-ahead and level ramp-up.
    let steady = &samples[9600..];
    let hz = zero_crossing_hz(steady, 48_000);
    assert!(
        (hz - freq).abs() < freq * 0.01,
        "{what}: zero crossings say {hz} Hz"
    );
    assert_eq!(
        dominant_hz(steady, 48_000, 100.0, 4000.0, 10.0),
        freq,
        "{what}"
    );
    let a = tone_amplitude(steady, 48_000, freq);
    assert!(
        (a / amp - 1.0).abs() < 0.12,
        "{what}: amplitude {a}, sent {amp}"
    );
}

#[test]
fn voice_mono_round_trip_keeps_frequency_and_level() {
    let config = OpusConfig::voice(1);
    assert_eq!(config.bitrate, 24_000);
    let packets = encode_tone(config, 440.0, 0.5, 2);
    assert_eq!(packets.len(), 100);
    let bytes: usize = packets.iter().map(Vec::len).sum();
    let kbps = bytes as f64 * 8.0 / 2.0 / 1000.0;
    assert!(kbps < 40.0, "{kbps} kbit/s for a 24 kbit/s target");
    let out = decode_all(config, &packets);
    assert_eq!(out.len(), 96_000);
    check_tone(&out, 440.0, 0.5, "voice mono");
}

#[test]
fn music_stereo_round_trip_keeps_both_channels() {
    let config = OpusConfig::music(2);
    assert_eq!(config.bitrate, 128_000);
    let packets = encode_tone(config, 1000.0, 0.4, 1);
    let out = decode_all(config, &packets);
    assert_eq!(out.len(), 2 * 48_000);
    check_tone(&channel(&out, 2, 0), 1000.0, 0.4, "music left");
    check_tone(&channel(&out, 2, 1), 1000.0, 0.4, "music right");
}

#[test]
fn ten_ms_frames_work() {
    let config = OpusConfig {
        frame: FrameDuration::Ms10,
        ..OpusConfig::voice(1)
    };
    let packets = encode_tone(config, 600.0, 0.5, 1);
    assert_eq!(packets.len(), 100);
    let out = decode_all(config, &packets);
    assert_eq!(out.len(), 48_000);
    check_tone(&out, 600.0, 0.5, "10 ms");
}

#[test]
fn lost_packet_is_rebuilt_from_fec_or_concealed() {
    let config = OpusConfig::voice(1);
    let packets = encode_tone(config, 300.0, 0.5, 1);
    let mut dec = OpusDecoder::new(1, config.frame).unwrap();
    let mut pcm = vec![0.0; 960];
    for p in &packets[..20] {
        dec.decode(p, &mut pcm).unwrap();
    }
    // Packet 20 lost; packet 21 is here, so its FEC rebuilds 20.
    let playout = Playout::Conceal {
        seq: 20,
        next: Some(packets[21].clone().into()),
    };
    assert_eq!(dec.play(&playout, &mut pcm).unwrap(), 960);
    let a = tone_amplitude(&pcm, 48_000, 300.0);
    assert!(a > 0.3, "FEC frame amplitude {a}");
    // Packet 22 lost with nothing after it: plain concealment.
    dec.decode(&packets[21], &mut pcm).unwrap();
    let conceal = Playout::Conceal {
        seq: 22,
        next: None,
    };
    assert_eq!(dec.play(&conceal, &mut pcm).unwrap(), 960);
    assert!(
        tone_amplitude(&pcm, 48_000, 300.0) > 0.1,
        "PLC continues the tone"
    );
    assert_eq!(
        dec.stats(),
        DecoderStats {
            decoded: 21,
            fec: 1,
            concealed: 1,
            corrupt: 0
        }
    );
    assert_eq!(dec.play(&Playout::Empty, &mut pcm).unwrap(), 0);
}

#[test]
fn bad_input_is_an_error_or_a_concealment() {
    let mut enc = OpusEncoder::new(OpusConfig::voice(1)).unwrap();
    let mut out = [0u8; MAX_PACKET_BYTES];
    assert!(matches!(
        enc.encode(&[0.0; 100], &mut out),
        Err(AudioError::FrameLength {
            len: 100,
            expected: 960,
            ..
        })
    ));
    assert!(OpusEncoder::new(OpusConfig::voice(3)).is_err());
    assert!(OpusEncoder::new(OpusConfig {
        bitrate: 1_000,
        ..OpusConfig::voice(1)
    })
    .is_err());
    enc.set_bitrate(32_000).unwrap();
    enc.set_expected_loss(20).unwrap();
    assert!(enc.set_bitrate(0).is_err());
    assert_eq!(enc.config().bitrate, 32_000);

    let mut dec = OpusDecoder::new(1, FrameDuration::Ms20).unwrap();
    let mut pcm = vec![0.0; 960];
    assert!(dec.decode(&[0x0f; 3], &mut [0.0; 10]).is_err());
    // Garbage from the network is concealed and counted, not an error.
    let garbage = Playout::Packet {
        seq: 1,
        timestamp_us: 0,
        payload: vec![0xff, 0xff, 0xff, 0xff, 0xff].into(),
    };
    assert_eq!(dec.play(&garbage, &mut pcm).unwrap(), 960);
    assert_eq!(dec.stats().corrupt, 1);
}

#[test]
fn music_preset_targets_music_bitrates() {
    assert_eq!(OpusConfig::music(1).bitrate, 96_000);
    assert_eq!(OpusConfig::voice(2).bitrate, 32_000);
    assert_eq!(OpusConfig::voice(1).format(), Format::MONO_48K);
}
