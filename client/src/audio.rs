//! Audio on a [`Session`]: publish any [`AudioSource`], and play every
//! talker (or one) mixed into any [`AudioSink`].
//!
//! The wire carries Opus, 48 kHz, 20 ms frames. Publishing keeps time by
//! the wall clock, one frame at a time, so sources without a clock of
//! their own (files, tones) go out in real time too; listening runs one
//! jitter buffer and decoder per talker and sums them, one frame per tick.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use lanlink_audio::{
    AudioSink, AudioSource, Format, FrameDuration, JitterBuffer, JitterConfig, JitterStats,
    OpusConfig, OpusDecoder, OpusEncoder, Pacer, PlayoutClock,
};
use lanlink_proto::audio::{AudioAnnounce, AudioCodec, AudioEnd, AudioPacket, AudioSubscribe};
use lanlink_proto::{Message, StreamId};
use lanlink_transport::Shutdown;

use crate::media::{spawn_publisher, Announcement, Publisher, StreamInfo};
use crate::session::RouteLink;
use crate::{unix_us, ClientError, Session};

/// The format on the wire and of what [`Session::listen`] plays: 48 kHz mono.
pub const FORMAT: Format = Format::MONO_48K;
/// The frame length on the wire.
pub const FRAME: FrameDuration = FrameDuration::Ms20;

/// The announcement of a 48 kHz mono Opus stream named `name` (the server
/// fills in the publisher).
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

/// The publish loop, for any transport: reads `source` (48 kHz mono),
/// encodes, and hands messages to `send` (announcement first, end last),
/// one frame per 20 ms of wall clock, until the source ends, `limit`
/// passes, `stop` fires, or `send` returns false. Returns packets sent.
///
/// [`Session::publish_audio`] runs this on a thread; a server publishing
/// its own stream calls it directly.
pub fn publish(
    mut source: impl AudioSource,
    name: &str,
    limit: Option<Duration>,
    stop: &Shutdown,
    mut send: impl FnMut(Message) -> bool,
) -> Result<u64, ClientError> {
    let mut encoder = OpusEncoder::new(OpusConfig::voice(1))?;
    let samples = FRAME.samples(FORMAT);
    let mut pcm = vec![0.0f32; samples];
    let mut packet = vec![0u8; 4000];
    if !send(announce(name).into()) {
        return Ok(0);
    }
    let started = Instant::now();
    // Real time, whatever the source: a file would otherwise be sent at
    // disk speed and overflow every listener's jitter buffer.
    let mut pacer = Pacer::new(FORMAT.sample_rate);
    let mut seq: u32 = 0;
    while !stop.is_triggered() && limit.is_none_or(|l| started.elapsed() < l) {
        let n = source.read(&mut pcm)?;
        if n == 0 {
            break; // the file ended
        }
        pcm[n..].fill(0.0);
        let captured_us = unix_us();
        let len = encoder.encode(&pcm, &mut packet)?;
        let msg = AudioPacket {
            seq,
            timestamp_us: captured_us,
            data: bytes::Bytes::copy_from_slice(&packet[..len]),
        };
        if !send(msg.into()) {
            break;
        }
        seq = seq.wrapping_add(1);
        pacer.advance(FRAME.frames(FORMAT.sample_rate));
    }
    send(AudioEnd.into());
    Ok(u64::from(seq))
}

impl Session {
    /// Publishes `source` (48 kHz mono: a microphone, a WAV file, a tone)
    /// as the audio stream `name`, for at most `limit`, on a thread of its
    /// own. A refusal (a name already taken) ends it:
    /// [`Publisher::wait`] says why.
    pub fn publish_audio(
        &self,
        name: &str,
        source: impl AudioSource + 'static,
        limit: Option<Duration>,
    ) -> Result<Publisher, ClientError> {
        let name = name.to_owned();
        spawn_publisher(self, "lanlink-talk", move |stop, send| {
            publish(source, &name, limit, stop, send)
        })
    }

    /// Plays every audio stream (or only the one named `options.only`)
    /// mixed into `sink`, on a thread of its own, until every stream it
    /// heard has ended and played out, `options.limit` passes, or it is
    /// stopped. Streams it cannot play (another codec, frame length) are
    /// skipped with a [`ListenNotice`]; a broken stream never ends the
    /// others.
    pub fn listen(
        &self,
        sink: impl AudioSink + 'static,
        options: ListenOptions,
    ) -> Result<Listener, ClientError> {
        if sink.format().sample_rate != FORMAT.sample_rate {
            return Err(lanlink_audio::AudioError::UnsupportedFormat {
                format: sink.format(),
                reason: "lanlink plays at 48 kHz",
            }
            .into());
        }
        let link = RouteLink::media(self);
        let announcements = link.watch_announcements();
        let stop = Shutdown::new();
        let (notices_tx, notices) = crossbeam_channel::unbounded();
        let (flag, session) = (stop.clone(), self.clone());
        let thread = std::thread::Builder::new()
            .name("lanlink-listen".into())
            .spawn(move || {
                let _session = session;
                let mut mixer = Mixer::new(options.only.clone());
                let notify = |n| {
                    let _ = notices_tx.send(n);
                };
                play(
                    &link,
                    &announcements,
                    &mut mixer,
                    sink,
                    &options,
                    &flag,
                    &notify,
                )
            })
            .map_err(ClientError::Thread)?;
        Ok(Listener {
            stop,
            notices,
            thread: Some(thread),
        })
    }
}

/// What [`Session::listen`] plays.
#[derive(Debug, Clone, Default)]
pub struct ListenOptions {
    /// Only the stream with this name (default: every talker, mixed).
    pub only: Option<String>,
    /// Stop after this long.
    pub limit: Option<Duration>,
}

/// Something a [`Listener`] wants its user to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenNotice {
    /// A stream is being played now.
    Playing {
        /// Its name.
        name: String,
        /// Who publishes it.
        publisher: String,
    },
    /// A stream ended.
    Ended {
        /// Its name.
        name: String,
    },
    /// A stream cannot be played and is ignored.
    Skipped {
        /// Its name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// What a [`Listener`] reports at the end.
#[derive(Debug, Default, Clone)]
pub struct ListenReport {
    /// Frames written to the sink.
    pub frames: u64,
    /// Per stream: name and jitter-buffer statistics.
    pub streams: Vec<(String, JitterStats)>,
}

/// Audio being played by [`Session::listen`].
///
/// Dropping it stops playing and joins its thread.
#[derive(Debug)]
pub struct Listener {
    stop: Shutdown,
    notices: Receiver<ListenNotice>,
    thread: Option<std::thread::JoinHandle<Result<ListenReport, ClientError>>>,
}

impl Listener {
    /// Streams starting, ending or skipped, as they happen.
    pub fn notices(&self) -> &Receiver<ListenNotice> {
        &self.notices
    }

    /// Stops playing (within a frame).
    pub fn stop(&self) {
        self.stop.trigger();
    }

    /// A handle that stops playing from another thread.
    pub fn stopper(&self) -> Shutdown {
        self.stop.clone()
    }

    /// Waits until playing is over; returns what was played.
    pub fn wait(mut self) -> Result<ListenReport, ClientError> {
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(ClientError::Thread(std::io::Error::other(
                "the listening thread panicked",
            ))),
            None => Ok(ListenReport::default()),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One stream being listened to.
struct Talker {
    name: String,
    jitter: JitterBuffer,
    decoder: OpusDecoder,
    channels: usize,
    pcm: Vec<f32>,
    ended: bool,
}

/// Mixes talkers: one jitter buffer and decoder each, summed into mono.
///
/// Sans-IO: feed it what arrives ([`Mixer::add`], [`Mixer::push`],
/// [`Mixer::end`]) and pull one frame per tick ([`Mixer::mix`]).
#[derive(Default)]
pub struct Mixer {
    only: Option<String>,
    talkers: HashMap<StreamId, Talker>,
    heard_any: bool,
    done: Vec<(String, JitterStats)>,
}

impl std::fmt::Debug for Mixer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mixer")
            .field("talkers", &self.talkers.len())
            .finish()
    }
}

impl Mixer {
    /// A mixer for every stream, or only the one named `only`.
    pub fn new(only: Option<String>) -> Mixer {
        Mixer {
            only,
            ..Mixer::default()
        }
    }

    /// A stream was announced. `Ok(true)`: play it (subscribe to it);
    /// `Ok(false)`: not wanted; an error: it cannot be played.
    pub fn add(&mut self, id: StreamId, a: &AudioAnnounce) -> Result<bool, ClientError> {
        if self.only.as_ref().is_some_and(|n| *n != a.name) {
            return Ok(false);
        }
        let unplayable = |detail: String| ClientError::Unplayable {
            name: a.name.clone(),
            detail,
        };
        if a.codec != AudioCodec::OPUS {
            return Err(unplayable(format!("codec {:?} is not Opus", a.codec)));
        }
        if a.channels != 1 && a.channels != 2 {
            return Err(unplayable(format!("{} channels", a.channels)));
        }
        if a.frame_duration_us != FRAME.duration().as_micros() as u32 {
            let us = a.frame_duration_us;
            return Err(unplayable(format!("{us} µs frames, not 20 ms")));
        }
        let channels = usize::from(a.channels);
        let decoder = OpusDecoder::new(u16::from(a.channels), FRAME)?;
        let talker = Talker {
            name: a.name.clone(),
            jitter: JitterBuffer::new(JitterConfig::default()),
            decoder,
            channels,
            pcm: vec![0.0; FRAME.samples(FORMAT) * channels],
            ended: false,
        };
        self.talkers.insert(id, talker);
        self.heard_any = true;
        Ok(true)
    }

    /// A packet of stream `id` arrived at `now`.
    pub fn push(&mut self, id: StreamId, packet: AudioPacket, now: Instant) {
        if let Some(t) = self.talkers.get_mut(&id) {
            t.jitter
                .push(packet.seq, packet.timestamp_us, packet.data, now);
        }
    }

    /// Stream `id` ended: it plays out what it has, then is dropped.
    /// Returns its name if it was playing.
    pub fn end(&mut self, id: StreamId) -> Option<String> {
        let t = self.talkers.get_mut(&id)?;
        t.ended = true;
        Some(t.name.clone())
    }

    /// One frame of every talker, summed into `out` (mono, 48 kHz, one
    /// frame long). A talker whose packets cannot be decoded is dropped
    /// and named in the result.
    pub fn mix(&mut self, now: Instant, out: &mut [f32]) -> Vec<(String, String)> {
        out.fill(0.0);
        let mut broken = Vec::new();
        for (id, t) in &mut self.talkers {
            let playout = t.jitter.pop(now);
            match t.decoder.play(&playout, &mut t.pcm) {
                Ok(n) => {
                    let frames = (n / t.channels).min(out.len());
                    for (i, o) in out.iter_mut().take(frames).enumerate() {
                        let s: f32 = t.pcm[i * t.channels..(i + 1) * t.channels].iter().sum();
                        *o += s / t.channels as f32;
                    }
                }
                Err(e) => broken.push((*id, t.name.clone(), e.to_string())),
            }
        }
        for o in out.iter_mut() {
            *o = o.clamp(-1.0, 1.0);
        }
        for (id, name, _) in &broken {
            if let Some(t) = self.talkers.remove(id) {
                self.done.push((name.clone(), t.jitter.stats()));
            }
        }
        // Streams that ended and have played out are done.
        self.talkers.retain(|_, t| {
            let done = t.ended && t.jitter.stats().depth == 0;
            if done {
                self.done.push((t.name.clone(), t.jitter.stats()));
            }
            !done
        });
        broken.into_iter().map(|(_, n, e)| (n, e)).collect()
    }

    /// The talkers' jitter buffers (what a [`PlayoutClock`] follows).
    pub fn buffers(&self) -> impl Iterator<Item = &JitterBuffer> {
        self.talkers.values().map(|t| &t.jitter)
    }

    /// Whether everyone it played has finished.
    pub fn finished(&self) -> bool {
        self.heard_any && self.talkers.is_empty()
    }

    /// Per stream, finished ones first: name and jitter statistics.
    pub fn stats(&self) -> Vec<(String, JitterStats)> {
        let mut all = self.done.clone();
        all.extend(
            self.talkers
                .values()
                .map(|t| (t.name.clone(), t.jitter.stats())),
        );
        all
    }
}

/// The play loop: subscribe to what is and what comes, mix one frame per
/// 20 ms into `sink`, pulled on a [`PlayoutClock`].
fn play(
    link: &RouteLink,
    announcements: &Receiver<lanlink_proto::Frame>,
    mixer: &mut Mixer,
    mut sink: impl AudioSink,
    options: &ListenOptions,
    stop: &Shutdown,
    notify: &dyn Fn(ListenNotice),
) -> Result<ListenReport, ClientError> {
    let consider = |mixer: &mut Mixer, info: &StreamInfo| -> Result<(), ClientError> {
        let Announcement::Audio(a) = &info.announcement else {
            return Ok(());
        };
        match mixer.add(info.id, a) {
            Ok(true) => {
                link.adopt(info.id);
                link.send_on(info.id, AudioSubscribe)?;
                notify(ListenNotice::Playing {
                    name: a.name.clone(),
                    publisher: a.publisher.clone(),
                });
            }
            Ok(false) => {}
            Err(e) => notify(ListenNotice::Skipped {
                name: a.name.clone(),
                reason: e.to_string(),
            }),
        }
        Ok(())
    };
    for info in link.shared().streams() {
        consider(mixer, &info)?;
    }
    let out_channels = sink.format().channels;
    let samples = FRAME.samples(FORMAT);
    let (mut mix, mut wide) = (vec![0.0f32; samples], Vec::new());
    let started = Instant::now();
    let mut frames = 0u64;
    // Frames are pulled shortly after their packets typically land, not on
    // a free-running tick: that is the wait a packet would otherwise add.
    let mut clock = PlayoutClock::new(FRAME, started);
    while !stop.is_triggered() && options.limit.is_none_or(|l| started.elapsed() < l) {
        while let Ok(frame) = announcements.try_recv() {
            match &frame.message {
                Message::AudioAnnounce(_) => {
                    if let Some(info) = StreamInfo::from_message(frame.stream, &frame.message) {
                        consider(mixer, &info)?;
                    }
                }
                Message::AudioEnd(_) => {
                    link.release(frame.stream);
                    if let Some(name) = mixer.end(frame.stream) {
                        notify(ListenNotice::Ended { name });
                    }
                }
                _ => {}
            }
        }
        // Everything that arrives until the next pull, stamped as it comes.
        while let Some(frame) =
            link.recv(clock.next_pull().saturating_duration_since(Instant::now()))?
        {
            if let Message::AudioPacket(p) = frame.message {
                mixer.push(frame.stream, p, Instant::now());
            }
        }
        for (name, reason) in mixer.mix(Instant::now(), &mut mix) {
            notify(ListenNotice::Skipped { name, reason });
        }
        if out_channels == 1 {
            sink.write(&mix)?;
        } else {
            lanlink_audio::remix(&mix, 1, out_channels, &mut wide);
            sink.write(&wide)?;
        }
        frames += 1;
        if mixer.finished() {
            break; // everyone we listened to has finished
        }
        clock.follow(mixer.buffers());
    }
    sink.finish()?;
    Ok(ListenReport {
        frames,
        streams: mixer.stats(),
    })
}
