//! `lanlink cam`, `lanlink view`, `lanlink cameras`, and the server's demo
//! stream: wiring between [`lanlink_video`] sources and sinks and the relay.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::connect::Target;
use lanlink_proto::video::{VideoAnnounce, VideoCodec, VideoEnd, VideoFrame, VideoSubscribe};
use lanlink_proto::{Capabilities, Frame, Message, StreamId};
use lanlink_transport::{Client, Shutdown};
use lanlink_video::{
    EncodedFrame, JpegConfig, JpegFileSource, SourceHandle, SourceInfo, TestPatternSource,
    VideoSource,
};

/// Where `lanlink cam` takes pictures from.
#[derive(Debug, Clone)]
pub enum CamSource {
    /// A V4L2 camera: an index (`0`) or a device path (`/dev/video2`).
    Device(String),
    /// The moving test pattern.
    TestPattern,
    /// A folder of JPEGs or an MJPEG file, looped.
    Jpegs(PathBuf),
}

/// Size and rate asked of a source.
#[derive(Debug, Clone, Copy)]
pub struct Capture {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: f64,
    /// JPEG quality (1–100) where this side encodes.
    pub quality: u8,
}

/// Parses `1280x720`.
pub fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("not a size: {text:?} (try 1280x720)"))?;
    let w: u32 = w
        .trim()
        .parse()
        .map_err(|_| format!("bad width in {text:?}"))?;
    let h: u32 = h
        .trim()
        .parse()
        .map_err(|_| format!("bad height in {text:?}"))?;
    if w == 0 || h == 0 || w > 65_535 || h > 65_535 {
        return Err(format!("{text:?}: width and height must be 1 to 65535"));
    }
    Ok((w, h))
}

/// Opens `source` on its own thread.
pub fn open_source(source: &CamSource, c: Capture) -> Result<SourceHandle, String> {
    let jpeg = JpegConfig {
        quality: c.quality.clamp(1, 100),
        ..JpegConfig::default()
    };
    let (w, h, fps) = (c.width as usize, c.height as usize, c.fps);
    let handle = match source {
        CamSource::TestPattern => SourceHandle::spawn("test-pattern", move || {
            TestPatternSource::new(w, h, fps, jpeg)
        }),
        CamSource::Jpegs(path) => {
            let path = path.clone();
            SourceHandle::spawn("jpeg-files", move || JpegFileSource::open(&path, fps))
        }
        CamSource::Device(dev) => open_camera(dev, c, jpeg),
    };
    handle.map_err(|e| e.to_string())
}

#[cfg(target_os = "linux")]
fn open_camera(
    dev: &str,
    c: Capture,
    jpeg: JpegConfig,
) -> Result<SourceHandle, lanlink_video::VideoError> {
    use lanlink_video::{CameraSelector, CameraSource, CaptureRequest};
    let selector: CameraSelector = dev.parse().unwrap_or(CameraSelector::Index(0));
    let request = CaptureRequest {
        width: c.width,
        height: c.height,
        fps: c.fps,
    };
    SourceHandle::spawn("camera", move || {
        CameraSource::open(&selector, &request, jpeg)
    })
}

#[cfg(not(target_os = "linux"))]
fn open_camera(
    _: &str,
    _: Capture,
    _: JpegConfig,
) -> Result<SourceHandle, lanlink_video::VideoError> {
    Err(lanlink_video::VideoError::NoDevices {
        searched: "V4L2 devices (camera capture is Linux-only)".into(),
    })
}

/// `lanlink cameras`: the capture devices and their formats.
#[cfg(target_os = "linux")]
pub fn cameras() -> Result<(), String> {
    let cams = lanlink_video::list_cameras().map_err(|e| e.to_string())?;
    for c in cams {
        println!("{c}");
    }
    Ok(())
}

/// `lanlink cameras` on a platform without V4L2.
#[cfg(not(target_os = "linux"))]
pub fn cameras() -> Result<(), String> {
    Err("camera capture is implemented for Linux (V4L2) only".into())
}

/// The announcement for a source's stream (the server fills in the publisher).
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

/// Pumps `source` into `send` (announce first, end last) until `shutdown`,
/// `frames` frames, or `send` returns false. Returns frames sent.
pub fn publish(
    mut source: SourceHandle,
    name: &str,
    frames: Option<u64>,
    shutdown: &Shutdown,
    mut send: impl FnMut(Message) -> bool,
) -> Result<u64, String> {
    if !send(announce(&source.info(), name).into()) {
        return Ok(0);
    }
    let mut sent = 0;
    while !shutdown.is_triggered() && frames.is_none_or(|n| sent < n) {
        match source.next_frame_timeout(Duration::from_millis(200)) {
            Ok(Some(f)) => {
                if !send(to_wire(f).into()) {
                    break;
                }
                sent += 1;
            }
            Ok(None) => {}
            Err(e) => return Err(format!("video source failed: {e}")),
        }
    }
    send(VideoEnd.into());
    Ok(sent)
}

/// The stream id `lanlink cam` publishes on (client ids are odd).
const CAM_STREAM: StreamId = 1;

/// `lanlink cam`: publishes a source until Ctrl-C (or `frames` frames).
#[allow(clippy::too_many_arguments)]
pub fn cam(
    server: &Target,
    user: &str,
    source: &CamSource,
    capture: Capture,
    stream_name: Option<String>,
    frames: Option<u64>,
    shutdown: &Shutdown,
) -> Result<(), String> {
    let handle = open_source(source, capture)?;
    let info = handle.info();
    let name = stream_name.unwrap_or_else(|| user.to_owned());
    let client = server.connect(user, Capabilities::VIDEO)?;
    println!(
        "publishing {name}: {}x{} at {:.1} fps from {}",
        info.width,
        info.height,
        f64::from(info.fps_milli) / 1000.0,
        info.name
    );
    let started = Instant::now();
    let mut refusal = None;
    let sent = publish(handle, &name, frames, shutdown, |m| {
        // A refusal (a name already taken, say) comes back as an Error.
        while let Ok(Some(f)) = client.recv_timeout(Duration::ZERO) {
            if let Message::Error(e) = f.message {
                refusal = Some(e.message);
                return false;
            }
        }
        client.send(&Frame::new(CAM_STREAM, m)).is_ok()
    })?;
    // Let a refusal to the announcement or the first frames arrive.
    if refusal.is_none() {
        if let Ok(Some(Frame {
            message: Message::Error(e),
            ..
        })) = client.recv_timeout(Duration::from_millis(100))
        {
            refusal = Some(e.message);
        }
    }
    client.close("done");
    if let Some(r) = refusal {
        return Err(format!("the server refused the stream: {r}"));
    }
    let secs = started.elapsed().as_secs_f64().max(1e-6);
    println!(
        "sent {sent} frames in {secs:.1} s ({:.1} fps)",
        sent as f64 / secs
    );
    Ok(())
}

/// What `lanlink view` does with the frames.
#[derive(Debug, Clone)]
pub enum ViewTarget {
    /// A window.
    Window,
    /// JPEG files in a folder.
    Save(PathBuf),
}

/// Waits for a video stream named `wanted` (or any) to be announced.
fn find_stream(
    client: &Client,
    wanted: Option<&str>,
    patience: Duration,
) -> Result<(StreamId, VideoAnnounce), String> {
    let deadline = Instant::now() + patience;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = client
            .recv_timeout(left.min(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        if let Some(Frame {
            stream,
            message: Message::VideoAnnounce(a),
        }) = next
        {
            if wanted.is_none_or(|w| w == a.name) {
                return Ok((stream, a));
            }
            seen.push(a.name);
        }
    }
    Err(match (wanted, seen.is_empty()) {
        (Some(w), false) => format!("no video stream named {w:?}; streams: {}", seen.join(", ")),
        (Some(w), true) => format!("no video stream named {w:?}, and none is being published"),
        (None, _) => "no video stream is being published".into(),
    })
}

/// `lanlink view`: shows (or saves) a stream until it ends, the window
/// closes, Ctrl-C, or `frames` frames.
pub fn view(
    server: &Target,
    user: &str,
    stream: Option<&str>,
    target: &ViewTarget,
    frames: Option<u64>,
    shutdown: &Shutdown,
) -> Result<(), String> {
    let client = server.connect(user, Capabilities::VIDEO)?;
    let (id, announced) = find_stream(&client, stream, Duration::from_secs(10))?;
    client
        .send(&Frame::new(id, VideoSubscribe))
        .map_err(|e| e.to_string())?;
    println!(
        "watching {} from {} ({}x{})",
        announced.name, announced.publisher, announced.width, announced.height
    );
    if let ViewTarget::Save(dir) = target {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut window = Window::new(target, &announced)?;
    let (mut got, started) = (0u64, Instant::now());
    let mut latencies = Vec::new();
    let mut ended = false;
    while !shutdown.is_triggered() && frames.is_none_or(|n| got < n) && window.is_open() {
        let next = client
            .recv_timeout(Duration::from_millis(50))
            .map_err(|e| e.to_string())?;
        match next {
            Some(Frame {
                stream,
                message: Message::VideoFrame(f),
            }) if stream == id => {
                latencies.push(lanlink_video::now_us().saturating_sub(f.timestamp_us));
                let frame = EncodedFrame {
                    seq: f.seq,
                    capture_timestamp_us: f.timestamp_us,
                    width: announced.width,
                    height: announced.height,
                    jpeg: f.data,
                };
                match target {
                    ViewTarget::Save(dir) => {
                        lanlink_video::save_jpeg(dir, frame.seq, &frame)
                            .map_err(|e| e.to_string())?;
                    }
                    ViewTarget::Window => window.show(&frame)?,
                }
                got += 1;
            }
            Some(Frame {
                stream,
                message: Message::VideoEnd(_),
            }) if stream == id => {
                ended = true;
                break;
            }
            _ => window.idle(),
        }
    }
    client.close("done");
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .map_or(0.0, |us| *us as f64 / 1000.0)
    };
    let secs = started.elapsed().as_secs_f64().max(1e-6);
    println!(
        "received {got} frames in {secs:.1} s ({:.1} fps), capture-to-receive latency p50 {:.1} ms, p99 {:.1} ms{}",
        got as f64 / secs,
        pct(0.5),
        pct(0.99),
        if ended { "; the stream ended" } else { "" }
    );
    Ok(())
}

/// The viewer's window, when there is one.
struct Window {
    #[cfg(feature = "display")]
    inner: Option<(
        lanlink_video::Viewer,
        lanlink_video::JpegDecoder,
        lanlink_video::RgbImage,
    )>,
}

impl Window {
    #[cfg(feature = "display")]
    fn new(target: &ViewTarget, a: &VideoAnnounce) -> Result<Window, String> {
        let inner = match target {
            ViewTarget::Save(_) => None,
            ViewTarget::Window => {
                let viewer = lanlink_video::Viewer::open(&a.name, a.width.into(), a.height.into())
                    .map_err(|e| e.to_string())?;
                let decoder = lanlink_video::JpegDecoder::new().map_err(|e| e.to_string())?;
                Some((viewer, decoder, lanlink_video::RgbImage::default()))
            }
        };
        Ok(Window { inner })
    }

    #[cfg(not(feature = "display"))]
    fn new(target: &ViewTarget, _: &VideoAnnounce) -> Result<Window, String> {
        match target {
            ViewTarget::Save(_) => Ok(Window {}),
            ViewTarget::Window => Err("this build has no display support; use --save DIR".into()),
        }
    }

    fn show(&mut self, _frame: &EncodedFrame) -> Result<(), String> {
        #[cfg(feature = "display")]
        if let Some((viewer, decoder, image)) = &mut self.inner {
            decoder
                .decode_into(&_frame.jpeg, image)
                .map_err(|e| e.to_string())?;
            viewer
                .show(image, Some(_frame.capture_timestamp_us))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn idle(&mut self) {
        #[cfg(feature = "display")]
        if let Some((viewer, _, _)) = &mut self.inner {
            viewer.poll_events();
        }
    }

    fn is_open(&self) -> bool {
        #[cfg(feature = "display")]
        if let Some((viewer, _, _)) = &self.inner {
            return viewer.is_open();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1280x720"), Ok((1280, 720)));
        assert_eq!(parse_size("640X480"), Ok((640, 480)));
        assert!(parse_size("1280").is_err());
        assert!(parse_size("0x10").is_err());
        assert!(parse_size("70000x10").is_err());
    }
}
