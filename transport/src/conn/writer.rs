//! The client's writer thread: drains a connection's queues into its
//! socket.

use std::io;

use bytes::BytesMut;
use crossbeam_channel::select_biased;

use super::{CloseReason, ConnHandle, EncodedFrame, Outbound, WriterQueues};
use crate::socket::Socket;

/// Batches up to this many bytes of small frames into one `write`.
const WRITE_BATCH: usize = 256 * 1024;
/// Trailing data at least this long is written straight from its buffer.
const DIRECT_WRITE: usize = 16 * 1024;

/// The writer thread: drains the queues into the socket until told to close
/// or the socket fails.
pub(crate) fn run_writer(handle: ConnHandle, queues: WriterQueues) {
    let shared = &handle.shared;
    // Reader and writer share one socket (one file descriptor per client).
    let stream = &shared.stream;
    let mut sealed = Vec::new();
    let mut out = Out {
        stream,
        sealed: &mut sealed,
    };
    let mut batch = BytesMut::with_capacity(64 * 1024);
    let result = (|| -> io::Result<()> {
        loop {
            let first = select_biased! {
                recv(queues.reliable) -> m => match m {
                    Ok(m) => m,
                    Err(_) => return Ok(()),
                },
                recv(queues.media) -> f => match f {
                    Ok(f) => Outbound::Data(f),
                    Err(_) => return Ok(()),
                },
                recv(queues.stop) -> _ => return Ok(()),
            };
            let mut next = Some(first);
            while let Some(item) = next.take() {
                match item {
                    Outbound::Data(frame) => {
                        shared.dequeued(frame.cost());
                        append(&mut out, &mut batch, frame)?;
                    }
                    Outbound::Close(last) => {
                        append(&mut out, &mut batch, last)?;
                        out.write_all(&batch)?;
                        // Half-close: the peer sees EOF after our last frame;
                        // the reader keeps draining until the peer closes too.
                        stream.close_write(out.sealed)?;
                        return Ok(());
                    }
                    Outbound::Flush => stream.flush(out.sealed)?,
                }
                if batch.len() < WRITE_BATCH {
                    next = queues
                        .reliable
                        .try_recv()
                        .ok()
                        .or_else(|| queues.media.try_recv().ok().map(Outbound::Data));
                }
            }
            if !batch.is_empty() {
                out.write_all(&batch)?;
                batch.clear();
            }
        }
    })();
    if let Err(e) = result {
        shared.abort(CloseReason::Io(e.to_string()));
    }
    drop(queues.done);
}

/// The writer's socket and its buffer for sealed TLS records.
struct Out<'a> {
    stream: &'a Socket,
    sealed: &'a mut Vec<u8>,
}

impl Out<'_> {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes, self.sealed)
    }
}

fn append(out: &mut Out<'_>, batch: &mut BytesMut, frame: EncodedFrame) -> io::Result<()> {
    batch.extend_from_slice(&frame.head);
    if let Some(tail) = frame.tail {
        if tail.len() >= DIRECT_WRITE {
            out.write_all(batch)?;
            batch.clear();
            out.write_all(&tail)?;
        } else {
            batch.extend_from_slice(&tail);
        }
    }
    Ok(())
}
