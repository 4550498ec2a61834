//! [`ChatService`]: the registry of clients and rooms, its lifecycle
//! (connect, disconnect) and the dispatch of requests to the handlers in
//! `requests.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use lanlink_proto::chat::{Join, Notice};
use lanlink_proto::{ErrorCode, Message};
use lanlink_transport::limits::DEFAULT_MAX_KEYS;
use lanlink_transport::{ConnId, GuessLimit, KeyedBuckets, Rate, TokenBucket};

use super::names::{check_nickname, fold, sort_key};
use super::room::ChatRoom;
use super::{ChatConfig, Now, Outgoing};
use crate::error::{millis, ServiceError};

/// The chat state of a whole server: who is connected under which nickname,
/// which rooms exist and who is in them.
///
/// Invariants kept by every method: `nicks` maps the folded nickname of every
/// client and nothing else; a client lists a room exactly when the room lists
/// it; no room is empty.
#[derive(Debug)]
pub struct ChatService {
    pub(super) config: ChatConfig,
    pub(super) clients: HashMap<ConnId, Client>,
    /// Folded nickname → its owner.
    pub(super) nicks: HashMap<String, ConnId>,
    /// Folded room name → room.
    pub(super) rooms: HashMap<String, ChatRoom>,
    /// The limits each client address shares between its connections.
    pub(super) per_address: AddressLimits,
    /// Banned nicknames: folded key → the name as banned, lowercased.
    pub(super) banned: BTreeMap<String, String>,
    /// Events of rooms without a password for other servers, once
    /// [`relay_room_events`](Self::relay_room_events) is on.
    pub(super) relay: Option<Vec<super::RoomEvent>>,
    /// Other servers' users by room (scale-out), shown in rosters.
    pub(super) remote: super::remote::RemoteMembers,
    /// Private messages to users on other servers, for
    /// [`take_remote_whispers`](Self::take_remote_whispers).
    pub(super) whispers: Vec<super::RemoteWhisper>,
    /// This server's id among those sharing rooms, if it has one:
    /// `name@<id>` is the local `name`.
    pub(super) server_id: Option<String>,
    /// Local users' lines in shared rooms waiting for their place in the
    /// other servers' common order (scale-out).
    pub(super) held: super::remote::HeldLines,
}

/// A bucket per client address for each kind of limited request.
#[derive(Debug)]
pub(super) struct AddressLimits {
    pub(super) requests: KeyedBuckets<IpAddr>,
    pub(super) messages: KeyedBuckets<IpAddr>,
    /// Wrong room passwords, per address and in all.
    pub(super) passwords: GuessLimit,
    /// Arrivals told to the default room ([`ChatConfig::told_arrivals`]).
    pub(super) told: KeyedBuckets<IpAddr>,
    pub(super) told_in_all: TokenBucket,
}

#[derive(Debug)]
pub(super) struct Client {
    pub(super) name: String,
    /// The address it connected from (IPv4-mapped IPv6 as IPv4).
    pub(super) peer: IpAddr,
    /// Folded names of the rooms the client is in; ordered, so that leaving
    /// them all on disconnect is deterministic.
    pub(super) rooms: BTreeSet<String>,
    /// Room and private messages.
    pub(super) bucket: TokenBucket,
    /// Every other request that costs (see [`ChatConfig::request_rate`]).
    pub(super) requests: TokenBucket,
    /// The folded name of the default room while this client's arrival
    /// there has not been told (see [`ChatConfig::told_arrivals`]).
    pub(super) unannounced: Option<String>,
}

impl ChatService {
    /// A service with no clients and no rooms.
    pub fn new(config: ChatConfig) -> ChatService {
        let per_address = AddressLimits {
            requests: KeyedBuckets::new(config.address_request_rate, DEFAULT_MAX_KEYS),
            messages: KeyedBuckets::new(config.address_message_rate, DEFAULT_MAX_KEYS),
            passwords: GuessLimit::with_rates(
                config.password_guesses,
                config.password_guesses_in_all,
            ),
            told: KeyedBuckets::new(config.told_arrivals, DEFAULT_MAX_KEYS),
            told_in_all: TokenBucket::new(config.told_arrivals_in_all, Instant::now()),
        };
        ChatService {
            config,
            clients: HashMap::new(),
            nicks: HashMap::new(),
            rooms: HashMap::new(),
            per_address,
            banned: BTreeMap::new(),
            relay: None,
            remote: Default::default(),
            whispers: Vec::new(),
            server_id: None,
            held: Default::default(),
        }
    }

    /// The nickname rules, and while rooms are shared with other servers
    /// no `@` (it separates a user from their server: a local `bob@c`
    /// would pass for the user bob on server c).
    pub(super) fn check_local_nickname(&self, name: &str) -> Result<(), ServiceError> {
        check_nickname(name, self.config.max_name_len)?;
        if self.server_id.is_some() && name.contains('@') {
            return Err(ServiceError::InvalidName {
                kind: crate::error::NameKind::Nickname,
                name: name.into(),
                reason: "'@' separates a user from their server".into(),
            });
        }
        Ok(())
    }

    /// Refuses `name` and every name that looks like it as a nickname from
    /// now on, at connect and when renaming; false if it already was. Its
    /// current user, if any, stays: disconnecting it is the server's call.
    pub fn ban_name(&mut self, name: &str) -> bool {
        let name = name.trim();
        self.banned.insert(fold(name), sort_key(name)).is_none()
    }

    /// Lifts the ban on `name` (or a name that looks like it); false if
    /// there was none.
    pub fn unban_name(&mut self, name: &str) -> bool {
        self.banned.remove(&fold(name.trim())).is_some()
    }

    /// True if `name` or a name that looks like it is banned.
    pub fn is_banned(&self, name: &str) -> bool {
        self.banned.contains_key(&fold(name.trim()))
    }

    /// The banned names, as banned (lowercased), in key order.
    pub fn banned_names(&self) -> Vec<&str> {
        self.banned.values().map(String::as_str).collect()
    }

    /// The settings this service runs with.
    pub fn config(&self) -> &ChatConfig {
        &self.config
    }

    /// Registers a client whose `Hello` the transport accepted, from
    /// address `peer`, under nickname `name`, and puts it in the default
    /// room. Connections from one address share its rate limits.
    ///
    /// The nickname must be non-empty, at most `max_name_len` bytes, free of
    /// whitespace and control characters, must not start with `#` or `/`, and
    /// must not be taken by anyone (ignoring case). On success, `out` gets,
    /// for the newcomer, a [`Notice`] with the message of the day (if any),
    /// the room's [`History`](lanlink_proto::chat::History) and its
    /// [`Roster`](lanlink_proto::chat::Roster), and for everyone else in the
    /// room a [`Presence`](lanlink_proto::chat::Presence) `Joined`. On
    /// refusal nothing is registered and the code and reason are meant for a
    /// `Refuse` frame.
    pub fn connect(
        &mut self,
        conn: ConnId,
        peer: IpAddr,
        name: &str,
        now: &Now,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), (ErrorCode, String)> {
        self.try_connect(conn, peer, name, now, out)
            .map_err(|e| (e.code(), e.to_string()))
    }

    fn try_connect(
        &mut self,
        conn: ConnId,
        peer: IpAddr,
        name: &str,
        now: &Now,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        if self.clients.contains_key(&conn) {
            return Err(ServiceError::AlreadyRegistered { conn });
        }
        self.check_local_nickname(name)?;
        if self.is_banned(name) {
            return Err(ServiceError::NameBanned { name: name.into() });
        }
        let key = fold(name);
        if self.nicks.contains_key(&key) {
            return Err(ServiceError::NameTaken { name: name.into() });
        }
        let bucket = TokenBucket::new(
            Rate {
                burst: self.config.rate_burst,
                per_second: self.config.rate_per_second,
            },
            now.instant,
        );
        let peer = peer.to_canonical();
        let lobby = self.config.default_room.clone();
        let told = self.per_address.told.try_take(&peer, now.instant).is_ok()
            && self.per_address.told_in_all.try_take(now.instant).is_ok();
        self.nicks.insert(key, conn);
        self.clients.insert(
            conn,
            Client {
                name: name.into(),
                peer,
                rooms: BTreeSet::new(),
                bucket,
                requests: TokenBucket::new(self.config.request_rate, now.instant),
                unannounced: (!told).then(|| fold(&lobby)),
            },
        );
        let mark = out.len();
        if let Some(motd) = &self.config.motd {
            out.push(Outgoing::control(
                conn,
                Notice {
                    room: None,
                    text: motd.clone(),
                },
            ));
        }
        // Entering the default room cannot fail (it takes no password), but
        // if it ever did, the client must not stay half registered.
        if let Err(e) = self.enter(conn, &lobby, None, now.instant, out) {
            out.truncate(mark);
            self.clients.remove(&conn);
            self.nicks.remove(&fold(name));
            return Err(e);
        }
        Ok(())
    }

    /// Handles one message from a registered client:
    ///
    /// - `Join`: enter a room (created if new; its creator may set a
    ///   password). The joiner gets its `History` and `Roster`, the members a
    ///   `Presence` `Joined`. Re-joining a room only resends the `Roster`.
    /// - `Leave`: a `Presence` `Left` to the members, the leaver included.
    /// - `ChatMessage`: stamped with the sender's nickname and `now.unix_ms`,
    ///   sent to every other member of the room, kept in its history.
    /// - `PrivateMessage`: stamped likewise, sent to its target only.
    /// - `SetNick`: a `NickChanged` to the client and everyone sharing a room
    ///   with it.
    /// - `RosterRequest`, `HistoryRequest`: answered to the sender.
    ///
    /// Room and private messages count against the client's rate limit.
    /// Anything wrong with the request (not a member of the room, text too
    /// long, sending too fast, a bad or taken name, an unknown user, a
    /// message that is not a chat request) is answered with a
    /// `control::Error` frame naming the culprit, to `conn` alone, and
    /// changes nothing (except that a refused message still costs a token).
    pub fn handle(&mut self, conn: ConnId, message: Message, now: &Now, out: &mut Vec<Outgoing>) {
        if let Err(e) = self.dispatch(conn, message, now, out) {
            out.push(Outgoing {
                to: conn,
                frame: e.to_frame().into(),
            });
        }
    }

    /// Every handler checks everything before it pushes anything, so an
    /// error never leaves half a broadcast in `out`.
    fn dispatch(
        &mut self,
        conn: ConnId,
        message: Message,
        now: &Now,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        if !self.clients.contains_key(&conn) {
            return Err(ServiceError::NotRegistered { conn });
        }
        // Everything but messages (limited in `admit_text`) costs a
        // request token first, whether it then succeeds or not.
        let what = match &message {
            Message::Join(_) => Some("room joins"),
            Message::Leave(_) => Some("room leaves"),
            Message::SetNick(_) => Some("nickname changes"),
            Message::RosterRequest(_) => Some("roster requests"),
            Message::HistoryRequest(_) => Some("history requests"),
            _ => None,
        };
        if let Some(what) = what {
            self.admit_request(conn, what, now.instant)?;
        }
        match message {
            Message::Join(Join { room, password }) => {
                self.join(conn, &room, password, now.instant, out)
            }
            Message::Leave(leave) => self.leave(conn, &leave.room, out),
            Message::ChatMessage(m) => self.say(conn, m, now, out),
            Message::PrivateMessage(m) => self.whisper(conn, m, now, out),
            Message::SetNick(set) => self.set_nick(conn, &set.name, now.instant, out),
            Message::RosterRequest(r) => self.roster(conn, &r.room, out),
            Message::HistoryRequest(h) => self.history(conn, &h.room, h.limit.into(), out),
            other => Err(ServiceError::UnexpectedMessage { kind: other.kind() }),
        }
    }

    /// Takes a request token from the connection's bucket, then from its
    /// address's.
    fn admit_request(
        &mut self,
        conn: ConnId,
        what: &'static str,
        now: Instant,
    ) -> Result<(), ServiceError> {
        let Some(client) = self.clients.get_mut(&conn) else {
            return Err(ServiceError::NotRegistered { conn });
        };
        client
            .requests
            .try_take(now)
            .map_err(|wait| too_many(what, "this connection", wait))?;
        self.per_address
            .requests
            .try_take(&client.peer, now)
            .map_err(|wait| too_many(what, "your address", wait))
    }

    /// Forgets a client that quit, was killed or was kicked: everyone left in
    /// its rooms gets a [`Presence`](lanlink_proto::chat::Presence) `Left`
    /// with `reason`, and its nickname is free again. Unknown connections are
    /// ignored.
    pub fn disconnect(&mut self, conn: ConnId, reason: &str, out: &mut Vec<Outgoing>) {
        let Some(client) = self.clients.get(&conn) else {
            return;
        };
        for key in client.rooms.clone() {
            self.part(conn, &key, reason, false, out);
        }
        if let Some(client) = self.clients.remove(&conn) {
            self.nicks.remove(&fold(&client.name));
        }
    }

    /// The nickname of a registered connection.
    pub fn name_of(&self, conn: ConnId) -> Option<&str> {
        self.clients.get(&conn).map(|c| c.name.as_str())
    }

    /// The connection using a nickname (compared ignoring case).
    pub fn conn_of(&self, name: &str) -> Option<ConnId> {
        self.nicks.get(&fold(name)).copied()
    }

    /// The rooms a connection is in, by their display names, sorted
    /// ignoring case.
    pub fn rooms_of(&self, conn: ConnId) -> Vec<&str> {
        let Some(client) = self.clients.get(&conn) else {
            return Vec::new();
        };
        let mut names: Vec<&str> = client
            .rooms
            .iter()
            .filter_map(|key| self.rooms.get(key).map(ChatRoom::name))
            .collect();
        names.sort_by_cached_key(|n| sort_key(n));
        names
    }

    /// How many clients are registered.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// How many rooms exist (all of them have members).
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// The nicknames in a room, sorted ignoring case; `None` if there is no
    /// such room.
    pub fn room_members(&self, room: &str) -> Option<Vec<&str>> {
        let room = self.rooms.get(&fold(room))?;
        let mut names: Vec<&str> = room.members().filter_map(|c| self.name_of(c)).collect();
        names.sort_by_cached_key(|n| sort_key(n));
        Some(names)
    }

    /// Checks the invariants listed on the type; tests and the fuzz driver
    /// (`crate::fuzzing::chat`) call it after every step.
    #[cfg(any(test, fuzzing, feature = "fuzzing"))]
    pub(crate) fn assert_consistent(&self) {
        assert_eq!(self.nicks.len(), self.clients.len());
        for (conn, client) in &self.clients {
            assert_eq!(self.nicks.get(&fold(&client.name)), Some(conn));
            for key in &client.rooms {
                assert!(self.rooms[key].contains(*conn), "{conn} lists {key}");
            }
        }
        for (key, room) in &self.rooms {
            assert!(!room.is_empty(), "room {key} is empty");
            for member in room.members() {
                assert!(self.clients[&member].rooms.contains(key));
            }
        }
    }
}

/// A [`ServiceError::TooManyRequests`].
pub(super) fn too_many(what: &'static str, from: &'static str, wait: Duration) -> ServiceError {
    ServiceError::TooManyRequests {
        what,
        from,
        retry_after_ms: millis(wait),
    }
}
