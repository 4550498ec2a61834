//! `lanlink cam`, `lanlink view`, `lanlink cameras`, and the server's demo
//! stream: sources opened from the flags, a window or a folder to show
//! frames in; publishing and watching live in [`lanlink_client::video`].

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::audio::stop_on;
use crate::connect::Server;
use lanlink_client::{ClientError, MediaKind};
use lanlink_proto::video::VideoAnnounce;
use lanlink_proto::Capabilities;
use lanlink_transport::text::display_safe;
use lanlink_transport::Shutdown;
use lanlink_video::{JpegConfig, JpegFileSource, SourceHandle, TestPatternSource, VideoSource};

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
pub fn open_source(source: &CamSource, c: Capture) -> Result<SourceHandle, ClientError> {
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
    Ok(handle?)
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
pub fn cameras() -> Result<(), ClientError> {
    let found = lanlink_video::list_cameras().map_err(|e| {
        ClientError::from(e).with_hint("`lanlink cam --test-pattern` publishes without a camera")
    })?;
    for c in found {
        println!("{c}");
    }
    Ok(())
}

/// `lanlink cameras` on a platform without V4L2.
#[cfg(not(target_os = "linux"))]
pub fn cameras() -> Result<(), ClientError> {
    Err(lanlink_video::VideoError::NoDevices {
        searched: "V4L2 devices (camera capture is Linux-only)".into(),
    }
    .into())
}

/// `lanlink cam`: publishes a source until Ctrl-C (or `frames` frames).
pub fn cam(
    server: &Server,
    user: &str,
    source: &CamSource,
    capture: Capture,
    stream_name: Option<String>,
    frames: Option<u64>,
    shutdown: &Shutdown,
) -> Result<(), ClientError> {
    let mut handle = Some(open_source(source, capture)?);
    let (session, _) = server.connect(user, Capabilities::VIDEO)?;
    let base = lanlink_client::names::default_stream_name(user, "cam");
    let mut started = Instant::now();
    let sent = lanlink_client::names::publish_named(&session, stream_name, &base, |name| {
        // A retry under another name opens the source again.
        let handle = match handle.take() {
            Some(h) => h,
            None => open_source(source, capture)?,
        };
        let info = handle.info();
        println!(
            "publishing {name}: {}x{} at {:.1} fps from {}",
            info.width,
            info.height,
            f64::from(info.fps_milli) / 1000.0,
            info.name
        );
        started = Instant::now();
        let publisher = session.publish_video_handle(name, handle, frames)?;
        stop_on(shutdown, publisher.stopper());
        Ok(publisher)
    });
    session.close("done");
    let (_, sent) = sent?;
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

/// `lanlink view`: shows (or saves) a stream until it ends, the window
/// closes, Ctrl-C, or `frames` frames.
pub fn view(
    server: &Server,
    user: &str,
    stream: Option<&str>,
    target: &ViewTarget,
    frames: Option<u64>,
    shutdown: &Shutdown,
) -> Result<(), ClientError> {
    let (session, _) = server.connect(user, Capabilities::VIDEO)?;
    let patience = Duration::from_secs(10);
    let videos: Vec<String> = session
        .streams()
        .iter()
        .filter(|i| i.kind() == MediaKind::Video)
        .map(|i| i.name().to_owned())
        .collect();
    // Stream names come from the server: escaped before they are shown (an
    // outside attack, helper-73, cleared the screen through one).
    let shown: Vec<String> = videos
        .iter()
        .map(|v| display_safe(v).into_owned())
        .collect();
    if !videos.iter().any(|v| stream.is_none_or(|s| s == v)) {
        let wanted = stream.map_or("a video stream".to_owned(), |s| {
            format!("the video stream {s:?}")
        });
        let now = if videos.is_empty() {
            String::new()
        } else {
            format!("; published now: {}", shown.join(", "))
        };
        println!(
            "waiting up to {} s for {wanted} to be published{now} (Ctrl-C to stop)",
            patience.as_secs()
        );
    }
    let Some(mut watching) = session.watch_until(stream, patience, shutdown)? else {
        session.close("stopped");
        println!("stopped before the stream was published");
        return Ok(());
    };
    let announced = watching.announcement().clone();
    println!(
        "watching {} from {} ({}x{})",
        display_safe(&announced.name),
        display_safe(&announced.publisher),
        announced.width,
        announced.height
    );
    if let ViewTarget::Save(dir) = target {
        std::fs::create_dir_all(dir).map_err(|source| lanlink_video::VideoError::Io {
            op: "create",
            path: dir.clone(),
            source,
        })?;
    }
    let mut window = Window::new(target, &announced)?;
    let (mut got, started) = (0u64, Instant::now());
    let mut latencies = Vec::new();
    // Only what decodes is shown or saved (the library skips the rest and
    // counts it): a folder never holds a picture nobody can open.
    let mut image = lanlink_video::RgbImage::default();
    let wait = Duration::from_millis(50);
    while !shutdown.is_triggered() && frames.is_none_or(|n| got < n) && window.is_open() {
        match watching.next_image(wait, &mut image)? {
            Some(frame) => {
                latencies.push(lanlink_video::now_us().saturating_sub(frame.capture_timestamp_us));
                match target {
                    ViewTarget::Save(dir) => {
                        lanlink_video::save_jpeg(dir, frame.seq, &frame)?;
                    }
                    ViewTarget::Window => window.show(&image, frame.capture_timestamp_us)?,
                }
                got += 1;
            }
            None if watching.ended() => break,
            None => window.idle(),
        }
    }
    let ended = watching.ended();
    let skipped = watching.skipped();
    let last_skip = watching.last_skip().map(ToString::to_string);
    drop(watching);
    session.close("done");
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .map_or(0.0, |us| *us as f64 / 1000.0)
    };
    let secs = started.elapsed().as_secs_f64().max(1e-6);
    println!(
        "received {got} frames in {secs:.1} s ({:.1} fps), capture-to-receive latency p50 {:.1} ms, p99 {:.1} ms{}{}",
        got as f64 / secs,
        pct(0.5),
        pct(0.99),
        match skipped {
            0 => String::new(),
            n => format!(
                "; skipped {n} that did not decode or were larger than announced{}",
                last_skip.as_deref().map_or(String::new(), |e| format!(
                    " (the last: {})",
                    display_safe(e)
                ))
            ),
        },
        if ended { "; the stream ended" } else { "" }
    );
    Ok(())
}

/// The viewer's window, when there is one.
struct Window {
    #[cfg(feature = "display")]
    viewer: Option<lanlink_video::Viewer>,
}

impl Window {
    #[cfg(feature = "display")]
    fn new(target: &ViewTarget, a: &VideoAnnounce) -> Result<Window, ClientError> {
        let viewer = match target {
            ViewTarget::Save(_) => None,
            // The title is the publisher's text: escaped like any peer's.
            ViewTarget::Window => Some(lanlink_video::Viewer::open(
                &display_safe(&a.name),
                a.width.into(),
                a.height.into(),
            )?),
        };
        Ok(Window { viewer })
    }

    #[cfg(not(feature = "display"))]
    fn new(target: &ViewTarget, _: &VideoAnnounce) -> Result<Window, ClientError> {
        match target {
            ViewTarget::Save(_) => Ok(Window {}),
            ViewTarget::Window => Err(lanlink_video::VideoError::NoDevices {
                searched: "a display (this build has none; use --save DIR)".into(),
            }
            .into()),
        }
    }

    fn show(
        &mut self,
        _image: &lanlink_video::RgbImage,
        _captured_us: u64,
    ) -> Result<(), ClientError> {
        #[cfg(feature = "display")]
        if let Some(viewer) = &mut self.viewer {
            viewer.show(_image, Some(_captured_us))?;
        }
        Ok(())
    }

    fn idle(&mut self) {
        #[cfg(feature = "display")]
        if let Some(viewer) = &mut self.viewer {
            viewer.poll_events();
        }
    }

    fn is_open(&self) -> bool {
        #[cfg(feature = "display")]
        if let Some(viewer) = &self.viewer {
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
