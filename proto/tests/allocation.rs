//! A header that claims a huge payload must not make the decoder allocate for
//! it: memory grows only with bytes that actually arrive.
//!
//! Nor may a large frame cost more than its length, or keep the decoder's
//! memory once it is let go.
//!
//! This file installs a counting global allocator, so it is its own test binary.

#![allow(unsafe_code)] // GlobalAlloc is an unsafe trait; we only forward to System.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use lanlink_proto::{FrameDecoder, Header, Kind, DEFAULT_MAX_PAYLOAD, HEADER_LEN};

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);
/// Bytes allocated and not yet freed.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The tests read process-wide counters: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn a_header_claiming_16_mib_followed_by_10_bytes_allocates_nothing_large() {
    let _one = ONE_AT_A_TIME.lock();
    let mut head = [0u8; HEADER_LEN];
    Header {
        kind: Kind::FileChunk,
        stream: 1,
        len: DEFAULT_MAX_PAYLOAD,
    }
    .encode_into(&mut head);

    let mut decoder = FrameDecoder::new();
    LARGEST.store(0, Ordering::Relaxed);
    decoder.push(&head);
    assert_eq!(decoder.decode(), Ok(None));
    decoder.push(&[0u8; 10]);
    assert_eq!(decoder.decode(), Ok(None));
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest < 4096,
        "largest allocation was {largest} bytes for 24 bytes received"
    );
    assert_eq!(decoder.buffered(), HEADER_LEN + 10);
}

const MIB: usize = 1024 * 1024;

/// A 16 MiB frame arriving in 64 KiB reads: the decoder allocates its
/// length once (not the doubled buffer a growing `BytesMut` reaches, 32
/// MiB), the kept frame holds its payload and nothing more, and once it is
/// dropped the decoder holds next to nothing. (Before: 32 MiB allocated,
/// kept alive by the frame's blob.)
#[test]
fn a_large_frame_costs_its_length_once_and_is_let_go_with_it() {
    let _one = ONE_AT_A_TIME.lock();
    let len = DEFAULT_MAX_PAYLOAD as usize - 16;
    let frame = lanlink_proto::Frame::new(
        3,
        lanlink_proto::file::FileChunk {
            offset: 0,
            data: vec![7u8; len].into(),
        },
    )
    .to_bytes()
    .expect("encodes");
    let mut decoder = FrameDecoder::new();
    let base = LIVE.load(Ordering::Relaxed);
    LARGEST.store(0, Ordering::Relaxed);
    let mut got = None;
    for piece in frame.chunks(64 * 1024) {
        decoder.push(piece);
        if let Some(f) = decoder.decode().expect("valid") {
            got = Some(f);
        }
    }
    let got = got.expect("the whole frame");
    let largest = LARGEST.load(Ordering::Relaxed);
    let held = LIVE.load(Ordering::Relaxed).saturating_sub(base);
    assert!(
        largest <= frame.len() + MIB / 4,
        "largest allocation {largest} bytes for a {} byte frame",
        frame.len()
    );
    assert!(
        held <= frame.len() + MIB / 4,
        "{held} bytes held with the frame ({} byte frame)",
        frame.len()
    );
    drop(got);
    let after = LIVE.load(Ordering::Relaxed).saturating_sub(base);
    assert!(
        after <= MIB / 4,
        "{after} bytes held after the frame was dropped"
    );
    assert_eq!(decoder.buffered(), 0);
}
