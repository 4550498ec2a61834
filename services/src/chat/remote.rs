//! Rooms shared with other servers (scale-out): what this server's rooms
//! tell the others ([`RoomEvent`]s, collected once
//! [`ChatService::relay_room_events`] is on), and what the others' rooms
//! say here ([`ChatService::deliver_remote`],
//! [`ChatService::remote_presence`]).
//!
//! Another server is a peer like any client: what it sends passes the same
//! checks as a local request (names, room names, message length) before a
//! local member sees it. Rooms with a password stay local: their password
//! lives on this server only, so nothing said in them leaves it, and
//! nothing from elsewhere enters them.

use lanlink_proto::chat::{ChatMessage, Presence};
use lanlink_transport::ConnId;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::names::{check_nickname, check_room, fold, sort_key};
use super::service::ChatService;
use super::Outgoing;
use crate::error::ServiceError;

/// Something that happened in a room without a password, for the other
/// servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// A local member spoke (stamped by this server: name, room, time).
    Said(ChatMessage),
    /// A local user entered the room.
    Joined {
        /// The room's display name.
        room: String,
        /// The user's nickname.
        name: String,
    },
    /// The room was just made on this server (its first local member
    /// entered): its history may be found elsewhere, for
    /// [`seed_history`](ChatService::seed_history).
    Opened {
        /// The room's display name.
        room: String,
    },
    /// A local user left the room (or quit).
    Left {
        /// The room's display name.
        room: String,
        /// The user's nickname.
        name: String,
        /// Why, as shown locally (already cut short).
        reason: String,
    },
}

/// Other servers' users by room, as their presence says.
#[derive(Debug, Default)]
pub(super) struct RemoteMembers {
    /// Server id → folded room name → names shown (`user@server`).
    servers: HashMap<String, HashMap<String, Vec<String>>>,
    /// NATS is unreachable: what is known may be stale.
    unknown: bool,
}

/// The most other servers whose users are remembered.
const MAX_SERVERS: usize = 1024;

/// The most names kept from one other server's presence, in all its
/// rooms.
pub const MAX_NAMES_PER_SERVER: usize = 4096;

/// The most names kept from all other servers together.
pub const MAX_REMOTE_NAMES: usize = 65_536;

/// The most other servers' members a room's roster shows (a roster frame
/// holds at most 65,535 names).
pub const MAX_REMOTE_IN_ROSTER: usize = 16_384;

impl RemoteMembers {
    /// The other servers' members of the room with folded name `key`, with
    /// `?` after each while NATS is unreachable (they may have gone).
    pub(super) fn of(&self, key: &str) -> Vec<String> {
        let mark = if self.unknown { "?" } else { "" };
        self.servers
            .values()
            .filter_map(|rooms| rooms.get(key))
            .flatten()
            .take(MAX_REMOTE_IN_ROSTER)
            .map(|name| format!("{name}{mark}"))
            .collect()
    }

    /// The other servers' users (`user@server`, in any room) whose bare
    /// name has the folded form `key`.
    pub(super) fn named<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.servers
            .values()
            .flat_map(|rooms| rooms.values().flatten())
            .filter(move |shown| {
                shown
                    .rsplit_once('@')
                    .is_some_and(|(user, _)| super::names::fold(user) == key)
            })
    }
}

/// Local users' lines in rooms shared with other servers, waiting to be
/// shown to the other local members in the order every server shows them
/// (the common stream's): the hub hands each back with
/// [`ChatService::show_own`] when it returns from the stream, and one
/// that has not within the hold is shown anyway
/// ([`ChatService::show_due`]). Off (lines shown at once) until
/// [`ChatService::hold_own_lines`] turns it on, and whenever the other
/// servers cannot be reached: local service never waits on them.
#[derive(Debug, Default)]
pub(super) struct HeldLines {
    hold: Option<Duration>,
    lines: VecDeque<HeldLine>,
}

#[derive(Debug)]
pub(super) struct HeldLine {
    sender: ConnId,
    said: ChatMessage,
    until: Instant,
}

/// The most lines held at once; past it the oldest is shown at once.
pub const MAX_HELD_LINES: usize = 4096;

impl HeldLines {
    /// Holds `said` from `sender` if holding is on (`Err` gives it back
    /// to be shown now); may let the oldest go to stay within
    /// [`MAX_HELD_LINES`] (also `Err`, after holding this one).
    pub(super) fn hold(
        &mut self,
        sender: ConnId,
        said: ChatMessage,
        now: Instant,
    ) -> Result<(), HeldLine> {
        let line = HeldLine {
            sender,
            said,
            until: now,
        };
        let Some(hold) = self.hold else {
            return Err(line);
        };
        self.lines.push_back(HeldLine {
            until: now + hold,
            ..line
        });
        if self.lines.len() > MAX_HELD_LINES {
            if let Some(oldest) = self.lines.pop_front() {
                return Err(oldest);
            }
        }
        Ok(())
    }
}

impl ChatService {
    /// Whether a local user's line in a shared room waits (at most
    /// `hold`) to be shown to the other local members in the order all
    /// servers show it (`Some`), or is shown at once (`None`: the other
    /// servers cannot be reached now; what waits is shown at once).
    pub fn hold_own_lines(&mut self, hold: Option<Duration>, out: &mut Vec<Outgoing>) {
        self.held.hold = hold;
        if hold.is_none() {
            while let Some(line) = self.held.lines.pop_front() {
                self.show_local(line, out);
            }
        }
    }

    /// A local user's line came back from the other servers' common
    /// order (`m.from` the bare name): shows it to the other local
    /// members now, after any held before it (their copies were lost on
    /// the way). A line not held here (shown at once, or not ours) is
    /// ignored; false then.
    pub fn show_own(&mut self, m: &ChatMessage, out: &mut Vec<Outgoing>) -> bool {
        let key = fold(&m.room);
        let Some(at) = self.held.lines.iter().position(|l| {
            l.said.timestamp_ms == m.timestamp_ms
                && l.said.from == m.from
                && l.said.text == m.text
                && l.said.action == m.action
                && fold(&l.said.room) == key
        }) else {
            return false;
        };
        for line in self.held.lines.drain(..=at).collect::<Vec<_>>() {
            self.show_local(line, out);
        }
        true
    }

    /// Shows the held lines whose wait is over at `now`.
    pub fn show_due(&mut self, now: Instant, out: &mut Vec<Outgoing>) {
        while self.held.lines.front().is_some_and(|l| l.until <= now) {
            if let Some(line) = self.held.lines.pop_front() {
                self.show_local(line, out);
            }
        }
    }

    /// When the oldest held line is due, if one is held.
    pub fn next_held_due(&self) -> Option<Instant> {
        self.held.lines.front().map(|l| l.until)
    }

    /// Shows a local line to the room's other local members and keeps it
    /// in the room's history.
    pub(super) fn show_local(&mut self, line: HeldLine, out: &mut Vec<Outgoing>) {
        let Some(room) = self.rooms.get_mut(&fold(&line.said.room)) else {
            return;
        };
        Outgoing::to_each(
            room.members().filter(|&m| m != line.sender),
            line.said.clone(),
            out,
        );
        room.record(line.said);
    }
}

/// The longest leave reason taken from another server, in bytes.
pub const MAX_REMOTE_REASON: usize = 200;

impl ChatService {
    /// From now on, remember what happens in rooms without a password for
    /// [`take_room_events`](Self::take_room_events).
    pub fn relay_room_events(&mut self) {
        self.relay.get_or_insert_with(Vec::new);
    }

    /// What happened in shared rooms since the last call, in order.
    pub fn take_room_events(&mut self) -> Vec<RoomEvent> {
        self.relay.as_mut().map(std::mem::take).unwrap_or_default()
    }

    pub(super) fn relayed(&mut self, event: RoomEvent) {
        if let Some(events) = &mut self.relay {
            events.push(event);
        }
    }

    /// This server's users by room without a password, sorted: what its
    /// presence tells the other servers.
    pub fn shared_rosters(&self) -> Vec<(String, Vec<String>)> {
        let mut rosters: Vec<(String, Vec<String>)> = self
            .rooms
            .values()
            .filter(|r| !r.is_private())
            .map(|r| {
                let mut names: Vec<String> = r
                    .members()
                    .filter_map(|c| self.name_of(c).map(str::to_owned))
                    .collect();
                names.sort_by_cached_key(|n| sort_key(n));
                (r.name().to_owned(), names)
            })
            .collect();
        rosters.sort_by_cached_key(|(room, _)| sort_key(room));
        rosters
    }

    /// Sets the users of the server `server` by room (bare names), shown
    /// in rosters as `name@server`. Names, room names and the server id
    /// are checked as local ones; what fails is left out. At most
    /// `max_rooms` rooms are taken from one server.
    pub fn set_remote_members(&mut self, server: &str, rooms: Vec<(String, Vec<String>)>) {
        let max = self.config.max_name_len;
        if check_nickname(server, max).is_err() {
            return;
        }
        if !self.remote.servers.contains_key(server) && self.remote.servers.len() >= MAX_SERVERS {
            return;
        }
        // Names kept: at most so many from one server, and from all of
        // them together (a hostile server's presence value can list any
        // number; 128 fake ones took a server to 520 MiB).
        let others: usize = self
            .remote
            .servers
            .iter()
            .filter(|(id, _)| id.as_str() != server)
            .map(|(_, rooms)| rooms.values().map(Vec::len).sum::<usize>())
            .sum();
        let mut room_left = MAX_NAMES_PER_SERVER.min(MAX_REMOTE_NAMES.saturating_sub(others));
        let mut kept: HashMap<String, Vec<String>> = HashMap::new();
        for (room, names) in rooms.into_iter().take(self.config.max_rooms + 1) {
            if check_room(&room, max).is_err() {
                continue;
            }
            let names: Vec<String> = names
                .into_iter()
                .filter(|n| check_nickname(n, max).is_ok())
                .take(room_left)
                .map(|n| format!("{n}@{server}"))
                .collect();
            room_left -= names.len();
            kept.entry(fold(&room)).or_default().extend(names);
        }
        self.remote.servers.insert(server.to_owned(), kept);
    }

    /// Whether the server `server` is in presence (it runs, or ran until
    /// NATS became unreachable): a file offer to `user@server` goes there
    /// only if so, and is refused at once otherwise.
    pub fn knows_server(&self, server: &str) -> bool {
        self.remote.servers.contains_key(server)
    }

    /// Forgets the users of a server that is gone.
    pub fn forget_server(&mut self, server: &str) {
        self.remote.servers.remove(server);
    }

    /// Marks the other servers' users as unknown (`name@server?` in
    /// rosters) while NATS is unreachable, or known again.
    pub fn set_remote_unknown(&mut self, unknown: bool) {
        self.remote.unknown = unknown;
    }

    /// Checks a remote user's shown name, `user@server`: both parts are
    /// nicknames by the local rules.
    pub fn check_remote_name(&self, name: &str) -> Result<(), ServiceError> {
        let max = self.config.max_name_len;
        let (user, server) = name.rsplit_once('@').unwrap_or((name, ""));
        check_nickname(user, max)?;
        check_nickname(server, max)
    }

    /// Delivers a message said in a room on another server to this
    /// server's members of that room, and keeps it in the room's history.
    /// `m.from` is the speaker as shown here (`user@server`), checked with
    /// [`check_remote_name`](Self::check_remote_name); the room name and
    /// the text length are checked as a local message's. A room with no
    /// local member, or with a password, takes nothing (`Ok`).
    pub fn deliver_remote(
        &mut self,
        m: ChatMessage,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        check_room(&m.room, self.config.max_name_len)?;
        self.check_remote_name(&m.from)?;
        let max = self.config.max_message_len;
        if m.text.len() > max {
            return Err(ServiceError::MessageTooLong {
                len: m.text.len(),
                max,
            });
        }
        let Some(room) = self
            .rooms
            .get_mut(&fold(&m.room))
            .filter(|r| !r.is_private())
        else {
            return Ok(());
        };
        let said = ChatMessage {
            room: room.name().into(),
            ..m
        };
        Outgoing::to_each(room.members(), said.clone(), out);
        room.record(said);
        Ok(())
    }

    /// Adds `older` (oldest first), the room's history as the other
    /// servers kept it, in front of what this server's room has kept since
    /// it was made, and sends the members the messages they had not seen.
    /// Each message is checked as [`deliver_remote`](Self::deliver_remote)
    /// checks one (a local speaker's bare nickname is allowed too); a
    /// refused one is left out. The history stays within `history_len`.
    pub fn seed_history(&mut self, room: &str, older: Vec<ChatMessage>, out: &mut Vec<Outgoing>) {
        let max = self.config.max_message_len;
        let max_name = self.config.max_name_len;
        let checked: Vec<ChatMessage> = older
            .into_iter()
            .filter(|m| {
                m.text.len() <= max
                    && (self.check_remote_name(&m.from).is_ok()
                        || check_nickname(&m.from, max_name).is_ok())
            })
            .collect();
        let Some(found) = self.rooms.get_mut(&fold(room)).filter(|r| !r.is_private()) else {
            return;
        };
        let shown = found.name().to_owned();
        let checked = checked
            .into_iter()
            .map(|m| ChatMessage {
                room: shown.clone(),
                ..m
            })
            .collect();
        let added = found.seed(checked);
        if added.is_empty() {
            return;
        }
        let history = lanlink_proto::chat::History {
            room: found.name().into(),
            messages: added,
        };
        Outgoing::to_each(found.members(), history.clone(), out);
    }

    /// Tells this server's members of `p.room` that a user elsewhere
    /// (`p.name` as `user@server`) joined or left it. The reason is cut to
    /// [`MAX_REMOTE_REASON`] bytes.
    pub fn remote_presence(
        &mut self,
        mut p: Presence,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        check_room(&p.room, self.config.max_name_len)?;
        self.check_remote_name(&p.name)?;
        if p.reason.len() > MAX_REMOTE_REASON {
            let mut end = MAX_REMOTE_REASON;
            while !p.reason.is_char_boundary(end) {
                end -= 1;
            }
            p.reason.truncate(end);
        }
        let Some(room) = self.rooms.get(&fold(&p.room)).filter(|r| !r.is_private()) else {
            return Ok(());
        };
        p.room = room.name().into();
        Outgoing::to_each(room.members(), p.clone(), out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use lanlink_proto::chat::{Join, PresenceChange};
    use lanlink_proto::Message;
    use lanlink_transport::ConnId;

    use super::*;
    use crate::chat::{ChatConfig, Now};

    fn now() -> Now {
        Now {
            instant: Instant::now(),
            unix_ms: 1_700_000_000_000,
        }
    }

    fn said(from: &str, text: &str) -> ChatMessage {
        ChatMessage {
            room: "LOBBY".into(),
            from: from.into(),
            text: text.into(),
            action: false,
            timestamp_ms: 5,
        }
    }

    /// The lines of a room that reached `to` in `out`, as `from: text`.
    fn lines_to(out: &[Outgoing], to: ConnId) -> Vec<String> {
        out.iter()
            .filter(|o| o.to == to)
            .filter_map(|o| match &o.frame.message {
                Message::ChatMessage(m) => Some(format!("{}: {}", m.from, m.text)),
                _ => None,
            })
            .collect()
    }

    /// With rooms shared, a local user cannot be called `bob@c` (the
    /// user bob of server c as everyone here sees him).
    #[test]
    fn a_local_name_cannot_pass_for_a_remote_user() {
        let mut out = Vec::new();
        let mut alone = ChatService::new(ChatConfig::default());
        assert!(alone
            .connect(ConnId(1), [10, 0, 0, 1].into(), "bob@c", &now(), &mut out)
            .is_ok());
        let mut shared = ChatService::new(ChatConfig::default());
        shared.set_server_id("a");
        assert!(shared
            .connect(ConnId(1), [10, 0, 0, 1].into(), "bob@c", &now(), &mut out)
            .is_err());
        shared
            .connect(ConnId(2), [10, 0, 0, 2].into(), "bob", &now(), &mut out)
            .unwrap();
        let rename = lanlink_proto::chat::SetNick {
            name: "bob@c".into(),
        };
        out.clear();
        shared.handle(ConnId(2), rename.into(), &now(), &mut out);
        assert!(
            out.iter().any(
                |o| matches!(&o.frame.message, Message::Error(e) if e.message.contains("'@'"))
            ),
            "{out:?}"
        );
    }

    /// Presence values listing thousands of names per room (a hostile
    /// server's: 16 of them made a roster no frame can hold, 128 took a
    /// server to 520 MiB) are kept within bounds, and the roster of a room
    /// still goes out.
    #[test]
    fn remote_rosters_are_bounded() {
        let mut chat = ChatService::new(ChatConfig::default());
        let mut out = Vec::new();
        chat.connect(ConnId(1), [10, 0, 0, 1].into(), "ada", &now(), &mut out)
            .unwrap();
        let names: Vec<String> = (0..4096).map(|i| format!("u{i}")).collect();
        let rooms: Vec<(String, Vec<String>)> = (0..15)
            .map(|r| {
                (
                    if r == 0 {
                        "lobby".into()
                    } else {
                        format!("r{r}")
                    },
                    names.clone(),
                )
            })
            .collect();
        for s in 0..40 {
            chat.set_remote_members(&format!("fake{s}"), rooms.clone());
        }
        let kept: usize = chat
            .remote
            .servers
            .values()
            .map(|rooms| rooms.values().map(Vec::len).sum::<usize>())
            .sum();
        assert!(kept <= MAX_REMOTE_NAMES, "{kept}");
        assert!(chat.remote.of("lobby").len() <= MAX_REMOTE_IN_ROSTER);
        out.clear();
        let ask = lanlink_proto::chat::RosterRequest {
            room: "lobby".into(),
        };
        chat.handle(ConnId(1), ask.into(), &now(), &mut out);
        assert!(
            out.iter()
                .any(|o| matches!(&o.frame.message, Message::Roster(_))
                    && o.frame.to_bytes().is_ok()),
            "{:?}",
            out.iter().map(|o| o.frame.kind()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn local_lines_wait_for_the_common_order_within_the_hold() {
        let mut chat = ChatService::new(ChatConfig::default());
        chat.relay_room_events();
        let mut out = Vec::new();
        for (id, name) in [(1, "ada"), (2, "al")] {
            chat.connect(
                ConnId(id),
                [10, 0, 0, id as u8].into(),
                name,
                &now(),
                &mut out,
            )
            .unwrap();
        }
        let hold = Duration::from_millis(500);
        chat.hold_own_lines(Some(hold), &mut out);
        out.clear();
        let t = now();
        let say = |text: &str| ChatMessage {
            room: "lobby".into(),
            ..said("", text)
        };
        for text in ["one", "two", "three"] {
            chat.handle(ConnId(1), say(text).into(), &t, &mut out);
        }
        assert!(lines_to(&out, ConnId(2)).is_empty(), "held: {out:?}");
        let relayed: Vec<ChatMessage> = chat
            .take_room_events()
            .into_iter()
            .filter_map(|e| match e {
                RoomEvent::Said(m) => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(relayed.len(), 3, "published at once");
        // A bob line from another server comes first in the common order,
        // then "two" (whose "one" was lost on the way: shown before it).
        chat.deliver_remote(said("bob@b", "hey"), &mut out).unwrap();
        assert!(chat.show_own(&relayed[1], &mut out));
        assert!(!chat.show_own(&relayed[1], &mut out), "once");
        assert_eq!(
            lines_to(&out, ConnId(2)),
            ["bob@b: hey", "ada: one", "ada: two"]
        );
        assert!(lines_to(&out, ConnId(1))
            .iter()
            .all(|l| !l.starts_with("ada")));
        // "three" never comes back: shown when its hold is over.
        assert_eq!(chat.next_held_due(), Some(t.instant + hold));
        chat.show_due(t.instant + hold / 2, &mut out);
        assert_eq!(lines_to(&out, ConnId(2)).len(), 3);
        chat.show_due(t.instant + hold, &mut out);
        assert_eq!(lines_to(&out, ConnId(2)).last().unwrap(), "ada: three");
        // With the other servers away, lines go at once, and what waited
        // goes then.
        chat.handle(ConnId(1), say("four").into(), &t, &mut out);
        chat.hold_own_lines(None, &mut out);
        chat.handle(ConnId(1), say("five").into(), &t, &mut out);
        assert_eq!(
            lines_to(&out, ConnId(2)).split_off(4),
            ["ada: four", "ada: five"]
        );
        assert_eq!(chat.next_held_due(), None);
    }

    #[test]
    fn local_events_are_relayed_and_remote_ones_delivered() {
        let mut chat = ChatService::new(ChatConfig::default());
        chat.relay_room_events();
        let mut out = Vec::new();
        chat.connect(ConnId(1), [10, 0, 0, 1].into(), "ada", &now(), &mut out)
            .unwrap();
        let hi = ChatMessage {
            room: "lobby".into(),
            ..said("", "hi")
        };
        chat.handle(ConnId(1), hi.into(), &now(), &mut out);
        let secret = Join {
            room: "vault".into(),
            password: Some("pw".into()),
        };
        chat.handle(ConnId(1), secret.into(), &now(), &mut out);
        let events = chat.take_room_events();
        assert_eq!(
            events.len(),
            3,
            "nothing of the room with a password: {events:?}"
        );
        assert!(matches!(&events[0], RoomEvent::Opened { room } if room == "lobby"));
        assert!(
            matches!(&events[1], RoomEvent::Joined { room, name } if room == "lobby" && name == "ada")
        );
        assert!(matches!(&events[2], RoomEvent::Said(m) if m.from == "ada" && m.text == "hi"));

        out.clear();
        chat.deliver_remote(said("bob@b", "hello"), &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        let Message::ChatMessage(m) = &out[0].frame.message else {
            panic!()
        };
        assert_eq!((m.room.as_str(), m.from.as_str()), ("lobby", "bob@b"));
        // Kept for late joiners here.
        chat.connect(ConnId(2), [10, 0, 0, 2].into(), "cy", &now(), &mut out)
            .unwrap();
        assert!(out.iter().any(|o| matches!(&o.frame.message,
            Message::History(h) if h.messages.iter().any(|m| m.text == "hello"))));

        // Hostile input is refused, not shown.
        let mut out = Vec::new();
        assert!(chat.deliver_remote(said("bob", "x"), &mut out).is_err());
        assert!(chat
            .deliver_remote(said("b\u{1b}[2J@b", "x"), &mut out)
            .is_err());
        assert!(chat
            .deliver_remote(said("bob@b", &"x".repeat(5000)), &mut out)
            .is_err());
        let p = Presence {
            room: "lobby".into(),
            name: "bob@b".into(),
            change: PresenceChange::Left,
            reason: "é".repeat(300),
        };
        chat.remote_presence(p, &mut out).unwrap();
        let Message::Presence(p) = &out[0].frame.message else {
            panic!()
        };
        assert!(p.reason.len() <= MAX_REMOTE_REASON);
        // Nothing enters a room with a password.
        out.clear();
        let vault = ChatMessage {
            room: "vault".into(),
            ..said("bob@b", "in")
        };
        chat.deliver_remote(vault, &mut out).unwrap();
        assert!(out.is_empty());

        // History from elsewhere goes in front; what the room holds is not
        // sent again, and a hostile entry is left out.
        let older = vec![
            said("eve@c", "old"),
            said("bob@b", "hello"),
            said("x\u{7}@c", "bell"),
        ];
        chat.seed_history("lobby", older, &mut out);
        assert_eq!(out.len(), 2, "one History to each member: {out:?}");
        let Message::History(h) = &out[0].frame.message else {
            panic!()
        };
        let texts: Vec<&str> = h.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["old"]);
    }
}
