//! [`Viewer`]: a window that shows RGB frames (minifb on X11).
//!
//! minifb's window is tied to the thread that made it, so a viewer lives
//! on the caller's thread: open it, then call [`Viewer::show`] per frame.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use minifb::{Key, Window, WindowOptions};

use crate::{now_us, RgbImage, VideoError};

/// Window titles change at most this often (each change is a round trip
/// to the X server).
const TITLE_EVERY: Duration = Duration::from_millis(250);
/// Frame rate is measured over this window.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// A window showing one video stream, titled with the stream's name, the
/// rate frames are shown at and their capture-to-screen latency.
pub struct Viewer {
    window: Window,
    name: String,
    /// 0RGB pixels, as minifb wants them; reused between frames.
    argb: Vec<u32>,
    shown: VecDeque<Instant>,
    title_at: Option<Instant>,
    title: String,
}

impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer")
            .field("title", &self.title)
            .finish()
    }
}

impl Viewer {
    /// Opens a `width`×`height` window named after the stream. Frames of
    /// another size are scaled to fit.
    pub fn open(name: &str, width: usize, height: usize) -> Result<Viewer, VideoError> {
        let options = WindowOptions {
            resize: true,
            ..WindowOptions::default()
        };
        let window = Window::new(name, width.max(1), height.max(1), options).map_err(|e| {
            VideoError::Display {
                op: "open window",
                message: format!(
                    "{e} (DISPLAY={}; is an X server running?)",
                    std::env::var("DISPLAY").unwrap_or_else(|_| "<unset>".to_owned())
                ),
            }
        })?;
        Ok(Viewer {
            window,
            name: name.to_owned(),
            argb: Vec::new(),
            shown: VecDeque::new(),
            title_at: None,
            title: name.to_owned(),
        })
    }

    /// Draws `image` and handles window events. `capture_timestamp_us`
    /// (Unix µs, as in [`EncodedFrame`](crate::EncodedFrame)) adds the
    /// latency to the title.
    pub fn show(
        &mut self,
        image: &RgbImage,
        capture_timestamp_us: Option<u64>,
    ) -> Result<(), VideoError> {
        self.argb.clear();
        self.argb.extend(
            image
                .as_bytes()
                .chunks_exact(3)
                .map(|p| u32::from(p[0]) << 16 | u32::from(p[1]) << 8 | u32::from(p[2])),
        );
        let now = Instant::now();
        self.shown.push_back(now);
        while self
            .shown
            .front()
            .is_some_and(|t| now.duration_since(*t) > RATE_WINDOW)
        {
            self.shown.pop_front();
        }
        if self
            .title_at
            .is_none_or(|t| now.duration_since(t) >= TITLE_EVERY)
        {
            let fps = self.shown.len() as f64 / RATE_WINDOW.as_secs_f64();
            let latency_ms = capture_timestamp_us.map(|ts| now_us().saturating_sub(ts) / 1000);
            self.title = viewer_title(&self.name, fps, latency_ms);
            self.window.set_title(&self.title);
            self.title_at = Some(now);
        }
        self.window
            .update_with_buffer(&self.argb, image.width(), image.height())
            .map_err(|e| VideoError::Display {
                op: "update window",
                message: e.to_string(),
            })
    }

    /// Handles window events without drawing (call while waiting for
    /// frames so the window stays responsive).
    pub fn poll_events(&mut self) {
        self.window.update();
    }

    /// False once the person closed the window or pressed Escape.
    pub fn is_open(&self) -> bool {
        self.window.is_open() && !self.window.is_key_down(Key::Escape)
    }

    /// The current title.
    pub fn title(&self) -> &str {
        &self.title
    }
}

/// `door-cam — 29.9 fps — 45 ms` (latency left out when unknown).
pub fn viewer_title(name: &str, fps: f64, latency_ms: Option<u64>) -> String {
    match latency_ms {
        Some(ms) => format!("{name} — {fps:.1} fps — {ms} ms"),
        None => format!("{name} — {fps:.1} fps"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_read_well() {
        assert_eq!(
            viewer_title("door-cam", 29.94, Some(45)),
            "door-cam — 29.9 fps — 45 ms"
        );
        assert_eq!(viewer_title("x", 0.0, None), "x — 0.0 fps");
    }
}
