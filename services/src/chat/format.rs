//! [`format_event`]: a received message as a line for a terminal.

use std::borrow::Cow;

use lanlink_proto::chat::{ChatMessage, PresenceChange};
use lanlink_proto::Message;

/// Renders a chat or control message received from the server as one line
/// for a person, or `None` for messages people need not see (keepalives,
/// file and media traffic, requests).
///
/// ```text
/// [lobby] <ada> hello                  a room message
/// [lobby] * ada waves                  an action
/// [pm] <ada> psst                      a private message
/// -- bob joined lobby
/// -- bob left lobby (connection lost)
/// -- ada is now known as bob
/// -- lobby: ada, bob                   a roster
/// -- the message of the day            a notice
/// !! error: nickname "bob" is already taken
/// ```
///
/// A `History` is several events, so it gives one line per message, joined
/// with `\n` (`None` when empty). Control characters, line and paragraph
/// separators and bidirectional controls from the peer are replaced by
/// `�`, so a message cannot fake extra lines, drive the terminal with
/// escape sequences, or reverse the text around it.
pub fn format_event(message: &Message) -> Option<String> {
    let line = match message {
        Message::ChatMessage(m) => room_line(m),
        Message::PrivateMessage(m) => spoken("pm", &m.from, &m.text, m.action),
        Message::Presence(p) => {
            let (name, room) = (clean(&p.name), clean(&p.room));
            match p.change {
                PresenceChange::Joined => format!("-- {name} joined {room}"),
                PresenceChange::Left if p.reason.is_empty() => format!("-- {name} left {room}"),
                PresenceChange::Left => format!("-- {name} left {room} ({})", clean(&p.reason)),
            }
        }
        Message::NickChanged(n) => {
            format!("-- {} is now known as {}", clean(&n.old), clean(&n.new))
        }
        Message::Roster(r) if r.members.is_empty() => format!("-- {}: nobody", clean(&r.room)),
        Message::Roster(r) => {
            let members: Vec<_> = r.members.iter().map(|m| clean(m)).collect();
            format!("-- {}: {}", clean(&r.room), members.join(", "))
        }
        Message::Notice(n) => match &n.room {
            Some(room) => format!("-- [{}] {}", clean(room), clean(&n.text)),
            None => format!("-- {}", clean(&n.text)),
        },
        Message::History(h) if h.messages.is_empty() => return None,
        Message::History(h) => {
            let lines: Vec<String> = h.messages.iter().map(room_line).collect();
            lines.join("\n")
        }
        Message::Error(e) => format!("!! error: {}", clean(&e.message)),
        Message::Refuse(r) => format!("!! refused: {}", clean(&r.reason)),
        Message::Welcome(w) => format!(
            "-- connected to {} as {}",
            clean(&w.server_name),
            clean(&w.name)
        ),
        Message::Goodbye(g) if g.reason.is_empty() => "-- the server closed the connection".into(),
        Message::Goodbye(g) => {
            format!("-- the server closed the connection ({})", clean(&g.reason))
        }
        _ => return None,
    };
    Some(line)
}

fn room_line(m: &ChatMessage) -> String {
    spoken(&m.room, &m.from, &m.text, m.action)
}

fn spoken(place: &str, from: &str, text: &str, action: bool) -> String {
    let (place, from, text) = (clean(place), clean(from), clean(text));
    if action {
        format!("[{place}] * {from} {text}")
    } else {
        format!("[{place}] <{from}> {text}")
    }
}

/// `s` with every character that acts on a terminal replaced by U+FFFD:
/// control characters (newlines and escapes included), the line and
/// paragraph separators, and bidirectional controls (which reverse what
/// follows them). Other invisible characters stay: emoji need variation
/// selectors and joiners.
fn clean(s: &str) -> Cow<'_, str> {
    let acts = |c: char| {
        c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') || crate::text::is_bidi_control(c)
    };
    if s.chars().any(acts) {
        Cow::Owned(
            s.chars()
                .map(|c| if acts(c) { '\u{FFFD}' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use lanlink_proto::chat::{History, NickChanged, Notice, Presence, PrivateMessage, Roster};
    use lanlink_proto::control::{Error, Goodbye, Ping};
    use lanlink_proto::ErrorCode;

    use super::*;

    fn said(from: &str, text: &str, action: bool) -> ChatMessage {
        ChatMessage {
            room: "lobby".into(),
            from: from.into(),
            text: text.into(),
            action,
            timestamp_ms: 1,
        }
    }

    fn line(m: impl Into<Message>) -> Option<String> {
        format_event(&m.into())
    }

    fn presence(change: PresenceChange, reason: &str) -> Presence {
        Presence {
            room: "lobby".into(),
            name: "bob".into(),
            change,
            reason: reason.into(),
        }
    }

    #[test]
    fn speech_and_actions() {
        assert_eq!(
            line(said("ada", "hello", false)).unwrap(),
            "[lobby] <ada> hello"
        );
        assert_eq!(
            line(said("ada", "waves", true)).unwrap(),
            "[lobby] * ada waves"
        );
        let pm = PrivateMessage {
            to: "bob".into(),
            from: "ada".into(),
            text: "psst".into(),
            action: false,
            timestamp_ms: 1,
        };
        assert_eq!(line(pm.clone()).unwrap(), "[pm] <ada> psst");
        let nudge = PrivateMessage {
            action: true,
            text: "nudges you".into(),
            ..pm
        };
        assert_eq!(line(nudge).unwrap(), "[pm] * ada nudges you");
    }

    #[test]
    fn presence_nicks_rosters_notices() {
        let joined = presence(PresenceChange::Joined, "");
        assert_eq!(line(joined).unwrap(), "-- bob joined lobby");
        let left = presence(PresenceChange::Left, "");
        assert_eq!(line(left).unwrap(), "-- bob left lobby");
        let lost = presence(PresenceChange::Left, "connection lost");
        assert_eq!(line(lost).unwrap(), "-- bob left lobby (connection lost)");
        let nick = NickChanged {
            old: "ada".into(),
            new: "bob".into(),
        };
        assert_eq!(line(nick).unwrap(), "-- ada is now known as bob");
        let roster = Roster {
            room: "lobby".into(),
            members: vec!["ada".into(), "bob".into()],
        };
        assert_eq!(line(roster).unwrap(), "-- lobby: ada, bob");
        let nobody = Roster {
            room: "ops".into(),
            members: vec![],
        };
        assert_eq!(line(nobody).unwrap(), "-- ops: nobody");
        let notice = Notice {
            room: None,
            text: "be nice".into(),
        };
        assert_eq!(line(notice).unwrap(), "-- be nice");
        let room_notice = Notice {
            room: Some("ops".into()),
            text: "topic".into(),
        };
        assert_eq!(line(room_notice).unwrap(), "-- [ops] topic");
    }

    #[test]
    fn control_messages() {
        let err = Error {
            code: ErrorCode::NAME_TAKEN,
            message: r#"nickname "bob" is already taken"#.into(),
        };
        assert_eq!(
            line(err).unwrap(),
            r#"!! error: nickname "bob" is already taken"#
        );
        let bye = Goodbye {
            reason: "shutting down".into(),
        };
        assert_eq!(
            line(bye).unwrap(),
            "-- the server closed the connection (shutting down)"
        );
        assert_eq!(line(Ping { nonce: 1 }), None);
    }

    #[test]
    fn history_is_one_line_per_message() {
        let h = History {
            room: "lobby".into(),
            messages: vec![said("ada", "one", false), said("bob", "two", true)],
        };
        assert_eq!(line(h).unwrap(), "[lobby] <ada> one\n[lobby] * bob two");
        let empty = History {
            room: "lobby".into(),
            messages: vec![],
        };
        assert_eq!(line(empty), None);
    }

    #[test]
    fn control_characters_cannot_fake_lines() {
        let sneaky = said("ada", "hi\n-- root joined lobby\u{1b}[2J", false);
        let out = line(sneaky).unwrap();
        assert!(!out.contains('\n') && !out.contains('\u{1b}'), "{out:?}");
        assert_eq!(
            out,
            "[lobby] <ada> hi\u{FFFD}-- root joined lobby\u{FFFD}[2J"
        );
    }

    /// Found by the attack run (issue 13): a bidi override in a message
    /// reversed the rest of the line on every other user's terminal.
    #[test]
    fn bidi_controls_and_separators_cannot_reorder_or_break_lines() {
        let sneaky = said("ada", "pay \u{202e}txt.exe\u{2028}x\u{2066}", false);
        assert_eq!(
            line(sneaky).unwrap(),
            "[lobby] <ada> pay \u{FFFD}txt.exe\u{FFFD}x\u{FFFD}"
        );
        // Emoji keep their variation selectors and joiners.
        let heart = said("ada", "\u{2764}\u{fe0f} \u{1f469}\u{200d}\u{1f4bb}", true);
        assert_eq!(
            line(heart).unwrap(),
            "[lobby] * ada \u{2764}\u{fe0f} \u{1f469}\u{200d}\u{1f4bb}"
        );
    }
}
