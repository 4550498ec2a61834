//! Rooms: creation, re-joining, removal, passwords, rosters, and requests
//! the chat service does not take.

use super::*;

#[test]
fn rooms_are_created_on_first_join_and_dropped_when_empty() {
    let mut chat = Chat::trio(ChatConfig::default());
    assert_eq!(
        chat.send(ADA, join("Ops", None)),
        [
            to(ADA, history("Ops", vec![])),
            to(ADA, roster("Ops", &["ada"]))
        ]
    );
    assert_eq!(chat.service.room_count(), 2);
    // The creator's spelling names the room for everyone.
    assert_eq!(
        chat.send(BOB, join("ops", None)),
        [
            to(ADA, presence("Ops", "bob", PresenceChange::Joined, "")),
            to(BOB, history("Ops", vec![])),
            to(BOB, roster("Ops", &["ada", "bob"])),
        ]
    );
    chat.send(ADA, said("ops", "secret plans"));
    // Joining again (a client switching rooms) resends the roster only:
    // no history replayed, nothing announced.
    assert_eq!(
        chat.send(BOB, join("OPS", None)),
        [to(BOB, roster("Ops", &["ada", "bob"]))]
    );

    chat.send(ADA, Leave { room: "ops".into() });
    chat.send(BOB, Leave { room: "ops".into() });
    assert_eq!(chat.service.room_count(), 1);
    assert_eq!(
        chat.send(CAROL, join("ops", None))[0],
        to(CAROL, history("ops", vec![]))
    );
}

#[test]
fn a_client_can_be_in_several_rooms_and_talk_in_each() {
    let mut chat = Chat::trio(ChatConfig::default());
    chat.send(ADA, join("ops", None));
    chat.send(BOB, join("ops", None));
    let in_ops = chat.send(ADA, said("ops", "ops only"));
    assert_eq!(in_ops.iter().map(|o| o.to).collect::<Vec<_>>(), [BOB]);
    let in_lobby = chat.send(ADA, said("lobby", "everyone"));
    assert_eq!(
        in_lobby.iter().map(|o| o.to).collect::<Vec<_>>(),
        [BOB, CAROL]
    );
    // Leaving every room still leaves private messages.
    chat.send(ADA, Leave { room: "ops".into() });
    chat.send(
        ADA,
        Leave {
            room: "lobby".into(),
        },
    );
    assert_eq!(chat.send(ADA, pm("carol", "hi"))[0].to, CAROL);
    assert_eq!(chat.send(CAROL, pm("ada", "hi"))[0].to, ADA);
}

#[test]
fn a_room_password_is_set_by_its_creator_and_checked_on_join() {
    let mut chat = Chat::trio(ChatConfig::default());
    chat.send(ADA, join("ops", Some("s3cret")));
    let refused = r#"wrong or missing password for room "ops""#;
    assert_eq!(
        chat.send(BOB, join("ops", None)),
        error(BOB, ErrorCode::FORBIDDEN, refused)
    );
    assert_eq!(
        chat.send(BOB, join("ops", Some("guess"))),
        error(BOB, ErrorCode::FORBIDDEN, refused)
    );
    assert_eq!(chat.service.room_members("ops"), Some(vec!["ada"]));
    assert_eq!(chat.send(BOB, join("ops", Some("s3cret"))).len(), 3);
    // Outsiders may not see who is in a room with a password...
    assert_eq!(
        chat.send(CAROL, RosterRequest { room: "ops".into() }),
        error(CAROL, ErrorCode::FORBIDDEN, r#"you are not in room "ops""#)
    );
    // ...but may see who is in an open one, and learn a room does not exist.
    chat.send(ADA, join("den", None));
    assert_eq!(
        chat.send(CAROL, RosterRequest { room: "den".into() }),
        [to(CAROL, roster("den", &["ada"]))]
    );
    assert_eq!(
        chat.send(
            CAROL,
            RosterRequest {
                room: "attic".into()
            }
        ),
        error(CAROL, ErrorCode::NOT_FOUND, r#"no room named "attic""#)
    );
}

#[test]
fn the_default_room_never_takes_a_password() {
    let mut chat = Chat::new(ChatConfig::default());
    chat.connect(ADA, "ada").unwrap();
    chat.send(
        ADA,
        Leave {
            room: "lobby".into(),
        },
    );
    assert_eq!(chat.service.room_count(), 0);
    chat.send(ADA, join("lobby", Some("mine")));
    // Otherwise nobody could connect any more.
    let out = chat.connect(BOB, "bob").unwrap();
    assert_eq!(out.last(), Some(&to(BOB, roster("lobby", &["ada", "bob"]))));
}

#[test]
fn non_chat_and_server_side_messages_are_unexpected() {
    let mut chat = Chat::trio(ChatConfig::default());
    assert_eq!(
        chat.send(ADA, Ping { nonce: 1 }),
        error(
            ADA,
            ErrorCode::UNEXPECTED,
            "unexpected Ping message: the server does not accept it from clients here"
        )
    );
    assert_eq!(
        chat.send(ADA, roster("lobby", &["mallory"]))[0],
        error(
            ADA,
            ErrorCode::UNEXPECTED,
            "unexpected Roster message: the server does not accept it from clients here"
        )[0]
    );
    assert_eq!(
        chat.connect(ADA, "ada_again"),
        Err((
            ErrorCode::UNEXPECTED,
            "connection #1 is already registered".into()
        ))
    );
    assert_eq!(chat.service.name_of(ADA), Some("ada"));
}

#[test]
fn every_frame_goes_on_the_control_stream() {
    let mut chat = Chat::trio(ChatConfig::default());
    let mut all = chat.send(ADA, said("lobby", "hi"));
    all.extend(chat.send(ADA, pm("bob", "hi")));
    all.extend(chat.send(ADA, Ping { nonce: 1 }));
    all.extend(chat.disconnect(BOB, "bye"));
    assert!(!all.is_empty());
    assert!(all
        .iter()
        .all(|o| o.frame.stream == lanlink_proto::CONTROL_STREAM));
}

/// A client cannot make the server keep rooms without end (issue 13: one
/// client created 20,000): rooms per connection and in all are capped,
/// the default room aside, and a refused join changes nothing.
#[test]
fn rooms_are_capped_per_connection_and_in_all() {
    let unlimited = Rate {
        burst: 1000,
        per_second: 1000.0,
    };
    let mut chat = Chat::trio(ChatConfig {
        max_rooms_per_client: 3,
        max_rooms: 4,
        request_rate: unlimited,
        address_request_rate: unlimited,
        ..ChatConfig::default()
    });
    for room in ["r1", "r2", "r3"] {
        assert_eq!(chat.send(ADA, join(room, None)).len(), 2, "{room}");
    }
    let too_many = |max: usize, whose: &str| {
        error(
            ADA,
            ErrorCode::SERVER_FULL,
            &format!("too many rooms: {whose} at most {max} at once (the default room aside)"),
        )
    };
    assert_eq!(
        chat.send(ADA, join("r4", None)),
        too_many(3, "you may be in")
    );
    // Rejoining one of its rooms and the lobby is fine.
    let again = chat.send(ADA, join("r2", None));
    assert!(
        !again.is_empty()
            && again
                .iter()
                .all(|o| o.to == ADA && !matches!(o.frame.message, Message::Error(_))),
        "{again:?}"
    );
    assert_eq!(
        chat.send(
            ADA,
            Leave {
                room: "lobby".into()
            }
        )
        .len(),
        3
    );
    assert_eq!(chat.send(ADA, join("lobby", None)).len(), 4);
    // Joining a room that exists is not creating one.
    assert_eq!(chat.send(BOB, join("r1", None)).len(), 3);
    // The server-wide cap: bob creates the fourth, carol cannot create a
    // fifth but may join an existing one.
    assert_eq!(chat.send(BOB, join("b1", None)).len(), 2);
    let out = chat.send(CAROL, join("c1", None));
    assert_eq!(
        out,
        error(
            CAROL,
            ErrorCode::SERVER_FULL,
            "too many rooms: this server keeps at most 4 at once (the default room aside)"
        )
    );
    assert_eq!(chat.service.room_count(), 5);
    assert_eq!(chat.send(CAROL, join("b1", None)).len(), 3);
    // Rooms go with their members, and so does the cap.
    chat.disconnect(ADA, "bye");
    assert_eq!(chat.send(CAROL, join("c1", None)).len(), 2);
}

/// Found by the third outside attack: 8 addresses opened all 1,024 rooms
/// and an honest user could not open one. The rooms one address's clients
/// opened (and that still exist) are capped; joining a room is not opening
/// one, and a room that closes gives its place back.
#[test]
fn one_address_cannot_open_every_room() {
    let unlimited = Rate {
        burst: 1000,
        per_second: 1000.0,
    };
    let mut chat = Chat::new(ChatConfig {
        max_rooms_per_address: 2,
        request_rate: unlimited,
        address_request_rate: unlimited,
        ..ChatConfig::default()
    });
    let house = [192, 168, 9, 9];
    let (eve, mallory) = (ConnId(20), ConnId(21));
    chat.connect_from(eve, house, "eve").unwrap();
    chat.connect_from(mallory, house, "mallory").unwrap();
    assert_eq!(chat.send(eve, join("e1", None)).len(), 2);
    assert_eq!(chat.send(mallory, join("m1", None)).len(), 2);
    assert_eq!(
        chat.send(mallory, join("m2", None)),
        error(
            mallory,
            ErrorCode::SERVER_FULL,
            "too many rooms: your address may have opened at most 2 at once (the default room aside)"
        )
    );
    // Joining rooms that exist, and the default room, is fine.
    assert!(chat
        .send(mallory, join("e1", None))
        .iter()
        .all(|o| !matches!(o.frame.message, Message::Error(_))));
    // Another address opens its own.
    chat.connect(ADA, "ada").unwrap();
    assert_eq!(chat.send(ADA, join("project-x", None)).len(), 2);
    // m1 closes with its last member: the address may open another.
    chat.send(mallory, Leave { room: "m1".into() });
    assert_eq!(chat.send(mallory, join("m2", None)).len(), 2);
}
