//! Property tests over every message type: round trips, arbitrary splits of a
//! byte stream, and malformed input (every truncation, every single-byte
//! mutation) that must give `Ok(None)` or a clear error, never a panic.

mod common;

use std::collections::BTreeSet;

use bytes::BytesMut;
use lanlink_proto::{BufferPool, Frame, FrameDecoder, Kind, ProtoError, HEADER_LEN};
use proptest::prelude::*;

use common::{any_frame, sample_frames};

/// Decodes everything `bytes` holds, in one push.
fn decode_all(bytes: &[u8], max_payload: u32) -> Result<Vec<Frame>, ProtoError> {
    let mut d = FrameDecoder::with_max_payload(max_payload);
    d.push(bytes);
    let mut out = Vec::new();
    while let Some(f) = d.decode()? {
        out.push(f);
    }
    Ok(out)
}

#[test]
fn samples_cover_every_kind() {
    let seen: BTreeSet<Kind> = sample_frames().iter().map(Frame::kind).collect();
    let all: BTreeSet<Kind> = Kind::ALL.iter().copied().collect();
    assert_eq!(seen, all);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_message_round_trips(frame in any_frame()) {
        let bytes = frame.to_bytes().unwrap();
        let back = decode_all(&bytes, u32::MAX).unwrap();
        prop_assert_eq!(&back, &vec![frame.clone()]);
        // Canonical: re-encoding gives the very same bytes.
        prop_assert_eq!(back[0].to_bytes().unwrap(), bytes.clone());
        // The vectored path writes the same bytes as the plain one.
        let mut head = BytesMut::new();
        let tail = frame.encode_head(&mut head).unwrap();
        if let Some(tail) = tail {
            head.extend_from_slice(tail);
        }
        prop_assert_eq!(&head[..], &bytes[..]);
    }

    #[test]
    fn any_split_decodes_the_same(
        frames in proptest::collection::vec(any_frame(), 1..6),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut wire = BytesMut::new();
        for f in &frames {
            f.encode(&mut wire).unwrap();
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.push(0);
        points.push(wire.len());
        points.sort_unstable();
        // Without a pool, and with one whose buffers go back as each
        // frame is compared and dropped.
        let pool = BufferPool::new(2);
        for pooled in [false, true] {
            let mut d = FrameDecoder::with_max_payload(u32::MAX);
            if pooled {
                d = d.with_pool(pool.clone());
            }
            let (mut out, mut count) = (Vec::new(), 0);
            for pair in points.windows(2) {
                d.push(&wire[pair[0]..pair[1]]);
                while let Some(f) = d.decode().unwrap() {
                    prop_assert_eq!(Some(&f), frames.get(count));
                    count += 1;
                    if !pooled {
                        out.push(f);
                    }
                }
            }
            prop_assert_eq!(count, frames.len());
            if !pooled {
                prop_assert_eq!(&out, &frames);
            }
            prop_assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn random_mutations_never_panic(
        frame in any_frame(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = frame.to_bytes().unwrap().to_vec();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        check_decodes_or_fails_cleanly(&bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        check_decodes_or_fails_cleanly(&bytes);
    }
}

/// Whatever `bytes` is, decoding returns frames, `Ok(None)` or an error with
/// a message, and every frame it returns re-encodes to the bytes it came from.
fn check_decodes_or_fails_cleanly(bytes: &[u8]) {
    let mut d = FrameDecoder::new();
    d.push(bytes);
    let mut consumed = 0;
    loop {
        match d.decode() {
            Ok(Some(f)) => {
                let re = f.to_bytes().expect("a decoded frame re-encodes");
                assert_eq!(&bytes[consumed..consumed + re.len()], &re[..]);
                consumed += re.len();
            }
            Ok(None) => break,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                assert!(e.is_peer_fault());
                break;
            }
        }
    }
}

#[test]
fn every_truncation_needs_more() {
    for frame in sample_frames() {
        let bytes = frame.to_bytes().unwrap();
        for n in 0..bytes.len() {
            assert_eq!(
                decode_all(&bytes[..n], u32::MAX),
                Ok(vec![]),
                "{:?} cut at {n}",
                frame.kind()
            );
        }
    }
}

#[test]
fn every_single_byte_mutation_is_clean() {
    for frame in sample_frames() {
        let bytes = frame.to_bytes().unwrap().to_vec();
        for i in 0..bytes.len() {
            for v in 0..=255u8 {
                let mut m = bytes.clone();
                m[i] = v;
                check_decodes_or_fails_cleanly(&m);
            }
        }
    }
}

#[test]
fn payload_truncated_under_a_shorter_length_names_the_field() {
    // Shrink the header's length by one: the payload now ends inside its last
    // field, or the last field is short; either way the error says which.
    for frame in sample_frames() {
        let mut bytes = frame.to_bytes().unwrap().to_vec();
        let len = u32::from_be_bytes(bytes[10..14].try_into().unwrap());
        if len == 0 {
            continue;
        }
        bytes[10..14].copy_from_slice(&(len - 1).to_be_bytes());
        bytes.pop();
        match decode_all(&bytes, u32::MAX) {
            // A frame whose last field is a blob just gets a shorter blob.
            Ok(frames) => assert!(
                frame.message.tail().is_some(),
                "{:?}: {frames:?}",
                frame.kind()
            ),
            Err(ProtoError::Truncated { kind, field, .. }) => {
                assert_eq!(kind, frame.kind());
                assert!(!field.is_empty());
            }
            Err(e) => panic!("{:?}: unexpected {e}", frame.kind()),
        }
    }
}

#[test]
fn trailing_bytes_and_invalid_values_are_rejected() {
    let frame = Frame::control(lanlink_proto::control::Ping { nonce: 1 });
    let mut bytes = frame.to_bytes().unwrap().to_vec();
    bytes.push(0);
    bytes[13] += 1;
    assert_eq!(
        decode_all(&bytes, u32::MAX),
        Err(ProtoError::TrailingBytes {
            kind: Kind::Ping,
            extra: 1
        })
    );

    let frame = Frame::control(lanlink_proto::file::ListRequest {
        path: "a".into(),
        recursive: true,
    });
    let mut bytes = frame.to_bytes().unwrap().to_vec();
    *bytes.last_mut().unwrap() = 2;
    assert!(matches!(
        decode_all(&bytes, u32::MAX),
        Err(ProtoError::InvalidValue {
            kind: Kind::ListRequest,
            field: "recursive",
            value: 2
        })
    ));
}

#[test]
fn invalid_utf8_names_the_field() {
    let frame = Frame::control(lanlink_proto::chat::Leave { room: "ab".into() });
    let mut bytes = frame.to_bytes().unwrap().to_vec();
    bytes[HEADER_LEN + 3] = 0xFF;
    let err = decode_all(&bytes, u32::MAX).unwrap_err();
    assert_eq!(
        err,
        ProtoError::InvalidUtf8 {
            kind: Kind::Leave,
            field: "room",
            valid_up_to: 1
        }
    );
    assert!(err.to_string().contains("room"));
}

#[test]
fn caller_misuse_is_not_a_peer_fault_and_leaves_the_buffer_alone() {
    let long = "x".repeat(70_000);
    let frame = Frame::control(lanlink_proto::chat::Leave { room: long });
    let mut buf = BytesMut::from(&b"keep"[..]);
    let err = frame.encode(&mut buf).unwrap_err();
    assert!(matches!(
        err,
        ProtoError::FieldTooLong {
            field: "room",
            len: 70_000,
            max: 65_535
        }
    ));
    assert!(!err.is_peer_fault());
    assert_eq!(&buf[..], b"keep");
}
