//! The media relay driven by a script of connects, disconnects and frames
//! from four clients: it never panics, sends only to connected clients and
//! keeps stream names unique (`lanlink_services::fuzzing::media`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lanlink_services::fuzzing::media::run(data);
});
