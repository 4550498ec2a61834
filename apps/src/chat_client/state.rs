//! What the chat client shows for each event. What it knows (its rooms,
//! who is in them, what was already shown, the files offered) is the
//! library's [`ChatModel`].

use lanlink_client::{ChatModel, Event};
use lanlink_proto::{ErrorCode, Message};
use lanlink_services::chat::command::format_event;

use super::view::View;
use crate::progress::human_bytes;

/// Rooms and names are compared as the server compares them: by their
/// case-folded confusable skeleton (`/join rnusic` is the room `music`).
pub(crate) use lanlink_client::chat::fold;

/// Learns from `event`; returns the lines to show for it. `quiet_rate`
/// hides refusals for sending too fast (a script sends those lines again
/// itself).
pub(crate) fn apply(
    model: &mut ChatModel,
    event: &Event,
    view: &View,
    quiet_rate: bool,
) -> Vec<String> {
    if quiet_rate && matches!(event, Event::ServerError(e) if e.code == ErrorCode::RATE_LIMITED) {
        return Vec::new();
    }
    let Some(new) = model.apply(event) else {
        return Vec::new();
    };
    let info = |m: Message| format_event(&m).map(|l| view.info(&l));
    let line = match &*new {
        Event::Message(m) => view.speech(&m.clone().into(), m.timestamp_ms),
        Event::Private(m) => view.speech(&m.clone().into(), m.timestamp_ms),
        Event::History(h) => {
            return h
                .messages
                .iter()
                .filter_map(|m| view.speech(&m.clone().into(), m.timestamp_ms))
                .collect()
        }
        Event::Roster(r) => info(r.clone().into()),
        Event::Presence(p) => info(p.clone().into()),
        Event::NickChanged(n) => info(n.clone().into()),
        Event::Notice(n) => info(n.clone().into()),
        Event::ServerError(e) => info(e.clone().into()),
        Event::FileOffered(o) => {
            // Through the formatter, which defuses control characters in
            // the sender's name and the file's.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat_client::view::Timestamps;
    use lanlink_proto::chat::{ChatMessage, History};
    use lanlink_proto::control::Error as ServerError;

    /// A history shows a line per new message (what is new is the model's
    /// business, tested with it); a script does not see refusals for
    /// sending too fast, a terminal does.
    #[test]
    fn histories_show_their_new_lines_and_scripts_hide_rate_refusals() {
        let view = View::new(Timestamps::Never, false);
        let mut s = ChatModel::new("ada");
        s.joining("ops");
        let line = |text: &str| ChatMessage {
            room: "ops".into(),
            from: "bob".into(),
            text: text.into(),
            action: false,
            timestamp_ms: text.len() as u64,
        };
        let h = Event::History(History {
            room: "ops".into(),
            messages: vec![line("one"), line("three")],
        });
        assert_eq!(
            apply(&mut s, &h, &view, false),
            ["[ops] <bob> one", "[ops] <bob> three"]
        );
        assert!(apply(&mut s, &h, &view, false).is_empty());
        let refusal = Event::ServerError(ServerError {
            code: ErrorCode::RATE_LIMITED,
            message: "slow down".into(),
        });
        assert!(apply(&mut s, &refusal, &view, true).is_empty());
        assert_eq!(apply(&mut s, &refusal, &view, false).len(), 1);
    }
}
