//! Presence across servers: a JetStream key-value bucket
//! ([`PRESENCE_BUCKET`]) with one key per server id, whose value lists
//! that server's users by shared room. Each server rewrites its key when
//! its rooms change and at least every [`HEARTBEAT`]; the bucket forgets a
//! value after [`PRESENCE_TTL`], and a server whose key has not been
//! rewritten for [`STALE_AFTER`] is taken as gone (its users leave the
//! rosters, without leave lines: it may only be cut off).

use std::collections::HashMap;
use std::time::Duration;

use crossbeam_channel::Sender;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{valid_server_id, NatsEvent};

/// The key-value bucket of presence.
pub const PRESENCE_BUCKET: &str = "lanlink_presence";

/// How often a server rewrites its presence when nothing changed.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// How long the bucket keeps a value.
pub const PRESENCE_TTL: Duration = Duration::from_secs(30);

/// A server not heard from for this long is taken as gone.
pub const STALE_AFTER: Duration = Duration::from_secs(15);

/// The largest presence value taken from another server, in bytes.
pub const MAX_PRESENCE_BYTES: usize = 256 * 1024;

/// The most rooms, and names per room, taken from one server's value.
const MAX_ROOMS: usize = 1024;
const MAX_NAMES: usize = 4096;

/// One server's shared rooms: `(room, names)`, as the hub sees them.
pub type Rosters = Vec<(String, Vec<String>)>;

/// Keeps this server's key up to date and tells the hub about the
/// others'; retries from the start whenever NATS fails it.
pub(super) async fn run(
    js: async_nats::jetstream::Context,
    own: String,
    replicas: usize,
    mut mine: watch::Receiver<Rosters>,
    events: Sender<NatsEvent>,
) {
    let mut heard: HashMap<String, Instant> = HashMap::new();
    loop {
        if let Err(e) = session(&js, &own, replicas, &mut mine, &events, &mut heard).await {
            tracing::warn!("nats: presence: {e}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn session(
    js: &async_nats::jetstream::Context,
    own: &str,
    replicas: usize,
    mine: &mut watch::Receiver<Rosters>,
    events: &Sender<NatsEvent>,
    heard: &mut HashMap<String, Instant>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // The bucket's stream made by hand, as `create_key_value` would make
    // it: that call first asks for the account's info, whose answer from
    // nats-server 2.9 this client version cannot parse.
    use async_nats::jetstream::stream;
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{PRESENCE_BUCKET}"),
        subjects: vec![format!("$KV.{PRESENCE_BUCKET}.>")],
        max_messages_per_subject: 1,
        max_age: PRESENCE_TTL,
        max_message_size: i32::try_from(MAX_PRESENCE_BYTES).unwrap_or(i32::MAX),
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    })
    .await?;
    let kv = js.get_key_value(PRESENCE_BUCKET).await?;
    let mut entries = kv.watch_with_history(">").await?;
    let mut beat = tokio::time::interval(HEARTBEAT);
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = beat.tick() => {
                let rosters = mine.borrow().clone();
                put(&kv, own, &rosters).await?;
            }
            changed = mine.changed() => {
                if changed.is_err() {
                    // The link is closing: say so at once.
                    let _ = kv.delete(own).await;
                    return Ok(());
                }
                let rosters = mine.borrow_and_update().clone();
                put(&kv, own, &rosters).await?;
            }
            entry = entries.next() => {
                let Some(entry) = entry else { return Err("presence watch ended".into()) };
                let entry = entry?;
                let server = entry.key.clone();
                if server == own || !valid_server_id(&server) {
                    continue;
                }
                let told = match entry.operation {
                    async_nats::jetstream::kv::Operation::Put => decode(&entry.value).map(|rooms| {
                        heard.insert(server.clone(), Instant::now());
                        NatsEvent::Rosters { server, rooms }
                    }),
                    _ => heard.remove(&server).map(|_| NatsEvent::ServerGone { server }),
                };
                if let Some(told) = told {
                    let _ = events.try_send(told);
                }
            }
            _ = sweep.tick() => {
                let now = Instant::now();
                let gone: Vec<String> = heard
                    .iter()
                    .filter(|(_, at)| now.duration_since(**at) > STALE_AFTER)
                    .map(|(s, _)| s.clone())
                    .collect();
                for server in gone {
                    heard.remove(&server);
                    let _ = events.try_send(NatsEvent::ServerGone { server });
                }
            }
        }
    }
}

async fn put(
    kv: &async_nats::jetstream::kv::Store,
    own: &str,
    rosters: &Rosters,
) -> Result<(), async_nats::jetstream::kv::PutError> {
    let rooms: serde_json::Map<String, Value> = rosters
        .iter()
        .map(|(room, names)| (room.clone(), json!(names)))
        .collect();
    let body = json!({ "rooms": rooms }).to_string();
    kv.put(own, body.into()).await.map(|_| ())
}

/// A server's rooms from its value, or `None` if it is malformed or too
/// big (names are checked again by the chat service).
pub(super) fn decode(value: &[u8]) -> Option<Rosters> {
    if value.len() > MAX_PRESENCE_BYTES {
        return None;
    }
    let body: Value = serde_json::from_slice(value).ok()?;
    let rooms = body.get("rooms")?.as_object()?;
    if rooms.len() > MAX_ROOMS {
        return None;
    }
    let mut out = Vec::with_capacity(rooms.len());
    for (room, names) in rooms {
        let names = names.as_array()?;
        if names.len() > MAX_NAMES {
            return None;
        }
        let names: Option<Vec<String>> = names
            .iter()
            .map(|n| n.as_str().map(str::to_owned))
            .collect();
        out.push((room.clone(), names?));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_values_are_bounded_and_typed() {
        let good = br#"{"rooms":{"lobby":["ada","bob"]}}"#;
        assert_eq!(
            decode(good),
            Some(vec![("lobby".into(), vec!["ada".into(), "bob".into()])])
        );
        assert_eq!(decode(br#"{"rooms":{"lobby":[1]}}"#), None);
        assert_eq!(decode(br#"{"rooms":[]}"#), None);
        assert_eq!(decode(b"nope"), None);
        assert_eq!(decode(&vec![b' '; MAX_PRESENCE_BYTES + 1]), None);
    }
}
