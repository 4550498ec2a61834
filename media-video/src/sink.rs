//! Writing frames to disk (`--save DIR`).

use std::path::{Path, PathBuf};

use crate::{EncodedFrame, VideoError};

/// Writes `frame` as `DIR/frame-SEQ.jpg` (sequence number zero-padded to
/// ten digits, so names sort in capture order) and returns the path. The
/// JPEG bytes are written as received: nothing is re-encoded. The folder
/// must exist.
pub fn save_jpeg(
    dir: impl AsRef<Path>,
    seq: u32,
    frame: &EncodedFrame,
) -> Result<PathBuf, VideoError> {
    let path = dir.as_ref().join(format!("frame-{seq:010}.jpg"));
    // Written as a new file: a link planted under the name (the folder
    // may be shared) is replaced, never followed out of the folder.
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(VideoError::io("replace", &path)(e));
        }
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(VideoError::io("create", &path))?;
    std::io::Write::write_all(&mut file, &frame.jpeg).map_err(VideoError::io("write", &path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_sortable_names_and_reports_the_path_on_error() {
        let dir = std::env::temp_dir().join(format!("lanlink-video-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let frame = EncodedFrame {
            seq: 7,
            capture_timestamp_us: 0,
            width: 1,
            height: 1,
            jpeg: bytes::Bytes::from_static(b"\xFF\xD8\xFF\xD9"),
        };
        let path = save_jpeg(&dir, 42, &frame).unwrap();
        assert!(path.ends_with("frame-0000000042.jpg"));
        assert_eq!(std::fs::read(&path).unwrap(), b"\xFF\xD8\xFF\xD9");
        std::fs::remove_dir_all(&dir).unwrap();
        let err = save_jpeg(&dir, 1, &frame).unwrap_err().to_string();
        assert!(
            err.contains("frame-0000000001.jpg") && err.contains("create"),
            "{err}"
        );
    }

    /// A link planted under a frame's name is replaced, not followed out
    /// of the folder.
    #[test]
    fn a_planted_link_is_replaced_not_followed() {
        let dir = std::env::temp_dir().join(format!("lanlink-video-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("frames")).unwrap();
        let victim = dir.join("victim.txt");
        std::fs::write(&victim, b"outside").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("frames/frame-0000000005.jpg")).unwrap();
        let frame = EncodedFrame {
            seq: 5,
            capture_timestamp_us: 0,
            width: 1,
            height: 1,
            jpeg: bytes::Bytes::from_static(b"\xFF\xD8\xFF\xD9"),
        };
        let path = save_jpeg(dir.join("frames"), 5, &frame).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"outside");
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
        assert_eq!(std::fs::read(&path).unwrap(), b"\xFF\xD8\xFF\xD9");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
