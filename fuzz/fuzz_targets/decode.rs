//! Arbitrary bytes through `FrameDecoder`: decoding must never panic, and the
//! result must not depend on the payload limit or on how the bytes are split.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lanlink_proto_fuzz::check_decode(data));
