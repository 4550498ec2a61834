//! Files offered to users on other servers: the frames of a relayed
//! transfer (the offer, the answers, the chunks, the end) cross as core
//! NATS messages on `lanlink.file.<receiving server id>`, on the media
//! connection (a slow-consumer cut there drops media and file frames,
//! never chat).
//!
//! Each server's file service sees another server as a connection of its
//! own (`lanlink_services::file::FIRST_OTHER_SERVER` up): the transfer is
//! relayed there as between two local users, with the same checks, and
//! the same end-to-end flow control (the receiver's acknowledgements
//! travel back to the sender, which never has more than its window in
//! flight). A transfer is named by the server that started it (the
//! sender's) and that server's even stream id for it.
//!
//! A message is `[len][sender id][len][origin id][frame]`: the server that
//! sent it, the server that started the transfer (one of the two), and one
//! lanlink frame of a file-class message on that server's stream id for
//! the transfer, decoded with a bounded decoder. It crosses in parts no
//! longer than the NATS server takes in one message (a 256 KiB chunk
//! needs a `max_payload` of more than 256 KiB otherwise), each part
//! `[len][sender id][part head][piece]`, put back together per sending
//! server ([`Parts`]). A message lost (NATS down, a full queue, a part
//! missing) breaks its transfer: one that cannot be published, or that
//! arrives whole when the hub's queue is full, ends the local side at
//! once, as if the other side had cancelled ([`Broken`]); the users resume
//! it like any broken transfer. A part lost in NATS cannot be told from
//! the others (the part does not say its transfer): that transfer ends at
//! its timeout.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use lanlink_proto::file::FileCancel;
use lanlink_proto::{ErrorCode, Frame, FrameDecoder, Message, StreamId};

use super::media::{split, Joiner};
use super::valid_server_id;

/// The subject prefix of file frames:
/// `lanlink.file.<receiving server id>.<sending server id>`.
pub const FILE_SUBJECTS: &str = "lanlink.file";

/// File frames waiting for NATS; beyond, new ones are dropped (their
/// transfer breaks).
pub const FILES_OUT: usize = 256;

/// File frames from NATS waiting for the hub; beyond, new ones are
/// dropped.
pub const FILES_IN: usize = 256;

/// The subject of the file frames from `from` to `server`.
pub fn file_subject(server: &str, from: &str) -> String {
    format!("{FILE_SUBJECTS}.{server}.{from}")
}

/// The subjects of the file frames to `server` from any server.
pub fn file_subjects(server: &str) -> String {
    format!("{FILE_SUBJECTS}.{server}.*")
}

/// A file frame for another server, encoded.
#[derive(Debug, Clone)]
pub struct OutFile {
    /// The receiving server.
    pub to: String,
    /// The message's body.
    pub body: Bytes,
    /// Whether this server started the transfer.
    pub started_here: bool,
    /// The starting server's stream id for the transfer.
    pub stream: StreamId,
}

impl OutFile {
    /// What the hub is told when this frame cannot be sent: the other
    /// side's cancel, so that the local user hears at once that the
    /// transfer broke (and resumes it).
    pub fn broken(&self) -> InFile {
        InFile {
            server: self.to.clone(),
            started_here: self.started_here,
            stream: self.stream,
            message: Message::FileCancel(FileCancel {
                code: ErrorCode::OTHER,
                reason: "the other server could not be reached; send again to resume".into(),
            }),
        }
    }

    /// The NATS messages that carry it from `own`, none longer than
    /// `most` bytes, as file frame number `number` of this server.
    pub(crate) fn parts(&self, own: &str, number: u32, most: usize) -> Vec<Bytes> {
        let Ok(len) = u8::try_from(own.len()) else {
            return Vec::new();
        };
        split(number, &self.body, most.saturating_sub(1 + own.len()))
            .into_iter()
            .map(|part| {
                let mut body = BytesMut::with_capacity(1 + own.len() + part.len());
                body.put_u8(len);
                body.put_slice(own.as_bytes());
                body.put_slice(&part);
                body.freeze()
            })
            .collect()
    }
}

/// The most sending servers whose file frames are put back together at
/// once; a new one past it starts over (the frames in parts are lost and
/// their transfers break).
const MAX_SENDERS: usize = 64;

/// The most bytes of frames in parts held at once, from all senders (a
/// few 256 KiB chunks each; sender ids are not authenticated, so their
/// number alone does not bound it): past it the others' unfinished
/// frames are let go (their transfers break and resume).
const MAX_HELD_BYTES: usize = 16 * 1024 * 1024;

/// Puts file frames back together from their parts, per sending server
/// (NATS keeps each publisher's order on a subject, not the order between
/// publishers).
pub(crate) struct Parts {
    max: usize,
    joiners: HashMap<String, Joiner>,
}

impl Parts {
    /// For frames of at most `max_payload` bytes.
    pub(crate) fn new(max_payload: u32) -> Parts {
        Parts {
            // The frame, its header and the two ids in front of it.
            max: max_payload as usize + 64 + 2 * 256,
            joiners: HashMap::new(),
        }
    }

    /// Takes one NATS message that came on `from`'s subject; returns a
    /// whole file frame's body once its last part is in.
    pub(crate) fn push(&mut self, from: &str, message: &[u8]) -> Option<Vec<u8>> {
        let (sender, part) = take_id(message)?;
        if !valid_server_id(sender) || sender != from {
            return None;
        }
        if !self.joiners.contains_key(sender) && self.joiners.len() >= MAX_SENDERS {
            self.joiners.clear();
        }
        let max = self.max;
        let whole = self
            .joiners
            .entry(sender.to_owned())
            .or_insert_with(|| Joiner::new(max))
            .push(part);
        if self.joiners.values().map(Joiner::held).sum::<usize>() > MAX_HELD_BYTES {
            self.joiners.retain(|id, _| id == sender);
        }
        whole
    }
}

/// A file frame from another server, checked.
#[derive(Debug, Clone)]
pub struct InFile {
    /// The server that sent it.
    pub server: String,
    /// Whether this server started the transfer (else `server` did).
    pub started_here: bool,
    /// The starting server's (even) stream id for the transfer.
    pub stream: StreamId,
    /// A file-class message.
    pub message: Message,
}

impl InFile {
    /// This frame's transfer broke here (the hub's queue had no room for
    /// the frame): the cancel that tells the local side at once, as if
    /// the other side had cancelled.
    pub fn lost(&self) -> InFile {
        InFile {
            server: self.server.clone(),
            started_here: self.started_here,
            stream: self.stream,
            message: Message::FileCancel(FileCancel {
                code: ErrorCode::OTHER,
                reason: "a part of the transfer was lost between servers; send again to resume"
                    .into(),
            }),
        }
    }
}

/// The most broken transfers whose cancels wait for room in the hub's
/// queue; past it the oldest is let go (its transfer ends at its timeout,
/// as before there was this list).
const MAX_BROKEN: usize = 64;

/// The cancels of relayed transfers that broke here (a frame lost to a
/// full queue, a publish that failed) while the hub's queue had no room
/// for them either: told once it has, each transfer once.
#[derive(Debug, Default)]
pub(crate) struct Broken {
    waiting: std::collections::VecDeque<InFile>,
}

impl Broken {
    /// Tells the hub `cancel` now, or as soon as [`flush`](Self::flush)
    /// finds room.
    pub(crate) fn tell(&mut self, cancel: InFile, hub: &crossbeam_channel::Sender<InFile>) {
        self.flush(hub);
        let same = |w: &InFile| {
            (w.server.as_str(), w.started_here, w.stream)
                == (cancel.server.as_str(), cancel.started_here, cancel.stream)
        };
        if self.waiting.iter().any(same) {
            return;
        }
        if self.waiting.is_empty() {
            if let Err(crossbeam_channel::TrySendError::Full(back)) = hub.try_send(cancel) {
                self.waiting.push_back(back);
            }
            return;
        }
        if self.waiting.len() >= MAX_BROKEN {
            self.waiting.pop_front();
        }
        self.waiting.push_back(cancel);
    }

    /// Hands the hub the waiting cancels it has room for, oldest first.
    pub(crate) fn flush(&mut self, hub: &crossbeam_channel::Sender<InFile>) {
        while let Some(cancel) = self.waiting.pop_front() {
            match hub.try_send(cancel) {
                Ok(()) => {}
                Err(crossbeam_channel::TrySendError::Full(back)) => {
                    self.waiting.push_front(back);
                    return;
                }
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                    self.waiting.clear();
                    return;
                }
            }
        }
    }
}

/// The body of a file frame from `own` to another server, for a transfer
/// `started_by` (`own` or the receiver) on its stream `stream`.
pub(crate) fn encode(
    own: &str,
    started_by: &str,
    stream: StreamId,
    message: Message,
) -> Option<Bytes> {
    let frame = Frame::new(stream, message).to_bytes().ok()?;
    let (own_len, by_len) = (
        u8::try_from(own.len()).ok()?,
        u8::try_from(started_by.len()).ok()?,
    );
    let mut body = BytesMut::with_capacity(2 + own.len() + started_by.len() + frame.len());
    body.put_u8(own_len);
    body.put_slice(own.as_bytes());
    body.put_u8(by_len);
    body.put_slice(started_by.as_bytes());
    body.put_slice(&frame);
    Some(body.freeze())
}

/// A file frame that arrived for `own` on `from`'s subject: `None` unless
/// its sender is `from`, a valid other server, the transfer was started by
/// one of the two, on an even stream, and the frame is one whole
/// file-class frame within `max_payload`.
pub(crate) fn decode(own: &str, from: &str, body: &[u8], max_payload: u32) -> Option<InFile> {
    let (sender, rest) = take_id(body)?;
    let (started_by, rest) = take_id(rest)?;
    if !valid_server_id(sender)
        || sender == own
        || sender != from
        || (started_by != own && started_by != sender)
    {
        return None;
    }
    let mut decoder = FrameDecoder::with_max_payload(max_payload);
    decoder.push(rest);
    let frame = decoder.decode().ok()??;
    if decoder.buffered() != 0 || frame.stream == 0 || frame.stream % 2 != 0 {
        return None;
    }
    let file_class = matches!(
        frame.message,
        Message::FileOffer(_)
            | Message::FileAccept(_)
            | Message::FileChunk(_)
            | Message::FileComplete(_)
            | Message::FileReject(_)
            | Message::FileCancel(_)
    );
    file_class.then(|| InFile {
        server: sender.to_owned(),
        started_here: started_by == own,
        stream: frame.stream,
        message: frame.message,
    })
}

/// A length-prefixed server id at the front of `body`, and the rest.
fn take_id(body: &[u8]) -> Option<(&str, &[u8])> {
    let (len, rest) = body.split_first()?;
    let id = rest.get(..usize::from(*len))?;
    Some((
        std::str::from_utf8(id).ok()?,
        rest.get(usize::from(*len)..)?,
    ))
}

#[cfg(test)]
mod tests {
    use lanlink_proto::file::{FileAccept, FileChunk};

    use super::*;

    fn out(body: Bytes) -> OutFile {
        OutFile {
            to: "c".into(),
            body,
            started_here: true,
            stream: 4,
        }
    }

    #[test]
    fn a_file_frame_crosses_in_parts_and_senders_do_not_mix() {
        let chunk = Message::FileChunk(FileChunk {
            offset: 0,
            data: (0..300_000u32).map(|i| i as u8).collect::<Vec<u8>>().into(),
        });
        let from_a = out(encode("a", "a", 4, chunk.clone()).unwrap());
        let from_b = out(encode("b", "b", 6, chunk.clone()).unwrap());
        let (pa, pb) = (
            from_a.parts("a", 1, 64 * 1024),
            from_b.parts("b", 1, 64 * 1024),
        );
        assert!(pa.len() == 5 && pa.iter().all(|p| p.len() <= 64 * 1024));
        // Two senders' parts interleaved arrive whole, each.
        let mut parts = Parts::new(1 << 20);
        let mut whole = Vec::new();
        for (a, b) in pa.iter().zip(&pb) {
            whole.extend(parts.push("a", a));
            whole.extend(parts.push("b", b));
        }
        assert_eq!(whole, vec![from_a.body.to_vec(), from_b.body.to_vec()]);
        let got = decode("c", "a", &whole[0], 1 << 20).unwrap();
        // Parts or frames on another server's subject are not taken.
        assert!(decode("c", "b", &whole[0], 1 << 20).is_none());
        let mut forged = Parts::new(1 << 20);
        assert!(pa.iter().all(|p| forged.push("m", p).is_none()));
        assert_eq!((got.server.as_str(), got.stream), ("a", 4));
        // A part lost: that frame is dropped, the next one arrives.
        let next = from_a.parts("a", 2, 64 * 1024);
        assert!(pa.iter().skip(1).all(|p| parts.push("a", p).is_none()));
        let again: Vec<_> = next.iter().filter_map(|p| parts.push("a", p)).collect();
        assert_eq!(again, vec![from_a.body.to_vec()]);
        // Many senders' unfinished frames: bounded in bytes.
        let mut many = Parts::new(1 << 20);
        for i in 0..100u32 {
            let id = format!("s{i}");
            let first = out(encode(&id, &id, 4, chunk.clone()).unwrap()).parts(&id, 1, 64 * 1024);
            assert!(many.push(&id, &first[0]).is_none());
        }
        assert!(many.joiners.values().map(Joiner::held).sum::<usize>() <= MAX_HELD_BYTES);
        // Too large for what this server takes: dropped.
        let mut small = Parts::new(1024);
        assert!(from_a
            .parts("a", 3, 1 << 20)
            .iter()
            .all(|p| small.push("a", p).is_none()));
        // The cancel the hub hears when a frame cannot be sent.
        let broken = from_a.broken();
        assert!(matches!(broken.message, Message::FileCancel(_)));
        assert_eq!(
            (broken.server.as_str(), broken.started_here, broken.stream),
            ("c", true, 4)
        );
    }

    #[test]
    fn file_frames_round_trip_and_hostile_ones_are_refused() {
        let accept = Message::FileAccept(FileAccept {
            offset: 7,
            prefix_hash: None,
        });
        let body = encode("c", "a", 4, accept.clone()).unwrap();
        let got = decode("a", "c", &body, 1 << 20).unwrap();
        assert_eq!(
            (got.server.as_str(), got.started_here, got.stream),
            ("c", true, 4)
        );
        assert_eq!(got.message, accept);
        // From itself, started by a third server, an odd stream, not a
        // file frame, trailing bytes, too big, cut short: all refused.
        assert!(decode("c", "c", &body, 1 << 20).is_none());
        // On another server's subject: refused.
        assert!(decode("a", "m", &body, 1 << 20).is_none());
        assert!(decode(
            "a",
            "c",
            &encode("c", "b", 4, accept.clone()).unwrap(),
            1 << 20
        )
        .is_none());
        assert!(decode(
            "a",
            "c",
            &encode("c", "a", 5, accept.clone()).unwrap(),
            1 << 20
        )
        .is_none());
        let ping = Message::Ping(lanlink_proto::control::Ping { nonce: 1 });
        assert!(decode("a", "c", &encode("c", "a", 4, ping).unwrap(), 1 << 20).is_none());
        let mut longer = body.to_vec();
        longer.push(0);
        assert!(decode("a", "c", &longer, 1 << 20).is_none());
        let chunk = Message::FileChunk(FileChunk {
            offset: 0,
            data: vec![1; 4096].into(),
        });
        assert!(decode("a", "c", &encode("c", "a", 4, chunk).unwrap(), 1024).is_none());
        for cut in 0..body.len() {
            assert!(decode("a", "c", &body[..cut], 1 << 20).is_none(), "{cut}");
        }
        assert!(decode(
            "a",
            "not a server",
            &encode("not a server", "a", 4, accept).unwrap(),
            1 << 20
        )
        .is_none());
    }

    /// A transfer that broke while the hub's queue was full is told once
    /// there is room, once per transfer, and the list is bounded.
    #[test]
    fn broken_transfers_are_told_once_there_is_room() {
        let (hub, from_hub) = crossbeam_channel::bounded(1);
        let frame = |stream: StreamId| InFile {
            server: "b".into(),
            started_here: false,
            stream,
            message: Message::FileChunk(FileChunk {
                offset: 0,
                data: Bytes::from_static(b"x"),
            }),
        };
        let mut broken = Broken::default();
        hub.send(frame(2)).unwrap();
        // The queue is full: frames of 4 are lost, its cancel waits (once).
        broken.tell(frame(4).lost(), &hub);
        broken.tell(frame(4).lost(), &hub);
        assert_eq!(broken.waiting.len(), 1);
        assert!(matches!(
            from_hub.recv().unwrap().message,
            Message::FileChunk(_)
        ));
        broken.flush(&hub);
        let told = from_hub.try_recv().unwrap();
        assert_eq!((told.server.as_str(), told.stream), ("b", 4));
        assert!(matches!(told.message, Message::FileCancel(_)));
        assert!(from_hub.try_recv().is_err());
        // With room, a cancel goes at once.
        broken.tell(frame(6).lost(), &hub);
        assert_eq!(from_hub.try_recv().unwrap().stream, 6);
        // Bounded: the oldest waiting are let go.
        hub.send(frame(2)).unwrap();
        for stream in 0..1000 {
            broken.tell(frame(2 * stream + 8).lost(), &hub);
        }
        assert_eq!(broken.waiting.len(), MAX_BROKEN);
    }
}
