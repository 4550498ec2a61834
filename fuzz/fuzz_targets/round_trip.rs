//! Every frame that decodes re-encodes to exactly the bytes it came from, and
//! those bytes decode to the same frame again.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lanlink_proto_fuzz::check_round_trip(data));
