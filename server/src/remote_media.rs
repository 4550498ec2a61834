//! Other servers' media streams in this server's relay (scale-out through
//! NATS, see `nats/media.rs` and docs/SCALE-OUT.md).
//!
//! Each other server that lists streams in its presence value becomes a
//! publisher of the local [`MediaRelay`] with a connection id of its own
//! (from [`FIRST_REMOTE_PUBLISHER`] up, far above the transport's ids).
//! Its announcements and frames then pass the relay's own checks as a
//! local peer's do (stream names, their length and characters, kinds, the
//! announcement rate, what a publisher may hold), and the HTTP server's
//! checks on the way to browsers. Remote streams are shown as
//! `name@server`, published by `user@server`, so they never take a local
//! stream's name.
//!
//! Sans-IO like the hub: the hub calls in with the relay, the NATS link
//! and a clock.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use lanlink_proto::audio::AudioAnnounce;
use lanlink_proto::video::{VideoAnnounce, VideoEnd};
use lanlink_proto::{Frame, Message, StreamId};
use lanlink_services::chat::names::check_hello_name;
use lanlink_services::media::{Announcement, MediaRelay};
use lanlink_services::Outgoing;
use lanlink_transport::ConnId;

use crate::http::{AudioListeners, LatestFrames};
use crate::nats::{InFrame, NatsLink, Wants};

/// The connection id of the first other server's streams; the transport
/// counts its connections up from 1 and never gets near.
pub const FIRST_REMOTE_PUBLISHER: u64 = u64::MAX / 2;

/// Streams one other server may have relayed here at once (the relay's
/// `max_streams` still bounds them all).
pub const STREAMS_PER_SERVER: usize = 64;

/// The most other servers whose streams are relayed at once.
const MAX_SERVERS: usize = 1024;

/// Other servers as publishers of the local relay, and which local
/// streams other servers want.
pub(crate) struct RemoteMedia {
    publishers: HashMap<String, ConnId>,
    next: u64,
    /// Local streams (server-wide ids) some other server holds a lease on.
    exported: BTreeSet<StreamId>,
    /// The longest user name accepted (the chat's).
    max_name_len: usize,
    /// What browsers here watch and listen to.
    browsers: Browsers,
}

/// The browser server's side of what is watched here.
#[derive(Default)]
pub(crate) struct Browsers {
    /// The frame store: which video streams have an MJPEG viewer.
    pub frames: Option<LatestFrames>,
    /// The `/audio` listeners: each hears every audio stream.
    pub audio: Option<AudioListeners>,
}

impl RemoteMedia {
    pub fn new(max_name_len: usize, browsers: Browsers) -> RemoteMedia {
        RemoteMedia {
            publishers: HashMap::new(),
            next: FIRST_REMOTE_PUBLISHER,
            exported: BTreeSet::new(),
            max_name_len,
            browsers,
        }
    }

    fn is_remote(conn: ConnId) -> bool {
        conn.0 >= FIRST_REMOTE_PUBLISHER
    }

    /// `server`'s streams are now `streams` (from its presence value):
    /// new and changed ones are announced here, missing ones end.
    pub fn set_streams(
        &mut self,
        relay: &mut MediaRelay,
        server: &str,
        streams: Vec<(StreamId, Message)>,
        now: Instant,
        out: &mut Vec<Outgoing>,
    ) {
        let conn = match self.publishers.get(server) {
            Some(conn) => *conn,
            None if streams.is_empty() || self.publishers.len() >= MAX_SERVERS => return,
            None => {
                let conn = ConnId(self.next);
                self.next += 1;
                self.publishers.insert(server.to_owned(), conn);
                relay.set_stream_cap(conn, STREAMS_PER_SERVER);
                conn
            }
        };
        let mut said = Vec::new();
        let listed: BTreeSet<StreamId> = streams.iter().map(|(id, _)| *id).collect();
        for (id, _) in relay.published_by(conn) {
            if !listed.contains(&id) {
                relay.handle(conn, "", id, VideoEnd.into(), now, &mut said);
            }
        }
        for (id, message) in streams {
            let (announcement, publisher) = match message {
                Message::VideoAnnounce(v) => {
                    let publisher = format!("{}@{server}", v.publisher);
                    let v = VideoAnnounce {
                        name: format!("{}@{server}", v.name),
                        publisher: publisher.clone(),
                        ..v
                    };
                    (Announcement::Video(v), publisher)
                }
                Message::AudioAnnounce(a) => {
                    let publisher = format!("{}@{server}", a.publisher);
                    let a = AudioAnnounce {
                        name: format!("{}@{server}", a.name),
                        publisher: publisher.clone(),
                        ..a
                    };
                    (Announcement::Audio(a), publisher)
                }
                _ => continue,
            };
            // The user part by the rules for a local publisher's name.
            let user = publisher.rsplit_once('@').map_or("", |(u, _)| u);
            if let Err(e) = check_hello_name(user, self.max_name_len) {
                tracing::warn!(server = %server, "nats: remote stream refused: {e}");
                continue;
            }
            // Unchanged: nothing to do (an announcement costs a token).
            if relay.announcement_of(conn, id) == Some(&announcement) {
                continue;
            }
            relay.handle(conn, &publisher, id, announcement.message(), now, &mut said);
        }
        self.keep_for_clients(conn, server, said, out);
    }

    /// `server` is gone: its streams end here.
    pub fn server_gone(&mut self, relay: &mut MediaRelay, server: &str, out: &mut Vec<Outgoing>) {
        if let Some(conn) = self.publishers.remove(server) {
            relay.disconnect(conn, out);
        }
    }

    /// A frame of another server's stream: relayed to its subscribers here
    /// (and the taps) as a local publisher's would be.
    pub fn frame(
        &mut self,
        relay: &mut MediaRelay,
        frame: InFrame,
        now: Instant,
        out: &mut Vec<Outgoing>,
    ) {
        let Some(&conn) = self.publishers.get(&frame.server) else {
            return;
        };
        let mut said = Vec::new();
        relay.handle(conn, "", frame.stream, frame.message, now, &mut said);
        self.keep_for_clients(conn, &frame.server, said, out);
    }

    /// Moves what the relay said into `out`, but for what it said to the
    /// other server's pseudo-connection (its refusals), which is logged.
    fn keep_for_clients(
        &self,
        conn: ConnId,
        server: &str,
        said: Vec<Outgoing>,
        out: &mut Vec<Outgoing>,
    ) {
        for o in said {
            if o.to == conn {
                if let Message::Error(e) = &o.frame.message {
                    tracing::warn!(server = %server, "nats: remote stream refused: {}",
                        lanlink_services::text::display_safe(&e.message));
                }
            } else {
                out.push(o);
            }
        }
    }

    /// The local streams other servers want now.
    pub fn set_exported(&mut self, streams: BTreeSet<StreamId>) {
        self.exported = streams;
    }

    /// Before the relay takes `message` from local publisher `conn` on its
    /// stream `stream`: hands a copy to NATS if another server wants it.
    pub fn export(
        &self,
        relay: &MediaRelay,
        link: &mut NatsLink,
        conn: ConnId,
        stream: StreamId,
        message: &Message,
    ) {
        if self.exported.is_empty() || Self::is_remote(conn) {
            return;
        }
        let video = match message {
            Message::VideoFrame(_) => true,
            Message::AudioPacket(_) => false,
            _ => return,
        };
        let Some(id) = relay.relay_id(conn, stream) else {
            return;
        };
        let kind_matches = matches!(
            (relay.announcement_of(conn, stream), video),
            (Some(Announcement::Video(_)), true) | (Some(Announcement::Audio(_)), false)
        );
        if kind_matches && self.exported.contains(&id) {
            link.publish_media(&Frame {
                stream: id,
                message: message.clone(),
            });
        }
    }

    /// Every tick: tells the link which remote streams have a subscriber
    /// here (it leases and follows those) and which local streams this
    /// server has (for its presence value).
    pub fn tick(&self, relay: &MediaRelay, link: &NatsLink) {
        self.update_wants(relay, link);
        let ads = relay
            .streams_with_publishers()
            .into_iter()
            .filter(|(_, conn, _)| !Self::is_remote(*conn))
            .filter_map(|(id, _, a)| Frame::new(id, a.message()).to_bytes().ok().map(|b| (id, b)))
            .collect();
        link.set_streams(ads);
    }

    /// Tells the link which remote streams have a subscriber here or a
    /// browser viewer (also right after a subscription changes, so that a
    /// new viewer's lease need not wait for the tick).
    pub fn update_wants(&self, relay: &MediaRelay, link: &NatsLink) {
        link.want_media(self.wants(relay));
    }

    /// The remote streams watched here, by their server.
    fn wants(&self, relay: &MediaRelay) -> Wants {
        let in_browsers = self
            .browsers
            .frames
            .as_ref()
            .map(LatestFrames::watched)
            .unwrap_or_default();
        let listening = self
            .browsers
            .audio
            .as_ref()
            .is_some_and(|a| a.listener_count() > 0);
        let by_browsers: BTreeSet<StreamId> = if in_browsers.is_empty() && !listening {
            BTreeSet::new()
        } else {
            relay
                .streams_with_publishers()
                .into_iter()
                .filter(|(_, conn, a)| {
                    Self::is_remote(*conn)
                        && match a {
                            Announcement::Video(v) => in_browsers.contains(&v.name),
                            Announcement::Audio(_) => listening,
                        }
                })
                .map(|(id, _, _)| id)
                .collect()
        };
        let mut wants = Wants::new();
        for (server, conn) in &self.publishers {
            let ids: BTreeSet<StreamId> = relay
                .published_by(*conn)
                .into_iter()
                .filter(|(id, watched)| *watched || by_browsers.contains(id))
                .map(|(id, _)| id)
                .collect();
            if !ids.is_empty() {
                wants.insert(server.clone(), ids);
            }
        }
        wants
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use lanlink_proto::video::{VideoCodec, VideoFrame, VideoSubscribe};

    fn cam(name: &str, publisher: &str) -> Message {
        VideoAnnounce {
            name: name.into(),
            publisher: publisher.into(),
            codec: VideoCodec::MJPEG,
            width: 320,
            height: 240,
            fps_milli: 30_000,
        }
        .into()
    }

    fn frame(seq: u32) -> Message {
        VideoFrame {
            seq,
            timestamp_us: 0,
            keyframe: true,
            data: Bytes::from_static(b"\xff\xd8\xff\xd9"),
        }
        .into()
    }

    #[test]
    fn remote_streams_are_named_for_their_server_checked_and_end_when_unlisted() {
        let (mut relay, mut remote, now) = (
            MediaRelay::default(),
            RemoteMedia::new(32, Browsers::default()),
            Instant::now(),
        );
        let viewer = ConnId(7);
        let mut out = Vec::new();
        relay.connect(viewer, &mut out);
        let streams = vec![
            (8, cam("door", "ada")),
            // A publisher name no local user could have, and a stream
            // name with a control character: left out.
            (10, cam("yard", "a da")),
            (12, cam("x\u{7}", "ada")),
        ];
        remote.set_streams(&mut relay, "a", streams.clone(), now, &mut out);
        let shown: Vec<_> = relay.streams().into_iter().map(|(_, a)| a).collect();
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert!(matches!(&shown[0], Announcement::Video(v)
            if v.name == "door@a" && v.publisher == "ada@a"));
        // Nothing went to the server's pseudo-connection.
        assert!(out.iter().all(|o| o.to == viewer), "{out:?}");
        // Listed again unchanged: nothing new is announced.
        out.clear();
        remote.set_streams(&mut relay, "a", streams, now, &mut out);
        assert!(out.is_empty(), "{out:?}");

        // Frames reach a subscriber only; the link is then told it is wanted.
        let (id, _) = relay.streams()[0].clone();
        relay.handle(viewer, "v", id, VideoSubscribe.into(), now, &mut out);
        out.clear();
        remote.frame(
            &mut relay,
            InFrame {
                server: "a".into(),
                stream: 8,
                message: frame(1),
            },
            now,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].to, out[0].frame.stream), (viewer, id));
        // From an unknown server, or on a stream never listed: dropped.
        out.clear();
        for (server, stream) in [("z", 8), ("a", 14)] {
            let f = InFrame {
                server: server.into(),
                stream,
                message: frame(2),
            };
            remote.frame(&mut relay, f, now, &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
        let conn = remote.publishers["a"];
        assert_eq!(relay.published_by(conn), vec![(8, true)]);

        // Unlisted: it ends for everyone; the server gone: nothing left.
        remote.set_streams(&mut relay, "a", Vec::new(), now, &mut out);
        assert!(relay.streams().is_empty());
        remote.server_gone(&mut relay, "a", &mut out);
        assert!(remote.publishers.is_empty());
    }
}
