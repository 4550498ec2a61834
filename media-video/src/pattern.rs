//! A moving test pattern that carries its own frame number and capture time.
//!
//! Layout, top to bottom (all sizes scale with the frame; see
//! [`PatternLayout`]):
//!
//! ```text
//! +--------------------------------------------------+
//! | ▚▞▚▚▞ stamp code: 4 rows × 28 black/white blocks |  black panel
//! | #123            frame counter, 5×7 font          |
//! | 1712345678.123456   capture time, Unix seconds    |
//! +--------------------------------------------------+
//! | white|yellow|cyan|green|magenta|red|blue|black     |  75 % colour bars
//! +--------------------------------------------------+
//! | grey ramp with an orange square moving across     |  motion band
//! +--------------------------------------------------+
//! ```
//!
//! The block code holds 112 bits: a magic byte, the 32-bit counter, the
//! 64-bit timestamp and a CRC-8. Blocks are at least 4×4 pixels of pure
//! black or white, so they survive JPEG at any sensible quality, and
//! [`decode_pattern_stamp`] reads them back by sampling block centres.

use crate::font::{draw_text, GLYPH_H};
use crate::RgbImage;

/// The colour bars, left to right: 75 % white, yellow, cyan, green,
/// magenta, red, blue, then black.
pub const BAR_COLOURS: [[u8; 3]; 8] = [
    [191, 191, 191],
    [191, 191, 0],
    [0, 191, 191],
    [0, 191, 0],
    [191, 0, 191],
    [191, 0, 0],
    [0, 0, 191],
    [0, 0, 0],
];

const MAGIC: u8 = 0xB5;
const CODE_COLS: usize = 28;
const CODE_ROWS: usize = 4;
const CODE_BYTES: usize = CODE_COLS * CODE_ROWS / 8;
const MOVER: [u8; 3] = [255, 128, 0];

/// Where the parts of the pattern sit for one frame size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatternLayout {
    /// The grid unit in pixels: `max(2, min(width, height * 4/3) / 160)`.
    pub unit: usize,
    /// Side of one code block (`2 * unit`).
    pub block: usize,
    /// The black panel covers rows `0..panel_bottom`.
    pub panel_bottom: usize,
    /// The colour bars cover rows `panel_bottom..bars_bottom`; the motion
    /// band the rest.
    pub bars_bottom: usize,
}

impl PatternLayout {
    /// The layout for a `width`×`height` frame.
    pub fn for_size(width: usize, height: usize) -> PatternLayout {
        let unit = (width.min(height * 4 / 3) / 160).max(2);
        let panel_bottom = (30 * unit).min(height);
        PatternLayout {
            unit,
            block: 2 * unit,
            panel_bottom,
            bars_bottom: panel_bottom + (height - panel_bottom) * 3 / 4,
        }
    }

    /// Top-left pixel of code block `i` (row-major).
    fn block_origin(&self, i: usize) -> (usize, usize) {
        let (col, row) = (i % CODE_COLS, i / CODE_COLS);
        (
            2 * self.unit + col * self.block,
            2 * self.unit + row * self.block,
        )
    }
}

/// Draws test-pattern frames of one size into a reused [`RgbImage`].
#[derive(Debug, Clone)]
pub struct TestPattern {
    width: usize,
    height: usize,
    layout: PatternLayout,
    /// One row of the bars and one of the ramp, copied down the image:
    /// drawing is mostly `memcpy`.
    bars_row: Vec<u8>,
    ramp_row: Vec<u8>,
}

impl TestPattern {
    /// A pattern for `width`×`height` frames. Any size draws (clipped);
    /// the stamp reads back reliably from about 320×240 up.
    pub fn new(width: usize, height: usize) -> TestPattern {
        let mut bars_row = Vec::with_capacity(width * 3);
        let mut ramp_row = Vec::with_capacity(width * 3);
        for x in 0..width {
            bars_row.extend_from_slice(&BAR_COLOURS[x * BAR_COLOURS.len() / width]);
            let grey = (x * 255 / width.max(2).saturating_sub(1)).min(255) as u8;
            ramp_row.extend_from_slice(&[grey; 3]);
        }
        TestPattern {
            width,
            height,
            layout: PatternLayout::for_size(width, height),
            bars_row,
            ramp_row,
        }
    }

    /// Where things are drawn.
    pub fn layout(&self) -> PatternLayout {
        self.layout
    }

    /// Draws frame `counter` captured at `timestamp_us` (Unix µs) into
    /// `out`, resizing it if needed. Allocates nothing when `out` already
    /// has the size.
    pub fn render(&self, counter: u32, timestamp_us: u64, out: &mut RgbImage) {
        let (w, h, l) = (self.width, self.height, self.layout);
        out.resize(w, h);
        let row_len = w * 3;
        if row_len == 0 {
            return;
        }
        for (y, row) in out.as_bytes_mut().chunks_exact_mut(row_len).enumerate() {
            if y < l.panel_bottom {
                row.fill(0);
            } else if y < l.bars_bottom {
                row.copy_from_slice(&self.bars_row);
            } else {
                row.copy_from_slice(&self.ramp_row);
            }
        }
        // The mover: a square the height of the motion band, crossing the
        // frame in about 4 s at 30 fps, then starting over.
        let band = h - l.bars_bottom;
        if band > 0 && w > band {
            let x = (counter as usize * w.div_ceil(120)) % (w - band);
            fill_rect(out, x, l.bars_bottom, band, band, MOVER);
        }
        // The code, then the same numbers for people.
        let bits = stamp_bytes(counter, timestamp_us);
        for i in 0..CODE_COLS * CODE_ROWS {
            if bits[i / 8] & (0x80 >> (i % 8)) != 0 {
                let (x, y) = l.block_origin(i);
                fill_rect(out, x, y, l.block, l.block, [255; 3]);
            }
        }
        let mut text = TextBuf::default();
        let white = [255; 3];
        let line =
            |n: usize| 2 * l.unit + CODE_ROWS * l.block + 2 * l.unit + n * (GLYPH_H + 2) * l.unit;
        text.write(format_args!("#{counter}"));
        draw_text(out, 2 * l.unit, line(0), l.unit, white, text.as_str());
        text.clear();
        let (secs, micros) = (timestamp_us / 1_000_000, timestamp_us % 1_000_000);
        text.write(format_args!("{secs}.{micros:06}"));
        draw_text(out, 2 * l.unit, line(1), l.unit, white, text.as_str());
    }
}

/// Reads the counter and timestamp back from a (decoded) test-pattern
/// frame, or `None` when the image carries no valid stamp: wrong size for
/// the code, not a test pattern, or damaged beyond the CRC.
pub fn decode_pattern_stamp(image: &RgbImage) -> Option<(u32, u64)> {
    let l = PatternLayout::for_size(image.width(), image.height());
    let mut bytes = [0u8; CODE_BYTES];
    // Average the middle half of each block, away from JPEG ringing at
    // the edges.
    let (inset, span) = (l.block / 4, (l.block / 2).max(1));
    for i in 0..CODE_COLS * CODE_ROWS {
        let (bx, by) = l.block_origin(i);
        let mut sum = 0u32;
        for y in by + inset..by + inset + span {
            for x in bx + inset..bx + inset + span {
                let [r, g, b] = image.pixel(x, y)?;
                sum += u32::from(r) + u32::from(g) + u32::from(b);
            }
        }
        let mean = sum / (3 * (span * span) as u32);
        if mean >= 128 {
            bytes[i / 8] |= 0x80 >> (i % 8);
        }
    }
    let (payload, crc) = bytes.split_at(CODE_BYTES - 1);
    if payload[0] != MAGIC || crc8(payload) != crc[0] {
        return None;
    }
    let counter = u32::from_be_bytes(payload[1..5].try_into().ok()?);
    let timestamp = u64::from_be_bytes(payload[5..13].try_into().ok()?);
    Some((counter, timestamp))
}

fn stamp_bytes(counter: u32, timestamp_us: u64) -> [u8; CODE_BYTES] {
    let mut b = [0u8; CODE_BYTES];
    b[0] = MAGIC;
    b[1..5].copy_from_slice(&counter.to_be_bytes());
    b[5..13].copy_from_slice(&timestamp_us.to_be_bytes());
    b[13] = crc8(&b[..13]);
    b
}

/// CRC-8, polynomial 0x07.
fn crc8(data: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &byte in data {
        crc ^= byte;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Fills a rectangle, clipped to the image.
pub(crate) fn fill_rect(
    image: &mut RgbImage,
    x: usize,
    y: usize,
    w: usize,
    h: usize,
    colour: [u8; 3],
) {
    let (iw, ih) = (image.width(), image.height());
    let (x1, y1) = ((x + w).min(iw), (y + h).min(ih));
    if x >= x1 || y >= y1 {
        return;
    }
    for row in image
        .as_bytes_mut()
        .chunks_exact_mut(iw * 3)
        .take(y1)
        .skip(y)
    {
        for px in row[x * 3..x1 * 3].chunks_exact_mut(3) {
            px.copy_from_slice(&colour);
        }
    }
}

/// Formats numbers on the stack, so rendering a frame allocates nothing.
#[derive(Default)]
struct TextBuf {
    buf: [u8; 32],
    len: usize,
}

impl TextBuf {
    fn write(&mut self, args: std::fmt::Arguments<'_>) {
        // Our strings are at most 21 ASCII bytes; anything longer is cut.
        let _ = std::fmt::Write::write_fmt(self, args);
    }
    fn clear(&mut self) {
        self.len = 0;
    }
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl std::fmt::Write for TextBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_reads_back_from_raw_pixels() {
        for (w, h) in [(320, 240), (640, 480), (1280, 720), (333, 201)] {
            let pattern = TestPattern::new(w, h);
            let mut img = RgbImage::default();
            pattern.render(0xDEAD_BEEF, 1_712_345_678_123_456, &mut img);
            assert_eq!(
                decode_pattern_stamp(&img),
                Some((0xDEAD_BEEF, 1_712_345_678_123_456)),
                "{w}x{h}"
            );
        }
    }

    #[test]
    fn other_images_have_no_stamp() {
        assert_eq!(decode_pattern_stamp(&RgbImage::new(640, 480)), None);
        assert_eq!(decode_pattern_stamp(&RgbImage::new(4, 4)), None);
        let mut img = RgbImage::default();
        TestPattern::new(640, 480).render(7, 9, &mut img);
        // Flip one code block: the CRC catches it.
        let l = PatternLayout::for_size(640, 480);
        let (x, y) = l.block_origin(40);
        let old = img.pixel(x + 2, y + 2).unwrap()[0];
        fill_rect(&mut img, x, y, l.block, l.block, [255 - old; 3]);
        assert_eq!(decode_pattern_stamp(&img), None);
    }

    #[test]
    fn bars_sit_where_the_layout_says_and_the_square_moves() {
        let pattern = TestPattern::new(640, 480);
        let l = pattern.layout();
        let mut a = RgbImage::default();
        let mut b = RgbImage::default();
        pattern.render(0, 0, &mut a);
        pattern.render(10, 0, &mut b);
        let y = (l.panel_bottom + l.bars_bottom) / 2;
        for (i, colour) in BAR_COLOURS.iter().enumerate() {
            assert_eq!(a.pixel(i * 80 + 40, y), Some(*colour));
        }
        let mover_row =
            |img: &RgbImage| (0..640).find(|&x| img.pixel(x, l.bars_bottom + 2) == Some(MOVER));
        assert!(
            mover_row(&b) > mover_row(&a),
            "{:?} {:?}",
            mover_row(&a),
            mover_row(&b)
        );
    }

    #[test]
    fn tiny_and_empty_sizes_do_not_panic() {
        for (w, h) in [(0, 0), (1, 1), (7, 3), (40, 30), (3, 400)] {
            let mut img = RgbImage::default();
            TestPattern::new(w, h).render(u32::MAX, u64::MAX, &mut img);
            assert_eq!((img.width(), img.height()), (w, h));
        }
    }
}
