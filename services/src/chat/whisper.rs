//! Private messages between users on different servers (scale-out): a
//! `/msg` whose target is not a local user leaves as a [`RemoteWhisper`]
//! (collected once [`ChatService::relay_room_events`] is on), and a
//! private message from another server is delivered here by
//! [`ChatService::deliver_remote_whisper`].
//!
//! The target is `name@server`, or a bare name that exactly one other
//! server's presence lists (in a room without a password); a bare name
//! listed by several is refused as ambiguous rather than guessed. A local
//! user always wins: `/msg bob` is the local bob if there is one.

use lanlink_proto::chat::PrivateMessage;
use lanlink_transport::ConnId;

use super::names::{check_nickname, fold};
use super::service::ChatService;
use super::{Now, Outgoing};
use crate::error::ServiceError;

/// The most private messages to other servers kept for the caller at
/// once; beyond that the sender is told to wait.
pub const MAX_PENDING_WHISPERS: usize = 1024;

/// A private message for a user on another server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteWhisper {
    /// The local sender's connection, to tell it if the message is refused.
    pub sender: ConnId,
    /// The target's server id.
    pub server: String,
    /// The message, stamped here: `to` is the target's bare name on its
    /// server, `from` the sender's local nickname.
    pub message: PrivateMessage,
}

impl ChatService {
    /// Sets this server's id among those sharing rooms: `/msg name@<id>`
    /// is then the local `name`, not a message to another server.
    pub fn set_server_id(&mut self, id: &str) {
        self.server_id = Some(id.to_owned());
    }

    /// `name` if `to` is `name@<this server's id>`.
    pub(super) fn local_alias<'a>(&self, to: &'a str) -> Option<&'a str> {
        let (user, server) = to.rsplit_once('@')?;
        (Some(server) == self.server_id.as_deref()).then_some(user)
    }

    /// The private messages for other servers since the last call, in
    /// order.
    pub fn take_remote_whispers(&mut self) -> Vec<RemoteWhisper> {
        std::mem::take(&mut self.whispers)
    }

    /// Sends `m` (already admitted and stamped `from`) to a user on
    /// another server, or refuses it as it would a local unknown user.
    pub(super) fn whisper_remote(
        &mut self,
        conn: ConnId,
        from: String,
        m: PrivateMessage,
        now: &Now,
    ) -> Result<(), ServiceError> {
        if self.relay.is_none() {
            return Err(ServiceError::NoSuchUser { name: m.to });
        }
        let (server, to) = self.route(&m.to)?;
        if self.whispers.len() >= MAX_PENDING_WHISPERS {
            return Err(ServiceError::Busy {
                reason: "too many private messages to other servers",
            });
        }
        self.whispers.push(RemoteWhisper {
            sender: conn,
            server,
            message: PrivateMessage {
                to,
                from,
                text: m.text,
                action: m.action,
                timestamp_ms: now.unix_ms,
            },
        });
        Ok(())
    }

    /// `(server, bare name)` of a remote target.
    fn route(&self, to: &str) -> Result<(String, String), ServiceError> {
        let max = self.config.max_name_len;
        if let Some((user, server)) = to.rsplit_once('@') {
            if check_nickname(user, max).is_ok() && check_nickname(server, max).is_ok() {
                return Ok((server.to_owned(), user.to_owned()));
            }
        }
        let key = fold(to);
        let mut found: Vec<(&str, &str)> = self
            .remote
            .named(&key)
            .filter_map(|shown| {
                let (user, server) = shown.rsplit_once('@')?;
                Some((server, user))
            })
            .collect();
        found.sort_unstable();
        found.dedup_by(|a, b| a.0 == b.0);
        match found.as_slice() {
            [] => Err(ServiceError::NoSuchUser { name: to.into() }),
            [(server, user)] => Ok(((*server).to_owned(), (*user).to_owned())),
            many => Err(ServiceError::AmbiguousUser {
                name: to.into(),
                servers: many.iter().map(|(s, _)| *s).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// Delivers a private message from a user on another server to the
    /// local user `m.to`. `m.from` is the sender as shown here
    /// (`user@server`, checked as [`check_remote_name`](Self::check_remote_name)),
    /// the text is held to the local length limit; an unknown target is
    /// [`ServiceError::NoSuchUser`]. The caller rate-limits the origin
    /// server.
    pub fn deliver_remote_whisper(
        &mut self,
        m: PrivateMessage,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), ServiceError> {
        self.check_remote_name(&m.from)?;
        let max = self.config.max_message_len;
        if m.text.len() > max {
            return Err(ServiceError::MessageTooLong {
                len: m.text.len(),
                max,
            });
        }
        let target = self.conn_of(&m.to);
        let Some((target, to)) = target.and_then(|t| Some((t, self.name_of(t)?.to_owned()))) else {
            return Err(ServiceError::NoSuchUser { name: m.to });
        };
        out.push(Outgoing::control(target, PrivateMessage { to, ..m }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Instant;

    use lanlink_proto::Message;

    use super::*;
    use crate::chat::ChatConfig;

    fn now() -> Now {
        Now {
            instant: Instant::now(),
            unix_ms: 1_700_000_000_000,
        }
    }

    fn pm(to: &str, text: &str) -> Message {
        PrivateMessage {
            to: to.into(),
            from: String::new(),
            text: text.into(),
            action: false,
            timestamp_ms: 0,
        }
        .into()
    }

    fn error_of(out: &[Outgoing]) -> Option<String> {
        match &out.last()?.frame.message {
            Message::Error(e) => Some(e.message.clone()),
            _ => None,
        }
    }

    #[test]
    fn whispers_route_by_server_or_by_an_unambiguous_name() {
        let mut chat = ChatService::new(ChatConfig::default());
        let (ada, bob) = (ConnId(1), ConnId(2));
        let mut out = Vec::new();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        chat.connect(ada, ip, "ada", &now(), &mut out).unwrap();
        chat.connect(bob, ip, "bob", &now(), &mut out).unwrap();
        // Without scale-out an unknown name is just unknown.
        out.clear();
        chat.handle(ada, pm("cy@b", "hi"), &now(), &mut out);
        assert!(error_of(&out).is_some_and(|e| e.contains("no user")));
        chat.relay_room_events();
        chat.set_server_id("a");
        chat.set_remote_members("b", vec![("lobby".into(), vec!["cy".into(), "dee".into()])]);
        chat.set_remote_members("c", vec![("lobby".into(), vec!["dee".into()])]);
        out.clear();
        // A local user wins (also as name@<this server>); then
        // name@server; then a name one server has.
        chat.handle(ada, pm("BOB", "local"), &now(), &mut out);
        chat.handle(ada, pm("bob@a", "local too"), &now(), &mut out);
        chat.handle(ada, pm("cy@b", "one"), &now(), &mut out);
        chat.handle(ada, pm("cy", "two"), &now(), &mut out);
        chat.handle(ada, pm("zed@c", "three"), &now(), &mut out);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out.iter().all(|o| o.to == bob));
        let sent = chat.take_remote_whispers();
        let got: Vec<(&str, &str, &str, &str)> = sent
            .iter()
            .map(|w| {
                let m = &w.message;
                (
                    w.server.as_str(),
                    m.to.as_str(),
                    m.from.as_str(),
                    m.text.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("b", "cy", "ada", "one"),
                ("b", "cy", "ada", "two"),
                ("c", "zed", "ada", "three")
            ]
        );
        assert!(sent
            .iter()
            .all(|w| w.sender == ada && w.message.timestamp_ms > 0));
        // Two servers have a dee: refused, not guessed; nobody has a zed.
        chat.handle(ada, pm("dee", "?"), &now(), &mut out);
        assert!(error_of(&out).is_some_and(|e| e.contains("several servers (b, c)")));
        chat.handle(ada, pm("zed", "?"), &now(), &mut out);
        assert!(error_of(&out).is_some_and(|e| e.contains("no user")));
        assert!(chat.take_remote_whispers().is_empty());

        // Inbound: to a local user, from a checked remote name.
        let from_b = |from: &str, to: &str, text: &str| PrivateMessage {
            to: to.into(),
            from: from.into(),
            text: text.into(),
            action: false,
            timestamp_ms: 9,
        };
        out.clear();
        chat.deliver_remote_whisper(from_b("cy@b", "ADA", "hello"), &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to, ada);
        let Message::PrivateMessage(m) = &out[0].frame.message else {
            panic!()
        };
        assert_eq!((m.to.as_str(), m.from.as_str()), ("ada", "cy@b"));
        for bad in [
            from_b("cy@b", "nobody", "x"),
            from_b("cy", "ada", "x"),
            from_b("c\u{1b}[2Jy@b", "ada", "x"),
            from_b("cy@b", "ada", &"x".repeat(100_000)),
        ] {
            assert!(chat.deliver_remote_whisper(bad, &mut out).is_err());
        }
        assert_eq!(out.len(), 1);
    }
}
