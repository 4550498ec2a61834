//! The steady state allocates nothing per frame, counted by a global
//! allocator that tallies this thread's allocations.
//!
//! What it cannot see: libjpeg-turbo's own `malloc`s for its per-image
//! working state, which it frees before returning.
#![allow(unsafe_code)] // a GlobalAlloc impl is unsafe by definition

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use lanlink_video::{
    JpegConfig, JpegDecoder, JpegEncoder, RawFormat, RawFrame, RgbImage, TestPattern,
    TestPatternSource, VideoSource,
};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; the counter is a
// const-initialised thread-local Cell, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

#[test]
fn per_frame_work_allocates_nothing_once_warm() {
    let (w, h) = (1280, 720);
    let pattern = TestPattern::new(w, h);
    let mut image = RgbImage::new(w, h);
    let mut encoder = JpegEncoder::new(JpegConfig::default()).unwrap();
    let mut decoder = JpegDecoder::new().unwrap();
    let mut decoded = RgbImage::new(w, h);
    let yuyv = vec![128u8; w * h * 2];
    let raw = RawFrame {
        format: RawFormat::Yuyv,
        width: w,
        height: h,
        stride: 2 * w,
        limited_range: true,
        data: &yuyv,
    };
    let mut jpeg = Vec::new();
    // Warm up: buffers reach their size.
    pattern.render(0, 0, &mut image);
    jpeg.extend_from_slice(encoder.encode_rgb(&image).unwrap());
    encoder.encode_raw(&raw).unwrap();
    encoder.encode_rgb(&image).unwrap();
    decoder.decode_into(&jpeg, &mut decoded).unwrap();

    for counter in 1..=5 {
        assert_eq!(
            allocations(|| pattern.render(
                counter,
                1_700_000_000_000_000 + u64::from(counter),
                &mut image
            )),
            0,
            "render"
        );
        assert_eq!(
            allocations(|| {
                encoder.encode_rgb(&image).unwrap();
            }),
            0,
            "encode_rgb"
        );
        assert_eq!(
            allocations(|| {
                encoder.encode_raw(&raw).unwrap();
            }),
            0,
            "encode_raw"
        );
        assert_eq!(
            allocations(|| decoder.decode_into(&jpeg, &mut decoded).unwrap()),
            0,
            "decode_into"
        );
        // Handing the JPEG out as shared `Bytes` costs exactly one.
        assert_eq!(
            allocations(|| drop(encoder.encode_rgb_to_bytes(&image).unwrap())),
            1,
            "encode_rgb_to_bytes"
        );
    }

    let mut source = TestPatternSource::new(640, 480, 1000.0, JpegConfig::default()).unwrap();
    source.next_frame().unwrap();
    for _ in 0..5 {
        assert_eq!(
            allocations(|| drop(source.next_frame().unwrap())),
            1,
            "TestPatternSource::next_frame"
        );
    }
}
