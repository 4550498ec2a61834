//! A browser's request through the browser server's request path, without
//! a socket: the head read in arbitrary pieces, then the answer (page,
//! JSON, snapshot, MJPEG stream, refusals). Never panics; no header holds
//! a peer's string; lengths add up; names are escaped; MJPEG parts are
//! JPEG images (`lanlink_server::http::fuzz_http_request`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lanlink_server::http::fuzz_http_request(data);
});
