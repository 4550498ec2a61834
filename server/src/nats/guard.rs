//! What keeps one NATS user from speaking through JetStream in another's
//! name.
//!
//! NATS permissions bind what a user publishes on, but JetStream itself
//! publishes inside the account: its API answers go to whatever reply
//! subject the asker names, and a stream can republish what it stores.
//! An answer carrying a stored message (a direct get) on another server's
//! subject would pass every subject check. So what lanlink receives from
//! NATS is dropped when JetStream made it ([`made_by_jetstream`]: such
//! messages carry the `Nats-Stream` header or a status), the streams lanlink
//! uses serve no direct gets, take no rollups or purges, and an existing
//! stream whose settings would allow any of that is refused
//! ([`checked_stream`]).

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::ServerError;

/// Whether JetStream, not a server, published `message`: a direct get's
/// or a republished message's copy (`Nats-Stream` header and friends), or
/// a status (no responders, flow control, idle heartbeat).
///
/// Messages delivered by a consumer lanlink made itself are not passed
/// through this (they carry the subject they were stored under).
pub(super) fn made_by_jetstream(message: &async_nats::Message) -> bool {
    if message.status.is_some() {
        return true;
    }
    message.headers.as_ref().is_some_and(|h| {
        [
            "Nats-Stream",
            "Nats-Subject",
            "Nats-Sequence",
            "Nats-Last-Sequence",
        ]
        .iter()
        .any(|name| h.get(*name).is_some())
    })
}

/// Whether a message on a core subscription came from JetStream: made by
/// it ([`made_by_jetstream`]), or a stored message a consumer delivered
/// to a subject its maker chose (its reply subject is JetStream's
/// acknowledgement subject, `$JS.ACK.…`). Such a delivery keeps the
/// subject the message was stored under, which may be another server's
/// genuine old line: replayed as new (a hostile server's consumer on the
/// history, delivering to a room subject), it would show again to a
/// server that restarted.
pub(super) fn delivered_by_jetstream(message: &async_nats::Message) -> bool {
    made_by_jetstream(message)
        || message
            .reply
            .as_ref()
            .is_some_and(|r| r.starts_with("$JS."))
}

/// The stream `wanted` describes: made if missing, refused if it exists
/// with a setting that would let one user rewrite or wipe others' messages
/// (see [`unsafe_setting`]).
pub(super) async fn checked_stream(
    js: &jetstream::Context,
    wanted: stream::Config,
) -> Result<stream::Stream, Box<dyn std::error::Error + Send + Sync>> {
    let name = wanted.name.clone();
    let found = js.get_or_create_stream(wanted.clone()).await?;
    match unsafe_setting(&found.cached_info().config, &wanted) {
        None => Ok(found),
        Some(setting) => Err(Box::new(ServerError::UnsafeStream {
            stream: name,
            setting,
        })),
    }
}

/// The first setting of `found` that lets one NATS user forge, wipe or
/// block what others store, compared with lanlink's `wanted`; `None`:
/// safe. Replicas may differ, and limits may be larger (servers with
/// other flags made it), never smaller: a stream made first by a hostile
/// server with room for one message, or keeping them for three seconds,
/// would wipe or refuse everyone's.
pub(super) fn unsafe_setting(
    found: &stream::Config,
    wanted: &stream::Config,
) -> Option<&'static str> {
    // A limit (0 or less, or a zero age: none) keeping less than wanted.
    let keeps_less = |found: i64, wanted: i64| found > 0 && (wanted <= 0 || found < wanted);
    let shorter = |found: Duration, wanted: Duration| {
        !found.is_zero() && (wanted.is_zero() || found < wanted)
    };
    if found.subjects != wanted.subjects {
        Some("other subjects")
    } else if found.republish.is_some() {
        Some("republish")
    } else if found.mirror.is_some() || found.sources.as_ref().is_some_and(|s| !s.is_empty()) {
        Some("a mirror or sources")
    } else if found.allow_direct || found.mirror_direct {
        Some("direct gets allowed")
    } else if found.allow_rollup {
        Some("rollups allowed")
    } else if !found.deny_purge {
        Some("purges allowed")
    } else if !found.deny_delete {
        Some("deletes allowed")
    } else if found.sealed {
        Some("sealed")
    } else if found.no_ack {
        Some("no acknowledgements")
    } else if found.retention != wanted.retention {
        Some("another retention")
    } else if found.discard != wanted.discard || found.discard_new_per_subject {
        Some("another discard policy")
    } else if found.storage != wanted.storage {
        Some("another storage")
    } else if found.max_consumers > 0 {
        Some("a consumer limit")
    } else if found.max_message_size != wanted.max_message_size {
        Some("another largest message")
    } else if keeps_less(found.max_messages, wanted.max_messages)
        || keeps_less(
            found.max_messages_per_subject,
            wanted.max_messages_per_subject,
        )
        || keeps_less(found.max_bytes, wanted.max_bytes)
    {
        Some("fewer messages or bytes kept")
    } else if shorter(found.max_age, wanted.max_age) {
        Some("messages kept for less time")
    } else if found.duplicate_window < wanted.duplicate_window {
        Some("a shorter duplicate window")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lanlinks() -> stream::Config {
        stream::Config {
            name: "S".into(),
            subjects: vec!["lanlink.room.*.said.*".into()],
            max_message_size: 1000,
            max_messages_per_subject: 50,
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(3600),
            duplicate_window: Duration::from_secs(120),
            deny_delete: true,
            deny_purge: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_stream_that_lets_a_user_forge_or_wipe_is_refused() {
        let wanted = lanlinks();
        assert_eq!(unsafe_setting(&wanted, &wanted), None);
        let larger_limits = stream::Config {
            max_age: Duration::from_secs(7200),
            max_messages_per_subject: 500,
            max_bytes: -1,
            num_replicas: 3,
            duplicate_window: Duration::from_secs(600),
            ..lanlinks()
        };
        assert_eq!(
            unsafe_setting(&larger_limits, &wanted),
            None,
            "larger limits, replicas"
        );
        type Change = fn(&mut stream::Config);
        let cases: [(&str, Change); 17] = [
            ("other subjects", |c| c.subjects.push(">".into())),
            ("republish", |c| {
                c.republish = Some(stream::Republish {
                    source: ">".into(),
                    destination: "lanlink.room.x.said.a".into(),
                    headers_only: false,
                });
            }),
            ("direct gets allowed", |c| c.allow_direct = true),
            ("rollups allowed", |c| c.allow_rollup = true),
            ("purges allowed", |c| c.deny_purge = false),
            ("deletes allowed", |c| c.deny_delete = false),
            ("another largest message", |c| c.max_message_size = -1),
            ("another largest message", |c| c.max_message_size = 16),
            ("sealed", |c| c.sealed = true),
            ("no acknowledgements", |c| c.no_ack = true),
            ("another retention", |c| {
                c.retention = stream::RetentionPolicy::WorkQueue;
            }),
            ("another discard policy", |c| {
                c.discard = stream::DiscardPolicy::New
            }),
            ("a consumer limit", |c| c.max_consumers = 1),
            ("fewer messages or bytes kept", |c| c.max_messages = 1),
            ("fewer messages or bytes kept", |c| {
                c.max_messages_per_subject = 1
            }),
            ("messages kept for less time", |c| {
                c.max_age = Duration::from_secs(3)
            }),
            ("a shorter duplicate window", |c| {
                c.duplicate_window = Duration::ZERO
            }),
        ];
        for (said, change) in cases {
            let mut found = lanlinks();
            change(&mut found);
            assert_eq!(unsafe_setting(&found, &wanted), Some(said));
        }
    }

    #[test]
    fn what_jetstream_publishes_is_told_from_what_servers_do() {
        let message = |headers: &[(&str, &str)], status| async_nats::Message {
            subject: "lanlink.room.6c6f626279.said.a".into(),
            reply: None,
            payload: "{}".into(),
            headers: (!headers.is_empty()).then(|| {
                let mut map = async_nats::HeaderMap::new();
                for (k, v) in headers {
                    map.insert(*k, *v);
                }
                map
            }),
            status,
            description: None,
            length: 2,
        };
        assert!(!made_by_jetstream(&message(&[], None)));
        let mut replayed = message(&[], None);
        assert!(!delivered_by_jetstream(&replayed));
        replayed.reply = Some("$JS.ACK.LANLINK_HISTORY.x.1.7.7.1796578567977292681.0".into());
        assert!(delivered_by_jetstream(&replayed), "a consumer's delivery");
        assert!(
            !made_by_jetstream(&replayed),
            "what the history follower gets"
        );
        replayed.reply = Some("_INBOX_a.x".into());
        assert!(
            !delivered_by_jetstream(&replayed),
            "a request's reply subject"
        );
        assert!(!made_by_jetstream(&message(
            &[("Nats-Msg-Id", "a-1-x")],
            None
        )));
        // A direct get's answer on the subject its asker named.
        assert!(made_by_jetstream(&message(
            &[
                ("Nats-Stream", "KV_lanlink_presence"),
                ("Nats-Subject", "$KV.lanlink_presence.m"),
                ("Nats-Sequence", "2"),
            ],
            None
        )));
        assert!(made_by_jetstream(&message(&[("Nats-Sequence", "2")], None)));
        assert!(made_by_jetstream(&message(
            &[],
            Some(async_nats::StatusCode::NO_RESPONDERS)
        )));
    }
}
