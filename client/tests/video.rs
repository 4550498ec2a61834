//! A publisher's bad frames against a viewer built on the library: through
//! the real server (plain TCP on 127.0.0.1), a frame that is not a JPEG,
//! one whose header claims 65500×65500 pixels and one with two SOI markers
//! are skipped and counted by [`VideoSubscription::next_image`]; the frames
//! around them are shown.
#![cfg(feature = "video")]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use lanlink_client::video::VideoSubscription;
use lanlink_video::{
    EncodedFrame, JpegConfig, JpegEncoder, RgbImage, SourceInfo, VideoError, VideoSource,
};
use support::PlainServer;

const PATIENCE: Duration = Duration::from_secs(10);

/// A JPEG of one colour, `shade` in red.
fn picture(encoder: &mut JpegEncoder, shade: u8) -> Bytes {
    let mut image = RgbImage::new(64, 48);
    for px in image.as_bytes_mut().chunks_mut(3) {
        px.copy_from_slice(&[shade, 0, 0]);
    }
    encoder.encode_rgb_to_bytes(&image).unwrap()
}

/// Plays `frames` in order, one every 100 ms, announced as 64×48.
struct Scripted {
    frames: std::vec::IntoIter<Bytes>,
    seq: u32,
}

impl VideoSource for Scripted {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            name: "scripted".into(),
            width: 64,
            height: 48,
            fps_milli: 10_000,
        }
    }

    fn next_frame(&mut self) -> Result<EncodedFrame, VideoError> {
        std::thread::sleep(Duration::from_millis(100));
        let jpeg = self.frames.next().ok_or(VideoError::SourceStopped {
            name: "scripted".into(),
            panicked: false,
        })?;
        self.seq += 1;
        Ok(EncodedFrame {
            seq: self.seq,
            capture_timestamp_us: lanlink_video::now_us(),
            width: 64,
            height: 48,
            jpeg,
        })
    }
}

/// The red of every picture `watching` shows until the stream ends.
fn shown(watching: &mut VideoSubscription) -> Vec<u8> {
    let mut image = RgbImage::default();
    let mut reds = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        match watching
            .next_image(Duration::from_millis(200), &mut image)
            .expect("bad frames are skipped, not errors")
        {
            Some(_) => reds.push(image.pixel(32, 24).unwrap()[0]),
            None if watching.ended() => break,
            None => {}
        }
    }
    reds
}

#[test]
fn frames_that_do_not_decode_or_claim_a_huge_size_are_skipped_and_counted() {
    let server = PlainServer::start();
    let viewer = server.session("viewer").0;
    let publisher = server.session("mallory").0;
    let mut encoder = JpegEncoder::new(JpegConfig::default()).unwrap();
    // A valid JPEG whose header says 65500×65500: decoding it used to
    // take 12.9 GB (a 30000×30000 one took 2.6 GB and 3.3 s).
    let mut huge = picture(&mut encoder, 10).to_vec();
    let sof = huge.windows(2).position(|p| p == [0xFF, 0xC0]).unwrap();
    huge[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xDC, 0xFF, 0xDC]);
    let good = picture(&mut encoder, 200);
    // Two SOI markers: libjpeg-turbo kept its decoder half way through
    // that header, and every later frame failed too.
    let two_soi = Bytes::from([&[0xFF, 0xD8][..], &good[..]].concat());
    let frames = vec![
        picture(&mut encoder, 50),
        Bytes::from_static(b"\xFF\xD8 not a picture at all"),
        Bytes::from(huge),
        two_soi,
        good,
    ];
    let source = Scripted {
        frames: frames.into_iter(),
        seq: 0,
    };
    // Subscribed before the first frame is sent: the source waits 100 ms.
    let running = publisher
        .publish_video("scripted", source, Some(5))
        .unwrap();
    let mut watching = viewer.watch(Some("scripted"), PATIENCE).unwrap();
    let reds = shown(&mut watching);
    let _ = running.wait();
    assert_eq!(reds.len(), 2, "the two good pictures are shown: {reds:?}");
    assert!((reds[0] as i32 - 50).abs() <= 8, "{reds:?}");
    assert!((reds[1] as i32 - 200).abs() <= 8, "{reds:?}");
    assert_eq!(watching.skipped(), 3);
    // The library says why (it used to print it on stderr instead).
    assert!(
        watching
            .last_skip()
            .is_some_and(|e| !e.to_string().is_empty()),
        "{:?}",
        watching.last_skip()
    );
}
