//! Scale-out: several lanlink servers behave as one through NATS
//! (`lanlink-server --nats URL[,URL…]`, off by default).
//!
//! This module is the only place with an async runtime: [`NatsLink`]
//! starts one thread running a private current-thread tokio runtime with
//! the official `async-nats` client. The hub talks to it through two
//! bounded crossbeam channels and never waits on NATS: it hands room
//! events over with `try_send` (a full outbox drops and counts, logged),
//! and takes [`NatsEvent`]s in its `select!` loop. A NATS publish may
//! wait while the servers are unreachable; only this module's thread
//! ever does.
//!
//! What crosses: the events of chat rooms without a password, one JSON
//! object per event, published once per room on
//! `lanlink.room.<hex of the folded room name>.said` (messages, through
//! JetStream from an ordered outbox, kept in [`HISTORY_STREAM`]) or
//! `.presence` (joins and leaves, core NATS). Every event carries its
//! origin's server id and a sequence number; a message's id is
//! `<server>-<seq>`. A message is published once live by core NATS and
//! then through JetStream until acknowledged (`outbox.rs`, on disk with a
//! fixed server id); it arrives live and again from the stream, and a
//! receiver shows it once, in the stream's order: the live copy waits for
//! the stream's up to [`HOLD`] (`order.rs`). Presence lives in a key-value bucket
//! (`presence.rs`); private messages between servers are NATS requests
//! (`whisper.rs`); media frames cross on a second connection, only while
//! another server holds a lease on their stream (`media.rs`). See
//! docs/SCALE-OUT.md.
//!
//! Another server is hostile until proven otherwise: an event is refused
//! above [`MAX_EVENT_BYTES`] before it is parsed, every field is checked
//! for type and length here, and the hub then passes it through the chat
//! service's own checks (names, room names, message length) and a rate
//! limit per origin server.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use futures_util::StreamExt;
use lanlink_proto::chat::{ChatMessage, Presence, PresenceChange, PrivateMessage};
use lanlink_services::chat::names::fold;
use lanlink_services::chat::{RemoteWhisper, RoomEvent};
use lanlink_transport::ConnId;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::ServerError;

mod files;
mod guard;
mod media;
mod order;
mod outbox;
mod presence;
mod stored;
mod whisper;
pub use files::{file_subject, InFile, OutFile, FILES_IN, FILES_OUT, FILE_SUBJECTS};
pub use media::{
    frame_subject, lease_subject, InFrame, OutFrame, Wants, FRAMES_IN, FRAMES_OUT, LEASE_EVERY,
    LEASE_FOR, MEDIA_SUBJECTS, SUBSCRIPTION_FRAMES,
};
pub use order::HOLD;
pub use outbox::REWRITE_AFTER;
pub use presence::{Rosters, StreamAds, HEARTBEAT, PRESENCE_BUCKET, PRESENCE_TTL, STALE_AFTER};
pub use whisper::{
    WhisperAnswer, MAX_WHISPERS_IN_FLIGHT, MAX_WHISPERS_IN_FLIGHT_PER_SERVER, MAX_WHISPER_BYTES,
    SERVER_SUBJECTS, WHISPER_WAIT,
};

/// The subject prefix of room events; a room's subject is this, a dot and
/// the hex of its folded name (any room name makes a valid subject).
pub const ROOM_SUBJECTS: &str = "lanlink.room";

/// The JetStream stream that keeps room messages (subjects
/// `lanlink.room.*.said.*`), bounded per room and origin server by count,
/// and by age. (`LANLINK_ROOMS`, which versions before the origin was in
/// the subject made, is left alone.)
pub const HISTORY_STREAM: &str = "LANLINK_HISTORY";

/// The largest event taken from NATS, in bytes: refused before parsing.
pub const MAX_EVENT_BYTES: usize = 96 * 1024;

/// The longest the NATS thread waits on one JetStream call (live traffic
/// waits meanwhile), and how long it then leaves JetStream alone.
const JS_PATIENCE: Duration = Duration::from_millis(400);
const JS_RETRY: Duration = Duration::from_millis(1000);

/// The most origin servers whose last sequence is remembered.
const MAX_ORIGINS: usize = 1024;

/// How scale-out is set up.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// The NATS servers, `nats://host:port` each; the client picks one and
    /// moves to another when it fails.
    pub urls: Vec<String>,
    /// This process's id, unique among the servers sharing the NATS
    /// cluster; remote users are shown as `name@<server id>`.
    pub server_id: String,
    /// Room events the hub may hand over before NATS has taken them; beyond
    /// that they are dropped and counted (never blocking the hub).
    pub outbox: usize,
    /// Messages kept per room in [`HISTORY_STREAM`] (and read back when a
    /// room is made here).
    pub history_len: usize,
    /// How long [`HISTORY_STREAM`] keeps a message.
    pub history_age: Duration,
    /// Where room messages wait for JetStream across restarts of this
    /// server (a journal, see `outbox.rs`); `None` keeps them in memory.
    pub outbox_file: Option<std::path::PathBuf>,
    /// Copies JetStream keeps of the history stream and the presence
    /// bucket (1, or 3 on a cluster of 3 or more nodes so that losing one
    /// loses nothing). Used when they are made; existing ones keep theirs.
    pub replicas: usize,
    /// The largest media frame payload taken from another server (as from
    /// a peer: the transport's `max_payload`).
    pub max_media_payload: u32,
    /// The password of the NATS user named in the URLs
    /// (`nats://USER@host:port`) when they do not carry it
    /// (`nats://USER:PASSWORD@…` does).
    pub password: Option<String>,
}

impl NatsConfig {
    /// A configuration with an outbox of 16 384 events and a history of
    /// 50 messages per room for 7 days.
    pub fn new(urls: Vec<String>, server_id: String) -> NatsConfig {
        NatsConfig {
            urls,
            server_id,
            outbox: 16 * 1024,
            history_len: 50,
            history_age: Duration::from_secs(7 * 24 * 3600),
            outbox_file: None,
            replicas: 1,
            max_media_payload: lanlink_proto::DEFAULT_MAX_PAYLOAD,
            password: None,
        }
    }
}

/// `url` without the password it may carry (`nats://user:pw@host` gives
/// `nats://user@host`), for logs.
pub fn without_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    match rest.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(u, _)| u);
            let scheme = if scheme.is_empty() {
                String::new()
            } else {
                format!("{scheme}://")
            };
            format!("{scheme}{user}@{host}")
        }
        _ => url.to_owned(),
    }
}

/// The prefix of a server's NATS inboxes (request replies, JetStream
/// deliveries): `_INBOX_<server id>`, so that NATS permissions can let
/// each server read its own only ([`permissions`]).
pub fn inbox_prefix(server: &str) -> String {
    format!("_INBOX_{server}")
}

/// The NATS permissions that bind server id `id` to one NATS user: it may
/// publish only on subjects that carry `id` as their sender (room events,
/// private messages, file frames, leases, its streams' frames, its own
/// presence key), and read only what is for everyone or for `id`; of
/// JetStream's API, only what finds or makes the history stream and the
/// presence bucket and reads them (not deleting, purging or changing
/// them). Receivers drop what arrives on a subject not of the id it
/// claims, so with these a server cannot speak as another. A JSON object
/// for a user's `permissions` in nats-server's `authorization` block (its
/// configuration format takes JSON); `lanlink-server
/// --print-nats-permissions ID` prints it. See docs/SCALE-OUT.md.
pub fn permissions(id: &str) -> Value {
    let kv = format!("KV_{PRESENCE_BUCKET}");
    let mut js_api = vec!["$JS.API.INFO".to_owned()];
    for stream in [HISTORY_STREAM, kv.as_str()] {
        for call in ["STREAM.INFO", "STREAM.CREATE", "CONSUMER.CREATE"] {
            js_api.push(format!("$JS.API.{call}.{stream}"));
        }
        for call in [
            "CONSUMER.CREATE",
            "CONSUMER.DELETE",
            "CONSUMER.INFO",
            "CONSUMER.MSG.NEXT",
        ] {
            js_api.push(format!("$JS.API.{call}.{stream}.>"));
        }
        js_api.push(format!("$JS.FC.{stream}.>"));
    }
    // No direct or message gets: lanlink reads through consumers, and a
    // get's answer goes to whatever reply subject the asker names.
    let mut publish = vec![
        format!("{ROOM_SUBJECTS}.*.said.{id}"),
        format!("{ROOM_SUBJECTS}.*.presence.{id}"),
        format!("{SERVER_SUBJECTS}.*.pm.{id}"),
        format!("{FILE_SUBJECTS}.*.{id}"),
        format!("{MEDIA_SUBJECTS}.{id}.*"),
        format!("{MEDIA_SUBJECTS}.*.want.{id}"),
        format!("$KV.{PRESENCE_BUCKET}.{id}"),
    ];
    publish.extend(js_api);
    json!({
        "publish": { "allow": publish },
        "subscribe": { "allow": [
            format!("{ROOM_SUBJECTS}.>"),
            format!("{SERVER_SUBJECTS}.{id}.>"),
            format!("{FILE_SUBJECTS}.{id}.>"),
            format!("{MEDIA_SUBJECTS}.{id}.want.*"),
            format!("{MEDIA_SUBJECTS}.*.*"),
            format!("{}.>", inbox_prefix(id)),
        ]},
        // Answers to private messages, to the asker's inbox only.
        "allow_responses": true,
    })
}

/// 16 random hex digits.
fn unguessable() -> String {
    let mut random = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
    hex(&random)
}

/// A server id for this process: `name` reduced to letters, digits, `-`
/// and `_` (at most 16 of them), a dash and 6 random hex digits, so two
/// processes given the same name still differ.
pub fn server_id(name: &str) -> String {
    let mut base: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(16)
        .collect();
    if base.is_empty() {
        base.push_str("lanlink");
    }
    format!("{base}-{}", &unguessable()[..6])
}

/// Whether `id` may be a server id: 1 to 32 ASCII letters, digits, `-`
/// or `_` (it is shown after `@` and used in subjects and event ids).
pub fn valid_server_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The subject prefix of a room's events: its messages go to
/// `<prefix>.said.<origin server id>` (kept in [`HISTORY_STREAM`]), joins
/// and leaves to `<prefix>.presence.<origin>`. The origin is in the
/// subject so that NATS permissions can bind a server id to one NATS user
/// ([`permissions`]); a body whose `server` is not its subject's is
/// dropped.
pub fn room_subject(room: &str) -> String {
    format!("{ROOM_SUBJECTS}.{}", hex(fold(room).as_bytes()))
}

/// What the NATS side tells the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsEvent {
    /// A message said on another server; `from` is `user@server`.
    Said {
        /// The origin server's id (for its rate limit).
        server: String,
        /// The message as shown here.
        message: ChatMessage,
    },
    /// A message said here came back from NATS, in the order all
    /// servers show it (`from` the bare local name): the hub shows it to
    /// the other local members now (see `ChatService::show_own`).
    OwnSaid {
        /// The message as said here.
        message: ChatMessage,
    },
    /// A user on another server joined or left a room; `name` is
    /// `user@server`.
    Presence {
        /// The origin server's id (for its rate limit).
        server: String,
        /// The change as shown here.
        presence: Presence,
    },
    /// The history of a room as [`HISTORY_STREAM`] kept it, oldest first
    /// (asked for when the room was made here); this server's own users
    /// keep their bare names.
    History {
        /// The room.
        room: String,
        /// Its messages.
        messages: Vec<ChatMessage>,
    },
    /// Another server's users by shared room, as its presence key says
    /// (names bare; the hub shows them as `name@server`).
    Rosters {
        /// The server's id.
        server: String,
        /// Its rooms and their members.
        rooms: Rosters,
    },
    /// A server's presence key was deleted or not refreshed in time.
    ServerGone {
        /// The server's id.
        server: String,
    },
    /// A private message from a user on another server to a local one
    /// (`message.from` is `user@server`); answer it with
    /// [`NatsLink::answer`] on `reply`.
    Whisper {
        /// The origin server's id (for its rate limit).
        server: String,
        /// The message as shown here.
        message: PrivateMessage,
        /// Where the answer goes.
        reply: String,
    },
    /// What became of a private message this server sent elsewhere.
    WhisperAnswer {
        /// The local sender.
        sender: ConnId,
        /// The id the hub gave the message ([`NatsLink::whisper`]).
        id: u64,
        /// The target, `user@server`.
        to: String,
        /// What became of it.
        answer: WhisperAnswer,
    },
    /// Another server's media streams, as its presence value lists them
    /// (after its [`NatsEvent::Rosters`]): (its server-wide stream id, an
    /// `AudioAnnounce` or `VideoAnnounce` as it sent it).
    Streams {
        /// The server's id.
        server: String,
        /// Its streams.
        streams: Vec<(lanlink_proto::StreamId, lanlink_proto::Message)>,
    },
    /// The local streams (server-wide ids) other servers hold a fresh
    /// lease on: hand their frames to [`NatsLink::publish_media`].
    MediaWanted {
        /// The streams.
        streams: std::collections::BTreeSet<lanlink_proto::StreamId>,
    },
    /// Connected (or reconnected) to a NATS server.
    Connected,
    /// The connection to NATS was lost; the client keeps retrying.
    Disconnected,
}

/// The running link to NATS: a thread with a private tokio runtime.
/// Dropping it closes the outbox, gives the thread a moment to hand what
/// is left to the client, and joins it.
pub struct NatsLink {
    server_id: String,
    outbox: Option<Sender<RoomEvent>>,
    /// Private messages and their answers, apart from room events so
    /// that a full room outbox never holds them up.
    asks: Sender<Ask>,
    presence: Option<tokio::sync::watch::Sender<Rosters>>,
    /// This server's streams, for its presence value.
    streams: Option<tokio::sync::watch::Sender<StreamAds>>,
    /// What this server wants from others (see `media.rs`).
    wants: Option<tokio::sync::watch::Sender<Wants>>,
    /// Frames for other servers: a bounded queue whose oldest frame the
    /// hub drops (through `frames_oldest`) when it is full.
    frames: Option<Sender<OutFrame>>,
    frames_oldest: Receiver<OutFrame>,
    frames_in: Receiver<InFrame>,
    files_out: Sender<OutFile>,
    files_in: Receiver<InFile>,
    media_wake: Arc<Notify>,
    frames_dropped: u64,
    wake: Arc<Notify>,
    events: Receiver<NatsEvent>,
    done: Receiver<()>,
    thread: Option<JoinHandle<()>>,
    dropped: u64,
}

impl NatsLink {
    /// Starts the link; it connects (and reconnects) in the background, so
    /// this returns at once even when no NATS server is up.
    pub fn start(config: NatsConfig) -> Result<NatsLink, ServerError> {
        let (outbox_tx, outbox) = crossbeam_channel::bounded(config.outbox.max(1));
        let (events_tx, events) = crossbeam_channel::bounded(config.outbox.max(1));
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let (asks, asked) = crossbeam_channel::bounded(ASKS);
        let wake = Arc::new(Notify::new());
        let server_id = config.server_id.clone();
        let thread_wake = wake.clone();
        let (presence, mine) = tokio::sync::watch::channel(Rosters::new());
        let (streams, my_streams) = tokio::sync::watch::channel(StreamAds::new());
        let (wants, my_wants) = tokio::sync::watch::channel(Wants::new());
        let (frames, frames_oldest) = crossbeam_channel::bounded(FRAMES_OUT);
        let (frames_in_tx, frames_in) = crossbeam_channel::bounded(FRAMES_IN);
        let (files_out, files_out_rx) = crossbeam_channel::bounded(FILES_OUT);
        let (files_in_tx, files_in) = crossbeam_channel::bounded(FILES_IN);
        let media_wake = Arc::new(Notify::new());
        let media = media::MediaLink {
            frames: frames_oldest.clone(),
            wake: media_wake.clone(),
            wants: my_wants,
            incoming: frames_in_tx,
            events: events_tx.clone(),
            max_payload: config.max_media_payload,
            files_out: files_out_rx,
            files_in: files_in_tx,
        };
        let thread = std::thread::Builder::new()
            .name("lanlink-nats".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => {
                        let link = Link {
                            outbox,
                            asked,
                            wake: thread_wake,
                            events: events_tx,
                            media,
                        };
                        rt.block_on(serve(config, link, (mine, my_streams)))
                    }
                    Err(e) => tracing::error!("nats: cannot start its runtime: {e}"),
                }
                let _ = done_tx.send(());
            })
            .map_err(|e| ServerError::io("spawn nats thread", e))?;
        Ok(NatsLink {
            server_id,
            outbox: Some(outbox_tx),
            asks,
            presence: Some(presence),
            streams: Some(streams),
            wants: Some(wants),
            frames: Some(frames),
            frames_oldest,
            frames_in,
            files_out,
            files_in,
            media_wake,
            frames_dropped: 0,
            wake,
            events,
            done,
            thread: Some(thread),
            dropped: 0,
        })
    }

    /// This process's server id.
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// Where the NATS side's events arrive.
    pub fn events(&self) -> &Receiver<NatsEvent> {
        &self.events
    }

    /// Sets this server's users by shared room, for the presence bucket
    /// (written when it changes and at every heartbeat). Never waits.
    pub fn set_presence(&self, rosters: Rosters) {
        if let Some(presence) = &self.presence {
            presence.send_if_modified(|now| {
                let changed = *now != rosters;
                if changed {
                    *now = rosters;
                }
                changed
            });
        }
    }

    /// Sets this server's media streams, for its presence value (written
    /// when they change). Never waits.
    pub fn set_streams(&self, ads: StreamAds) {
        if let Some(streams) = &self.streams {
            streams.send_if_modified(|now| {
                let changed = *now != ads;
                if changed {
                    *now = ads;
                }
                changed
            });
        }
    }

    /// Sets the other servers' streams this server wants (it leases and
    /// follows them while they are in). Never waits.
    pub fn want_media(&self, wants: Wants) {
        if let Some(w) = &self.wants {
            w.send_if_modified(|now| {
                let changed = *now != wants;
                if changed {
                    *now = wants;
                }
                changed
            });
        }
    }

    /// Hands a frame of a local stream (`frame.stream` its server-wide
    /// id) to the servers that want it, without waiting: when the queue
    /// is full its oldest frame is dropped (counted and logged).
    pub fn publish_media(&mut self, frame: &lanlink_proto::Frame) {
        let Some(frames) = &self.frames else { return };
        let bytes = match frame.to_bytes() {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("nats: media: cannot encode a frame: {e}");
                return;
            }
        };
        let mut out = OutFrame {
            stream: frame.stream,
            bytes,
        };
        for _ in 0..2 {
            match frames.try_send(out) {
                Ok(()) => {
                    self.media_wake.notify_one();
                    return;
                }
                Err(TrySendError::Full(back)) => {
                    out = back;
                    // Newest first: stale media is worth least.
                    let _ = self.frames_oldest.try_recv();
                    self.frames_dropped += 1;
                    if self.frames_dropped.is_power_of_two() {
                        tracing::info!(
                            dropped = self.frames_dropped,
                            "nats: media queue full, oldest frames dropped"
                        );
                    }
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }

    /// Where other servers' frames arrive (for the streams this server
    /// wants): hand each to the hub.
    pub fn media_frames(&self) -> &Receiver<InFrame> {
        &self.frames_in
    }

    /// Hands a file frame for server `to` to NATS without waiting, for a
    /// transfer `started_by` this server or `to` on its stream `stream`;
    /// false if it could not (the queue is full: the transfer breaks).
    pub fn send_file(
        &self,
        to: &str,
        started_by: &str,
        stream: lanlink_proto::StreamId,
        message: lanlink_proto::Message,
    ) -> bool {
        let Some(body) = files::encode(&self.server_id, started_by, stream, message) else {
            return false;
        };
        let sent = self
            .files_out
            .try_send(OutFile {
                to: to.to_owned(),
                body,
                started_here: started_by == self.server_id,
                stream,
            })
            .is_ok();
        if sent {
            self.media_wake.notify_one();
        }
        sent
    }

    /// Where other servers' file frames arrive: hand each to the hub.
    pub fn file_frames(&self) -> &Receiver<InFile> {
        &self.files_in
    }

    /// Hands a room event to NATS without waiting; a full outbox drops it
    /// (counted and logged).
    pub fn publish(&mut self, event: RoomEvent) {
        let Some(outbox) = &self.outbox else { return };
        match outbox.try_send(event) {
            Ok(()) => self.wake.notify_one(),
            Err(TrySendError::Full(_)) => {
                self.dropped += 1;
                if self.dropped.is_power_of_two() {
                    tracing::warn!(
                        dropped = self.dropped,
                        "nats: outbox full, room events dropped"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

impl NatsLink {
    /// Hands a private message for another server to NATS without
    /// waiting; gives it back if too many wait already (tell the sender).
    /// Its [`NatsEvent::WhisperAnswer`] comes back with `id`.
    pub fn whisper(&self, w: RemoteWhisper, id: u64) -> Result<(), RemoteWhisper> {
        match self.asks.try_send(Ask::Whisper(w, id)) {
            Ok(()) => {
                self.wake.notify_one();
                Ok(())
            }
            Err(
                TrySendError::Full(Ask::Whisper(w, _))
                | TrySendError::Disconnected(Ask::Whisper(w, _)),
            ) => Err(w),
            Err(_) => Ok(()),
        }
    }

    /// Answers another server's private message (a [`NatsEvent::Whisper`])
    /// without waiting; a full queue drops the answer (that server then
    /// tells its user that nobody answered).
    pub fn answer(&self, reply: String, answer: WhisperAnswer) {
        if self.asks.try_send(Ask::Answer { reply, answer }).is_ok() {
            self.wake.notify_one();
        }
    }
}

/// Private messages and answers waiting for the NATS thread.
const ASKS: usize = 1024;

/// What the hub asks of the NATS thread besides room events.
enum Ask {
    Whisper(RemoteWhisper, u64),
    Answer {
        reply: String,
        answer: WhisperAnswer,
    },
}

/// The NATS thread's ends of the channels to the hub.
struct Link {
    outbox: Receiver<RoomEvent>,
    asked: Receiver<Ask>,
    wake: Arc<Notify>,
    events: Sender<NatsEvent>,
    media: media::MediaLink,
}

impl Drop for NatsLink {
    fn drop(&mut self) {
        // Presence first: its task deletes this server's key.
        self.presence = None;
        self.streams = None;
        self.wants = None;
        self.frames = None;
        self.media_wake.notify_one();
        self.outbox = None;
        self.wake.notify_one();
        // A publish may be waiting for a NATS server that is gone: give it
        // a moment, then leave the thread behind rather than hang.
        if self.done.recv_timeout(Duration::from_secs(2)).is_ok() {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// The NATS side: connect, subscribe to every room, then publish what the
/// hub hands over and pass on what other servers publish.
async fn serve(
    config: NatsConfig,
    link: Link,
    (mine, my_streams): (
        tokio::sync::watch::Receiver<Rosters>,
        tokio::sync::watch::Receiver<StreamAds>,
    ),
) {
    let Link {
        outbox,
        asked,
        wake,
        events,
        media,
    } = link;
    let mut addrs = Vec::new();
    for url in &config.urls {
        match url.parse::<async_nats::ServerAddr>() {
            Ok(a) => addrs.push(a),
            // The error does not repeat the address: it may hold a password.
            Err(e) => tracing::error!("nats: bad server address: {e}"),
        }
    }
    // The NATS user this server speaks as (see `permissions`).
    let user = addrs.iter().find_map(|a| {
        let password = a.password().map(str::to_owned).or(config.password.clone());
        Some((a.username()?.to_owned(), password.unwrap_or_default()))
    });
    let with_user = |options: async_nats::ConnectOptions| {
        let options = options.custom_inbox_prefix(inbox_prefix(&config.server_id));
        match user.clone() {
            Some((user, password)) => options.user_and_password(user, password),
            None => options,
        }
    };
    // Media on a connection of its own: a slow-consumer cut there drops
    // frames, never chat.
    let media_options = with_user(async_nats::ConnectOptions::new())
        .name(format!("lanlink-server {} media", config.server_id))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|n| Duration::from_millis((n as u64 * 200).clamp(100, 2000)))
        .event_callback(|event| async move { tracing::info!("nats: media: {event}") });
    tokio::spawn(media::run(
        config.server_id.clone(),
        media_options,
        addrs.clone(),
        media,
    ));
    let status = events.clone();
    // Counts connections. On each, the history stream is found again and
    // followed afresh from the last message taken, and the presence
    // bucket read afresh, at once (their consumers may have gone with the
    // NATS server), rather than once a consumer has been silent for
    // `stored::SILENT`.
    let (connections, connected) = tokio::sync::watch::channel(0u64);
    let mut reconnected = connected.clone();
    let nudge = wake.clone();
    let options = with_user(async_nats::ConnectOptions::new())
        .name(format!("lanlink-server {}", config.server_id))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|n| Duration::from_millis((n as u64 * 200).clamp(100, 2000)))
        .event_callback(move |event| {
            let status = status.clone();
            if matches!(event, async_nats::Event::Connected) {
                connections.send_modify(|n| *n += 1);
                nudge.notify_one();
            }
            async move {
                let told = match event {
                    async_nats::Event::Connected => Some(NatsEvent::Connected),
                    async_nats::Event::Disconnected => Some(NatsEvent::Disconnected),
                    other => {
                        tracing::info!("nats: {other}");
                        None
                    }
                };
                if let Some(told) = told {
                    let _ = status.try_send(told);
                }
            }
        });
    let client = match options.connect(addrs).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("nats: cannot connect: {e}");
            return;
        }
    };
    // Everything live by core NATS (fast, at most once): joins and
    // leaves, and each message as published (once at once, then by the
    // JetStream publish); messages again from the stream below, which
    // fills what a reconnect missed.
    let mut rooms = match client.subscribe(format!("{ROOM_SUBJECTS}.>")).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("nats: cannot subscribe: {e}");
            return;
        }
    };
    let mut whispers = match client
        .subscribe(whisper::subjects_of(&config.server_id))
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("nats: cannot subscribe: {e}");
            return;
        }
    };
    let whisper_slots = Arc::new(whisper::WhisperSlots::default());
    let mut inbound = Inbound::new(config.server_id.clone());
    let mut holding = order::Holding::<(String, bytes::Bytes)>::default();
    let presence = tokio::spawn(presence::run(
        async_nats::jetstream::new(client.clone()),
        config.server_id.clone(),
        config.replicas.max(1),
        mine,
        my_streams,
        connected,
        events.clone(),
    ));
    let mut history = History {
        js: async_nats::jetstream::new(client.clone()),
        stream: None,
        config: config.clone(),
        own: Recent::new(OWN_REMEMBERED),
        created: None,
        renewed: false,
    };
    // Messages wait here, in order, until JetStream has acknowledged them
    // (stored, and so delivered to every server's subscription); joins and
    // leaves are published once, at most (rosters come from presence).
    let mut unsent = outbox::Outbox::open(config.outbox, config.outbox_file.as_deref());
    let mut retry_at = tokio::time::Instant::now();
    // The outbox is sent as soon as it has something, and again after
    // JS_RETRY only when JetStream did not take all of it.
    let mut unsent_at = tokio::time::Instant::now();
    // Sequences start at this process's start time in microseconds, so
    // that a restarted server with the same id never reuses an id (the
    // receivers and JetStream's duplicate window would drop it).
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2));
    let (mut said_seq, mut presence_seq) = (start, start);
    let mut dropped = 0u64;
    let mut whispers_dropped = Dropped::default();
    let mut said: Option<stored::Stored> = None;
    let mut last_stream_seq = 0u64;
    loop {
        if reconnected.has_changed().unwrap_or(false) {
            reconnected.borrow_and_update();
            said = None;
            // Found again (and made, if NATS came back without it).
            history.stream = None;
            retry_at = tokio::time::Instant::now();
            unsent_at = retry_at;
        }
        // JetStream calls are bounded short: while they wait, live
        // traffic is not handled.
        if said.is_none() && tokio::time::Instant::now() >= retry_at {
            let following = follow(&mut history, &mut last_stream_seq);
            said = tokio::time::timeout(JS_PATIENCE, following)
                .await
                .ok()
                .flatten();
            retry_at = tokio::time::Instant::now() + JS_RETRY;
        }
        if said.is_none() {
            // No stream to wait for: what is held goes now.
            for (subject, payload) in holding.due(std::time::Instant::now(), true) {
                pass(&mut inbound, &events, &subject, &payload);
            }
        }
        // Drain the outboxes first: a wake-up lost to the other branch of
        // the select is made up for here.
        while let Ok(ask) = asked.try_recv() {
            match ask {
                Ask::Whisper(w, id) => {
                    whisper::send(&client, &config.server_id, w, id, &whisper_slots, &events);
                }
                Ask::Answer { reply, answer } => {
                    if let Err(e) = client.publish(reply, answer.body().into()).await {
                        tracing::warn!("nats: answer failed: {e}");
                    }
                }
            }
        }
        loop {
            match outbox.try_recv() {
                Ok(RoomEvent::Opened { room }) => {
                    let messages = history.of(&room).await;
                    if !messages.is_empty() {
                        let _ = events.try_send(NatsEvent::History { room, messages });
                    }
                }
                Ok(event @ RoomEvent::Said(_)) => {
                    said_seq += 1;
                    history.published(said_seq);
                    let (subject, payload) = encode(&config.server_id, said_seq, &event);
                    // Unguessable: the stream drops a message whose id it
                    // has seen, and another server could otherwise store
                    // one of its own under our next id first.
                    let id = format!("{}-{said_seq}-{}", config.server_id, unguessable());
                    // Live at once by core NATS while connected (a
                    // publish never waits then): servers get it even while
                    // JetStream elects a leader or the outbox waits for an
                    // acknowledgement. The stream stores it once, by its
                    // id, whichever copy comes first.
                    if client.connection_state() == async_nats::connection::State::Connected {
                        let mut headers = async_nats::HeaderMap::new();
                        headers.insert("Nats-Msg-Id", id.as_str());
                        let live = payload.clone().into();
                        if let Err(e) = client
                            .publish_with_headers(subject.clone(), headers, live)
                            .await
                        {
                            tracing::info!("nats: live publish failed: {e}");
                        }
                    }
                    let m = outbox::Unsent {
                        subject,
                        id,
                        payload: String::from_utf8_lossy(&payload).into_owned(),
                    };
                    if !unsent.push(m) {
                        dropped += 1;
                        if dropped.is_power_of_two() {
                            tracing::warn!(
                                dropped,
                                "nats: unsent messages over the limit, dropped"
                            );
                        }
                    }
                }
                Ok(event) => {
                    presence_seq += 1;
                    let (subject, payload) = encode(&config.server_id, presence_seq, &event);
                    if let Err(e) = client.publish(subject, payload.into()).await {
                        tracing::warn!("nats: publish failed: {e}");
                    }
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    send_unsent(&mut history, &mut unsent).await;
                    let _ = client.flush().await;
                    // A moment for the presence task to delete our key.
                    let _ = tokio::time::timeout(Duration::from_millis(500), presence).await;
                    return;
                }
            }
        }
        if !unsent.is_empty()
            && tokio::time::Instant::now() >= unsent_at
            && !send_unsent(&mut history, &mut unsent).await
        {
            unsent_at = tokio::time::Instant::now() + JS_RETRY;
        }
        let retry = tokio::time::sleep_until(if unsent.is_empty() {
            retry_at
        } else {
            retry_at.min(unsent_at)
        });
        let waiting = !unsent.is_empty() || said.is_none();
        let next_said = async {
            match &mut said {
                Some(s) => s.next().await,
                None => std::future::pending().await,
            }
        };
        let held_until = holding.next_due();
        let let_go =
            tokio::time::sleep_until(held_until.map_or(retry_at, tokio::time::Instant::from_std));
        tokio::select! {
            () = wake.notified() => {}
            () = retry, if waiting => {}
            () = let_go, if held_until.is_some() => {
                for (subject, payload) in holding.due(std::time::Instant::now(), false) {
                    pass(&mut inbound, &events, &subject, &payload);
                }
            }
            delivered = next_said => match delivered {
                Some(stored::Delivered { message, stream_seq, .. }) => {
                    last_stream_seq = stream_seq;
                    if guard::made_by_jetstream(&message) {
                        continue;
                    }
                    if let Some(key) = said_key(&message.subject, &message.payload) {
                        holding.arrived(&key);
                    }
                    pass(&mut inbound, &events, &message.subject, &message.payload);
                }
                // Lost (NATS restarted, the consumer went): made again
                // from after the last message seen.
                None => said = None,
            },
            message = rooms.next() => match message {
                Some(message) if guard::delivered_by_jetstream(&message) => {
                    if let Some(dropped) = inbound.dropped.one() {
                        tracing::warn!(dropped, "nats: a JetStream answer on a room subject dropped");
                    }
                }
                Some(message) => match said_key(&message.subject, &message.payload) {
                    // A message's live copy waits for the stream's order.
                    Some(key) if said.is_some() => {
                        let now = std::time::Instant::now();
                        let held = (message.subject.to_string(), message.payload);
                        for (subject, payload) in holding.hold(key, held, now) {
                            pass(&mut inbound, &events, &subject, &payload);
                        }
                    }
                    _ => pass(&mut inbound, &events, &message.subject, &message.payload),
                },
                None => return,
            },
            message = whispers.next() => match message {
                Some(message) if guard::delivered_by_jetstream(&message) => {
                    if let Some(dropped) = whispers_dropped.one() {
                        tracing::warn!(dropped, "nats: a JetStream answer on a private-message subject dropped");
                    }
                }
                Some(message) => {
                    let reply = message.reply.as_ref().map(|r| r.as_str());
                    match whisper::decode(&config.server_id, &message.subject, &message.payload, reply) {
                        Some(event) => {
                            if events.try_send(event).is_err() {
                                if let Some(dropped) = whispers_dropped.one() {
                                    tracing::warn!(dropped, "nats: the hub is behind, a private message was dropped");
                                }
                            }
                        }
                        None => {
                            if let Some(dropped) = whispers_dropped.one() {
                                tracing::warn!(dropped, "nats: malformed private message dropped");
                            }
                        }
                    }
                }
                None => return,
            },
        }
    }
}

/// Hands one room event from another server to the hub, if it is valid,
/// came on its origin's subject and is new.
fn pass(inbound: &mut Inbound, events: &Sender<NatsEvent>, subject: &str, payload: &[u8]) {
    if let Some(event) = inbound.take(subject, payload) {
        if events.try_send(event).is_err() {
            if let Some(dropped) = inbound.dropped.one() {
                tracing::warn!(
                    dropped,
                    "nats: the hub is behind, a remote room event was dropped"
                );
            }
        }
    }
}

/// The identity of a room message (not a join or leave) from its body,
/// if it came on its origin's subject.
fn said_key(subject: &str, payload: &[u8]) -> Option<order::Key> {
    if payload.len() > MAX_EVENT_BYTES {
        return None;
    }
    let body: Value = serde_json::from_slice(payload).ok()?;
    if body.get("kind")?.as_str()? != "said" {
        return None;
    }
    let server = body.get("server")?.as_str()?;
    let seq = body.get("seq")?.as_u64()?;
    let on_its_subject = subject_origin(subject) == Some(server);
    (valid_server_id(server) && on_its_subject).then(|| (server.to_owned(), seq))
}

/// The origin server id a subject carries as its last token.
fn subject_origin(subject: &str) -> Option<&str> {
    subject.rsplit_once('.').map(|(_, origin)| origin)
}

/// Follows [`HISTORY_STREAM`] from after `last` (from now on if 0), or
/// from its first message if the stream was made anew since it was last
/// found (then `last` becomes 0), through a consumer of our own (see
/// `stored`), made again after a gap or a reconnect.
async fn follow(history: &mut History, last: &mut u64) -> Option<stored::Stored> {
    use async_nats::jetstream::consumer::DeliverPolicy;
    let js = history.js.clone();
    history.stream().await?;
    let deliver_policy = if std::mem::take(&mut history.renewed) {
        // A new stream: its sequences start again, and all it holds was
        // stored since NATS came back (outboxes draining).
        *last = 0;
        DeliverPolicy::All
    } else if *last == 0 {
        DeliverPolicy::New
    } else {
        DeliverPolicy::ByStartSequence {
            start_sequence: *last + 1,
        }
    };
    let stream = history.stream.as_ref()?;
    stored::Stored::start(&js, stream, String::new(), deliver_policy)
        .await
        .ok()
}

/// Publishes the unsent messages in order through JetStream, each once
/// acknowledged; stops at the first failure (NATS or JetStream away), to
/// try again later from there. True when all were sent.
async fn send_unsent(history: &mut History, unsent: &mut outbox::Outbox) -> bool {
    let found = tokio::time::timeout(JS_PATIENCE, history.stream()).await;
    if !matches!(found, Ok(Some(_))) {
        return false;
    }
    while let Some(m) = unsent.front() {
        // The stream stores a retried copy once.
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", m.id.as_str());
        let (mut subject, payload) = (m.subject.clone(), m.payload.clone().into_bytes());
        // A journal written before the origin was in the subject.
        if subject.ends_with(".said") {
            subject = format!("{subject}.{}", history.config.server_id);
        }
        let sent = async {
            history
                .js
                .publish_with_headers(subject, headers, payload.into())
                .await
                .ok()?
                .await
                .ok()
        };
        match tokio::time::timeout(JS_PATIENCE, sent).await {
            Ok(Some(_ack)) => {
                unsent.pop_acked();
            }
            _ => {
                tracing::info!(unsent = unsent.len(), "nats: messages wait for JetStream");
                return false;
            }
        }
    }
    true
}

/// Reads room histories back from [`HISTORY_STREAM`], making the stream
/// if no server has yet.
struct History {
    js: async_nats::jetstream::Context,
    stream: Option<async_nats::jetstream::stream::Stream>,
    config: NatsConfig,
    /// The sequences of the messages this process published, newest
    /// last (at most [`OWN_REMEMBERED`]): only those are this server's
    /// own in a history. Server ids are what a message says, so one that
    /// only claims to be ours is shown as any other server's
    /// (`name@<our id>`), never as a local user.
    own: Recent,
    /// When the stream last found was made (ns since 1970), to tell a
    /// stream made anew (NATS back with an empty store) from the same.
    created: Option<i128>,
    /// The stream found is not the one followed before: follow it from
    /// its first message.
    renewed: bool,
}

/// The most bytes [`HISTORY_STREAM`] keeps, in all rooms together (a
/// stream made by an older version keeps its own limits).
const HISTORY_MAX_BYTES: i64 = 256 * 1024 * 1024;

/// A room's history is read from at most this many times the history's
/// length (the stream keeps that length per room and origin server).
const HISTORY_ORIGINS_READ: usize = 64;

/// How many of its own published messages a server recognises in a
/// history.
const OWN_REMEMBERED: usize = 65_536;

impl History {
    /// Remembers that this process published message `seq`.
    fn published(&mut self, seq: u64) {
        self.own.insert(seq);
    }

    /// The stream, made or found on first use (and again after a failure).
    async fn stream(&mut self) -> Option<&async_nats::jetstream::stream::Stream> {
        if self.stream.is_none() {
            use async_nats::jetstream::stream;
            let config = stream::Config {
                name: HISTORY_STREAM.into(),
                subjects: vec![format!("{ROOM_SUBJECTS}.*.said.*")],
                max_messages_per_subject: i64::try_from(self.config.history_len.max(1))
                    .unwrap_or(i64::MAX),
                max_age: self.config.history_age,
                duplicate_window: Duration::from_secs(120),
                // What a server publishes is at most an event; the whole
                // stream is bounded in bytes too (oldest go first), not
                // only per room (a hostile publisher of junk on new
                // subjects filled it without limit).
                max_message_size: i32::try_from(MAX_EVENT_BYTES).unwrap_or(i32::MAX),
                max_bytes: HISTORY_MAX_BYTES,
                storage: stream::StorageType::File,
                discard: stream::DiscardPolicy::Old,
                num_replicas: self.config.replicas.max(1),
                // No server may take back or wipe what others said.
                deny_delete: true,
                deny_purge: true,
                ..Default::default()
            };
            match guard::checked_stream(&self.js, config).await {
                Ok(s) => {
                    let created = s.cached_info().created.unix_timestamp_nanos();
                    if self.created.is_some_and(|before| before != created) {
                        tracing::info!(
                            "nats: the history stream was made anew; following it from its start"
                        );
                        self.renewed = true;
                    }
                    self.created = Some(created);
                    self.stream = Some(s);
                }
                Err(e) => tracing::warn!("nats: history stream unavailable: {e}"),
            }
        }
        self.stream.as_ref()
    }

    /// The kept messages of `room`, oldest first; empty if NATS cannot
    /// tell within a second.
    async fn of(&mut self, room: &str) -> Vec<ChatMessage> {
        let limit = self.config.history_len;
        let own = self.config.server_id.clone();
        let subject = format!("{}.said.*", room_subject(room));
        // Finding the stream is inside the second too: with NATS away it
        // would otherwise wait for two JetStream timeouts (10 s).
        let read = async {
            use async_nats::jetstream::consumer::DeliverPolicy;
            let js = self.js.clone();
            let stream = self.stream().await?;
            let mut kept = stored::Stored::start(&js, stream, subject, DeliverPolicy::All)
                .await
                .ok()?;
            // The stream keeps `limit` per room and origin server: the
            // last `limit` of the room's, read from at most
            // HISTORY_ORIGINS_READ origins' worth.
            let most = limit.saturating_mul(HISTORY_ORIGINS_READ);
            let mut messages = std::collections::VecDeque::with_capacity(limit + 1);
            let mut read = 0;
            let mut pending = kept.at_start;
            while pending > 0 && read < most {
                let Some(delivered) = kept.next().await else {
                    tracing::info!(
                        room = %room_subject(room),
                        read,
                        "nats: a room's history read short (a delivery missed or the consumer lost)"
                    );
                    break;
                };
                (read, pending) = (read + 1, delivered.pending);
                let message = delivered.message;
                if message.payload.len() > MAX_EVENT_BYTES || guard::made_by_jetstream(&message) {
                    continue;
                }
                if let Some((server, seq, NatsEvent::Said { mut message, .. })) =
                    decode(&message.subject, &message.payload)
                {
                    if server == own && self.own.contains(seq) {
                        if let Some((name, _)) = message.from.rsplit_once('@') {
                            message.from = name.to_owned();
                        }
                    }
                    messages.push_back(message);
                    if messages.len() > limit {
                        messages.pop_front();
                    }
                }
            }
            Some(Vec::from(messages))
        };
        // Live traffic waits meanwhile: a second at most.
        match tokio::time::timeout(Duration::from_secs(1), read).await {
            Ok(Some(messages)) => messages,
            _ => {
                tracing::warn!(room = %room, "nats: room history unavailable");
                Vec::new()
            }
        }
    }
}

/// One room event as published: its subject and JSON body.
fn encode(server: &str, seq: u64, event: &RoomEvent) -> (String, Vec<u8>) {
    let (room, kind, body) = match event {
        RoomEvent::Said(m) => (
            &m.room,
            "said",
            json!({"kind": "said", "room": m.room, "name": m.from, "text": m.text,
                   "action": m.action, "ts": m.timestamp_ms}),
        ),
        RoomEvent::Joined { room, name } => (
            room,
            "presence",
            json!({"kind": "joined", "room": room, "name": name}),
        ),
        RoomEvent::Left { room, name, reason } => (
            room,
            "presence",
            json!({"kind": "left", "room": room, "name": name, "reason": reason}),
        ),
        // Never published (the NATS thread reads history for it instead).
        RoomEvent::Opened { room } => (room, "presence", json!({"kind": "opened"})),
    };
    let mut body = body;
    body["server"] = json!(server);
    body["seq"] = json!(seq);
    body["id"] = json!(match event {
        RoomEvent::Said(_) => format!("{server}-{seq}"),
        _ => format!("{server}-p{seq}"),
    });
    (
        format!("{}.{kind}.{server}", room_subject(room)),
        body.to_string().into_bytes(),
    )
}

/// Checks and decodes what other servers publish, dropping our own events
/// and any already seen.
struct Inbound {
    own: String,
    dropped: Dropped,
    /// The sequences seen from each origin server, for its messages
    /// (`true`) and its joins and leaves (`false`), numbered apart.
    seen: HashMap<(String, bool), Seen>,
}

/// The sequences seen from one origin: the last [`SEEN_WINDOW`] taken, in
/// the order they came. A message can arrive twice (live, and again from
/// the stream after a reconnect, or re-published after a lost
/// acknowledgement) and, in a failure, after a later one. Nothing but
/// that window is remembered: origins are not authenticated, so forged
/// sequences (far ahead, say) must not be able to make a real origin's
/// next ones look old; at worst they push its recent ones out of the
/// window, and a late second copy is shown twice.
struct Seen(Recent);

impl Default for Seen {
    fn default() -> Seen {
        Seen(Recent::new(SEEN_WINDOW))
    }
}

/// How many recent sequences are remembered per origin.
const SEEN_WINDOW: usize = 4096;

impl Seen {
    /// True the first time `seq` is offered (within the window).
    fn first(&mut self, seq: u64) -> bool {
        self.0.insert(seq)
    }
}

/// The last `cap` numbers inserted, in the order they came (the oldest
/// forgotten first).
struct Recent {
    cap: usize,
    order: std::collections::VecDeque<u64>,
    set: std::collections::HashSet<u64>,
}

impl Recent {
    fn new(cap: usize) -> Recent {
        Recent {
            cap,
            order: Default::default(),
            set: Default::default(),
        }
    }

    /// Remembers `n`; false if it was remembered already.
    fn insert(&mut self, n: u64) -> bool {
        if !self.set.insert(n) {
            return false;
        }
        self.order.push_back(n);
        while self.order.len() > self.cap {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
        true
    }

    fn contains(&self, n: u64) -> bool {
        self.set.contains(&n)
    }
}

/// Counts what is dropped and says when to log it (the 1st, 2nd, 4th,
/// 8th… time): a flood of bad input does not become a flood of log lines.
#[derive(Debug, Default)]
pub(crate) struct Dropped(u64);

impl Dropped {
    /// Counts one; `Some(count)` when it is time to log.
    pub(crate) fn one(&mut self) -> Option<u64> {
        self.0 += 1;
        self.0.is_power_of_two().then_some(self.0)
    }
}

impl Inbound {
    fn new(own: String) -> Inbound {
        Inbound {
            own,
            dropped: Dropped::default(),
            seen: HashMap::new(),
        }
    }

    fn take(&mut self, subject: &str, payload: &[u8]) -> Option<NatsEvent> {
        if payload.len() > MAX_EVENT_BYTES {
            if let Some(dropped) = self.dropped.one() {
                tracing::warn!(
                    bytes = payload.len(),
                    dropped,
                    "nats: oversized room event dropped"
                );
            }
            return None;
        }
        let event = decode(subject, payload);
        let Some((server, seq, event)) = event else {
            if let Some(dropped) = self.dropped.one() {
                let subject = lanlink_services::text::display_safe(subject);
                tracing::warn!(dropped, %subject, "nats: malformed room event, or one not on its origin's subject, dropped");
            }
            return None;
        };
        let own = server == self.own;
        let event = match event {
            // Our own message, back in the common order: the hub shows it
            // to the other local members then. Our joins and leaves are
            // not wanted back.
            NatsEvent::Said { mut message, .. } if own => {
                let bare = message
                    .from
                    .strip_suffix(&format!("@{}", self.own))
                    .map(str::to_owned);
                message.from = bare?;
                NatsEvent::OwnSaid { message }
            }
            _ if own => return None,
            event => event,
        };
        let key = (
            server,
            matches!(event, NatsEvent::Said { .. } | NatsEvent::OwnSaid { .. }),
        );
        if !self.seen.contains_key(&key) && self.seen.len() >= MAX_ORIGINS {
            // Forget every origin; a forgotten one may repeat an event at
            // worst (only a flood of fake server ids gets here).
            self.seen.clear();
        }
        self.seen
            .entry(key)
            .or_default()
            .first(seq)
            .then_some(event)
    }
}

/// `(server, seq, event)` from a body published on `subject`, or `None` if
/// anything is missing, of the wrong type, not a valid server id, or the
/// subject is not the event's own (`<room>.<said|presence>.<server>`: a
/// server may only speak on subjects carrying its id, which NATS
/// permissions can enforce, and only about the subject's room).
fn decode(subject: &str, payload: &[u8]) -> Option<(String, u64, NatsEvent)> {
    let body: Value = serde_json::from_slice(payload).ok()?;
    let text = |key: &str| body.get(key)?.as_str().map(str::to_owned);
    let server = text("server")?;
    if !valid_server_id(&server) {
        return None;
    }
    let seq = body.get("seq")?.as_u64()?;
    let room = text("room")?;
    let name = format!("{}@{server}", text("name")?);
    let event = match body.get("kind")?.as_str()? {
        "said" => NatsEvent::Said {
            server: server.clone(),
            message: ChatMessage {
                room,
                from: name,
                text: text("text")?,
                action: body.get("action")?.as_bool()?,
                timestamp_ms: body.get("ts")?.as_u64()?,
            },
        },
        kind @ ("joined" | "left") => NatsEvent::Presence {
            server: server.clone(),
            presence: Presence {
                room,
                name,
                change: if kind == "joined" {
                    PresenceChange::Joined
                } else {
                    PresenceChange::Left
                },
                reason: if kind == "left" {
                    text("reason")?
                } else {
                    String::new()
                },
            },
        },
        _ => return None,
    };
    let (room, kind) = match &event {
        NatsEvent::Said { message, .. } => (&message.room, "said"),
        NatsEvent::Presence { presence, .. } => (&presence.room, "presence"),
        _ => return None,
    };
    if subject != format!("{}.{kind}.{server}", room_subject(room)) {
        return None;
    }
    Some((server, seq, event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_once_and_hostile_ones_are_dropped() {
        let said = RoomEvent::Said(ChatMessage {
            room: "Lobby".into(),
            from: "ada".into(),
            text: "hi \"there\"".into(),
            action: false,
            timestamp_ms: 7,
        });
        let (subject, body) = encode("a-1", 1, &said);
        assert_eq!(subject, format!("{}.said.a-1", room_subject("LOBBY")));
        let mut inbound = Inbound::new("b".into());
        // On another server's subject (a server speaking as "a-1"), on
        // another room's, as a join: dropped, and not even counted as seen.
        let other_room = format!("{}.said.a-1", room_subject("kitchen"));
        for wrong in [
            "lanlink.room.6c6f626279.said.m",
            &other_room,
            &subject.replace("said", "presence"),
        ] {
            assert_eq!(inbound.take(wrong, &body), None, "{wrong}");
        }
        let Some(NatsEvent::Said { server, message }) = inbound.take(&subject, &body) else {
            panic!()
        };
        assert_eq!((server.as_str(), message.from.as_str()), ("a-1", "ada@a-1"));
        assert_eq!(message.text, "hi \"there\"");
        // Again: a duplicate.
        assert_eq!(inbound.take(&subject, &body), None);
        let left = RoomEvent::Left {
            room: "lobby".into(),
            name: "ada".into(),
            reason: "quit".into(),
        };
        let (on, body) = encode("a-1", 2, &left);
        assert!(matches!(
            inbound.take(&on, &body),
            Some(NatsEvent::Presence { .. })
        ));
        // Our own events are not shown twice.
        let (on, body) = encode("b", 3, &left);
        assert_eq!(inbound.take(&on, &body), None);
        // Garbage, wrong types, a bad server id, an oversized body.
        for bad in [
            &b"not json"[..],
            br#"{"server":"a","seq":"9","kind":"said"}"#,
            br#"{"server":"a b","seq":9,"kind":"joined","room":"r","name":"n"}"#,
            br#"{"server":"a","seq":9,"kind":"boom","room":"r","name":"n"}"#,
        ] {
            assert_eq!(inbound.take("lanlink.room.72.said.a", bad), None);
        }
        let big = vec![b' '; MAX_EVENT_BYTES + 1];
        assert_eq!(inbound.take("lanlink.room.72.said.a", &big), None);
        assert!(valid_server_id(&server_id("my server!")));
        assert!(server_id("").starts_with("lanlink-"));
        // Our own message back: for the hub to show in its place.
        let (on, body) = encode("b", 4, &said);
        assert!(matches!(inbound.take(&on, &body),
            Some(NatsEvent::OwnSaid { message }) if message.from == "ada"));
    }

    /// The permissions bind an id to its own subjects.
    #[test]
    fn permissions_allow_an_id_its_own_subjects_only() {
        let p = permissions("a");
        let list = |side: &str| -> Vec<String> {
            p[side]["allow"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect()
        };
        let (publish, subscribe) = (list("publish"), list("subscribe"));
        let said = RoomEvent::Said(ChatMessage {
            room: "lobby".into(),
            from: "ada".into(),
            text: "hi".into(),
            action: false,
            timestamp_ms: 7,
        });
        let (on, _) = encode("a", 1, &said);
        for own in [
            on.as_str(),
            "lanlink.server.b.pm.a",
            "lanlink.file.b.a",
            "lanlink.media.a.1073741824",
            "lanlink.media.b.want.a",
            "$KV.lanlink_presence.a",
        ] {
            assert!(publish.iter().any(|p| matches(p, own)), "{own}");
        }
        let (as_b, _) = encode("b", 1, &said);
        for other in [
            as_b.as_str(),
            "lanlink.server.c.pm.b",
            "lanlink.file.c.b",
            "lanlink.media.b.1073741824",
            "lanlink.media.c.want.b",
            "$KV.lanlink_presence.b",
            "$JS.API.STREAM.DELETE.LANLINK_HISTORY",
            "$JS.API.STREAM.PURGE.KV_lanlink_presence",
            "$JS.API.STREAM.UPDATE.LANLINK_HISTORY",
            "_INBOX_b.x",
        ] {
            assert!(!publish.iter().any(|p| matches(p, other)), "{other}");
        }
        assert!(subscribe.iter().any(|s| matches(s, "_INBOX_a.x.y")));
        for others in [
            "_INBOX_b.x",
            "lanlink.server.b.pm.c",
            "lanlink.file.b.c",
            "lanlink.media.b.want.c",
        ] {
            assert!(!subscribe.iter().any(|s| matches(s, others)), "{others}");
        }
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            without_password("nats://a:secret@h:4222"),
            "nats://a@h:4222"
        );
        assert_eq!(without_password("nats://a@h:4222"), "nats://a@h:4222");
        assert_eq!(without_password("nats://h:4222"), "nats://h:4222");
        assert_eq!(without_password("a:s@h"), "a@h");
    }

    /// NATS subject matching: `*` one token, `>` one or more at the end.
    fn matches(pattern: &str, subject: &str) -> bool {
        let (p, s): (Vec<_>, Vec<_>) = (pattern.split('.').collect(), subject.split('.').collect());
        for (i, t) in p.iter().enumerate() {
            match *t {
                ">" => return s.len() > i,
                "*" if i < s.len() => {}
                t if s.get(i) == Some(&t) => {}
                _ => return false,
            }
        }
        p.len() == s.len()
    }

    /// A hostile server forging another's sequences far ahead cannot make
    /// that server's next messages look old (the attack on NATS silenced
    /// a server until restart this way: 8,194 events, 1.2 MB).
    #[test]
    fn forged_sequences_do_not_silence_a_real_server() {
        let said = |text: &str| {
            RoomEvent::Said(ChatMessage {
                room: "lobby".into(),
                from: "cy".into(),
                text: text.into(),
                action: false,
                timestamp_ms: 7,
            })
        };
        let mut inbound = Inbound::new("a".into());
        let (on, real) = encode("c", 1_000, &said("before"));
        assert!(inbound.take(&on, &real).is_some());
        for i in 0..2 * SEEN_WINDOW as u64 + 2 {
            let (on, forged) = encode("c", u64::MAX - i, &said("x"));
            assert!(inbound.take(&on, &forged).is_some());
        }
        let (on, next) = encode("c", 1_001, &said("after"));
        assert!(
            matches!(inbound.take(&on, &next), Some(NatsEvent::Said { message, .. }) if message.text == "after")
        );
        assert_eq!(inbound.take(&on, &next), None, "still once");
    }
}
