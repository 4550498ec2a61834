//! Video on a [`Session`]: publish any [`VideoSource`], and watch a stream
//! as JPEG frames or decoded pictures.

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use lanlink_proto::video::{
    VideoAnnounce, VideoCodec, VideoEnd, VideoFrame, VideoSubscribe, VideoUnsubscribe,
};
use lanlink_proto::{Frame, Message, StreamId};
use lanlink_transport::Shutdown;
use lanlink_video::{EncodedFrame, JpegDecoder, RgbImage, SourceHandle, SourceInfo, VideoSource};

use crate::media::{spawn_publisher, Announcement, MediaKind, Publisher};
use crate::session::RouteLink;
use crate::{ClientError, Session};

/// The announcement of a source's stream (the server fills in the publisher).
pub fn announce(info: &SourceInfo, name: &str) -> VideoAnnounce {
    VideoAnnounce {
        name: name.to_owned(),
        publisher: String::new(),
        codec: VideoCodec::MJPEG,
        width: info.width,
        height: info.height,
        fps_milli: info.fps_milli,
    }
}

/// A captured frame as the wire's `VideoFrame` (the JPEG is shared, not copied).
pub fn to_wire(frame: EncodedFrame) -> VideoFrame {
    VideoFrame {
        seq: frame.seq,
        timestamp_us: frame.capture_timestamp_us,
        keyframe: true,
        data: frame.jpeg,
    }
}

/// The publish loop, for any transport: hands `source`'s frames to `send`
/// (announcement first, end last) until `stop`, `frames` frames, or `send`
/// returns false. Returns frames sent.
///
/// [`Session::publish_video`] runs this on a thread; a server publishing
/// its own stream calls it directly.
pub fn publish(
    mut source: SourceHandle,
    name: &str,
    frames: Option<u64>,
    stop: &Shutdown,
    mut send: impl FnMut(Message) -> bool,
) -> Result<u64, ClientError> {
    if !send(announce(&source.info(), name).into()) {
        return Ok(0);
    }
    let mut sent = 0;
    while !stop.is_triggered() && frames.is_none_or(|n| sent < n) {
        if let Some(f) = source.next_frame_timeout(Duration::from_millis(200))? {
            if !send(to_wire(f).into()) {
                break;
            }
            sent += 1;
        }
    }
    send(VideoEnd.into());
    Ok(sent)
}

impl Session {
    /// Publishes `source` as the video stream `name` on threads of its own
    /// (the source runs on one, so a slow network drops old frames rather
    /// than stalling capture), for at most `frames` frames. A refusal (a
    /// name already taken) ends it: [`Publisher::wait`] says why. A frame
    /// larger than the server accepts (`Welcome::max_payload`, 4 MiB from
    /// the reference server) is skipped.
    pub fn publish_video(
        &self,
        name: &str,
        source: impl VideoSource + 'static,
        frames: Option<u64>,
    ) -> Result<Publisher, ClientError> {
        let handle = SourceHandle::spawn(name, move || Ok(source))?;
        self.publish_video_handle(name, handle, frames)
    }

    /// [`publish_video`](Session::publish_video) for a source already
    /// running behind a [`SourceHandle`] (a camera opened on its thread).
    pub fn publish_video_handle(
        &self,
        name: &str,
        source: SourceHandle,
        frames: Option<u64>,
    ) -> Result<Publisher, ClientError> {
        let name = name.to_owned();
        spawn_publisher(self, "lanlink-cam", move |stop, send| {
            publish(source, &name, frames, stop, send)
        })
    }

    /// Watches the video stream named `name` (or any, if `None`), waiting
    /// up to `patience` for it to be published.
    pub fn watch(
        &self,
        name: Option<&str>,
        patience: Duration,
    ) -> Result<VideoSubscription, ClientError> {
        self.watch_until(name, patience, &Shutdown::new())?
            .ok_or_else(|| ClientError::NoSuchStream {
                kind: MediaKind::Video,
                wanted: name.map(str::to_owned),
                available: Vec::new(),
            })
    }

    /// [`watch`](Session::watch), giving up early (`Ok(None)`) when `stop`
    /// fires: a viewer waiting for a stream still obeys Ctrl-C.
    pub fn watch_until(
        &self,
        name: Option<&str>,
        patience: Duration,
        stop: &Shutdown,
    ) -> Result<Option<VideoSubscription>, ClientError> {
        let link = RouteLink::media(self);
        let announcements = link.watch_announcements();
        let wanted = |a: &VideoAnnounce| name.is_none_or(|n| n == a.name);
        let mut seen = Vec::new();
        let mut found = None;
        for info in self.streams() {
            if let Announcement::Video(v) = info.announcement {
                if wanted(&v) {
                    found = Some((info.id, v));
                    break;
                }
                seen.push(v.name);
            }
        }
        let deadline = Instant::now() + patience;
        while found.is_none() {
            if stop.is_triggered() {
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::NoSuchStream {
                    kind: MediaKind::Video,
                    wanted: name.map(str::to_owned),
                    available: seen,
                });
            }
            crossbeam_channel::select! {
                recv(announcements) -> frame => {
                    if let Ok(Frame { stream, message: Message::VideoAnnounce(v) }) = frame {
                        if wanted(&v) {
                            found = Some((stream, v));
                        } else {
                            seen.push(v.name);
                        }
                    }
                }
                recv(link.shared().gone) -> _ => {
                    return Err(ClientError::Disconnected(link.shared().close_reason()));
                }
                default(left.min(Duration::from_millis(200))) => {}
            }
        }
        let Some((id, announcement)) = found else {
            return Err(ClientError::NoSuchStream {
                kind: MediaKind::Video,
                wanted: name.map(str::to_owned),
                available: seen,
            });
        };
        link.adopt(id);
        link.send_on(id, VideoSubscribe)?;
        Ok(Some(VideoSubscription {
            link,
            announcements,
            id,
            announcement,
            ended: false,
            decoder: None,
            skipped: 0,
            last_skip: None,
        }))
    }
}

/// A video stream being watched ([`Session::watch`]). Dropping it
/// unsubscribes.
pub struct VideoSubscription {
    link: RouteLink,
    announcements: Receiver<Frame>,
    id: StreamId,
    announcement: VideoAnnounce,
    ended: bool,
    decoder: Option<JpegDecoder>,
    skipped: u64,
    /// Why the last skipped frame was skipped.
    last_skip: Option<lanlink_video::VideoError>,
}

impl std::fmt::Debug for VideoSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoSubscription")
            .field("stream", &self.announcement.name)
            .field("ended", &self.ended)
            .finish()
    }
}

impl VideoSubscription {
    /// The stream's announcement: name, publisher, size, rate.
    pub fn announcement(&self) -> &VideoAnnounce {
        &self.announcement
    }

    /// Whether the publisher's end of the stream arrived. Frames it sent
    /// before may still come: [`next_frame`](Self::next_frame) returns them
    /// until it returns `Ok(None)`.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The next frame as it came (a JPEG), waiting up to `timeout`:
    /// `Ok(None)` if none came or the stream ended ([`ended`](Self::ended)).
    /// Frames are dropped, oldest first, when they are not read in time.
    pub fn next_frame(&mut self, timeout: Duration) -> Result<Option<EncodedFrame>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Ok(f) = self.announcements.try_recv() {
                if f.stream == self.id && matches!(f.message, Message::VideoEnd(_)) {
                    self.ended = true;
                }
            }
            // The end comes on another channel than the frames: those sent
            // before it may still wait here, and come first.
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = if self.ended {
                Duration::ZERO
            } else {
                left.min(Duration::from_millis(50))
            };
            match self.link.recv(wait)? {
                Some(Frame {
                    stream,
                    message: Message::VideoFrame(f),
                }) if stream == self.id => {
                    return Ok(Some(EncodedFrame {
                        seq: f.seq,
                        capture_timestamp_us: f.timestamp_us,
                        width: self.announcement.width,
                        height: self.announcement.height,
                        jpeg: f.data,
                    }));
                }
                Some(_) => {}
                None if self.ended || Instant::now() >= deadline => return Ok(None),
                None => {}
            }
        }
    }

    /// The next frame decoded into `image` (resized as needed); returns
    /// the frame it came from, or `Ok(None)` as [`next_frame`](Self::next_frame).
    ///
    /// A frame that does not decode is skipped and counted
    /// ([`skipped`](Self::skipped), [`last_skip`](Self::last_skip) says
    /// why), and so is one whose header claims more
    /// pixels than the stream may ([`VideoAnnounce::max_frame_pixels`]):
    /// a camera's glitch or a hostile publisher
    /// neither ends the viewer nor makes it allocate gigabytes (a JPEG of a
    /// few hundred bytes may claim 65500×65500 pixels). `image` then keeps
    /// the last picture decoded.
    pub fn next_image(
        &mut self,
        timeout: Duration,
        image: &mut RgbImage,
    ) -> Result<Option<EncodedFrame>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(frame) = self.next_frame(left)? else {
                return Ok(None);
            };
            let decoder = match &mut self.decoder {
                Some(d) => d,
                None => {
                    let max = self.announcement.max_frame_pixels();
                    self.decoder
                        .insert(JpegDecoder::new()?.with_max_pixels(max))
                }
            };
            match decoder.decode_into(&frame.jpeg, image) {
                Ok(()) => return Ok(Some(frame)),
                Err(e) => self.last_skip = Some(e),
            }
            self.skipped += 1;
            if left.is_zero() {
                return Ok(None);
            }
        }
    }

    /// Frames [`next_image`](Self::next_image) skipped because they did not
    /// decode or were larger than announced.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Why the last skipped frame was skipped (the decoder's refusal), if
    /// any was.
    pub fn last_skip(&self) -> Option<&lanlink_video::VideoError> {
        self.last_skip.as_ref()
    }
}

impl Drop for VideoSubscription {
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.link.send_on(self.id, VideoUnsubscribe);
        }
    }
}
