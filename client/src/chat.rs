//! [`ChatModel`]: what a chat client knows, learnt from its session's
//! events: the rooms it is in and who is in them, the people it exchanged
//! private messages with, the files offered to it, and which messages it
//! has shown already, so that the history a room sends again after a
//! reconnect shows only what was missed.
//!
//! Sans-IO: feed it every [`Event`] with [`ChatModel::apply`] and show what
//! it returns. Everything it remembers of what a server sends is bounded
//! (a hostile server may invent any number of rooms, names, lines and
//! offers): past the bounds events are still returned, but no longer
//! remembered.
//!
//! ```
//! use lanlink_client::chat::ChatModel;
//! use lanlink_client::proto::chat::{ChatMessage, History};
//! use lanlink_client::Event;
//!
//! let said = |text: &str, ms| ChatMessage {
//!     room: "ops".into(),
//!     from: "bob".into(),
//!     text: text.into(),
//!     action: false,
//!     timestamp_ms: ms,
//! };
//! let mut chat = ChatModel::new("ada");
//! chat.joining("ops");
//! let first = Event::History(History { room: "ops".into(), messages: vec![said("one", 10)] });
//! assert!(chat.apply(&first).is_some());
//! assert_eq!(chat.in_room("OPS"), Some("ops"));
//!
//! // The connection drops; after the reconnect the room's history comes
//! // again, with one line said meanwhile: only that one is new.
//! chat.disconnected();
//! let again = Event::History(History {
//!     room: "ops".into(),
//!     messages: vec![said("one", 10), said("missed", 20)],
//! });
//! match chat.apply(&again).as_deref() {
//!     Some(Event::History(h)) => assert_eq!(h.messages, [said("missed", 20)]),
//!     other => panic!("{other:?}"),
//! }
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use lanlink_proto::chat::{ChatMessage, History, PresenceChange};

use crate::{Event, IncomingOffer};

/// Rooms and names compared as the server compares them: by their
/// case-folded confusable skeleton (`/join rnusic` is the room `music`).
pub use lanlink_services::chat::names::fold;

/// How many of its own lines a room remembers (a server does not echo them
/// back, but sends them in the history after a reconnect).
pub const OWN_LINES: usize = 64;

/// How many shown messages a room remembers, to recognise them in its
/// history after a reconnect (a server keeps 50 by default).
pub const SHOWN_LINES: usize = 1024;

/// The most rooms remembered (and rooms of before a reconnect): a server
/// lets a client into 32 by default; the histories of rooms past it are
/// returned whole, not remembered.
pub const MAX_ROOMS: usize = 64;

/// The most names remembered per room, and of people private messages
/// were exchanged with.
pub const MAX_NAMES: usize = 4096;

/// The most file offers kept waiting (a server keeps 16 per user); past it
/// the oldest is forgotten.
pub const MAX_OFFERS: usize = 64;

/// Inserts `name` into `set` unless it is full.
fn remember(set: &mut BTreeSet<String>, name: &str) {
    if set.len() < MAX_NAMES && !set.contains(name) {
        set.insert(name.to_owned());
    }
}

/// A message as a room remembers it, to recognise it again: its timestamp
/// and a hash of its speaker and text (not the text: a server may send a
/// thousand lines of 64 KiB).
fn fingerprint(m: &ChatMessage) -> (u64, u64) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&m.from, &m.text).hash(&mut h);
    (m.timestamp_ms, h.finish())
}

/// A room the client is in.
#[derive(Debug, Clone, Default)]
struct Room {
    /// As the server spells it.
    name: String,
    members: BTreeSet<String>,
    /// The [`fingerprint`]s of the last [`SHOWN_LINES`] messages shown,
    /// newest last.
    shown: VecDeque<(u64, u64)>,
    /// Lines this client said.
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

/// What a chat client knows, learnt from its session's events (see the
/// [module](self)).
#[derive(Debug, Default)]
pub struct ChatModel {
    me: String,
    current: String,
    /// Folded name → room, for the rooms we are in.
    rooms: BTreeMap<String, Room>,
    /// Rooms we were in before a reconnect, until they are joined again
    /// (what was shown in them is not shown again).
    previous: BTreeMap<String, Room>,
    /// A join asked for: the folded room.
    joining: Option<String>,
    /// People we exchanged private messages with.
    pm: BTreeSet<String>,
    /// Files offered to us, oldest first.
    offers: Vec<IncomingOffer>,
}

impl ChatModel {
    /// Knows nothing yet but the session's name.
    pub fn new(me: &str) -> ChatModel {
        ChatModel {
            me: me.to_owned(),
            ..ChatModel::default()
        }
    }

    /// The session's name (it follows the session's own nickname changes).
    pub fn me(&self) -> &str {
        &self.me
    }

    /// Sets the session's name (the server may give another on a
    /// reconnect: [`Event::Reconnected`] does this too).
    pub fn set_me(&mut self, name: &str) {
        name.clone_into(&mut self.me);
    }

    /// The room plain lines go to: empty until set.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// Sets the room plain lines go to. When the session leaves it, another
    /// room it is in (if any) becomes the current one.
    pub fn set_current(&mut self, room: &str) {
        room.clone_into(&mut self.current);
    }

    /// The session left `room` (the server said so, or confirmed the
    /// leave): it is no longer among its rooms, and if it was the current
    /// one, another room it is in (if any) becomes current. Returns the
    /// new current room when it changed.
    pub fn left(&mut self, room: &str) -> Option<&str> {
        let key = fold(room);
        self.rooms.remove(&key);
        if fold(&self.current) != key {
            return None;
        }
        let other = self.rooms.values().next()?;
        self.current = other.name.clone();
        Some(&self.current)
    }

    /// The room's name as the server spells it, if the session is in it.
    pub fn in_room(&self, room: &str) -> Option<&str> {
        self.rooms.get(&fold(room)).map(|r| r.name.as_str())
    }

    /// The rooms the session is in, as the server spells them.
    pub fn room_names(&self) -> Vec<String> {
        self.rooms.values().map(|r| r.name.clone()).collect()
    }

    /// Who is in `room` (at most [`MAX_NAMES`]), if the session is in it,
    /// in the order a person reads a list of names: letters before their
    /// case (`ada`, `Bob`, `zed`), then by their bytes, so the order is
    /// the same on every call.
    pub fn members(&self, room: &str) -> Option<Vec<String>> {
        self.rooms.get(&fold(room)).map(|r| {
            let mut names: Vec<String> = r.members.iter().cloned().collect();
            names.sort_by_cached_key(|n| (n.to_lowercase(), n.clone()));
            names
        })
    }

    /// Everyone in the session's rooms and those it exchanged private
    /// messages with, without itself, one spelling per folded name: for
    /// completing names.
    pub fn nicks(&self) -> Vec<String> {
        let me = fold(&self.me);
        let mut all: BTreeMap<String, String> = BTreeMap::new();
        for name in self.rooms.values().flat_map(|r| &r.members).chain(&self.pm) {
            all.entry(fold(name)).or_insert_with(|| name.clone());
        }
        all.remove(&me);
        all.into_values().collect()
    }

    /// The files offered and not yet taken, oldest first.
    pub fn offers(&self) -> &[IncomingOffer] {
        &self.offers
    }

    /// Takes the offer at `index` (0 is the oldest), to accept or decline.
    pub fn take_offer(&mut self, index: usize) -> Option<IncomingOffer> {
        (index < self.offers.len()).then(|| self.offers.remove(index))
    }

    /// Tells it the session asked to join `room`: the room's history or
    /// roster that answers makes the session a member.
    pub fn joining(&mut self, room: &str) {
        self.joining = Some(fold(room));
    }

    /// Tells it the session said `text` in `room` (the server does not echo
    /// it back, but a history after a reconnect holds it).
    pub fn said(&mut self, room: &str, text: &str) {
        if let Some(r) = self.rooms.get_mut(&fold(room)) {
            if r.own.len() >= OWN_LINES {
                r.own.pop_front();
            }
            r.own.push_back(text.to_owned());
        }
    }

    /// The connection was lost: the rooms are to be joined again, and what
    /// was shown in them is remembered until they are
    /// ([`Event::Reconnecting`] does this too).
    pub fn disconnected(&mut self) {
        let rooms = std::mem::take(&mut self.rooms);
        self.previous.extend(rooms);
        while self.previous.len() > MAX_ROOMS {
            self.previous.pop_first();
        }
        self.joining = None;
    }

    /// Learns from `event` and returns what of it is new to show: the
    /// event itself, or for a room's history only the messages not shown
    /// before (`None` when none is new), or for a file offer withdrawn
    /// before it was answered a [`Notice`](lanlink_proto::chat::Notice)
    /// saying so.
    pub fn apply<'e>(&mut self, event: &'e Event) -> Option<Cow<'e, Event>> {
        match event {
            Event::Message(m) => {
                if let Some(room) = self.rooms.get_mut(&fold(&m.room)) {
                    remember(&mut room.members, &m.from);
                    room.seen(m);
                }
            }
            Event::Private(m) => remember(&mut self.pm, &m.from),
            Event::History(h) => return self.history(h).map(Cow::Owned),
            Event::Roster(r) => {
                let key = fold(&r.room);
                // The roster ends a join (a member joining again gets no
                // history): then the session is in the room.
                if self.joining.as_ref() == Some(&key) {
                    self.entered(&r.room);
                }
                if let Some(room) = self.rooms.get_mut(&key) {
                    room.members = r.members.iter().take(MAX_NAMES).cloned().collect();
                }
            }
            Event::Presence(p) => {
                let key = fold(&p.room);
                if p.change == PresenceChange::Left && fold(&p.name) == fold(&self.me) {
                    self.left(&p.room);
                } else if let Some(room) = self.rooms.get_mut(&key) {
                    match p.change {
                        PresenceChange::Joined => remember(&mut room.members, &p.name),
                        PresenceChange::Left => {
                            room.members.remove(&p.name);
                        }
                    }
                }
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
            }
            Event::FileOffered(o) => {
                if self.offers.len() >= MAX_OFFERS {
                    self.offers.remove(0);
                }
                self.offers.push(o.clone());
            }
            // An offer withdrawn (or refused by the server) before it was
            // answered: gone from the offers, and said so, as a notice.
            Event::Other(frame)
                if matches!(
                    frame.message,
                    lanlink_proto::Message::FileCancel(_) | lanlink_proto::Message::FileReject(_)
                ) =>
            {
                let i = self.offers.iter().position(|o| o.stream == frame.stream)?;
                let offer = self.offers.remove(i);
                let text = format!("{} withdrew {}", offer.from(), offer.name());
                let notice = lanlink_proto::chat::Notice { room: None, text };
                return Some(Cow::Owned(Event::Notice(notice)));
            }
            Event::Reconnecting { .. } => self.disconnected(),
            Event::Reconnected { name } => self.set_me(name),
            _ => {}
        }
        Some(Cow::Borrowed(event))
    }

    /// The session is in the room `name`: a join asked for went through,
    /// or the server put it in its default room (or back in a room after a
    /// reconnect). Takes back what was known of the room before a
    /// reconnect. `None` past [`MAX_ROOMS`] (a hostile server's histories
    /// of rooms never asked for): not remembered.
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

    /// A room's history: sent to newcomers only, so the session is in that
    /// room. Returns what was not shown yet.
    fn history(&mut self, h: &History) -> Option<Event> {
        let me = self.me.clone();
        let mut room = self.entered(&h.room);
        let mut new = Vec::new();
        for m in &h.messages {
            if let Some(room) = room.as_deref_mut() {
                if room.already_shown(m, &me) {
                    continue;
                }
                room.seen(m);
            }
            new.push(m.clone());
        }
        (!new.is_empty()).then(|| {
            Event::History(History {
                room: h.room.clone(),
                messages: new,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanlink_proto::chat::{Presence, PrivateMessage, Roster};

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

    /// The texts of the messages `event` shows, as "from: text".
    fn shown(s: &mut ChatModel, event: &Event) -> Vec<String> {
        match s.apply(event).as_deref() {
            Some(Event::History(h)) => h
                .messages
                .iter()
                .map(|m| format!("{}: {}", m.from, m.text))
                .collect(),
            Some(Event::Message(m)) => vec![format!("{}: {}", m.from, m.text)],
            _ => Vec::new(),
        }
    }

    #[test]
    fn history_is_shown_once_even_across_a_reconnect() {
        let mut s = ChatModel::new("ada");
        s.joining("OPS");
        let first = shown(&mut s, &history(vec![said("bob", "one", 10)]));
        assert_eq!(first, ["bob: one"]);
        s.apply(&Event::Message(said("bob", "two", 20)));
        s.said("ops", "mine");
        s.disconnected();
        let again = history(vec![
            said("bob", "one", 10),
            said("bob", "two", 20),
            said("ada", "mine", 25),
            said("bob", "missed", 30),
        ]);
        assert_eq!(shown(&mut s, &again), ["bob: missed"]);
        assert_eq!(s.in_room("Ops"), Some("ops"));
        // Nothing new: nothing to show.
        assert!(s.apply(&again).is_none());
    }

    /// A `Reconnecting` event does what `disconnected` does.
    #[test]
    fn reconnect_events_are_learnt_from() {
        let mut s = ChatModel::new("ada");
        s.joining("ops");
        shown(&mut s, &history(vec![said("bob", "one", 10)]));
        let lost = Event::Reconnecting {
            reason: crate::CloseReason::PeerClosed,
            attempt: 1,
            retry_in: std::time::Duration::from_secs(1),
        };
        s.apply(&lost);
        s.apply(&lost);
        assert!(s.room_names().is_empty());
        s.apply(&Event::Reconnected {
            name: "ada2".into(),
        });
        assert_eq!(s.me(), "ada2");
        let again = history(vec![said("bob", "one", 10), said("bob", "two", 20)]);
        assert_eq!(shown(&mut s, &again), ["bob: two"]);
    }

    /// Across servers a history is in the stream's order, not the order of
    /// the servers' clocks: an earlier timestamp after a later one is
    /// still new.
    #[test]
    fn a_history_out_of_clock_order_is_shown_whole() {
        let mut s = ChatModel::new("dee");
        s.joining("ops");
        let h = history(vec![
            said("bob@b", "b 5", 21),
            said("ada@a", "a 5", 20),
            said("ada@a", "a 6", 20),
            said("bob@b", "b 6", 22),
        ]);
        assert_eq!(
            shown(&mut s, &h),
            ["bob@b: b 5", "ada@a: a 5", "ada@a: a 6", "bob@b: b 6"]
        );
    }

    #[test]
    fn names_follow_rosters_presence_and_nick_changes() {
        let mut s = ChatModel::new("ada");
        s.apply(&history(vec![]));
        s.apply(&Event::Roster(Roster {
            room: "ops".into(),
            members: vec!["ada".into(), "bob".into()],
        }));
        let presence = |name: &str, change| {
            Event::Presence(Presence {
                room: "ops".into(),
                name: name.into(),
                change,
                reason: String::new(),
            })
        };
        s.apply(&presence("cat", PresenceChange::Joined));
        assert_eq!(s.nicks(), ["bob", "cat"]);
        assert_eq!(s.members("OPS").unwrap(), ["ada", "bob", "cat"]);
        for name in ["Zed", "Ann", "bea"] {
            s.apply(&presence(name, PresenceChange::Joined));
        }
        assert_eq!(
            s.members("ops").unwrap(),
            ["ada", "Ann", "bea", "bob", "cat", "Zed"],
            "case does not split the list"
        );
        for name in ["Zed", "Ann", "bea"] {
            s.apply(&presence(name, PresenceChange::Left));
        }
        s.apply(&presence("bob", PresenceChange::Left));
        assert_eq!(s.nicks(), ["cat"]);
        s.apply(&presence("ada", PresenceChange::Left));
        assert!(s.room_names().is_empty() && s.nicks().is_empty());
    }

    /// The server compares room names by confusable skeleton, and answers
    /// with the existing room's spelling: `/join rnusic` is `music`.
    #[test]
    fn rooms_are_compared_as_the_server_compares_them() {
        let mut s = ChatModel::new("ada");
        s.joining("rnusic");
        s.apply(&Event::History(History {
            room: "music".into(),
            messages: vec![],
        }));
        s.apply(&Event::Roster(Roster {
            room: "music".into(),
            members: vec!["ada".into()],
        }));
        assert_eq!(s.in_room("rnusic"), Some("music"));
        assert_eq!(s.in_room("MUSIC"), Some("music"));
    }

    /// What a hostile server sends in quantity is returned, but what is
    /// remembered of it is bounded: rooms, names, and each room's shown
    /// lines as fingerprints, not texts.
    #[test]
    fn a_servers_inventions_are_remembered_within_bounds() {
        let mut s = ChatModel::new("ada");
        for i in 0..1000 {
            let h = Event::History(History {
                room: format!("room{i}"),
                messages: vec![said("bob", &"x".repeat(1000), i)],
            });
            assert_eq!(shown(&mut s, &h).len(), 1);
            let r = Event::Roster(Roster {
                room: format!("room{i}"),
                members: (0..5000).map(|n| format!("u{n}")).collect(),
            });
            s.apply(&r);
        }
        assert_eq!(s.rooms.len(), MAX_ROOMS);
        assert!(s.rooms.values().all(|r| r.members.len() <= MAX_NAMES));
        for i in 0..10_000 {
            let pm = Event::Private(PrivateMessage {
                from: format!("p{i}"),
                to: "ada".into(),
                text: "hi".into(),
                action: false,
                timestamp_ms: 1,
            });
            s.apply(&pm);
        }
        assert_eq!(s.pm.len(), MAX_NAMES);
        s.disconnected();
        assert!(s.previous.len() <= MAX_ROOMS);
    }
}
