//! Hardware-free sources end to end: frames are real JPEGs of the right
//! size whose pixels carry the counter and capture time.

use std::time::{Duration, Instant};

use lanlink_video::{
    decode_pattern_stamp, save_jpeg, ChromaSubsampling, EncodedFrame, JpegConfig, JpegDecoder,
    JpegFileSource, SourceHandle, TestPatternSource, VideoError, VideoSource,
};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lanlink-video-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn pattern_frames(n: usize, width: usize, height: usize) -> Vec<EncodedFrame> {
    let mut source = TestPatternSource::new(width, height, 1000.0, JpegConfig::default()).unwrap();
    (0..n).map(|_| source.next_frame().unwrap()).collect()
}

#[test]
fn test_pattern_frames_carry_increasing_counters_and_their_capture_time() {
    let mut decoder = JpegDecoder::new().unwrap();
    for (w, h) in [(640, 480), (1280, 720), (320, 240)] {
        let frames = pattern_frames(5, w, h);
        for (i, frame) in frames.iter().enumerate() {
            assert_eq!(
                (
                    frame.width as usize,
                    frame.height as usize,
                    frame.seq as usize
                ),
                (w, h, i)
            );
            let img = decoder.decode(&frame.jpeg).unwrap();
            assert_eq!((img.width(), img.height()), (w, h));
            let stamp = decode_pattern_stamp(&img);
            assert_eq!(
                stamp,
                Some((i as u32, frame.capture_timestamp_us)),
                "{w}x{h} frame {i}"
            );
        }
    }
}

#[test]
fn stamp_survives_low_quality_and_gray_jpeg() {
    let mut decoder = JpegDecoder::new().unwrap();
    for (quality, subsampling) in [
        (30, ChromaSubsampling::Quarter),
        (50, ChromaSubsampling::Gray),
    ] {
        let mut source = TestPatternSource::new(
            320,
            240,
            1000.0,
            JpegConfig {
                quality,
                subsampling,
            },
        )
        .unwrap();
        let frame = source.next_frame().unwrap();
        let img = decoder.decode(&frame.jpeg).unwrap();
        assert_eq!(
            decode_pattern_stamp(&img),
            Some((0, frame.capture_timestamp_us)),
            "q{quality}"
        );
    }
}

#[test]
fn test_pattern_keeps_its_rate() {
    let mut source = TestPatternSource::new(160, 120, 50.0, JpegConfig::default()).unwrap();
    let start = Instant::now();
    for _ in 0..11 {
        source.next_frame().unwrap();
    }
    // Ten intervals of 20 ms (the first frame is immediate).
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(195) && took < Duration::from_millis(600),
        "{took:?}"
    );
    assert_eq!(source.info().fps_milli, 50_000);
    assert!(TestPatternSource::new(160, 120, 0.0, JpegConfig::default()).is_err());
}

#[test]
fn handle_runs_a_source_on_its_thread_and_stops_on_drop() {
    let mut handle = SourceHandle::spawn("pattern", || {
        TestPatternSource::new(320, 240, 200.0, JpegConfig::default())
    })
    .unwrap();
    assert_eq!(handle.info().name, "test-pattern");
    let seqs: Vec<u32> = (0..5).map(|_| handle.next_frame().unwrap().seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
    // A consumer that falls behind gets the newest frames, not a backlog.
    // 200 ms at 200 fps is 40 frames; the queue holds 2.
    std::thread::sleep(Duration::from_millis(200));
    let after = handle.next_frame().unwrap().seq;
    assert!(after > seqs[4] + 5, "stale frame {after} after {seqs:?}");
    assert!(handle.dropped_frames() > 0);
    let start = Instant::now();
    drop(handle);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

/// A source that fails on its third frame.
struct Failing(u32);

impl VideoSource for Failing {
    fn info(&self) -> lanlink_video::SourceInfo {
        lanlink_video::SourceInfo {
            name: "failing".into(),
            width: 1,
            height: 1,
            fps_milli: 1000,
        }
    }
    fn next_frame(&mut self) -> Result<EncodedFrame, VideoError> {
        self.0 += 1;
        if self.0 == 3 {
            return Err(VideoError::InvalidConfig {
                what: "test",
                reason: "third frame".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
        Ok(EncodedFrame {
            seq: self.0,
            capture_timestamp_us: 0,
            width: 1,
            height: 1,
            jpeg: Default::default(),
        })
    }
}

#[test]
fn handle_reports_open_errors_capture_errors_and_then_stopped() {
    let err = SourceHandle::spawn("bad", || {
        TestPatternSource::new(0, 0, 30.0, JpegConfig::default())
    })
    .unwrap_err();
    assert!(
        matches!(err, VideoError::InvalidConfig { what: "size", .. }),
        "{err}"
    );

    let mut handle = SourceHandle::spawn("failing", || Ok(Failing(0))).unwrap();
    let mut got = Vec::new();
    let err = loop {
        match handle.next_frame() {
            Ok(f) => got.push(f.seq),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, VideoError::InvalidConfig { what: "test", .. }),
        "{err}"
    );
    assert!(got.len() <= 2, "{got:?}");
    let err = handle.next_frame().unwrap_err();
    assert!(
        matches!(
            err,
            VideoError::SourceStopped {
                panicked: false,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.to_string(), "video source \"failing\" stopped");
}

#[test]
fn folder_and_mjpeg_file_play_in_order_and_loop() {
    let dir = temp_dir("files");
    let frames = pattern_frames(3, 320, 240);
    for f in &frames {
        save_jpeg(&dir, f.seq, f).unwrap();
    }
    std::fs::write(dir.join("notes.txt"), "not a frame").unwrap();
    let mjpeg = dir.join("clip.mjpeg");
    let mut concatenated = Vec::new();
    for f in &frames {
        concatenated.extend_from_slice(&f.jpeg);
    }
    std::fs::write(&mjpeg, concatenated).unwrap();

    let mut decoder = JpegDecoder::new().unwrap();
    for path in [dir.clone(), mjpeg] {
        let mut source = JpegFileSource::open(&path, 500.0).unwrap();
        assert_eq!(source.len(), 3);
        assert_eq!((source.info().width, source.info().height), (320, 240));
        for i in 0..7u32 {
            let frame = source.next_frame().unwrap();
            assert_eq!(frame.seq, i);
            // Passed through untouched, so the stamp is the original's.
            let original = &frames[i as usize % 3];
            assert_eq!(frame.jpeg, original.jpeg, "{} frame {i}", path.display());
            let img = decoder.decode(&frame.jpeg).unwrap();
            assert_eq!(decode_pattern_stamp(&img).map(|s| s.0), Some(i % 3));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn empty_or_missing_inputs_say_what_they_found() {
    let dir = temp_dir("empty");
    std::fs::write(dir.join("readme.txt"), "x").unwrap();
    let err = JpegFileSource::open(&dir, 30.0).unwrap_err().to_string();
    assert!(
        err.contains("no JPEG frames found") && err.contains("readme.txt"),
        "{err}"
    );
    let junk = dir.join("junk.mjpeg");
    std::fs::write(&junk, b"\xFF\xD8\xFF garbage").unwrap();
    assert!(matches!(
        JpegFileSource::open(&junk, 30.0),
        Err(VideoError::NoFrames { .. })
    ));
    let err = JpegFileSource::open(dir.join("missing"), 30.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing") && err.contains("open"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A source whose thread panics on the first frame.
struct Panicking;

impl VideoSource for Panicking {
    fn info(&self) -> lanlink_video::SourceInfo {
        lanlink_video::SourceInfo {
            name: "panicking".into(),
            width: 1,
            height: 1,
            fps_milli: 1000,
        }
    }
    fn next_frame(&mut self) -> Result<EncodedFrame, VideoError> {
        panic!("deliberate panic in a test source");
    }
}

#[test]
fn a_panicking_source_is_reported_as_such() {
    let mut handle = SourceHandle::spawn("panicking", || Ok(Panicking)).unwrap();
    let err = handle.next_frame().unwrap_err();
    assert!(
        matches!(err, VideoError::SourceStopped { panicked: true, .. }),
        "{err}"
    );
    assert!(err.to_string().ends_with("(its thread panicked)"), "{err}");
}
