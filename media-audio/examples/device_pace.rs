//! How fast a capture and a playback device really run against the wall
//! clock: captures from one device and plays a tone to another for a few
//! seconds, then prints frames per second and the stream counters.
//!
//! A device that delivers capture slower than real time, or whose playback
//! stalls, shows up here before it confuses an end-to-end test.
//!
//! ```text
//! cargo run -p lanlink-audio --example device_pace -- CAPTURE_PCM PLAYBACK_PCM [SECONDS]
//! ```

use std::time::{Duration, Instant};

use lanlink_audio::{
    AudioSink, AudioSource, CaptureStream, Format, PlaybackStream, StreamOptions, ToneSource,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(capture), Some(playback)) = (args.next(), args.next()) else {
        return Err("usage: device_pace CAPTURE_PCM PLAYBACK_PCM [SECONDS]".into());
    };
    let seconds: f64 = args.next().map_or(Ok(3.0), |s| s.parse())?;
    let options = StreamOptions::default();
    // "-" leaves that direction out.
    let mut mic = (capture != "-")
        .then(|| CaptureStream::open(Some(&capture), options))
        .transpose()?;
    let mut speaker = (playback != "-")
        .then(|| PlaybackStream::open(Some(&playback), options))
        .transpose()?;
    if let Some(m) = &mic {
        println!("capture {} at {:?}", m.device(), m.device_config());
    }
    if let Some(s) = &speaker {
        println!("playback {} at {:?}", s.device(), s.device_config());
    }
    let mut tone = ToneSource::new(Format::MONO_48K, 1000.0, 0.5)?;
    let mut frame = vec![0.0f32; 960];
    // The first second is start-up (servers fill their buffers); the rate
    // is measured after it.
    let warm_up = Duration::from_secs(1);
    let opened = Instant::now();
    let mut started = None;
    let mut frames = 0u64;
    let mut slowest = Duration::ZERO;
    while started.is_none_or(|s: Instant| s.elapsed().as_secs_f64() < seconds) {
        if started.is_none() && opened.elapsed() >= warm_up {
            started = Some(Instant::now());
            frames = 0;
            slowest = Duration::ZERO;
        }
        let t = Instant::now();
        if let Some(m) = &mut mic {
            m.read(&mut frame)?;
        }
        tone.read(&mut frame)?;
        if let Some(s) = &mut speaker {
            s.write(&frame)?;
        }
        slowest = slowest.max(t.elapsed());
        frames += 1;
    }
    let wall = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    println!(
        "{frames} frames of 20 ms in {wall:.2} s: {:.0}% of real time; slowest read+write {slowest:?}",
        frames as f64 * 2.0 / wall
    );
    if let Some(m) = &mic {
        println!("capture {:?}", m.stats());
    }
    if let Some(s) = &speaker {
        println!("playback {:?}", s.stats());
    }
    Ok(())
}
