//! Room and private messages, history, length and rate limits.

use super::*;

#[test]
fn room_message_reaches_everyone_but_the_sender_stamped_by_the_server() {
    let mut chat = Chat::trio(ChatConfig::default());
    // The client's own `from` and timestamp are ignored, and the room is
    // named as its creator spelled it.
    let spoofed = ChatMessage {
        from: "mallory".into(),
        timestamp_ms: 5,
        ..said("LOBBY", "hello all")
    };
    let delivered = ChatMessage {
        room: "lobby".into(),
        from: "ada".into(),
        text: "hello all".into(),
        action: false,
        timestamp_ms: chat.now.unix_ms,
    };
    assert_eq!(
        chat.send(ADA, spoofed),
        [to(BOB, delivered.clone()), to(CAROL, delivered)]
    );
}

#[test]
fn alone_in_a_room_a_message_goes_only_to_history() {
    let mut chat = Chat::new(ChatConfig::default());
    chat.connect(ADA, "ada").unwrap();
    assert_eq!(chat.send(ADA, said("lobby", "echo?")), []);
    let out = chat.send(
        ADA,
        HistoryRequest {
            room: "lobby".into(),
            limit: 10,
        },
    );
    let Message::History(h) = &out[0].frame.message else {
        panic!("{out:?}")
    };
    assert_eq!(h.messages.len(), 1);
    assert_eq!(h.messages[0].text, "echo?");
}

#[test]
fn private_message_reaches_only_its_target() {
    let mut chat = Chat::trio(ChatConfig::default());
    let delivered = PrivateMessage {
        to: "bob".into(),
        from: "ada".into(),
        text: "psst".into(),
        action: false,
        timestamp_ms: chat.now.unix_ms,
    };
    assert_eq!(chat.send(ADA, pm("BOB", "psst")), [to(BOB, delivered)]);
    assert_eq!(
        chat.send(ADA, pm("dave", "hello?")),
        error(ADA, ErrorCode::NOT_FOUND, r#"no user named "dave""#)
    );
}

#[test]
fn newcomer_gets_the_last_n_messages_of_history() {
    let mut chat = Chat::new(ChatConfig {
        history_len: 3,
        ..ChatConfig::default()
    });
    chat.connect(ADA, "ada").unwrap();
    let mut kept = Vec::new();
    for i in 1..=5 {
        chat.advance(1000);
        chat.send(ADA, said("lobby", &format!("line {i}")));
        kept.push(ChatMessage {
            room: "lobby".into(),
            from: "ada".into(),
            text: format!("line {i}"),
            action: false,
            timestamp_ms: chat.now.unix_ms,
        });
    }
    let last3 = kept[2..].to_vec();
    let out = chat.connect(BOB, "bob").unwrap();
    assert_eq!(out[1], to(BOB, history("lobby", last3)));
    assert_eq!(
        chat.send(
            BOB,
            HistoryRequest {
                room: "lobby".into(),
                limit: 2
            }
        ),
        [to(BOB, history("lobby", kept[3..].to_vec()))]
    );
    assert_eq!(
        chat.send(
            BOB,
            HistoryRequest {
                room: "ops".into(),
                limit: 2
            }
        ),
        error(BOB, ErrorCode::FORBIDDEN, r#"you are not in room "ops""#)
    );
}

#[test]
fn messages_over_the_length_limit_are_refused() {
    let mut chat = Chat::trio(ChatConfig {
        max_message_len: 10,
        ..ChatConfig::default()
    });
    assert_eq!(chat.send(ADA, said("lobby", &"a".repeat(10))).len(), 2);
    let too_long = "message of 11 bytes is longer than the limit of 10 bytes";
    assert_eq!(
        chat.send(ADA, said("lobby", &"a".repeat(11))),
        error(ADA, ErrorCode::TOO_LARGE, too_long)
    );
    assert_eq!(
        chat.send(ADA, pm("bob", &"a".repeat(11))),
        error(ADA, ErrorCode::TOO_LARGE, too_long)
    );
    // Bytes, not characters: five 'é' are ten bytes, six are twelve.
    assert_eq!(chat.send(ADA, pm("bob", &"é".repeat(5))).len(), 1);
    assert_eq!(chat.send(ADA, pm("bob", &"é".repeat(6)))[0].to, ADA);
}

#[test]
fn rate_limit_refuses_bursts_and_refills_with_time() {
    let mut chat = Chat::trio(ChatConfig {
        rate_burst: 3,
        rate_per_second: 1.0,
        ..ChatConfig::default()
    });
    for i in 0..3 {
        assert_eq!(chat.send(ADA, said("lobby", &i.to_string())).len(), 2);
    }
    let limited = "sending too fast: wait 1000 ms before the next message";
    assert_eq!(
        chat.send(ADA, said("lobby", "3")),
        error(ADA, ErrorCode::RATE_LIMITED, limited)
    );
    assert_eq!(
        chat.send(ADA, pm("bob", "psst")),
        error(ADA, ErrorCode::RATE_LIMITED, limited)
    );
    // Others have their own buckets.
    assert_eq!(chat.send(BOB, said("lobby", "fine")).len(), 2);

    chat.advance(400);
    assert_eq!(
        chat.send(ADA, said("lobby", "too soon")),
        error(
            ADA,
            ErrorCode::RATE_LIMITED,
            "sending too fast: wait 600 ms before the next message"
        )
    );
    chat.advance(600);
    assert_eq!(chat.send(ADA, pm("bob", "one more")).len(), 1);
    assert_eq!(chat.send(ADA, said("lobby", "x"))[0].to, ADA);

    // A long pause refills up to the burst, no further.
    chat.advance(60_000);
    for _ in 0..3 {
        assert_eq!(chat.send(ADA, said("lobby", "again")).len(), 2);
    }
    assert_eq!(chat.send(ADA, said("lobby", "x"))[0].to, ADA);
}
