//! Entry points for the fuzz targets in `fuzz/`, compiled only for fuzzing
//! (`cfg(fuzzing)`, set by cargo-fuzz) or with the `fuzzing` feature (the
//! fuzz crate, and this crate's tests that replay the committed seeds):
//! release builds do not ship them.

use std::io::Read;

use crate::socket::ReadState;

/// Feeds `data`, as if a client had sent it, to a TLS server session: the
/// server's handshake loop, then the connection reader's path (the raw-byte
/// buffer, rustls, the frame decoder), until the bytes are used up or
/// something rejects them. For fuzzing: no input may panic or loop.
pub fn fuzz_tls_server_read(data: &[u8]) {
    use std::sync::OnceLock;
    static IDENTITY: OnceLock<Option<crate::ServerIdentity>> = OnceLock::new();
    let Some(identity) = IDENTITY.get_or_init(|| crate::ServerIdentity::generate().ok()) else {
        return;
    };
    let Ok(mut server) = identity.new_connection() else {
        return;
    };
    // The handshake loop's own code, fed in reads of up to 1 KiB (so a
    // handshake split across reads and bytes behind it are both reached);
    // what the server would send goes nowhere.
    let mut rest = data;
    let mut leftover = None;
    while leftover.is_none() && !rest.is_empty() {
        let (read, tail) = rest.split_at(rest.len().min(1024));
        rest = tail;
        match crate::tls::feed_server_handshake(&mut server, read) {
            Ok(Some(after)) => leftover = Some(after),
            Ok(None) => {}
            Err(_) => return,
        }
        let mut sink = Vec::new();
        while server.wants_write() {
            if server.write_tls(&mut sink).is_err() {
                return;
            }
            sink.clear();
        }
    }
    // Then the reader's path: past the handshake for bytes that completed
    // one (which random input rarely does), or else all of the bytes on a
    // fresh session (rustls handshakes through the reader's path too).
    let (conn, pending) = match leftover {
        Some(mut pending) => {
            pending.extend_from_slice(rest);
            (server, pending)
        }
        None => match identity.new_connection() {
            Ok(fresh) => (fresh, data.to_vec()),
            Err(_) => return,
        },
    };
    let mut conn = rustls::Connection::Server(conn);
    let mut state = ReadState::with_pending(pending);
    state.eof = true;
    let mut decoder = lanlink_proto::FrameDecoder::new();
    let mut buf = [0u8; 4096];
    // Bounded: every round either consumes input or ends.
    for _ in 0..=data.len() + 1 {
        if state.feed(&mut conn).is_err() {
            return;
        }
        match conn.reader().read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => decoder.push(buf.get(..n).unwrap_or_default()),
        }
        while let Ok(Some(_)) = decoder.decode() {}
    }
}
