//! [`LatestFrames`]: the newest frame of every live video stream, shared
//! between the relay (which writes) and the HTTP viewers (which wait and
//! read).
//!
//! It holds only what the relay says is live: a stream's frame goes when the
//! stream ends ([`LatestFrames::remove`]), and what it may hold in all is
//! capped in streams and bytes ([`FrameLimits`]). Only JPEG images are
//! stored: a frame must start with SOI (`FF D8`) and end with EOI (`FF D9`),
//! so a publisher cannot hand browsers anything else as an "image".

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// A stream with no frame for this long is no longer listed.
const STALE: Duration = Duration::from_secs(5);

/// The newest frame of one stream.
#[derive(Debug, Clone)]
pub struct Latest {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Frame counter (increases by at least one per frame).
    pub seq: u64,
    /// The JPEG image.
    pub jpeg: Bytes,
    /// When it arrived.
    pub at: Instant,
}

/// What a [`LatestFrames`] store may hold.
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    /// Streams with a stored frame.
    pub max_streams: usize,
    /// Bytes of all stored frames together.
    pub max_bytes: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            // As many as the relay carries by default.
            max_streams: 256,
            // A few dozen HD streams' JPEGs.
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Why [`LatestFrames::publish`] did not store a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRefused {
    /// The data does not start with SOI and end with EOI.
    NotJpeg,
    /// As many streams as allowed already have a frame.
    TooManyStreams,
    /// The frame would take the store past its byte limit.
    TooManyBytes,
    /// The JPEG's header claims a picture larger than the stream announced
    /// (see [`lanlink_proto::video::max_frame_pixels`]).
    LargerThanAnnounced,
}

impl std::fmt::Display for FrameRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FrameRefused::NotJpeg => "not a JPEG image",
            FrameRefused::TooManyStreams => "too many streams stored",
            FrameRefused::TooManyBytes => "too many bytes stored",
            FrameRefused::LargerThanAnnounced => "a picture larger than the stream announced",
        })
    }
}

struct Store {
    frames: HashMap<String, Latest>,
    /// What `/state` tells of each stream with a frame (same keys).
    info: HashMap<String, Info>,
    /// MJPEG viewers per stream name (only names with some).
    viewers: HashMap<String, usize>,
    /// Streams announced to the relay, frames or not (another server's
    /// stream sends none until someone here watches it), at most
    /// `limits.max_streams`.
    announced: HashMap<String, Announced>,
    bytes: usize,
    limits: FrameLimits,
}

/// A stream as its announcement tells it.
#[derive(Debug, Clone)]
struct Announced {
    publisher: String,
    width: u16,
    height: u16,
}

/// The publisher and measured frame rate of one stream.
#[derive(Debug, Clone)]
struct Info {
    publisher: String,
    /// Frames per second over the last complete measuring window.
    fps: f32,
    window_start: Instant,
    window_frames: u32,
}

/// How long the frame rate is measured over.
const FPS_WINDOW: Duration = Duration::from_secs(1);

/// One live stream as the browser server's `/state` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamState {
    /// The stream's name (a peer's text: escape it to show it).
    pub name: String,
    /// Who publishes it (a peer's text too); empty if not known.
    pub publisher: String,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Frames per second received lately.
    pub fps: f32,
    /// MJPEG viewers watching it now.
    pub viewers: usize,
    /// The newest frame's counter.
    pub seq: u64,
}

/// Counts one MJPEG viewer of a stream while it lives
/// ([`LatestFrames::watch`]).
pub struct Watching {
    frames: LatestFrames,
    name: String,
}

impl Drop for Watching {
    fn drop(&mut self) {
        let mut store = self.frames.lock();
        if let Some(n) = store.viewers.get_mut(&self.name) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                store.viewers.remove(&self.name);
            }
        }
    }
}

/// The newest frame of every live stream, shared between the relay and the
/// HTTP viewers. Cheap to clone.
#[derive(Clone)]
pub struct LatestFrames {
    inner: Arc<(Mutex<Store>, Condvar)>,
}

impl Default for LatestFrames {
    fn default() -> Self {
        LatestFrames::with_limits(FrameLimits::default())
    }
}

impl std::fmt::Debug for LatestFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let store = self.lock();
        f.debug_struct("LatestFrames")
            .field("streams", &store.frames.len())
            .field("bytes", &store.bytes)
            .finish()
    }
}

/// The JPEG image in `data`: from its SOI marker to its EOI marker, with
/// any zero padding after EOI (some cameras add it) cut off; `None` if it
/// is not framed as a JPEG image.
pub fn jpeg_image(data: &Bytes) -> Option<Bytes> {
    let end = data.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let image = data.slice(..end);
    (image.len() >= 4 && image.starts_with(&[0xFF, 0xD8]) && image.ends_with(&[0xFF, 0xD9]))
        .then_some(image)
}

/// The size a JPEG's frame header (SOF) claims, as (width, height), found
/// by walking its markers as libjpeg does (bytes between segments are
/// skipped to the next `FF`); `None` if there is none before the scan.
/// A few hundred bytes may claim 65500×65500 pixels, which a decoder
/// (a browser's) would try to make room for.
pub fn jpeg_claimed_size(jpeg: &[u8]) -> Option<(u16, u16)> {
    let at = |i: usize| jpeg.get(i).copied();
    let u16_at = |i: usize| Some(u16::from_be_bytes([at(i)?, at(i + 1)?]));
    let mut i = 2;
    loop {
        while at(i)? != 0xFF {
            i += 1;
        }
        while at(i)? == 0xFF {
            i += 1;
        }
        let marker = at(i)?;
        i += 1;
        match marker {
            // No length: stuffing, TEM, RSTn, SOI.
            0x00 | 0x01 | 0xD0..=0xD8 => continue,
            // The end, or the scan, before any frame header.
            0xD9 | 0xDA => return None,
            // SOF0–SOF15 (C4 is DHT, C8 JPG, CC DAC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                return Some((u16_at(i + 5)?, u16_at(i + 3)?));
            }
            _ => i += usize::from(u16_at(i)?.max(2)),
        }
    }
}

impl LatestFrames {
    /// An empty store with the default [`FrameLimits`].
    pub fn new() -> LatestFrames {
        LatestFrames::default()
    }

    /// An empty store that holds at most `limits`.
    pub fn with_limits(limits: FrameLimits) -> LatestFrames {
        let store = Store {
            frames: HashMap::new(),
            info: HashMap::new(),
            viewers: HashMap::new(),
            announced: HashMap::new(),
            bytes: 0,
            limits,
        };
        LatestFrames {
            inner: Arc::new((Mutex::new(store), Condvar::new())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a stream's newest frame and wakes its viewers. A frame that
    /// is not a JPEG image, claims a picture larger than the stream
    /// announced ([`lanlink_proto::video::max_frame_pixels`]), or does not fit the limits, is
    /// refused (the stream's previous frame, if any, stays).
    pub fn publish(
        &self,
        name: &str,
        width: u16,
        height: u16,
        seq: u64,
        data: Bytes,
    ) -> Result<(), FrameRefused> {
        self.publish_by(name, "", width, height, seq, data)
    }

    /// [`publish`](Self::publish), saying who publishes the stream (shown
    /// by `/state`).
    pub fn publish_by(
        &self,
        name: &str,
        publisher: &str,
        width: u16,
        height: u16,
        seq: u64,
        data: Bytes,
    ) -> Result<(), FrameRefused> {
        let jpeg = jpeg_image(&data).ok_or(FrameRefused::NotJpeg)?;
        if jpeg_claimed_size(&jpeg).is_some_and(|(w, h)| {
            usize::from(w) * usize::from(h) > lanlink_proto::video::max_frame_pixels(width, height)
        }) {
            return Err(FrameRefused::LargerThanAnnounced);
        }
        let mut store = self.lock();
        let previous = store.frames.get(name).map(|l| l.jpeg.len());
        if previous.is_none() && store.frames.len() >= store.limits.max_streams {
            return Err(FrameRefused::TooManyStreams);
        }
        let bytes = store.bytes - previous.unwrap_or(0) + jpeg.len();
        if bytes > store.limits.max_bytes {
            return Err(FrameRefused::TooManyBytes);
        }
        store.bytes = bytes;
        let now = Instant::now();
        let latest = Latest {
            width,
            height,
            seq,
            jpeg,
            at: now,
        };
        store.frames.insert(name.to_owned(), latest);
        let info = store.info.entry(name.to_owned()).or_insert_with(|| Info {
            publisher: String::new(),
            fps: 0.0,
            window_start: now,
            window_frames: 0,
        });
        if info.publisher != publisher {
            publisher.clone_into(&mut info.publisher);
        }
        info.window_frames = info.window_frames.saturating_add(1);
        let spent = now.duration_since(info.window_start);
        if spent >= FPS_WINDOW {
            info.fps = info.window_frames as f32 / spent.as_secs_f32();
            info.window_start = now;
            info.window_frames = 0;
        }
        drop(store);
        self.inner.1.notify_all();
        Ok(())
    }

    /// Notes a stream's announcement: it is listed (and may be watched)
    /// before its first frame arrives. Beyond `max_streams` announced
    /// streams a new one is not noted (it is listed once it sends).
    pub fn announce(&self, name: &str, publisher: &str, width: u16, height: u16) {
        let mut store = self.lock();
        if !store.announced.contains_key(name) && store.announced.len() >= store.limits.max_streams
        {
            return;
        }
        let announced = Announced {
            publisher: publisher.to_owned(),
            width,
            height,
        };
        store.announced.insert(name.to_owned(), announced);
    }

    /// Whether `name` is a stream here: announced, or with a frame.
    pub fn is_live(&self, name: &str) -> bool {
        let store = self.lock();
        store.frames.contains_key(name) || store.announced.contains_key(name)
    }

    /// The names of the streams some MJPEG viewer watches now.
    pub fn watched(&self) -> BTreeSet<String> {
        self.lock().viewers.keys().cloned().collect()
    }

    /// Forgets a stream (it ended): its viewers stop, its snapshot is gone.
    pub fn remove(&self, name: &str) {
        let mut store = self.lock();
        store.announced.remove(name);
        if let Some(l) = store.frames.remove(name) {
            store.bytes -= l.jpeg.len();
        }
        store.info.remove(name);
        drop(store);
        self.inner.1.notify_all();
    }

    /// The newest frame of `name`.
    pub fn get(&self, name: &str) -> Option<Latest> {
        self.lock().frames.get(name).cloned()
    }

    /// Streams with a frame stored, and the bytes of all their frames.
    pub fn held(&self) -> (usize, usize) {
        let store = self.lock();
        (store.frames.len(), store.bytes)
    }

    /// Streams with a recent frame, sorted by name.
    pub fn names(&self) -> Vec<(String, Latest)> {
        let mut v: Vec<_> = self
            .lock()
            .frames
            .iter()
            .filter(|(_, l)| l.at.elapsed() < STALE)
            .map(|(n, l)| (n.clone(), l.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Every stream with a recent frame, sorted by name, with its
    /// publisher, size, frame rate and viewers: what `/state` shows.
    pub fn state(&self) -> Vec<StreamState> {
        let store = self.lock();
        let mut v: Vec<StreamState> = store
            .frames
            .iter()
            .filter(|(_, l)| l.at.elapsed() < STALE)
            .map(|(name, l)| {
                let info = store.info.get(name);
                // A stream that stopped sending within the window has a
                // rate no higher than what arrived since.
                let fps = info.map_or(0.0, |i| {
                    let quiet = l.at.elapsed().as_secs_f32();
                    if quiet > FPS_WINDOW.as_secs_f32() {
                        i.fps.min(1.0 / quiet)
                    } else {
                        i.fps
                    }
                });
                StreamState {
                    name: name.clone(),
                    publisher: info.map(|i| i.publisher.clone()).unwrap_or_default(),
                    width: l.width,
                    height: l.height,
                    fps,
                    viewers: store.viewers.get(name).copied().unwrap_or(0),
                    seq: l.seq,
                }
            })
            .collect();
        // Announced streams with no frame yet: listed, so that a browser
        // can open them (and its viewing makes their frames come).
        v.extend(
            store
                .announced
                .iter()
                .filter(|(name, _)| {
                    store
                        .frames
                        .get(*name)
                        .is_none_or(|l| l.at.elapsed() >= STALE)
                })
                .map(|(name, a)| StreamState {
                    name: name.clone(),
                    publisher: a.publisher.clone(),
                    width: a.width,
                    height: a.height,
                    fps: 0.0,
                    viewers: store.viewers.get(name).copied().unwrap_or(0),
                    seq: 0,
                }),
        );
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Counts a viewer of `name` until the returned guard is dropped.
    pub fn watch(&self, name: &str) -> Watching {
        *self.lock().viewers.entry(name.to_owned()).or_insert(0) += 1;
        Watching {
            frames: self.clone(),
            name: name.to_owned(),
        }
    }

    /// Waits up to `timeout` for a frame of `name` newer than `after`.
    pub fn wait_newer(&self, name: &str, after: Option<u64>, timeout: Duration) -> Option<Latest> {
        let deadline = Instant::now() + timeout;
        let mut store = self.lock();
        loop {
            if let Some(l) = store.frames.get(name) {
                if after.is_none_or(|seq| l.seq != seq) {
                    return Some(l.clone());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            store = self
                .inner
                .1
                .wait_timeout(store, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny stand-in for a JPEG image: SOI, `fill`, EOI.
    fn jpeg(fill: &[u8]) -> Bytes {
        let mut v = vec![0xFF, 0xD8];
        v.extend_from_slice(fill);
        v.extend_from_slice(&[0xFF, 0xD9]);
        Bytes::from(v)
    }

    #[test]
    fn waiting_for_a_newer_frame() {
        let f = LatestFrames::new();
        assert!(f
            .wait_newer("cam", None, Duration::from_millis(10))
            .is_none());
        f.publish("cam", 2, 2, 1, jpeg(b"a")).unwrap();
        assert_eq!(
            f.wait_newer("cam", None, Duration::from_millis(10))
                .unwrap()
                .seq,
            1
        );
        assert!(f
            .wait_newer("cam", Some(1), Duration::from_millis(10))
            .is_none());
        let f2 = f.clone();
        let t = std::thread::spawn(move || {
            f2.wait_newer("cam", Some(1), Duration::from_secs(5))
                .map(|l| l.seq)
        });
        std::thread::sleep(Duration::from_millis(20));
        f.publish("cam", 2, 2, 2, jpeg(b"b")).unwrap();
        assert_eq!(t.join().unwrap(), Some(2));
    }

    /// SOI, an APP0 segment, then a baseline frame header claiming
    /// `w`×`h` (and garbage before it, which libjpeg skips), then EOI.
    fn claiming(w: u16, h: u16) -> Bytes {
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x06, b'J', b'F', 0xFF, 0xD9];
        v.extend_from_slice(b"junk");
        v.extend_from_slice(&[0xFF, 0xFF, 0xC0, 0x00, 0x0B, 8]);
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&[1, 1, 0x11, 0, 0xFF, 0xD9]);
        Bytes::from(v)
    }

    #[test]
    fn a_frame_claiming_a_huge_picture_is_not_stored() {
        assert_eq!(jpeg_claimed_size(&claiming(640, 480)), Some((640, 480)));
        assert_eq!(jpeg_claimed_size(&jpeg(b"no header")), None);
        assert_eq!(jpeg_claimed_size(b"\xFF\xD8\xFF\xC0\x00"), None);
        let f = LatestFrames::new();
        // A decoder would make room for 65500x65500 (12.9 GB as RGB).
        assert_eq!(
            f.publish("cam", 320, 240, 1, claiming(65500, 65500)),
            Err(FrameRefused::LargerThanAnnounced)
        );
        assert_eq!(
            f.publish("cam", 320, 240, 2, claiming(7681, 4320)),
            Err(FrameRefused::LargerThanAnnounced)
        );
        assert!(f.get("cam").is_none());
        // What it announced, or up to Full HD, passes.
        f.publish("cam", 320, 240, 3, claiming(1920, 1080)).unwrap();
        f.publish("big", 3840, 2160, 1, claiming(3840, 2160))
            .unwrap();
        f.publish("cam", 320, 240, 4, jpeg(b"no header")).unwrap();
    }

    #[test]
    fn only_jpeg_images_are_stored() {
        let f = LatestFrames::new();
        let multipart = Bytes::from_static(
            b"\r\n--lanlinkframe\r\nContent-Type: text/html\r\n\r\n<script>alert(1)</script>",
        );
        for bad in [
            multipart,
            Bytes::from_static(b"\xFF\xD8"),
            Bytes::from_static(b"\xFF\xD8<html>"),
            Bytes::from_static(b"<html>\xFF\xD9"),
            Bytes::new(),
        ] {
            assert_eq!(
                f.publish("cam", 1, 1, 1, bad.clone()),
                Err(FrameRefused::NotJpeg),
                "{bad:?}"
            );
        }
        assert_eq!(f.held(), (0, 0));
        // Zero padding after EOI is cut off, not refused.
        let mut padded = jpeg(b"x").to_vec();
        padded.extend_from_slice(&[0, 0, 0]);
        f.publish("cam", 1, 1, 1, Bytes::from(padded)).unwrap();
        assert_eq!(f.get("cam").unwrap().jpeg, jpeg(b"x"));
    }

    #[test]
    fn streams_and_bytes_are_capped_and_released() {
        let f = LatestFrames::with_limits(FrameLimits {
            max_streams: 2,
            max_bytes: 100,
        });
        f.publish("a", 1, 1, 1, jpeg(&[1; 36])).unwrap();
        f.publish("b", 1, 1, 1, jpeg(&[1; 36])).unwrap();
        assert_eq!(f.held(), (2, 80));
        assert_eq!(
            f.publish("c", 1, 1, 1, jpeg(b"")),
            Err(FrameRefused::TooManyStreams)
        );
        // A bigger frame for a stored stream must fit too; the old one stays.
        assert_eq!(
            f.publish("a", 1, 1, 2, jpeg(&[1; 60])),
            Err(FrameRefused::TooManyBytes)
        );
        assert_eq!(f.get("a").unwrap().seq, 1);
        f.publish("a", 1, 1, 3, jpeg(&[1; 10])).unwrap();
        assert_eq!(f.held(), (2, 54));
        // An ended stream's frame is gone, and its room free again.
        f.remove("b");
        assert!(f.get("b").is_none());
        assert_eq!(f.held(), (1, 14));
        f.publish("c", 1, 1, 1, jpeg(&[1; 60])).unwrap();
    }

    #[test]
    fn announced_streams_are_listed_before_their_first_frame_and_watched() {
        let f = LatestFrames::with_limits(FrameLimits {
            max_streams: 2,
            max_bytes: 100,
        });
        f.announce("cam@a", "ada@a", 160, 120);
        assert!(f.is_live("cam@a"));
        let listed = f.state();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (
                listed[0].name.as_str(),
                listed[0].publisher.as_str(),
                listed[0].seq
            ),
            ("cam@a", "ada@a", 0)
        );
        assert!(f.watched().is_empty());
        let watching = f.watch("cam@a");
        assert_eq!(f.watched(), BTreeSet::from(["cam@a".to_owned()]));
        drop(watching);
        assert!(f.watched().is_empty());
        // Once a frame comes, it is listed once, with its frame.
        f.publish_by("cam@a", "ada@a", 160, 120, 7, jpeg(&[1; 4]))
            .unwrap();
        assert_eq!(f.state().len(), 1);
        assert_eq!(f.state()[0].seq, 7);
        // Announcements are capped like frames, and an end forgets them.
        f.announce("b", "", 1, 1);
        f.announce("c", "", 1, 1);
        assert!(!f.is_live("c"));
        f.remove("cam@a");
        assert!(!f.is_live("cam@a"));
        f.announce("c", "", 1, 1);
        assert!(f.is_live("c"));
    }
}
