//! [`ChatRoom`]: who is in a room, its optional password, and its recent
//! messages.

use std::collections::{BTreeSet, VecDeque};

use lanlink_proto::chat::ChatMessage;
use lanlink_transport::ConnId;

/// One room. The service creates it on first join and drops it, history and
/// all, when its last member leaves, so a room never exists empty for long.
#[derive(Debug, Clone)]
pub(crate) struct ChatRoom {
    /// The name as its creator spelled it; lookups use the folded form.
    name: String,
    /// Set by the creator; later joiners must give the same one.
    password: Option<String>,
    /// Ordered so that broadcasts go out in a deterministic order.
    members: BTreeSet<ConnId>,
    /// Oldest first, at most `history_len` long.
    history: VecDeque<ChatMessage>,
    /// The address of the client that opened it (`None`: opened by the
    /// server or another server): what one address may keep open is capped.
    pub(crate) opened_by: Option<std::net::IpAddr>,
    history_len: usize,
}

impl ChatRoom {
    /// An empty room keeping the last `history_len` messages.
    pub(crate) fn new(name: &str, password: Option<String>, history_len: usize) -> ChatRoom {
        ChatRoom {
            name: name.to_owned(),
            password,
            members: BTreeSet::new(),
            history: VecDeque::with_capacity(history_len.min(1024)),
            history_len,
            opened_by: None,
        }
    }

    /// The room's display name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// True if the room has a password.
    pub(crate) fn is_private(&self) -> bool {
        self.password.is_some()
    }

    /// True if someone giving `password` may join: members always may,
    /// anyone may if the room has no password.
    pub(crate) fn admits(&self, conn: ConnId, password: Option<&str>) -> bool {
        self.members.contains(&conn) || self.password.as_deref().is_none_or(|p| Some(p) == password)
    }

    /// True if `conn` is a member.
    pub(crate) fn contains(&self, conn: ConnId) -> bool {
        self.members.contains(&conn)
    }

    /// The members, in connection order.
    pub(crate) fn members(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.members.iter().copied()
    }

    /// True if nobody is left.
    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Adds a member; false if it already was one.
    pub(crate) fn insert(&mut self, conn: ConnId) -> bool {
        self.members.insert(conn)
    }

    /// Removes a member; false if it was not one.
    pub(crate) fn remove(&mut self, conn: ConnId) -> bool {
        self.members.remove(&conn)
    }

    /// Appends a message to the history, forgetting the oldest beyond the
    /// limit.
    pub(crate) fn record(&mut self, message: ChatMessage) {
        if self.history_len == 0 {
            return;
        }
        if self.history.len() == self.history_len {
            self.history.pop_front();
        }
        self.history.push_back(message);
    }

    /// Puts `older` (oldest first) in front of the history, leaving out
    /// the messages it already holds, and keeps the newest `history_len`;
    /// returns the messages added.
    pub(crate) fn seed(&mut self, older: Vec<ChatMessage>) -> Vec<ChatMessage> {
        let added: Vec<ChatMessage> = older
            .into_iter()
            .filter(|m| !self.history.contains(m))
            .collect();
        let room = std::mem::take(&mut self.history);
        let mut merged: VecDeque<ChatMessage> = added.iter().cloned().chain(room).collect();
        while merged.len() > self.history_len {
            merged.pop_front();
        }
        self.history = merged;
        added
    }

    /// Up to `limit` of the most recent messages, oldest first.
    pub(crate) fn recent(&self, limit: usize) -> Vec<ChatMessage> {
        let skip = self.history.len().saturating_sub(limit);
        self.history.iter().skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(text: &str) -> ChatMessage {
        ChatMessage {
            room: "lobby".into(),
            from: "ada".into(),
            text: text.into(),
            action: false,
            timestamp_ms: 0,
        }
    }

    fn texts(messages: &[ChatMessage]) -> Vec<&str> {
        messages.iter().map(|m| m.text.as_str()).collect()
    }

    #[test]
    fn history_keeps_the_last_n_oldest_first() {
        let mut room = ChatRoom::new("lobby", None, 3);
        for t in ["1", "2", "3", "4", "5"] {
            room.record(said(t));
        }
        assert_eq!(texts(&room.recent(10)), ["3", "4", "5"]);
        assert_eq!(texts(&room.recent(2)), ["4", "5"]);
        assert!(room.recent(0).is_empty());
    }

    #[test]
    fn zero_history_keeps_nothing() {
        let mut room = ChatRoom::new("lobby", None, 0);
        room.record(said("x"));
        assert!(room.recent(10).is_empty());
    }

    #[test]
    fn password_admits_members_and_matching_guesses_only() {
        let mut room = ChatRoom::new("ops", Some("pw".into()), 3);
        assert!(room.is_private());
        assert!(!room.admits(ConnId(1), None));
        assert!(!room.admits(ConnId(1), Some("nope")));
        assert!(room.admits(ConnId(1), Some("pw")));
        room.insert(ConnId(1));
        assert!(room.admits(ConnId(1), None));
        let open = ChatRoom::new("lobby", None, 3);
        assert!(open.admits(ConnId(2), Some("anything")));
    }

    #[test]
    fn membership() {
        let mut room = ChatRoom::new("lobby", None, 3);
        assert!(room.is_empty());
        assert!(room.insert(ConnId(2)));
        assert!(room.insert(ConnId(1)));
        assert!(!room.insert(ConnId(1)));
        assert!(room.contains(ConnId(1)));
        assert_eq!(room.members().collect::<Vec<_>>(), [ConnId(1), ConnId(2)]);
        assert!(room.remove(ConnId(1)));
        assert!(!room.remove(ConnId(1)));
        assert!(room.remove(ConnId(2)));
        assert!(room.is_empty());
    }
}
