//! Publishes frames the program draws itself: a colour that cycles.
//!
//! `cargo run -p lanlink-client --example publish_frames -- HOST [FRAMES]`
use lanlink_client::lanlink_video::{
    now_us, EncodedFrame, JpegConfig, JpegEncoder, RgbImage, SourceInfo,
};
use lanlink_client::Session;
use std::time::Duration;

/// A source that paints the whole picture one colour, a new one each frame.
struct Cycle {
    image: RgbImage,
    encoder: JpegEncoder,
    seq: u32,
}

impl lanlink_client::lanlink_video::VideoSource for Cycle {
    fn info(&self) -> SourceInfo {
        let (name, width, height, fps_milli) = ("cycle".into(), 320, 240, 10_000);
        SourceInfo {
            name,
            width,
            height,
            fps_milli,
        }
    }
    fn next_frame(&mut self) -> Result<EncodedFrame, lanlink_client::lanlink_video::VideoError> {
        std::thread::sleep(Duration::from_millis(100)); // 10 frames a second
        let shade = (self.seq * 8 % 256) as u8;
        for px in self.image.as_bytes_mut().chunks_mut(3) {
            px.copy_from_slice(&[shade, 255 - shade, 128]);
        }
        let (seq, capture_timestamp_us) = (self.seq, now_us());
        self.seq += 1;
        let jpeg = self.encoder.encode_rgb_to_bytes(&self.image)?;
        Ok(EncodedFrame {
            seq,
            capture_timestamp_us,
            width: 320,
            height: 240,
            jpeg,
        })
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "127.0.0.1".into());
    let frames = args.next().map(|n| n.parse()).transpose()?;
    // The events are dropped (`_`): held unread they would fill and stop
    // the session.
    let (session, _) = Session::builder(&host).name("painter").connect()?;
    let source = Cycle {
        image: RgbImage::new(320, 240),
        encoder: JpegEncoder::new(JpegConfig::default())?,
        seq: 0,
    };
    let sent = session.publish_video("cycle", source, frames)?.wait()?;
    println!("sent {sent} frames");
    Ok(())
}
