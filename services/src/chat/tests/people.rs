//! Connecting, nicknames, leaving and disconnecting.

use super::*;

#[test]
fn three_clients_join_and_are_announced_to_the_others() {
    let mut chat = Chat::new(ChatConfig {
        motd: Some("welcome to the LAN".into()),
        ..ChatConfig::default()
    });
    let motd = Notice {
        room: None,
        text: "welcome to the LAN".into(),
    };
    assert_eq!(
        chat.connect(ADA, "ada").unwrap(),
        [
            to(ADA, motd.clone()),
            to(ADA, history("lobby", vec![])),
            to(ADA, roster("lobby", &["ada"])),
        ]
    );
    assert_eq!(
        chat.connect(BOB, "bob").unwrap(),
        [
            to(BOB, motd.clone()),
            to(ADA, presence("lobby", "bob", PresenceChange::Joined, "")),
            to(BOB, history("lobby", vec![])),
            to(BOB, roster("lobby", &["ada", "bob"])),
        ]
    );
    let carol_joined = presence("lobby", "Carol", PresenceChange::Joined, "");
    assert_eq!(
        chat.connect(CAROL, "Carol").unwrap(),
        [
            to(CAROL, motd),
            to(ADA, carol_joined.clone()),
            to(BOB, carol_joined),
            to(CAROL, history("lobby", vec![])),
            to(CAROL, roster("lobby", &["ada", "bob", "Carol"])),
        ]
    );
    assert_eq!(chat.service.client_count(), 3);
    assert_eq!(chat.service.name_of(CAROL), Some("Carol"));
    assert_eq!(chat.service.conn_of("carol"), Some(CAROL));
}

#[test]
fn nickname_clash_at_connect_is_refused_and_registers_nothing() {
    let mut chat = Chat::trio(ChatConfig::default());
    assert_eq!(
        chat.connect(ConnId(4), "ADA"),
        Err((
            ErrorCode::NAME_TAKEN,
            r#"nickname "ADA" is already taken"#.into()
        ))
    );
    assert_eq!(chat.service.client_count(), 3);
    assert_eq!(chat.service.name_of(ConnId(4)), None);
    // A refused connection is not a client: its messages are refused too.
    assert_eq!(
        chat.send(ConnId(4), said("lobby", "hi")),
        error(
            ConnId(4),
            ErrorCode::UNEXPECTED,
            "connection #4 has not joined the chat"
        )
    );
}

#[test]
fn set_nick_checks_clashes_and_tells_everyone_who_shares_a_room() {
    let mut chat = Chat::trio(ChatConfig::default());
    chat.connect(ConnId(4), "dave").unwrap();
    chat.send(
        ConnId(4),
        Leave {
            room: "lobby".into(),
        },
    );
    chat.send(ADA, join("ops", None));
    chat.send(CAROL, join("ops", None));

    assert_eq!(
        chat.send(BOB, SetNick { name: "Ada".into() }),
        error(
            BOB,
            ErrorCode::NAME_TAKEN,
            r#"nickname "Ada" is already taken"#
        )
    );
    assert_eq!(chat.service.name_of(BOB), Some("bob"));

    // ada shares the lobby with bob and carol, and ops with carol: each hears
    // once; dave shares no room and hears nothing.
    let changed = NickChanged {
        old: "ada".into(),
        new: "ada2".into(),
    };
    assert_eq!(
        chat.send(
            ADA,
            SetNick {
                name: "ada2".into()
            }
        ),
        [
            to(ADA, changed.clone()),
            to(BOB, changed.clone()),
            to(CAROL, changed)
        ]
    );
    assert_eq!(
        chat.service.room_members("ops"),
        Some(vec!["ada2", "carol"])
    );
    // In no room at all, a client still hears its own change.
    let dave = NickChanged {
        old: "dave".into(),
        new: "david".into(),
    };
    assert_eq!(
        chat.send(
            ConnId(4),
            SetNick {
                name: "david".into()
            }
        ),
        [to(ConnId(4), dave)]
    );
    // The old name is free again; changing only case is allowed.
    assert!(chat.connect(ConnId(5), "ada").is_ok());
    assert_eq!(
        chat.send(
            ADA,
            SetNick {
                name: "Ada2".into()
            }
        )
        .len(),
        4
    );
    assert_eq!(
        chat.send(
            ADA,
            SetNick {
                name: "Ada2".into()
            }
        ),
        []
    );
    assert_eq!(
        chat.send(
            ADA,
            SetNick {
                name: "#root".into()
            }
        ),
        error(
            ADA,
            ErrorCode::INVALID_NAME,
            r##"invalid nickname "#root": it may not start with '#' or '/'"##
        )
    );
}

#[test]
fn leave_and_disconnect_announce_and_free_the_nickname() {
    let mut chat = Chat::trio(ChatConfig::default());
    chat.send(ADA, join("ops", None));
    chat.send(BOB, join("ops", None));
    let left = presence("ops", "ada", PresenceChange::Left, "");
    // The leaver hears its own departure: that is its confirmation.
    assert_eq!(
        chat.send(ADA, Leave { room: "OPS".into() }),
        [to(ADA, left.clone()), to(BOB, left)]
    );
    assert_eq!(
        chat.send(ADA, said("ops", "still here?")),
        error(ADA, ErrorCode::FORBIDDEN, r#"you are not in room "ops""#)
    );
    assert_eq!(
        chat.send(ADA, Leave { room: "ops".into() }),
        error(ADA, ErrorCode::FORBIDDEN, r#"you are not in room "ops""#)
    );
    assert_eq!(chat.send(BOB, said("ops", "alone")), []);

    // bob is in lobby and ops; ops empties and goes away.
    let lost = presence("lobby", "bob", PresenceChange::Left, "connection lost");
    assert_eq!(
        chat.disconnect(BOB, "connection lost"),
        [to(ADA, lost.clone()), to(CAROL, lost)]
    );
    assert_eq!(chat.service.client_count(), 2);
    assert_eq!(chat.service.room_count(), 1);
    assert_eq!(chat.service.room_members("ops"), None);
    assert_eq!(chat.disconnect(BOB, "again"), []);
    assert!(chat.connect(ConnId(4), "bob").is_ok());
    // ops was dropped with its history.
    let out = chat.send(ConnId(4), join("ops", None));
    assert_eq!(out[0], to(ConnId(4), history("ops", vec![])));
}

#[test]
fn invalid_names_are_refused_at_connect_and_join() {
    let mut chat = Chat::new(ChatConfig::default());
    let long = "n".repeat(33);
    for name in [
        "",
        "two words",
        "tab\tname",
        "bell\u{7}",
        "#chan",
        "/cmd",
        long.as_str(),
    ] {
        let result = chat.connect(ADA, name);
        assert_eq!(
            result.as_ref().map_err(|e| e.0),
            Err(ErrorCode::INVALID_NAME),
            "{name:?}"
        );
        let reason = result.unwrap_err().1;
        assert!(
            reason.starts_with(&format!("invalid nickname {name:?}: ")),
            "{reason}"
        );
        assert_eq!(chat.service.client_count(), 0);
    }
    chat.connect(ADA, "ada").unwrap();
    assert_eq!(
        chat.send(ADA, join("two words", None)),
        error(
            ADA,
            ErrorCode::INVALID_NAME,
            r#"invalid room name "two words": it contains whitespace"#
        )
    );
    assert_eq!(chat.send(ADA, join(&long, None))[0].to, ADA);
    assert_eq!(chat.send(ADA, join("", None))[0].to, ADA);
    assert_eq!(chat.service.room_count(), 1);
}

#[test]
fn look_alikes_of_a_taken_name_are_taken() {
    let mut chat = Chat::trio(ChatConfig::default());
    chat.connect(ConnId(4), "alice").unwrap();
    for (i, fake) in [
        "b\u{043e}b",   // Cyrillic о
        "\u{0430}da",   // Cyrillic а
        "ａｄａ",       // fullwidth
        "ADA",          // case
        "al\u{0131}ce", // dotless i
        "ca\u{0433}ol", // Cyrillic г
    ]
    .into_iter()
    .enumerate()
    {
        let conn = ConnId(10 + i as u64);
        assert_eq!(
            chat.connect(conn, fake),
            Err((
                ErrorCode::NAME_TAKEN,
                format!("nickname {fake:?} is already taken")
            )),
            "{fake}"
        );
        // Nor can anyone else rename to it.
        let other = if chat.service.conn_of(fake) == Some(ADA) {
            BOB
        } else {
            ADA
        };
        assert_eq!(
            chat.send(other, SetNick { name: fake.into() }),
            error(
                other,
                ErrorCode::NAME_TAKEN,
                &format!("nickname {fake:?} is already taken")
            )
        );
    }
    // Hidden characters are refused outright, whatever they would hide.
    for fake in [
        "b\u{200b}ob",
        "\u{feff}bob",
        "bo\u{00ad}b",
        "bob\u{e0041}",
        "\u{202e}bob",
    ] {
        let (code, _) = chat.connect(ConnId(30), fake).unwrap_err();
        assert_eq!(code, ErrorCode::INVALID_NAME, "{fake:?}");
    }
    // Names that only look different to a machine are taken; different
    // ones are not.
    assert!(chat.connect(ConnId(31), "carl").is_ok());
    // A user may still restyle their own name.
    assert_eq!(chat.send(BOB, SetNick { name: "BOB".into() }).len(), 5);
}

#[test]
fn a_banned_name_bans_its_look_alikes() {
    let mut chat = Chat::trio(ChatConfig::default());
    assert!(chat.service.ban_name("Mallory"));
    assert!(!chat.service.ban_name("mallory"));
    for fake in ["mallory", "m\u{0430}llory", "ｍａｌｌｏｒｙ", "MALLORY"] {
        assert_eq!(
            chat.connect(ConnId(9), fake),
            Err((ErrorCode::BANNED, format!("the name {fake:?} is banned"))),
        );
        assert_eq!(
            chat.send(ADA, SetNick { name: fake.into() }),
            error(
                ADA,
                ErrorCode::BANNED,
                &format!("the name {fake:?} is banned")
            )
        );
    }
    assert_eq!(chat.service.banned_names(), ["mallory"]);
    assert!(chat.service.unban_name("MАLLORY"));
    assert!(chat.connect(ConnId(9), "mallory").is_ok());
}
