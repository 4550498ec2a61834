//! Streams as a session sees them: what is published, by whom, of which
//! kind.

use lanlink_proto::audio::AudioAnnounce;
use lanlink_proto::video::VideoAnnounce;
use lanlink_proto::{Message, StreamId};

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// An audio stream.
    Audio,
    /// A video stream.
    Video,
}

impl std::fmt::Display for MediaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        })
    }
}

/// A stream being published on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The server's id for it (what subscriptions name).
    pub id: StreamId,
    /// What the publisher announced (the server filled in `publisher`).
    pub announcement: Announcement,
}

/// A stream's announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// An audio stream's.
    Audio(AudioAnnounce),
    /// A video stream's.
    Video(VideoAnnounce),
}

impl StreamInfo {
    /// The stream's name.
    pub fn name(&self) -> &str {
        match &self.announcement {
            Announcement::Audio(a) => &a.name,
            Announcement::Video(v) => &v.name,
        }
    }

    /// Who publishes it (the server's name for them).
    pub fn publisher(&self) -> &str {
        match &self.announcement {
            Announcement::Audio(a) => &a.publisher,
            Announcement::Video(v) => &v.publisher,
        }
    }

    /// Audio or video.
    pub fn kind(&self) -> MediaKind {
        match &self.announcement {
            Announcement::Audio(_) => MediaKind::Audio,
            Announcement::Video(_) => MediaKind::Video,
        }
    }

    /// The stream an announcement frame describes.
    pub(crate) fn from_message(id: StreamId, message: &Message) -> Option<StreamInfo> {
        let announcement = match message {
            Message::AudioAnnounce(a) => Announcement::Audio(a.clone()),
            Message::VideoAnnounce(v) => Announcement::Video(v.clone()),
            _ => return None,
        };
        Some(StreamInfo { id, announcement })
    }
}

/// A stream this session publishes, on a thread of its own.
///
/// Dropping it stops the stream (the server is told it ended) and joins
/// the thread.
#[derive(Debug)]
pub struct Publisher {
    pub(crate) stop: lanlink_transport::Shutdown,
    pub(crate) thread: Option<std::thread::JoinHandle<Result<u64, crate::ClientError>>>,
}

impl Publisher {
    /// Asks the stream to end (it ends within a frame).
    pub fn stop(&self) {
        self.stop.trigger();
    }

    /// A handle that stops the stream from another thread (a signal
    /// handler, a timer).
    pub fn stopper(&self) -> lanlink_transport::Shutdown {
        self.stop.clone()
    }

    /// Whether the stream has ended (its source ran out, it was stopped,
    /// refused, or the connection is gone).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits until the stream has ended; returns the frames (or packets)
    /// sent, or why it ended early (a refusal, a failing source, a lost
    /// connection: [`ClientError::Disconnected`](crate::ClientError::Disconnected)).
    pub fn wait(mut self) -> Result<u64, crate::ClientError> {
        join(self.thread.take())
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.trigger();
        let _ = join(self.thread.take());
    }
}

fn join(
    thread: Option<std::thread::JoinHandle<Result<u64, crate::ClientError>>>,
) -> Result<u64, crate::ClientError> {
    match thread.map(std::thread::JoinHandle::join) {
        Some(Ok(result)) => result,
        Some(Err(_)) => Err(crate::ClientError::Thread(std::io::Error::other(
            "the publishing thread panicked",
        ))),
        None => Ok(0),
    }
}

/// Checks what the server said on a publisher's stream, waiting up to
/// `patience` for it: a refusal ends the stream.
fn refusal(
    link: &crate::session::RouteLink,
    patience: std::time::Duration,
) -> Option<crate::ClientError> {
    while let Ok(Some(frame)) = link.recv(patience) {
        if let Message::Error(e) = frame.message {
            return Some(crate::ClientError::Refused {
                code: e.code,
                reason: e.message,
            });
        }
    }
    None
}

/// Room left in a payload for a media frame's fields besides its data.
const FRAME_SLACK: usize = 1024;

/// Runs a publish loop on a thread of its own, on a stream of its own:
/// `run` gets the stop signal and a `send` that is false once the server
/// refused the stream (or the connection is gone).
pub(crate) fn spawn_publisher(
    session: &crate::Session,
    thread_name: &str,
    run: impl FnOnce(
            &lanlink_transport::Shutdown,
            &mut dyn FnMut(Message) -> bool,
        ) -> Result<u64, crate::ClientError>
        + Send
        + 'static,
) -> Result<Publisher, crate::ClientError> {
    use std::time::Duration;
    let link = crate::session::RouteLink::reliable(session);
    let stream = link.open();
    let stop = lanlink_transport::Shutdown::new();
    // A frame the server would refuse as too large (and close the whole
    // session for) is skipped: a camera's odd huge JPEG costs one frame.
    let most = usize::try_from(session.welcome().max_payload).unwrap_or(usize::MAX);
    let (flag, session) = (stop.clone(), session.clone());
    let thread = std::thread::Builder::new()
        .name(thread_name.into())
        .spawn(move || {
            let _session = session;
            let mut refused = None;
            let sent = run(&flag, &mut |m| {
                if m.tail().map_or(0, bytes::Bytes::len) + FRAME_SLACK > most {
                    return true;
                }
                refused = refused.take().or_else(|| refusal(&link, Duration::ZERO));
                refused.is_none() && link.send_on(stream, m).is_ok()
            })?;
            // A refusal of the last frames may still be on its way.
            if let Some(e) = refused.or_else(|| refusal(&link, Duration::from_millis(100))) {
                return Err(e);
            }
            // Frames that could not be sent end the loop like a stop does:
            // a stream cut short by a lost connection is a failure.
            match link.shared().closed() {
                Some(reason) => Err(crate::ClientError::Disconnected(reason)),
                None => Ok(sent),
            }
        })
        .map_err(crate::ClientError::Thread)?;
    Ok(Publisher {
        stop,
        thread: Some(thread),
    })
}
