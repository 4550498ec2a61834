//! Tone → WAV → read back, checking frequency, level and duration; and a
//! WAV at another rate and channel count converted on the way in.

mod common;

use std::time::Duration;

use common::{dominant_hz, rms, tone_amplitude, zero_crossing_hz};
use lanlink_audio::{AudioSink, AudioSource, Format, ToneSource, WavSink, WavSource};

fn write_tone(path: &std::path::Path, format: Format, freq: f32, amp: f32, secs: f32, float: bool) {
    let mut tone = ToneSource::new(format, freq, amp)
        .unwrap()
        .with_duration(Duration::from_secs_f32(secs));
    let mut sink = if float {
        WavSink::create_float(path, format).unwrap()
    } else {
        WavSink::create(path, format).unwrap()
    };
    let mut buf = vec![0.0; 960 * usize::from(format.channels)];
    loop {
        let n = tone.read(&mut buf).unwrap();
        sink.write(&buf[..n]).unwrap();
        if n < buf.len() {
            break;
        }
    }
    sink.finish().unwrap();
}

fn read_all(source: &mut impl AudioSource) -> Vec<f32> {
    let mut all = Vec::new();
    let mut buf = vec![0.0; 960 * usize::from(source.format().channels)];
    loop {
        let n = source.read(&mut buf).unwrap();
        all.extend_from_slice(&buf[..n]);
        if n < buf.len() {
            return all;
        }
    }
}

#[test]
fn tone_survives_a_16_bit_wav() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tone.wav");
    write_tone(&path, Format::MONO_48K, 440.0, 0.5, 1.5, false);

    let mut src = WavSource::open(&path, Format::MONO_48K).unwrap();
    assert_eq!(src.file_format(), Format::MONO_48K);
    let back = read_all(&mut src);
    assert_eq!(back.len(), 72_000, "1.5 s at 48 kHz");
    let hz = zero_crossing_hz(&back, 48_000);
    assert!((hz - 440.0).abs() < 0.5, "zero crossings say {hz} Hz");
    assert_eq!(dominant_hz(&back, 48_000, 100.0, 2000.0, 5.0), 440.0);
    let amp = tone_amplitude(&back, 48_000, 440.0);
    assert!((amp - 0.5).abs() < 0.005, "amplitude {amp}");
    let level = rms(&back);
    assert!((level - 0.5 / 2f64.sqrt()).abs() < 0.005, "rms {level}");
}

#[test]
fn a_44k_stereo_wav_comes_out_48k_mono() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cd.wav");
    write_tone(&path, Format::new(44_100, 2), 1000.0, 0.6, 1.0, true);

    let mut src = WavSource::open(&path, Format::MONO_48K).unwrap();
    assert_eq!(src.file_format(), Format::new(44_100, 2));
    let back = read_all(&mut src);
    assert_eq!(back.len(), 48_000, "1 s at 48 kHz");
    let hz = zero_crossing_hz(&back[2400..45_600], 48_000);
    assert!((hz - 1000.0).abs() < 1.0, "zero crossings say {hz} Hz");
    let amp = tone_amplitude(&back[2400..45_600], 48_000, 1000.0);
    assert!((amp - 0.6).abs() < 0.01, "amplitude {amp}");
}

#[test]
fn a_mono_wav_fills_both_channels() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.wav");
    write_tone(&path, Format::new(16_000, 1), 300.0, 0.4, 0.5, false);
    let mut src = WavSource::open(&path, Format::STEREO_48K).unwrap();
    let back = read_all(&mut src);
    assert_eq!(back.len(), 2 * 24_000);
    let left = common::channel(&back, 2, 0);
    let right = common::channel(&back, 2, 1);
    assert_eq!(left, right);
    let hz = zero_crossing_hz(&left[1200..22_800], 48_000);
    assert!((hz - 300.0).abs() < 1.0, "{hz} Hz");
}
