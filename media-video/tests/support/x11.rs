//! A virtual X server for tests: [`Xvfb`] (killed on drop), and screenshots
//! with `xwd` read back as RGB ([`parse_xwd`]). Shared by this crate's
//! window test and the apps' `lanlink view` test (`#[path]`-included).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lanlink_video::RgbImage;

pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// An Xvfb server, killed on drop.
pub struct Xvfb {
    child: Child,
    pub display: String,
}

impl Xvfb {
    pub fn start(program: &Path) -> Xvfb {
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
pub fn parse_xwd(data: &[u8]) -> RgbImage {
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

/// A screenshot of the whole screen of `display`, taken with `xwd`.
pub fn screenshot(xwd: &Path, display: &str) -> RgbImage {
    let out = Command::new(xwd)
        .args(["-root", "-silent", "-display", display])
        .output()
        .expect("run xwd");
    assert!(out.status.success(), "xwd failed: {out:?}");
    parse_xwd(&out.stdout)
}
