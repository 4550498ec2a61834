//! One name is one person, whatever the connection does: found by the third
//! outside attack, connections that do not chat (a camera, a sender) were
//! checked against chat users and receivers only, so while ada's camera ran
//! another machine published and offered files as `ada`, `аda` (Cyrillic),
//! `ADA` and `ａｄａ`. Real server on loopback, clients from 127.0.0.x.

mod common;

use common::TestServer;
use lanlink_proto::{Capabilities, ErrorCode};
use lanlink_server::ServerConfig;
use lanlink_transport::TransportError;

fn refused_as_taken(result: Result<lanlink_transport::Client, TransportError>, what: &str) {
    match result {
        Err(TransportError::Refused { code, reason }) => {
            assert_eq!(code, ErrorCode::NAME_TAKEN, "{what}: {reason}");
            assert!(reason.contains("another address"), "{what}: {reason}");
        }
        Err(other) => panic!("{what}: {other}"),
        Ok(_) => panic!("{what}: welcomed"),
    }
}

#[test]
fn a_cameras_name_is_not_taken_from_another_machine_in_any_guise() {
    let server = TestServer::start(ServerConfig::default());
    let _cam = server.connect_from("127.0.0.1", "ada", Capabilities::VIDEO);
    for name in ["ada", "\u{430}da", "ADA", "\u{ff41}\u{ff44}\u{ff41}"] {
        for caps in [Capabilities::VIDEO, Capabilities::FILE, Capabilities::CHAT] {
            refused_as_taken(
                server.try_connect_from("127.0.0.2", name, caps),
                &format!("{name:?} with {caps:?}"),
            );
        }
    }
    // Her own machine may use it (her chat beside her camera), and another
    // machine may use another name.
    let chat = server.try_connect_from("127.0.0.1", "ada", Capabilities::CHAT);
    assert!(chat.is_ok(), "{:?}", chat.err());
    let bob = server.try_connect_from("127.0.0.2", "bob", Capabilities::VIDEO);
    assert!(bob.is_ok(), "{:?}", bob.err());
}
