//! Replays the committed corpus of the `client` fuzz target
//! (`fuzz/corpus/client/*`) through its driver, `fuzz/src/client.rs`, on
//! the stable toolchain: what a client makes of a hostile server's frames
//! (file transfers into a folder, the audio mixer, the session's event
//! routing). It also owns that target's seeds; after changing them or the
//! wire format:
//!
//! ```text
//! cargo test -p lanlink-apps --test fuzz_client -- --ignored regenerate_client_seed_corpus
//! ```

use std::path::{Path, PathBuf};

use bytes::Bytes;
use lanlink_proto::audio::{AudioAnnounce, AudioCodec, AudioEnd, AudioPacket};
use lanlink_proto::chat::{ChatMessage, NickChanged};
use lanlink_proto::control::{Error as ServerError, Goodbye};
use lanlink_proto::file::{
    DirEntry, FileAccept, FileCancel, FileChunk, FileComplete, FileOffer, Listing,
};
use lanlink_proto::video::{VideoAnnounce, VideoCodec, VideoEnd, VideoFrame};
use lanlink_proto::{ErrorCode, Frame, Message};

/// The driver the fuzz target runs (see the comment at its top for why it
/// is included rather than depended on).
mod client {
    include!("../../fuzz/src/client.rs");
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/client")
}

/// `op` then the frames, as the server would write them.
fn script(op: u8, frames: &[Frame]) -> Vec<u8> {
    let mut v = vec![op];
    for f in frames {
        v.extend_from_slice(&f.to_bytes().expect("encodes"));
    }
    v
}

fn on0(m: impl Into<Message>) -> Frame {
    Frame::new(0, m)
}

fn entry(name: &str, size: u64) -> DirEntry {
    DirEntry {
        name: name.into(),
        is_dir: false,
        size,
        modified: 0,
    }
}

fn offer(name: &str, size: u64, from: Option<&str>) -> FileOffer {
    FileOffer {
        name: name.into(),
        size,
        hash: None,
        offset: 0,
        to: None,
        from: from.map(Into::into),
    }
}

/// A file's whole content on the active stream: chunk, then completion
/// with its real hash.
fn content(data: &[u8]) -> Vec<Frame> {
    vec![
        on0(FileChunk {
            offset: 0,
            data: Bytes::copy_from_slice(data),
        }),
        on0(FileComplete {
            size: data.len() as u64,
            hash: *blake3::hash(data).as_bytes(),
        }),
    ]
}

fn audio(name: &str, channels: u8, codec: AudioCodec, frame_us: u32) -> AudioAnnounce {
    AudioAnnounce {
        name: name.into(),
        publisher: "\u{1b}]0;pwned\u{7}".into(),
        codec,
        sample_rate: 48_000,
        channels,
        frame_duration_us: frame_us,
    }
}

/// Real Opus packets of a loud tone, `channels` channels.
fn opus(channels: u16, n: u32) -> Vec<Bytes> {
    let mut enc = lanlink_audio::OpusEncoder::new(lanlink_audio::OpusConfig::voice(channels))
        .expect("an encoder");
    let samples = 960 * usize::from(channels);
    (0..n)
        .map(|k| {
            let pcm: Vec<f32> = (0..samples)
                .map(|i| {
                    if (i / 20 + k as usize) % 2 == 0 {
                        0.99
                    } else {
                        -0.99
                    }
                })
                .collect();
            Bytes::from(enc.encode_to_vec(&pcm).expect("encodes"))
        })
        .collect()
}

fn packets(stream: u32, data: Vec<Bytes>) -> Vec<Frame> {
    data.into_iter()
        .enumerate()
        .map(|(seq, data)| {
            Frame::new(
                stream,
                AudioPacket {
                    seq: seq as u32,
                    timestamp_us: 1_000 * seq as u64,
                    data,
                },
            )
        })
        .collect()
}

/// The `client` target's seeds as `(file name, input)`.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let listing = |entries: Vec<DirEntry>| {
        on0(Listing {
            path: "pkg".into(),
            entries,
            done: true,
        })
    };
    let mut get = vec![listing(vec![entry("a.txt", 5), entry("sub/b.txt", 3)])];
    get.push(on0(offer("pkg/a.txt", 5, None)));
    get.extend(content(b"hello"));
    get.push(on0(offer("pkg/sub/b.txt", 3, None)));
    get.extend(content(b"bee"));
    let escapes = vec![
        listing(vec![
            entry("../../outside/secret", 5),
            entry("escape/secret", 5),
            entry("/etc/passwd", 5),
            entry("existing.txt", 5),
        ]),
        on0(offer("x", 5, None)),
    ];
    let mut accept = vec![on0(offer("gift.txt", 4, Some("eve")))];
    accept.extend(content(b"gift"));
    let mut accept_existing = vec![on0(offer("existing.txt", 6, Some("eve")))];
    accept_existing.extend(content(b"forced"));
    let accept_escape = vec![
        on0(offer("escape/secret", 4, Some("eve"))),
        on0(FileChunk {
            offset: 0,
            data: Bytes::from_static(b"pwnd"),
        }),
    ];
    let mut receive = vec![
        on0(ChatMessage {
            room: "lobby".into(),
            from: "eve".into(),
            text: "look".into(),
            action: false,
            timestamp_ms: 0,
        }),
        Frame::new(8, offer("folder/deep/file.txt", 4, Some("eve"))),
    ];
    receive.extend(
        content(b"deep")
            .into_iter()
            .map(|f| Frame::new(8, f.message)),
    );
    let put = vec![
        on0(FileAccept {
            offset: 5,
            prefix_hash: Some([9; 32]),
        }),
        on0(FileAccept {
            offset: 0,
            prefix_hash: None,
        }),
        on0(FileAccept {
            offset: 1 << 40,
            prefix_hash: None,
        }),
        on0(FileComplete {
            size: 26,
            hash: [0; 32],
        }),
    ];
    let mut list = vec![on0(Listing {
        path: String::new(),
        entries: (0..50)
            .map(|i| entry(&format!("f{i}\u{202e}"), i))
            .collect(),
        done: false,
    })];
    list.push(on0(ServerError {
        code: ErrorCode::OTHER,
        message: "\u{1b}[2J".into(),
    }));
    let cancel = vec![
        on0(offer("gift.txt", 4, Some("eve"))),
        on0(FileCancel {
            code: ErrorCode::HASH_MISMATCH,
            reason: "start over".into(),
        }),
    ];
    let mut mixer = vec![Frame::new(2, audio("a", 1, AudioCodec::OPUS, 20_000))];
    mixer.extend(packets(2, opus(1, 20)));
    mixer.push(Frame::new(4, audio("stereo", 2, AudioCodec::OPUS, 20_000)));
    mixer.extend(packets(4, opus(2, 20)));
    mixer.push(Frame::new(2, AudioEnd));
    let mut weird = vec![
        Frame::new(6, audio("codec", 1, AudioCodec(99), 20_000)),
        Frame::new(8, audio("seven", 7, AudioCodec::OPUS, 20_000)),
        Frame::new(10, audio("short", 1, AudioCodec::OPUS, 2_500)),
        Frame::new(12, audio("garbage", 1, AudioCodec::OPUS, 20_000)),
    ];
    weird.extend(packets(
        12,
        (0..10u8)
            .map(|i| Bytes::from(vec![i.wrapping_mul(37); usize::from(i) * 30]))
            .collect(),
    ));
    weird.extend(packets(6, vec![Bytes::from_static(b"not opus")]));
    let video = VideoAnnounce {
        name: "cam".into(),
        publisher: "\u{202e}eve".into(),
        codec: VideoCodec::MJPEG,
        width: 1,
        height: 1,
        fps_milli: 1,
    };
    let route = vec![
        Frame::new(100, video),
        Frame::new(
            100,
            VideoFrame {
                seq: 1,
                timestamp_us: 0,
                keyframe: true,
                data: Bytes::from_static(b"\xFF\xD8\xFF\xD9"),
            },
        ),
        Frame::new(3, audio("media", 1, AudioCodec::OPUS, 20_000)),
        Frame::new(
            1,
            FileChunk {
                offset: 0,
                data: Bytes::from_static(b"x"),
            },
        ),
        Frame::new(7, offer("gift", 1, Some("eve"))),
        Frame::new(9, offer("nobody", 1, None)),
        on0(NickChanged {
            old: "me".into(),
            new: "you".into(),
        }),
        Frame::new(100, VideoEnd),
        Frame::new(102, VideoEnd),
        on0(Goodbye {
            reason: "bye".into(),
        }),
    ];
    vec![
        ("seed-get", script(0, &get)),
        ("seed-get-escapes", script(0, &escapes)),
        ("seed-accept", script(1, &accept)),
        (
            "seed-accept-existing-forced",
            script(1 | 0x10, &accept_existing),
        ),
        ("seed-accept-existing", script(1 + 7, &accept_existing)),
        ("seed-accept-escape", script(1, &accept_escape)),
        ("seed-accept-cancel", script(1, &cancel)),
        ("seed-receive", script(2, &receive)),
        ("seed-put", script(3, &put)),
        ("seed-list", script(4, &list)),
        ("seed-mixer", script(5, &mixer)),
        ("seed-mixer-one", script(5 | 0x20, &mixer)),
        ("seed-mixer-unplayable", script(5, &weird)),
        ("seed-route", script(6, &route)),
    ]
}

fn is_seed(name: &str) -> bool {
    name.starts_with("seed-") && !name.starts_with("seed-regression-")
}

#[test]
fn the_client_fuzz_corpus_replays_cleanly() {
    let mut n = 0;
    let mut failed = Vec::new();
    for e in std::fs::read_dir(corpus()).expect("fuzz/corpus/client") {
        let path = e.expect("an entry").path();
        let data = std::fs::read(&path).unwrap_or_default();
        if std::panic::catch_unwind(|| client::run(&data)).is_err() {
            failed.push(path);
        }
        n += 1;
    }
    assert!(failed.is_empty(), "corpus inputs failing: {failed:#?}");
    assert!(n >= seeds().len());
}

/// Every seed gets frames past the decoder to the client, and the
/// committed ones are what [`seeds`] writes.
#[test]
fn the_client_seeds_reach_the_client_and_are_current() {
    for (name, bytes) in seeds() {
        let stats = client::run(&bytes);
        assert!(stats.frames > 0 && stats.taken > 0, "{name}: {stats:?}");
        let committed = std::fs::read(corpus().join(name)).unwrap_or_default();
        assert!(
            committed == bytes,
            "fuzz/corpus/client/{name} is stale or missing; regenerate the seeds"
        );
    }
}

/// Rewrites the `client` target's generated seeds.
#[test]
#[ignore = "writes fuzz/corpus/client; run by hand after changing the seeds"]
fn regenerate_client_seed_corpus() {
    std::fs::create_dir_all(corpus()).expect("create the corpus folder");
    for e in std::fs::read_dir(corpus())
        .expect("the corpus folder")
        .flatten()
    {
        if e.file_name().to_str().is_some_and(is_seed) {
            std::fs::remove_file(e.path()).expect("remove an old seed");
        }
    }
    for (name, bytes) in seeds() {
        std::fs::write(corpus().join(name), bytes).expect("write a seed");
    }
}
