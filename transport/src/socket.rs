//! One established connection's byte stream: plain TCP, or TLS over TCP.
//!
//! The reader and writer threads share one socket (client side; on the
//! server one I/O thread does both, non-blocking, and seals through
//! [`Socket::tls_session`], writing the records from rustls's buffer to
//! the socket under the lock: its socket never blocks). With TLS they also share
//! one `rustls` connection, behind a mutex that is **never held across a
//! blocking socket call**: the reader reads raw bytes off the socket without
//! the lock and only takes it to decrypt (and hand the plaintext to the
//! frame decoder, see [`Socket::read_with`]); the writer takes it to encrypt into
//! its own buffer and writes that buffer without it. Holding the lock across
//! I/O would let two peers that both write at full speed (a file upload and
//! its acknowledgements) deadlock each other through full TCP windows.
//!
//! Only the writer thread writes TLS records to the socket, so records leave
//! in the order they were sealed. If decryption ever leaves records to send,
//! the reader asks the writer to flush; rustls in fact holds its answer to a
//! peer's key update until the next application write, which goes out at
//! the latest with the next keepalive ping.
//!
//! rustls' own send-buffer limit is lifted (the writer drains everything it
//! sealed, under the same lock, before writing it out), so what is buffered
//! is bounded by the writer's seal chunk, not by rustls.

use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown as SockShutdown, TcpStream};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Plaintext handed to rustls per lock: bounds the writer's TLS buffer.
const SEAL_CHUNK: usize = 64 * 1024;
/// Raw bytes read off the socket per read.
const RAW_READ: usize = 64 * 1024;

/// How often a blocked read wakes up to check timers and shutdown (and how
/// often a server I/O thread checks its timers).
pub(crate) const TICK: Duration = Duration::from_millis(200);

pub(crate) struct Socket {
    tcp: TcpStream,
    tls: Option<Mutex<rustls::Connection>>,
}

impl Socket {
    pub(crate) fn plain(tcp: TcpStream) -> Socket {
        Socket { tcp, tls: None }
    }

    /// A socket whose TLS handshake has completed.
    pub(crate) fn tls(tcp: TcpStream, mut conn: rustls::Connection) -> Socket {
        // The writer bounds what it seals per call itself.
        conn.set_buffer_limit(None);
        Socket {
            tcp,
            tls: Some(Mutex::new(conn)),
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The TLS session, locked (the server's I/O thread seals with it).
    pub(crate) fn tls_session(&self) -> Option<MutexGuard<'_, rustls::Connection>> {
        self.tls.as_ref().map(lock)
    }

    pub(crate) fn shutdown(&self, how: SockShutdown) -> io::Result<()> {
        self.tcp.shutdown(how)
    }

    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp.set_read_timeout(timeout)
    }

    /// Reads application bytes. `Ok(0)` is an orderly end of stream (TCP FIN
    /// for plain, `close_notify` for TLS); a TLS peer that closes the socket
    /// without `close_notify` gives `UnexpectedEof`. Read timeouts surface as
    /// `WouldBlock`/`TimedOut`, exactly as on a plain socket.
    pub(crate) fn read(&self, state: &mut ReadState, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            return (&self.tcp).read(buf);
        };
        self.read_tls(tls, state, |reader| reader.read(buf))
    }

    /// Reads application bytes as [`read`](Self::read) does, and hands
    /// them to `take` instead of copying them into a buffer: with TLS,
    /// each decrypted record from where rustls holds it (up to
    /// `scratch.len()` bytes in all per call, under the session's lock);
    /// plain TCP reads into `scratch`. A receiver assembling frames saves
    /// a copy of every byte (the plaintext into a scratch buffer, then
    /// into the frame's).
    pub(crate) fn read_with(
        &self,
        state: &mut ReadState,
        scratch: &mut [u8],
        take: &mut dyn FnMut(&[u8]),
    ) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            let n = (&self.tcp).read(scratch)?;
            take(scratch.get(..n).unwrap_or_default());
            return Ok(n);
        };
        let limit = scratch.len().max(1);
        self.read_tls(tls, state, |reader| {
            let mut handed = 0;
            while handed < limit {
                let chunk = match reader.fill_buf() {
                    Ok(chunk) => chunk,
                    // What was handed over counts; the error (no more
                    // yet, or the end) comes again with the next call.
                    Err(_) if handed > 0 => break,
                    Err(e) => return Err(e),
                };
                if chunk.is_empty() {
                    // close_notify: the end, once what came before is read.
                    break;
                }
                let n = chunk.len();
                take(chunk);
                reader.consume(n);
                handed += n;
            }
            Ok(handed)
        })
    }

    /// Decrypts what has arrived and lets `from` take plaintext out of
    /// rustls, reading more raw bytes (without the lock) until it can.
    fn read_tls(
        &self,
        tls: &Mutex<rustls::Connection>,
        state: &mut ReadState,
        mut from: impl FnMut(&mut rustls::Reader<'_>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        loop {
            {
                let mut conn = lock(tls);
                state.feed(&mut conn)?;
                match from(&mut conn.reader()) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if state.eof {
                    // rustls has seen the end and had no more plaintext.
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            state.fill(&self.tcp)?;
        }
    }

    /// Writes all of `buf`. With TLS, `sealed` is the writer's reusable
    /// buffer for the encrypted records.
    pub(crate) fn write_all(&self, buf: &[u8], sealed: &mut Vec<u8>) -> io::Result<()> {
        let Some(tls) = &self.tls else {
            return (&self.tcp).write_all(buf);
        };
        let mut chunks = buf.chunks(SEAL_CHUNK);
        loop {
            sealed.clear();
            let more = {
                let mut conn = lock(tls);
                let chunk = chunks.next();
                if let Some(chunk) = chunk {
                    conn.writer().write_all(chunk)?;
                }
                while conn.wants_write() {
                    conn.write_tls(sealed)?;
                }
                chunk.is_some()
            };
            if !sealed.is_empty() {
                (&self.tcp).write_all(sealed)?;
            }
            if !more {
                return Ok(());
            }
        }
    }

    /// Sends whatever TLS records are waiting (a key update the reader
    /// produced); nothing to do on plain TCP.
    pub(crate) fn flush(&self, sealed: &mut Vec<u8>) -> io::Result<()> {
        self.write_all(&[], sealed)
    }

    /// Ends our direction: `close_notify` (TLS), then a TCP half-close.
    pub(crate) fn close_write(&self, sealed: &mut Vec<u8>) -> io::Result<()> {
        if let Some(tls) = &self.tls {
            lock(tls).send_close_notify();
            self.flush(sealed)?;
        }
        self.tcp.shutdown(SockShutdown::Write)
    }
}

/// The reader's side of a TLS socket: raw bytes read but not yet handed to
/// rustls (which accepts at most one record's worth while its plaintext
/// buffer is full).
pub(crate) struct ReadState {
    raw: Vec<u8>,
    start: usize,
    end: usize,
    pub(crate) eof: bool,
    /// Set when decryption left TLS records to send (a key update answer).
    pub(crate) wants_flush: bool,
}

impl ReadState {
    pub(crate) fn new() -> ReadState {
        ReadState::with_pending(Vec::new())
    }

    /// A state holding raw bytes read during the handshake that rustls has
    /// not seen yet.
    pub(crate) fn with_pending(raw: Vec<u8>) -> ReadState {
        ReadState {
            end: raw.len(),
            raw,
            start: 0,
            eof: false,
            wants_flush: false,
        }
    }

    /// Hands buffered raw bytes to rustls until it has no room.
    pub(crate) fn feed(&mut self, conn: &mut rustls::Connection) -> io::Result<()> {
        while self.start < self.end {
            let mut pending = self.raw.get(self.start..self.end).unwrap_or_default();
            let before = pending.len();
            match conn.read_tls(&mut pending) {
                // close_notify seen: nothing more is read.
                Ok(0) => {
                    self.start = self.end;
                    break;
                }
                Ok(_) => self.start += before - pending.len(),
                // Plaintext buffer full: the caller drains it first.
                Err(e) if e.kind() == io::ErrorKind::Other => break,
                Err(e) => return Err(e),
            }
            process(conn)?;
        }
        if self.eof && self.start == self.end {
            // Tell rustls the stream ended so it can tell a truncation from
            // an orderly close.
            let _ = conn.read_tls(&mut io::empty());
            process(conn)?;
        }
        self.wants_flush |= conn.wants_write();
        Ok(())
    }

    /// Reads more raw bytes off the socket (without any lock held).
    fn fill(&mut self, tcp: &TcpStream) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.raw.len() < RAW_READ {
            // Zeroed by the allocator: pages become resident only as reads
            // fill them, so an idle chat connection costs a page, not 64 KiB.
            let mut raw = vec![0u8; RAW_READ];
            let kept = self.raw.get(self.start..self.end).unwrap_or_default();
            if let Some(head) = raw.get_mut(..kept.len()) {
                head.copy_from_slice(kept);
            }
            self.end = kept.len();
            self.start = 0;
            self.raw = raw;
        }
        if self.end == self.raw.len() {
            // Full of bytes rustls has no room for yet: decrypting them
            // first is the caller's job; never reached while it drains.
            self.raw.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.raw.len() {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "TLS read buffer full",
                ));
            }
        }
        let free = self.raw.get_mut(self.end..).unwrap_or_default();
        let n = (&*tcp).read(free)?;
        if n == 0 {
            self.eof = true;
        }
        self.end += n;
        Ok(())
    }
}

fn process(conn: &mut rustls::Connection) -> io::Result<()> {
    conn.process_new_packets()
        .map(|_| ())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, TlsFailure(e)))
}

/// A TLS error carried inside an `io::Error`.
#[derive(Debug)]
pub(crate) struct TlsFailure(pub(crate) rustls::Error);

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS: {}", self.0)
    }
}

impl std::error::Error for TlsFailure {}

fn lock(m: &Mutex<rustls::Connection>) -> MutexGuard<'_, rustls::Connection> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
