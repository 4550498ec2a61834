//! Shows a video source in a window and optionally saves its frames: the
//! whole crate end to end on one machine (source thread → JPEG → decode →
//! window). For test-pattern frames it also reads the stamp back from the
//! decoded pixels and prints the capture-to-display latency.
//!
//! ```text
//! cargo run -p lanlink-video --example preview -- --list
//! cargo run -p lanlink-video --example preview -- --pattern --size 1280x720 --fps 30
//! cargo run -p lanlink-video --example preview -- --camera 0 --save /tmp/frames --frames 100
//! cargo run -p lanlink-video --example preview -- --file clip.mjpeg --no-window --frames 30
//! ```

use std::path::PathBuf;

use lanlink_video::{
    decode_pattern_stamp, now_us, save_jpeg, CameraSelector, CameraSource, CaptureRequest,
    JpegConfig, JpegDecoder, JpegFileSource, RgbImage, SourceHandle, TestPatternSource, VideoError,
    VideoSource, Viewer,
};

enum Input {
    Pattern,
    Camera(CameraSelector),
    File(PathBuf),
}

struct Args {
    input: Input,
    width: u32,
    height: u32,
    fps: f64,
    save: Option<PathBuf>,
    frames: Option<u64>,
    window: bool,
}

fn parse() -> Result<Option<Args>, String> {
    let mut args = Args {
        input: Input::Pattern,
        width: 640,
        height: 480,
        fps: 30.0,
        save: None,
        frames: None,
        window: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--list" => {
                match lanlink_video::list_cameras() {
                    Ok(cameras) => cameras.iter().for_each(|c| print!("{c}")),
                    Err(e) => println!("{e}"),
                }
                return Ok(None);
            }
            "--pattern" => args.input = Input::Pattern,
            "--camera" => {
                args.input = Input::Camera(value()?.parse().unwrap_or(CameraSelector::Index(0)))
            }
            "--file" => args.input = Input::File(value()?.into()),
            "--size" => {
                let v = value()?;
                let (w, h) = v.split_once('x').ok_or(format!("--size {v}: want WxH"))?;
                (args.width, args.height) = (
                    w.parse().map_err(|_| "bad width")?,
                    h.parse().map_err(|_| "bad height")?,
                );
            }
            "--fps" => args.fps = value()?.parse().map_err(|_| "bad --fps")?,
            "--save" => args.save = Some(value()?.into()),
            "--frames" => args.frames = Some(value()?.parse().map_err(|_| "bad --frames")?),
            "--no-window" => args.window = false,
            other => {
                return Err(format!(
                    "unknown argument {other}; see the top of examples/preview.rs"
                ))
            }
        }
    }
    Ok(Some(args))
}

fn open(args: &Args) -> Result<SourceHandle, VideoError> {
    let (w, h, fps) = (args.width, args.height, args.fps);
    match &args.input {
        Input::Pattern => SourceHandle::spawn("pattern", move || {
            TestPatternSource::new(w as usize, h as usize, fps, JpegConfig::default())
        }),
        Input::Camera(selector) => {
            let (selector, request) = (
                selector.clone(),
                CaptureRequest {
                    width: w,
                    height: h,
                    fps,
                },
            );
            SourceHandle::spawn("camera", move || {
                CameraSource::open(&selector, &request, JpegConfig::default())
            })
        }
        Input::File(path) => {
            let path = path.clone();
            SourceHandle::spawn("file", move || JpegFileSource::open(&path, fps))
        }
    }
}

fn main() {
    let args = match parse() {
        Ok(Some(args)) => args,
        Ok(None) => return,
        Err(e) => {
            eprintln!("preview: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("preview: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), VideoError> {
    let mut source = open(args)?;
    let info = source.info();
    println!(
        "{}: {}x{} @ {:.2} fps",
        info.name,
        info.width,
        info.height,
        f64::from(info.fps_milli) / 1000.0
    );
    let mut viewer = if args.window {
        Some(Viewer::open(
            &info.name,
            info.width.into(),
            info.height.into(),
        )?)
    } else {
        None
    };
    if let Some(dir) = &args.save {
        std::fs::create_dir_all(dir).map_err(|source| VideoError::Io {
            path: dir.clone(),
            op: "create folder",
            source,
        })?;
    }
    let (mut decoder, mut image) = (JpegDecoder::new()?, RgbImage::default());
    let mut shown = 0u64;
    while args.frames.is_none_or(|n| shown < n) && viewer.as_ref().is_none_or(Viewer::is_open) {
        let frame = source.next_frame()?;
        decoder.decode_into(&frame.jpeg, &mut image)?;
        if let Some(viewer) = &mut viewer {
            viewer.show(&image, Some(frame.capture_timestamp_us))?;
        }
        if let Some(dir) = &args.save {
            save_jpeg(dir, frame.seq, &frame)?;
        }
        // (Only live pattern frames: a replayed file's stamps are old.)
        let stamp = matches!(args.input, Input::Pattern)
            .then(|| decode_pattern_stamp(&image))
            .flatten();
        if let Some((counter, stamped_us)) = stamp {
            if counter % 30 == 0 {
                println!(
                    "frame {counter}: {} bytes, {:.1} ms from capture to decoded",
                    frame.jpeg.len(),
                    (now_us().saturating_sub(stamped_us)) as f64 / 1000.0
                );
            }
        }
        shown += 1;
    }
    println!(
        "{shown} frames, {} dropped for being late",
        source.dropped_frames()
    );
    Ok(())
}
