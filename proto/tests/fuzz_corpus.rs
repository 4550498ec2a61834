//! Replays the committed fuzz corpus (`fuzz/corpus/*/*`) through the fuzz
//! targets' own checks, on the stable toolchain, so a plain `cargo test`
//! catches a regression on any input the fuzzer once found worth keeping,
//! without cargo-fuzz or libFuzzer.
//!
//! It also owns the seed corpus, `fuzz/corpus/<target>/seed-*`: one frame of
//! every [`Kind`] (the shared samples of `tests/common`) and a few
//! multi-frame streams. After a change to the wire format, regenerate them:
//!
//! ```text
//! cargo test -p lanlink-proto --test fuzz_corpus -- --ignored regenerate_seed_corpus
//! ```
//!
//! `seeds_decode_and_cover_every_kind` fails until you do.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use lanlink_proto::file::FileChunk;
use lanlink_proto::{Frame, Kind, DEFAULT_MAX_PAYLOAD};

/// The checks the fuzz targets run, shared rather than copied (the comment at
/// the top of that file says why this is an `include!`).
mod checks {
    include!("../../fuzz/src/checks.rs");
}

/// The fuzz targets, each with its own corpus folder.
const TARGETS: &[&str] = &["decode", "round_trip"];

#[test]
fn corpus_replays_cleanly() {
    let files: Vec<PathBuf> = TARGETS
        .iter()
        .flat_map(|target| corpus_files(target, |_| true))
        .collect();
    assert!(
        files.len() >= Kind::ALL.len(),
        "only {} files under fuzz/corpus; regenerate the seeds",
        files.len()
    );

    // Every input goes through both checks, whichever target found it: each
    // check holds for any bytes. Keep going after a failure to name them all.
    let failed: Vec<&PathBuf> = files
        .iter()
        .filter(|path| {
            let data = fs::read(path).expect("readable corpus file");
            panic::catch_unwind(|| {
                checks::check_decode(&data);
                checks::check_round_trip(&data);
            })
            .is_err()
        })
        .collect();
    assert!(failed.is_empty(), "corpus inputs failing: {failed:#?}");
}

/// Stale seeds would still be valid fuzz input, but they would start the
/// fuzzer from frames the decoder rejects: every seed must decode without
/// error, and together they must reach every kind.
#[test]
fn seeds_decode_and_cover_every_kind() {
    for target in TARGETS {
        let mut kinds = BTreeSet::new();
        for path in corpus_files(target, is_seed) {
            let data = fs::read(&path).expect("readable seed");
            let decoded = checks::decode_stream(&data, DEFAULT_MAX_PAYLOAD);
            assert_eq!(
                decoded.error,
                None,
                "{} no longer decodes; regenerate the seeds",
                path.display()
            );
            kinds.extend(decoded.frames.iter().map(|(f, _)| f.kind()));
        }
        let missing: Vec<_> = Kind::ALL.iter().filter(|k| !kinds.contains(k)).collect();
        assert!(
            missing.is_empty(),
            "fuzz/corpus/{target} has no seed of {missing:?}; regenerate the seeds"
        );
    }
}

/// Rewrites every `seed-*` file of every target's corpus.
#[test]
#[ignore = "writes fuzz/corpus; run by hand after a wire-format change"]
fn regenerate_seed_corpus() {
    let seeds = seeds();
    for target in TARGETS {
        for old in corpus_files(target, is_seed) {
            fs::remove_file(old).expect("remove old seed");
        }
        let dir = corpus_root().join(target);
        fs::create_dir_all(&dir).expect("create corpus folder");
        for (name, bytes) in &seeds {
            fs::write(dir.join(name), bytes).expect("write seed");
        }
    }
}

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

fn is_seed(name: &str) -> bool {
    name.starts_with("seed-")
}

/// The files of one target's corpus whose names pass `keep`, sorted.
fn corpus_files(target: &str, keep: fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(corpus_root().join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable corpus entry").path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(keep))
        .collect();
    files.sort();
    files
}

/// The seed corpus as `(file name, bytes)`: one file per kind, then streams.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let samples = common::sample_frames();
    let sample = |kind: Kind| -> Frame {
        samples
            .iter()
            .find(|f| f.kind() == kind)
            .cloned()
            .unwrap_or_else(|| panic!("tests/common has no sample of {kind:?}"))
    };

    let mut out: Vec<(String, Vec<u8>)> = Kind::ALL
        .iter()
        .map(|&kind| (format!("seed-{kind:?}"), wire(&[sample(kind)])))
        .collect();

    let streams = [
        (
            "seed-stream-handshake-and-chat",
            vec![
                sample(Kind::Hello),
                sample(Kind::Welcome),
                sample(Kind::Join),
                sample(Kind::History),
                sample(Kind::ChatMessage),
                sample(Kind::Ping),
                sample(Kind::Pong),
                sample(Kind::Goodbye),
            ],
        ),
        (
            "seed-stream-file-download",
            vec![
                sample(Kind::FileRequest),
                sample(Kind::FileOffer),
                Frame::new(
                    2,
                    FileChunk {
                        offset: 0,
                        data: Bytes::from_static(b"hello"),
                    },
                ),
                Frame::new(
                    2,
                    FileChunk {
                        offset: 5,
                        data: Bytes::from_static(b" world"),
                    },
                ),
                sample(Kind::FileComplete),
            ],
        ),
        (
            "seed-stream-media",
            vec![
                sample(Kind::AudioAnnounce),
                sample(Kind::VideoAnnounce),
                sample(Kind::AudioPacket),
                sample(Kind::VideoFrame),
                sample(Kind::AudioPacket),
                sample(Kind::AudioEnd),
                sample(Kind::VideoEnd),
            ],
        ),
    ];
    for (name, frames) in streams {
        out.push((name.to_owned(), wire(&frames)));
    }

    // Cut off in the middle of its second frame: the decoder must return the
    // first and then wait for more.
    let mut cut = wire(&[sample(Kind::Hello), sample(Kind::ChatMessage)]);
    cut.truncate(cut.len() - 3);
    out.push(("seed-stream-cut-mid-frame".to_owned(), cut));
    out
}

fn wire(frames: &[Frame]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for frame in frames {
        frame.encode(&mut buf).expect("sample frames encode");
    }
    buf.to_vec()
}
