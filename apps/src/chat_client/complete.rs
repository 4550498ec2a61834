//! Tab completion on the terminal: commands after a leading `/`, rooms
//! after `/join`, `/leave` and `/who`, nicknames everywhere else (with
//! `: ` after a nickname that starts the line, as IRC clients do).

use std::sync::{Arc, Mutex};

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

use super::{lock, COMMANDS};
use lanlink_client::ChatModel;

/// The rustyline helper of `lanlink chat`.
pub(crate) struct ChatHelper {
    pub(crate) state: Arc<Mutex<ChatModel>>,
}

/// What to complete `word` (at byte `start` of `line`) with.
pub(crate) fn candidates(state: &ChatModel, line: &str, start: usize, word: &str) -> Vec<String> {
    let prefix = word.to_lowercase();
    let matches = |name: &str| name.to_lowercase().starts_with(&prefix);
    if start == 0 && word.starts_with('/') {
        return COMMANDS
            .iter()
            .filter(|c| matches(c))
            .map(|c| format!("{c} "))
            .collect();
    }
    let command = line.split_whitespace().next().unwrap_or("").to_lowercase();
    let first_argument = line[..start].split_whitespace().count() == 1;
    if first_argument && matches!(command.as_str(), "/join" | "/leave" | "/who") {
        return state
            .room_names()
            .into_iter()
            .filter(|r| matches(r))
            .map(|r| format!("{r} "))
            .collect();
    }
    let suffix = if start == 0 { ": " } else { " " };
    state
        .nicks()
        .into_iter()
        .filter(|n| matches(n))
        .map(|n| format!("{n}{suffix}"))
        .collect()
}

impl Completer for ChatHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = line.get(..pos).unwrap_or(line);
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8());
        let word = &before[start..];
        let found = candidates(&lock(&self.state), line, start, word);
        let pairs = found
            .into_iter()
            .map(|c| Pair {
                display: c.trim_end_matches([' ', ':']).to_owned(),
                replacement: c,
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for ChatHelper {
    type Hint = String;
}
impl Highlighter for ChatHelper {}
impl Validator for ChatHelper {}
impl Helper for ChatHelper {}

#[cfg(test)]
mod tests {
    use super::*;
    use lanlink_client::Event;
    use lanlink_proto::chat::{History, Roster};

    fn state() -> ChatModel {
        let mut s = ChatModel::new("ada");
        for room in ["lobby", "Ops"] {
            s.apply(&Event::History(History {
                room: room.into(),
                messages: vec![],
            }));
        }
        s.apply(&Event::Roster(Roster {
            room: "lobby".into(),
            members: vec!["ada".into(), "Bob".into(), "bea".into(), "cat".into()],
        }));
        s
    }

    #[test]
    fn commands_rooms_and_nicks() {
        let s = state();
        assert_eq!(candidates(&s, "/jo", 0, "/jo"), ["/join "]);
        assert_eq!(candidates(&s, "/join o", 6, "o"), ["Ops "]);
        assert_eq!(candidates(&s, "b", 0, "b"), ["bea: ", "Bob: "]);
        assert_eq!(candidates(&s, "hi bo", 3, "bo"), ["Bob "]);
        assert_eq!(candidates(&s, "/msg c", 5, "c"), ["cat "]);
        assert!(candidates(&s, "a", 0, "a").is_empty(), "not ourselves");
    }
}
