//! What a client makes of a hostile server's frames: file transfers into a
//! folder (nothing written outside it), the audio mixer (never out of
//! range), the session's event routing; never a panic
//! (`lanlink_proto_fuzz::client`, replayed by `apps/tests/fuzz_client.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lanlink_proto_fuzz::client::run(data);
});
