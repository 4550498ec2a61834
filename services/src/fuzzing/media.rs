//! The `media` fuzz target: a [`MediaRelay`] driven by a script.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use lanlink_proto::Message;
use lanlink_transport::ConnId;

use super::{check_sent, events, Clock, Event, Stats};
use crate::media::{MediaRelay, VideoTap, FIRST_MEDIA_STREAM};

/// Runs a script against a fresh [`MediaRelay`] with a video tap. A connect
/// whose flag bit 0 is set is a media client (`MediaRelay::connect`, as the
/// hub does for clients that ask for audio or video); every connected
/// client's frames go to `MediaRelay::handle` whatever their kind, and
/// frames from a connection that is not connected are dropped, as the hub
/// does. Checks after every event:
///
/// - everything it sends goes to a connected client and encodes;
/// - an announcement sent on a client's behalf names that client as the
///   publisher;
/// - relayed audio and video carry the id of a published stream;
/// - published streams have server ids and distinct names within the
///   length limit, and are no more than the relay's limit;
///
/// and at the end, once everyone has left, that no stream remains.
///
/// # Panics
/// When a check fails.
pub fn run(data: &[u8]) -> Stats {
    let taps = Arc::new(AtomicUsize::new(0));
    let seen = taps.clone();
    let tap = VideoTap::new(move |_| {
        seen.fetch_add(1, Ordering::Relaxed);
    });
    let mut relay = MediaRelay::new(Some(tap));
    let mut connected: BTreeMap<ConnId, String> = BTreeMap::new();
    let mut stats = Stats::default();
    let mut out = Vec::new();
    let mut clock = Clock::default();
    for event in events(data) {
        match event {
            Event::Connect { conn, name, flags } => {
                stats.connects += 1;
                connected.insert(conn, name);
                if flags & 1 == 1 {
                    relay.connect(conn, &mut out);
                }
            }
            Event::Disconnect { conn } => {
                connected.remove(&conn);
                relay.disconnect(conn, &mut out);
            }
            Event::Frame { conn, frame, .. } => {
                let Some(name) = connected.get(&conn) else {
                    continue;
                };
                stats.frames += 1;
                let now = clock.now().instant;
                relay.handle(conn, name, frame.stream, frame.message, now, &mut out);
                check_relayed(&relay, name, &out);
            }
            Event::Tick(by) => clock.advance(by),
        }
        check_sent("media", &out, &connected);
        check_streams(&relay);
        stats.sent += out.len();
        out.clear();
    }
    for conn in std::mem::take(&mut connected).into_keys() {
        relay.disconnect(conn, &mut out);
    }
    assert!(
        relay.streams().is_empty(),
        "streams outlived their publishers"
    );
    stats
}

/// What one client's frame made the relay send.
fn check_relayed(relay: &MediaRelay, sender: &str, out: &[crate::Outgoing]) {
    let live: BTreeSet<_> = relay.streams().into_iter().map(|(id, _)| id).collect();
    for o in out {
        match &o.frame.message {
            Message::AudioAnnounce(a) => assert_eq!(a.publisher, sender),
            Message::VideoAnnounce(v) => assert_eq!(v.publisher, sender),
            Message::AudioPacket(_) | Message::VideoFrame(_) => assert!(
                live.contains(&o.frame.stream),
                "media relayed on stream {}, which is not published",
                o.frame.stream
            ),
            _ => {}
        }
    }
}

fn check_streams(relay: &MediaRelay) {
    let limits = crate::media::MediaConfig::default();
    assert!(relay.streams().len() <= limits.max_streams);
    let mut names = BTreeSet::new();
    for (id, announcement) in relay.streams() {
        assert!(
            id >= FIRST_MEDIA_STREAM,
            "stream id {id} is not a server id"
        );
        let name = match announcement {
            crate::media::Announcement::Audio(a) => a.name,
            crate::media::Announcement::Video(v) => v.name,
        };
        assert!(
            !name.is_empty() && name.len() <= limits.max_name_len,
            "the stream name {name:?} passed"
        );
        assert!(names.insert(name.clone()), "two streams are named {name:?}");
    }
}
