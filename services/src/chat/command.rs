//! The client side of chat, shared by the terminal client and bots: a line a
//! user types becomes a [`Command`] ([`parse_line`]), and a message received
//! becomes a line to print ([`format_event`]).
//!
//! Parsing only checks the command's shape; the server checks names and
//! lengths, so the rules live in one place.

use lanlink_proto::chat::{ChatMessage, Join, Leave, PrivateMessage, RosterRequest, SetNick};
use lanlink_proto::Message;

use crate::error::ServiceError;

pub use super::format::format_event;

/// What the terminal client prints for `/help`.
pub const HELP: &str = "\
Type text to say it in the current room. Commands:
  /me TEXT               act in the current room (* ada waves)
  /msg NICK TEXT         send TEXT to NICK only
  /nick NAME             change your nickname
  /join ROOM [PASSWORD]  join a room, or switch to one you are in
  /leave [ROOM]          leave ROOM (default: the current room)
  /who [ROOM]            list who is in ROOM (default: the current room)
  /quit [REASON]         disconnect
  /help                  show this text
  //TEXT                 say /TEXT (a line starting with a slash)";

const USAGE_ME: &str = "/me TEXT";
const USAGE_MSG: &str = "/msg NICK TEXT";
const USAGE_NICK: &str = "/nick NAME";
const USAGE_JOIN: &str = "/join ROOM [PASSWORD]";
const USAGE_LEAVE: &str = "/leave [ROOM]";
const USAGE_WHO: &str = "/who [ROOM]";

/// What a typed line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send this request to the server. After a [`Message::Join`] the client
    /// makes the joined room its current one.
    Send(Message),
    /// Say goodbye to the server and close the connection.
    Quit {
        /// Shown to the others when they see us leave, if given.
        reason: Option<String>,
    },
    /// Print [`HELP`].
    Help,
    /// The line was blank: nothing to do.
    Empty,
}

/// Why a typed line is not a valid command: [`ServiceError::UnknownCommand`],
/// [`ServiceError::MissingArgument`] or [`ServiceError::ExtraArgument`].
pub type CommandError = ServiceError;

/// Parses one typed line (a trailing newline is ignored). Plain text, and
/// `/me`, go to `current_room`, as do `/leave` and `/who` without a room.
/// Command words ignore ASCII case (`/JOIN` is `/join`).
pub fn parse_line(line: &str, current_room: &str) -> Result<Command, CommandError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(Command::Empty);
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Ok(say(current_room, line, false));
    };
    if rest.starts_with('/') {
        return Ok(say(current_room, rest, false));
    }
    let (word, args) = split_word(rest);
    let command = match word.to_ascii_lowercase().as_str() {
        "me" => {
            let text = args.trim_end();
            if text.is_empty() {
                return Err(missing("me", "TEXT", USAGE_ME));
            }
            say(current_room, text, true)
        }
        "msg" => {
            let (to, text) = split_word(args);
            if to.is_empty() {
                return Err(missing("msg", "NICK", USAGE_MSG));
            }
            let text = text.trim_end();
            if text.is_empty() {
                return Err(missing("msg", "TEXT", USAGE_MSG));
            }
            send(PrivateMessage {
                to: to.into(),
                from: String::new(),
                text: text.into(),
                action: false,
                timestamp_ms: 0,
            })
        }
        "nick" => {
            let name = at_most_one(args, "nick", USAGE_NICK)?
                .ok_or_else(|| missing("nick", "NAME", USAGE_NICK))?;
            send(SetNick { name: name.into() })
        }
        "join" => {
            let (room, rest) = split_word(args);
            if room.is_empty() {
                return Err(missing("join", "ROOM", USAGE_JOIN));
            }
            let password = at_most_one(rest, "join", USAGE_JOIN)?;
            send(Join {
                room: room.into(),
                password: password.map(Into::into),
            })
        }
        "leave" => {
            let room = at_most_one(args, "leave", USAGE_LEAVE)?.unwrap_or(current_room);
            send(Leave { room: room.into() })
        }
        "who" => {
            let room = at_most_one(args, "who", USAGE_WHO)?.unwrap_or(current_room);
            send(RosterRequest { room: room.into() })
        }
        "quit" => {
            let reason = args.trim();
            Command::Quit {
                reason: (!reason.is_empty()).then(|| reason.into()),
            }
        }
        "help" => Command::Help,
        _ => {
            return Err(ServiceError::UnknownCommand {
                command: word.into(),
            })
        }
    };
    Ok(command)
}

fn say(room: &str, text: &str, action: bool) -> Command {
    send(ChatMessage {
        room: room.into(),
        from: String::new(),
        text: text.into(),
        action,
        timestamp_ms: 0,
    })
}

fn send(message: impl Into<Message>) -> Command {
    Command::Send(message.into())
}

/// The first whitespace-separated word of `s`, and the rest with its leading
/// whitespace removed.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// An optional single word; anything after it is an error.
fn at_most_one<'a>(
    args: &'a str,
    command: &'static str,
    usage: &'static str,
) -> Result<Option<&'a str>, CommandError> {
    let (word, extra) = split_word(args);
    let extra = extra.trim_end();
    if !extra.is_empty() {
        return Err(ServiceError::ExtraArgument {
            command,
            extra: extra.into(),
            usage,
        });
    }
    Ok((!word.is_empty()).then_some(word))
}

fn missing(command: &'static str, argument: &'static str, usage: &'static str) -> CommandError {
    ServiceError::MissingArgument {
        command,
        argument,
        usage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(line: &str) -> Message {
        match parse_line(line, "lobby") {
            Ok(Command::Send(m)) => m,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    fn chat(room: &str, text: &str, action: bool) -> Message {
        Message::ChatMessage(ChatMessage {
            room: room.into(),
            from: String::new(),
            text: text.into(),
            action,
            timestamp_ms: 0,
        })
    }

    #[test]
    fn plain_text_goes_to_the_current_room() {
        assert_eq!(sent("hello there"), chat("lobby", "hello there", false));
        assert_eq!(sent("  indented\r\n"), chat("lobby", "  indented", false));
        assert_eq!(
            parse_line("hi", "ops").ok(),
            Some(Command::Send(chat("ops", "hi", false)))
        );
    }

    #[test]
    fn double_slash_sends_a_literal_slash() {
        assert_eq!(sent("//shrug"), chat("lobby", "/shrug", false));
        assert_eq!(sent("//"), chat("lobby", "/", false));
    }

    #[test]
    fn blank_lines_are_empty() {
        for line in ["", "\n", "   ", " \t\r\n"] {
            assert_eq!(
                parse_line(line, "lobby").ok(),
                Some(Command::Empty),
                "{line:?}"
            );
        }
    }

    #[test]
    fn every_command_parses() {
        assert_eq!(sent("/me waves"), chat("lobby", "waves", true));
        assert_eq!(
            sent("/msg bob psst, over here "),
            Message::PrivateMessage(PrivateMessage {
                to: "bob".into(),
                from: String::new(),
                text: "psst, over here".into(),
                action: false,
                timestamp_ms: 0,
            })
        );
        assert_eq!(
            sent("/nick ada2"),
            SetNick {
                name: "ada2".into()
            }
            .into()
        );
        assert_eq!(
            sent("/join ops"),
            Join {
                room: "ops".into(),
                password: None
            }
            .into()
        );
        assert_eq!(
            sent("/join ops s3cret"),
            Join {
                room: "ops".into(),
                password: Some("s3cret".into())
            }
            .into()
        );
        assert_eq!(
            sent("/leave"),
            Leave {
                room: "lobby".into()
            }
            .into()
        );
        assert_eq!(sent("/leave ops"), Leave { room: "ops".into() }.into());
        assert_eq!(
            sent("/who"),
            RosterRequest {
                room: "lobby".into()
            }
            .into()
        );
        assert_eq!(
            sent("/who ops"),
            RosterRequest { room: "ops".into() }.into()
        );
        assert_eq!(
            parse_line("/quit", "lobby").ok(),
            Some(Command::Quit { reason: None })
        );
        assert_eq!(
            parse_line("/quit gone fishing", "lobby").ok(),
            Some(Command::Quit {
                reason: Some("gone fishing".into())
            })
        );
        assert_eq!(parse_line("/help", "lobby").ok(), Some(Command::Help));
        assert_eq!(
            sent("/JOIN Ops"),
            Join {
                room: "Ops".into(),
                password: None
            }
            .into()
        );
    }

    #[test]
    fn unknown_commands_are_named() {
        let e = parse_line("/dance now", "lobby").unwrap_err();
        assert!(
            matches!(&e, ServiceError::UnknownCommand { command } if command == "dance"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "unknown command /dance (type /help for the list)"
        );
        assert!(matches!(
            parse_line("/", "lobby"),
            Err(ServiceError::UnknownCommand { command }) if command.is_empty()
        ));
    }

    #[test]
    fn missing_and_extra_arguments_show_usage() {
        let cases = [
            ("/me", "me", "TEXT"),
            ("/me   ", "me", "TEXT"),
            ("/msg", "msg", "NICK"),
            ("/msg bob", "msg", "TEXT"),
            ("/nick", "nick", "NAME"),
            ("/join", "join", "ROOM"),
        ];
        for (line, command, argument) in cases {
            match parse_line(line, "lobby") {
                Err(ServiceError::MissingArgument {
                    command: c,
                    argument: a,
                    ..
                }) => assert_eq!((c, a), (command, argument), "{line}"),
                other => panic!("{line:?} gave {other:?}"),
            }
        }
        let e = parse_line("/nick two words", "lobby").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"unexpected "words" after /nick: usage /nick NAME"#
        );
        for line in ["/join a b c", "/leave a b", "/who a b"] {
            assert!(
                matches!(
                    parse_line(line, "lobby"),
                    Err(ServiceError::ExtraArgument { .. })
                ),
                "{line}"
            );
        }
        let e = parse_line("/msg bob", "lobby").unwrap_err();
        assert_eq!(e.to_string(), "/msg needs TEXT: usage /msg NICK TEXT");
    }

    #[test]
    fn help_lists_every_command() {
        for c in [
            "/me", "/msg", "/nick", "/join", "/leave", "/who", "/quit", "/help", "//",
        ] {
            assert!(HELP.contains(c), "{c}");
        }
    }
}
