//! Audio for browsers: `GET /audio` upgrades to a WebSocket that carries
//! every talker's Opus packets as the relay forwards them, for the page to
//! decode (WebCodecs) and mix (an `AudioWorklet`).
//!
//! The relay's [`AudioTap`] (from [`AudioListeners::tap`]) runs on the hub
//! thread and only ever queues: each listener has its own bounded queue,
//! and when a listener falls behind its oldest packets are dropped, so a
//! slow browser loses audio for itself and never delays the relay or the
//! other listeners. Packets larger than [`MAX_PACKET`] (no Opus packet is)
//! are not passed on. A stream's start and end are never dropped: a listener
//! that lets [`QUEUED_NOTICES`] of them pile up is disconnected instead
//! (the page reconnects and is told every live stream again).
//!
//! # Messages (server to browser only)
//! - text: `{"type":"start","id":N,"name":…,"publisher":…,"rate":48000,"channels":1,"frame_us":20000}`
//!   when an Opus stream starts (and, on connecting, for every live one);
//!   `{"type":"end","id":N}` when it ends.
//! - binary: a 16-byte header, stream id (u32), sequence number (u32) and
//!   capture time in µs on the publisher's clock (u64), all big-endian,
//!   then the Opus packet.
//!
//! The page sends nothing; whatever a browser sends is read and dropped
//! (bounded per check), and its leaving is noticed within a fraction of a
//! second.
//!
//! # Admission
//! The request must be a WebSocket upgrade whose `Origin` names this very
//! server (`http://` or `https://` and the request's `Host`): another site
//! open in the same browser cannot listen in (cross-site WebSocket
//! hijacking). A missing `Origin` is refused too. The access token's
//! session cookie is required when the server has a token. Listeners are
//! capped ([`AudioListeners::with_max`]); more are answered 503.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lanlink_proto::audio::AudioCodec;
use lanlink_proto::StreamId;
use lanlink_services::media::{AudioTap, AudioTapEvent};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use super::page::json_string;
use super::request::Request;
use super::{respond, Answering, Peer};

/// Most browsers listening at once by default; more are answered 503.
pub const MAX_LISTENERS: usize = 64;

/// Packets one listener may have waiting (all streams together) before its
/// oldest are dropped: a second of one talker in 20 ms packets.
pub const QUEUED_PACKETS: usize = 50;

/// The largest packet passed to browsers, in bytes: an Opus packet of a
/// 20 ms frame is at most 1,275 bytes, and what a publisher sends is not
/// checked. With [`QUEUED_PACKETS`], a listener's queue holds at most
/// 400 KiB.
pub const MAX_PACKET: usize = 8 * 1024;

/// Stream starts and ends one listener may have waiting before it is
/// disconnected (they are never dropped).
pub const QUEUED_NOTICES: usize = 1024;

/// The largest message a browser may send (it has no reason to send any).
const MAX_INCOMING: usize = 4096;

/// The Audio panel's place in the page: a Listen button (browsers play
/// sound only after a gesture), a status line and the list of streams,
/// filled by [`SCRIPT`].
pub(super) const PANEL: &str = "<section id=\"audio\"><h2>Audio</h2>\
    <button type=\"button\" id=\"audio-listen\">Listen</button> <span id=\"audio-status\"></span>\
    <ul id=\"audio-streams\"></ul></section><script src=\"/audio.js\" defer></script>";

/// `/audio.js`: the panel's script (WebSocket, WebCodecs decoding, mute).
pub(super) const SCRIPT: &str = include_str!("assets/audio.js");

/// `/audio-worklet.js`: the mixer with its jitter buffers, an
/// `AudioWorkletProcessor`.
pub(super) const WORKLET: &str = include_str!("assets/audio-worklet.js");

/// Answers the Audio panel's paths (`/audio`, `/audio.js`,
/// `/audio-worklet.js`); `None` for any other path.
pub(super) fn route(
    s: &mut impl Peer,
    request: &Request,
    path: &str,
    cx: &Answering<'_>,
) -> Option<io::Result<()>> {
    let script = |body: &str| {
        if request.method == "GET" {
            (
                "200 OK",
                "text/javascript; charset=utf-8",
                body.as_bytes().to_vec(),
            )
        } else {
            (
                "405 Method Not Allowed",
                "text/plain",
                b"GET only\n".to_vec(),
            )
        }
    };
    let (status, kind, body) = match path {
        "/audio" => return Some(answer_audio(s, request, cx)),
        "/audio.js" => script(SCRIPT),
        "/audio-worklet.js" => script(WORKLET),
        _ => return None,
    };
    Some(respond(s, status, kind, &body))
}

/// What the page needs to know of a stream.
#[derive(Debug)]
struct StreamInfo {
    name: String,
    publisher: String,
    rate: u32,
    channels: u8,
    frame_us: u32,
}

/// One thing waiting to be sent to a listener.
enum Item {
    Start(StreamId, Arc<StreamInfo>),
    End(StreamId),
    Packet {
        id: StreamId,
        seq: u32,
        timestamp_us: u64,
        data: Bytes,
    },
}

/// One listener's queue: filled by the tap, emptied by the listener's
/// connection thread.
#[derive(Default)]
struct Queue {
    items: Mutex<Items>,
    ready: Condvar,
}

#[derive(Default)]
struct Items {
    queue: VecDeque<Item>,
    packets: usize,
    notices: usize,
    /// Too many notices waited: the listener is to be disconnected.
    overflowed: bool,
    /// Packets dropped because the listener fell behind.
    dropped: u64,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Items> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item` without ever waiting for the listener: the oldest
    /// packet makes room for a new one.
    fn push(&self, item: Item) {
        let mut items = self.lock();
        if items.overflowed {
            return;
        }
        if matches!(item, Item::Packet { .. }) {
            if items.packets >= QUEUED_PACKETS {
                if let Some(oldest) = items
                    .queue
                    .iter()
                    .position(|i| matches!(i, Item::Packet { .. }))
                {
                    items.queue.remove(oldest);
                    items.packets -= 1;
                    items.dropped += 1;
                }
            }
            items.packets += 1;
        } else if items.notices >= QUEUED_NOTICES {
            items.overflowed = true;
            items.queue.clear();
            drop(items);
            self.ready.notify_one();
            return;
        } else {
            items.notices += 1;
        }
        items.queue.push_back(item);
        drop(items);
        self.ready.notify_one();
    }
}

#[derive(Default)]
struct State {
    /// The live Opus streams, by the relay's id.
    streams: BTreeMap<StreamId, Arc<StreamInfo>>,
    listeners: Vec<Arc<Queue>>,
}

struct Shared {
    state: Mutex<State>,
    max_listeners: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The browsers listening on `/audio` and the live audio streams, shared
/// by the relay's tap and the HTTP threads.
#[derive(Clone)]
pub struct AudioListeners {
    shared: Arc<Shared>,
}

impl Default for AudioListeners {
    fn default() -> Self {
        AudioListeners::with_max(MAX_LISTENERS)
    }
}

impl std::fmt::Debug for AudioListeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("AudioListeners")
            .field("streams", &state.streams.len())
            .field("listeners", &state.listeners.len())
            .field("max_listeners", &self.shared.max_listeners)
            .finish()
    }
}

impl AudioListeners {
    /// No streams and no listeners yet; at most `max_listeners` at once.
    pub fn with_max(max_listeners: usize) -> AudioListeners {
        AudioListeners {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                max_listeners,
            }),
        }
    }

    /// Browsers listening now.
    pub fn listener_count(&self) -> usize {
        self.shared.lock().listeners.len()
    }

    /// The relay tap that feeds every listener (see `ServerConfig::audio_tap`).
    pub fn tap(&self) -> AudioTap {
        let shared = self.shared.clone();
        AudioTap::new(move |event| {
            let mut state = shared.lock();
            match event {
                AudioTapEvent::Started(id, a) => {
                    // WebCodecs decodes Opus; other codecs are not offered.
                    if a.codec != AudioCodec::OPUS {
                        state.streams.remove(&id);
                        return;
                    }
                    let info = Arc::new(StreamInfo {
                        name: a.name.clone(),
                        publisher: a.publisher.clone(),
                        rate: a.sample_rate,
                        channels: a.channels,
                        frame_us: a.frame_duration_us,
                    });
                    state.streams.insert(id, info.clone());
                    for q in &state.listeners {
                        q.push(Item::Start(id, info.clone()));
                    }
                }
                AudioTapEvent::Packet(id, p) => {
                    if state.listeners.is_empty()
                        || p.data.len() > MAX_PACKET
                        || !state.streams.contains_key(&id)
                    {
                        return;
                    }
                    for q in &state.listeners {
                        q.push(Item::Packet {
                            id,
                            seq: p.seq,
                            timestamp_us: p.timestamp_us,
                            data: p.data.clone(),
                        });
                    }
                }
                AudioTapEvent::Ended(id) => {
                    if state.streams.remove(&id).is_some() {
                        for q in &state.listeners {
                            q.push(Item::End(id));
                        }
                    }
                }
            }
        })
    }

    /// A new listener, told of every live stream first; `None` when the
    /// listeners are at their cap.
    fn listen(&self) -> Option<Listener> {
        let mut state = self.shared.lock();
        if state.listeners.len() >= self.shared.max_listeners {
            return None;
        }
        let queue = Arc::new(Queue::default());
        for (id, info) in &state.streams {
            queue.push(Item::Start(*id, info.clone()));
        }
        state.listeners.push(queue.clone());
        Some(Listener {
            shared: self.shared.clone(),
            queue,
        })
    }
}

/// One listening browser's place; leaves the list when dropped.
struct Listener {
    shared: Arc<Shared>,
    queue: Arc<Queue>,
}

impl Listener {
    /// Everything queued, waiting at most `wait` for something; `None`
    /// once the listener let too many notices pile up.
    fn next(&self, wait: Duration) -> Option<Vec<Item>> {
        let mut items = self.queue.lock();
        if items.queue.is_empty() && !items.overflowed {
            items = self
                .queue
                .ready
                .wait_timeout(items, wait)
                .map_or_else(|e| e.into_inner().0, |(g, _)| g);
        }
        if items.overflowed {
            return None;
        }
        items.packets = 0;
        items.notices = 0;
        Some(items.queue.drain(..).collect())
    }

    fn dropped(&self) -> u64 {
        self.queue.lock().dropped
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.shared
            .lock()
            .listeners
            .retain(|q| !Arc::ptr_eq(q, &self.queue));
    }
}

/// The message that carries `item` to the browser.
fn message(item: Item) -> Message {
    match item {
        Item::Start(id, s) => Message::text(format!(
            "{{\"type\":\"start\",\"id\":{id},\"name\":{},\"publisher\":{},\"rate\":{},\"channels\":{},\"frame_us\":{}}}",
            json_string(&s.name),
            json_string(&s.publisher),
            s.rate,
            s.channels,
            s.frame_us
        )),
        Item::End(id) => Message::text(format!("{{\"type\":\"end\",\"id\":{id}}}")),
        Item::Packet {
            id,
            seq,
            timestamp_us,
            data,
        } => {
            let mut b = Vec::with_capacity(16 + data.len());
            b.extend_from_slice(&id.to_be_bytes());
            b.extend_from_slice(&seq.to_be_bytes());
            b.extend_from_slice(&timestamp_us.to_be_bytes());
            b.extend_from_slice(&data);
            Message::binary(b)
        }
    }
}

/// `GET /audio`: checks the upgrade, the origin and the cap (the session
/// was checked with every route's, in `answer`),
/// then sends every talker until the browser leaves, falls too far behind
/// on notices, or the server stops.
fn answer_audio(s: &mut impl Peer, request: &Request, cx: &Answering<'_>) -> io::Result<()> {
    let Some(key) = super::ws::upgrade_key(request) else {
        return respond(
            s,
            "400 Bad Request",
            "text/plain",
            b"a WebSocket upgrade only\n",
        );
    };
    if !super::ws::origin_allowed(request, cx.secure) {
        return respond(
            s,
            "403 Forbidden",
            "text/plain",
            b"another site's page may not listen\n",
        );
    }
    let Some(listener) = cx.audio.listen() else {
        return respond(
            s,
            "503 Service Unavailable",
            "text/plain",
            b"too many listeners\n",
        );
    };
    super::ws::accept_upgrade(s, key)?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_INCOMING))
        .max_frame_size(Some(MAX_INCOMING))
        .max_write_buffer_size(1 << 20);
    let mut ws =
        WebSocket::from_partially_read(s, request.rest.clone(), Role::Server, Some(config));
    let result = send_until_gone(&mut ws, &listener, cx);
    tracing::debug!(dropped = listener.dropped(), "browser audio listener left");
    result
}

fn send_until_gone<P: Peer>(
    ws: &mut WebSocket<&mut P>,
    listener: &Listener,
    cx: &Answering<'_>,
) -> io::Result<()> {
    let mut checked = Instant::now();
    while !cx.shutdown.is_triggered() {
        let Some(items) = listener.next(cx.check_every) else {
            // Stream notices piled up: start over (the page reconnects).
            let _ = ws.close(None);
            let _ = ws.flush();
            return Ok(());
        };
        if !items.is_empty() {
            for item in items {
                ws.write(message(item)).map_err(io::Error::other)?;
            }
            ws.flush().map_err(io::Error::other)?;
        }
        if checked.elapsed() >= cx.check_every {
            checked = Instant::now();
            if ws.get_mut().left() {
                return Ok(());
            }
        }
    }
    let _ = ws.close(None);
    let _ = ws.flush();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanlink_proto::audio::{AudioAnnounce, AudioPacket};

    fn mic(codec: AudioCodec) -> AudioAnnounce {
        AudioAnnounce {
            name: "mic".into(),
            publisher: "ada".into(),
            codec,
            sample_rate: 48_000,
            channels: 1,
            frame_duration_us: 20_000,
        }
    }

    fn packet(seq: u32) -> AudioPacket {
        AudioPacket {
            seq,
            timestamp_us: 5,
            data: Bytes::from_static(b"opus"),
        }
    }

    fn seqs(items: &[Item]) -> Vec<u32> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Packet { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_slow_listener_loses_its_oldest_packets_but_never_a_notice() {
        let audio = AudioListeners::with_max(2);
        let tap = audio.tap();
        (tap.0)(AudioTapEvent::Started(8, &mic(AudioCodec::OPUS)));
        let l = audio.listen().unwrap();
        let n = QUEUED_PACKETS as u32 + 10;
        for seq in 0..n {
            (tap.0)(AudioTapEvent::Packet(8, &packet(seq)));
        }
        let items = l.next(Duration::ZERO).unwrap();
        assert!(matches!(items[0], Item::Start(8, ref s) if s.name == "mic"));
        assert_eq!(seqs(&items), (10..n).collect::<Vec<_>>());
        assert_eq!(l.dropped(), 10);
        (tap.0)(AudioTapEvent::Ended(8));
        assert!(matches!(
            l.next(Duration::ZERO).unwrap()[..],
            [Item::End(8)]
        ));
        // Unknown and non-Opus streams are not passed on.
        (tap.0)(AudioTapEvent::Started(10, &mic(AudioCodec::PCM_S16LE)));
        (tap.0)(AudioTapEvent::Packet(10, &packet(1)));
        (tap.0)(AudioTapEvent::Packet(12, &packet(1)));
        assert!(l.next(Duration::ZERO).unwrap().is_empty());
        // Nor are packets larger than any Opus packet.
        (tap.0)(AudioTapEvent::Started(14, &mic(AudioCodec::OPUS)));
        let huge = AudioPacket {
            data: Bytes::from(vec![0; MAX_PACKET + 1]),
            ..packet(2)
        };
        (tap.0)(AudioTapEvent::Packet(14, &huge));
        (tap.0)(AudioTapEvent::Packet(14, &packet(3)));
        assert_eq!(seqs(&l.next(Duration::ZERO).unwrap()), vec![3]);
    }

    #[test]
    fn listeners_are_capped_and_leave_on_drop_and_piled_notices_disconnect() {
        let audio = AudioListeners::with_max(1);
        let tap = audio.tap();
        let l = audio.listen().unwrap();
        assert!(audio.listen().is_none());
        for id in 0..QUEUED_NOTICES as u32 / 2 + 1 {
            (tap.0)(AudioTapEvent::Started(id, &mic(AudioCodec::OPUS)));
            (tap.0)(AudioTapEvent::Ended(id));
        }
        assert!(l.next(Duration::ZERO).is_none());
        drop(l);
        assert_eq!(audio.listener_count(), 0);
        assert!(audio.listen().is_some());
    }

    #[test]
    fn messages_and_origins() {
        let start = message(Item::Start(
            4,
            Arc::new(StreamInfo {
                name: "a\"<".into(),
                publisher: "bo".into(),
                rate: 48_000,
                channels: 2,
                frame_us: 20_000,
            }),
        ));
        assert_eq!(
            start.to_text().unwrap(),
            r#"{"type":"start","id":4,"name":"a\"\u003c","publisher":"bo","rate":48000,"channels":2,"frame_us":20000}"#
        );
        let packet = message(Item::Packet {
            id: 4,
            seq: 2,
            timestamp_us: 3,
            data: Bytes::from_static(b"xy"),
        });
        assert_eq!(
            packet.into_data().as_ref(),
            b"\0\0\0\x04\0\0\0\x02\0\0\0\0\0\0\0\x03xy"
        );
    }
}
