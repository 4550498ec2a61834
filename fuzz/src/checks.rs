// The checks behind the fuzz targets.
//
// This file is shared in two ways: `src/lib.rs` declares it as a module for
// the fuzz targets, and `proto/tests/fuzz_corpus.rs` pulls it in with
// `include!` so the committed corpus is replayed by a plain `cargo test` on
// stable. The test cannot depend on this crate instead (it links libFuzzer,
// and lanlink-proto would appear twice), and a `pub mod fuzzing` in
// lanlink-proto would put test code in the library's API. Hence: no inner
// attributes or `//!` docs here (`include!` rejects them), and nothing but
// `lanlink_proto` and `bytes`, which both users have.

use bytes::BytesMut;
use lanlink_proto::{Frame, FrameDecoder, ProtoError, DEFAULT_MAX_PAYLOAD};

/// A payload limit small enough that short fuzz inputs reach the
/// "frame too large" path.
pub const SMALL_MAX_PAYLOAD: u32 = 64;

/// What one byte stream decoded to.
#[derive(Debug)]
pub struct Decoded<'a> {
    /// Every whole frame, with the exact bytes (header and payload) it was
    /// decoded from.
    pub frames: Vec<(Frame, &'a [u8])>,
    /// Why the stream was rejected; `None` when it ended cleanly or in the
    /// middle of a frame.
    pub error: Option<ProtoError>,
}

/// Pushes `data` into a fresh decoder at once and takes frames until it wants
/// more bytes or rejects the stream.
pub fn decode_stream(data: &[u8], max_payload: u32) -> Decoded<'_> {
    let mut decoder = FrameDecoder::with_max_payload(max_payload);
    decoder.push(data);
    let mut frames = Vec::new();
    let mut start = 0;
    loop {
        match decoder.decode() {
            Ok(Some(frame)) => {
                // Everything not still buffered has been consumed.
                let end = data.len() - decoder.buffered();
                frames.push((frame, &data[start..end]));
                start = end;
            }
            Ok(None) => {
                return Decoded {
                    frames,
                    error: None,
                }
            }
            Err(error) => {
                return Decoded {
                    frames,
                    error: Some(error),
                }
            }
        }
    }
}

/// The same, but the bytes arrive one at a time, as over a slow socket.
fn decode_trickled(data: &[u8]) -> (Vec<Frame>, Option<ProtoError>) {
    // Large frames' buffers from a pool (as a connection's are): the same
    // frames must come out as from the whole stream without one.
    let mut decoder = FrameDecoder::new().with_pool(lanlink_proto::BufferPool::new(2));
    let mut frames = Vec::new();
    for byte in data {
        decoder.push(std::slice::from_ref(byte));
        loop {
            match decoder.decode() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(error) => return (frames, Some(error)),
            }
        }
    }
    (frames, None)
}

/// Decodes `data` as a byte stream; panics if the decoder panics or
/// contradicts itself.
///
/// - Decoding errors are always peer faults, never "caller misuse".
/// - A smaller payload limit can only stop the stream sooner: it yields a
///   prefix of the same frames, and all of them when it does not fail.
/// - Bytes arriving one at a time give the same frames and end the same way
///   as bytes arriving at once. (Only the error's variant is compared: a bad
///   magic seen after one byte rightly reports one byte.)
pub fn check_decode(data: &[u8]) {
    let whole = decode_stream(data, DEFAULT_MAX_PAYLOAD);
    if let Some(error) = &whole.error {
        assert!(error.is_peer_fault(), "decoding reported misuse: {error:?}");
    }

    let small = decode_stream(data, SMALL_MAX_PAYLOAD);
    assert!(
        small.frames.len() <= whole.frames.len()
            && small.frames[..] == whole.frames[..small.frames.len()],
        "a smaller payload limit changed the frames that decode"
    );
    if small.error.is_none() {
        assert_eq!(
            small.frames.len(),
            whole.frames.len(),
            "a smaller limit accepted the stream but stopped sooner"
        );
        assert_eq!(small.error, whole.error);
    }

    let (trickled, trickled_error) = decode_trickled(data);
    let whole_frames: Vec<&Frame> = whole.frames.iter().map(|(f, _)| f).collect();
    let trickled_frames: Vec<&Frame> = trickled.iter().collect();
    assert_eq!(
        trickled_frames, whole_frames,
        "byte-at-a-time decoding gave different frames"
    );
    assert_eq!(
        trickled_error.as_ref().map(std::mem::discriminant),
        whole.error.as_ref().map(std::mem::discriminant),
        "byte-at-a-time decoding ended differently: {trickled_error:?} vs {:?}",
        whole.error
    );
}

/// Decodes `data` as a byte stream and checks that every frame that decodes
/// is canonical: both ways of encoding it give back exactly its input bytes,
/// and those bytes decode to the same frame again.
pub fn check_round_trip(data: &[u8]) {
    for (frame, wire) in decode_stream(data, DEFAULT_MAX_PAYLOAD).frames {
        let encoded = match frame.to_bytes() {
            Ok(encoded) => encoded,
            Err(error) => panic!("decoded {frame:?} does not re-encode: {error}"),
        };
        assert_eq!(
            &encoded[..],
            wire,
            "re-encoding {frame:?} changed its bytes"
        );

        // The transports' vectored-write path: head, then the blob.
        let mut head = BytesMut::new();
        match frame.encode_head(&mut head) {
            Ok(tail) => head.extend_from_slice(tail.map_or(&[][..], |t| &t[..])),
            Err(error) => panic!("decoded {frame:?} does not encode_head: {error}"),
        }
        assert_eq!(&head[..], wire, "encode_head + tail differs from encode");

        let again = decode_stream(&encoded, DEFAULT_MAX_PAYLOAD);
        assert_eq!(again.error, None, "re-encoded {frame:?} does not decode");
        assert_eq!(
            again.frames.len(),
            1,
            "re-encoded {frame:?} is not one frame"
        );
        assert_eq!(
            again.frames[0].0, frame,
            "re-encoded frame decodes differently"
        );
    }
}
