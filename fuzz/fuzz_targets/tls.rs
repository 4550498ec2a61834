//! Bytes a client sends to a TLS server, through the server's TLS session
//! and on through the connection reader's path (its raw buffer, rustls, the
//! frame decoder): no input may panic
//! (`lanlink_transport::fuzz_tls_server_read`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lanlink_transport::fuzz_tls_server_read(data);
});
