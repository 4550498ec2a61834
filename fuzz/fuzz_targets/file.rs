//! A file service over a fresh share and inbox, driven by a script of
//! connects, disconnects and frames from four clients: it never panics,
//! sends only to connected clients and writes nothing outside the inbox
//! (`lanlink_services::fuzzing::file`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lanlink_services::fuzzing::file::run(data);
});
