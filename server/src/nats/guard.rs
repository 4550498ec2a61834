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

/// The first setting of `found` that lets one NATS user forge or wipe
/// what others stored, compared with lanlink's `wanted`; `None`: safe.
/// Limits (age, count, bytes, replicas) may differ: servers of different
/// versions or flags made it.
pub(super) fn unsafe_setting(
    found: &stream::Config,
    wanted: &stream::Config,
) -> Option<&'static str> {
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
    } else if found.max_message_size <= 0 || found.max_message_size > wanted.max_message_size {
        Some("a larger largest message")
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
            deny_delete: true,
            deny_purge: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_stream_that_lets_a_user_forge_or_wipe_is_refused() {
        let wanted = lanlinks();
        assert_eq!(unsafe_setting(&wanted, &wanted), None);
        let older_limits = stream::Config {
            max_age: std::time::Duration::from_secs(1),
            num_replicas: 3,
            max_message_size: 10,
            ..lanlinks()
        };
        assert_eq!(
            unsafe_setting(&older_limits, &wanted),
            None,
            "limits may differ"
        );
        type Change = fn(&mut stream::Config);
        let cases: [(&str, Change); 8] = [
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
            ("a larger largest message", |c| c.max_message_size = -1),
            ("sealed", |c| c.sealed = true),
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
