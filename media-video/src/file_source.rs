//! [`JpegFileSource`]: plays a folder of JPEGs or an MJPEG file, looping.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::source::{fps_milli, Pacer};
use crate::{now_us, EncodedFrame, JpegDecoder, SourceInfo, VideoError, VideoSource};

/// Plays JPEG images at a fixed rate, over and over, without re-encoding.
///
/// The input is either a folder (its `*.jpg` / `*.jpeg` files in name
/// order) or an MJPEG file (JPEGs back to back, as `ffmpeg -f mjpeg` or a
/// camera dump writes them). Everything is read into memory at open: this
/// is for test clips, not films. Each frame is stamped with the time it was
/// played.
#[derive(Debug)]
pub struct JpegFileSource {
    frames: Vec<(Bytes, u16, u16)>,
    next: usize,
    seq: u32,
    pacer: Pacer,
    info: SourceInfo,
}

impl JpegFileSource {
    /// Opens a folder of JPEGs or an MJPEG file to play at `fps`.
    pub fn open(path: impl AsRef<Path>, fps: f64) -> Result<Self, VideoError> {
        let path = path.as_ref();
        let pacer = Pacer::new(fps)?;
        let meta = std::fs::metadata(path).map_err(VideoError::io("open", path))?;
        let (jpegs, skipped) = if meta.is_dir() {
            read_folder(path)?
        } else {
            let data = std::fs::read(path).map_err(VideoError::io("read", path))?;
            (split_mjpeg(&Bytes::from(data)), Vec::new())
        };
        // Only frames that parse: a player should not die on frame 517.
        let mut decoder = JpegDecoder::new()?;
        let mut frames = Vec::with_capacity(jpegs.len());
        for jpeg in jpegs {
            if let Ok((w, h)) = decoder.read_size(&jpeg) {
                if let Ok((w, h)) = crate::frame::jpeg_size(w, h) {
                    frames.push((jpeg, w, h));
                }
            }
        }
        // Announced as large as its largest frame (a viewer refuses frames
        // that claim more than the stream announced).
        let width = frames.iter().map(|f| f.1).max();
        let height = frames.iter().map(|f| f.2).max();
        let (Some(width), Some(height)) = (width, height) else {
            let detail = if skipped.is_empty() {
                "nothing that parses as a JPEG".to_owned()
            } else {
                format!("skipped: {}", skipped.join(", "))
            };
            return Err(VideoError::NoFrames {
                path: path.to_owned(),
                detail,
            });
        };
        Ok(JpegFileSource {
            frames,
            next: 0,
            seq: 0,
            pacer,
            info: SourceInfo {
                name: path.display().to_string(),
                width,
                height,
                fps_milli: fps_milli(fps),
            },
        })
    }

    /// How many frames one loop plays.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Always false: opening fails when there is nothing to play.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

impl VideoSource for JpegFileSource {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    fn next_frame(&mut self) -> Result<EncodedFrame, VideoError> {
        self.pacer.wait();
        let (jpeg, width, height) = self.frames[self.next % self.frames.len()].clone();
        self.next = (self.next + 1) % self.frames.len();
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        Ok(EncodedFrame {
            seq,
            capture_timestamp_us: now_us(),
            width,
            height,
            jpeg,
        })
    }
}

/// The `*.jpg`/`*.jpeg` files of a folder in name order, and the names of
/// the other entries (for the error message when there are no JPEGs).
fn read_folder(dir: &Path) -> Result<(Vec<Bytes>, Vec<String>), VideoError> {
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut skipped = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(VideoError::io("list folder", dir))? {
        let path = entry.map_err(VideoError::io("list folder", dir))?.path();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if matches!(ext.as_deref(), Some("jpg" | "jpeg")) && path.is_file() {
            paths.push(path);
        } else if skipped.len() < 5 {
            skipped.push(
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
        }
    }
    paths.sort();
    let mut jpegs = Vec::with_capacity(paths.len());
    for path in paths {
        let data = std::fs::read(&path).map_err(VideoError::io("read", &path))?;
        jpegs.push(Bytes::from(data));
    }
    Ok((jpegs, skipped))
}

/// Splits concatenated JPEGs (an MJPEG stream) into frames, sharing
/// `data`'s memory. Bytes between images are skipped; a truncated last
/// image is left out.
///
/// Marker segments are walked by their lengths, so an embedded thumbnail
/// (a JPEG inside an APP1 segment) does not end the frame early; in the
/// entropy-coded data a `0xFF` is always followed by `0x00` or a restart
/// marker, so the next other marker is found by scanning.
pub fn split_mjpeg(data: &Bytes) -> Vec<Bytes> {
    let mut frames = Vec::new();
    let mut pos = 0;
    while let Some(start) = find_soi(data, pos) {
        match jpeg_end(data, start) {
            Some(end) => {
                frames.push(data.slice(start..end));
                pos = end;
            }
            None => pos = start + 2,
        }
    }
    frames
}

fn find_soi(data: &[u8], from: usize) -> Option<usize> {
    let rest = data.get(from..)?;
    rest.windows(3)
        .position(|w| w == [0xFF, 0xD8, 0xFF])
        .map(|i| from + i)
}

/// The index just past the EOI of the JPEG starting at `start`.
fn jpeg_end(data: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 2;
    loop {
        // At a marker: skip fill bytes (0xFF 0xFF ...).
        if *data.get(i)? != 0xFF {
            return None;
        }
        while *data.get(i + 1)? == 0xFF {
            i += 1;
        }
        let marker = *data.get(i + 1)?;
        i += 2;
        match marker {
            0xD9 => return Some(i),
            0xD8 | 0x01 | 0xD0..=0xD7 => {} // no length
            _ => {
                let len = usize::from(u16::from_be_bytes([*data.get(i)?, *data.get(i + 1)?]));
                if len < 2 {
                    return None;
                }
                i += len;
                if marker == 0xDA {
                    // Entropy-coded data up to the next real marker.
                    loop {
                        let ff = data.get(i..)?.iter().position(|&b| b == 0xFF)?;
                        i += ff;
                        match *data.get(i + 1)? {
                            0x00 | 0xD0..=0xD7 => i += 2,
                            0xFF => i += 1,
                            _ => break,
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_jpeg(body: &[u8]) -> Vec<u8> {
        // SOI, APP0 with a thumbnail-like EOI inside, SOS with stuffed
        // bytes and a restart marker, EOI.
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x06, 0xFF, 0xD9, 0xFF, 0xD8];
        j.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02]);
        j.extend_from_slice(body);
        j.extend_from_slice(&[0xFF, 0x00, 0x12, 0xFF, 0xD3, 0x34, 0xFF, 0xD9]);
        j
    }

    #[test]
    fn splits_back_to_back_jpegs_and_skips_junk() {
        let (a, b) = (fake_jpeg(b"aaa"), fake_jpeg(b"bb"));
        let mut stream = b"--boundary\r\n".to_vec();
        stream.extend_from_slice(&a);
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(&b);
        stream.extend_from_slice(&a[..a.len() - 3]); // truncated
        let frames = split_mjpeg(&Bytes::from(stream));
        assert_eq!(frames, vec![Bytes::from(a), Bytes::from(b)]);
    }

    #[test]
    fn garbage_never_panics() {
        for junk in [
            &b""[..],
            b"\xFF\xD8",
            b"\xFF\xD8\xFF",
            b"\xFF\xD8\xFF\xE0\x00",
            b"\xFF\xD8\xFF\xDA\x00\x01",
        ] {
            assert!(split_mjpeg(&Bytes::copy_from_slice(junk)).is_empty());
        }
        let j = fake_jpeg(b"x");
        for cut in 0..j.len() {
            assert!(split_mjpeg(&Bytes::copy_from_slice(&j[..cut])).is_empty());
        }
    }
}
