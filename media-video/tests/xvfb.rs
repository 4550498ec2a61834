//! A real window on a virtual X server: open a [`Viewer`], show a decoded
//! test-pattern frame, take a screenshot with `xwd`, and check the pixels:
//! the colour bars have their colours and the stamp in the screenshot
//! reads back as the frame shown.
//!
//! Needs `Xvfb` and `xwd` (Debian: `xvfb`, `x11-apps`; `scripts/setup`
//! installs them). Without them the test prints why and passes.
#![cfg(feature = "display")]

#[path = "support/x11.rs"]
mod x11;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use x11::{find_program, parse_xwd, Xvfb};

use lanlink_video::{
    decode_pattern_stamp, JpegConfig, JpegDecoder, JpegEncoder, RgbImage, TestPattern, VideoError,
    Viewer, BAR_COLOURS,
};

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
