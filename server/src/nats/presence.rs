//! Presence across servers: a JetStream key-value bucket
//! ([`PRESENCE_BUCKET`]) with one key per server id, whose value lists
//! that server's users by shared room. Each server rewrites its key when
//! its rooms change and at least every [`HEARTBEAT`]; the bucket forgets a
//! value after [`PRESENCE_TTL`], and a server whose key has not been
//! rewritten for [`STALE_AFTER`] is taken as gone (its users leave the
//! rosters, without leave lines: it may only be cut off).

use std::collections::HashMap;
use std::time::Duration;

use crossbeam_channel::Sender;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use bytes::Bytes;
use lanlink_proto::{FrameDecoder, Message, StreamId};

use super::{guard, valid_server_id, NatsEvent};

/// The key-value bucket of presence.
pub const PRESENCE_BUCKET: &str = "lanlink_presence";

/// How often a server rewrites its presence when nothing changed.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// How long the bucket keeps a value.
pub const PRESENCE_TTL: Duration = Duration::from_secs(30);

/// A server not heard from for this long is taken as gone.
pub const STALE_AFTER: Duration = Duration::from_secs(15);

/// The largest presence value taken from another server, in bytes.
pub const MAX_PRESENCE_BYTES: usize = 256 * 1024;

/// The most rooms, and names per room, taken from one server's value.
const MAX_ROOMS: usize = 1024;
const MAX_NAMES: usize = 4096;

/// One server's shared rooms: `(room, names)`, as the hub sees them.
pub type Rosters = Vec<(String, Vec<String>)>;

/// One server's media streams: (server-wide stream id, the wire encoding
/// of its announcement frame), kept as hex in the value.
pub type StreamAds = Vec<(StreamId, Bytes)>;

/// The most streams taken from one server's value, and the longest
/// announcement frame, in bytes.
const MAX_STREAMS: usize = 256;
const MAX_ANNOUNCE_BYTES: u32 = 1024;

/// Keeps this server's key up to date and tells the hub about the
/// others'; retries from the start whenever NATS fails it.
pub(super) async fn run(
    js: async_nats::jetstream::Context,
    own: String,
    replicas: usize,
    mut mine: watch::Receiver<Rosters>,
    mut streams: watch::Receiver<StreamAds>,
    mut connected: watch::Receiver<u64>,
    events: Sender<NatsEvent>,
) {
    let mut heard: HashMap<String, Instant> = HashMap::new();
    loop {
        let started = tokio::time::Instant::now();
        let session = session(
            &js,
            &own,
            replicas,
            (&mut mine, &mut streams, &mut connected),
            &events,
            &mut heard,
        );
        match session.await {
            // Connected again: the bucket is followed afresh at once, but
            // not more than once a second (a connection that keeps
            // dropping would otherwise make a consumer each time).
            Ok(Ended::Reconnected) => {
                tokio::time::sleep_until(started + Duration::from_secs(1)).await;
                continue;
            }
            Ok(Ended::Closing) => return,
            Err(e) => tracing::warn!("nats: presence: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Why a presence session ended without an error.
#[derive(Debug, PartialEq)]
enum Ended {
    /// The link is closing.
    Closing,
    /// The connection to NATS was made again.
    Reconnected,
}

async fn session(
    js: &async_nats::jetstream::Context,
    own: &str,
    replicas: usize,
    (mine, streams, connected): (
        &mut watch::Receiver<Rosters>,
        &mut watch::Receiver<StreamAds>,
        &mut watch::Receiver<u64>,
    ),
    events: &Sender<NatsEvent>,
    heard: &mut HashMap<String, Instant>,
) -> Result<Ended, Box<dyn std::error::Error + Send + Sync>> {
    // Connections made before this session began are what it reads from.
    connected.borrow_and_update();
    // The bucket's stream made by hand, as `create_key_value` would make
    // it: that call first asks for the account's info, whose answer from
    // nats-server 2.9 this client version cannot parse.
    use async_nats::jetstream::stream;
    // No direct gets (their answers, sent where the asker says, would
    // carry one server's value onto another's key), no rollups or purges
    // (one server's put wiping every key).
    let bucket = guard::checked_stream(
        js,
        stream::Config {
            name: format!("KV_{PRESENCE_BUCKET}"),
            subjects: vec![format!("$KV.{PRESENCE_BUCKET}.>")],
            max_messages_per_subject: 1,
            max_age: PRESENCE_TTL,
            max_message_size: i32::try_from(MAX_PRESENCE_BYTES).unwrap_or(i32::MAX),
            deny_delete: true,
            deny_purge: true,
            discard: stream::DiscardPolicy::New,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        },
    )
    .await?;
    let kv = js.get_key_value(PRESENCE_BUCKET).await?;
    // Every key's latest value, then each change: read as stored data
    // (see `stored`), not through the library's watcher.
    let mut entries = super::stored::Stored::start(
        js,
        &bucket,
        format!("$KV.{PRESENCE_BUCKET}.>"),
        async_nats::jetstream::consumer::DeliverPolicy::LastPerSubject,
    )
    .await?
    .reading_past_misses();
    let mut beat = tokio::time::interval(HEARTBEAT);
    let mut sweep = tokio::time::interval(SWEEP);
    let mut paced = Paced::<Entry>::default();
    // When this server last wrote its key: changes coming quicker than
    // MIN_GAP are written together (others take no more from it).
    let mut written = Instant::now() - MIN_GAP;
    loop {
        tokio::select! {
            _ = beat.tick() => {
                let rosters = mine.borrow().clone();
                let ads = streams.borrow().clone();
                put(&kv, own, &rosters, &ads).await?;
                written = Instant::now();
            }
            changed = streams.changed() => {
                if changed.is_err() {
                    // The link is closing: say so at once.
                    let _ = kv.delete(own).await;
                    return Ok(Ended::Closing);
                }
                tokio::time::sleep_until(written + MIN_GAP).await;
                let ads = streams.borrow_and_update().clone();
                let rosters = mine.borrow_and_update().clone();
                put(&kv, own, &rosters, &ads).await?;
                written = Instant::now();
            }
            changed = mine.changed() => {
                if changed.is_err() {
                    // The link is closing: say so at once.
                    let _ = kv.delete(own).await;
                    return Ok(Ended::Closing);
                }
                tokio::time::sleep_until(written + MIN_GAP).await;
                let rosters = mine.borrow_and_update().clone();
                let ads = streams.borrow_and_update().clone();
                put(&kv, own, &rosters, &ads).await?;
                written = Instant::now();
            }
            changed = connected.changed() => {
                if changed.is_err() {
                    return Ok(Ended::Closing);
                }
                // The consumer may be gone with the NATS server it was
                // on; a new one delivers every key's latest value again.
                return Ok(Ended::Reconnected);
            }
            delivered = entries.next() => {
                let Some(delivered) = delivered else { return Err("presence watch ended".into()) };
                // Not a presence value: JetStream's answer to a request
                // whose reply subject a hostile server set to this key
                // (`{"type":"io.nats.jetstream.api…`), or a value with a
                // status line for headers. Dropped before it could take
                // the place of the server's real value held back by the
                // pace below.
                let Some(entry) = Entry::of(delivered.message) else { continue };
                if entry.key == own || !valid_server_id(&entry.key) {
                    continue;
                }
                let server = entry.key.clone();
                if let Some(entry) = paced.arrived(&server, entry, Instant::now()) {
                    take(entry, heard, events);
                }
            }
            _ = sweep.tick() => {
                let now = Instant::now();
                for entry in paced.due(now) {
                    take(entry, heard, events);
                }
                let gone: Vec<String> = heard
                    .iter()
                    .filter(|(_, at)| now.duration_since(**at) > STALE_AFTER)
                    .map(|(s, _)| s.clone())
                    .collect();
                for server in gone {
                    heard.remove(&server);
                    let _ = events.try_send(NatsEvent::ServerGone { server });
                }
            }
        }
    }
}

/// The shortest time between two values taken from one server: a server
/// rewriting its key in a loop (a 250 KiB value 380 times a second cost
/// every other server 45 % of a core to decode) is read at this pace, its
/// latest value kept meanwhile.
pub const MIN_GAP: Duration = Duration::from_millis(200);

/// How often values held back by [`MIN_GAP`] and servers gone quiet are
/// looked at.
const SWEEP: Duration = Duration::from_millis(100);

/// The values of other servers' keys, taken at most one per server every
/// [`MIN_GAP`].
struct Paced<T> {
    /// When a value of each server was last taken (within MIN_GAP).
    taken: HashMap<String, Instant>,
    /// The latest value that came too soon, by server.
    held: HashMap<String, T>,
}

/// One server's key as stored: its value, or `None` once deleted.
struct Entry {
    key: String,
    value: Option<bytes::Bytes>,
}

impl Entry {
    /// The entry a stored message of the bucket holds, if it is one: a
    /// delete or purge marker (`KV-Operation`), or a value that starts as
    /// a presence value and has no status line.
    fn of(message: async_nats::Message) -> Option<Entry> {
        let key = message
            .subject
            .strip_prefix(&format!("$KV.{PRESENCE_BUCKET}."))?
            .to_owned();
        if message.status.is_some() || guard::made_by_jetstream(&message) {
            return None;
        }
        let operation = message
            .headers
            .as_ref()
            .and_then(|h| h.get("KV-Operation").map(|v| v.as_str().to_owned()));
        match operation.as_deref() {
            Some("DEL" | "PURGE") => Some(Entry { key, value: None }),
            None if message.payload.starts_with(PRESENCE_START) => Some(Entry {
                key,
                value: Some(message.payload),
            }),
            _ => None,
        }
    }
}

impl<T> Default for Paced<T> {
    fn default() -> Self {
        Paced {
            taken: HashMap::new(),
            held: HashMap::new(),
        }
    }
}

impl<T> Paced<T> {
    /// `value` of `server`'s key if it may be taken now; else it is held
    /// (replacing an older one held) until [`Paced::due`] gives it.
    fn arrived(&mut self, server: &str, value: T, now: Instant) -> Option<T> {
        match self.taken.get(server) {
            Some(at) if now < *at + MIN_GAP => {
                self.held.insert(server.to_owned(), value);
                None
            }
            _ => {
                self.taken.insert(server.to_owned(), now);
                Some(value)
            }
        }
    }

    /// The held values whose server's gap has passed.
    fn due(&mut self, now: Instant) -> Vec<T> {
        self.taken.retain(|_, at| now < *at + MIN_GAP);
        let ready: Vec<String> = self
            .held
            .keys()
            .filter(|server| !self.taken.contains_key(*server))
            .cloned()
            .collect();
        ready
            .into_iter()
            .filter_map(|server| {
                let entry = self.held.remove(&server)?;
                self.taken.insert(server, now);
                Some(entry)
            })
            .collect()
    }
}

/// Tells the hub what one server's key now says.
fn take(entry: Entry, heard: &mut HashMap<String, Instant>, events: &Sender<NatsEvent>) {
    let server = entry.key.clone();
    let told = match entry.value {
        Some(value) => decode(&value).map(|rooms| {
            heard.insert(server.clone(), Instant::now());
            let streams = decode_streams(&value);
            vec![
                NatsEvent::Rosters {
                    server: server.clone(),
                    rooms,
                },
                NatsEvent::Streams { server, streams },
            ]
        }),
        _ => heard
            .remove(&server)
            .map(|_| vec![NatsEvent::ServerGone { server }]),
    };
    for told in told.into_iter().flatten() {
        let _ = events.try_send(told);
    }
}

/// How every presence value starts (its first key, see [`put`]).
const PRESENCE_START: &[u8] = b"{\"rooms\":";

async fn put(
    kv: &async_nats::jetstream::kv::Store,
    own: &str,
    rosters: &Rosters,
    ads: &StreamAds,
) -> Result<(), async_nats::jetstream::kv::PutError> {
    let rooms: serde_json::Map<String, Value> = rosters
        .iter()
        .map(|(room, names)| (room.clone(), json!(names)))
        .collect();
    let streams: serde_json::Map<String, Value> = ads
        .iter()
        .map(|(id, frame)| (id.to_string(), json!(super::hex(frame))))
        .collect();
    let body = json!({ "rooms": rooms, "streams": streams }).to_string();
    debug_assert!(body.as_bytes().starts_with(PRESENCE_START));
    kv.put(own, body.into()).await.map(|_| ())
}

/// A server's rooms from its value, or `None` if it is malformed or too
/// big (names are checked again by the chat service).
pub(super) fn decode(value: &[u8]) -> Option<Rosters> {
    if value.len() > MAX_PRESENCE_BYTES {
        return None;
    }
    let body: Value = serde_json::from_slice(value).ok()?;
    let rooms = body.get("rooms")?.as_object()?;
    if rooms.len() > MAX_ROOMS {
        return None;
    }
    let mut out = Vec::with_capacity(rooms.len());
    for (room, names) in rooms {
        let names = names.as_array()?;
        if names.len() > MAX_NAMES {
            return None;
        }
        let names: Option<Vec<String>> = names
            .iter()
            .map(|n| n.as_str().map(str::to_owned))
            .collect();
        out.push((room.clone(), names?));
    }
    Some(out)
}

/// A server's streams from its value: (its server-wide id, the
/// announcement), each decoded with a bounded decoder as a peer's frame
/// is; malformed entries are left out, and a value without streams (an
/// older server) has none. Names are checked again by the media relay.
pub(super) fn decode_streams(value: &[u8]) -> Vec<(StreamId, Message)> {
    if value.len() > MAX_PRESENCE_BYTES {
        return Vec::new();
    }
    let Ok(body) = serde_json::from_slice::<Value>(value) else {
        return Vec::new();
    };
    let Some(streams) = body.get("streams").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (id, frame) in streams.iter().take(MAX_STREAMS) {
        let (Ok(id), Some(frame)) = (id.parse::<StreamId>(), frame.as_str()) else {
            continue;
        };
        let Some(bytes) = unhex(frame, MAX_ANNOUNCE_BYTES as usize + 64) else {
            continue;
        };
        let mut decoder = FrameDecoder::with_max_payload(MAX_ANNOUNCE_BYTES);
        decoder.push(&bytes);
        match decoder.decode() {
            Ok(Some(f))
                if f.stream == id
                    && decoder.buffered() == 0
                    && matches!(
                        f.message,
                        Message::VideoAnnounce(_) | Message::AudioAnnounce(_)
                    ) =>
            {
                out.push((id, f.message));
            }
            _ => {}
        }
    }
    out
}

/// The bytes of lower-case or upper-case hex `text`, at most `max` of
/// them.
fn unhex(text: &str, max: usize) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() / 2 > max {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |b: u8| (b as char).to_digit(16);
            Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_server_rewriting_its_key_in_a_loop_is_read_at_a_pace() {
        let mut paced = super::Paced::default();
        let t0 = tokio::time::Instant::now();
        let at = |ms| t0 + std::time::Duration::from_millis(ms);
        assert_eq!(paced.arrived("m", 1, at(0)), Some(1));
        assert_eq!(
            paced.arrived("a", 10, at(1)),
            Some(10),
            "each server its own pace"
        );
        for (i, ms) in (2..=200).zip(1..) {
            assert_eq!(paced.arrived("m", i, at(ms)), None, "too soon");
        }
        assert_eq!(paced.due(at(150)), Vec::<i32>::new());
        assert_eq!(paced.due(at(200)), vec![200], "the latest value, once");
        assert_eq!(paced.due(at(300)), Vec::<i32>::new());
        assert_eq!(paced.arrived("m", 401, at(350)), None);
        assert_eq!(paced.due(at(400)), vec![401]);
        assert_eq!(paced.arrived("a", 11, at(500)), Some(11));
        assert!(paced.due(at(10_000)).is_empty());
        assert!(paced.taken.is_empty() && paced.held.is_empty(), "forgets");
    }

    use super::*;

    #[test]
    fn presence_values_are_bounded_and_typed() {
        let good = br#"{"rooms":{"lobby":["ada","bob"]}}"#;
        assert_eq!(
            decode(good),
            Some(vec![("lobby".into(), vec!["ada".into(), "bob".into()])])
        );
        assert_eq!(decode(br#"{"rooms":{"lobby":[1]}}"#), None);
        assert_eq!(decode(br#"{"rooms":[]}"#), None);
        assert_eq!(decode(b"nope"), None);
        assert_eq!(decode(&vec![b' '; MAX_PRESENCE_BYTES + 1]), None);
    }

    #[test]
    fn streams_in_presence_are_announcements_of_their_id_or_left_out() {
        use lanlink_proto::video::{VideoAnnounce, VideoCodec, VideoEnd};
        use lanlink_proto::Frame;
        let cam = VideoAnnounce {
            name: "cam".into(),
            publisher: "ada".into(),
            codec: VideoCodec::MJPEG,
            width: 320,
            height: 240,
            fps_milli: 30_000,
        };
        let ad = |id, m: Message| super::super::hex(&Frame::new(id, m).to_bytes().unwrap());
        let value = json!({
            "rooms": {},
            "streams": {
                "8": ad(8, cam.clone().into()),
                // The id in the frame is not the key's; not an
                // announcement; not hex; a torn frame.
                "10": ad(12, cam.clone().into()),
                "14": ad(14, VideoEnd.into()),
                "16": "zz",
                "18": &ad(18, cam.clone().into())[..20],
            }
        })
        .to_string();
        assert_eq!(
            decode_streams(value.as_bytes()),
            vec![(8, Message::VideoAnnounce(cam))]
        );
        // An older server's value lists none.
        assert!(decode_streams(br#"{"rooms":{}}"#).is_empty());
    }
}
