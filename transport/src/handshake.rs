//! Reading the first frame of a connection under a deadline, shared by the
//! server and client handshakes. Runs before the connection's threads start.

use std::io::{self, Read};
use std::net::{Shutdown as SockShutdown, TcpStream};
use std::time::{Duration, Instant};

use lanlink_proto::{Frame, FrameDecoder, ProtoError};

use crate::socket::{ReadState, Socket, TICK};

/// Why no first frame could be read.
pub(crate) enum FirstFrameError {
    Timeout,
    Closed,
    Malformed(ProtoError),
    Io(io::Error),
}

/// Reads until one whole frame has arrived or `deadline` passes. Bytes after
/// that frame stay in `decoder` for the connection's reader.
pub(crate) fn read_first_frame(
    stream: &Socket,
    state: &mut ReadState,
    decoder: &mut FrameDecoder,
    deadline: Instant,
    shutdown: Option<&crate::Shutdown>,
) -> Result<Frame, FirstFrameError> {
    let mut scratch = [0u8; 4096];
    loop {
        match decoder.decode() {
            Ok(Some(frame)) => return Ok(frame),
            Ok(None) => {}
            Err(e) => return Err(FirstFrameError::Malformed(e)),
        }
        let n = read_before(stream.tcp(), deadline, shutdown, || {
            stream.read(state, &mut scratch)
        })
        .map_err(|e| match e {
            // A TLS peer gone without close_notify: closed all the same.
            FirstFrameError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                FirstFrameError::Closed
            }
            other => other,
        })?;
        decoder.push(scratch.get(..n).unwrap_or_default());
    }
}

/// Runs `read` — one blocking read or peek on `tcp` — with the socket's
/// read timeout set to what is left of `deadline` (at most a tick, so a
/// shutdown is noticed), again after every timeout, until it gives bytes
/// (`Ok(n)`, `n > 0`), the peer closes (`Closed`), it fails (`Io`), or the
/// deadline or shutdown comes (`Timeout`). Shared by every read made
/// before a connection's threads start.
pub(crate) fn read_before(
    tcp: &TcpStream,
    deadline: Instant,
    shutdown: Option<&crate::Shutdown>,
    mut read: impl FnMut() -> io::Result<usize>,
) -> Result<usize, FirstFrameError> {
    loop {
        let now = Instant::now();
        if now >= deadline || shutdown.is_some_and(crate::Shutdown::is_triggered) {
            return Err(FirstFrameError::Timeout);
        }
        tcp.set_read_timeout(Some((deadline - now).min(TICK)))
            .map_err(FirstFrameError::Io)?;
        match read() {
            Ok(0) => return Err(FirstFrameError::Closed),
            Ok(n) => return Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(FirstFrameError::Io(e)),
        }
    }
}

/// Writes one frame straight to the socket (no writer thread yet), closes
/// our side, and drains what the peer still sends for a moment so that the
/// close does not turn into a reset that could destroy the frame in flight.
pub(crate) fn send_and_close(stream: &Socket, frame: &Frame) {
    let Ok(bytes) = frame.to_bytes() else {
        return;
    };
    let _ = stream.tcp().set_write_timeout(Some(Duration::from_secs(1)));
    let mut sealed = Vec::new();
    if stream.write_all(&bytes, &mut sealed).is_ok() {
        let _ = stream.close_write(&mut sealed);
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut sink = [0u8; 4096];
        while Instant::now() < deadline {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
            // Raw bytes: whatever the peer sends now is discarded unread.
            match stream.tcp().read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
    }
    let _ = stream.shutdown(SockShutdown::Both);
}
