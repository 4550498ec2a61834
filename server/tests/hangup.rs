//! A client that hangs up without a goodbye: what it said just before is
//! delivered, however it hangs up.

use std::io::Write;
use std::net::Shutdown;

use lanlink_proto::chat::ChatMessage;
use lanlink_proto::{Capabilities, Frame, Message};
use lanlink_server::ServerConfig;

mod common;
use common::*;

fn line(text: &str) -> Vec<u8> {
    Frame::control(ChatMessage::say("lobby", text))
        .to_bytes()
        .unwrap()
        .to_vec()
}

/// The line and the hang-up in one write: the server reads the frame and
/// the end of the stream together. It used to take the peer's close for
/// its own decision to drop the connection and skip the frames still
/// queued from it (an outside attack, helper-65: 2 or 3 lines of 3 lost).
#[test]
fn a_line_said_just_before_hanging_up_is_delivered() {
    let server = TestServer::start(ServerConfig::default());
    let listener = server.connect("listener", Capabilities::CHAT);
    for (i, how) in ["half-close", "close", "close, several lines"]
        .iter()
        .enumerate()
    {
        let name = format!("caller{i}");
        let (mut s, _) = raw_client(&server.addr, &name, Capabilities::CHAT);
        // The caller is in the lobby once the listener has seen it join.
        wait_for(&listener, |f| match &f.message {
            Message::Presence(p) if p.name == name => Some(()),
            _ => None,
        });
        let texts: Vec<String> = (0..if i == 2 { 5 } else { 1 })
            .map(|n| format!("{how} {n}"))
            .collect();
        let mut bytes: Vec<u8> = texts.iter().flat_map(|t| line(t)).collect();
        if i == 0 {
            s.write_all(&bytes).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
        } else {
            s.write_all(&std::mem::take(&mut bytes)).unwrap();
            drop(s);
        }
        for text in &texts {
            let from = wait_for(&listener, |f| match &f.message {
                Message::ChatMessage(m) if &m.text == text => Some(m.from.clone()),
                _ => None,
            });
            assert_eq!(from, name, "{how}");
        }
    }
}
