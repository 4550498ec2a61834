//! Reading what a JetStream stream stored, every message as data.
//!
//! The client library's consumers take a delivered message whose header
//! block starts with a status line (`NATS/1.0 404 …`) for a status from
//! the server: they skip it, and an ordered consumer then sees a gap and
//! makes itself again in front of the same message, for ever; a pull
//! `fetch` ends its batch there. Anyone may publish such a header on its
//! own subjects, and JetStream stores it: one such message on a server's
//! own presence key or history subject had every server re-create its
//! consumers thousands of times a second (nats-server grew to 1.45 GB),
//! lose the other servers' presence and stop reading history at it.
//!
//! So lanlink reads streams through a push consumer delivering to a
//! subscription of its own: a stored message is told by its reply
//! subject (`$JS.ACK.…`, carrying its place in the stream), whatever its
//! headers say; heartbeats (no such reply) only say the consumer lives.
//!
//! Nothing is skipped unseen: each delivery carries the consumer's own
//! count of deliveries in its acknowledgement subject. A delivery that is
//! not the next one (a message the client library dropped, its
//! subscription's buffer full) ends the deliveries as a lost consumer
//! does: the reader makes a new one from after the last message it took.
//! (Heartbeats also say what was sent last, but anyone who knew the
//! subscription's subject could have a consumer of its own send such
//! heartbeats there; a delivery names its consumer and cannot be forged
//! that way.)

use std::time::Duration;

use async_nats::jetstream::consumer::{push, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{self, stream};
use futures_util::StreamExt;

/// How often the server says a quiet consumer still lives.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// Nothing, not even a heartbeat, for this long: the consumer is lost
/// (NATS restarted, the consumer was removed).
pub(super) const SILENT: Duration = Duration::from_secs(15);

/// A consumer's deliveries.
pub(super) struct Stored {
    sub: async_nats::Subscriber,
    /// Messages matching it when it was made.
    pub(super) at_start: u64,
    /// The consumer's name: deliveries name it.
    consumer: String,
    /// The consumer's count of the last delivery taken.
    taken: u64,
    /// Whether a missed delivery ends the deliveries (else it is counted
    /// and logged, and reading goes on).
    misses_end: bool,
    /// Deliveries missed and read past.
    missed: u64,
}

/// What arrived on a consumer's subscription.
#[derive(Debug, PartialEq)]
enum Arrival {
    /// A stored message, the consumer's delivery number `consumer_seq`.
    Stored {
        consumer_seq: u64,
        stream_seq: u64,
        pending: u64,
    },
    /// A heartbeat (or a flow-control status): the consumer lives.
    Heartbeat,
    /// Something else (another consumer's delivery): ignored.
    Other,
}

/// One stored message and its place.
pub(super) struct Delivered {
    pub(super) message: async_nats::Message,
    /// Its sequence in the stream.
    pub(super) stream_seq: u64,
    /// Messages left after it when it was sent.
    pub(super) pending: u64,
}

impl Stored {
    /// Follows `stream`'s messages on `filter` (all if empty) from
    /// `deliver_policy` on.
    pub(super) async fn start(
        js: &jetstream::Context,
        stream: &stream::Stream,
        filter: String,
        deliver_policy: DeliverPolicy,
    ) -> Result<Stored, Box<dyn std::error::Error + Send + Sync>> {
        let client = js.client();
        let inbox = client.new_inbox();
        // Subscribed before the consumer exists: nothing is missed.
        let sub = client.subscribe(inbox.clone()).await?;
        let consumer = stream
            .create_consumer(push::Config {
                deliver_subject: inbox,
                filter_subject: filter,
                deliver_policy,
                ack_policy: AckPolicy::None,
                idle_heartbeat: HEARTBEAT,
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await?;
        let info = consumer.cached_info();
        Ok(Stored {
            sub,
            at_start: info.num_pending,
            consumer: info.name.clone(),
            taken: 0,
            misses_end: true,
            missed: 0,
        })
    }

    /// Reads past missed deliveries instead of ending: for a reader that
    /// starts again from the beginning each time (every key's latest
    /// value), where a flood that overflows the subscription on every
    /// start would otherwise keep it starting for ever, and whose values
    /// are written again soon anyway.
    pub(super) fn reading_past_misses(mut self) -> Stored {
        self.misses_end = false;
        self
    }

    /// The next stored message, whatever its headers; `None` when the
    /// subscription ended, nothing came for [`SILENT`], or a delivery was
    /// missed (see the module's text) and misses end the deliveries.
    pub(super) async fn next(&mut self) -> Option<Delivered> {
        loop {
            let message = tokio::time::timeout(SILENT, self.sub.next()).await.ok()??;
            match arrival(&self.consumer, &message) {
                Arrival::Stored {
                    consumer_seq,
                    stream_seq,
                    pending,
                } => {
                    if consumer_seq != self.taken + 1 && !self.misses_end {
                        self.missed += consumer_seq.saturating_sub(self.taken + 1).max(1);
                        if self.missed.is_power_of_two() {
                            tracing::info!(
                                consumer = %self.consumer,
                                missed = self.missed,
                                "nats: stored messages were missed and read past"
                            );
                        }
                    } else if consumer_seq != self.taken + 1 {
                        tracing::info!(
                            consumer = %self.consumer,
                            taken = self.taken,
                            consumer_seq,
                            "nats: a stored message was missed; reading again from the last one taken"
                        );
                        return None;
                    }
                    self.taken = consumer_seq;
                    return Some(Delivered {
                        message,
                        stream_seq,
                        pending,
                    });
                }
                Arrival::Heartbeat | Arrival::Other => {}
            }
        }
    }
}

/// What `message`, arrived on consumer `consumer`'s subscription, is.
fn arrival(consumer: &str, message: &async_nats::Message) -> Arrival {
    let Some(reply) = message.reply.as_deref() else {
        // Without JetStream's acknowledgement subject: a heartbeat, never
        // a stored message.
        return Arrival::Heartbeat;
    };
    // `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer
    // seq>.<time>.<pending>`, with `<domain>.<account hash>.` before the
    // stream and a token after from servers that speak ADR-15.
    let Some(rest) = reply.strip_prefix("$JS.ACK.") else {
        return Arrival::Other;
    };
    let tokens: Vec<&str> = rest.split('.').collect();
    let at = match tokens.len() {
        7 => 0,
        9.. => 2,
        _ => return Arrival::Other,
    };
    let number = |i: usize| tokens.get(at + i).and_then(|t| t.parse::<u64>().ok());
    if tokens.get(at + 1) != Some(&consumer) {
        return Arrival::Other;
    }
    match (number(4), number(3), number(6)) {
        (Some(consumer_seq), Some(stream_seq), Some(pending)) => Arrival::Stored {
            consumer_seq,
            stream_seq,
            pending,
        },
        _ => Arrival::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(reply: Option<&str>) -> async_nats::Message {
        async_nats::Message {
            subject: "_INBOX_a.x".into(),
            reply: reply.map(Into::into),
            payload: bytes::Bytes::from_static(b"{}"),
            headers: None,
            status: None,
            description: None,
            length: 2,
        }
    }

    #[test]
    fn deliveries_are_told_by_their_acknowledgement_subject_and_counted() {
        let m = message(Some(
            "$JS.ACK.LANLINK_HISTORY.c1.1.42.7.1700000000000000000.3",
        ));
        assert_eq!(
            arrival("c1", &m),
            Arrival::Stored {
                consumer_seq: 7,
                stream_seq: 42,
                pending: 3
            }
        );
        // The longer form (domain and account hash first, a token last).
        let m = message(Some(
            "$JS.ACK.hub.ACCHASH.LANLINK_HISTORY.c1.1.42.7.1700000000000000000.3.tok",
        ));
        assert!(matches!(
            arrival("c1", &m),
            Arrival::Stored {
                consumer_seq: 7,
                ..
            }
        ));
        // Another consumer's delivery, a malformed one, a plain reply.
        for reply in [
            "$JS.ACK.LANLINK_HISTORY.c2.1.42.7.1700000000000000000.3",
            "$JS.ACK.LANLINK_HISTORY.c1.1.x.7.1700000000000000000.3",
            "$JS.ACK.LANLINK_HISTORY.c1",
            "_INBOX.whatever",
        ] {
            assert_eq!(
                arrival("c1", &message(Some(reply))),
                Arrival::Other,
                "{reply}"
            );
        }
        assert_eq!(arrival("c1", &message(None)), Arrival::Heartbeat);
    }
}
