//! A header that claims a huge payload must not make the decoder allocate for
//! it: memory grows only with bytes that actually arrive.
//!
//! This file installs a counting global allocator, so it is its own test binary.

#![allow(unsafe_code)] // GlobalAlloc is an unsafe trait; we only forward to System.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use lanlink_proto::{FrameDecoder, Header, Kind, DEFAULT_MAX_PAYLOAD, HEADER_LEN};

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn a_header_claiming_16_mib_followed_by_10_bytes_allocates_nothing_large() {
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
