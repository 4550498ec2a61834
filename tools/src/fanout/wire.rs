//! The two protocols the fan-out load speaks, as byte-in, event-out codecs
//! with no sockets: plain lanlink (through `lanlink-proto`) and IRC (the
//! handful of lines a client needs).
//!
//! Both are driven the same way: [`Codec::hello`] gives the bytes that open
//! a session, [`Codec::feed`] takes what the server sent and reports what it
//! means (welcomed, in the room, a chat line's text; a refusal is an error), writing
//! any reply the protocol owes (pong) to `out`, and [`Codec::say`] appends
//! one chat line to the room.

use bytes::BytesMut;
use lanlink_proto::{chat, control, Capabilities, Frame, FrameDecoder, Message};

/// Which protocol the clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Proto {
    /// lanlink without TLS (a server run with `--plain`).
    Lanlink,
    /// IRC (RFC 1459 client lines), e.g. to InspIRCd.
    Irc,
}

/// The IRC channel every client joins.
const IRC_CHANNEL: &str = "#bench";
/// The longest IRC line kept while waiting for its end (RFC 1459 says 512
/// bytes; servers with tags send more).
const IRC_MAX_LINE: usize = 16 * 1024;

/// What a chunk of server bytes meant.
pub(crate) enum Seen<'a> {
    /// The server accepted the session; the client is now asking to join.
    Welcomed,
    /// The client is in the room.
    Joined,
    /// A chat line said in the room (its text).
    Line(&'a str),
}

/// One connection's protocol state.
pub(crate) enum Codec {
    Lanlink {
        decoder: FrameDecoder,
        /// The room, as the server's first roster named it.
        room: String,
    },
    Irc {
        pending: Vec<u8>,
        joined: bool,
    },
}

impl Codec {
    pub(crate) fn new(proto: Proto) -> Codec {
        match proto {
            Proto::Lanlink => Codec::Lanlink {
                decoder: FrameDecoder::new(),
                room: String::new(),
            },
            Proto::Irc => Codec::Irc {
                pending: Vec::new(),
                joined: false,
            },
        }
    }

    /// The bytes that open the session of client `name`.
    pub(crate) fn hello(&self, name: &str, out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            Codec::Lanlink { .. } => {
                let hello = control::Hello {
                    name: name.to_owned(),
                    token: None,
                    capabilities: Capabilities::CHAT,
                };
                encode(&Frame::control(hello), out)
            }
            Codec::Irc { .. } => {
                out.extend_from_slice(
                    format!("NICK {name}\r\nUSER {name} 0 * :bench\r\n").as_bytes(),
                );
                Ok(())
            }
        }
    }

    /// Appends one chat line with `text` to `out`.
    pub(crate) fn say(&self, text: &str, out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            Codec::Lanlink { room, .. } => {
                let line = chat::ChatMessage {
                    room: room.clone(),
                    from: String::new(),
                    text: text.to_owned(),
                    action: false,
                    timestamp_ms: 0,
                };
                encode(&Frame::control(line), out)
            }
            Codec::Irc { .. } => {
                out.extend_from_slice(b"PRIVMSG ");
                out.extend_from_slice(IRC_CHANNEL.as_bytes());
                out.extend_from_slice(b" :");
                out.extend_from_slice(text.as_bytes());
                out.extend_from_slice(b"\r\n");
                Ok(())
            }
        }
    }

    /// Takes `bytes` from the server; calls `seen` for each thing that
    /// matters, writes owed replies to `out`. Stops at the first fatal.
    pub(crate) fn feed(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        seen: &mut dyn FnMut(Seen<'_>),
    ) -> Result<(), String> {
        match self {
            Codec::Lanlink { decoder, room } => {
                decoder.push(bytes);
                loop {
                    let frame = match decoder.decode() {
                        Ok(Some(f)) => f,
                        Ok(None) => return Ok(()),
                        Err(e) => return Err(format!("malformed frame from the server: {e}")),
                    };
                    match frame.message {
                        Message::Welcome(_) => seen(Seen::Welcomed),
                        Message::Roster(r) if room.is_empty() => {
                            *room = r.room;
                            seen(Seen::Joined);
                        }
                        Message::ChatMessage(m) => seen(Seen::Line(&m.text)),
                        Message::Ping(p) => {
                            encode(&Frame::control(control::Pong { nonce: p.nonce }), out)?;
                        }
                        Message::Refuse(r) => {
                            return Err(format!("refused ({}): {}", r.code.0, r.reason))
                        }
                        Message::Error(e) => {
                            return Err(format!("server error {}: {}", e.code.0, e.message))
                        }
                        Message::Goodbye(g) => return Err(format!("goodbye: {}", g.reason)),
                        _ => {}
                    }
                }
            }
            Codec::Irc { pending, joined } => {
                pending.extend_from_slice(bytes);
                let mut start = 0;
                while let Some(end) = pending
                    .get(start..)
                    .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
                {
                    let raw = pending.get(start..start + end).unwrap_or_default();
                    start += end + 1;
                    let line = std::str::from_utf8(raw)
                        .map_err(|_| "an IRC line that is not UTF-8".to_owned())?
                        .trim_end_matches('\r');
                    irc_line(line, joined, out, seen)?;
                }
                pending.drain(..start);
                if pending.len() > IRC_MAX_LINE {
                    return Err(format!("an IRC line longer than {IRC_MAX_LINE} bytes"));
                }
                Ok(())
            }
        }
    }
}

fn encode(frame: &Frame, out: &mut Vec<u8>) -> Result<(), String> {
    let mut buf = BytesMut::new();
    frame
        .encode(&mut buf)
        .map_err(|e| format!("cannot encode {:?}: {e}", frame.kind()))?;
    out.extend_from_slice(&buf);
    Ok(())
}

/// One IRC line from the server: `[:prefix] COMMAND params… [:trailing]`.
fn irc_line(
    line: &str,
    joined: &mut bool,
    out: &mut Vec<u8>,
    seen: &mut dyn FnMut(Seen<'_>),
) -> Result<(), String> {
    let rest = match line.strip_prefix(':') {
        Some(prefixed) => prefixed.split_once(' ').map_or("", |(_, r)| r),
        None => line,
    };
    let (command, params) = rest.split_once(' ').unwrap_or((rest, ""));
    let trailing = params
        .split_once(" :")
        .map(|(_, t)| t)
        .or_else(|| params.strip_prefix(':'))
        .unwrap_or(params);
    match command {
        "PRIVMSG" => seen(Seen::Line(trailing)),
        "PING" => {
            out.extend_from_slice(b"PONG :");
            out.extend_from_slice(trailing.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        "001" => {
            out.extend_from_slice(format!("JOIN {IRC_CHANNEL}\r\n").as_bytes());
            seen(Seen::Welcomed);
        }
        // End of the channel's names: the join took effect.
        "366" if !*joined => {
            *joined = true;
            seen(Seen::Joined);
        }
        "ERROR" => return Err(format!("ERROR {trailing}")),
        // Nickname in use or erroneous, can't join, not registered…
        "432" | "433" | "436" | "451" | "471" | "473" | "474" | "475" => {
            return Err(format!("{command} {trailing}"))
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(codec: &mut Codec, bytes: &[u8]) -> (Vec<String>, Vec<u8>) {
        let mut out = Vec::new();
        let mut got = Vec::new();
        codec
            .feed(bytes, &mut out, &mut |s| {
                got.push(match s {
                    Seen::Welcomed => "welcomed".to_owned(),
                    Seen::Joined => "joined".to_owned(),
                    Seen::Line(t) => format!("line {t}"),
                })
            })
            .expect("feed");
        (got, out)
    }

    #[test]
    fn irc_session_in_pieces() {
        let mut c = Codec::new(Proto::Irc);
        let mut hello = Vec::new();
        c.hello("b7", &mut hello).expect("hello");
        assert_eq!(hello, b"NICK b7\r\nUSER b7 0 * :bench\r\n");
        let (got, out) = feed_all(
            &mut c,
            b":srv 001 b7 :Welcome\r\n:srv 353 b7 = #bench :b7\r\n:srv 36",
        );
        assert_eq!(got, ["welcomed"]);
        assert_eq!(out, b"JOIN #bench\r\n");
        let (got, out) = feed_all(
            &mut c,
            b"6 b7 #bench :End\r\nPING :srv\r\n:b1!b1@h PRIVMSG #bench :hello there\r\n",
        );
        assert_eq!(got, ["joined", "line hello there"]);
        assert_eq!(out, b"PONG :srv\r\n");
        let mut line = Vec::new();
        c.say("x y", &mut line).expect("say");
        assert_eq!(line, b"PRIVMSG #bench :x y\r\n");
        assert!(c
            .feed(b":srv 433 * b7 :in use\r\n", &mut Vec::new(), &mut |_| {})
            .is_err());
    }

    #[test]
    fn lanlink_session() {
        let mut c = Codec::new(Proto::Lanlink);
        let mut wire = Vec::new();
        let welcome = control::Welcome {
            server_name: "s".into(),
            client_id: 1,
            name: "b1".into(),
            capabilities: Capabilities::CHAT,
            max_payload: 1 << 20,
            motd: String::new(),
        };
        encode(&Frame::control(welcome), &mut wire).expect("encode");
        let roster = chat::Roster {
            room: "lobby".into(),
            members: vec!["b1".into()],
        };
        encode(&Frame::control(roster), &mut wire).expect("encode");
        encode(&Frame::control(control::Ping { nonce: 9 }), &mut wire).expect("encode");
        let (got, out) = feed_all(&mut c, &wire);
        assert_eq!(got, ["welcomed", "joined"]);
        let mut pong = Vec::new();
        encode(&Frame::control(control::Pong { nonce: 9 }), &mut pong).expect("encode");
        assert_eq!(out, pong);
        let mut line = Vec::new();
        c.say("hi", &mut line).expect("say");
        let (got, _) = feed_all(&mut c, &line);
        assert_eq!(got, ["line hi"]);
    }
}
