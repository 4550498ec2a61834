//! `lanlink talk`, `lanlink listen`, `lanlink devices`, and the server's own
//! audio streams: wiring between [`lanlink_audio`] sources, codec, jitter
//! buffer and sinks and the relay.
//!
//! Both loops keep time by the wall clock, one 20 ms frame at a time, so
//! sources and sinks without a clock of their own (files, ALSA file PCMs)
//! run in real time too; a real device's blocking `read`/`write` then
//! simply finds its frame ready.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::connect::Target;
use lanlink_audio::{
    AudioSink, AudioSource, CaptureStream, Format, FrameDuration, JitterBuffer, JitterConfig,
    JitterStats, OpusConfig, OpusDecoder, OpusEncoder, PlaybackStream, PlayoutClock, StreamOptions,
    ToneSource, WavSink, WavSource,
};
use lanlink_proto::audio::{AudioAnnounce, AudioCodec, AudioEnd, AudioPacket, AudioSubscribe};
use lanlink_proto::{Capabilities, Frame, Message, StreamId};
use lanlink_transport::{Client, Shutdown};
use lanlink_video::now_us;

/// Where `lanlink talk` takes sound from.
#[derive(Debug, Clone)]
pub enum TalkInput {
    /// A capture device by name (`None`: the default one).
    Device(Option<String>),
    /// A WAV file (any rate and channel count; converted).
    File(PathBuf),
    /// A sine tone of this frequency.
    Tone(f32),
}

/// Where `lanlink listen` plays to.
#[derive(Debug, Clone)]
pub enum ListenOutput {
    /// A playback device by name (`None`: the default one).
    Device(Option<String>),
    /// A WAV file (48 kHz mono).
    File(PathBuf),
}

const FORMAT: Format = Format::MONO_48K;
const FRAME: FrameDuration = FrameDuration::Ms20;
/// The stream id `lanlink talk` publishes on (client ids are odd).
const TALK_STREAM: StreamId = 1;

/// Opens a source delivering 48 kHz mono.
pub fn open_input(input: &TalkInput) -> Result<Box<dyn AudioSource>, String> {
    let source: Box<dyn AudioSource> = match input {
        TalkInput::Device(name) => {
            let options = StreamOptions {
                format: FORMAT,
                ..StreamOptions::default()
            };
            Box::new(CaptureStream::open(name.as_deref(), options).map_err(|e| e.to_string())?)
        }
        TalkInput::File(path) => {
            Box::new(WavSource::open(path, FORMAT).map_err(|e| e.to_string())?)
        }
        TalkInput::Tone(hz) => {
            Box::new(ToneSource::new(FORMAT, *hz, 0.5).map_err(|e| e.to_string())?)
        }
    };
    Ok(source)
}

/// The announcement of a 48 kHz mono Opus stream.
pub fn announce(name: &str) -> AudioAnnounce {
    AudioAnnounce {
        name: name.to_owned(),
        publisher: String::new(),
        codec: AudioCodec::OPUS,
        sample_rate: FORMAT.sample_rate,
        channels: 1,
        frame_duration_us: FRAME.duration().as_micros() as u32,
    }
}

/// Captures, encodes and hands packets to `send` (announce first, end
/// last), one frame per 20 ms of wall clock, until the source ends,
/// `seconds` pass, `shutdown`, or `send` returns false. Returns packets sent.
pub fn publish(
    mut source: Box<dyn AudioSource>,
    name: &str,
    seconds: Option<f64>,
    shutdown: &Shutdown,
    mut send: impl FnMut(Message) -> bool,
) -> Result<u64, String> {
    let config = OpusConfig::voice(1);
    let mut encoder = OpusEncoder::new(config).map_err(|e| e.to_string())?;
    let samples = FRAME.samples(FORMAT);
    let mut pcm = vec![0.0f32; samples];
    let mut packet = vec![0u8; 4000];
    if !send(announce(name).into()) {
        return Ok(0);
    }
    let started = Instant::now();
    let limit = seconds.map(Duration::from_secs_f64);
    let mut seq: u32 = 0;
    while !shutdown.is_triggered() && limit.is_none_or(|l| started.elapsed() < l) {
        let n = source
            .read(&mut pcm)
            .map_err(|e| format!("audio input: {e}"))?;
        if n == 0 {
            break; // the file ended
        }
        pcm[n..].fill(0.0);
        let captured_us = now_us();
        let len = encoder
            .encode(&pcm, &mut packet)
            .map_err(|e| e.to_string())?;
        let msg = AudioPacket {
            seq,
            timestamp_us: captured_us,
            data: bytes::Bytes::copy_from_slice(&packet[..len]),
        };
        if !send(msg.into()) {
            break;
        }
        seq = seq.wrapping_add(1);
        // Real time, whatever the source: a file would otherwise be sent at
        // disk speed and overflow every listener's jitter buffer.
        let due = started + FRAME.duration() * seq;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    send(AudioEnd.into());
    Ok(u64::from(seq))
}

/// `lanlink talk`.
pub fn talk(
    server: &Target,
    user: &str,
    input: &TalkInput,
    name: Option<String>,
    seconds: Option<f64>,
    shutdown: &Shutdown,
) -> Result<(), String> {
    let source = open_input(input)?;
    let client = server.connect(user, Capabilities::AUDIO)?;
    let name = name.unwrap_or_else(|| user.to_owned());
    println!("talking as {name} (Opus, 48 kHz mono, 20 ms frames)");
    let mut refusal = None;
    let sent = publish(source, &name, seconds, shutdown, |m| {
        while let Ok(Some(f)) = client.recv_timeout(Duration::ZERO) {
            if let Message::Error(e) = f.message {
                refusal = Some(e.message);
                return false;
            }
        }
        client.send(&Frame::new(TALK_STREAM, m)).is_ok()
    })?;
    client.close("done");
    if let Some(r) = refusal {
        return Err(format!("the server refused the stream: {r}"));
    }
    println!("sent {sent} packets ({:.1} s of audio)", sent as f64 * 0.02);
    Ok(())
}

/// One stream being listened to.
struct Talker {
    name: String,
    jitter: JitterBuffer,
    decoder: OpusDecoder,
    ended: bool,
}

/// What `lanlink listen` reports at the end.
#[derive(Debug, Default)]
pub struct ListenReport {
    /// Frames written to the output.
    pub frames: u64,
    /// Per stream: name and jitter-buffer statistics.
    pub streams: Vec<(String, JitterStats)>,
}

/// Opens the sink `lanlink listen` plays to (48 kHz mono).
pub fn open_output(output: &ListenOutput) -> Result<Box<dyn AudioSink>, String> {
    let sink: Box<dyn AudioSink> = match output {
        ListenOutput::Device(name) => {
            let options = StreamOptions {
                format: FORMAT,
                ..StreamOptions::default()
            };
            Box::new(PlaybackStream::open(name.as_deref(), options).map_err(|e| e.to_string())?)
        }
        ListenOutput::File(path) => {
            Box::new(WavSink::create(path, FORMAT).map_err(|e| e.to_string())?)
        }
    };
    Ok(sink)
}

/// `lanlink listen`: plays every audio stream (mixed), or only `only`,
/// until every stream it heard has ended and played out, `seconds` pass,
/// or `shutdown`.
pub fn listen(
    server: &Target,
    user: &str,
    output: &ListenOutput,
    only: Option<&str>,
    seconds: Option<f64>,
    shutdown: &Shutdown,
) -> Result<ListenReport, String> {
    let sink = open_output(output)?;
    let client = server.connect(user, Capabilities::AUDIO)?;
    println!(
        "listening{}",
        only.map_or(String::new(), |n| format!(" to {n}"))
    );
    let report = play(&client, sink, only, seconds, shutdown);
    client.close("done");
    let report = report?;
    for (name, s) in &report.streams {
        println!(
            "{name}: received {} packets, lost {}, late {}, concealed {}",
            s.received, s.lost, s.late, s.concealed
        );
    }
    println!("played {:.1} s", report.frames as f64 * 0.02);
    Ok(report)
}

/// Subscribes to every audio stream `client` hears announced (or only the
/// one named `only`), and plays them mixed into `sink`: each through its
/// own jitter buffer and Opus decoder, one 20 ms frame per 20 ms of wall
/// clock, pulled shortly after packets arrive ([`PlayoutClock`]). Returns
/// when every stream it heard has ended and played out, `seconds` pass, or
/// `shutdown`. Prints `+ NAME (PUBLISHER)` and `- NAME` as streams come
/// and go.
pub fn play(
    client: &Client,
    mut sink: Box<dyn AudioSink>,
    only: Option<&str>,
    seconds: Option<f64>,
    shutdown: &Shutdown,
) -> Result<ListenReport, String> {
    let samples = FRAME.samples(FORMAT);
    let (mut mix, mut pcm) = (vec![0.0f32; samples], vec![0.0f32; samples]);
    let mut talkers: HashMap<StreamId, Talker> = HashMap::new();
    let started = Instant::now();
    let limit = seconds.map(Duration::from_secs_f64);
    let mut report = ListenReport::default();
    let mut heard_any = false;
    let mut clock = PlayoutClock::new(FRAME, started);
    while !shutdown.is_triggered() && limit.is_none_or(|l| started.elapsed() < l) {
        // Everything that arrives until the next pull, stamped as it comes.
        while let Some(f) = client
            .recv_timeout(clock.next_pull().saturating_duration_since(Instant::now()))
            .map_err(|e| e.to_string())?
        {
            let now = Instant::now();
            match f.message {
                Message::AudioAnnounce(a) if only.is_none_or(|n| n == a.name) => {
                    if a.codec != AudioCodec::OPUS || a.channels != 1 && a.channels != 2 {
                        eprintln!("skipping {}: not Opus mono/stereo", a.name);
                        continue;
                    }
                    client
                        .send(&Frame::new(f.stream, AudioSubscribe))
                        .map_err(|e| e.to_string())?;
                    let decoder = OpusDecoder::new(u16::from(a.channels), FRAME)
                        .map_err(|e| e.to_string())?;
                    println!("+ {} ({})", a.name, a.publisher);
                    let jitter = JitterBuffer::new(JitterConfig::default());
                    talkers.insert(
                        f.stream,
                        Talker {
                            name: a.name,
                            jitter,
                            decoder,
                            ended: false,
                        },
                    );
                    heard_any = true;
                }
                Message::AudioPacket(p) => {
                    if let Some(t) = talkers.get_mut(&f.stream) {
                        t.jitter.push(p.seq, p.timestamp_us, p.data, now);
                    }
                }
                Message::AudioEnd(_) => {
                    if let Some(t) = talkers.get_mut(&f.stream) {
                        t.ended = true;
                        println!("- {}", t.name);
                    }
                }
                _ => {}
            }
        }
        // One frame of output: every talker's next frame, summed.
        let now = Instant::now();
        mix.fill(0.0);
        for t in talkers.values_mut() {
            let playout = t.jitter.pop(now);
            let n = t
                .decoder
                .play(&playout, &mut pcm)
                .map_err(|e| e.to_string())?;
            for (m, s) in mix.iter_mut().zip(&pcm[..n.min(samples)]) {
                *m += *s;
            }
        }
        for m in &mut mix {
            *m = m.clamp(-1.0, 1.0);
        }
        sink.write(&mix).map_err(|e| format!("audio output: {e}"))?;
        report.frames += 1;
        // Streams that ended and have played out are done.
        talkers.retain(|_, t| {
            let done = t.ended && t.jitter.stats().depth == 0;
            if done {
                report.streams.push((t.name.clone(), t.jitter.stats()));
            }
            !done
        });
        if heard_any && talkers.is_empty() {
            break; // everyone we listened to has finished
        }
        // The next pull shortly after the next packets should be in.
        clock.follow(talkers.values().map(|t| &t.jitter));
    }
    sink.finish().map_err(|e| e.to_string())?;
    for t in talkers.into_values() {
        report.streams.push((t.name, t.jitter.stats()));
    }
    Ok(report)
}

/// `lanlink devices`: capture and playback devices.
pub fn devices() -> Result<(), String> {
    let list = lanlink_audio::list_devices().map_err(|e| e.to_string())?;
    if list.is_empty() {
        println!("no audio devices");
    }
    for d in list {
        let mut roles = Vec::new();
        if !d.input_configs.is_empty() {
            roles.push(if d.is_default_input {
                "input (default)"
            } else {
                "input"
            });
        }
        if !d.output_configs.is_empty() {
            roles.push(if d.is_default_output {
                "output (default)"
            } else {
                "output"
            });
        }
        println!("{}  [{}]  {}", d.id, roles.join(", "), d.name);
    }
    Ok(())
}
