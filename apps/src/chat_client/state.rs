//! What the chat client knows, learnt from the server's events: the rooms
//! it is in, who is in them (for Tab completion), what was already shown (so a room's
//! history is not shown twice), and the files offered to it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use lanlink_client::{Event, IncomingOffer};
use lanlink_proto::chat::{ChatMessage, PresenceChange};
use lanlink_proto::{ErrorCode, Message};
use lanlink_services::chat::command::format_event;

use super::view::View;
use crate::progress::human_bytes;

/// Rooms and names are compared as the server compares them: by their
/// case-folded confusable skeleton (`/join rnusic` is the room `music`).
pub(crate) use lanlink_services::chat::names::fold;

/// How many of our own lines a room remembers (to recognise them in its
/// history after a reconnect).
const OWN_LINES: usize = 64;

/// How many shown messages a room remembers (to recognise them in its
/// history after a reconnect; a server keeps 50 by default).
const SHOWN_LINES: usize = 1024;

/// The most rooms (and rooms of before a reconnect) remembered: a server
/// lets a client into 32 by default; a hostile one's histories of rooms
/// past it are shown but not remembered.
const MAX_ROOMS: usize = 64;
/// The most names remembered per room, and of people we exchanged private
/// messages with (for completion), and the most offers waiting: a hostile
/// server's inventions are bounded.
const MAX_NAMES: usize = 4096;
/// The most file offers waiting for /accept or /decline (a server keeps
/// 16 per user); past it the oldest is forgotten.
const MAX_OFFERS: usize = 64;

/// Inserts `name` into `set` unless it is full.
fn remember(set: &mut BTreeSet<String>, name: &str) {
    if set.len() < MAX_NAMES && !set.contains(name) {
        set.insert(name.to_owned());
    }
}

/// A message as a room remembers it, to recognise it again: its
/// timestamp and a hash of its speaker and text (not the text: a server
/// may send a thousand lines of 64 KiB).
fn fingerprint(m: &ChatMessage) -> (u64, u64) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&m.from, &m.text).hash(&mut h);
    (m.timestamp_ms, h.finish())
}

/// A room this client is in.
#[derive(Debug, Clone, Default)]
struct Room {
    /// As the server spells it.
    name: String,
    members: BTreeSet<String>,
    /// The [`fingerprint`]s of the last [`SHOWN_LINES`] messages shown,
    /// newest last.
    shown: VecDeque<(u64, u64)>,
    /// Lines we said (the server does not echo them back).
    own: VecDeque<String>,
}

impl Room {
    fn seen(&mut self, m: &ChatMessage) {
        if self.shown.len() == SHOWN_LINES {
            self.shown.pop_front();
        }
        self.shown.push_back(fingerprint(m));
    }

    /// Whether a message of the room's history was shown already (or is
    /// one of ours). A history is in the server's order, which across
    /// servers is not the order of their clocks: a message is recognised
    /// by its timestamp, speaker and text, not by being older than the
    /// newest shown. Only once more was shown than is remembered does
    /// "older than all remembered" count as shown.
    fn already_shown(&self, m: &ChatMessage, me: &str) -> bool {
        let remembered = self.shown.contains(&fingerprint(m));
        let forgotten = self.shown.len() == SHOWN_LINES
            && self.shown.iter().all(|(ms, _)| m.timestamp_ms < *ms);
        remembered || forgotten || (fold(&m.from) == fold(me) && self.own.contains(&m.text))
    }
}

/// Everything the client knows.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Our nickname.
    pub(crate) me: String,
    /// Where plain lines go.
    pub(crate) current: String,
    /// Folded name → room, for the rooms we are in.
    rooms: BTreeMap<String, Room>,
    /// Rooms we were in before a reconnect, until they are joined again
    /// (what was shown in them is not shown again).
    previous: BTreeMap<String, Room>,
    /// A join we asked for: the folded room.
    joining: Option<String>,
    /// People we exchanged private messages with.
    pm: BTreeSet<String>,
    /// Files offered to us, oldest first.
    pub(crate) offers: Vec<IncomingOffer>,
}

impl State {
    /// Knows nothing yet but our name.
    pub(crate) fn new(me: &str) -> State {
        State {
            me: me.to_owned(),
            ..State::default()
        }
    }

    /// The room's name as the server spells it, if we are in it.
    pub(crate) fn in_room(&self, room: &str) -> Option<&str> {
        self.rooms.get(&fold(room)).map(|r| r.name.as_str())
    }

    /// A room we are in, other than `except`: the current one if possible.
    /// Asking for its (empty) history is how a script learns that the
    /// server has handled everything sent before.
    pub(crate) fn probe_room(&self, except: Option<&str>) -> Option<String> {
        let except = except.map(fold);
        let usable = |key: &String| except.as_ref() != Some(key);
        let current = fold(&self.current);
        if self.rooms.contains_key(&current) && usable(&current) {
            return Some(self.current.clone());
        }
        self.rooms
            .iter()
            .find(|(k, _)| usable(k))
            .map(|(_, r)| r.name.clone())
    }

    /// Remembers that we asked to join `room`.
    pub(crate) fn joining(&mut self, room: &str) {
        self.joining = Some(fold(room));
    }

    /// Remembers a line we said in `room`.
    pub(crate) fn said(&mut self, room: &str, text: &str) {
        if let Some(r) = self.rooms.get_mut(&fold(room)) {
            if r.own.len() >= OWN_LINES {
                r.own.pop_front();
            }
            r.own.push_back(text.to_owned());
        }
    }

    /// The connection was lost: the rooms are to be joined again.
    pub(crate) fn disconnected(&mut self) {
        let rooms = std::mem::take(&mut self.rooms);
        self.previous.extend(rooms);
        while self.previous.len() > MAX_ROOMS {
            self.previous.pop_first();
        }
        self.joining = None;
    }

    /// Nicknames for completion: everyone in our rooms and those we
    /// whispered with, without us.
    pub(crate) fn nicks(&self) -> Vec<String> {
        let me = fold(&self.me);
        let mut all: BTreeMap<String, String> = BTreeMap::new();
        for name in self.rooms.values().flat_map(|r| &r.members).chain(&self.pm) {
            all.entry(fold(name)).or_insert_with(|| name.clone());
        }
        all.remove(&me);
        all.into_values().collect()
    }

    /// The rooms we are in, for completion.
    pub(crate) fn room_names(&self) -> Vec<String> {
        self.rooms.values().map(|r| r.name.clone()).collect()
    }

    /// Learns from `event`; returns the lines to show for it. `quiet_rate`
    /// hides refusals for sending too fast (a script sends those lines
    /// again itself).
    pub(crate) fn apply(&mut self, event: &Event, view: &View, quiet_rate: bool) -> Vec<String> {
        let info = |m: Message| format_event(&m).map(|l| view.info(&l));
        let line = match event {
            Event::Message(m) => {
                if let Some(room) = self.rooms.get_mut(&fold(&m.room)) {
                    remember(&mut room.members, &m.from);
                    room.seen(m);
                }
                view.speech(&m.clone().into(), m.timestamp_ms)
            }
            Event::Private(m) => {
                remember(&mut self.pm, &m.from);
                view.speech(&m.clone().into(), m.timestamp_ms)
            }
            Event::History(h) => return self.history(h, view),
            Event::Roster(r) => {
                let key = fold(&r.room);
                // The roster ends a join (a member re-joining gets no
                // history): then we are in the room.
                if self.joining.as_ref() == Some(&key) {
                    self.entered(&r.room);
                }
                if let Some(room) = self.rooms.get_mut(&key) {
                    room.members = r.members.iter().take(MAX_NAMES).cloned().collect();
                }
                info(r.clone().into())
            }
            Event::Presence(p) => {
                let key = fold(&p.room);
                if p.change == PresenceChange::Left && fold(&p.name) == fold(&self.me) {
                    self.rooms.remove(&key);
                    if fold(&self.current) == key {
                        if let Some(other) = self.rooms.values().next() {
                            self.current = other.name.clone();
                        }
                    }
                } else if let Some(room) = self.rooms.get_mut(&key) {
                    match p.change {
                        PresenceChange::Joined => remember(&mut room.members, &p.name),
                        PresenceChange::Left => {
                            room.members.remove(&p.name);
                        }
                    }
                }
                info(p.clone().into())
            }
            Event::NickChanged(n) => {
                for room in self.rooms.values_mut() {
                    if room.members.remove(&n.old) {
                        remember(&mut room.members, &n.new);
                    }
                }
                if self.pm.remove(&n.old) {
                    remember(&mut self.pm, &n.new);
                }
                if fold(&n.old) == fold(&self.me) {
                    self.me.clone_from(&n.new);
                }
                info(n.clone().into())
            }
            Event::Notice(n) => info(n.clone().into()),
            Event::ServerError(e) if quiet_rate && e.code == ErrorCode::RATE_LIMITED => None,
            Event::ServerError(e) => info(e.clone().into()),
            Event::FileOffered(o) => {
                if self.offers.len() >= MAX_OFFERS {
                    self.offers.remove(0);
                }
                self.offers.push(o.clone());
                // Through the formatter, which defuses control characters
                // in the sender's name and the file's.
                let text = format!(
                    "{} offers {} ({}): /accept or /decline",
                    o.from(),
                    o.name(),
                    human_bytes(o.size())
                );
                info(lanlink_proto::chat::Notice { room: None, text }.into())
            }
            _ => None,
        };
        line.into_iter().collect()
    }

    /// We are in the room `name`: a join asked for went through, or the
    /// server put us in its default room (or back in a room after a
    /// reconnect). Remembers what was known of the room before a reconnect.
    /// `None` past [`MAX_ROOMS`] (a hostile server's histories of rooms
    /// never asked for): not remembered.
    fn entered(&mut self, name: &str) -> Option<&mut Room> {
        let key = fold(name);
        if self.joining.as_ref() == Some(&key) {
            self.joining = None;
        }
        if !self.rooms.contains_key(&key) && self.rooms.len() >= MAX_ROOMS {
            return None;
        }
        Some(self.rooms.entry(key.clone()).or_insert_with(|| {
            let mut room = self.previous.remove(&key).unwrap_or_default();
            room.name = name.to_owned();
            room
        }))
    }

    /// A room's history: sent to newcomers only, so we are in that room.
    /// Shows what was not shown yet.
    fn history(&mut self, h: &lanlink_proto::chat::History, view: &View) -> Vec<String> {
        let me = self.me.clone();
        let mut room = self.entered(&h.room);
        let mut lines = Vec::new();
        for m in &h.messages {
            if let Some(room) = room.as_deref_mut() {
                if room.already_shown(m, &me) {
                    continue;
                }
                room.seen(m);
            }
            lines.extend(view.speech(&m.clone().into(), m.timestamp_ms));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat_client::view::Timestamps;
    use lanlink_proto::chat::{History, Presence, Roster};

    fn said(from: &str, text: &str, ms: u64) -> ChatMessage {
        ChatMessage {
            room: "ops".into(),
            from: from.into(),
            text: text.into(),
            action: false,
            timestamp_ms: ms,
        }
    }

    fn history(messages: Vec<ChatMessage>) -> Event {
        Event::History(History {
            room: "ops".into(),
            messages,
        })
    }

    #[test]
    fn history_is_shown_once_even_across_a_reconnect() {
        let view = View::new(Timestamps::Never, false);
        let mut s = State::new("ada");
        s.joining("OPS");
        let first = s.apply(&history(vec![said("bob", "one", 10)]), &view, false);
        assert_eq!(first, ["[ops] <bob> one"]);
        s.apply(&Event::Message(said("bob", "two", 20)), &view, false);
        s.said("ops", "mine");
        s.disconnected();
        let again = history(vec![
            said("bob", "one", 10),
            said("bob", "two", 20),
            said("ada", "mine", 25),
            said("bob", "missed", 30),
        ]);
        assert_eq!(s.apply(&again, &view, false), ["[ops] <bob> missed"]);
        assert_eq!(s.in_room("Ops"), Some("ops"));
    }

    /// Across servers a history is in the stream's order, not the order of
    /// the servers' clocks: an earlier timestamp after a later one is
    /// still new.
    #[test]
    fn a_history_out_of_clock_order_is_shown_whole() {
        let view = View::new(Timestamps::Never, false);
        let mut s = State::new("dee");
        s.joining("ops");
        let shown = s.apply(
            &history(vec![
                said("bob@b", "b 5", 21),
                said("ada@a", "a 5", 20),
                said("ada@a", "a 6", 20),
                said("bob@b", "b 6", 22),
            ]),
            &view,
            false,
        );
        assert_eq!(
            shown,
            [
                "[ops] <bob@b> b 5",
                "[ops] <ada@a> a 5",
                "[ops] <ada@a> a 6",
                "[ops] <bob@b> b 6"
            ]
        );
    }

    #[test]
    fn names_follow_rosters_presence_and_nick_changes() {
        let view = View::new(Timestamps::Never, false);
        let mut s = State::new("ada");
        s.apply(&history(vec![]), &view, false);
        s.apply(
            &Event::Roster(Roster {
                room: "ops".into(),
                members: vec!["ada".into(), "bob".into()],
            }),
            &view,
            false,
        );
        let presence = |name: &str, change| {
            Event::Presence(Presence {
                room: "ops".into(),
                name: name.into(),
                change,
                reason: String::new(),
            })
        };
        s.apply(&presence("cat", PresenceChange::Joined), &view, false);
        assert_eq!(s.nicks(), ["bob", "cat"]);
        s.apply(&presence("bob", PresenceChange::Left), &view, false);
        assert_eq!(s.nicks(), ["cat"]);
        s.apply(&presence("ada", PresenceChange::Left), &view, false);
        assert!(s.room_names().is_empty() && s.nicks().is_empty());
    }

    /// The server compares room names by confusable skeleton, and answers
    /// with the existing room's spelling: `/join rnusic` is `music`.
    #[test]
    fn rooms_are_compared_as_the_server_compares_them() {
        let view = View::new(Timestamps::Never, false);
        let mut s = State::new("ada");
        s.joining("rnusic");
        s.apply(
            &Event::History(History {
                room: "music".into(),
                messages: vec![],
            }),
            &view,
            false,
        );
        s.apply(
            &Event::Roster(Roster {
                room: "music".into(),
                members: vec!["ada".into()],
            }),
            &view,
            false,
        );
        assert_eq!(s.in_room("rnusic"), Some("music"));
        assert_eq!(s.in_room("MUSIC"), Some("music"));
    }

    /// What a hostile server sends in quantity is shown, but what is
    /// remembered of it is bounded: rooms, names, and each room's shown
    /// lines as fingerprints, not texts.
    #[test]
    fn a_servers_inventions_are_remembered_within_bounds() {
        let view = View::new(Timestamps::Never, false);
        let mut s = State::new("ada");
        for i in 0..1000 {
            let h = Event::History(History {
                room: format!("room{i}"),
                messages: vec![said("bob", &"x".repeat(1000), i)],
            });
            assert_eq!(s.apply(&h, &view, false).len(), 1);
            let r = Event::Roster(Roster {
                room: format!("room{i}"),
                members: (0..5000).map(|n| format!("u{n}")).collect(),
            });
            s.apply(&r, &view, false);
        }
        assert_eq!(s.rooms.len(), MAX_ROOMS);
        assert!(s.rooms.values().all(|r| r.members.len() <= MAX_NAMES));
        for i in 0..10_000 {
            let pm = Event::Private(lanlink_proto::chat::PrivateMessage {
                from: format!("p{i}"),
                to: "ada".into(),
                text: "hi".into(),
                action: false,
                timestamp_ms: 1,
            });
            s.apply(&pm, &view, false);
        }
        assert_eq!(s.pm.len(), MAX_NAMES);
        s.disconnected();
        assert!(s.previous.len() <= MAX_ROOMS);
    }
}
