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
    js: jetstream::Context,
    /// Messages matching it when it was made.
    pub(super) at_start: u64,
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
        let at_start = consumer.cached_info().num_pending;
        Ok(Stored {
            sub,
            js: js.clone(),
            at_start,
        })
    }

    /// The next stored message, whatever its headers; `None` when the
    /// subscription ended or nothing came for [`SILENT`].
    pub(super) async fn next(&mut self) -> Option<Delivered> {
        loop {
            let message = tokio::time::timeout(SILENT, self.sub.next()).await.ok()??;
            let message = jetstream::Message {
                message,
                context: self.js.clone(),
            };
            // A heartbeat (or anything else without JetStream's
            // acknowledgement subject) is not a stored message.
            let Ok(info) = message.info() else { continue };
            let (stream_seq, pending) = (info.stream_sequence, info.pending);
            return Some(Delivered {
                message: message.message,
                stream_seq,
                pending,
            });
        }
    }
}
