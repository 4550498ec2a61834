//! The `chat` fuzz target: a [`ChatService`] driven by a script.

use std::collections::BTreeMap;

use lanlink_proto::Message;
use lanlink_transport::{ConnId, Rate};

use super::{check_encodes, check_sent, events, Clock, Event, Stats};
use crate::chat::{ChatConfig, ChatService};

/// Small limits, so that short inputs reach history eviction, the rate
/// limit and the length checks.
fn config() -> ChatConfig {
    ChatConfig {
        default_room: "lobby".into(),
        history_len: 4,
        max_message_len: 64,
        max_name_len: 16,
        rate_burst: 3,
        rate_per_second: 1.0,
        request_rate: Rate {
            burst: 4,
            per_second: 1.0,
        },
        address_request_rate: Rate {
            burst: 6,
            per_second: 1.0,
        },
        address_message_rate: Rate {
            burst: 5,
            per_second: 1.0,
        },
        password_guesses: Rate {
            burst: 2,
            per_second: 0.5,
        },
        password_guesses_in_all: Rate {
            burst: 3,
            per_second: 0.5,
        },
        told_arrivals: Rate {
            burst: 2,
            per_second: 0.5,
        },
        told_arrivals_in_all: Rate {
            burst: 3,
            per_second: 0.5,
        },
        max_rooms_per_client: 3,
        max_rooms: 4,
        max_rooms_per_address: 3,
        motd: Some("fuzz".into()),
    }
}

/// Runs a script against a fresh [`ChatService`], every frame going to
/// `ChatService::handle` whatever its kind, and checks after every event:
///
/// - its invariants hold (names ↔ clients, members ↔ rooms, no empty room);
/// - it knows exactly the connections it accepted, under their names;
/// - everything it sends goes to an accepted connection and encodes;
/// - a room message reaches only other members of that room, stamped with
///   the sender's name;
/// - a refused connect sends nothing; a frame from a connection it does not
///   know is answered to that connection alone, if at all, and changes
///   nothing;
///
/// and at the end, once everyone has left, that no client or room remains.
///
/// # Panics
/// When a check fails.
pub fn run(data: &[u8]) -> Stats {
    let mut chat = ChatService::new(config());
    let mut clock = Clock::default();
    let mut connected: BTreeMap<ConnId, String> = BTreeMap::new();
    let mut stats = Stats::default();
    let mut out = Vec::new();
    for event in events(data) {
        let now = clock.now();
        match event {
            Event::Connect { conn, name, .. } => {
                match chat.connect(conn, peer(conn), &name, &now, &mut out) {
                    Ok(()) => {
                        stats.connects += 1;
                        connected.insert(conn, name);
                    }
                    Err(_) => {
                        assert!(out.is_empty(), "a refused connect sent {out:?}");
                        assert_eq!(chat.name_of(conn), None);
                    }
                }
            }
            Event::Disconnect { conn } => {
                chat.disconnect(conn, "gone", &mut out);
                connected.remove(&conn);
            }
            Event::Frame { conn, frame, .. } if !connected.contains_key(&conn) => {
                let clients = chat.client_count();
                chat.handle(conn, frame.message, &now, &mut out);
                for o in out.drain(..) {
                    assert_eq!(o.to, conn, "a stranger's frame reached {}", o.to);
                    assert!(matches!(o.frame.message, Message::Error(_)), "{o:?}");
                    check_encodes("chat", &o);
                }
                assert_eq!(chat.client_count(), clients);
            }
            Event::Frame { conn, frame, .. } => {
                stats.frames += 1;
                chat.handle(conn, frame.message, &now, &mut out);
                check_room_messages(&chat, conn, &out);
            }
            Event::Tick(by) => clock.advance(by),
        }
        check_sent("chat", &out, &connected);
        stats.sent += out.len();
        out.clear();
        check_registry(&chat, &connected);
    }
    for conn in connected.keys() {
        chat.disconnect(*conn, "shutdown", &mut out);
    }
    assert_eq!(chat.client_count(), 0);
    assert_eq!(chat.room_count(), 0, "rooms outlived their members");
    stats
}

/// Connections share three addresses, so that the per-address limits are
/// reached and shared.
fn peer(conn: ConnId) -> std::net::IpAddr {
    std::net::IpAddr::from([10, 0, 0, (conn.0 % 3) as u8])
}

fn check_registry(chat: &ChatService, connected: &BTreeMap<ConnId, String>) {
    chat.assert_consistent();
    assert_eq!(chat.client_count(), connected.len());
    for conn in connected.keys() {
        let name = chat.name_of(*conn).expect("an accepted client has a name");
        assert_eq!(chat.conn_of(name), Some(*conn));
    }
}

/// Room messages sent on `from`'s behalf go to the other members of the room
/// only and carry `from`'s current name.
fn check_room_messages(chat: &ChatService, from: ConnId, out: &[crate::Outgoing]) {
    for o in out {
        let Message::ChatMessage(m) = &o.frame.message else {
            continue;
        };
        assert_ne!(o.to, from, "a room message echoed to its sender");
        assert_eq!(Some(m.from.as_str()), chat.name_of(from));
        let members = chat.room_members(&m.room).unwrap_or_default();
        let to = chat.name_of(o.to).unwrap_or_default();
        assert!(members.contains(&to), "{to} got a message of {}", m.room);
    }
}
