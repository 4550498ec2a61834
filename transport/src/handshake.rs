//! Reading the first frame of a connection under a deadline, shared by the
//! server and client handshakes. Runs before the connection's threads start.

use std::io::{self, Read, Write};
use std::net::{Shutdown as SockShutdown, TcpStream};
use std::time::{Duration, Instant};

use lanlink_proto::{Frame, FrameDecoder, ProtoError};

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
    stream: &mut TcpStream,
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
        let now = Instant::now();
        if now >= deadline || shutdown.is_some_and(crate::Shutdown::is_triggered) {
            return Err(FirstFrameError::Timeout);
        }
        let wait = (deadline - now).min(crate::conn::TICK);
        stream
            .set_read_timeout(Some(wait))
            .map_err(FirstFrameError::Io)?;
        match stream.read(&mut scratch) {
            Ok(0) => return Err(FirstFrameError::Closed),
            Ok(n) => decoder.push(scratch.get(..n).unwrap_or_default()),
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
pub(crate) fn send_and_close(stream: &mut TcpStream, frame: &Frame) {
    let Ok(bytes) = frame.to_bytes() else {
        return;
    };
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(&bytes).is_ok() {
        let _ = stream.shutdown(SockShutdown::Write);
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut sink = [0u8; 4096];
        while Instant::now() < deadline {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
            match stream.read(&mut sink) {
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
