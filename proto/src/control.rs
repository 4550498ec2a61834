//! Control messages: the handshake, keepalive, errors and goodbye.
//!
//! A connection starts with the client's [`Hello`]; the server answers with
//! [`Welcome`] or [`Refuse`] and nothing else is valid before that. All control
//! messages travel on [`crate::CONTROL_STREAM`].

use crate::wire::{Reader, Writer};
use crate::{Body, ProtoError};

/// Features a peer supports, as a bit set. Unknown bits are carried through
/// unchanged so newer peers can advertise features older ones ignore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(pub u32);

impl Capabilities {
    /// Chat rooms and private messages.
    pub const CHAT: Capabilities = Capabilities(1 << 0);
    /// File listing, download, upload and peer-to-peer send.
    pub const FILE: Capabilities = Capabilities(1 << 1);
    /// Publishing or receiving audio streams.
    pub const AUDIO: Capabilities = Capabilities(1 << 2);
    /// Publishing or receiving video streams.
    pub const VIDEO: Capabilities = Capabilities(1 << 3);
    /// Every service this version defines (chat, files, audio, video).
    pub const ALL: Capabilities = Capabilities(0b1111);
    /// Without `CHAT`: file offers other users address to this
    /// connection's name are delivered here (a `lanlink receive` running
    /// next to the same person's chat). In a `Welcome`: the server does so.
    pub const OFFERS: Capabilities = Capabilities(1 << 4);

    /// True if every bit of `other` is set in `self`.
    pub fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Capabilities {
    type Output = Capabilities;
    fn bitor(self, rhs: Self) -> Self {
        Capabilities(self.0 | rhs.0)
    }
}

/// A numeric reason carried by [`Refuse`], [`Error`] and rejections, so that
/// programs can react without parsing the human-readable text next to it.
/// Any value is valid on the wire; the constants name the ones lanlink uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// Anything not covered below.
    pub const OTHER: ErrorCode = ErrorCode(0);
    /// The peers speak different protocol versions.
    pub const VERSION_MISMATCH: ErrorCode = ErrorCode(1);
    /// The access token is missing or wrong.
    pub const BAD_TOKEN: ErrorCode = ErrorCode(2);
    /// The server has reached its client limit.
    pub const SERVER_FULL: ErrorCode = ErrorCode(3);
    /// The requested nickname is used by someone else.
    pub const NAME_TAKEN: ErrorCode = ErrorCode(4);
    /// The nickname or room name is not acceptable.
    pub const INVALID_NAME: ErrorCode = ErrorCode(5);
    /// The peer sent bytes that do not decode.
    pub const MALFORMED: ErrorCode = ErrorCode(6);
    /// The peer sent a valid message at the wrong time.
    pub const UNEXPECTED: ErrorCode = ErrorCode(7);
    /// The peer is sending faster than allowed.
    pub const RATE_LIMITED: ErrorCode = ErrorCode(8);
    /// A message, file or field is larger than allowed.
    pub const TOO_LARGE: ErrorCode = ErrorCode(9);
    /// The named user, room, file or stream does not exist.
    pub const NOT_FOUND: ErrorCode = ErrorCode(10);
    /// The operation is not allowed for this client.
    pub const FORBIDDEN: ErrorCode = ErrorCode(11);
    /// The peer fell too far behind reading what was sent to it.
    pub const TOO_SLOW: ErrorCode = ErrorCode(12);
    /// The peer did not complete the handshake or stayed silent too long.
    pub const TIMEOUT: ErrorCode = ErrorCode(13);
    /// The server is shutting down.
    pub const SHUTTING_DOWN: ErrorCode = ErrorCode(14);
    /// A received file's content hash does not match the announced one.
    pub const HASH_MISMATCH: ErrorCode = ErrorCode(15);
    /// A target already exists and overwriting was not requested.
    pub const ALREADY_EXISTS: ErrorCode = ErrorCode(16);
    /// The receiving side lacks the disk space or quota.
    pub const NO_SPACE: ErrorCode = ErrorCode(17);
    /// One side speaks TLS and the other plain lanlink.
    pub const TLS_MISMATCH: ErrorCode = ErrorCode(18);
    /// Refused or removed by the server's operator (ban or kick).
    pub const BANNED: ErrorCode = ErrorCode(19);
    /// Too many connection attempts or handshakes from this address.
    pub const TOO_MANY_CONNECTIONS: ErrorCode = ErrorCode(20);
    /// The server is busy now (its buffers or workers for everyone's
    /// transfers are full): the same request a little later may pass.
    pub const BUSY: ErrorCode = ErrorCode(21);
}

/// Client → server, first frame of every connection.
///
/// The protocol version travels in the frame header, so a server that does not
/// speak the client's version can still tell it so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The nickname the client wants.
    pub name: String,
    /// The server's access token, if it requires one.
    pub token: Option<String>,
    /// What the client intends to use.
    pub capabilities: Capabilities,
}

impl Body for Hello {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("name", &self.name)?;
        w.opt_string("token", self.token.as_deref())?;
        w.u32(self.capabilities.0);
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(Hello {
            name: r.string("name")?,
            token: r.opt_string("token")?,
            capabilities: Capabilities(r.u32("capabilities")?),
        })
    }
}

/// Server → client: the handshake succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The server's display name.
    pub server_name: String,
    /// The identifier the server gave this connection.
    pub client_id: u32,
    /// The nickname the client now has.
    pub name: String,
    /// What the server offers.
    pub capabilities: Capabilities,
    /// The largest payload the server accepts from this client.
    pub max_payload: u32,
    /// Message of the day (may be empty).
    pub motd: String,
}

impl Body for Welcome {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("server_name", &self.server_name)?;
        w.u32(self.client_id);
        w.string("name", &self.name)?;
        w.u32(self.capabilities.0);
        w.u32(self.max_payload);
        w.string("motd", &self.motd)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(Welcome {
            server_name: r.string("server_name")?,
            client_id: r.u32("client_id")?,
            name: r.string("name")?,
            capabilities: Capabilities(r.u32("capabilities")?),
            max_payload: r.u32("max_payload")?,
            motd: r.string("motd")?,
        })
    }
}

/// Server → client: the handshake failed; the server closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refuse {
    /// Why, for programs.
    pub code: ErrorCode,
    /// Why, for people.
    pub reason: String,
}

impl Body for Refuse {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.u16(self.code.0);
        w.string("reason", &self.reason)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(Refuse {
            code: ErrorCode(r.u16("code")?),
            reason: r.string("reason")?,
        })
    }
}

/// Either direction: keepalive probe. The receiver answers with a [`Pong`]
/// carrying the same nonce; the sender measures the round trip on its own clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    /// Echoed back in the [`Pong`].
    pub nonce: u64,
}

/// Either direction: answer to a [`Ping`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pong {
    /// The nonce of the [`Ping`] being answered.
    pub nonce: u64,
}

/// Client → server: answer with [`Confirmed`] carrying the same token once
/// everything this connection sent before has been handled. Refusals of
/// those messages come before the answer: a client waits for it to know
/// that a line was delivered, or why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirm {
    /// Echoed back in the [`Confirmed`].
    pub token: u64,
}

/// Server → client: answer to a [`Confirm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmed {
    /// The token of the [`Confirm`] being answered.
    pub token: u64,
}

impl Body for Confirm {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.u64(self.token);
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(Confirm {
            token: r.u64("token")?,
        })
    }
}

impl Body for Confirmed {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.u64(self.token);
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(Confirmed {
            token: r.u64("token")?,
        })
    }
}

impl Body for Ping {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.u64(self.nonce);
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(Ping {
            nonce: r.u64("nonce")?,
        })
    }
}

impl Body for Pong {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.u64(self.nonce);
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(Pong {
            nonce: r.u64("nonce")?,
        })
    }
}

/// Either direction: a request failed or the peer misbehaved.
///
/// On the control stream it concerns the connection; on another stream it
/// concerns that transfer or media stream only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

impl Body for Error {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.u16(self.code.0);
        w.string("message", &self.message)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(Error {
            code: ErrorCode(r.u16("code")?),
            message: r.string("message")?,
        })
    }
}

/// Either direction: the sender is closing the connection on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goodbye {
    /// Why (may be empty).
    pub reason: String,
}

impl Body for Goodbye {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("reason", &self.reason)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(Goodbye {
            reason: r.string("reason")?,
        })
    }
}

/// Client → server: an operator's request, authorised by the server's
/// admin token (sent with every request; there is no admin session).
///
/// `command` is one of `kick` (argument: a nickname), `ban` (a nickname
/// or an IP address: refused from then on, and whoever matches is
/// disconnected), `unban` (the same) and `bans` (no argument: list them).
/// The server answers with [`AdminReply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// The server's admin token.
    pub token: String,
    /// What to do.
    pub command: String,
    /// Whom to do it to (may be empty).
    pub argument: String,
}

impl Body for Admin {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.string("token", &self.token)?;
        w.string("command", &self.command)?;
        w.string("argument", &self.argument)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(Admin {
            token: r.string("token")?,
            command: r.string("command")?,
            argument: r.string("argument")?,
        })
    }
}

/// Server → client: the outcome of an [`Admin`] request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminReply {
    /// Whether the request was carried out.
    pub ok: bool,
    /// What happened, or why not.
    pub text: String,
}

impl Body for AdminReply {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.bool(self.ok);
        w.string("text", &self.text)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ProtoError> {
        Ok(AdminReply {
            ok: r.bool("ok")?,
            text: r.string("text")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::round_trip;

    use super::*;

    #[test]
    fn handshake_round_trips() {
        round_trip(Hello {
            name: "ada".into(),
            token: Some("s3cret".into()),
            capabilities: Capabilities::CHAT | Capabilities::FILE,
        });
        round_trip(Hello {
            name: "ünïcødé".into(),
            token: None,
            capabilities: Capabilities(0xFFFF_FFFF),
        });
        round_trip(Welcome {
            server_name: "lan".into(),
            client_id: 42,
            name: "ada".into(),
            capabilities: Capabilities::ALL,
            max_payload: 1 << 24,
            motd: "hi".into(),
        });
        round_trip(Refuse {
            code: ErrorCode::VERSION_MISMATCH,
            reason: "v2 vs v1".into(),
        });
    }

    #[test]
    fn keepalive_and_errors_round_trip() {
        round_trip(Ping { nonce: u64::MAX });
        round_trip(Pong { nonce: 0 });
        round_trip(Confirm { token: 7 });
        round_trip(Confirmed { token: u64::MAX });
        round_trip(Error {
            code: ErrorCode(999),
            message: String::new(),
        });
        round_trip(Goodbye {
            reason: "bye".into(),
        });
    }
}
