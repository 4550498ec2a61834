//! The fixed 14-byte frame header alone: `Header::decode` (validate magic,
//! version, kind, flags and length) and `Header::encode_into`.
//!
//! Target: `Header::decode` under 20 ns.
//!
//! ```text
//! cargo bench -p lanlink-benches --bench header
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lanlink_proto::{Header, Kind, DEFAULT_MAX_PAYLOAD, HEADER_LEN};

fn header(c: &mut Criterion) {
    let header = Header {
        kind: Kind::FileChunk,
        stream: 3,
        len: 64 * 1024,
    };
    let mut bytes = [0u8; HEADER_LEN];
    header.encode_into(&mut bytes);

    let mut group = c.benchmark_group("header");
    group.throughput(Throughput::Bytes(HEADER_LEN as u64));
    group.bench_function("decode", |b| {
        b.iter(|| Header::decode(black_box(&bytes), black_box(DEFAULT_MAX_PAYLOAD)))
    });
    group.bench_function("encode_into", |b| {
        let mut out = [0u8; HEADER_LEN];
        b.iter(|| {
            black_box(&header).encode_into(&mut out);
            black_box(&out);
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Nanosecond-scale functions: a short run already gives tight intervals.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .without_plots();
    targets = header
}
criterion_main!(benches);
