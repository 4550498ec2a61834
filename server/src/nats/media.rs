//! Media across servers: frames cross NATS only where someone wants them.
//!
//! Each server lists its streams in its presence value (see
//! `presence.rs`); the hub shows other servers' streams as streams of a
//! publisher of their own. While a remote stream has a local subscriber,
//! the viewing server renews a **lease** on
//! `lanlink.media.<origin>.want.<its own id>` every [`LEASE_EVERY`] (the streams it
//! wants from that origin, all at once) and subscribes to
//! `lanlink.media.<origin>.<stream>`. The origin publishes a stream's
//! frames only while some lease on it is fresh ([`LEASE_FOR`]), so with no
//! viewer nothing crosses. Frames are core NATS messages, never stored.
//!
//! All of it runs on a second NATS connection of its own, so a
//! slow-consumer cut (the NATS server drops a connection that does not
//! keep up) drops media, never chat; its subscriptions hold at most
//! [`SUBSCRIPTION_FRAMES`] frames each (beyond, the client drops them).
//! The hub hands frames over through a bounded queue that drops the
//! oldest ([`FRAMES_OUT`]), and takes what arrives from a channel of its
//! own that drops when full ([`FRAMES_IN`]), apart from chat's.
//!
//! A frame is the lanlink wire encoding of a `VideoFrame` or
//! `AudioPacket` on the origin's server-wide stream id; a receiver decodes
//! it with the same bounded decoder as a peer's bytes and checks that it
//! is media on the stream of its subject. A frame larger than the NATS
//! server takes in one message (`max_payload`, 1 MB by default: a large
//! JPEG) crosses in parts, each `[u32 frame number][u16 part][u16 parts]`
//! then its bytes ([`split`], [`Joiner`]); a frame that loses a part is
//! dropped whole. See docs/SCALE-OUT.md.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use futures_util::StreamExt;
use lanlink_proto::{FrameDecoder, Message, StreamId};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::files::{self, file_subject, InFile, OutFile};
use super::{guard, valid_server_id, NatsEvent, MAX_ORIGINS};

/// The subject prefix of media: `lanlink.media.<origin>.want.<viewing
/// server>` for leases,
/// `lanlink.media.<origin>.<stream id>` for a stream's frames.
pub const MEDIA_SUBJECTS: &str = "lanlink.media";

/// How often a viewing server renews its lease on an origin's streams.
pub const LEASE_EVERY: Duration = Duration::from_secs(2);

/// How long a lease lasts: an origin stops publishing a stream this long
/// after the last renewal that wanted it (a viewing server that drops a
/// stream says so at once with a renewal without it).
pub const LEASE_FOR: Duration = Duration::from_secs(6);

/// Frames the hub may hand over before the NATS side takes them; beyond,
/// the oldest is dropped.
pub const FRAMES_OUT: usize = 64;

/// Frames from other servers waiting for the hub; beyond, new ones are
/// dropped.
pub const FRAMES_IN: usize = 256;

/// Frames one media subscription holds before the client drops them.
pub const SUBSCRIPTION_FRAMES: usize = 64;

/// Bytes before each part of a frame: frame number, part, parts.
const PART_HEAD: usize = 8;

/// Room left in a NATS message for the subject and headers the client
/// adds, below the server's `max_payload`.
const NATS_SLACK: usize = 1024;

/// The messages that carry `frame` (its wire encoding) as frame number
/// `number`, none longer than `most` bytes (at least 1 KiB is used).
pub(super) fn split(number: u32, frame: &Bytes, most: usize) -> Vec<Bytes> {
    let room = most.saturating_sub(PART_HEAD).max(1024);
    let count = frame.len().div_ceil(room).max(1);
    let Ok(count16) = u16::try_from(count) else {
        return Vec::new();
    };
    (0..count16)
        .map(|i| {
            let start = usize::from(i) * room;
            let piece = frame
                .get(start..(start + room).min(frame.len()))
                .unwrap_or_default();
            let mut body = Vec::with_capacity(PART_HEAD + piece.len());
            body.extend_from_slice(&number.to_be_bytes());
            body.extend_from_slice(&i.to_be_bytes());
            body.extend_from_slice(&count16.to_be_bytes());
            body.extend_from_slice(piece);
            Bytes::from(body)
        })
        .collect()
}

/// Puts one stream's frames back together from their parts, which NATS
/// delivers in order from one publisher. A part out of turn (one was
/// lost) drops the frame it belongs to; nothing grows past `max` bytes.
pub(super) struct Joiner {
    number: u32,
    next: u16,
    count: u16,
    buf: Vec<u8>,
    max: usize,
}

impl Joiner {
    pub(super) fn new(max: usize) -> Joiner {
        Joiner {
            number: 0,
            next: 0,
            count: 0,
            buf: Vec::new(),
            max,
        }
    }

    /// Bytes of a frame in parts it holds now.
    pub(super) fn held(&self) -> usize {
        self.buf.len()
    }

    /// Takes one message; returns a whole frame's bytes once its last part
    /// is in.
    pub(super) fn push(&mut self, body: &[u8]) -> Option<Vec<u8>> {
        let head = body.get(..PART_HEAD)?;
        let number = u32::from_be_bytes(head.get(..4)?.try_into().ok()?);
        let index = u16::from_be_bytes(head.get(4..6)?.try_into().ok()?);
        let count = u16::from_be_bytes(head.get(6..8)?.try_into().ok()?);
        let piece = body.get(PART_HEAD..)?;
        if index == 0 {
            self.number = number;
            self.count = count;
            self.next = 0;
            self.buf.clear();
        }
        let in_turn = number == self.number && index == self.next && count == self.count;
        if !in_turn || index >= count || self.buf.len() + piece.len() > self.max {
            self.next = 0;
            self.count = 0;
            self.buf = Vec::new();
            return None;
        }
        self.buf.extend_from_slice(piece);
        self.next += 1;
        if self.next < self.count {
            return None;
        }
        self.count = 0;
        self.next = 0;
        Some(std::mem::take(&mut self.buf))
    }
}

/// The largest lease taken, in bytes, and the most streams in one.
const MAX_LEASE_BYTES: usize = 16 * 1024;
const MAX_LEASE_STREAMS: usize = 256;

/// What this server wants from others: origin server id → that origin's
/// server-wide stream ids.
pub type Wants = BTreeMap<String, BTreeSet<StreamId>>;

/// A frame of a local stream, encoded, for the servers that want it.
#[derive(Debug, Clone)]
pub struct OutFrame {
    /// This server's server-wide stream id.
    pub stream: StreamId,
    /// The frame's wire encoding.
    pub bytes: Bytes,
}

/// A frame of another server's stream, decoded and checked.
#[derive(Debug, Clone)]
pub struct InFrame {
    /// The origin server's id.
    pub server: String,
    /// The origin's server-wide stream id.
    pub stream: StreamId,
    /// A `VideoFrame` or an `AudioPacket`.
    pub message: Message,
}

/// The media task's ends of its channels.
pub(super) struct MediaLink {
    pub frames: Receiver<OutFrame>,
    pub wake: Arc<Notify>,
    pub wants: watch::Receiver<Wants>,
    pub incoming: Sender<InFrame>,
    pub events: Sender<NatsEvent>,
    pub max_payload: u32,
    /// File frames for other servers (`files.rs`), woken by `wake` too.
    pub files_out: Receiver<OutFile>,
    /// File frames from other servers, for the hub.
    pub files_in: Sender<InFile>,
}

/// The subject of a stream's frames.
pub fn frame_subject(origin: &str, stream: StreamId) -> String {
    format!("{MEDIA_SUBJECTS}.{origin}.{stream}")
}

/// The subject of `viewer`'s leases on `origin`'s streams.
pub fn lease_subject(origin: &str, viewer: &str) -> String {
    format!("{MEDIA_SUBJECTS}.{origin}.want.{viewer}")
}

/// A lease's body: who wants which streams.
pub(super) fn encode_lease(own: &str, streams: &BTreeSet<StreamId>) -> Bytes {
    json!({ "server": own, "streams": streams })
        .to_string()
        .into()
}

/// A lease from another server that came on `subject`: (its id, the
/// streams it wants), or `None` if malformed, too big, from this server,
/// or not on its sender's subject.
pub(super) fn decode_lease(
    own: &str,
    subject: &str,
    body: &[u8],
) -> Option<(String, BTreeSet<StreamId>)> {
    if body.len() > MAX_LEASE_BYTES {
        return None;
    }
    let body: Value = serde_json::from_slice(body).ok()?;
    let server = body.get("server")?.as_str()?;
    if !valid_server_id(server) || server == own || subject != lease_subject(own, server) {
        return None;
    }
    let streams = body.get("streams")?.as_array()?;
    if streams.len() > MAX_LEASE_STREAMS {
        return None;
    }
    let streams = streams
        .iter()
        .map(|s| s.as_u64().and_then(|s| StreamId::try_from(s).ok()))
        .collect::<Option<BTreeSet<StreamId>>>()?;
    Some((server.to_owned(), streams))
}

/// A frame from `origin`'s subject for `stream`: decoded with a decoder
/// bounded at `max_payload` (as a peer's bytes are), and only a media
/// frame of that stream.
pub(super) fn decode_frame(
    origin: &str,
    stream: StreamId,
    body: &[u8],
    max_payload: u32,
) -> Option<InFrame> {
    let mut decoder = FrameDecoder::with_max_payload(max_payload);
    decoder.push(body);
    let frame = decoder.decode().ok()??;
    if frame.stream != stream || decoder.buffered() != 0 {
        return None;
    }
    match frame.message {
        message @ (Message::VideoFrame(_) | Message::AudioPacket(_)) => Some(InFrame {
            server: origin.to_owned(),
            stream,
            message,
        }),
        _ => None,
    }
}

/// Fresh leases from other servers: who wants which of this server's
/// streams, until when.
#[derive(Default)]
pub(super) struct Leases {
    by_server: HashMap<String, (Instant, BTreeSet<StreamId>)>,
}

impl Leases {
    /// Takes a renewal (it replaces that server's lease); a new server
    /// beyond [`MAX_ORIGINS`] is ignored.
    pub fn renew(&mut self, server: String, streams: BTreeSet<StreamId>, now: Instant) {
        if self.by_server.len() >= MAX_ORIGINS && !self.by_server.contains_key(&server) {
            return;
        }
        if streams.is_empty() {
            self.by_server.remove(&server);
        } else {
            self.by_server.insert(server, (now + LEASE_FOR, streams));
        }
    }

    /// Forgets the leases run out by `now`.
    pub fn expire(&mut self, now: Instant) {
        self.by_server.retain(|_, (until, _)| *until > now);
    }

    /// Every stream some server wants.
    pub fn wanted(&self) -> BTreeSet<StreamId> {
        self.by_server
            .values()
            .flat_map(|(_, s)| s.iter().copied())
            .collect()
    }
}

/// The media side: a connection of its own, leases both ways, frames out
/// of the hub's queue and into the hub's channel. Returns when the hub's
/// side closes.
pub(super) async fn run(
    own: String,
    options: async_nats::ConnectOptions,
    addrs: Vec<async_nats::ServerAddr>,
    link: MediaLink,
) {
    let MediaLink {
        frames,
        wake,
        mut wants,
        incoming,
        events,
        max_payload,
        files_out,
        files_in,
    } = link;
    let client = match options
        .subscription_capacity(SUBSCRIPTION_FRAMES)
        .connect(addrs)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("nats: media: cannot connect: {e}");
            return;
        }
    };
    let mut asked = match client.subscribe(lease_subject(&own, "*")).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("nats: media: cannot subscribe: {e}");
            return;
        }
    };
    let mut files = match client.subscribe(files::file_subjects(&own)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("nats: files: cannot subscribe: {e}");
            return;
        }
    };
    let mut leases = Leases::default();
    let mut exported = BTreeSet::new();
    // Our subscriptions to other servers' streams: a task each, which
    // hands frames to the hub; aborting it unsubscribes.
    let mut following: HashMap<(String, StreamId), tokio::task::JoinHandle<()>> = HashMap::new();
    let mut wanted_before = Wants::new();
    let mut renew = tokio::time::interval(LEASE_EVERY);
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    let (mut sent, mut dropped) = (0u64, 0u64);
    // Numbers the frames sent, so that a receiver tells their parts apart.
    let mut number = 0u32;
    let mut file_number = 0u32;
    let mut file_failures = super::Dropped::default();
    let mut file_parts = files::Parts::new(max_payload);
    let mut broken = files::Broken::default();
    loop {
        tokio::select! {
            () = wake.notified() => {
                // Once per wake, not per frame: the server's limit, as of
                // the connection now.
                let most = client.server_info().max_payload.saturating_sub(NATS_SLACK);
                loop {
                    match frames.try_recv() {
                        Ok(f) => {
                            // The hub's view of the leases may lag ours.
                            if !exported.contains(&f.stream)
                                || client.connection_state()
                                    != async_nats::connection::State::Connected
                            {
                                continue;
                            }
                            number = number.wrapping_add(1);
                            let subject = frame_subject(&own, f.stream);
                            let mut failed = None;
                            for part in split(number, &f.bytes, most) {
                                if let Err(e) = client.publish(subject.clone(), part).await {
                                    failed = Some(e);
                                    break;
                                }
                            }
                            match failed {
                                None => sent += 1,
                                Some(e) => {
                                    dropped += 1;
                                    if dropped.is_power_of_two() {
                                        tracing::warn!(dropped, "nats: media: publish failed: {e}");
                                    }
                                }
                            }
                        }
                        Err(crossbeam_channel::TryRecvError::Empty) => break,
                        Err(crossbeam_channel::TryRecvError::Disconnected) => {
                            tracing::info!(sent, "nats: media: done");
                            return;
                        }
                    }
                }
                while let Ok(f) = files_out.try_recv() {
                    file_number = file_number.wrapping_add(1);
                    let subject = file_subject(&f.to, &own);
                    let mut failed = None;
                    for part in f.parts(&own, file_number, most) {
                        if let Err(e) = client.publish(subject.clone(), part).await {
                            failed = Some(e);
                            break;
                        }
                    }
                    if let Some(e) = failed {
                        // Its transfer cannot finish: the local side is
                        // told at once, not after its timeout.
                        if let Some(failed) = file_failures.one() {
                            tracing::warn!(failed, "nats: files: publish failed: {e}");
                        }
                        broken.tell(f.broken(), &files_in);
                    }
                }
            }
            file = files.next() => {
                let Some(file) = file else { return };
                if guard::delivered_by_jetstream(&file) {
                    continue;
                }
                // The sender is the subject's, which NATS permissions can
                // bind to one NATS user; parts claiming another are dropped.
                let from = super::subject_origin(&file.subject).unwrap_or_default();
                let Some(whole) = file_parts.push(from, &file.payload) else { continue };
                broken.flush(&files_in);
                match files::decode(&own, from, &whole, max_payload) {
                    // Full: the frame is dropped and its transfer breaks,
                    // which the local side is told at once.
                    Some(f) => {
                        if let Err(crossbeam_channel::TrySendError::Full(f)) = files_in.try_send(f) {
                            broken.tell(f.lost(), &files_in);
                        }
                    }
                    None => tracing::debug!("nats: files: malformed file frame dropped"),
                }
            }
            changed = wants.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = wants.borrow_and_update().clone();
                follow(&client, &now, &mut following, &incoming, max_payload).await;
                // Tell at once: origins start (or stop) without waiting
                // for the next renewal.
                for origin in wanted_before.keys().chain(now.keys()) {
                    let streams = now.get(origin).cloned().unwrap_or_default();
                    let _ = client.publish(lease_subject(origin, &own), encode_lease(&own, &streams)).await;
                }
                wanted_before = now;
            }
            _ = renew.tick() => {
                for (origin, streams) in &wanted_before {
                    let _ = client.publish(lease_subject(origin, &own), encode_lease(&own, streams)).await;
                }
            }
            _ = sweep.tick() => {
                broken.flush(&files_in);
                leases.expire(Instant::now());
                exported = tell_wanted(&leases, exported, &events);
            }
            lease = asked.next() => {
                let Some(lease) = lease else { return };
                if guard::delivered_by_jetstream(&lease) {
                    continue;
                }
                match decode_lease(&own, &lease.subject, &lease.payload) {
                    Some((server, streams)) => {
                        leases.renew(server, streams, Instant::now());
                        exported = tell_wanted(&leases, exported, &events);
                    }
                    None => tracing::debug!("nats: media: malformed lease dropped"),
                }
            }
        }
    }
}

/// Tells the hub which of its streams are wanted elsewhere, if that
/// changed; returns the new set.
fn tell_wanted(
    leases: &Leases,
    before: BTreeSet<StreamId>,
    events: &Sender<NatsEvent>,
) -> BTreeSet<StreamId> {
    let now = leases.wanted();
    if now == before {
        return before;
    }
    tracing::info!(streams = ?now, "nats: media: streams wanted by other servers");
    match events.try_send(NatsEvent::MediaWanted {
        streams: now.clone(),
    }) {
        Ok(()) => now,
        // Told again at the next sweep.
        Err(_) => before,
    }
}

/// Subscribes to the streams wanted now and drops the others.
async fn follow(
    client: &async_nats::Client,
    wants: &Wants,
    following: &mut HashMap<(String, StreamId), tokio::task::JoinHandle<()>>,
    incoming: &Sender<InFrame>,
    max_payload: u32,
) {
    following.retain(|(origin, stream), task| {
        let keep = wants.get(origin).is_some_and(|s| s.contains(stream));
        if !keep {
            task.abort();
        }
        keep
    });
    for (origin, streams) in wants {
        for &stream in streams {
            let key = (origin.clone(), stream);
            if following.contains_key(&key) {
                continue;
            }
            let mut sub = match client.subscribe(frame_subject(origin, stream)).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("nats: media: cannot subscribe: {e}");
                    continue;
                }
            };
            let (origin, incoming) = (origin.clone(), incoming.clone());
            let task = tokio::spawn(async move {
                let mut dropped = 0u64;
                // A whole frame's encoding: its payload and a frame header.
                let mut joiner = Joiner::new(max_payload as usize + 64);
                let subject = frame_subject(&origin, stream);
                while let Some(m) = sub.next().await {
                    // A consumer's delivery to this subject keeps the
                    // subject it was stored under: not this stream's.
                    if m.subject.as_str() != subject || guard::delivered_by_jetstream(&m) {
                        continue;
                    }
                    let Some(whole) = joiner.push(&m.payload) else {
                        continue;
                    };
                    let Some(frame) = decode_frame(&origin, stream, &whole, max_payload) else {
                        tracing::debug!(server = %origin, "nats: media: malformed frame dropped");
                        continue;
                    };
                    if incoming.try_send(frame).is_err() {
                        dropped += 1;
                        if dropped.is_power_of_two() {
                            tracing::info!(
                                dropped,
                                "nats: media: the hub is behind, frames dropped"
                            );
                        }
                    }
                }
            });
            following.insert(key, task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanlink_proto::video::{VideoEnd, VideoFrame};
    use lanlink_proto::Frame;

    #[test]
    fn leases_round_trip_and_hostile_ones_are_refused() {
        let streams: BTreeSet<StreamId> = [0x4000_0000, 0x4000_0002].into();
        const ON_C: &str = "lanlink.media.a.want.c";
        let body = encode_lease("c", &streams);
        assert_eq!(decode_lease("a", ON_C, &body), Some(("c".into(), streams)));
        // On the subject of another sender (a server speaking as "c"), or
        // of another origin: refused.
        assert_eq!(decode_lease("a", "lanlink.media.a.want.m", &body), None);
        assert_eq!(decode_lease("a", "lanlink.media.b.want.c", &body), None);
        // Our own, a bad id, wrong types, too many, too big.
        assert_eq!(decode_lease("c", "lanlink.media.c.want.c", &body), None);
        assert_eq!(
            decode_lease("a", ON_C, br#"{"server":"c d","streams":[]}"#),
            None
        );
        assert_eq!(
            decode_lease("a", ON_C, br#"{"server":"c","streams":[-1]}"#),
            None
        );
        assert_eq!(
            decode_lease("a", ON_C, br#"{"server":"c","streams":[4294967296]}"#),
            None
        );
        let many: Vec<u32> = (0..=MAX_LEASE_STREAMS as u32).collect();
        let body = json!({"server": "c", "streams": many}).to_string();
        assert_eq!(decode_lease("a", ON_C, body.as_bytes()), None);
        assert_eq!(
            decode_lease("a", ON_C, &vec![b' '; MAX_LEASE_BYTES + 1]),
            None
        );
    }

    #[test]
    fn leases_run_out_and_an_empty_one_ends_at_once() {
        let t0 = Instant::now();
        let mut leases = Leases::default();
        leases.renew("b".into(), [2].into(), t0);
        leases.renew("c".into(), [4].into(), t0 + Duration::from_secs(3));
        assert_eq!(leases.wanted(), [2, 4].into());
        leases.expire(t0 + LEASE_FOR);
        assert_eq!(leases.wanted(), [4].into());
        leases.renew("c".into(), BTreeSet::new(), t0 + Duration::from_secs(4));
        assert!(leases.wanted().is_empty());
    }

    #[test]
    fn frames_cross_in_parts_and_a_frame_missing_one_is_dropped() {
        let frame = Bytes::from((0..5000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let small = Bytes::from_static(b"tiny");
        let mut j = Joiner::new(10_000);
        // Whole in one message, and in five parts of at most 1 KiB + 8.
        let one = split(1, &small, 1 << 20);
        assert_eq!(one.len(), 1);
        assert_eq!(j.push(&one[0]).as_deref(), Some(&small[..]));
        let parts = split(2, &frame, 100);
        assert_eq!(parts.len(), 5);
        assert!(parts.iter().all(|p| p.len() <= 1024 + PART_HEAD));
        let got: Vec<_> = parts.iter().filter_map(|p| j.push(p)).collect();
        assert_eq!(got, vec![frame.to_vec()]);
        // A lost part drops its frame; the next frame comes through.
        let lost = split(3, &frame, 1024);
        let next = split(4, &frame, 1024);
        let got: Vec<_> = lost
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 2)
            .map(|(_, p)| p)
            .chain(&next)
            .filter_map(|p| j.push(p))
            .collect();
        assert_eq!(got, vec![frame.to_vec()]);
        // Hostile parts: too short, a part beyond the count, more than the
        // limit, a part of another frame in the middle.
        assert_eq!(j.push(b"short"), None);
        let mut beyond = split(5, &small, 1024)[0].to_vec();
        beyond[4..6].copy_from_slice(&3u16.to_be_bytes());
        assert_eq!(j.push(&beyond), None);
        let mut tight = Joiner::new(4000);
        assert!(split(6, &frame, 1024)
            .iter()
            .all(|p| tight.push(p).is_none()));
        let (a, b) = (split(7, &frame, 1024), split(8, &frame, 1024));
        assert_eq!(j.push(&a[0]), None);
        assert_eq!(j.push(&b[1]), None);
        assert_eq!(j.push(&a[1]), None);
        assert_eq!(b.iter().filter_map(|p| j.push(p)).count(), 1);
    }

    #[test]
    fn only_media_of_the_subjects_stream_within_the_limit_is_taken() {
        let frame = |stream, data: &'static [u8]| {
            Frame::new(
                stream,
                VideoFrame {
                    seq: 1,
                    timestamp_us: 2,
                    keyframe: true,
                    data: Bytes::from_static(data),
                },
            )
            .to_bytes()
            .unwrap()
        };
        let good = frame(8, b"\xff\xd8jpeg\xff\xd9");
        let got = decode_frame("a", 8, &good, 1024).unwrap();
        assert_eq!((got.server.as_str(), got.stream), ("a", 8));
        assert!(matches!(got.message, Message::VideoFrame(_)));
        // Another stream's frame, too big a frame, a truncated one, two
        // in one, and a control message are refused.
        assert!(decode_frame("a", 10, &good, 1024).is_none());
        assert!(decode_frame("a", 8, &good, 8).is_none());
        assert!(decode_frame("a", 8, &good[..good.len() - 1], 1024).is_none());
        let two = [good.as_ref(), good.as_ref()].concat();
        assert!(decode_frame("a", 8, &two, 1024).is_none());
        let end = Frame::new(8, VideoEnd).to_bytes().unwrap();
        assert!(decode_frame("a", 8, &end, 1024).is_none());
    }
}
