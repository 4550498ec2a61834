//! A chat service driven by a script of connects, disconnects and frames
//! from four clients: it never panics, keeps its invariants and never sends
//! to a connection it does not know (`lanlink_services::fuzzing::chat`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lanlink_services::fuzzing::chat::run(data);
});
