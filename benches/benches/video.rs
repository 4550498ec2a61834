//! Video: JPEG encode and decode through `lanlink-video` (libjpeg-turbo)
//! at 640×480, 1280×720 and 1920×1080, YUYV camera frames straight to JPEG,
//! and test-pattern drawing, each reported in frames per second
//! (`Throughput::Elements`, one element per frame).
//!
//! After the Criterion groups, the same run times our encoder and decoder
//! against `tjbench` (libjpeg-turbo's own benchmark, Debian package
//! `libjpeg-turbo-progs`) on the *same* image file: a deterministic
//! diamond-square plasma, the kind of image `convert plasma:fractal` makes,
//! at quality 80 with 4:2:0, one core. Both sides are measured in three
//! interleaved rounds of about a second and the best of each kept, so that
//! load from other processes hits both alike. It prints a table with the
//! ratios.
//!
//! Targets: 1080p encode at least 100 frames/s on one core; encode and
//! decode at least 0.9× tjbench.
//!
//! ```text
//! cargo bench -p lanlink-benches --bench video
//! LANLINK_SKIP_TJBENCH=1 cargo bench -p lanlink-benches --bench video   # Criterion only
//! ```

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use lanlink_video::{
    JpegConfig, JpegDecoder, JpegEncoder, RawFormat, RawFrame, RgbImage, TestPattern,
};

const SIZES: [(usize, usize); 3] = [(640, 480), (1280, 720), (1920, 1080)];
const QUALITY: u8 = 80;
/// The tjbench comparison: rounds per side, and time per measurement.
const ROUNDS: usize = 3;
const ROUND: Duration = Duration::from_secs(1);

/// Diamond-square plasma, one independent field per colour channel, so the
/// image has smooth gradients and fine detail at every scale like a photo
/// (or ImageMagick's `plasma:fractal`). Deterministic for a given size.
/// Amplitudes are tuned so that 1280×720 at Q80 compresses to about the
/// same size as a `plasma:fractal` image does (≈125 KB vs ≈128 KB).
fn plasma(width: usize, height: usize) -> RgbImage {
    let n = (width.max(height) - 1).next_power_of_two();
    let side = n + 1;
    let mut state = 0x2545_F491_4F6C_DD1Du64 ^ (width as u64) << 32 ^ height as u64;
    let mut rand = move || {
        // xorshift64*: plenty for noise.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut image = RgbImage::new(width, height);
    for channel in 0..3 {
        let mut grid = vec![0.0f64; side * side];
        for &(x, y) in &[(0, 0), (n, 0), (0, n), (n, n)] {
            grid[y * side + x] = 128.0 + 200.0 * rand();
        }
        let (mut step, mut amplitude) = (n, 250.0);
        while step > 1 {
            let half = step / 2;
            for y in (half..n).step_by(step) {
                for x in (half..n).step_by(step) {
                    let corners = [
                        (x - half, y - half),
                        (x + half, y - half),
                        (x - half, y + half),
                        (x + half, y + half),
                    ];
                    let mean = corners
                        .iter()
                        .map(|&(cx, cy)| grid[cy * side + cx])
                        .sum::<f64>()
                        / 4.0;
                    grid[y * side + x] = mean + amplitude * rand();
                }
            }
            for y in (0..=n).step_by(half) {
                for x in ((y / half + 1) % 2 * half..=n).step_by(step) {
                    let around = [
                        (x.wrapping_sub(half), y),
                        (x + half, y),
                        (x, y.wrapping_sub(half)),
                        (x, y + half),
                    ];
                    let (sum, count) = around
                        .iter()
                        .filter(|&&(ax, ay)| ax <= n && ay <= n)
                        .fold((0.0, 0.0), |(s, c), &(ax, ay)| {
                            (s + grid[ay * side + ax], c + 1.0)
                        });
                    grid[y * side + x] = sum / count + amplitude * rand();
                }
            }
            step = half;
            amplitude *= 0.75;
        }
        for y in 0..height {
            for x in 0..width {
                image.as_bytes_mut()[(y * width + x) * 3 + channel] =
                    grid[y * side + x].clamp(0.0, 255.0) as u8;
            }
        }
    }
    image
}

/// The image as 4:2:2 YUYV, as a webcam would send it (full range).
fn to_yuyv(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::with_capacity(image.width() * image.height() * 2);
    for pair in image.as_bytes().chunks_exact(6) {
        let yuv = |p: &[u8]| {
            let (r, g, b) = (f32::from(p[0]), f32::from(p[1]), f32::from(p[2]));
            (
                0.299 * r + 0.587 * g + 0.114 * b,
                128.0 - 0.1687 * r - 0.3313 * g + 0.5 * b,
                128.0 + 0.5 * r - 0.4187 * g - 0.0813 * b,
            )
        };
        let ((y0, u0, v0), (y1, u1, v1)) = (yuv(&pair[..3]), yuv(&pair[3..]));
        out.extend_from_slice(&[
            y0 as u8,
            ((u0 + u1) / 2.0) as u8,
            y1 as u8,
            ((v0 + v1) / 2.0) as u8,
        ]);
    }
    out
}

fn label((w, h): (usize, usize)) -> String {
    format!("{w}x{h}")
}

fn jpeg(c: &mut Criterion) {
    let config = JpegConfig {
        quality: QUALITY,
        ..JpegConfig::default()
    };
    for size in SIZES {
        let image = plasma(size.0, size.1);
        let mut encoder = JpegEncoder::new(config).unwrap();
        let jpeg = encoder.encode_rgb(&image).unwrap().to_vec();

        let mut group = c.benchmark_group("jpeg_encode");
        group.throughput(Throughput::Elements(1));
        group.bench_function(label(size), |b| {
            b.iter(|| black_box(encoder.encode_rgb(black_box(&image)).unwrap().len()))
        });
        group.finish();

        let mut group = c.benchmark_group("jpeg_decode");
        group.throughput(Throughput::Elements(1));
        let mut decoder = JpegDecoder::new().unwrap();
        let mut out = RgbImage::default();
        group.bench_function(label(size), |b| {
            b.iter(|| decoder.decode_into(black_box(&jpeg), &mut out).unwrap())
        });
        group.finish();
    }

    // A webcam's YUYV frame to JPEG: the camera path when it has no MJPEG.
    let size = (1280, 720);
    let yuyv = to_yuyv(&plasma(size.0, size.1));
    let raw = RawFrame {
        format: RawFormat::Yuyv,
        width: size.0,
        height: size.1,
        stride: size.0 * 2,
        limited_range: true,
        data: &yuyv,
    };
    let mut encoder = JpegEncoder::new(config).unwrap();
    let mut group = c.benchmark_group("jpeg_encode_yuyv");
    group.throughput(Throughput::Elements(1));
    group.bench_function(label(size), |b| {
        b.iter(|| black_box(encoder.encode_raw(black_box(&raw)).unwrap().len()))
    });
    group.finish();
}

fn pattern(c: &mut Criterion) {
    let mut group = c.benchmark_group("pattern_render");
    group.throughput(Throughput::Elements(1));
    for size in SIZES {
        let pattern = TestPattern::new(size.0, size.1);
        let mut image = RgbImage::new(size.0, size.1);
        let mut counter = 0u32;
        group.bench_function(label(size), |b| {
            b.iter(|| {
                counter = counter.wrapping_add(1);
                pattern.render(counter, 1_700_000_000_000_000, &mut image);
            })
        });
    }
    group.finish();
}

/// Frames per second of `f`, run back to back for about `time`.
fn rate(time: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < time {
        f();
        n += 1;
    }
    f64::from(n) / start.elapsed().as_secs_f64()
}

/// tjbench's compress and decompress frame rates for `ppm`.
fn tjbench(ppm: &Path) -> Option<(f64, f64)> {
    let out = Command::new("tjbench")
        .arg(ppm)
        .args([
            &QUALITY.to_string(),
            "-subsamp",
            "420",
            "-benchtime",
            "2",
            "-warmup",
            "1",
            "-nowrite",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rates: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split("Frame rate:").nth(1))
        .filter_map(|r| r.trim().trim_end_matches("fps").trim().parse().ok())
        .collect();
    match rates[..] {
        [compress, decompress, ..] => Some((compress, decompress)),
        _ => {
            eprintln!(
                "could not read tjbench's output:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            None
        }
    }
}

fn write_ppm(path: &Path, image: &RgbImage) {
    let mut data = format!("P6\n{} {}\n255\n", image.width(), image.height()).into_bytes();
    data.extend_from_slice(image.as_bytes());
    std::fs::write(path, data).unwrap();
}

fn compare_with_tjbench() {
    if Command::new("tjbench").output().is_err() {
        println!(
            "\ntjbench comparison skipped: tjbench not found (apt-get install libjpeg-turbo-progs)"
        );
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    println!(
        "\nSame image, same run, one core, Q{QUALITY} 4:2:0, frames/s: lanlink-video (static libjpeg-turbo 3) vs tjbench \
         (Debian's libjpeg-turbo); best of {ROUNDS} interleaved rounds of ~{}s each, so load from other processes hits both sides alike",
        ROUND.as_secs()
    );
    println!(
        "{:>10} {:>9} {:>9} {:>6}   {:>9} {:>9} {:>6}   {:>9}",
        "size", "enc ours", "enc tj", "ratio", "dec ours", "dec tj", "ratio", "JPEG"
    );
    for size in SIZES {
        let image = plasma(size.0, size.1);
        let ppm = dir.join(format!("plasma-{}.ppm", label(size)));
        write_ppm(&ppm, &image);
        let mut encoder = JpegEncoder::new(JpegConfig {
            quality: QUALITY,
            ..JpegConfig::default()
        })
        .unwrap();
        let jpeg = encoder.encode_rgb(&image).unwrap().to_vec();
        let mut decoder = JpegDecoder::new().unwrap();
        let mut out = RgbImage::default();
        let (mut enc, mut dec, mut tj_enc, mut tj_dec) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for _ in 0..ROUNDS {
            enc = enc.max(rate(ROUND, || {
                black_box(encoder.encode_rgb(black_box(&image)).unwrap().len());
            }));
            dec = dec.max(rate(ROUND, || {
                decoder.decode_into(black_box(&jpeg), &mut out).unwrap()
            }));
            let Some((e, d)) = tjbench(&ppm) else { return };
            (tj_enc, tj_dec) = (tj_enc.max(e), tj_dec.max(d));
        }
        println!(
            "{:>10} {enc:>9.1} {tj_enc:>9.1} {:>6.2}   {dec:>9.1} {tj_dec:>9.1} {:>6.2}   {:>7} B",
            label(size),
            enc / tj_enc,
            dec / tj_dec,
            jpeg.len()
        );
        if size == (1920, 1080) {
            let verdict = if enc >= 100.0 { "met" } else { "MISSED" };
            println!("target 1080p encode >= 100 frames/s on one core: {verdict} ({enc:.1})");
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(30);
    targets = jpeg, pattern
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Only under `cargo bench`, not when `cargo test` smoke-runs benches.
    if std::env::args().any(|a| a == "--bench")
        && std::env::var_os("LANLINK_SKIP_TJBENCH").is_none()
    {
        compare_with_tjbench();
    }
}
