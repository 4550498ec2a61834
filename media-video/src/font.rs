//! A 5×7 bitmap font: just enough glyphs to stamp frame numbers and times.

/// Glyph cell: 5 columns and 7 rows of ink, drawn with one column and one
/// row of spacing.
pub(crate) const GLYPH_W: usize = 5;
pub(crate) const GLYPH_H: usize = 7;
pub(crate) const ADVANCE: usize = GLYPH_W + 1;

/// Rows top to bottom; bit 4 is the leftmost column.
fn glyph(c: char) -> [u8; GLYPH_H] {
    match c {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        't' => [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06],
        's' => [0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E],
        '=' => [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00],
        // Unknown characters (and space) draw nothing.
        _ => [0; GLYPH_H],
    }
}

/// Draws `text` with its top-left corner at (`x`, `y`), each font pixel a
/// `scale`×`scale` square of `colour`. Clips at the image edges.
pub(crate) fn draw_text(
    image: &mut crate::RgbImage,
    x: usize,
    y: usize,
    scale: usize,
    colour: [u8; 3],
    text: &str,
) {
    for (i, c) in text.chars().enumerate() {
        let gx = x + i * ADVANCE * scale;
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..GLYPH_W {
                if bits & (0x10 >> col) != 0 {
                    let (px, py) = (gx + col * scale, y + row * scale);
                    crate::pattern::fill_rect(image, px, py, scale, scale, colour);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_digit_has_a_distinct_glyph() {
        let digits: Vec<_> = ('0'..='9').map(glyph).collect();
        for (i, a) in digits.iter().enumerate() {
            assert!(a.iter().any(|&r| r != 0));
            assert!(a.iter().all(|&r| r < 0x20), "glyph {i} is wider than 5");
            for b in &digits[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
