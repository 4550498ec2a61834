//! Whole frames: `Frame::encode`, `Frame::encode_head` and
//! `FrameDecoder::push` + `decode`, at a 64 B chat line, 1.5 KiB and 64 KiB
//! file chunks and a 256 KiB video frame, each beside a plain memcpy of the
//! same number of bytes (the baseline, measured in the same run); and a 64 B
//! chat frame encoded and decoded together.
//!
//! Every benchmark reports `Throughput::Bytes` of the whole frame (header plus
//! payload), so the `memcpy` line of each `frame/<size>` group is directly
//! comparable to the others. For `encode_head` the figure means "frame bytes
//! made ready for a vectored write per second": it writes only the header and
//! fixed fields and hands the blob back uncopied.
//!
//! Targets: decoding a 64 KiB frame at ≥ 0.5× the 64 KiB memcpy throughput;
//! a 64 B chat frame encode + decode under 150 ns.
//!
//! ```text
//! cargo bench -p lanlink-benches --bench frame
//! ```

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lanlink_benches::{chat_line, AlignedBuf, CASES};
use lanlink_proto::FrameDecoder;

fn frame_sizes(c: &mut Criterion) {
    for case in CASES {
        let frame = case.frame();
        let wire = frame.to_bytes().expect("fixture encodes");
        // The bytes as they would sit in a transport's read buffer. Page
        // aligned and separately allocated, like the memcpy buffers, so the
        // decode and memcpy lines copy from the same kind of source.
        let src = AlignedBuf::copy_of(&wire);

        let mut group = c.benchmark_group(format!("frame/{}", case.label));
        group.throughput(Throughput::Bytes(case.frame_len() as u64));

        group.bench_function("memcpy", |b| {
            let mut dst = AlignedBuf::zeroed(src.as_slice().len());
            b.iter(|| {
                black_box(dst.as_mut_slice()).copy_from_slice(black_box(src.as_slice()));
            })
        });

        group.bench_function("encode", |b| {
            let mut buf = BytesMut::with_capacity(case.frame_len());
            b.iter(|| {
                buf.clear();
                black_box(&frame).encode(&mut buf).expect("encodes");
                black_box(&buf);
            })
        });

        group.bench_function("encode_head", |b| {
            let mut buf = BytesMut::with_capacity(case.frame_len());
            b.iter(|| {
                buf.clear();
                let tail = black_box(&frame).encode_head(&mut buf).expect("encodes");
                black_box(tail);
                black_box(&buf);
            })
        });

        // The realistic receive path: bytes land in the decoder's buffer, and
        // the frame comes out (and is dropped, as a handler would).
        group.bench_function("decode", |b| {
            let mut decoder = FrameDecoder::new();
            b.iter(|| {
                decoder.push(black_box(src.as_slice()));
                decoder.decode().expect("decodes").expect("complete")
            })
        });

        group.finish();
    }
}

fn chat_round_trip(c: &mut Criterion) {
    let frame = chat_line(64);
    let mut group = c.benchmark_group("chat_64B");
    group.throughput(Throughput::Bytes(
        frame.to_bytes().expect("fixture encodes").len() as u64,
    ));
    group.bench_function("encode+decode", |b| {
        let mut buf = BytesMut::with_capacity(256);
        let mut decoder = FrameDecoder::new();
        b.iter(|| {
            buf.clear();
            black_box(&frame).encode(&mut buf).expect("encodes");
            decoder.push(black_box(&buf));
            decoder.decode().expect("decodes").expect("complete")
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // 17 benchmarks at ~3 s each keeps the whole suite near a minute on two
    // cores; the largest case still runs thousands of iterations per sample.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .without_plots();
    targets = frame_sizes, chat_round_trip
}
criterion_main!(benches);
