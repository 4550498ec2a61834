//! Chat messages: rooms, room and private messages, nicknames, rosters,
//! presence, notices and history. All travel on [`crate::CONTROL_STREAM`].
//!
//! Requests go client → server; events go server → client. [`ChatMessage`]
//! and [`PrivateMessage`] go both ways: the client leaves `from` empty and
//! `timestamp_ms` zero, and the server fills them in before delivering.

use crate::wire::{list_memory, text_memory, Reader, Writer};
use crate::{Body, ProtoError};

/// Client → server: join a room (creating it if needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    /// The room's name.
    pub room: String,
    /// The room's password, for rooms that have one.
    pub password: Option<String>,
}

impl Body for Join {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("room", &self.room)?;
        w.opt_string("password", self.password.as_deref())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(Join {
            room: r.string("room")?,
            password: r.opt_string("password")?,
        })
    }
}

/// Client → server: leave a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leave {
    /// The room's name.
    pub room: String,
}

impl Body for Leave {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("room", &self.room)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(Leave {
            room: r.string("room")?,
        })
    }
}

/// A message to everyone in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// The room it is said in.
    pub room: String,
    /// Who said it (set by the server).
    pub from: String,
    /// What was said.
    pub text: String,
    /// An action (`/me waves`) rather than speech.
    pub action: bool,
    /// When the server received it, in milliseconds since the Unix epoch
    /// (set by the server).
    pub timestamp_ms: u64,
}

impl ChatMessage {
    /// What a client sends to say `text` in `room`: the server fills in
    /// who said it and when.
    ///
    /// ```
    /// use lanlink_proto::{chat::ChatMessage, Frame};
    ///
    /// let frame = Frame::control(ChatMessage::say("lobby", "hello"));
    /// assert!(!frame.to_bytes()?.is_empty());
    /// # Ok::<(), lanlink_proto::ProtoError>(())
    /// ```
    pub fn say(room: &str, text: &str) -> ChatMessage {
        ChatMessage {
            room: room.into(),
            from: String::new(),
            text: text.into(),
            action: false,
            timestamp_ms: 0,
        }
    }
}

impl Body for ChatMessage {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("room", &self.room)?;
        w.string("from", &self.from)?;
        w.string("text", &self.text)?;
        w.bool(self.action);
        w.u64(self.timestamp_ms);
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(ChatMessage {
            room: r.string("room")?,
            from: r.string("from")?,
            text: r.string("text")?,
            action: r.bool("action")?,
            timestamp_ms: r.u64("timestamp_ms")?,
        })
    }
}

/// A message to one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateMessage {
    /// The recipient's nickname.
    pub to: String,
    /// The sender's nickname (set by the server).
    pub from: String,
    /// What was said.
    pub text: String,
    /// An action rather than speech.
    pub action: bool,
    /// When the server received it, in milliseconds since the Unix epoch
    /// (set by the server).
    pub timestamp_ms: u64,
}

impl Body for PrivateMessage {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("to", &self.to)?;
        w.string("from", &self.from)?;
        w.string("text", &self.text)?;
        w.bool(self.action);
        w.u64(self.timestamp_ms);
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(PrivateMessage {
            to: r.string("to")?,
            from: r.string("from")?,
            text: r.string("text")?,
            action: r.bool("action")?,
            timestamp_ms: r.u64("timestamp_ms")?,
        })
    }
}

/// Client → server: change my nickname.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetNick {
    /// The nickname wanted.
    pub name: String,
}

impl Body for SetNick {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("name", &self.name)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(SetNick {
            name: r.string("name")?,
        })
    }
}

/// Server → client: someone (possibly the receiver) changed nickname.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NickChanged {
    /// The nickname before.
    pub old: String,
    /// The nickname now.
    pub new: String,
}

impl Body for NickChanged {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("old", &self.old)?;
        w.string("new", &self.new)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(NickChanged {
            old: r.string("old")?,
            new: r.string("new")?,
        })
    }
}

/// Client → server: who is in this room?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterRequest {
    /// The room asked about.
    pub room: String,
}

impl Body for RosterRequest {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("room", &self.room)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(RosterRequest {
            room: r.string("room")?,
        })
    }
}

/// Server → client: the members of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    /// The room.
    pub room: String,
    /// Its members' nicknames.
    pub members: Vec<String>,
}

impl Roster {
    /// About how many bytes it holds in memory (see
    /// [`Message::memory_size`](crate::Message::memory_size)): a member
    /// of one byte is 3 bytes on the wire and about 56 here.
    pub fn memory_size(&self) -> usize {
        std::mem::size_of::<Roster>()
            + text_memory(&self.room)
            + list_memory(&self.members, |m| text_memory(m))
    }
}

impl Body for Roster {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("room", &self.room)?;
        w.list("members", &self.members, |w, m| w.string("members", m))
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(Roster {
            room: r.string("room")?,
            members: r.list("members", |r| r.string("members"))?,
        })
    }
}

/// What happened to a room member in a [`Presence`] event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PresenceChange {
    /// The member entered the room.
    Joined,
    /// The member left the room or disconnected.
    Left,
}

/// Server → client: someone joined or left a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// The room.
    pub room: String,
    /// The member's nickname.
    pub name: String,
    /// Joined or left.
    pub change: PresenceChange,
    /// Why they left (`quit`, `connection lost`, …); empty on join.
    pub reason: String,
}

impl Body for Presence {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("room", &self.room)?;
        w.string("name", &self.name)?;
        w.u8(match self.change {
            PresenceChange::Joined => 0,
            PresenceChange::Left => 1,
        });
        w.string("reason", &self.reason)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        let room = r.string("room")?;
        let name = r.string("name")?;
        let change = match r.u8("change")? {
            0 => PresenceChange::Joined,
            1 => PresenceChange::Left,
            other => return Err(r.invalid("change", other.into())),
        };
        Ok(Presence {
            room,
            name,
            change,
            reason: r.string("reason")?,
        })
    }
}

/// Server → client: text from the server itself (welcome, message of the day,
/// command replies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The room it concerns, if any.
    pub room: Option<String>,
    /// The text.
    pub text: String,
}

impl Body for Notice {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.opt_string("room", self.room.as_deref())?;
        w.string("text", &self.text)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(Notice {
            room: r.opt_string("room")?,
            text: r.string("text")?,
        })
    }
}

/// Client → server: send me up to `limit` recent messages of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRequest {
    /// The room.
    pub room: String,
    /// The most messages wanted.
    pub limit: u16,
}

impl Body for HistoryRequest {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("room", &self.room)?;
        w.u16(self.limit);
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(HistoryRequest {
            room: r.string("room")?,
            limit: r.u16("limit")?,
        })
    }
}

/// Server → client: recent messages of a room, oldest first. Sent on join and
/// in answer to a [`HistoryRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// The room.
    pub room: String,
    /// The messages, oldest first.
    pub messages: Vec<ChatMessage>,
}

impl History {
    /// About how many bytes it holds in memory (see
    /// [`Message::memory_size`](crate::Message::memory_size)): an empty
    /// message is 15 bytes on the wire and about 90 here.
    pub fn memory_size(&self) -> usize {
        std::mem::size_of::<History>()
            + text_memory(&self.room)
            + list_memory(&self.messages, |m| {
                text_memory(&m.room) + text_memory(&m.from) + text_memory(&m.text)
            })
    }
}

impl Body for History {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("room", &self.room)?;
        w.list("messages", &self.messages, |w, m| m.encode(w))
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(History {
            room: r.string("room")?,
            messages: r.list("messages", ChatMessage::decode)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::round_trip;

    use super::*;

    fn line(text: &str) -> ChatMessage {
        ChatMessage {
            room: "lobby".into(),
            from: "ada".into(),
            text: text.into(),
            action: false,
            timestamp_ms: 1_700_000_000_000,
        }
    }

    /// A queue bounded in bytes counts what a decoded list holds: many
    /// times its wire size for tiny items, the wire size for a plain
    /// message or a chunk.
    #[test]
    fn lists_of_tiny_items_count_what_they_hold_decoded() {
        use crate::Frame;
        let roster = Frame::control(Roster {
            room: "lobby".into(),
            members: vec!["a".into(); usize::from(u16::MAX)],
        });
        let wire = roster.to_bytes().unwrap();
        let mut decoder = crate::FrameDecoder::new();
        decoder.push(&wire);
        let decoded = decoder.decode().unwrap().unwrap();
        let held = decoded.message.memory_size(wire.len());
        assert!(
            held > 15 * wire.len(),
            "{held} for {} on the wire",
            wire.len()
        );

        let history = Frame::control(History {
            room: "lobby".into(),
            messages: vec![line(""); 4000],
        });
        let wire = history.to_bytes().unwrap().len();
        assert!(history.message.memory_size(wire) > 4 * wire);

        let said = Frame::control(line("hello"));
        let wire = said.to_bytes().unwrap().len();
        assert_eq!(said.message.memory_size(wire), wire);
    }

    #[test]
    fn requests_round_trip() {
        round_trip(Join {
            room: "lobby".into(),
            password: None,
        });
        round_trip(Join {
            room: "ops".into(),
            password: Some("pw".into()),
        });
        round_trip(Leave {
            room: "lobby".into(),
        });
        round_trip(SetNick { name: "bob".into() });
        round_trip(RosterRequest {
            room: "lobby".into(),
        });
        round_trip(HistoryRequest {
            room: "lobby".into(),
            limit: 50,
        });
    }

    #[test]
    fn events_round_trip() {
        round_trip(line("hello"));
        round_trip(ChatMessage {
            action: true,
            ..line("waves")
        });
        round_trip(PrivateMessage {
            to: "bob".into(),
            from: "ada".into(),
            text: "psst".into(),
            action: false,
            timestamp_ms: 5,
        });
        round_trip(NickChanged {
            old: "a".into(),
            new: "b".into(),
        });
        round_trip(Roster {
            room: "lobby".into(),
            members: vec!["a".into(), "b".into()],
        });
        round_trip(Roster {
            room: "empty".into(),
            members: vec![],
        });
        round_trip(Presence {
            room: "lobby".into(),
            name: "ada".into(),
            change: PresenceChange::Left,
            reason: "connection lost".into(),
        });
        round_trip(Notice {
            room: None,
            text: "welcome".into(),
        });
        round_trip(History {
            room: "lobby".into(),
            messages: vec![line("one"), line("two")],
        });
    }
}
