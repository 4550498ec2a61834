//! Shared by the proto integration tests: one sample frame of every kind, and
//! proptest strategies that generate any message.

#![allow(dead_code)]

use bytes::Bytes;
use lanlink_proto::{
    audio::*, chat::*, control::*, file::*, video::*, Capabilities, ErrorCode, Frame, Message,
};
use proptest::prelude::*;

/// One valid frame of every kind, with non-trivial field values.
pub fn sample_frames() -> Vec<Frame> {
    let msg = ChatMessage {
        room: "lobby".into(),
        from: "ada".into(),
        text: "héllo".into(),
        action: false,
        timestamp_ms: 1_700_000_000_123,
    };
    let messages: Vec<Message> = vec![
        Hello {
            name: "ada".into(),
            token: Some("t".into()),
            capabilities: Capabilities::ALL,
        }
        .into(),
        Welcome {
            server_name: "srv".into(),
            client_id: 1,
            name: "ada".into(),
            capabilities: Capabilities::CHAT,
            max_payload: 1 << 20,
            motd: "hi".into(),
        }
        .into(),
        Refuse {
            code: ErrorCode::BAD_TOKEN,
            reason: "wrong token".into(),
        }
        .into(),
        Ping { nonce: 7 }.into(),
        Pong { nonce: 7 }.into(),
        Error {
            code: ErrorCode::MALFORMED,
            message: "bad".into(),
        }
        .into(),
        Goodbye {
            reason: "bye".into(),
        }
        .into(),
        Admin {
            token: "t".into(),
            command: "kick".into(),
            argument: "mallory".into(),
        }
        .into(),
        AdminReply {
            ok: true,
            text: "kicked mallory".into(),
        }
        .into(),
        Join {
            room: "lobby".into(),
            password: Some("pw".into()),
        }
        .into(),
        Leave {
            room: "lobby".into(),
        }
        .into(),
        msg.clone().into(),
        PrivateMessage {
            to: "bob".into(),
            from: "ada".into(),
            text: "psst".into(),
            action: true,
            timestamp_ms: 3,
        }
        .into(),
        SetNick { name: "bob".into() }.into(),
        NickChanged {
            old: "a".into(),
            new: "b".into(),
        }
        .into(),
        RosterRequest {
            room: "lobby".into(),
        }
        .into(),
        Roster {
            room: "lobby".into(),
            members: vec!["a".into(), "b".into()],
        }
        .into(),
        Presence {
            room: "lobby".into(),
            name: "a".into(),
            change: PresenceChange::Left,
            reason: "quit".into(),
        }
        .into(),
        Notice {
            room: Some("lobby".into()),
            text: "n".into(),
        }
        .into(),
        HistoryRequest {
            room: "lobby".into(),
            limit: 10,
        }
        .into(),
        History {
            room: "lobby".into(),
            messages: vec![msg.clone(), msg],
        }
        .into(),
        ListRequest {
            path: "a/b".into(),
            recursive: true,
        }
        .into(),
        Listing {
            path: "a".into(),
            entries: vec![DirEntry {
                name: "x".into(),
                is_dir: false,
                size: 5,
                modified: 9,
            }],
            done: true,
        }
        .into(),
        FileRequest {
            name: "x".into(),
            offset: 3,
            prefix_hash: Some([1; 32]),
        }
        .into(),
        FileOffer {
            name: "x".into(),
            size: 10,
            hash: Some([2; 32]),
            offset: 0,
            to: Some("bob".into()),
            from: None,
        }
        .into(),
        FileAccept {
            offset: 4,
            prefix_hash: None,
        }
        .into(),
        FileReject {
            code: ErrorCode::ALREADY_EXISTS,
            reason: "exists".into(),
        }
        .into(),
        FileChunk {
            offset: 8,
            data: Bytes::from_static(b"0123456789"),
        }
        .into(),
        FileComplete {
            size: 10,
            hash: [3; 32],
        }
        .into(),
        FileCancel {
            code: ErrorCode::OTHER,
            reason: "stop".into(),
        }
        .into(),
        AudioAnnounce {
            name: "mic".into(),
            publisher: "ada".into(),
            codec: AudioCodec::OPUS,
            sample_rate: 48_000,
            channels: 1,
            frame_duration_us: 20_000,
        }
        .into(),
        AudioSubscribe.into(),
        AudioUnsubscribe.into(),
        AudioPacket {
            seq: 5,
            timestamp_us: 6,
            data: Bytes::from_static(&[1, 2, 3]),
        }
        .into(),
        AudioEnd.into(),
        VideoAnnounce {
            name: "cam".into(),
            publisher: "ada".into(),
            codec: VideoCodec::MJPEG,
            width: 640,
            height: 480,
            fps_milli: 30_000,
        }
        .into(),
        VideoSubscribe.into(),
        VideoUnsubscribe.into(),
        VideoFrame {
            seq: 1,
            timestamp_us: 2,
            keyframe: true,
            data: Bytes::from_static(&[0xFF, 0xD8]),
        }
        .into(),
        VideoEnd.into(),
        // Added later: last, so the other samples keep their streams.
        Confirm { token: 3 }.into(),
        Confirmed { token: 3 }.into(),
    ];
    messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| Frame::new(i as u32, m))
        .collect()
}

fn text() -> impl Strategy<Value = String> {
    // Any Unicode, including multi-byte characters and control characters:
    // the wire format carries them; validating names is the services' job.
    any::<String>().prop_map(|s| s.chars().take(24).collect())
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn blob() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..512).prop_map(Bytes::from)
}

fn hash() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn chat_message() -> impl Strategy<Value = ChatMessage> {
    (text(), text(), text(), any::<bool>(), any::<u64>()).prop_map(
        |(room, from, text, action, timestamp_ms)| ChatMessage {
            room,
            from,
            text,
            action,
            timestamp_ms,
        },
    )
}

fn control() -> impl Strategy<Value = Message> {
    prop_oneof![
        (text(), opt_text(), any::<u32>()).prop_map(|(name, token, c)| Hello {
            name,
            token,
            capabilities: Capabilities(c)
        }
        .into()),
        (
            text(),
            any::<u32>(),
            text(),
            any::<u32>(),
            any::<u32>(),
            text()
        )
            .prop_map(
                |(server_name, client_id, name, c, max_payload, motd)| Welcome {
                    server_name,
                    client_id,
                    name,
                    capabilities: Capabilities(c),
                    max_payload,
                    motd
                }
                .into()
            ),
        (any::<u16>(), text()).prop_map(|(c, reason)| Refuse {
            code: ErrorCode(c),
            reason
        }
        .into()),
        any::<u64>().prop_map(|nonce| Ping { nonce }.into()),
        any::<u64>().prop_map(|nonce| Pong { nonce }.into()),
        any::<u64>().prop_map(|token| Confirm { token }.into()),
        any::<u64>().prop_map(|token| Confirmed { token }.into()),
        (any::<u16>(), text()).prop_map(|(c, message)| Error {
            code: ErrorCode(c),
            message
        }
        .into()),
        text().prop_map(|reason| Goodbye { reason }.into()),
        (text(), text(), text()).prop_map(|(token, command, argument)| Admin {
            token,
            command,
            argument
        }
        .into()),
        (any::<bool>(), text()).prop_map(|(ok, text)| AdminReply { ok, text }.into()),
    ]
}

fn chat() -> impl Strategy<Value = Message> {
    prop_oneof![
        (text(), opt_text()).prop_map(|(room, password)| Join { room, password }.into()),
        text().prop_map(|room| Leave { room }.into()),
        chat_message().prop_map(Message::from),
        (text(), text(), text(), any::<bool>(), any::<u64>()).prop_map(
            |(to, from, text, action, timestamp_ms)| PrivateMessage {
                to,
                from,
                text,
                action,
                timestamp_ms
            }
            .into()
        ),
        text().prop_map(|name| SetNick { name }.into()),
        (text(), text()).prop_map(|(old, new)| NickChanged { old, new }.into()),
        text().prop_map(|room| RosterRequest { room }.into()),
        (text(), proptest::collection::vec(text(), 0..8)).prop_map(|(room, members)| Roster {
            room,
            members
        }
        .into()),
        (text(), text(), any::<bool>(), text()).prop_map(|(room, name, left, reason)| Presence {
            room,
            name,
            change: if left {
                PresenceChange::Left
            } else {
                PresenceChange::Joined
            },
            reason
        }
        .into()),
        (opt_text(), text()).prop_map(|(room, text)| Notice { room, text }.into()),
        (text(), any::<u16>()).prop_map(|(room, limit)| HistoryRequest { room, limit }.into()),
        (text(), proptest::collection::vec(chat_message(), 0..5))
            .prop_map(|(room, messages)| History { room, messages }.into()),
    ]
}

fn file() -> impl Strategy<Value = Message> {
    let entry = (text(), any::<bool>(), any::<u64>(), any::<i64>()).prop_map(
        |(name, is_dir, size, modified)| DirEntry {
            name,
            is_dir,
            size,
            modified,
        },
    );
    prop_oneof![
        (text(), any::<bool>())
            .prop_map(|(path, recursive)| ListRequest { path, recursive }.into()),
        (
            text(),
            proptest::collection::vec(entry, 0..6),
            any::<bool>()
        )
            .prop_map(|(path, entries, done)| Listing {
                path,
                entries,
                done
            }
            .into()),
        (text(), any::<u64>(), proptest::option::of(hash())).prop_map(
            |(name, offset, prefix_hash)| FileRequest {
                name,
                offset,
                prefix_hash
            }
            .into()
        ),
        (
            text(),
            any::<u64>(),
            proptest::option::of(hash()),
            any::<u64>(),
            opt_text(),
            opt_text()
        )
            .prop_map(|(name, size, hash, offset, to, from)| FileOffer {
                name,
                size,
                hash,
                offset,
                to,
                from
            }
            .into()),
        (any::<u64>(), proptest::option::of(hash())).prop_map(|(offset, prefix_hash)| FileAccept {
            offset,
            prefix_hash
        }
        .into()),
        (any::<u16>(), text()).prop_map(|(c, reason)| FileReject {
            code: ErrorCode(c),
            reason
        }
        .into()),
        (any::<u64>(), blob()).prop_map(|(offset, data)| FileChunk { offset, data }.into()),
        (any::<u64>(), hash()).prop_map(|(size, hash)| FileComplete { size, hash }.into()),
        (any::<u16>(), text()).prop_map(|(c, reason)| FileCancel {
            code: ErrorCode(c),
            reason
        }
        .into()),
    ]
}

fn media() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            text(),
            text(),
            any::<u8>(),
            any::<u32>(),
            any::<u8>(),
            any::<u32>()
        )
            .prop_map(
                |(name, publisher, codec, sample_rate, channels, frame_duration_us)| {
                    AudioAnnounce {
                        name,
                        publisher,
                        codec: AudioCodec(codec),
                        sample_rate,
                        channels,
                        frame_duration_us,
                    }
                    .into()
                }
            ),
        Just(AudioSubscribe.into()),
        Just(AudioUnsubscribe.into()),
        (any::<u32>(), any::<u64>(), blob()).prop_map(|(seq, timestamp_us, data)| AudioPacket {
            seq,
            timestamp_us,
            data
        }
        .into()),
        Just(AudioEnd.into()),
        (
            text(),
            text(),
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            any::<u32>()
        )
            .prop_map(
                |(name, publisher, codec, width, height, fps_milli)| VideoAnnounce {
                    name,
                    publisher,
                    codec: VideoCodec(codec),
                    width,
                    height,
                    fps_milli
                }
                .into()
            ),
        Just(VideoSubscribe.into()),
        Just(VideoUnsubscribe.into()),
        (any::<u32>(), any::<u64>(), any::<bool>(), blob()).prop_map(
            |(seq, timestamp_us, keyframe, data)| VideoFrame {
                seq,
                timestamp_us,
                keyframe,
                data
            }
            .into()
        ),
        Just(VideoEnd.into()),
    ]
}

/// Any message of any kind.
pub fn any_message() -> impl Strategy<Value = Message> {
    prop_oneof![control(), chat(), file(), media()]
}

/// Any frame: any message on any stream.
pub fn any_frame() -> impl Strategy<Value = Frame> {
    (any::<u32>(), any_message()).prop_map(|(stream, message)| Frame { stream, message })
}
