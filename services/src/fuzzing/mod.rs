//! Drivers for the service fuzz targets in `fuzz/` (`chat`, `file`, `media`),
//! kept here so that `services/tests/fuzz_corpus.rs` replays the committed
//! corpus through the very same code on stable. Not part of the API.
//!
//! A fuzz input is a *script*: a sequence of steps on four connection
//! slots. Each step is one op byte (bits 0–1 the step, bits 2–3 the slot,
//! bits 4–7 free flags a driver may read), then its operands:
//!
//! | step | operands | meaning |
//! | --- | --- | --- |
//! | 0 connect | `u8` length, name bytes (lossy UTF-8) | the slot's client finished its handshake under that name |
//! | 1 disconnect | — | the slot's connection closed |
//! | 2 bytes | `u16` LE length, bytes | wire bytes from the slot's client |
//! | 3 tick | `u16` LE milliseconds | the clock moves on |
//!
//! A truncated operand takes what is left. Wire bytes go through one
//! [`FrameDecoder`] per slot, so every frame a service sees came out of the
//! real decoder; a decode error closes that connection, as the transport
//! would. A slot gets a fresh [`ConnId`] whenever its connection ends (ids
//! are never reused, as in the transport), so bytes on a slot that is not
//! connected come from a connection no service knows.
//!
//! [`Script`] writes scripts, for seed inputs.

pub mod chat;
pub mod file;
pub mod media;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use lanlink_proto::{Frame, FrameDecoder, Message, StreamId, DEFAULT_MAX_PAYLOAD, HEADER_LEN};
use lanlink_transport::ConnId;

use crate::{Now, Outgoing};

/// Connection slots a script can drive.
pub const SLOTS: u8 = 4;

/// One thing that happens to the services, in order.
#[derive(Debug)]
pub enum Event {
    /// `conn` completed its handshake as `name`; `flags` are the op byte's
    /// upper four bits.
    Connect {
        /// The new connection.
        conn: ConnId,
        /// The name from its `Hello`.
        name: String,
        /// Free bits for the driver (media: whether the client wants media).
        flags: u8,
    },
    /// `conn` is gone (closed by the peer or after a decode error).
    Disconnect {
        /// The connection that ended.
        conn: ConnId,
    },
    /// A whole frame from `conn`.
    Frame {
        /// The sender.
        conn: ConnId,
        /// What it sent.
        frame: Frame,
    },
    /// The clock moved on.
    Tick(Duration),
}

struct Slot {
    conn: ConnId,
    greeted: bool,
    decoder: FrameDecoder,
}

/// Turns a script into events (see the module docs for the format).
pub fn events(data: &[u8]) -> Vec<Event> {
    // The transport numbers connections from 1.
    let mut next_id = u64::from(SLOTS) + 1;
    let mut slots: Vec<Slot> = (1..=u64::from(SLOTS))
        .map(|i| Slot {
            conn: ConnId(i),
            greeted: false,
            decoder: FrameDecoder::new(),
        })
        .collect();
    // A new connection in a slot: new id, new decoder.
    let mut renew = |slot: &mut Slot| {
        slot.conn = ConnId(next_id);
        next_id += 1;
        slot.greeted = false;
        slot.decoder = FrameDecoder::new();
    };
    let mut events = Vec::new();
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        let Some(slot) = slots.get_mut(usize::from((op >> 2) & 3)) else {
            continue;
        };
        match op & 3 {
            0 => {
                let len = usize::from(take(&mut rest, 1).first().copied().unwrap_or(0));
                let name = String::from_utf8_lossy(take(&mut rest, len)).into_owned();
                if slot.greeted {
                    events.push(Event::Disconnect { conn: slot.conn });
                    renew(slot);
                }
                slot.greeted = true;
                events.push(Event::Connect {
                    conn: slot.conn,
                    name,
                    flags: op >> 4,
                });
            }
            1 => {
                events.push(Event::Disconnect { conn: slot.conn });
                renew(slot);
            }
            2 => {
                let len = usize::from(take_u16(&mut rest));
                slot.decoder.push(take(&mut rest, len));
                loop {
                    match slot.decoder.decode() {
                        Ok(Some(frame)) => events.push(Event::Frame {
                            conn: slot.conn,
                            frame,
                        }),
                        Ok(None) => break,
                        Err(_) => {
                            events.push(Event::Disconnect { conn: slot.conn });
                            renew(slot);
                            break;
                        }
                    }
                }
            }
            _ => events.push(Event::Tick(Duration::from_millis(
                take_u16(&mut rest).into(),
            ))),
        }
    }
    events
}

/// Splits off up to `n` bytes.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, tail) = rest.split_at(n.min(rest.len()));
    *rest = tail;
    head
}

fn take_u16(rest: &mut &[u8]) -> u16 {
    match take(rest, 2) {
        [lo, hi] => u16::from_le_bytes([*lo, *hi]),
        [lo] => u16::from(*lo),
        _ => 0,
    }
}

/// Writes scripts, for seed inputs.
#[derive(Debug, Default)]
pub struct Script {
    bytes: Vec<u8>,
}

impl Script {
    /// An empty script.
    pub fn new() -> Script {
        Script::default()
    }

    fn op(&mut self, step: u8, slot: u8, flags: u8) -> &mut Script {
        self.bytes.push(step | (slot & 3) << 2 | flags << 4);
        self
    }

    /// Slot `slot` connects as `name` (at most 255 bytes) with `flags`
    /// (four bits).
    pub fn connect(&mut self, slot: u8, name: &str, flags: u8) -> &mut Script {
        let name = name.as_bytes();
        let len = name.len().min(255);
        self.op(0, slot, flags);
        self.bytes.push(len as u8);
        self.bytes.extend_from_slice(&name[..len]);
        self
    }

    /// Slot `slot` disconnects.
    pub fn disconnect(&mut self, slot: u8) -> &mut Script {
        self.op(1, slot, 0)
    }

    /// Slot `slot` sends raw bytes (in pieces of at most 65,535).
    pub fn bytes(&mut self, slot: u8, data: &[u8]) -> &mut Script {
        for piece in data.chunks(usize::from(u16::MAX)) {
            self.op(2, slot, 0);
            self.bytes
                .extend_from_slice(&(piece.len() as u16).to_le_bytes());
            self.bytes.extend_from_slice(piece);
        }
        self
    }

    /// Slot `slot` sends `message` on `stream`.
    ///
    /// # Panics
    /// If the frame does not encode (a seed-writing mistake).
    pub fn frame(
        &mut self,
        slot: u8,
        stream: StreamId,
        message: impl Into<Message>,
    ) -> &mut Script {
        let mut buf = BytesMut::new();
        Frame::new(stream, message)
            .encode(&mut buf)
            .expect("seed frames encode");
        self.bytes(slot, &buf)
    }

    /// The clock moves on by `ms`.
    pub fn tick(&mut self, ms: u16) -> &mut Script {
        self.op(3, 0, 0);
        self.bytes.extend_from_slice(&ms.to_le_bytes());
        self
    }

    /// The script's bytes.
    pub fn finish(&self) -> Vec<u8> {
        self.bytes.clone()
    }
}

/// A clock that starts now and moves only on [`Event::Tick`].
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    elapsed: Duration,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            start: Instant::now(),
            elapsed: Duration::ZERO,
        }
    }
}

impl Clock {
    /// Moves the clock on.
    pub fn advance(&mut self, by: Duration) {
        self.elapsed += by;
    }

    /// The time now.
    pub fn now(&self) -> Now {
        Now {
            instant: self.start + self.elapsed,
            unix_ms: 1_700_000_000_000 + self.elapsed.as_millis() as u64,
        }
    }
}

/// What a run did, so the replay test can tell a seed that exercises a
/// service from one that stopped at the decoder.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Connections the service accepted.
    pub connects: usize,
    /// Frames handed to the service.
    pub frames: usize,
    /// Frames the service wanted sent.
    pub sent: usize,
}

/// Checks what a service wants sent: every frame goes to a connection in
/// `connected`, and encodes into a frame a client's default decoder takes.
///
/// # Panics
/// On a frame for an unknown connection or one that does not encode.
pub fn check_sent(service: &str, sent: &[Outgoing], connected: &BTreeMap<ConnId, String>) {
    for o in sent {
        assert!(
            connected.contains_key(&o.to),
            "{service} sent {:?} to {}, which is not connected",
            o.frame.kind(),
            o.to
        );
        check_encodes(service, o);
    }
}

/// Checks that a frame a service wants sent encodes within the default
/// payload limit (the server would otherwise drop it, or the client reject
/// it).
///
/// # Panics
/// If it does not.
pub fn check_encodes(service: &str, o: &Outgoing) {
    let bytes = match o.frame.to_bytes() {
        Ok(bytes) => bytes,
        Err(e) => panic!(
            "{service} wants to send a {:?} that does not encode: {e}",
            o.frame.kind()
        ),
    };
    let payload = bytes.len() - HEADER_LEN;
    assert!(
        payload <= DEFAULT_MAX_PAYLOAD as usize,
        "{service} wants to send a {:?} of {payload} bytes",
        o.frame.kind()
    );
}
