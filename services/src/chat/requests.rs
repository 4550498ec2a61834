//! The handlers of each chat request, on [`ChatService`]'s state.
//!
//! Each one checks everything before it pushes anything to `out`, so a
//! refused request never leaves half a broadcast behind.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use lanlink_proto::chat::{
    ChatMessage, History, NickChanged, Presence, PresenceChange, PrivateMessage, Roster,
};
use lanlink_transport::ConnId;

use super::names::{check_room, fold, sort_key};
use super::remote::RemoteMembers;
use super::room::ChatRoom;
use super::service::{too_many, ChatService, Client};
use super::{Now, Outgoing, RoomEvent};
use crate::error::ServiceError;
use crate::text::display_safe;

impl ChatService {
    pub(super) fn join(
        &mut self,
        conn: ConnId,
        room: &str,
        password: Option<String>,
        now: Instant,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        check_room(room, self.config.max_name_len)?;
        self.enter(conn, room, password, now, out)
    }

    /// Puts `conn` in a room, creating it if needed. A newcomer gets the
    /// room's history, then its roster. Joining a room one is already in
    /// (a client's `/join` to switch between its rooms) only resends the
    /// roster: no history replayed, no presence event.
    ///
    /// Password guesses are limited per address and in all: with none
    /// left, a join that needs a password is refused before the password
    /// is looked at; a wrong one uses a guess up, the right one does not.
    pub(super) fn enter(
        &mut self,
        conn: ConnId,
        room_name: &str,
        password: Option<String>,
        now: Instant,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        let key = fold(room_name);
        let Some(client) = self.clients.get_mut(&conn) else {
            return Err(ServiceError::NotRegistered { conn });
        };
        if let Some(room) = self.rooms.get(&key) {
            if room.is_private() && !room.contains(conn) {
                let guesses = &self.per_address.passwords;
                guesses
                    .check(client.peer, now)
                    .map_err(|wait| too_many("wrong room passwords", "your address", wait))?;
                if !room.admits(conn, password.as_deref()) {
                    guesses.wrong(client.peer, now);
                    return Err(ServiceError::WrongPassword {
                        room: room_name.into(),
                    });
                }
            }
        }
        // The default room never takes a password (connect puts everyone in
        // it without asking for one) and counts against no room limit.
        let is_default = key == fold(&self.config.default_room);
        let password = password.filter(|_| !is_default);
        let member = self.rooms.get(&key).is_some_and(|r| r.contains(conn));
        if !is_default && !member {
            let default_key = fold(&self.config.default_room);
            let mine = client.rooms.iter().filter(|k| **k != default_key).count();
            if mine >= self.config.max_rooms_per_client {
                return Err(ServiceError::TooManyRooms {
                    max: self.config.max_rooms_per_client,
                    whose: "you may be in",
                });
            }
            let existing = self.rooms.len() - usize::from(self.rooms.contains_key(&default_key));
            if !self.rooms.contains_key(&key) && existing >= self.config.max_rooms {
                return Err(ServiceError::TooManyRooms {
                    max: self.config.max_rooms,
                    whose: "this server keeps",
                });
            }
            let peer = client.peer;
            let opened_here = || {
                self.rooms
                    .values()
                    .filter(|r| r.opened_by == Some(peer))
                    .count()
            };
            if !self.rooms.contains_key(&key) && opened_here() >= self.config.max_rooms_per_address
            {
                return Err(ServiceError::TooManyRooms {
                    max: self.config.max_rooms_per_address,
                    whose: "your address may have opened",
                });
            }
        }
        let history_len = self.config.history_len;
        let opened = !self.rooms.contains_key(&key) && password.is_none();
        let peer = client.peer;
        let room = self.rooms.entry(key.clone()).or_insert_with(|| {
            let mut room = ChatRoom::new(room_name, password, history_len);
            // The default room is everyone's, not its first member's.
            room.opened_by = (!is_default).then_some(peer);
            room
        });
        let mut shared = None;
        if room.insert(conn) {
            let quiet = client.unannounced.as_deref() == Some(key.as_str());
            client.rooms.insert(key);
            tracing::info!(conn = %conn, name = %display_safe(&client.name),
                room = %display_safe(room.name()), quiet, "joined a room");
            if !quiet {
                shared = tell_arrival(room, conn, &client.name, out);
            }
            // The history only for a newcomer: a member has seen it.
            let history = History {
                room: room.name().into(),
                messages: room.recent(history_len),
            };
            out.push(Outgoing::control(conn, history));
        }
        out.push(Outgoing::control(
            conn,
            roster_of(&self.clients, room, &self.remote, conn),
        ));
        let opened = opened.then(|| RoomEvent::Opened {
            room: room.name().into(),
        });
        // Opened first: the history is asked for before the join is told.
        if let Some(event) = opened {
            self.relayed(event);
        }
        if let Some(event) = shared {
            self.relayed(event);
        }
        Ok(())
    }

    pub(super) fn leave(
        &mut self,
        conn: ConnId,
        room: &str,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        let key = fold(room);
        if !self.rooms.get(&key).is_some_and(|r| r.contains(conn)) {
            return Err(ServiceError::NotInRoom { room: room.into() });
        }
        self.part(conn, &key, "", true, out);
        Ok(())
    }

    /// Tells the default room that `conn` arrived, if its arrival was
    /// quiet (see [`ChatConfig::told_arrivals`](super::ChatConfig::told_arrivals)):
    /// before what it says or a new nickname reaches the members, they
    /// learn who it is.
    pub(super) fn announce(&mut self, conn: ConnId, now: Instant, out: &mut Vec<Outgoing>) {
        let Some(client) = self.clients.get_mut(&conn) else {
            return;
        };
        if client.unannounced.is_none() {
            return;
        }
        // Telling costs what an arrival costs: speaking once per
        // connection does not get around the limit.
        let told = self.per_address.told.try_take(&client.peer, now).is_ok()
            && self.per_address.told_in_all.try_take(now).is_ok();
        if !told {
            return;
        }
        let Some(key) = client.unannounced.take() else {
            return;
        };
        let Some(room) = self.rooms.get(&key).filter(|r| r.contains(conn)) else {
            return;
        };
        if let Some(event) = tell_arrival(room, conn, &client.name, out) {
            self.relayed(event);
        }
    }

    /// Takes `conn` out of the room with folded name `key`, tells the members
    /// (and the leaver too if `tell_self`), and drops the room if now empty.
    pub(super) fn part(
        &mut self,
        conn: ConnId,
        key: &str,
        reason: &str,
        tell_self: bool,
        out: &mut Vec<Outgoing>,
    ) {
        let (Some(client), Some(room)) = (self.clients.get_mut(&conn), self.rooms.get_mut(key))
        else {
            return;
        };
        client.rooms.remove(key);
        // An arrival never told is not followed by a departure.
        let quiet = client.unannounced.as_deref() == Some(key);
        if quiet {
            client.unannounced = None;
        }
        let presence = Presence {
            room: room.name().into(),
            name: client.name.clone(),
            change: PresenceChange::Left,
            reason: reason.into(),
        };
        Outgoing::to_each(
            room.members().filter(|&m| {
                if quiet {
                    tell_self && m == conn
                } else {
                    tell_self || m != conn
                }
            }),
            presence.clone(),
            out,
        );
        room.remove(conn);
        let shared = !room.is_private() && !quiet;
        if room.is_empty() {
            self.rooms.remove(key);
        }
        if shared {
            self.relayed(RoomEvent::Left {
                room: presence.room,
                name: presence.name,
                reason: presence.reason,
            });
        }
    }

    /// Checks the rate limit and the length shared by room and private
    /// messages, and returns the sender's nickname.
    fn admit_text(&mut self, conn: ConnId, text: &str, now: &Now) -> Result<String, ServiceError> {
        let Some(client) = self.clients.get_mut(&conn) else {
            return Err(ServiceError::NotRegistered { conn });
        };
        // Refused attempts cost a token too, so that a client cannot flood
        // us with invalid messages and the error frames they cause.
        client
            .bucket
            .try_take(now.instant)
            .map_err(|wait| ServiceError::RateLimited {
                retry_after_ms: crate::error::millis(wait),
            })?;
        self.per_address
            .messages
            .try_take(&client.peer, now.instant)
            .map_err(|wait| too_many("messages", "your address", wait))?;
        let max = self.config.max_message_len;
        if text.len() > max {
            return Err(ServiceError::MessageTooLong {
                len: text.len(),
                max,
            });
        }
        Ok(client.name.clone())
    }

    pub(super) fn say(
        &mut self,
        conn: ConnId,
        m: ChatMessage,
        now: &Now,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        let from = self.admit_text(conn, &m.text, now)?;
        let key = fold(&m.room);
        if !self.rooms.get(&key).is_some_and(|r| r.contains(conn)) {
            return Err(ServiceError::NotInRoom { room: m.room });
        }
        self.announce(conn, now.instant, out);
        let Some(room) = self.rooms.get_mut(&key) else {
            return Err(ServiceError::NotInRoom { room: m.room });
        };
        // The server, not the client, says who spoke and when.
        let said = ChatMessage {
            room: room.name().into(),
            from,
            text: m.text,
            action: m.action,
            timestamp_ms: now.unix_ms,
        };
        if room.is_private() {
            Outgoing::to_each(room.members().filter(|&m| m != conn), said.clone(), out);
            room.record(said);
            return Ok(());
        }
        self.relayed(RoomEvent::Said(said.clone()));
        // Shared with other servers: shown here in the order they all
        // show it, once it comes back (see `HeldLines`), or at once.
        match self.held.hold(conn, said, now.instant) {
            Ok(()) => {}
            Err(line) => self.show_local(line, out),
        }
        Ok(())
    }

    pub(super) fn whisper(
        &mut self,
        conn: ConnId,
        m: PrivateMessage,
        now: &Now,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        let from = self.admit_text(conn, &m.text, now)?;
        let target = self
            .conn_of(&m.to)
            .or_else(|| self.conn_of(self.local_alias(&m.to)?));
        let Some((target, to)) = target.and_then(|t| Some((t, self.name_of(t)?.to_owned()))) else {
            // Not here: a user on another server, if scale-out is on.
            return self.whisper_remote(conn, from, m, now);
        };
        let whisper = PrivateMessage {
            to,
            from,
            text: m.text,
            action: m.action,
            timestamp_ms: now.unix_ms,
        };
        out.push(Outgoing::control(target, whisper));
        Ok(())
    }

    pub(super) fn set_nick(
        &mut self,
        conn: ConnId,
        new: &str,
        now: Instant,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        self.check_local_nickname(new)?;
        if self.is_banned(new) {
            return Err(ServiceError::NameBanned { name: new.into() });
        }
        let key = fold(new);
        if self.nicks.get(&key).is_some_and(|&owner| owner != conn) {
            return Err(ServiceError::NameTaken { name: new.into() });
        }
        if self.clients.get(&conn).is_some_and(|c| c.name != new) {
            self.announce(conn, now, out);
        }
        let Some(client) = self.clients.get_mut(&conn) else {
            return Err(ServiceError::NotRegistered { conn });
        };
        if client.name == new {
            return Ok(());
        }
        let old = std::mem::replace(&mut client.name, new.into());
        self.nicks.remove(&fold(&old));
        self.nicks.insert(key, conn);
        // Everyone who can see this client's name, each once, and itself.
        let mut audience = BTreeSet::from([conn]);
        for key in &client.rooms {
            audience.extend(self.rooms.get(key).into_iter().flat_map(ChatRoom::members));
        }
        let changed = NickChanged {
            old,
            new: new.into(),
        };
        Outgoing::to_each(audience, changed.clone(), out);
        Ok(())
    }

    /// Anyone may ask who is in a room without a password; a room with one
    /// shows its members to its members only.
    pub(super) fn roster(
        &mut self,
        conn: ConnId,
        room: &str,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        let Some(found) = self.rooms.get(&fold(room)) else {
            return Err(ServiceError::NoSuchRoom { room: room.into() });
        };
        if found.is_private() && !found.contains(conn) {
            return Err(ServiceError::NotInRoom { room: room.into() });
        }
        out.push(Outgoing::control(
            conn,
            roster_of(&self.clients, found, &self.remote, conn),
        ));
        Ok(())
    }

    pub(super) fn history(
        &mut self,
        conn: ConnId,
        room: &str,
        limit: usize,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        let Some(found) = self.rooms.get(&fold(room)).filter(|r| r.contains(conn)) else {
            return Err(ServiceError::NotInRoom { room: room.into() });
        };
        let history = History {
            room: found.name().into(),
            messages: found.recent(limit),
        };
        out.push(Outgoing::control(conn, history));
        Ok(())
    }
}

/// The roster of a room, sorted ignoring case.
/// Members on other servers (scale-out) are listed as `name@server`.
pub(super) fn roster_of(
    clients: &HashMap<ConnId, Client>,
    room: &ChatRoom,
    remote: &RemoteMembers,
    viewer: ConnId,
) -> Roster {
    // Quiet arrivals are not listed (but to themselves): their leaving is
    // not told, so they would stay listed for ever.
    let key = fold(room.name());
    let mut members: Vec<String> = room
        .members()
        .filter_map(|c| clients.get(&c).map(|client| (c, client)))
        .filter(|(c, client)| *c == viewer || client.unannounced.as_deref() != Some(key.as_str()))
        .map(|(_, client)| client.name.clone())
        .collect();
    members.extend(remote.of(&fold(room.name())));
    members.sort_by_cached_key(|n| sort_key(n));
    Roster {
        room: room.name().into(),
        members,
    }
}

/// Tells `room`'s members but `conn` that `name` arrived; what to share
/// with other servers, if the room is not private.
fn tell_arrival(
    room: &ChatRoom,
    conn: ConnId,
    name: &str,
    out: &mut Vec<Outgoing>,
) -> Option<RoomEvent> {
    let presence = Presence {
        room: room.name().into(),
        name: name.into(),
        change: PresenceChange::Joined,
        reason: String::new(),
    };
    Outgoing::to_each(room.members().filter(|&m| m != conn), presence.clone(), out);
    (!room.is_private()).then_some(RoomEvent::Joined {
        room: presence.room,
        name: presence.name,
    })
}
