//! The lanlink server: the transport's connections wired to the services.
//!
//! [`run`] serves on an already-bound listener until a [`Shutdown`] fires.
//! The transport runs its accept loop and per-connection threads; one *hub*
//! thread owns every service and handles connection events in order, so
//! services need no locks. Whatever a service wants sent is queued on the
//! recipients' connections, which never blocks the hub: a peer that cannot
//! keep up is disconnected by its own queue limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::net::TcpListener;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Receiver;
use lanlink_proto::{control, Capabilities, ErrorCode, Frame, Message, Service, StreamId};
use lanlink_transport::{BanList, ConnHandle, ConnId, EncodedFrame, Event, RefusalLog, Shutdown};

use crate::chat::names::fold;
use crate::chat::{ChatConfig, ChatService, Now, Outgoing};
use crate::file::{FileConfig, FileService};
use crate::media::{MediaRelay, VideoTap};

/// The connection id media published by the server process itself is
/// filed under (the transport numbers connections from 1).
const LOCAL_PUBLISHER: ConnId = ConnId(0);

/// The default TCP port of a lanlink server.
pub const DEFAULT_PORT: u16 = 7878;

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
    /// Sees every relayed video frame (the HTTP MJPEG server uses this).
    pub video_tap: Option<VideoTap>,
    /// Media the server publishes itself: `(stream, message)` pairs, an
    /// announcement first, as a client would send them.
    pub local_media: Option<Receiver<(StreamId, Message)>>,
    /// The token that authorises `Admin` requests (kick, ban); `None`
    /// refuses them all.
    pub admin_token: Option<String>,
    /// Nicknames refused from the start (operators add more with `ban`).
    /// Banned addresses live in `transport.bans`.
    pub banned_names: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            server_name: "lanlink".into(),
            transport: lanlink_transport::ServerConfig::default(),
            chat: ChatConfig::default(),
            file: FileConfig::default(),
            video_tap: None,
            local_media: None,
            admin_token: None,
            banned_names: Vec::new(),
        }
    }
}

/// Serves on `listener` until `shutdown` fires; then says goodbye to every
/// client, joins every thread and returns.
///
/// ```no_run
/// use std::net::TcpListener;
/// use lanlink_services::server::{run, ServerConfig};
/// use lanlink_transport::Shutdown;
///
/// let listener = TcpListener::bind("0.0.0.0:7878")?;
/// run(listener, ServerConfig::default(), Shutdown::new())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: Shutdown,
) -> Result<(), lanlink_transport::TransportError> {
    // Bounded: if the hub falls behind, connection readers wait, and TCP
    // slows the senders down, instead of events piling up in memory.
    let (events_tx, events) = crossbeam_channel::bounded(64 * 1024);
    let mut hub = Hub::new(&config);
    // Without local media, a receiver that never yields keeps one loop.
    let local = config
        .local_media
        .clone()
        .unwrap_or_else(crossbeam_channel::never);
    let hub_thread = std::thread::Builder::new()
        .name("lanlink-hub".into())
        .spawn(move || loop {
            crossbeam_channel::select! {
                recv(events) -> event => match event {
                    Ok(event) => {
                        // Take whatever else is already waiting, then send
                        // once: under load, batches grow and wake-ups shrink.
                        let now = now();
                        hub.handle_deferred(event, now);
                        for event in events.try_iter().take(1024) {
                            hub.handle_deferred(event, now);
                        }
                        hub.flush();
                    }
                    Err(_) => break,
                },
                recv(local) -> m => match m {
                    Ok((stream, message)) => hub.handle_local(stream, message),
                    Err(_) => {
                        // The local publishers are gone; keep serving clients.
                        for event in events.iter() {
                            hub.handle(event, now());
                        }
                        break;
                    }
                },
            }
        })
        .map_err(|e| lanlink_transport::TransportError::io("spawn hub thread", e))?;
    let result = lanlink_transport::serve(listener, config.transport, shutdown, events_tx);
    // `serve` has joined every connection, so every event sender is gone
    // and the hub's loop ends once it has handled the last `Closed`.
    let _ = hub_thread.join();
    result
}

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
    /// Connections that receive file offers for their name without
    /// chatting ([`Capabilities::OFFERS`]), with that name case-folded.
    /// Ordered by id: the newest one gets the offers.
    receivers: std::collections::BTreeMap<ConnId, String>,
    chat: ChatService,
    file: FileService,
    media: MediaRelay,
    out: Vec<Outgoing>,
    admin: Admin,
}

/// The operator's tools: the admin token and the bans.
struct Admin {
    token: Option<String>,
    /// Case-folded banned nicknames.
    names: std::collections::BTreeSet<String>,
    addresses: BanList,
    refusals: RefusalLog,
}

impl Hub {
    /// A hub with empty services.
    pub fn new(config: &ServerConfig) -> Hub {
        Hub {
            server_name: config.server_name.clone(),
            max_payload: config.transport.conn.max_payload,
            conns: HashMap::new(),
            receivers: std::collections::BTreeMap::new(),
            chat: ChatService::new(config.chat.clone()),
            file: {
                let mut file = FileService::new(config.file.clone());
                file.set_refusal_log(config.transport.refusals.clone());
                file
            },
            media: MediaRelay::new(config.video_tap.clone()),
            out: Vec::new(),
            admin: Admin {
                token: config.admin_token.clone(),
                names: config.banned_names.iter().map(|n| fold(n.trim())).collect(),
                addresses: config.transport.bans.clone(),
                refusals: config.transport.refusals.clone(),
            },
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
            Event::Frame { conn, frame } => self.on_frame(conn, frame, &now),
            Event::Closed { conn, reason, .. } => {
                if let Some((handle, _)) = self.conns.remove(&conn) {
                    self.receivers.remove(&conn);
                    self.chat
                        .disconnect(conn, &reason.to_string(), &mut self.out);
                    self.file.disconnect(conn, &mut self.out);
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
        if self.admin.names.contains(&fold(&hello.name)) {
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
        if let Err((code, reason)) = self.check_receiver_name(&conn, &hello.name, receives) {
            tracing::info!(peer = %conn.peer(), name = %hello.name, "refused: {reason}");
            conn.refuse(code, &reason);
            return;
        }
        if wants_chat {
            if let Err((code, reason)) = self.chat.connect(id, &hello.name, now, &mut greeting) {
                tracing::info!(peer = %conn.peer(), name = %hello.name, "refused: {reason}");
                conn.refuse(code, &reason);
                return;
            }
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
            // Upload quotas follow the address, not the (changeable) name.
            self.file.set_peer(id, conn.peer().ip().to_canonical());
            if receives {
                self.receivers.insert(id, fold(&hello.name));
            }
            self.conns.insert(id, (conn, hello.name));
            self.out.append(&mut greeting);
        } else if wants_chat {
            // Gone before we could welcome it; forget it again.
            self.chat.disconnect(id, "connection lost", &mut self.out);
        }
    }

    fn on_frame(&mut self, conn: ConnId, frame: Frame, now: &Now) {
        let Some((_, hello_name)) = self.conns.get(&conn) else {
            return;
        };
        // The name others know this user by now (after any /nick).
        let name = self.chat.name_of(conn).unwrap_or(hello_name);
        match frame.kind().service() {
            Service::Chat => match &frame.message {
                // A banned name cannot be taken by renaming either.
                Message::SetNick(set) if self.admin.names.contains(&fold(set.name.trim())) => {
                    self.out.push(Outgoing::control(
                        conn,
                        control::Error {
                            code: ErrorCode::BANNED,
                            message: format!("the name {:?} is banned", set.name),
                        },
                    ));
                }
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
                _ => self.chat.handle(conn, frame.message, now, &mut self.out),
            },
            Service::File => {
                let (chat, receivers) = (&self.chat, &self.receivers);
                // An offer to a name goes to its newest receiver, else to
                // the chat user of that name.
                let lookup = |nick: &str| {
                    let key = fold(nick);
                    receivers
                        .iter()
                        .rev()
                        .find(|(_, name)| **name == key)
                        .map(|(id, _)| *id)
                        .or_else(|| chat.conn_of(nick))
                };
                self.file.handle(
                    conn,
                    name,
                    frame.stream,
                    frame.message,
                    &lookup,
                    &mut self.out,
                );
            }
            Service::Audio | Service::Video => {
                self.media
                    .handle(conn, name, frame.stream, frame.message, &mut self.out)
            }
            Service::Control if matches!(frame.message, Message::Admin(_)) => {
                if let Message::Admin(request) = frame.message {
                    let reply = self.admin(conn, request);
                    self.out.push(Outgoing::control(conn, reply));
                }
            }
            Service::Control if matches!(frame.message, Message::Error(_)) => {
                // Never answer an error with an error: two such peers would
                // loop. The peer's complaint is worth a log line.
                if let Message::Error(e) = &frame.message {
                    tracing::info!(conn = %conn, "peer reported an error: {} ({:?})", e.message, e.code);
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
    fn admin(&mut self, from: ConnId, request: control::Admin) -> control::AdminReply {
        let reply = |ok: bool, text: String| control::AdminReply { ok, text };
        let peer = self.conns.get(&from).map(|(h, _)| h.peer());
        let authorised = self.admin.token.as_deref().is_some_and(|t| {
            lanlink_transport::server::constant_time_eq(t.as_bytes(), request.token.as_bytes())
        });
        if !authorised {
            if let Some(peer) = peer {
                self.admin.refusals.refused(
                    peer.ip(),
                    "admin token",
                    "an admin request with a wrong token (connection closed)",
                );
            }
            // One guess per connection: with the per-address connection
            // rate limit, guessing the token costs a handshake a try.
            if self.admin.token.is_some() {
                if let Some((handle, _)) = self.conns.get(&from) {
                    // The answer first, then the close (nothing queued
                    // after it would be sent).
                    let _ = handle.send(&Frame::control(reply(false, "wrong admin token".into())));
                    handle.close_with_error(
                        ErrorCode::FORBIDDEN,
                        "wrong admin token",
                        lanlink_transport::CloseReason::Local("wrong admin token".into()),
                    );
                }
            }
            return reply(
                false,
                match self.admin.token {
                    None => "this server has no admin token (--admin-token)".into(),
                    Some(_) => "wrong admin token".into(),
                },
            );
        }
        let arg = request.argument.trim();
        let arg_key = fold(arg);
        tracing::warn!(conn = %from, ?peer, command = %request.command, argument = %arg, "admin request");
        match (request.command.as_str(), arg.parse::<IpAddr>()) {
            ("kick", _) => match self.find(arg) {
                Some(id) => {
                    self.kick(id, "kicked by an operator");
                    reply(true, format!("kicked {arg}"))
                }
                None => reply(false, format!("nobody is called {arg}")),
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
                self.admin.names.insert(arg_key);
                if let Some(id) = self.find(arg) {
                    self.kick(id, "banned by an operator");
                }
                reply(true, format!("banned the name {arg}"))
            }
            ("unban", Ok(ip)) => {
                let was = self.admin.addresses.unban(ip);
                reply(
                    was,
                    format!("{ip} {}", if was { "unbanned" } else { "was not banned" }),
                )
            }
            ("unban", Err(_)) => {
                let was = self.admin.names.remove(&arg_key);
                reply(
                    was,
                    format!("{arg} {}", if was { "unbanned" } else { "was not banned" }),
                )
            }
            ("bans", _) => {
                let addresses: Vec<String> = self
                    .admin
                    .addresses
                    .list()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                let names: Vec<&str> = self.admin.names.iter().map(String::as_str).collect();
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
                    "unknown admin command {other:?} (kick, ban, unban, bans) or missing argument"
                ),
            ),
        }
    }

    /// Whether `name` may be taken by the newcomer `conn`. One name is one
    /// person: a receiver ([`Capabilities::OFFERS`] without chat) needs a
    /// valid nickname, and a receiver and a chat user may share a name only
    /// when they connect from the same address (the person's own machine),
    /// so nobody elsewhere can collect the offers meant for someone else.
    fn check_receiver_name(
        &self,
        conn: &ConnHandle,
        name: &str,
        receives: bool,
    ) -> Result<(), (ErrorCode, String)> {
        if receives {
            crate::chat::names::check_nickname(name, self.chat.config().max_name_len)
                .map_err(|e| (e.code(), e.to_string()))?;
        }
        if self.held_elsewhere(name, conn.peer().ip(), receives) {
            return Err((
                ErrorCode::NAME_TAKEN,
                format!("the name {name:?} is in use from another address"),
            ));
        }
        Ok(())
    }

    /// Whether a receiver (or, with `chat`, a chat user) connected from
    /// another address than `ip` holds `name`.
    fn held_elsewhere(&self, name: &str, ip: IpAddr, chat: bool) -> bool {
        let ip = ip.to_canonical();
        let elsewhere = |id: &ConnId| {
            self.conns
                .get(id)
                .is_some_and(|(h, _)| h.peer().ip().to_canonical() != ip)
        };
        let key = fold(name);
        self.receivers
            .iter()
            .any(|(id, n)| *n == key && elsewhere(id))
            || (chat && self.chat.conn_of(name).is_some_and(|id| elsewhere(&id)))
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

    /// Handles media published by the server process itself (a test
    /// pattern, a local microphone): `stream` is the local publisher's own
    /// id, as a client's would be.
    pub fn handle_local(&mut self, stream: StreamId, message: Message) {
        self.media.handle(
            LOCAL_PUBLISHER,
            &self.server_name,
            stream,
            message,
            &mut self.out,
        );
        self.flush();
    }

    /// Queues everything the services produced. A frame sent to many
    /// recipients in a row (a room broadcast) is encoded once.
    pub fn flush(&mut self) {
        let mut last: Option<(Frame, EncodedFrame)> = None;
        let mut batch = Vec::with_capacity(self.out.len());
        for Outgoing { to, frame } in self.out.drain(..) {
            let encoded = match &last {
                Some((f, e)) if *f == frame => e.clone(),
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
    }
}
