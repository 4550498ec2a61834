//! The audio and video relay: publishers announce streams, subscribers pick
//! them, and the server forwards packets and frames without decoding them.
//!
//! A publisher announces on a stream id of its own (odd); the relay gives
//! the stream a server-wide id (even, from [`FIRST_MEDIA_STREAM`] up) and
//! tells every media-capable client about it, including later arrivals.
//! Packets are forwarded under that id, so one encoding of a frame serves
//! every subscriber. Slow subscribers are the transport's business: media
//! frames displace older ones in their queues, so they lose data for
//! themselves only.
//!
//! What a publisher can make the server hold is bounded by
//! [`MediaConfig`]: streams per connection and in all, and the length of
//! their names (names are broadcast to every media client and stored for
//! browsers). Announcing is rate-limited per connection and per address,
//! since every new or renamed stream is broadcast to every media client.
//! A stream ends, for everyone and for the [`VideoTap`], when its
//! publisher ends it or leaves.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use lanlink_proto::audio::{AudioAnnounce, AudioEnd, AudioPacket};
use lanlink_proto::video::{VideoAnnounce, VideoEnd, VideoFrame};
use lanlink_proto::{control, ErrorCode, Frame, Message, StreamId};
use lanlink_transport::limits::DEFAULT_MAX_KEYS;
use lanlink_transport::{ConnId, KeyedBuckets, Rate, TokenBucket};

use crate::text::{display_safe, hides_or_reorders};
use crate::Outgoing;
use crate::ServiceError;

/// The connection id of media the server process publishes itself (see
/// `server::Hub::handle_local`): not rate-limited.
pub const LOCAL: ConnId = ConnId(0);

/// Server-assigned media stream ids start here (even, and far above the
/// ids the file relay hands out, so the two never meet on a connection).
pub const FIRST_MEDIA_STREAM: StreamId = 0x4000_0000;

/// What the relay tells a [`VideoTap`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum TapEvent<'a> {
    /// A stream was announced (or its announcement changed) by the
    /// connection given; its frames may not flow yet (another server's
    /// stream crosses only while someone here watches it).
    Announced(&'a VideoAnnounce, ConnId),
    /// A frame was relayed on the stream so announced.
    Frame(&'a VideoAnnounce, &'a VideoFrame),
    /// The stream so announced ended (or was renamed): forget what is kept
    /// of it.
    Ended(&'a VideoAnnounce),
}

/// Sees every relayed video frame with the stream's announcement, and every
/// video stream's end: how the HTTP MJPEG server (or a recorder) sees the
/// streams.
#[derive(Clone)]
pub struct VideoTap(pub Arc<TapFn>);

/// The function behind a [`VideoTap`].
pub type TapFn = dyn Fn(TapEvent<'_>) + Send + Sync;

impl std::fmt::Debug for VideoTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VideoTap")
    }
}

impl VideoTap {
    /// Wraps a closure.
    pub fn new(f: impl Fn(TapEvent<'_>) + Send + Sync + 'static) -> VideoTap {
        VideoTap(Arc::new(f))
    }

    fn ended(&self, announcement: &Announcement) {
        if let Announcement::Video(v) = announcement {
            (self.0)(TapEvent::Ended(v));
        }
    }
}

/// What the relay tells an [`AudioTap`]. Ids are the relay's server-wide
/// stream ids, as subscribers see them.
#[derive(Debug, Clone, Copy)]
pub enum AudioTapEvent<'a> {
    /// An audio stream started (or was renamed: then `Ended` came first).
    Started(StreamId, &'a AudioAnnounce),
    /// A packet was relayed on the stream.
    Packet(StreamId, &'a AudioPacket),
    /// The stream ended.
    Ended(StreamId),
}

/// Sees every audio stream's start and end and every relayed packet: how
/// the browser's `/audio` WebSocket hears the talkers. It runs on the hub
/// thread, so it must never block: hand the packet on, or drop it.
#[derive(Clone)]
pub struct AudioTap(pub Arc<AudioTapFn>);

/// The function behind an [`AudioTap`].
pub type AudioTapFn = dyn Fn(AudioTapEvent<'_>) + Send + Sync;

impl std::fmt::Debug for AudioTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AudioTap")
    }
}

impl AudioTap {
    /// Wraps a closure.
    pub fn new(f: impl Fn(AudioTapEvent<'_>) + Send + Sync + 'static) -> AudioTap {
        AudioTap(Arc::new(f))
    }

    fn ended(&self, id: StreamId, announcement: &Announcement) {
        if let Announcement::Audio(_) = announcement {
            (self.0)(AudioTapEvent::Ended(id));
        }
    }
}

/// Limits on what publishers can make the relay hold.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Streams one connection may publish at once.
    pub max_streams_per_client: usize,
    /// Streams all connections of one address may publish at once
    /// (connections whose address was given with
    /// [`MediaRelay::set_peer`]; another server's streams never count).
    pub max_streams_per_address: usize,
    /// Streams the relay carries at once, in all.
    pub max_streams: usize,
    /// The longest stream name accepted, in bytes.
    pub max_name_len: usize,
    /// Stream announcements (a new stream, a rename, an unchanged
    /// re-announcement) one connection may make; each new or renamed
    /// stream is broadcast to every media client. A refused announcement
    /// costs a token too.
    pub announce_rate: Rate,
    /// The same, for all connections of one address together.
    pub address_announce_rate: Rate,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            // A camera, a microphone and a screen, with room to spare.
            max_streams_per_client: 4,
            // Four clients' worth: a household behind one NAT address, not
            // all of the server's streams.
            max_streams_per_address: 16,
            max_streams: 256,
            max_name_len: 64,
            // A publisher announces once per stream; a few restarts or
            // renames in a row are fine, a stream of them is not.
            announce_rate: Rate {
                burst: 10,
                per_second: 1.0,
            },
            address_announce_rate: Rate {
                burst: 20,
                per_second: 2.0,
            },
        }
    }
}

/// What a stream is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// An audio stream.
    Audio(AudioAnnounce),
    /// A video stream.
    Video(VideoAnnounce),
}

impl Announcement {
    /// The stream's name.
    pub fn name(&self) -> &str {
        match self {
            Announcement::Audio(a) => &a.name,
            Announcement::Video(v) => &v.name,
        }
    }

    /// The announcement as a message.
    pub fn message(&self) -> Message {
        match self {
            Announcement::Audio(a) => a.clone().into(),
            Announcement::Video(v) => v.clone().into(),
        }
    }

    fn end(&self) -> Message {
        match self {
            Announcement::Audio(_) => AudioEnd.into(),
            Announcement::Video(_) => VideoEnd.into(),
        }
    }
}

struct Published {
    publisher: (ConnId, StreamId),
    announcement: Announcement,
    subscribers: BTreeSet<ConnId>,
}

/// Every published stream of a server and who receives it.
pub struct MediaRelay {
    config: MediaConfig,
    streams: HashMap<StreamId, Published>,
    by_publisher: HashMap<(ConnId, StreamId), StreamId>,
    clients: BTreeSet<ConnId>,
    next_id: StreamId,
    video_tap: Option<VideoTap>,
    audio_tap: Option<AudioTap>,
    /// Client addresses, for the per-address announcement limit (see
    /// [`MediaRelay::set_peer`]).
    peers: HashMap<ConnId, IpAddr>,
    /// Announcements per connection (dropped when it leaves) and per
    /// address.
    announces: HashMap<ConnId, TokenBucket>,
    address_announces: KeyedBuckets<IpAddr>,
    /// Publishers allowed more (or fewer) streams than
    /// [`MediaConfig::max_streams_per_client`]: another server's streams,
    /// relayed here under one connection id (see
    /// [`MediaRelay::set_stream_cap`]).
    caps: HashMap<ConnId, usize>,
}

impl Default for MediaRelay {
    fn default() -> Self {
        MediaRelay::new(None)
    }
}

impl MediaRelay {
    /// An empty relay with the default [`MediaConfig`]; `video_tap` sees
    /// every video frame relayed.
    pub fn new(video_tap: Option<VideoTap>) -> MediaRelay {
        MediaRelay::with_config(MediaConfig::default(), video_tap)
    }

    /// An empty relay with limits of `config`.
    pub fn with_config(config: MediaConfig, video_tap: Option<VideoTap>) -> MediaRelay {
        MediaRelay {
            streams: HashMap::new(),
            by_publisher: HashMap::new(),
            clients: BTreeSet::new(),
            next_id: FIRST_MEDIA_STREAM,
            video_tap,
            audio_tap: None,
            peers: HashMap::new(),
            announces: HashMap::new(),
            address_announces: KeyedBuckets::new(config.address_announce_rate, DEFAULT_MAX_KEYS),
            caps: HashMap::new(),
            config,
        }
    }

    /// Lets `tap` see every audio stream and packet relayed from now on.
    pub fn with_audio_tap(mut self, tap: Option<AudioTap>) -> MediaRelay {
        self.audio_tap = tap;
        self
    }

    /// Tells the relay which address `conn` connects from: its
    /// announcements then count against that address's limit too
    /// ([`MediaConfig::address_announce_rate`]), and its streams against
    /// that address's [`MediaConfig::max_streams_per_address`]. A
    /// connection never set has only its own limits.
    pub fn set_peer(&mut self, conn: ConnId, ip: IpAddr) {
        self.peers.insert(conn, ip.to_canonical());
    }

    /// The streams being published: (server id, announcement).
    pub fn streams(&self) -> Vec<(StreamId, Announcement)> {
        let mut v: Vec<_> = self
            .streams
            .iter()
            .map(|(id, p)| (*id, p.announcement.clone()))
            .collect();
        v.sort_by_key(|(id, _)| *id);
        v
    }

    /// The names of the streams `conn` publishes, sorted.
    pub fn streams_of(&self, conn: ConnId) -> Vec<String> {
        let mut names: Vec<String> = self
            .streams
            .values()
            .filter(|p| p.publisher.0 == conn)
            .map(|p| p.announcement.name().to_owned())
            .collect();
        names.sort();
        names
    }

    /// Lets `conn` publish up to `cap` streams at once instead of
    /// [`MediaConfig::max_streams_per_client`] (until it disconnects);
    /// [`MediaConfig::max_streams`] still bounds them all.
    pub fn set_stream_cap(&mut self, conn: ConnId, cap: usize) {
        self.caps.insert(conn, cap);
    }

    /// The server-wide id of the stream `conn` announced on its own
    /// stream id `stream`, if it is published.
    pub fn relay_id(&self, conn: ConnId, stream: StreamId) -> Option<StreamId> {
        self.by_publisher.get(&(conn, stream)).copied()
    }

    /// What `conn` announced on its own stream id `stream` (the publisher
    /// name as the relay set it).
    pub fn announcement_of(&self, conn: ConnId, stream: StreamId) -> Option<&Announcement> {
        let id = self.by_publisher.get(&(conn, stream))?;
        self.streams.get(id).map(|p| &p.announcement)
    }

    /// The streams `conn` publishes, by its own stream ids, each with
    /// whether anyone subscribes to it; sorted.
    pub fn published_by(&self, conn: ConnId) -> Vec<(StreamId, bool)> {
        let mut v: Vec<_> = self
            .streams
            .values()
            .filter(|p| p.publisher.0 == conn)
            .map(|p| (p.publisher.1, !p.subscribers.is_empty()))
            .collect();
        v.sort_unstable();
        v
    }

    /// Every stream with its publishing connection: (server-wide id,
    /// publisher, announcement), sorted by id.
    pub fn streams_with_publishers(&self) -> Vec<(StreamId, ConnId, Announcement)> {
        let mut v: Vec<_> = self
            .streams
            .iter()
            .map(|(id, p)| (*id, p.publisher.0, p.announcement.clone()))
            .collect();
        v.sort_by_key(|(id, _, _)| *id);
        v
    }

    /// Subscribers of stream `id`.
    pub fn subscriber_count(&self, id: StreamId) -> usize {
        self.streams.get(&id).map_or(0, |p| p.subscribers.len())
    }

    /// A media-capable client arrived: tell it about every stream.
    pub fn connect(&mut self, conn: ConnId, out: &mut Vec<Outgoing>) {
        self.clients.insert(conn);
        for (id, p) in &self.streams {
            out.push(Outgoing {
                to: conn,
                frame: Frame {
                    stream: *id,
                    message: p.announcement.message(),
                }
                .into(),
            });
        }
    }

    /// Handles one media message from `conn`, whose user is `name`, at
    /// `now` (for the announcement rate limits).
    pub fn handle(
        &mut self,
        conn: ConnId,
        name: &str,
        stream: StreamId,
        message: Message,
        now: Instant,
        out: &mut Vec<Outgoing>,
    ) {
        match message {
            Message::AudioAnnounce(a) => {
                let a = AudioAnnounce {
                    publisher: name.to_owned(),
                    ..a
                };
                self.announce(conn, stream, Announcement::Audio(a), now, out);
            }
            Message::VideoAnnounce(v) => {
                let v = VideoAnnounce {
                    publisher: name.to_owned(),
                    ..v
                };
                self.announce(conn, stream, Announcement::Video(v), now, out);
            }
            Message::AudioSubscribe(_) => self.subscribe(conn, stream, false, out),
            Message::VideoSubscribe(_) => self.subscribe(conn, stream, true, out),
            Message::AudioUnsubscribe(_) | Message::VideoUnsubscribe(_) => {
                if let Some(p) = self.streams.get_mut(&stream) {
                    p.subscribers.remove(&conn);
                }
            }
            Message::AudioEnd(_) | Message::VideoEnd(_) => {
                if let Some(id) = self.by_publisher.get(&(conn, stream)).copied() {
                    self.end(id, out);
                }
            }
            message @ (Message::AudioPacket(_) | Message::VideoFrame(_)) => {
                let Some(&id) = self.by_publisher.get(&(conn, stream)) else {
                    return error(
                        out,
                        conn,
                        stream,
                        ErrorCode::NOT_FOUND,
                        "media data on a stream that was never announced",
                    );
                };
                let Some(p) = self.streams.get(&id) else {
                    return;
                };
                let is_video = matches!(message, Message::VideoFrame(_));
                if is_video != matches!(p.announcement, Announcement::Video(_)) {
                    let text = "media data of the wrong kind for this stream";
                    return error(out, conn, stream, ErrorCode::UNEXPECTED, text);
                }
                if let (Some(tap), Announcement::Video(v), Message::VideoFrame(f)) =
                    (&self.video_tap, &p.announcement, &message)
                {
                    (tap.0)(TapEvent::Frame(v, f));
                }
                if let (Some(tap), Message::AudioPacket(a)) = (&self.audio_tap, &message) {
                    (tap.0)(AudioTapEvent::Packet(id, a));
                }
                // The same frame for every subscriber: the hub encodes it once.
                let frame = Frame {
                    stream: id,
                    message,
                };
                Outgoing::shared(p.subscribers.iter().copied(), frame, out);
            }
            other => {
                let text = format!("{:?} is not a media message", other.kind());
                error(out, conn, stream, ErrorCode::UNEXPECTED, &text);
            }
        }
    }

    /// `conn` is gone: its subscriptions end and its streams end for everyone.
    pub fn disconnect(&mut self, conn: ConnId, out: &mut Vec<Outgoing>) {
        self.clients.remove(&conn);
        self.peers.remove(&conn);
        self.announces.remove(&conn);
        self.caps.remove(&conn);
        for p in self.streams.values_mut() {
            p.subscribers.remove(&conn);
        }
        let mine: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, p)| p.publisher.0 == conn)
            .map(|(id, _)| *id)
            .collect();
        for id in mine {
            self.end(id, out);
        }
    }

    /// The address `conn`'s streams count against: the one given with
    /// [`MediaRelay::set_peer`], unless `conn` relays another server's
    /// streams (it has a cap of its own, [`MediaRelay::set_stream_cap`]).
    fn local_address(&self, conn: ConnId) -> Option<IpAddr> {
        if self.caps.contains_key(&conn) {
            return None;
        }
        self.peers.get(&conn).copied()
    }

    /// Takes an announcement token from `conn`'s bucket, then from its
    /// address's; the error says whose limit it hit.
    fn admit_announcement(&mut self, conn: ConnId, now: Instant) -> Result<(), ServiceError> {
        let limited =
            |from: &'static str, wait: std::time::Duration| ServiceError::TooManyRequests {
                what: "stream announcements",
                from,
                retry_after_ms: crate::error::millis(wait),
            };
        let rate = self.config.announce_rate;
        self.announces
            .entry(conn)
            .or_insert_with(|| TokenBucket::new(rate, now))
            .try_take(now)
            .map_err(|wait| limited("this connection", wait))?;
        if let Some(ip) = self.peers.get(&conn) {
            self.address_announces
                .try_take(ip, now)
                .map_err(|wait| limited("your address", wait))?;
        }
        Ok(())
    }

    fn announce(
        &mut self,
        conn: ConnId,
        stream: StreamId,
        announcement: Announcement,
        now: Instant,
        out: &mut Vec<Outgoing>,
    ) {
        // Every announcement may be a broadcast to every media client:
        // each costs a token, refused or not (the server's own streams
        // excepted).
        if conn != LOCAL {
            if let Err(e) = self.admit_announcement(conn, now) {
                return error(out, conn, stream, e.code(), &e.to_string());
            }
        }
        let name = announcement.name();
        if name.is_empty() {
            return error(
                out,
                conn,
                stream,
                ErrorCode::INVALID_NAME,
                "a stream needs a name",
            );
        }
        if name.len() > self.config.max_name_len {
            let text = format!(
                "a stream name may be at most {} bytes long",
                self.config.max_name_len
            );
            return error(out, conn, stream, ErrorCode::INVALID_NAME, &text);
        }
        if name.chars().any(char::is_control) {
            let text = "a stream name may not contain control characters";
            return error(out, conn, stream, ErrorCode::INVALID_NAME, text);
        }
        // Shown on terminals and in browsers: nothing that reorders or
        // hides text.
        if name.chars().any(hides_or_reorders) {
            let text = "a stream name may not contain bidirectional text controls, invisible characters or line separators";
            return error(out, conn, stream, ErrorCode::INVALID_NAME, text);
        }
        let existing = self.by_publisher.get(&(conn, stream)).copied();
        if existing.is_none() {
            let mine = self.by_publisher.keys().filter(|(c, _)| *c == conn).count();
            let cap = self
                .caps
                .get(&conn)
                .copied()
                .unwrap_or(self.config.max_streams_per_client);
            if mine >= cap {
                let text = format!("you already publish {mine} streams, the most one client may");
                return error(out, conn, stream, ErrorCode::RATE_LIMITED, &text);
            }
            if let Some(ip) = self.local_address(conn) {
                let held = self
                    .by_publisher
                    .keys()
                    .filter(|(c, _)| self.local_address(*c) == Some(ip))
                    .count();
                if held >= self.config.max_streams_per_address {
                    let text = format!(
                        "your address already publishes {held} streams, the most one address may"
                    );
                    return error(out, conn, stream, ErrorCode::RATE_LIMITED, &text);
                }
            }
            if self.streams.len() >= self.config.max_streams {
                let text = "the server carries as many streams as it can; try again later";
                return error(out, conn, stream, ErrorCode::SERVER_FULL, text);
            }
        }
        // Names are unique, also when a publisher re-announces (renames)
        // its own stream.
        if let Some((_, other)) = self
            .streams
            .iter()
            .find(|(id, p)| Some(**id) != existing && p.announcement.name() == announcement.name())
        {
            let text = format!(
                "a stream named {:?} is already published by {}",
                announcement.name(),
                publisher_of(&other.announcement)
            );
            return error(out, conn, stream, ErrorCode::NAME_TAKEN, &text);
        }
        let id = match existing {
            Some(id) => id,
            None => {
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(2).max(FIRST_MEDIA_STREAM);
                self.by_publisher.insert((conn, stream), id);
                id
            }
        };
        let (subscribers, before) = self
            .streams
            .remove(&id)
            .map(|p| (p.subscribers, Some(p.announcement)))
            .unwrap_or_default();
        if let Some(before) = before {
            if before == announcement {
                // Nothing changed: nothing to tell anyone.
                self.streams.insert(
                    id,
                    Published {
                        publisher: (conn, stream),
                        announcement,
                        subscribers,
                    },
                );
                return;
            }
            // A renamed stream is a new one for the tap.
            if let Some(tap) = &self.video_tap {
                tap.ended(&before);
            }
            if let Some(tap) = &self.audio_tap {
                tap.ended(id, &before);
            }
        }
        if let (Some(tap), Announcement::Audio(a)) = (&self.audio_tap, &announcement) {
            (tap.0)(AudioTapEvent::Started(id, a));
        }
        if let (Some(tap), Announcement::Video(v)) = (&self.video_tap, &announcement) {
            (tap.0)(TapEvent::Announced(v, conn));
        }
        let frame = Frame {
            stream: id,
            message: announcement.message(),
        };
        Outgoing::shared(self.clients.iter().copied(), frame, out);
        tracing::info!(conn = %conn, publisher = %display_safe(publisher_of(&announcement)),
            stream = %display_safe(announcement.name()), "stream announced");
        self.streams.insert(
            id,
            Published {
                publisher: (conn, stream),
                announcement,
                subscribers,
            },
        );
    }

    fn subscribe(&mut self, conn: ConnId, id: StreamId, video: bool, out: &mut Vec<Outgoing>) {
        match self.streams.get_mut(&id) {
            Some(p) if matches!(p.announcement, Announcement::Video(_)) == video => {
                p.subscribers.insert(conn);
            }
            _ => error(
                out,
                conn,
                id,
                ErrorCode::NOT_FOUND,
                "no such stream (it may have ended)",
            ),
        }
    }

    fn end(&mut self, id: StreamId, out: &mut Vec<Outgoing>) {
        let Some(p) = self.streams.remove(&id) else {
            return;
        };
        self.by_publisher.remove(&p.publisher);
        tracing::info!(conn = %p.publisher.0, publisher = %display_safe(publisher_of(&p.announcement)),
            stream = %display_safe(p.announcement.name()), "stream ended");
        if let Some(tap) = &self.video_tap {
            tap.ended(&p.announcement);
        }
        if let Some(tap) = &self.audio_tap {
            tap.ended(id, &p.announcement);
        }
        let frame = Frame {
            stream: id,
            message: p.announcement.end(),
        };
        Outgoing::shared(self.clients.iter().copied(), frame, out);
    }
}

fn publisher_of(a: &Announcement) -> &str {
    match a {
        Announcement::Audio(a) => &a.publisher,
        Announcement::Video(v) => &v.publisher,
    }
}

fn error(out: &mut Vec<Outgoing>, to: ConnId, stream: StreamId, code: ErrorCode, message: &str) {
    out.push(Outgoing::new(
        to,
        Frame::new(
            stream,
            control::Error {
                code,
                message: message.to_owned(),
            },
        ),
    ));
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use lanlink_proto::audio::{AudioCodec, AudioPacket, AudioSubscribe};
    use lanlink_proto::video::{VideoCodec, VideoSubscribe};

    use super::*;

    const PUB: ConnId = ConnId(1);

    /// Tests that are not about the announcement limit announce at most a
    /// few times: one clock reading serves.
    fn now() -> Instant {
        Instant::now()
    }
    const A: ConnId = ConnId(2);
    const B: ConnId = ConnId(3);

    fn mic() -> AudioAnnounce {
        AudioAnnounce {
            name: "mic".into(),
            publisher: String::new(),
            codec: AudioCodec::OPUS,
            sample_rate: 48_000,
            channels: 1,
            frame_duration_us: 20_000,
        }
    }

    fn packet(seq: u32) -> AudioPacket {
        AudioPacket {
            seq,
            timestamp_us: 1,
            data: Bytes::from_static(b"opus"),
        }
    }

    #[test]
    fn announce_subscribe_relay_and_end() {
        let mut r = MediaRelay::default();
        let mut out = Vec::new();
        for c in [PUB, A] {
            r.connect(c, &mut out);
        }
        r.handle(PUB, "ada", 1, mic().into(), now(), &mut out);
        let announced: Vec<_> = out.drain(..).map(|o| (o.to, o.frame)).collect();
        assert_eq!(announced.len(), 2, "every client hears of the stream");
        let id = announced[0].1.stream;
        assert_eq!(id, FIRST_MEDIA_STREAM);
        assert!(
            matches!(&announced[0].1.message, Message::AudioAnnounce(a) if a.publisher == "ada")
        );

        // A late arrival learns of it on connect.
        r.connect(B, &mut out);
        assert!(matches!(out.as_slice(), [Outgoing { to: B, frame }] if frame.stream == id));
        out.clear();

        // Only subscribers get packets, under the server's id.
        r.handle(A, "a", id, AudioSubscribe.into(), now(), &mut out);
        r.handle(PUB, "ada", 1, packet(1).into(), now(), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].to, out[0].frame.stream), (A, id));
        out.clear();

        // Subscribing to video on an audio id is refused.
        r.handle(B, "b", id, VideoSubscribe.into(), now(), &mut out);
        assert!(
            matches!(&out[0].frame.message, Message::Error(e) if e.code == ErrorCode::NOT_FOUND)
        );
        out.clear();

        // The publisher leaves: everyone hears the end; the stream is gone.
        r.disconnect(PUB, &mut out);
        assert_eq!(out.len(), 2);
        assert!(out
            .iter()
            .all(|o| matches!(o.frame.message, Message::AudioEnd(_))));
        assert!(r.streams().is_empty());
    }

    #[test]
    fn stream_names_are_unique_and_unannounced_data_is_refused() {
        let mut r = MediaRelay::default();
        let mut out = Vec::new();
        r.connect(PUB, &mut out);
        r.handle(PUB, "ada", 1, mic().into(), now(), &mut out);
        out.clear();
        r.handle(A, "bob", 1, mic().into(), now(), &mut out);
        assert!(
            matches!(&out[0].frame.message, Message::Error(e) if e.code == ErrorCode::NAME_TAKEN && e.message.contains("ada"))
        );
        out.clear();
        r.handle(A, "bob", 3, packet(1).into(), now(), &mut out);
        assert!(
            matches!(&out[0].frame.message, Message::Error(e) if e.code == ErrorCode::NOT_FOUND)
        );
    }

    /// Found by the `media` fuzz target: re-announcing one's own stream
    /// skipped the name check, so a rename could take another stream's name.
    #[test]
    fn a_rename_cannot_take_another_streams_name() {
        let mut r = MediaRelay::default();
        let mut out = Vec::new();
        r.handle(PUB, "ada", 1, mic().into(), now(), &mut out);
        let mut other = mic();
        other.name = "other".into();
        r.handle(A, "bob", 1, other.clone().into(), now(), &mut out);
        out.clear();

        r.handle(A, "bob", 1, mic().into(), now(), &mut out);
        assert!(
            matches!(&out[..], [Outgoing { to: A, frame }] if matches!(&frame.message, Message::Error(e) if e.code == ErrorCode::NAME_TAKEN))
        );
        let names: Vec<_> = r.streams().into_iter().map(|(_, a)| a).collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains(&Announcement::Audio(AudioAnnounce {
            publisher: "bob".into(),
            ..other.clone()
        })));

        // Re-announcing under its own name is still fine.
        out.clear();
        r.handle(A, "bob", 1, other.into(), now(), &mut out);
        assert!(out
            .iter()
            .all(|o| matches!(o.frame.message, Message::AudioAnnounce(_))));
    }

    #[test]
    fn the_video_tap_sees_frames() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let tap = VideoTap::new(move |event| {
            if let TapEvent::Frame(a, f) = event {
                s2.lock().unwrap().push((a.name.clone(), f.seq))
            }
        });
        let mut r = MediaRelay::new(Some(tap));
        let mut out = Vec::new();
        r.handle(PUB, "ada", 1, cam("cam").into(), now(), &mut out);
        r.handle(PUB, "ada", 1, jpeg(9).into(), now(), &mut out);
        assert_eq!(*seen.lock().unwrap(), vec![("cam".to_owned(), 9)]);
    }

    #[test]
    fn the_audio_tap_sees_starts_packets_renames_and_ends() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let tap = AudioTap::new(move |event| {
            let line = match event {
                AudioTapEvent::Started(id, a) => format!("start {id} {} {}", a.name, a.publisher),
                AudioTapEvent::Packet(id, p) => format!("packet {id} {}", p.seq),
                AudioTapEvent::Ended(id) => format!("end {id}"),
            };
            s2.lock().unwrap().push(line);
        });
        let mut r = MediaRelay::default().with_audio_tap(Some(tap));
        let mut out = Vec::new();
        r.handle(PUB, "ada", 1, mic().into(), now(), &mut out);
        r.handle(PUB, "ada", 1, mic().into(), now(), &mut out); // unchanged: nothing
        r.handle(PUB, "ada", 1, packet(7).into(), now(), &mut out);
        // Video is not the audio tap's business.
        r.handle(PUB, "ada", 3, cam("cam").into(), now(), &mut out);
        r.handle(PUB, "ada", 3, jpeg(1).into(), now(), &mut out);
        let renamed = AudioAnnounce {
            name: "voice".into(),
            ..mic()
        };
        r.handle(PUB, "ada", 1, renamed.into(), now(), &mut out);
        r.disconnect(PUB, &mut out);
        let id = FIRST_MEDIA_STREAM;
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                format!("start {id} mic ada"),
                format!("packet {id} 7"),
                format!("end {id}"),
                format!("start {id} voice ada"),
                format!("end {id}"),
            ]
        );
    }

    fn cam(name: &str) -> VideoAnnounce {
        VideoAnnounce {
            name: name.into(),
            publisher: String::new(),
            codec: VideoCodec::MJPEG,
            width: 64,
            height: 48,
            fps_milli: 30_000,
        }
    }

    /// A frame holding a (tiny) JPEG image.
    fn jpeg(seq: u32) -> VideoFrame {
        VideoFrame {
            seq,
            timestamp_us: 0,
            keyframe: true,
            data: Bytes::from_static(b"\xFF\xD8jpeg\xFF\xD9"),
        }
    }

    fn error_code(out: &[Outgoing]) -> Option<ErrorCode> {
        match out {
            [Outgoing { frame, .. }] => match &frame.message {
                Message::Error(e) => Some(e.code),
                _ => None,
            },
            _ => None,
        }
    }

    #[test]
    fn a_publisher_given_its_own_cap_may_hold_that_many_streams_until_it_leaves() {
        let mut r = MediaRelay::with_config(
            MediaConfig {
                max_streams_per_client: 1,
                ..MediaConfig::default()
            },
            None,
        );
        let mut out = Vec::new();
        let named = |name: &str| AudioAnnounce {
            name: name.into(),
            ..mic()
        };
        r.set_stream_cap(PUB, 3);
        for (stream, name) in [(1, "one"), (3, "two"), (5, "three")] {
            r.handle(PUB, "ada", stream, named(name).into(), now(), &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(
            r.published_by(PUB),
            vec![(1, false), (3, false), (5, false)]
        );
        let id = r.relay_id(PUB, 3).unwrap();
        assert!(
            matches!(r.announcement_of(PUB, 3), Some(Announcement::Audio(a)) if a.name == "two")
        );
        r.handle(A, "bob", id, AudioSubscribe.into(), now(), &mut out);
        assert_eq!(r.published_by(PUB)[1], (3, true));
        r.handle(PUB, "ada", 7, named("four").into(), now(), &mut out);
        assert_eq!(error_code(&out), Some(ErrorCode::RATE_LIMITED));
        // Its cap goes with it.
        r.disconnect(PUB, &mut out);
        out.clear();
        r.handle(PUB, "ada", 1, named("one").into(), now(), &mut out);
        r.handle(PUB, "ada", 3, named("two").into(), now(), &mut out);
        assert_eq!(error_code(&out), Some(ErrorCode::RATE_LIMITED));
    }

    #[test]
    fn streams_are_capped_per_client_and_in_all_and_released_on_leaving() {
        let mut r = MediaRelay::with_config(
            MediaConfig {
                max_streams_per_client: 2,
                max_streams: 3,
                max_name_len: 8,
                ..MediaConfig::default()
            },
            None,
        );
        let mut out = Vec::new();
        r.connect(A, &mut out);
        out.clear();
        let named = |name: &str| AudioAnnounce {
            name: name.into(),
            ..mic()
        };
        // Names: too long, or with control characters, are refused before
        // anyone hears of them.
        for bad in [
            "123456789",
            "a\x1b[2Jb",
            "a\nb",
            "a\u{202e}b",
            "a\u{200b}b",
            "a\u{2028}b",
        ] {
            r.handle(PUB, "ada", 1, named(bad).into(), now(), &mut out);
            assert_eq!(error_code(&out), Some(ErrorCode::INVALID_NAME), "{bad:?}");
            out.clear();
        }
        r.handle(PUB, "ada", 1, named("12345678").into(), now(), &mut out);
        r.handle(PUB, "ada", 3, named("two").into(), now(), &mut out);
        out.clear();
        // A third stream from the same client is refused; A is not told.
        r.handle(PUB, "ada", 5, named("three").into(), now(), &mut out);
        assert_eq!(error_code(&out), Some(ErrorCode::RATE_LIMITED));
        out.clear();
        // Re-announcing (renaming) one of its own is not a new stream.
        r.handle(PUB, "ada", 3, named("deux").into(), now(), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        out.clear();
        // The server-wide cap.
        r.handle(B, "bob", 1, named("b1").into(), now(), &mut out);
        out.clear();
        r.handle(B, "bob", 3, named("b2").into(), now(), &mut out);
        assert_eq!(error_code(&out), Some(ErrorCode::SERVER_FULL));
        out.clear();
        // Leaving releases the publisher's streams (and their slots).
        r.disconnect(PUB, &mut out);
        assert_eq!(r.streams().len(), 1);
        out.clear();
        r.handle(B, "bob", 3, named("b2").into(), now(), &mut out);
        assert!(
            matches!(&out[..], [Outgoing { to: A, frame }] if matches!(frame.message, Message::AudioAnnounce(_)))
        );
    }

    #[test]
    fn an_unchanged_announcement_is_not_broadcast_again() {
        let mut r = MediaRelay::default();
        let mut out = Vec::new();
        r.connect(A, &mut out);
        r.handle(PUB, "ada", 1, mic().into(), now(), &mut out);
        out.clear();
        r.handle(PUB, "ada", 1, mic().into(), now(), &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn the_tap_hears_a_stream_end_when_it_ends_is_renamed_or_its_publisher_leaves() {
        let ended = Arc::new(std::sync::Mutex::new(Vec::new()));
        let e2 = ended.clone();
        let tap = VideoTap::new(move |event| {
            if let TapEvent::Ended(a) = event {
                e2.lock().unwrap().push(a.name.clone());
            }
        });
        let mut r = MediaRelay::new(Some(tap));
        let mut out = Vec::new();
        r.handle(PUB, "ada", 1, cam("door").into(), now(), &mut out);
        r.handle(PUB, "ada", 1, jpeg(1).into(), now(), &mut out);
        // Renamed: the old name ends.
        r.handle(PUB, "ada", 1, cam("gate").into(), now(), &mut out);
        assert_eq!(*ended.lock().unwrap(), ["door"]);
        // Ended by its publisher.
        r.handle(PUB, "ada", 1, VideoEnd.into(), now(), &mut out);
        assert_eq!(*ended.lock().unwrap(), ["door", "gate"]);
        // Ended by its publisher leaving.
        r.handle(PUB, "ada", 3, cam("yard").into(), now(), &mut out);
        r.disconnect(PUB, &mut out);
        assert_eq!(*ended.lock().unwrap(), ["door", "gate", "yard"]);
    }

    /// Attack finding 1 (issue 13): connections from one address took every
    /// stream slot of the server. One address now holds at most
    /// `max_streams_per_address`; another address, and another server's
    /// streams, are not held back by it.
    #[test]
    fn streams_are_capped_per_address_and_other_addresses_still_publish() {
        let mut r = MediaRelay::with_config(
            MediaConfig {
                max_streams_per_client: 2,
                max_streams_per_address: 3,
                max_streams: 10,
                ..MediaConfig::default()
            },
            None,
        );
        let mut out = Vec::new();
        r.connect(A, &mut out);
        let named = |name: &str| AudioAnnounce {
            name: name.into(),
            ..mic()
        };
        let (eve, eve2, eve3, honest) = (ConnId(10), ConnId(11), ConnId(12), ConnId(13));
        for c in [eve, eve2, eve3] {
            r.set_peer(c, [10, 0, 0, 66].into());
        }
        r.set_peer(honest, [10, 0, 0, 1].into());
        // Another server's streams, relayed under one connection id: not
        // from a peer address, so they count against none (even were the
        // id given one).
        let remote = ConnId(1000);
        r.set_stream_cap(remote, 8);
        r.set_peer(remote, [10, 0, 0, 66].into());
        for (stream, name) in [(1, "r1"), (3, "r2"), (5, "r3"), (7, "r4")] {
            r.handle(remote, "", stream, named(name).into(), now(), &mut out);
        }
        for (c, stream, name) in [(eve, 1, "e1"), (eve, 3, "e2"), (eve2, 1, "e3")] {
            r.handle(c, "eve", stream, named(name).into(), now(), &mut out);
        }
        assert!(
            !out.iter()
                .any(|o| matches!(o.frame.message, Message::Error(_))),
            "{out:?}"
        );
        assert_eq!(r.streams().len(), 7);
        // A fourth stream of the address, from any of its connections
        // (each still under its own cap), is refused to that publisher only.
        for (c, stream) in [(eve2, 3), (eve3, 1)] {
            out.clear();
            r.handle(c, "eve", stream, named("e4").into(), now(), &mut out);
            match &out[..] {
                [Outgoing { to, frame }] if *to == c => match &frame.message {
                    Message::Error(e) => {
                        assert_eq!(e.code, ErrorCode::RATE_LIMITED);
                        assert!(e.message.contains("your address"), "{}", e.message);
                    }
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            }
        }
        // Another address still gets its stream, told to everyone.
        out.clear();
        r.handle(honest, "ada", 1, named("cam").into(), now(), &mut out);
        assert!(
            matches!(&out[..], [Outgoing { to: A, frame }] if matches!(frame.message, Message::AudioAnnounce(_))),
            "{out:?}"
        );
        // Renaming one of the address's own streams is not a new one; a
        // connection leaving frees its slots for the address.
        out.clear();
        r.handle(eve2, "eve", 1, named("e3b").into(), now(), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        r.disconnect(eve, &mut out);
        out.clear();
        r.handle(eve3, "eve", 1, named("e4").into(), now(), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(error_code(&out), None);
    }

    /// Every new or renamed stream is broadcast to every media client:
    /// renames are rate-limited per connection and per address, and a
    /// refused one tells nobody but the publisher.
    #[test]
    fn renames_are_rate_limited_per_connection_and_per_address() {
        let mut r = MediaRelay::with_config(
            MediaConfig {
                announce_rate: Rate {
                    burst: 3,
                    per_second: 1.0,
                },
                address_announce_rate: Rate {
                    burst: 5,
                    per_second: 2.0,
                },
                ..MediaConfig::default()
            },
            None,
        );
        let t0 = Instant::now();
        let mut out = Vec::new();
        r.connect(A, &mut out);
        let (eve, eve2, honest) = (ConnId(10), ConnId(11), ConnId(12));
        r.set_peer(eve, [127, 0, 0, 2].into());
        r.set_peer(eve2, [127, 0, 0, 2].into());
        r.set_peer(honest, [127, 0, 0, 1].into());
        let named = |name: String| AudioAnnounce { name, ..mic() };
        let mut heard = 0;
        let mut refused = Vec::new();
        // One connection renames its stream 100 times at once.
        for i in 0..100 {
            out.clear();
            r.handle(eve, "eve", 1, named(format!("n{i}")).into(), t0, &mut out);
            heard += out.iter().filter(|o| o.to == A).count();
            if let Some(Message::Error(e)) = out.first().map(|o| &o.frame.message) {
                assert_eq!(e.code, ErrorCode::RATE_LIMITED);
                assert_eq!(out.len(), 1, "a refusal goes to the publisher only");
                refused.push(e.message.clone());
            }
        }
        assert_eq!(heard, 3, "the connection's burst, no more");
        assert!(refused[0].contains("from this connection"), "{refused:?}");
        // A second connection of the same address gets the address's rest.
        let mut by_address = 0;
        for i in 0..100 {
            out.clear();
            r.handle(eve2, "eve2", 1, named(format!("m{i}")).into(), t0, &mut out);
            heard += out.iter().filter(|o| o.to == A).count();
            by_address += out
                .iter()
                .filter(|o| matches!(&o.frame.message, Message::Error(e) if e.message.contains("from your address")))
                .count();
        }
        assert_eq!(heard, 5, "the address's burst, no more");
        assert_eq!(by_address, 1, "then its own bucket runs dry");
        // Another address is not affected.
        out.clear();
        r.handle(
            honest,
            "ada",
            1,
            named("honest".into()).into(),
            t0,
            &mut out,
        );
        assert!(out
            .iter()
            .any(|o| o.to == A && matches!(o.frame.message, Message::AudioAnnounce(_))));
        // Tokens come back with time.
        out.clear();
        let later = t0 + std::time::Duration::from_secs(1);
        r.handle(
            eve2,
            "eve2",
            1,
            named("later".into()).into(),
            later,
            &mut out,
        );
        assert!(out.iter().any(|o| o.to == A), "{out:?}");
        // The server's own streams are never limited.
        for i in 0..50 {
            out.clear();
            r.handle(
                LOCAL,
                "server",
                1,
                named(format!("s{i}")).into(),
                t0,
                &mut out,
            );
            assert!(out.iter().any(|o| o.to == A), "{out:?}");
        }
    }
}
