//! Private messages between servers: a NATS request to the target's
//! server on `lanlink.server.<its id>.pm.<sender's id>`, answered with
//! one word to the sender's inbox (`_INBOX_<sender's id>.…`).
//!
//! The request is a JSON object `{"server", "from", "to", "text",
//! "action", "ts"}` (`from` the sender's bare name on `server`, `to` the
//! target's bare name on the receiver), at most [`MAX_WHISPER_BYTES`]. The
//! answer is `{"answer": "delivered" | "unknown" | "busy" | "refused"}`;
//! the sender's server maps it to its own words for its user (never
//! showing the other server's text). No answer within [`WHISPER_WAIT`]
//! (NATS down, the server gone) tells the sender the user cannot be
//! reached; nobody subscribed (no such server) tells it the user is
//! unknown. A private message is never stored or retried: the sender
//! knows at once that it did not arrive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crossbeam_channel::Sender;
use lanlink_proto::chat::PrivateMessage;
use lanlink_services::chat::RemoteWhisper;
use serde_json::{json, Value};

use super::{valid_server_id, NatsEvent};

/// The subject prefix of requests to one server:
/// `lanlink.server.<server id>.pm.<sender's id>`.
pub const SERVER_SUBJECTS: &str = "lanlink.server";

/// The largest private-message request or answer taken from NATS.
pub const MAX_WHISPER_BYTES: usize = 16 * 1024;

/// How long a sender's server waits for the answer.
pub const WHISPER_WAIT: Duration = Duration::from_secs(3);

/// Private messages waiting for their answer at once; beyond that a new
/// one is refused at once as busy.
pub const MAX_WHISPERS_IN_FLIGHT: usize = 256;

/// Of [`MAX_WHISPERS_IN_FLIGHT`], those that may wait for one server: a
/// server that never answers (gone without leaving presence, or hostile)
/// holds each message sent to it for [`WHISPER_WAIT`], and would
/// otherwise hold every place, so that messages to the servers that do
/// answer were refused as busy.
pub const MAX_WHISPERS_IN_FLIGHT_PER_SERVER: usize = MAX_WHISPERS_IN_FLIGHT / 4;

/// The places of private messages waiting for an answer, in all and per
/// server they went to.
#[derive(Debug, Default)]
pub(super) struct WhisperSlots {
    /// Places taken, per server (no entry: none).
    taken: Mutex<HashMap<String, usize>>,
}

/// One place of [`WhisperSlots`], given back when dropped.
pub(super) struct WhisperSlot {
    slots: Arc<WhisperSlots>,
    server: String,
}

impl WhisperSlots {
    /// A place for a message to `server`, if one is free in all and for
    /// that server.
    pub(super) fn take(self: &Arc<Self>, server: &str) -> Option<WhisperSlot> {
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        let in_all: usize = taken.values().sum();
        let for_server = taken.get(server).copied().unwrap_or(0);
        if in_all >= MAX_WHISPERS_IN_FLIGHT || for_server >= MAX_WHISPERS_IN_FLIGHT_PER_SERVER {
            return None;
        }
        *taken.entry(server.to_owned()).or_default() += 1;
        Some(WhisperSlot {
            slots: self.clone(),
            server: server.to_owned(),
        })
    }
}

impl Drop for WhisperSlot {
    fn drop(&mut self) {
        let mut taken = self
            .slots
            .taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = taken.get_mut(&self.server) {
            *n -= 1;
            if *n == 0 {
                taken.remove(&self.server);
            }
        }
    }
}

/// The longest reply subject answered (NATS inboxes are about 50 bytes).
const MAX_REPLY_SUBJECT: usize = 256;

/// What became of a private message sent to another server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhisperAnswer {
    /// Handed to the target user.
    Delivered,
    /// That server has no user of this name, or there is no such server.
    Unknown,
    /// That server (or this one) has too many to handle now.
    Busy,
    /// That server refused it (a bad name, too long).
    Refused,
    /// No answer in time: NATS or that server is unreachable.
    Unreachable,
}

impl WhisperAnswer {
    fn word(self) -> &'static str {
        match self {
            WhisperAnswer::Delivered => "delivered",
            WhisperAnswer::Unknown => "unknown",
            WhisperAnswer::Busy => "busy",
            WhisperAnswer::Refused => "refused",
            WhisperAnswer::Unreachable => "unreachable",
        }
    }

    /// The answer in a reply body; anything unexpected is a refusal.
    fn from_body(body: &[u8]) -> WhisperAnswer {
        if body.len() > MAX_WHISPER_BYTES {
            return WhisperAnswer::Refused;
        }
        let answer = serde_json::from_slice::<Value>(body).ok();
        match answer.as_ref().and_then(|v| v.get("answer")?.as_str()) {
            Some("delivered") => WhisperAnswer::Delivered,
            Some("unknown") => WhisperAnswer::Unknown,
            Some("busy") => WhisperAnswer::Busy,
            _ => WhisperAnswer::Refused,
        }
    }

    /// The reply body.
    pub(super) fn body(self) -> Vec<u8> {
        json!({ "answer": self.word() }).to_string().into_bytes()
    }
}

/// The subject of private messages from `from` to `server`.
pub(super) fn subject_of(server: &str, from: &str) -> String {
    format!("{SERVER_SUBJECTS}.{server}.pm.{from}")
}

/// The subjects `server` takes private messages on (from any server).
pub(super) fn subjects_of(server: &str) -> String {
    format!("{SERVER_SUBJECTS}.{server}.pm.*")
}

/// A request body from this server.
fn encode(own: &str, m: &PrivateMessage) -> Vec<u8> {
    json!({"server": own, "from": m.from, "to": m.to, "text": m.text,
           "action": m.action, "ts": m.timestamp_ms})
    .to_string()
    .into_bytes()
}

/// A request from another server as the hub is told it (`from` as
/// `user@server`), or `None` if it is oversized, malformed, not on its
/// sender's subject, has no usable reply subject or claims this server as
/// its origin.
pub(super) fn decode(
    own: &str,
    subject: &str,
    payload: &[u8],
    reply: Option<&str>,
) -> Option<NatsEvent> {
    if payload.len() > MAX_WHISPER_BYTES {
        return None;
    }
    let body: Value = serde_json::from_slice(payload).ok()?;
    let text = |key: &str| body.get(key)?.as_str().map(str::to_owned);
    let server = text("server")?;
    if !valid_server_id(&server) || server == own || subject != subject_of(own, &server) {
        return None;
    }
    // Answers go to the sender's own inbox only, never to a subject the
    // sender names (a presence key, another server's subjects or inbox).
    let inbox = format!("{}.", super::inbox_prefix(&server));
    let reply = reply.filter(|r| {
        r.starts_with(&inbox)
            && r.len() <= MAX_REPLY_SUBJECT
            && r.bytes().all(|b| b.is_ascii_graphic())
    })?;
    let message = PrivateMessage {
        from: format!("{}@{server}", text("from")?),
        to: text("to")?,
        text: text("text")?,
        action: body.get("action")?.as_bool()?,
        timestamp_ms: body.get("ts")?.as_u64()?,
    };
    Some(NatsEvent::Whisper {
        server,
        message,
        reply: reply.to_owned(),
    })
}

/// Sends `w` as a request in a task of its own (the NATS thread's loop
/// does not wait for the answer) and tells the hub what became of it.
pub(super) fn send(
    client: &async_nats::Client,
    own: &str,
    w: RemoteWhisper,
    id: u64,
    slots: &Arc<WhisperSlots>,
    events: &Sender<NatsEvent>,
) {
    let (sender, to) = (w.sender, format!("{}@{}", w.message.to, w.server));
    let told = move |answer| NatsEvent::WhisperAnswer {
        sender,
        id,
        to: to.clone(),
        answer,
    };
    if !valid_server_id(&w.server) {
        let _ = events.try_send(told(WhisperAnswer::Unknown));
        return;
    }
    let Some(permit) = slots.take(&w.server) else {
        let _ = events.try_send(told(WhisperAnswer::Busy));
        return;
    };
    let (client, events) = (client.clone(), events.clone());
    let subject = subject_of(&w.server, own);
    let payload = encode(own, &w.message);
    tokio::spawn(async move {
        let asked = tokio::time::timeout(WHISPER_WAIT, client.request(subject, payload.into()));
        let answer = match asked.await {
            Ok(Ok(reply)) => WhisperAnswer::from_body(&reply.payload),
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                WhisperAnswer::Unknown
            }
            Ok(Err(_)) | Err(_) => WhisperAnswer::Unreachable,
        };
        drop(permit);
        if events.try_send(told(answer)).is_err() {
            tracing::warn!("nats: the hub is behind, a private message's answer was dropped");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One server that does not answer holds a quarter of the places at
    /// most: messages to the others still go.
    #[test]
    fn a_server_that_does_not_answer_holds_a_share_of_the_places() {
        let slots = Arc::new(WhisperSlots::default());
        let held: Vec<_> = (0..MAX_WHISPERS_IN_FLIGHT_PER_SERVER)
            .map(|_| slots.take("slow").expect("a place"))
            .collect();
        assert!(slots.take("slow").is_none());
        let others: Vec<_> = (0..MAX_WHISPERS_IN_FLIGHT - MAX_WHISPERS_IN_FLIGHT_PER_SERVER)
            .map(|i| slots.take(&format!("s{}", i % 8)).expect("a place"))
            .collect();
        // All taken: none for anyone.
        assert!(slots.take("fresh").is_none());
        drop(others);
        assert!(slots.take("fresh").is_some());
        drop(held);
        assert!(slots.taken.lock().unwrap().is_empty());
    }

    #[test]
    fn requests_and_answers_are_checked() {
        let m = PrivateMessage {
            to: "bob".into(),
            from: "ada".into(),
            text: "psst \"x\"".into(),
            action: false,
            timestamp_ms: 3,
        };
        let body = encode("a", &m);
        let Some(NatsEvent::Whisper {
            server,
            message,
            reply,
        }) = decode("b", "lanlink.server.b.pm.a", &body, Some("_INBOX_a.x"))
        else {
            panic!()
        };
        assert_eq!((server.as_str(), reply.as_str()), ("a", "_INBOX_a.x"));
        assert_eq!(
            (message.from.as_str(), message.to.as_str()),
            ("ada@a", "bob")
        );
        assert_eq!(message.text, m.text);
        // No reply subject, a bad one, another server's inbox, the
        // subject of another sender (a server speaking as "a"), our own
        // id, a bad id, garbage.
        let on = "lanlink.server.b.pm.a";
        assert_eq!(decode("b", on, &body, None), None);
        assert_eq!(decode("b", on, &body, Some("a b")), None);
        assert_eq!(decode("b", on, &body, Some("$KV.lanlink_presence.c")), None);
        assert_eq!(decode("b", on, &body, Some("_INBOX_c.x")), None);
        assert_eq!(decode("b", on, &body, Some("_INBOX.x")), None);
        let forged = "lanlink.server.b.pm.m";
        assert_eq!(decode("b", forged, &body, Some("_INBOX_a.x")), None);
        assert_eq!(decode("b", forged, &body, Some("_INBOX_m.x")), None);
        assert_eq!(
            decode("a", "lanlink.server.a.pm.a", &body, Some("_INBOX_a.r")),
            None
        );
        assert_eq!(
            decode(
                "b",
                on,
                br#"{"server":"a.b","from":"x"}"#,
                Some("_INBOX_a.r")
            ),
            None
        );
        assert_eq!(decode("b", on, b"[]", Some("_INBOX_a.r")), None);
        assert_eq!(
            decode(
                "b",
                on,
                &vec![b' '; MAX_WHISPER_BYTES + 1],
                Some("_INBOX_a.r")
            ),
            None
        );
        for answer in [
            WhisperAnswer::Delivered,
            WhisperAnswer::Unknown,
            WhisperAnswer::Busy,
        ] {
            assert_eq!(WhisperAnswer::from_body(&answer.body()), answer);
        }
        assert_eq!(
            WhisperAnswer::from_body(br#"{"answer":"\u001b[2J"}"#),
            WhisperAnswer::Refused
        );
    }
}
