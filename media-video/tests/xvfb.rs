//! A real window on a virtual X server: open a [`Viewer`], show a decoded
//! test-pattern frame, take a screenshot with `xwd`, and check the pixels:
//! the colour bars have their colours and the stamp in the screenshot
//! reads back as the frame shown.
//!
//! Needs `Xvfb` and `xwd` (Debian: `xvfb`, `x11-apps`; `scripts/setup`
//! installs them). Without them the test prints why and passes.
#![cfg(feature = "display")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lanlink_video::{
    decode_pattern_stamp, JpegConfig, JpegDecoder, JpegEncoder, RgbImage, TestPattern, VideoError,
    Viewer, BAR_COLOURS,
};

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// An Xvfb server, killed on drop.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start(program: &Path) -> Xvfb {
        // A display number nobody uses: no socket and no lock file.
        let n = (90..200)
            .find(|n| {
                !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                    && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
            })
            .expect("a free X display number");
        let display = format!(":{n}");
        let child = Command::new(program)
            .args([&display, "-screen", "0", "800x600x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let mut xvfb = Xvfb { child, display };
        let socket = format!("/tmp/.X11-unix/X{n}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(&socket).exists() {
            assert!(
                xvfb.child.try_wait().unwrap().is_none(),
                "Xvfb {} exited at start",
                xvfb.display
            );
            assert!(
                Instant::now() < deadline,
                "Xvfb {} did not come up",
                xvfb.display
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        xvfb
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses a 24/32-bit TrueColor XWD dump (what `xwd` writes for Xvfb).
fn parse_xwd(data: &[u8]) -> RgbImage {
    let field = |i: usize| u32::from_be_bytes(data[i * 4..i * 4 + 4].try_into().unwrap());
    let (header_size, width, height) = (field(0) as usize, field(4) as usize, field(5) as usize);
    let (lsb_first, bits_per_pixel, bytes_per_line) =
        (field(7) == 0, field(11), field(12) as usize);
    let masks = [field(14), field(15), field(16)];
    let ncolors = field(19) as usize;
    assert_eq!(bits_per_pixel, 32, "expected 32 bits per pixel");
    let pixels = &data[header_size + ncolors * 12..];
    let mut image = RgbImage::new(width, height);
    for y in 0..height {
        for x in 0..width {
            let b: [u8; 4] = pixels[y * bytes_per_line + x * 4..][..4]
                .try_into()
                .unwrap();
            let v = if lsb_first {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            };
            let out = &mut image.as_bytes_mut()[(y * width + x) * 3..][..3];
            for (o, m) in out.iter_mut().zip(masks) {
                *o = ((v & m) >> m.trailing_zeros()) as u8;
            }
        }
    }
    image
}

fn crop(image: &RgbImage, x0: usize, y0: usize, w: usize, h: usize) -> RgbImage {
    let mut out = RgbImage::new(w, h);
    for y in 0..h {
        let src = &image.as_bytes()[((y0 + y) * image.width() + x0) * 3..][..w * 3];
        out.as_bytes_mut()[y * w * 3..][..w * 3].copy_from_slice(src);
    }
    out
}

#[test]
fn viewer_shows_the_test_pattern_on_a_real_x_server() {
    let (Some(xvfb), Some(xwd)) = (find_program("Xvfb"), find_program("xwd")) else {
        eprintln!("skipped: needs Xvfb and xwd (apt-get install xvfb x11-apps)");
        return;
    };

    // Without a server the error says so. (This is the only test in this
    // binary, so changing the environment races with nothing.)
    std::env::remove_var("DISPLAY");
    let err = Viewer::open("nowhere", 64, 48).unwrap_err();
    assert!(
        matches!(err, VideoError::Display { .. }) && err.to_string().contains("DISPLAY=<unset>"),
        "{err}"
    );

    let server = Xvfb::start(&xvfb);
    std::env::set_var("DISPLAY", &server.display);

    // What a viewer shows: a pattern frame after a JPEG round trip.
    let (w, h, counter, ts) = (640, 480, 4242, 1_712_345_678_123_456);
    let pattern = TestPattern::new(w, h);
    let mut image = RgbImage::default();
    pattern.render(counter, ts, &mut image);
    let jpeg = JpegEncoder::new(JpegConfig {
        quality: 90,
        ..JpegConfig::default()
    })
    .unwrap()
    .encode_rgb_to_bytes(&image)
    .unwrap();
    let shown = JpegDecoder::new().unwrap().decode(&jpeg).unwrap();

    let mut viewer = Viewer::open("xvfb-test", w, h).unwrap();
    for _ in 0..10 {
        viewer.show(&shown, Some(lanlink_video::now_us())).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(viewer.is_open());
    assert!(
        viewer.title().starts_with("xvfb-test — ") && viewer.title().contains(" fps — "),
        "{}",
        viewer.title()
    );

    // Dump the window by its title. (minifb's `get_position` is off
    // without a window manager, so the window is found by name instead.)
    let dump = Command::new(&xwd)
        .args([
            "-silent",
            "-display",
            &server.display,
            "-name",
            viewer.title(),
        ])
        .output()
        .expect("run xwd");
    assert!(
        dump.status.success(),
        "xwd: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let window = parse_xwd(&dump.stdout);
    assert_eq!((window.width(), window.height()), (w, h));

    // Keep the screenshot for people to look at.
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("xvfb-viewer.jpg");
    let png = JpegEncoder::new(JpegConfig::default())
        .unwrap()
        .encode_rgb_to_bytes(&window)
        .unwrap();
    std::fs::write(&out, png).unwrap();
    eprintln!("screenshot of the window: {}", out.display());

    // The bars, sampled in the middle of each, have their colours.
    let layout = pattern.layout();
    let y = (layout.panel_bottom + layout.bars_bottom) / 2;
    for (i, want) in BAR_COLOURS.iter().enumerate() {
        let x = (2 * i + 1) * w / (2 * BAR_COLOURS.len());
        let got = window.pixel(x, y).unwrap();
        for c in 0..3 {
            assert!(
                got[c].abs_diff(want[c]) <= 10,
                "bar {i} at ({x}, {y}): screen {got:?}, expected {want:?}"
            );
        }
    }
    // The panel is black and the stamp in the screenshot is this frame's.
    assert_eq!(window.pixel(w - 4, 4), Some([0, 0, 0]));
    assert_eq!(decode_pattern_stamp(&window), Some((counter, ts)));
    // The same pixels are on the screen itself, where minifb centres the
    // window (800×600 screen), and the screen around it is not the pattern.
    let root = Command::new(&xwd)
        .args(["-root", "-silent", "-display", &server.display])
        .output()
        .expect("run xwd");
    let screen = parse_xwd(&root.stdout);
    let (x0, y0) = ((800 - w) / 2, (600 - h) / 2);
    assert!(
        crop(&screen, x0, y0, w, h) == window,
        "window not at ({x0}, {y0}) on screen"
    );
    assert_ne!(screen.pixel(x0 - 1, y0 + y), window.pixel(0, y));
}
