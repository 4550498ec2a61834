//! The lanlink server: the transport's connections wired to the services.
//!
//! [`run`] serves on an already-bound listener until a [`Shutdown`] fires.
//! The transport runs its accept loop and a few I/O threads (one per core)
//! that serve every established connection; one *hub*
//! thread owns every service and handles connection events in order, so
//! services need no locks. Whatever a service wants sent is queued on the
//! recipients' connections, which never blocks the hub: a peer that cannot
//! keep up is disconnected by its own queue limit. Nor does the hub touch a
//! disk: file reads, hashes, writes and syncs run on a small
//! [`WorkerPool`], taking turns by connection,
//! and their results come back to the hub as events.

use std::collections::HashMap;
use std::net::IpAddr;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Receiver;
use lanlink_proto::file::FileCancel;
use lanlink_proto::{control, Capabilities, ErrorCode, Frame, Message, Service, StreamId};
use lanlink_transport::limits::DEFAULT_MAX_KEYS;
use lanlink_transport::{
    BanList, ConnHandle, ConnId, EncodedFrame, Event, GuessLimit, KeyedBuckets, Rate, RefusalLog,
    Shutdown, TokenBucket,
};

use crate::workers::{WorkerConfig, WorkerPool};

/// Whose turn a file job takes in the workers: the address of the client it
/// is for (`None`: the server's own housekeeping, or a client already gone).
pub type WorkOwner = Option<std::net::IpAddr>;
use crate::ServerError;
use lanlink_services::chat::names::{check_hello_name, fold};
use lanlink_services::chat::{ChatConfig, ChatService, Now, Outgoing};
use lanlink_services::file::{FileConfig, FileDone, FileJob, FileService, TransferInfo};
use lanlink_services::media::{AudioTap, MediaConfig, MediaRelay, VideoTap};
use lanlink_services::text::display_safe;
use lanlink_services::ServiceError;

/// The connection id media published by the server process itself is
/// filed under (the transport numbers connections from 1).
const LOCAL_PUBLISHER: ConnId = lanlink_services::media::LOCAL;

/// The default TCP port of a lanlink server.
pub const DEFAULT_PORT: u16 = lanlink_transport::DEFAULT_PORT;

/// Everything a server can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The name the server gives itself in `Welcome`.
    pub server_name: String,
    /// Transport limits: handshake deadline, token, client limit, queues.
    pub transport: lanlink_transport::ServerConfig,
    /// Chat rooms: history, message size, rate limit, message of the day.
    pub chat: ChatConfig,
    /// File sharing and uploads.
    pub file: FileConfig,
    /// The threads that do the file service's disk work.
    pub workers: WorkerConfig,
    /// Limits of the audio and video relay.
    pub media: MediaConfig,
    /// Sees every relayed video frame (the HTTP MJPEG server uses this).
    pub video_tap: Option<VideoTap>,
    /// Sees every relayed audio packet (the browser's `/audio` uses this).
    pub audio_tap: Option<AudioTap>,
    /// The browser server's frame store (fed by `video_tap`): another
    /// server's stream that a browser here watches is fetched like one a
    /// lanlink viewer here watches (scale-out only).
    pub browser_frames: Option<crate::http::LatestFrames>,
    /// The browsers listening at `/audio` (fed by `audio_tap`): while any
    /// listens, other servers' audio streams are fetched (scale-out only).
    pub browser_audio: Option<crate::http::AudioListeners>,
    /// Media the server publishes itself: `(stream, message)` pairs, an
    /// announcement first, as a client would send them.
    pub local_media: Option<Receiver<(StreamId, Message)>>,
    /// The token that authorises `Admin` requests (kick, ban); `None`
    /// refuses them all.
    pub admin_token: Option<String>,
    /// Wrong admin tokens one address may try (over all its connections);
    /// once spent, every admin request from it is refused, right token or
    /// not, until the bucket refills. Each wrong token also closes its
    /// connection. Default: 5 a minute.
    pub admin_guesses: Rate,
    /// Wrong admin tokens all addresses together may try; once spent, an
    /// address that guessed wrong within the hour is refused unchecked,
    /// others are still checked (an operator is never locked out by
    /// guessers elsewhere). Default: 30 a minute.
    pub admin_guesses_in_all: Rate,
    /// Nicknames refused from the start (operators add more with `ban`).
    /// Banned addresses live in `transport.bans`.
    pub banned_names: Vec<String>,
    /// Scale-out through NATS (`--nats`); `None` serves alone.
    pub nats: Option<crate::nats::NatsConfig>,
}

impl ServerConfig {
    /// Whether the share and the inbox it names are folders
    /// ([`ServerError::NotAFolder`] if not): [`run`] checks this first, a
    /// program may check it before it says it is serving.
    pub fn check_folders(&self) -> Result<(), ServerError> {
        for (what, dir) in [("share", &self.file.share), ("inbox", &self.file.inbox)] {
            if let Some(path) = dir.as_ref().filter(|d| !d.is_dir()) {
                return Err(ServerError::NotAFolder {
                    what,
                    path: path.clone(),
                    reason: if path.exists() {
                        "not a folder"
                    } else {
                        "no such folder (create it first)"
                    },
                });
            }
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            server_name: "lanlink".into(),
            transport: lanlink_transport::ServerConfig::default(),
            chat: ChatConfig::default(),
            file: FileConfig::default(),
            workers: WorkerConfig::default(),
            media: MediaConfig::default(),
            video_tap: None,
            audio_tap: None,
            browser_frames: None,
            browser_audio: None,
            local_media: None,
            admin_token: None,
            admin_guesses: Rate::per_minute(5),
            admin_guesses_in_all: Rate::per_minute(30),
            banned_names: Vec::new(),
            nats: None,
        }
    }
}

/// Serves on `listener` until `shutdown` fires; then says goodbye to every
/// client, joins every thread and returns.
///
/// With TLS (as clients expect by default: `ServerConfig::default()` is
/// plain TCP, which clients reach only with `SessionBuilder::plain`) and a
/// shared folder:
///
/// ```no_run
/// use std::net::TcpListener;
/// use lanlink_server::{run, ServerConfig, ServerIdentity, Shutdown};
///
/// let mut config = ServerConfig::default();
/// // Kept in a folder, so clients that pinned it trust it next time.
/// let (identity, _new) = ServerIdentity::load_or_create("server-data".as_ref())?;
/// println!("fingerprint {}", identity.fingerprint());
/// config.transport.tls = Some(identity);
/// config.file.share = Some("shared".into());
/// let listener = TcpListener::bind("0.0.0.0:7878")?;
/// run(listener, config, Shutdown::new())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Besides its own threads (the hub, the transport's I/O threads, the disk
/// workers), it starts one that, every 15 s while the process uses more
/// than 256 MiB, hands memory freed after a burst back to the system
/// (`malloc_trim` on glibc): for the whole process, which is harmless to
/// a program embedding the server.
///
/// # Errors
/// [`ServerError::NotAFolder`] for a share or inbox that is missing; the
/// transport's errors (TLS set-up); a thread that could not start.
pub fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: Shutdown,
) -> Result<(), ServerError> {
    // Bounded: if the hub falls behind, connection readers wait, and TCP
    // slows the senders down, instead of events piling up in memory.
    let (events_tx, events) = crossbeam_channel::bounded(64 * 1024);
    let mut hub = Hub::new(&config)?;
    crate::memory::give_back_after_bursts(&shutdown)
        .map_err(|e| ServerError::io("spawn memory thread", e))?;
    // Without local media, a receiver that never yields keeps one loop.
    let mut local = config
        .local_media
        .clone()
        .unwrap_or_else(crossbeam_channel::never);
    let results = hub.job_results();
    let remote = hub.nats_events();
    let remote_media = hub.nats_media();
    let remote_files = hub.nats_files();
    let ticks = crossbeam_channel::tick(TICK);
    let mut held_timer = HeldTimer::default();
    let hub_thread = std::thread::Builder::new()
        .name("lanlink-hub".into())
        .spawn(move || loop {
            let held = held_timer.until(hub.next_held_due());
            crossbeam_channel::select! {
                recv(events) -> event => match event {
                    Ok(event) => {
                        // Take whatever else is already waiting, then send
                        // once: under load, batches grow and wake-ups shrink.
                        let now = now();
                        hub.handle_deferred(event, now);
                        for event in events.try_iter().take(1024) {
                            hub.handle_deferred(event, now);
                            // One event can fan out to every client: keep
                            // the batch's frames bounded, not 1,024 × N.
                            if hub.out.len() >= FLUSH_AT {
                                hub.flush();
                            }
                        }
                        hub.flush();
                    }
                    Err(_) => break,
                },
                recv(results) -> done => {
                    if let Ok((owner, done)) = done {
                        hub.job_done(owner, done);
                        for (owner, done) in results.try_iter().take(1024) {
                            hub.job_done(owner, done);
                        }
                        hub.flush();
                    }
                },
                recv(remote) -> event => {
                    if let Ok(event) = event {
                        hub.handle_nats(event, now());
                        for event in remote.try_iter().take(1024) {
                            hub.handle_nats(event, now());
                        }
                        hub.flush();
                    }
                },
                recv(remote_media) -> frame => {
                    if let Ok(frame) = frame {
                        let now = Instant::now();
                        hub.handle_remote_media(frame, now);
                        for frame in remote_media.try_iter().take(256) {
                            hub.handle_remote_media(frame, now);
                        }
                        hub.flush();
                    }
                },
                recv(remote_files) -> file => {
                    if let Ok(file) = file {
                        let now = now();
                        hub.handle_remote_file(file, &now);
                        for file in remote_files.try_iter().take(256) {
                            hub.handle_remote_file(file, &now);
                        }
                        hub.flush();
                    }
                },
                recv(held) -> _ => {
                    held_timer.fired();
                    hub.show_held(Instant::now());
                    hub.flush();
                },
                recv(ticks) -> _ => {
                    hub.tick(now());
                    hub.flush();
                },
                recv(local) -> m => match m {
                    Ok((stream, message)) => hub.handle_local(stream, message),
                    // The local publishers are gone; keep serving clients.
                    Err(_) => local = crossbeam_channel::never(),
                },
            }
        })
        .map_err(|e| ServerError::io("spawn hub thread", e))?;
    let result = lanlink_transport::serve(listener, config.transport, shutdown, events_tx);
    // `serve` has joined every connection, so every event sender is gone
    // and the hub's loop ends once it has handled the last `Closed`.
    let _ = hub_thread.join();
    Ok(result?)
}

/// The hub loop's timer for the earliest held local line: made again only
/// when that moment changes or it has fired, not on every turn.
struct HeldTimer {
    due: Option<Instant>,
    timer: Receiver<Instant>,
}

impl Default for HeldTimer {
    fn default() -> Self {
        HeldTimer {
            due: None,
            timer: crossbeam_channel::never(),
        }
    }
}

impl HeldTimer {
    /// A receiver that fires at `due` (never if `None`).
    fn until(&mut self, due: Option<Instant>) -> Receiver<Instant> {
        if due != self.due {
            self.timer = due.map_or_else(crossbeam_channel::never, crossbeam_channel::at);
            self.due = due;
        }
        self.timer.clone()
    }

    /// It fired: the next call makes a new one.
    fn fired(&mut self) {
        *self = HeldTimer::default();
    }
}

/// What other servers may send here (scale-out): each its own rate, and
/// all together [`REMOTE_SERVERS_AT_ONCE`] times that. Server ids are what
/// the messages say, so a hostile server could invent a new one for every
/// few messages; the budget in all bounds what all of them reach users.
struct RemoteLimit {
    per_server: KeyedBuckets<String>,
    in_all: TokenBucket,
    dropped: crate::nats::Dropped,
}

/// How many other servers' worth of traffic the budget in all allows.
const REMOTE_SERVERS_AT_ONCE: u32 = 4;

impl RemoteLimit {
    fn new(per_server: Rate, now: Instant) -> RemoteLimit {
        let in_all = Rate {
            burst: per_server.burst.saturating_mul(REMOTE_SERVERS_AT_ONCE),
            per_second: per_server.per_second * f64::from(REMOTE_SERVERS_AT_ONCE),
        };
        RemoteLimit {
            per_server: KeyedBuckets::new(per_server, DEFAULT_MAX_KEYS),
            in_all: TokenBucket::new(in_all, now),
            dropped: Default::default(),
        }
    }

    /// Takes one from `server`'s budget and the budget in all.
    fn try_take(&mut self, server: &String, now: Instant) -> Result<(), Duration> {
        self.per_server.try_take(server, now)?;
        self.in_all.try_take(now)
    }
}

/// Frames waiting in a batch past which the hub sends them before taking
/// more events. A join or a line in a room of N makes N frames, so a batch
/// of a thousand joins at 5,000 clients would otherwise hold millions of
/// frames (hundreds of MiB) at once, and the memory stays with the process.
const FLUSH_AT: usize = 16 * 1024;

/// The longest close reason shown to the people in a leaver's rooms, in
/// bytes: a goodbye text is the peer's, and one leave reaches everyone.
const MAX_SHOWN_REASON: usize = 200;

/// `text` cut to at most `max` bytes (on a character boundary), with `…`
/// to show it was cut.
fn shorten(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max.saturating_sub('…'.len_utf8());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// The longest `who` answer, in bytes: an admin reply is one wire string
/// (at most 65 535 bytes).
const MAX_WHO_REPLY: usize = 60_000;

/// The most items of one list (rooms, streams, transfers) `who` shows for
/// a connection.
const MAX_WHO_ITEMS: usize = 8;

/// `items` escaped and joined, at most [`MAX_WHO_ITEMS`] of them.
fn safe_list<T: AsRef<str>>(items: &[T]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    let mut shown: Vec<String> = items
        .iter()
        .take(MAX_WHO_ITEMS)
        .map(|i| display_safe(i.as_ref()).to_string())
        .collect();
    if items.len() > MAX_WHO_ITEMS {
        shown.push(format!("+{} more", items.len() - MAX_WHO_ITEMS));
    }
    shown.join(", ")
}

/// A Unix time in milliseconds as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc_time(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// A duration as `42s`, `3m05s` or `2h07m`.
fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

/// The connection an offer to `nick` goes to here: its newest receiver
/// (`lanlink receive`), else the chat user of that name.
fn local_receiver(
    chat: &ChatService,
    receivers: &std::collections::BTreeMap<ConnId, String>,
    nick: &str,
) -> Option<ConnId> {
    let key = fold(nick);
    receivers
        .iter()
        .rev()
        .find(|(_, name)| **name == key)
        .map(|(id, _)| *id)
        .or_else(|| chat.conn_of(nick))
}

/// Answers `conn`'s confirmations `tokens`, in order.
fn confirmed(out: &mut Vec<Outgoing>, conn: ConnId, tokens: Vec<u64>) {
    out.extend(
        tokens
            .into_iter()
            .map(|token| Outgoing::control(conn, control::Confirmed { token })),
    );
}

/// Logs the file requests worth an operator's eye: downloads, uploads and
/// files offered to another user (relayed sends), with the user's name.
fn log_file_request(conn: ConnId, user: &str, message: &Message, loud: bool) {
    // Beyond its budget, a flood of requests costs no formatting either
    // unless someone is debugging.
    if !loud && !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let user = display_safe(user);
    let line = match message {
        Message::FileRequest(r) => format!(
            "download requested: file={} offset={}",
            display_safe(&r.name),
            r.offset
        ),
        Message::FileOffer(o) => match &o.to {
            Some(to) => format!(
                "file offered to a user (relayed send): to={} file={} size={}",
                display_safe(to),
                display_safe(&o.name),
                o.size
            ),
            None => format!(
                "upload offered: file={} size={}",
                display_safe(&o.name),
                o.size
            ),
        },
        _ => return,
    };
    // Within the address's budget at the operator's level; beyond it
    // only for debugging, so that requests cannot fill the disk with log.
    if loud {
        tracing::info!(conn = %conn, name = %user, "{line}");
    } else {
        tracing::debug!(conn = %conn, name = %user, "{line}");
    }
}

/// How often the hub's timers are checked.
const TICK: Duration = Duration::from_secs(1);

fn list_or_none<T: AsRef<str>>(items: &[T]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn now() -> Now {
    Now {
        instant: Instant::now(),
        unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    }
}

/// Owns the services and the connections' handles; turns transport events
/// into service calls and service output into queued frames.
///
/// Sans-IO apart from the handles it sends through: drive it with
/// [`Hub::handle`] and any clock you like.
pub struct Hub {
    server_name: String,
    max_payload: u32,
    /// Welcomed connections and the name each gave.
    conns: HashMap<ConnId, (ConnHandle, String)>,
    /// When each welcomed connection was welcomed (for `who`).
    since: HashMap<ConnId, Now>,
    /// Connections that receive file offers for their name without
    /// chatting ([`Capabilities::OFFERS`]), with that name case-folded.
    /// Ordered by id: the newest one gets the offers.
    receivers: std::collections::BTreeMap<ConnId, String>,
    /// Every connection that does not chat (receivers, senders, talkers,
    /// cameras…), with its name case-folded: one name is one person, so
    /// nobody elsewhere publishes or offers files under it.
    outside_chat: HashMap<ConnId, String>,
    chat: ChatService,
    file: FileService,
    /// Runs the file service's disk work.
    /// File work, in turns by the address of the client it is for
    /// ([`WorkOwner`]): a hundred connections from one address get one turn
    /// between them, not a hundred turns ahead of everyone else.
    workers: WorkerPool<WorkOwner, FileJob, FileDone>,
    media: MediaRelay,
    out: Vec<Outgoing>,
    admin: Admin,
    /// The link to the other servers (`--nats`), and the rate limit of
    /// the events each of them sends.
    nats: Option<(crate::nats::NatsLink, RemoteLimit)>,
    /// Other servers' streams in the relay, and which of ours they want.
    remote_media: crate::remote_media::RemoteMedia,
    /// Other servers as connections of the file service.
    remote_files: crate::remote_files::RemoteFiles,
    /// Confirmations waiting for other servers' answers to private
    /// messages sent before them.
    held_confirms: crate::confirms::HeldConfirms,
    /// File requests and peers' `Error` frames logged at the info level,
    /// per address: a burst of 20, then one a second (the rest at the
    /// debug level).
    file_log: KeyedBuckets<IpAddr>,
}

/// The operator's tools: the admin token and the bans.
struct Admin {
    token: Option<String>,
    /// Wrong tokens per address.
    guesses: GuessLimit,
    addresses: BanList,
    refusals: RefusalLog,
}

impl Hub {
    /// A hub with empty services and its worker threads started.
    pub fn new(config: &ServerConfig) -> Result<Hub, ServerError> {
        config.check_folders()?;
        let mut chat = ChatService::new(config.chat.clone());
        for name in &config.banned_names {
            chat.ban_name(name);
        }
        let nats = match &config.nats {
            Some(nats) => {
                chat.relay_room_events();
                chat.set_server_id(&nats.server_id);
                let urls: Vec<String> = nats
                    .urls
                    .iter()
                    .map(|u| crate::nats::without_password(u))
                    .collect();
                tracing::info!(server_id = %nats.server_id, ?urls, "scale-out through NATS");
                // Another server speaks for all its users: it may send what
                // a whole address of local users may, ten times over.
                let per_address = config.chat.address_message_rate;
                let rate = Rate {
                    burst: per_address.burst.saturating_mul(10),
                    per_second: per_address.per_second * 10.0,
                };
                Some((
                    crate::nats::NatsLink::start(crate::nats::NatsConfig {
                        history_len: config.chat.history_len,
                        max_media_payload: config.transport.conn.max_payload,
                        ..nats.clone()
                    })?,
                    RemoteLimit::new(rate, Instant::now()),
                ))
            }
            None => None,
        };
        Ok(Hub {
            server_name: config.server_name.clone(),
            max_payload: config.transport.conn.max_payload,
            conns: HashMap::new(),
            since: HashMap::new(),
            receivers: std::collections::BTreeMap::new(),
            outside_chat: HashMap::new(),
            chat,
            file: {
                let mut file = FileService::new(config.file.clone());
                file.set_refusal_log(config.transport.refusals.clone());
                file
            },
            workers: WorkerPool::new(&config.workers, FileJob::run)?,
            media: MediaRelay::with_config(config.media.clone(), config.video_tap.clone())
                .with_audio_tap(config.audio_tap.clone()),
            out: Vec::new(),
            admin: Admin {
                token: config.admin_token.clone(),
                guesses: GuessLimit::with_rates(config.admin_guesses, config.admin_guesses_in_all),
                addresses: config.transport.bans.clone(),
                refusals: config.transport.refusals.clone(),
            },
            nats,
            remote_files: crate::remote_files::RemoteFiles::default(),
            held_confirms: Default::default(),
            file_log: KeyedBuckets::new(
                Rate {
                    burst: 20,
                    per_second: 1.0,
                },
                DEFAULT_MAX_KEYS,
            ),
            remote_media: crate::remote_media::RemoteMedia::new(
                config.chat.max_name_len,
                crate::remote_media::Browsers {
                    frames: config.browser_frames.clone(),
                    audio: config.browser_audio.clone(),
                },
            ),
        })
    }

    /// Where the results of the hub's jobs arrive: hand each to
    /// [`job_done`](Self::job_done).
    pub fn job_results(&self) -> crossbeam_channel::Receiver<(WorkOwner, FileDone)> {
        self.workers.results().clone()
    }

    /// Whose turn a job for `conn` takes: its address, or `None` for the
    /// server's own housekeeping and for a client already gone.
    fn work_owner(&self, conn: ConnId) -> WorkOwner {
        self.conns
            .get(&conn)
            .map(|(handle, _)| handle.peer().ip().to_canonical())
    }

    /// Takes back the result of a job of `owner`'s, and keeps what it
    /// leads to until [`flush`](Self::flush).
    pub fn job_done(&mut self, owner: WorkOwner, done: FileDone) {
        self.workers.finished(owner);
        self.file.job_done(done, &mut self.out);
    }

    /// Where the other servers' room events arrive (never, without
    /// `--nats`): hand each to [`handle_nats`](Self::handle_nats).
    pub fn nats_events(&self) -> Receiver<crate::nats::NatsEvent> {
        self.nats
            .as_ref()
            .map_or_else(crossbeam_channel::never, |(link, _)| link.events().clone())
    }

    /// Shows what another server's room says to this server's members,
    /// within that server's rate limit and the chat's own checks; keeps
    /// what it sends until [`flush`](Self::flush).
    pub fn handle_nats(&mut self, event: crate::nats::NatsEvent, now: Now) {
        use crate::nats::NatsEvent;
        let Some((link, limit)) = &mut self.nats else {
            return;
        };
        let (server, result) = match event {
            NatsEvent::Connected => {
                tracing::info!("nats: connected");
                self.chat.set_remote_unknown(false);
                // Local lines in shared rooms take their place in the
                // common order (they come back within the hold).
                self.chat
                    .hold_own_lines(Some(crate::nats::HOLD), &mut self.out);
                return;
            }
            NatsEvent::Disconnected => {
                tracing::warn!("nats: disconnected; serving local users, retrying");
                self.chat.set_remote_unknown(true);
                self.chat.hold_own_lines(None, &mut self.out);
                return;
            }
            NatsEvent::OwnSaid { message } => {
                self.chat.show_own(&message, &mut self.out);
                return;
            }
            NatsEvent::Rosters { server, rooms } => {
                self.chat.set_remote_members(&server, rooms);
                return;
            }
            NatsEvent::ServerGone { server } => {
                tracing::info!(server = %server, "nats: server gone from presence");
                self.chat.forget_server(&server);
                self.remote_media
                    .server_gone(&mut self.media, &server, &mut self.out);
                // Transfers relayed with it end, as with a user who left.
                if let Some(conn) = self.remote_files.known(&server) {
                    self.file.disconnect(conn, &mut self.out);
                }
                return;
            }
            NatsEvent::Streams { server, streams } => {
                self.remote_media.set_streams(
                    &mut self.media,
                    &server,
                    streams,
                    now.instant,
                    &mut self.out,
                );
                return;
            }
            NatsEvent::MediaWanted { streams } => {
                self.remote_media.set_exported(streams);
                return;
            }
            NatsEvent::Said { server, message } => {
                if limit.try_take(&server, now.instant).is_err() {
                    if let Some(dropped) = limit.dropped.one() {
                        tracing::warn!(server = %server, dropped, "nats: remote servers over their rate, messages dropped");
                    }
                    return;
                }
                let result = self.chat.deliver_remote(message, &mut self.out);
                (server, result)
            }
            NatsEvent::History { room, messages } => {
                self.chat.seed_history(&room, messages, &mut self.out);
                return;
            }
            NatsEvent::Whisper {
                server,
                message,
                reply,
            } => {
                use crate::nats::WhisperAnswer;
                let answer = if limit.try_take(&server, now.instant).is_err() {
                    WhisperAnswer::Busy
                } else {
                    match self.chat.deliver_remote_whisper(message, &mut self.out) {
                        Ok(()) => WhisperAnswer::Delivered,
                        Err(ServiceError::NoSuchUser { .. }) => WhisperAnswer::Unknown,
                        Err(e) => {
                            tracing::warn!(server = %server, "nats: remote private message refused: {e}");
                            WhisperAnswer::Refused
                        }
                    }
                };
                link.answer(reply, answer);
                return;
            }
            NatsEvent::WhisperAnswer {
                sender,
                id,
                to,
                answer,
            } => {
                use crate::nats::WhisperAnswer;
                let error = match answer {
                    WhisperAnswer::Delivered => None,
                    WhisperAnswer::Unknown => Some(ServiceError::NoSuchUser { name: to }),
                    WhisperAnswer::Busy => Some(ServiceError::Unreachable {
                        name: to,
                        reason: "its server is busy, try again",
                    }),
                    WhisperAnswer::Refused => Some(ServiceError::Unreachable {
                        name: to,
                        reason: "its server refused the message",
                    }),
                    WhisperAnswer::Unreachable => Some(ServiceError::Unreachable {
                        name: to,
                        reason: "its server did not answer",
                    }),
                };
                if let Some(error) = error {
                    self.out.push(Outgoing {
                        to: sender,
                        frame: error.to_frame().into(),
                    });
                }
                // The refusal first, then the confirmations that waited.
                let tokens = self.held_confirms.answered(sender, id, now.instant);
                confirmed(&mut self.out, sender, tokens);
                return;
            }
            NatsEvent::Presence { server, presence } => {
                if limit.try_take(&server, now.instant).is_err() {
                    return;
                }
                let result = self.chat.remote_presence(presence, &mut self.out);
                (server, result)
            }
        };
        if let Err(e) = result {
            tracing::warn!(server = %server, "nats: remote room event refused: {e}");
        }
    }

    /// When a local line held for its place among the other servers'
    /// is due to be shown anyway: call [`show_held`](Self::show_held).
    pub fn next_held_due(&self) -> Option<Instant> {
        self.chat.next_held_due()
    }

    /// Shows the held local lines that are due (keeps what it sends until
    /// [`flush`](Self::flush)).
    pub fn show_held(&mut self, now: Instant) {
        self.chat.show_due(now, &mut self.out);
    }

    /// Runs the services' timers (keeps what they send until
    /// [`flush`](Self::flush)).
    pub fn tick(&mut self, now: Now) {
        self.file.tick(now.instant);
        for (conn, tokens) in self.held_confirms.expired(now.instant) {
            confirmed(&mut self.out, conn, tokens);
        }
        if let Some((link, _)) = &self.nats {
            link.set_presence(self.chat.shared_rosters());
            self.remote_media.tick(&self.media, link);
        }
    }

    /// Where other servers' frames arrive, for the remote streams that
    /// have a subscriber here (never, without `--nats`): hand each to
    /// [`handle_remote_media`](Self::handle_remote_media).
    pub fn nats_media(&self) -> Receiver<crate::nats::InFrame> {
        self.nats
            .as_ref()
            .map_or_else(crossbeam_channel::never, |(link, _)| {
                link.media_frames().clone()
            })
    }

    /// Where other servers' file frames arrive (never, without `--nats`):
    /// hand each to [`handle_remote_file`](Self::handle_remote_file).
    pub fn nats_files(&self) -> Receiver<crate::nats::InFile> {
        self.nats
            .as_ref()
            .map_or_else(crossbeam_channel::never, |(link, _)| {
                link.file_frames().clone()
            })
    }

    /// Hands another server's file frame to the file service, as from a
    /// connection standing for that server (keeps what it sends until
    /// [`flush`](Self::flush)). An offer's sender is shown `user@server`.
    pub fn handle_remote_file(&mut self, file: crate::nats::InFile, now: &Now) {
        let Some((link, _)) = &self.nats else { return };
        let Some(conn) = self.remote_files.conn_of(link.server_id(), &file.server) else {
            return;
        };
        let stream = crate::remote_files::RemoteFiles::local_stream(file.started_here, file.stream);
        let mut message = file.message;
        let mut from = String::new();
        if let Message::FileOffer(o) = &mut message {
            let shown = format!("{}@{}", o.from.as_deref().unwrap_or_default(), file.server);
            if self.chat.check_remote_name(&shown).is_err() {
                return;
            }
            o.from = None;
            from = shown;
        }
        let (chat, receivers) = (&self.chat, &self.receivers);
        let lookup = |nick: &str| local_receiver(chat, receivers, nick);
        self.file.handle(
            conn,
            &from,
            stream,
            message,
            now.instant,
            &lookup,
            &mut self.out,
        );
    }

    /// Relays a frame of another server's stream to its subscribers here
    /// (keeps what it sends until [`flush`](Self::flush)).
    pub fn handle_remote_media(&mut self, frame: crate::nats::InFrame, now: Instant) {
        self.remote_media
            .frame(&mut self.media, frame, now, &mut self.out);
    }

    /// Hands a local publisher's media frame to NATS, before the relay
    /// takes it, if another server wants its stream.
    fn export_media(&mut self, conn: ConnId, stream: StreamId, message: &Message) {
        if let Some((link, _)) = &mut self.nats {
            self.remote_media
                .export(&self.media, link, conn, stream, message);
        }
    }

    /// Connected (welcomed) clients.
    pub fn client_count(&self) -> usize {
        self.conns.len()
    }

    /// Handles one transport event at time `now`.
    pub fn handle(&mut self, event: Event, now: Now) {
        self.handle_deferred(event, now);
        self.flush();
    }

    /// Handles one event but keeps what the services want sent until
    /// [`flush`](Self::flush): a busy server handles a batch of events and
    /// then wakes each recipient's writer once for all its frames.
    pub fn handle_deferred(&mut self, event: Event, now: Now) {
        match event {
            Event::Hello { conn, hello } => self.on_hello(conn, hello, &now),
            Event::Frame { conn, frame, .. } => self.on_frame(conn, frame, &now),
            Event::Closed { conn, reason, .. } => {
                if let Some((handle, _)) = self.conns.remove(&conn) {
                    self.receivers.remove(&conn);
                    self.held_confirms.closed(conn);
                    self.outside_chat.remove(&conn);
                    self.since.remove(&conn);
                    // Shown to everyone in its rooms: the peer's goodbye
                    // text is escaped (by CloseReason's Display) and cut
                    // short, so leaving cannot paint or flood their screens.
                    let reason = shorten(reason.to_string(), MAX_SHOWN_REASON);
                    self.chat.disconnect(conn, &reason, &mut self.out);
                    self.file.disconnect(conn, &mut self.out);
                    // Its waiting reads are of no use any more; what it
                    // sent is still written.
                    let owner = Some(handle.peer().ip().to_canonical());
                    self.workers.retain(owner, |job| {
                        job.owner() != conn || job.outlives_its_client()
                    });
                    self.media.disconnect(conn, &mut self.out);
                    // Everything answered before is already queued: a peer
                    // that said goodbye gets ours after it.
                    self.flush();
                    handle.close("goodbye");
                }
            }
        }
    }

    fn on_hello(&mut self, conn: ConnHandle, hello: control::Hello, now: &Now) {
        let id = conn.id();
        // Collect the newcomer's first frames separately: they must follow
        // its Welcome. Only clients that want chat join it (and need a
        // unique nickname); a file-only client is just welcomed.
        // Banned names are the chat's (a renaming cannot take one either),
        // but whoever says hello with one is refused, chat or not.
        if self.chat.is_banned(&hello.name) {
            self.admin.refusals.refused(
                conn.peer().ip(),
                "banned name",
                &format!("the name {:?} is banned", hello.name),
            );
            conn.refuse(ErrorCode::BANNED, "this name is banned from the server");
            return;
        }
        let mut greeting = Vec::new();
        let wants_chat = hello.capabilities.contains(Capabilities::CHAT);
        let receives = !wants_chat && hello.capabilities.contains(Capabilities::OFFERS);
        let mut admitted = self.check_name_holder(&conn, &hello.name, receives, !wants_chat);
        if admitted.is_ok() {
            admitted = if wants_chat {
                self.chat
                    .connect(id, conn.peer().ip(), &hello.name, now, &mut greeting)
            } else {
                // Not a chat user, but its name is still shown and logged.
                check_hello_name(&hello.name, self.chat.config().max_name_len)
                    .map_err(|e| (e.code(), e.to_string()))
            };
        }
        if let Err((code, reason)) = admitted {
            tracing::info!(peer = %conn.peer(), name = %display_safe(&hello.name), "refused: {}", display_safe(&reason));
            conn.refuse(code, &reason);
            return;
        }
        let welcome = control::Welcome {
            server_name: self.server_name.clone(),
            client_id: id.0 as u32,
            name: hello.name.clone(),
            capabilities: Capabilities::ALL | Capabilities::OFFERS,
            max_payload: self.max_payload,
            motd: self.chat.config().motd.clone().unwrap_or_default(),
        };
        if conn.send(&Frame::control(welcome)).is_ok() {
            if hello.capabilities.contains(Capabilities::AUDIO)
                || hello.capabilities.contains(Capabilities::VIDEO)
            {
                self.media.connect(id, &mut greeting);
            }
            // Upload quotas and announcement limits follow the address,
            // not the (changeable) name.
            self.file.set_peer(id, conn.peer().ip().to_canonical());
            if receives {
                self.receivers.insert(id, fold(&hello.name));
            }
            if !wants_chat {
                self.outside_chat.insert(id, fold(&hello.name));
            }
            self.since.insert(id, *now);
            self.media.set_peer(id, conn.peer().ip());
            self.conns.insert(id, (conn, hello.name));
            self.out.append(&mut greeting);
        } else if wants_chat {
            // Gone before we could welcome it; forget it again.
            self.chat.disconnect(id, "connection lost", &mut self.out);
        }
    }

    fn on_frame(&mut self, conn: ConnId, frame: Frame, now: &Now) {
        let Some((handle, hello_name)) = self.conns.get(&conn) else {
            return;
        };
        // A connection the server is closing (a wrong admin token, a kick,
        // a peer too slow) is done: the frames it had already sent, still
        // queued behind the one that condemned it, are not carried out.
        // One the peer closed itself is not: a line said just before a
        // client hangs up (without a goodbye) is delivered.
        if handle.closed_here() {
            return;
        }
        // The name others know this user by now (after any /nick).
        let name = self.chat.name_of(conn).unwrap_or(hello_name);
        match frame.kind().service() {
            Service::Chat => match &frame.message {
                // One name is one person: not taken from another address.
                Message::SetNick(set)
                    if self.conns.get(&conn).is_some_and(|(h, _)| {
                        self.held_elsewhere(set.name.trim(), h.peer().ip(), false)
                    }) =>
                {
                    self.out.push(Outgoing::control(
                        conn,
                        control::Error {
                            code: ErrorCode::NAME_TAKEN,
                            message: format!(
                                "the name {:?} is in use from another address",
                                set.name
                            ),
                        },
                    ));
                }
                _ => {
                    self.chat.handle(conn, frame.message, now, &mut self.out);
                    self.hand_whispers(now.instant);
                }
            },
            Service::File => {
                let ip = handle.peer().ip().to_canonical();
                let loud = self.file_log.try_take(&ip, now.instant).is_ok();
                log_file_request(conn, name, &frame.message, loud);
                // An offer to `user@server` goes to that server, if it is
                // another (scale-out).
                if let (Some((link, _)), Message::FileOffer(o)) = (&self.nats, &frame.message) {
                    if let Some((_, server)) = o.to.as_deref().and_then(|to| to.rsplit_once('@')) {
                        if self.chat.knows_server(server) {
                            let _ = self.remote_files.conn_of(link.server_id(), server);
                        }
                    }
                }
                let (chat, receivers, remote) = (&self.chat, &self.receivers, &self.remote_files);
                // A server not in presence (never was, or gone) has no
                // users: the offer is refused at once, not left to time out.
                let lookup = |nick: &str| {
                    local_receiver(chat, receivers, nick).or_else(|| {
                        let (_, server) = nick.rsplit_once('@')?;
                        chat.knows_server(server)
                            .then(|| remote.lookup(nick))
                            .flatten()
                    })
                };
                self.file.handle(
                    conn,
                    name,
                    frame.stream,
                    frame.message,
                    now.instant,
                    &lookup,
                    &mut self.out,
                );
            }
            Service::Audio | Service::Video => {
                // Field by field (not `export_media`): `name` borrows the
                // chat service.
                if let Some((link, _)) = &mut self.nats {
                    self.remote_media
                        .export(&self.media, link, conn, frame.stream, &frame.message);
                }
                let subscription = matches!(
                    frame.message,
                    Message::VideoSubscribe(_)
                        | Message::VideoUnsubscribe(_)
                        | Message::AudioSubscribe(_)
                        | Message::AudioUnsubscribe(_)
                );
                self.media.handle(
                    conn,
                    name,
                    frame.stream,
                    frame.message,
                    now.instant,
                    &mut self.out,
                );
                // A new viewer of a remote stream: lease it now, not at
                // the next tick.
                if let (true, Some((link, _))) = (subscription, &self.nats) {
                    self.remote_media.update_wants(&self.media, link);
                }
            }
            Service::Control if matches!(frame.message, Message::Admin(_)) => {
                if let Message::Admin(request) = frame.message {
                    let reply = self.admin(conn, request, now);
                    self.out.push(Outgoing::control(conn, reply));
                }
            }
            Service::Control if matches!(frame.message, Message::Confirm(_)) => {
                // Everything this connection sent before is handled and
                // its answers are queued: the answer comes after them.
                // Private messages to other servers are handled once those
                // answer: their refusals come before the answer too.
                if let Message::Confirm(control::Confirm { token }) = frame.message {
                    let tokens = self.held_confirms.confirm(conn, token, now.instant);
                    confirmed(&mut self.out, conn, tokens);
                }
            }
            Service::Control if matches!(frame.message, Message::Error(_)) => {
                // Never answer an error with an error: two such peers would
                // loop. The peer's complaint is worth a log line.
                // At the operator's level within the address's log budget
                // (shared with file requests), else only when debugging:
                // a flood of errors must not fill the disk with log
                // (fifth attack: 711 MB in 8 s).
                if let Message::Error(e) = &frame.message {
                    let ip = handle.peer().ip().to_canonical();
                    if self.file_log.try_take(&ip, now.instant).is_ok() {
                        tracing::info!(conn = %conn, "peer reported an error: {} ({:?})", display_safe(&e.message), e.code);
                    } else {
                        tracing::debug!(conn = %conn, "peer reported an error: {} ({:?})", display_safe(&e.message), e.code);
                    }
                }
            }
            Service::Control => {
                let message = format!("{:?} is not expected after the handshake", frame.kind());
                self.out.push(Outgoing::control(
                    conn,
                    control::Error {
                        code: ErrorCode::UNEXPECTED,
                        message,
                    },
                ));
            }
        }
    }

    /// Carries out an operator's request if its token is right.
    ///
    /// A wrong token closes the connection (nothing it sent after is
    /// carried out, see `on_frame`) and costs its address one of its
    /// `admin_guesses` and one of `admin_guesses_in_all`; with none left,
    /// the address's admin requests are refused unchecked until they
    /// refill (see [`GuessLimit`]).
    fn admin(&mut self, from: ConnId, request: control::Admin, now: &Now) -> control::AdminReply {
        let reply = |ok: bool, text: String| control::AdminReply { ok, text };
        let Some(peer) = self.conns.get(&from).map(|(h, _)| h.peer()) else {
            return reply(false, "not connected".into());
        };
        let ip = peer.ip().to_canonical();
        let Some(token) = self.admin.token.as_deref() else {
            return reply(
                false,
                "this server has no admin token (--admin-token)".into(),
            );
        };
        if let Err(wait) = self.admin.guesses.check(ip, now.instant) {
            let refusal = ServiceError::TooManyRequests {
                what: "admin requests with a wrong token",
                from: "your address",
                retry_after_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            }
            .to_string();
            self.admin.refusals.refused(ip, "admin guesses", &refusal);
            return self.refuse_admin(from, refusal);
        }
        if !lanlink_transport::server::constant_time_eq(token.as_bytes(), request.token.as_bytes())
        {
            self.admin.guesses.wrong(ip, now.instant);
            self.admin.refusals.refused(
                ip,
                "admin token",
                "an admin request with a wrong token (connection closed)",
            );
            return self.refuse_admin(from, "wrong admin token".into());
        }
        let arg = request.argument.trim();
        // What the replies and the log show of the argument.
        let shown = display_safe(arg);
        tracing::warn!(conn = %from, ?peer, command = %request.command, argument = %shown, "admin request");
        match (request.command.as_str(), arg.parse::<IpAddr>()) {
            ("kick", _) => match self.find(arg) {
                Some(id) => {
                    self.kick(id, "kicked by an operator");
                    reply(true, format!("kicked {shown}"))
                }
                None => reply(false, format!("nobody is called {shown}")),
            },
            ("ban", Ok(ip)) => {
                self.admin.addresses.ban(ip);
                let hit: Vec<ConnId> = self
                    .conns
                    .iter()
                    .filter(|(_, (h, _))| h.peer().ip().to_canonical() == ip.to_canonical())
                    .map(|(id, _)| *id)
                    .collect();
                for id in &hit {
                    self.kick(*id, "banned by an operator");
                }
                reply(
                    true,
                    format!("banned {ip} ({} connection(s) closed)", hit.len()),
                )
            }
            ("ban", Err(_)) if !arg.is_empty() => {
                self.chat.ban_name(arg);
                if let Some(id) = self.find(arg) {
                    self.kick(id, "banned by an operator");
                }
                reply(true, format!("banned the name {shown}"))
            }
            ("unban", Ok(ip)) => {
                let was = self.admin.addresses.unban(ip);
                reply(
                    was,
                    format!("{ip} {}", if was { "unbanned" } else { "was not banned" }),
                )
            }
            ("unban", Err(_)) => {
                let was = self.chat.unban_name(arg);
                reply(
                    was,
                    format!(
                        "{shown} {}",
                        if was { "unbanned" } else { "was not banned" }
                    ),
                )
            }
            ("who", _) => reply(true, self.who(now)),
            ("bans", _) => {
                let addresses: Vec<String> = self
                    .admin
                    .addresses
                    .list()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                let names = self.chat.banned_names();
                reply(
                    true,
                    format!(
                        "banned addresses: {}; banned names: {}",
                        list_or_none(&addresses),
                        list_or_none(&names)
                    ),
                )
            }
            (other, _) => reply(
                false,
                format!(
                    "unknown admin command {other:?} (kick, ban, unban, bans, who) or missing argument"
                ),
            ),
        }
    }

    /// The `who` answer: a count, then one line per connection, oldest
    /// first: its id, name, address, when it connected, its rooms, streams
    /// and transfers in progress. Every peer string is escaped, long lists
    /// are cut, and the whole stays within [`MAX_WHO_REPLY`] bytes.
    fn who(&self, now: &Now) -> String {
        let mut ids: Vec<ConnId> = self.conns.keys().copied().collect();
        ids.sort();
        let mut text = format!("{} connection(s)", ids.len());
        for (shown, id) in ids.iter().enumerate() {
            let Some((handle, hello)) = self.conns.get(id) else {
                continue;
            };
            let name = self.chat.name_of(*id).unwrap_or(hello);
            let since = self.since.get(id).map_or_else(
                || "?".to_owned(),
                |t| {
                    format!(
                        "{} ({} ago)",
                        utc_time(t.unix_ms),
                        short_duration(now.instant.saturating_duration_since(t.instant))
                    )
                },
            );
            let rooms = self.chat.rooms_of(*id);
            let streams = self.media.streams_of(*id);
            let transfers: Vec<String> = self
                .file
                .transfers_of(*id)
                .into_iter()
                .map(|t| match t {
                    TransferInfo::Download(n) => format!("download {}", display_safe(&n)),
                    TransferInfo::Upload(n) => format!("upload {}", display_safe(&n)),
                    TransferInfo::SendingTo(c) => format!("sending to {}", self.who_is(c)),
                    TransferInfo::ReceivingFrom(c) => format!("receiving from {}", self.who_is(c)),
                })
                .collect();
            let line = format!(
                "\n{id} {} {} connected {since}; rooms: {}; streams: {}; transfers: {}",
                display_safe(name),
                handle.peer(),
                safe_list(&rooms),
                safe_list(&streams),
                safe_list(&transfers),
            );
            if text.len() + line.len() > MAX_WHO_REPLY - 64 {
                text.push_str(&format!("\n… and {} more", ids.len() - shown));
                break;
            }
            text.push_str(&line);
        }
        text
    }

    /// A connection as `who` names it: its id and escaped name.
    fn who_is(&self, id: ConnId) -> String {
        let name = self
            .chat
            .name_of(id)
            .or_else(|| self.conns.get(&id).map(|(_, n)| n.as_str()))
            .unwrap_or("?");
        format!("{id} {}", display_safe(name))
    }

    /// Answers a refused admin request and closes the connection: the
    /// answer first, then the close (nothing queued after it would be
    /// sent). The returned reply is for the caller's queue, where the
    /// closing connection drops it.
    fn refuse_admin(&self, from: ConnId, text: String) -> control::AdminReply {
        let reply = control::AdminReply { ok: false, text };
        if let Some((handle, _)) = self.conns.get(&from) {
            let _ = handle.send(&Frame::control(reply.clone()));
            handle.close_with_error(
                ErrorCode::FORBIDDEN,
                &reply.text,
                lanlink_transport::CloseReason::Local(reply.text.clone()),
            );
        }
        reply
    }

    /// Whether `name` may be taken by the newcomer `conn`. One name is one
    /// person: a receiver ([`Capabilities::OFFERS`] without chat) needs a
    /// valid nickname, and a connection that does not chat (a receiver, a
    /// sender, a talker…) may use the name of a receiver or, with
    /// `outside_chat`, of a chat user only from that person's own address,
    /// so nobody elsewhere can collect the offers meant for someone else or
    /// offer files and publish streams under their name.
    fn check_name_holder(
        &self,
        conn: &ConnHandle,
        name: &str,
        receives: bool,
        outside_chat: bool,
    ) -> Result<(), (ErrorCode, String)> {
        if receives {
            lanlink_services::chat::names::check_nickname(name, self.chat.config().max_name_len)
                .map_err(|e| (e.code(), e.to_string()))?;
        }
        if self.held_elsewhere(name, conn.peer().ip(), outside_chat) {
            return Err((
                ErrorCode::NAME_TAKEN,
                format!("the name {name:?} is in use from another address"),
            ));
        }
        Ok(())
    }

    /// Whether a connection that does not chat (a receiver, a camera, a
    /// sender…) or, with `chat`, a chat user, connected from another
    /// address than `ip`, holds `name` (compared by confusable skeleton).
    fn held_elsewhere(&self, name: &str, ip: IpAddr, chat: bool) -> bool {
        let ip = ip.to_canonical();
        let elsewhere = |id: &ConnId| {
            self.conns
                .get(id)
                .is_some_and(|(h, _)| h.peer().ip().to_canonical() != ip)
        };
        let key = fold(name);
        // (Receivers do not chat: `outside_chat` holds them too.)
        (chat && self.chat.conn_of(name).is_some_and(|id| elsewhere(&id)))
            || self
                .outside_chat
                .iter()
                .any(|(id, n)| *n == key && elsewhere(id))
    }

    /// The connection of the user called `name` (chat nickname first, then
    /// the name a non-chat client said hello with).
    fn find(&self, name: &str) -> Option<ConnId> {
        self.chat.conn_of(name).or_else(|| {
            let folded = fold(name);
            self.conns
                .iter()
                .find(|(_, (_, hello))| fold(hello) == folded)
                .map(|(id, _)| *id)
        })
    }

    fn kick(&self, id: ConnId, why: &str) {
        if let Some((handle, _)) = self.conns.get(&id) {
            tracing::warn!(conn = %id, peer = %handle.peer(), "{why}");
            handle.close_with_error(
                ErrorCode::BANNED,
                why,
                lanlink_transport::CloseReason::Local(why.to_owned()),
            );
        }
    }

    /// Ends relayed transfers that lost a frame on the way to another
    /// server (its queue to NATS was full, or NATS is away): the user here
    /// is told at once, as if the other side had cancelled, instead of
    /// waiting on a transfer that can no longer finish. The other server
    /// is told too if a frame gets through; if not, its side ends when
    /// its user's client gives up (the transfer resumes later as any).
    fn break_relays(&mut self, broken: Vec<(ConnId, StreamId)>) {
        let now = Instant::now();
        for (conn, stream) in broken {
            let cancel = FileCancel {
                code: ErrorCode::OTHER,
                reason: "the other server could not be reached; try again".into(),
            };
            if let (Some(route), Some((link, _))) =
                (self.remote_files.route(conn, stream), &self.nats)
            {
                let started_by = if route.started_here {
                    link.server_id()
                } else {
                    route.to
                };
                let _ = link.send_file(
                    route.to,
                    started_by,
                    route.stream,
                    Message::FileCancel(cancel.clone()),
                );
            }
            self.file.handle(
                conn,
                "",
                stream,
                Message::FileCancel(cancel),
                now,
                &|_| None,
                &mut self.out,
            );
        }
        // What the cancels made goes to local users (the relays are gone,
        // so nothing more goes to the other servers).
        self.flush();
    }

    /// Handles media published by the server process itself (a test
    /// pattern, a local microphone): `stream` is the local publisher's own
    /// id, as a client's would be.
    pub fn handle_local(&mut self, stream: StreamId, message: Message) {
        self.export_media(LOCAL_PUBLISHER, stream, &message);
        self.media.handle(
            LOCAL_PUBLISHER,
            &self.server_name,
            stream,
            message,
            Instant::now(),
            &mut self.out,
        );
        self.flush();
    }

    /// Hands the chat's private messages for users on other servers to
    /// NATS, and counts each against its sender's confirmations.
    fn hand_whispers(&mut self, now: Instant) {
        let Some((link, _)) = &mut self.nats else {
            return;
        };
        for whisper in self.chat.take_remote_whispers() {
            let id = self.held_confirms.whisper_sent(whisper.sender, now);
            if let Err(w) = link.whisper(whisper, id) {
                let busy = ServiceError::Unreachable {
                    name: format!("{}@{}", w.message.to, w.server),
                    reason: "too many private messages wait for other servers",
                };
                self.out.push(Outgoing {
                    to: w.sender,
                    frame: busy.to_frame().into(),
                });
                // Answered (refused) here: the confirmations after it go.
                let tokens = self.held_confirms.answered(w.sender, id, now);
                confirmed(&mut self.out, w.sender, tokens);
            }
        }
    }

    /// Queues everything the services produced (and hands their jobs to
    /// the workers). A frame sent to many recipients in a row (a room
    /// broadcast) is encoded once.
    pub fn flush(&mut self) {
        if let Some((link, _)) = &mut self.nats {
            for event in self.chat.take_room_events() {
                link.publish(event);
            }
        }
        for job in self.file.take_jobs() {
            let owner = self.work_owner(job.owner());
            self.workers.submit(owner, job);
        }
        let mut last: Option<(Arc<Frame>, EncodedFrame)> = None;
        let mut batch = Vec::with_capacity(self.out.len());
        // Relayed transfers whose frame for another server was dropped.
        let mut broken: Vec<(ConnId, StreamId)> = Vec::new();
        for Outgoing { to, frame } in self.out.drain(..) {
            if lanlink_services::file::is_other_server(to) {
                // A relayed transfer's frame for another server.
                let (Some(route), Some((link, _))) =
                    (self.remote_files.route(to, frame.stream), &self.nats)
                else {
                    continue;
                };
                let started_by = if route.started_here {
                    link.server_id()
                } else {
                    route.to
                };
                let stream = frame.stream;
                let message =
                    Arc::try_unwrap(frame).map_or_else(|f| f.message.clone(), |f| f.message);
                if !link.send_file(route.to, started_by, route.stream, message) {
                    tracing::debug!(server = %route.to, "nats: files: queue full, a file frame dropped");
                    broken.push((to, stream));
                }
                continue;
            }
            // A broadcast is one shared frame: the same pointer, encoded
            // once; other runs of equal frames are found by comparing.
            let encoded = match &last {
                Some((f, e)) if Arc::ptr_eq(f, &frame) || **f == *frame => e.clone(),
                _ => match EncodedFrame::new(&frame) {
                    Ok(e) => {
                        last = Some((frame, e.clone()));
                        e
                    }
                    Err(e) => {
                        tracing::error!("cannot encode a frame for {to}: {e}");
                        continue;
                    }
                },
            };
            batch.push((to, encoded));
        }
        // Each recipient's frames back to back (a stable sort keeps their
        // order): its writer wakes once and writes them together.
        batch.sort_by_key(|(to, _)| *to);
        for (to, encoded) in batch {
            if let Some((handle, _)) = self.conns.get(&to) {
                // A failure means that peer is being disconnected; its
                // `Closed` event will tidy up after it.
                let _ = handle.send_encoded(encoded);
            }
        }
        // A burst (a reply to one event that went to everyone) leaves no
        // large buffer behind.
        if self.out.capacity() > 2 * FLUSH_AT {
            self.out.shrink_to(FLUSH_AT);
        }
        if !broken.is_empty() {
            self.break_relays(broken);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inventing a server id every few messages does not get around the
    /// rate limit of other servers (the attack on NATS delivered 55,800
    /// of 55,800 forged messages from 559 ids in 5 s).
    #[test]
    fn other_servers_share_one_budget_in_all() {
        let now = Instant::now();
        let per_server = Rate {
            burst: 10,
            per_second: 0.0,
        };
        let mut limit = RemoteLimit::new(per_server, now);
        let delivered = (0..1000)
            .filter(|i| limit.try_take(&format!("fake{}", i / 5), now).is_ok())
            .count();
        assert_eq!(delivered, 10 * REMOTE_SERVERS_AT_ONCE as usize);
        // One server alone still has its own burst.
        let mut limit = RemoteLimit::new(per_server, now);
        let one = (0..100)
            .filter(|_| limit.try_take(&"c".to_owned(), now).is_ok())
            .count();
        assert_eq!(one, 10);
    }

    #[test]
    fn times_and_durations_for_who() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_time(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_time(1_700_000_000_123), "2023-11-14 22:13:20 UTC");
        assert_eq!(short_duration(Duration::from_secs(42)), "42s");
        assert_eq!(short_duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(short_duration(Duration::from_secs(7620)), "2h07m");
        assert_eq!(safe_list::<&str>(&[]), "none");
        let many: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
        assert!(safe_list(&many).ends_with("r7, +2 more"));
        assert_eq!(safe_list(&["a\u{1b}[2J"]), "a\\u{1b}[2J");
    }

    #[test]
    fn shown_reasons_are_cut_on_a_character_boundary() {
        assert_eq!(shorten("quit".into(), 10), "quit");
        assert_eq!(shorten("a".repeat(10), 10), "a".repeat(10));
        assert_eq!(shorten("a".repeat(11), 10), format!("{}…", "a".repeat(7)));
        let cut = shorten("é".repeat(300), MAX_SHOWN_REASON);
        assert!(cut.len() <= MAX_SHOWN_REASON && cut.ends_with('…'), "{cut}");
    }
}
