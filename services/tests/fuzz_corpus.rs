//! Replays the committed corpus of the service fuzz targets
//! (`fuzz/corpus/{chat,file,media}/*`) through the drivers the targets run,
//! `lanlink_services::fuzzing`, on the stable toolchain: a plain
//! `cargo test` catches a regression on any input the fuzzer once found
//! worth keeping, without cargo-fuzz or libFuzzer.
//!
//! It also owns those targets' seeds, `fuzz/corpus/<target>/seed-*`: short
//! scripts of the usual conversations (see the script format in
//! `services/src/fuzzing/mod.rs`). After a change to the wire format or to
//! the seeds below, regenerate them:
//!
//! ```text
//! cargo test -p lanlink-services --test fuzz_corpus -- --ignored regenerate_seed_corpus
//! ```
//!
//! `seeds_reach_their_service` fails until you do.

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use lanlink_proto::audio::{AudioAnnounce, AudioCodec, AudioEnd, AudioPacket, AudioSubscribe};
use lanlink_proto::chat::{
    ChatMessage, HistoryRequest, Join, Leave, PrivateMessage, RosterRequest, SetNick,
};
use lanlink_proto::file::{
    FileAccept, FileCancel, FileChunk, FileComplete, FileOffer, FileRequest, ListRequest,
};
use lanlink_proto::video::{VideoAnnounce, VideoCodec, VideoFrame, VideoSubscribe};
use lanlink_proto::{ErrorCode, CONTROL_STREAM};
use lanlink_services::fuzzing::{self, Script, Stats};
use lanlink_services::media::FIRST_MEDIA_STREAM;

/// A fuzz target's driver.
type Driver = fn(&[u8]) -> Stats;

/// The service fuzz targets and their drivers.
const TARGETS: &[(&str, Driver)] = &[
    ("chat", fuzzing::chat::run),
    ("file", fuzzing::file::run),
    ("media", fuzzing::media::run),
];

#[test]
fn corpus_replays_cleanly() {
    let files: Vec<PathBuf> = TARGETS
        .iter()
        .flat_map(|(target, _)| corpus_files(target, |_| true))
        .collect();
    assert!(
        files.len() >= 3 * TARGETS.len(),
        "only {} files under fuzz/corpus/{{chat,file,media}}; regenerate the seeds",
        files.len()
    );
    // Any script is valid input for every driver: replay each through all
    // three. Keep going after a failure to name them all.
    let failed: Vec<(&str, &PathBuf)> = files
        .iter()
        .flat_map(|path| {
            // A fuzzer running on the corpus replaces inputs as it shrinks
            // them: one that vanished since the listing is no failure.
            let data = match fs::read(path) {
                Ok(data) => data,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => panic!("{}: {e}", path.display()),
            };
            TARGETS
                .iter()
                .filter(move |(_, run)| panic::catch_unwind(|| run(&data)).is_err())
                .map(move |(target, _)| (*target, path))
        })
        .collect();
    assert!(failed.is_empty(), "corpus inputs failing: {failed:#?}");
}

/// A seed that no longer gets a frame past the decoder to its service (after
/// a wire-format change, say) would start the fuzzer from nothing useful.
#[test]
fn seeds_reach_their_service() {
    for (target, run) in TARGETS {
        let seeds = corpus_files(target, is_seed);
        assert!(!seeds.is_empty(), "fuzz/corpus/{target} has no seeds");
        for path in seeds {
            let stats = run(&fs::read(&path).expect("readable seed"));
            assert!(
                stats.frames > 0 && stats.sent > 0,
                "{}: {stats:?}; regenerate the seeds",
                path.display()
            );
        }
    }
}

/// The committed seeds are exactly what [`seeds`] writes.
#[test]
fn seeds_are_current() {
    for (target, _) in TARGETS {
        for (name, bytes) in seeds(target) {
            let path = corpus_root().join(target).join(&name);
            let committed = fs::read(&path).unwrap_or_default();
            assert!(
                committed == bytes,
                "{} is stale or missing; regenerate the seeds",
                path.display()
            );
        }
    }
}

/// Rewrites the generated `seed-*` files of the service targets' corpora.
#[test]
#[ignore = "writes fuzz/corpus; run by hand after changing the seeds or the wire format"]
fn regenerate_seed_corpus() {
    for (target, _) in TARGETS {
        for old in corpus_files(target, is_seed) {
            fs::remove_file(old).expect("remove old seed");
        }
        let dir = corpus_root().join(target);
        fs::create_dir_all(&dir).expect("create corpus folder");
        for (name, bytes) in seeds(target) {
            fs::write(dir.join(name), bytes).expect("write seed");
        }
    }
}

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// The seeds [`seeds`] writes; `seed-regression-*` inputs, copied from a
/// crash, are kept by hand and only replayed.
fn is_seed(name: &str) -> bool {
    name.starts_with("seed-") && !name.starts_with("seed-regression-")
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

/// One target's seeds as `(file name, script)`.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let scripts = match target {
        "chat" => chat_seeds(),
        "file" => file_seeds(),
        "media" => media_seeds(),
        _ => panic!("no seeds for {target}"),
    };
    scripts
        .into_iter()
        .map(|(name, script)| (format!("seed-{name}"), script.finish()))
        .collect()
}

fn say(room: &str, text: &str) -> ChatMessage {
    ChatMessage::say(room, text)
}

fn join(room: &str, password: Option<&str>) -> Join {
    Join {
        room: room.into(),
        password: password.map(Into::into),
    }
}

fn chat_seeds() -> Vec<(&'static str, Script)> {
    const C: u32 = CONTROL_STREAM;
    let mut rooms = Script::new();
    rooms
        .connect(0, "ada", 0)
        .connect(1, "bob", 0)
        .frame(0, C, say("lobby", "hi bob"))
        .frame(1, C, join("#rust", Some("pw")))
        .frame(0, C, join("#rust", Some("wrong")))
        .frame(0, C, join("#rust", Some("pw")))
        .frame(0, C, say("#rust", "in"))
        .frame(
            1,
            C,
            RosterRequest {
                room: "#rust".into(),
            },
        )
        .frame(
            1,
            C,
            HistoryRequest {
                room: "#rust".into(),
                limit: 10,
            },
        )
        .frame(
            1,
            C,
            Leave {
                room: "#rust".into(),
            },
        )
        .frame(0, C, say("#rust", "alone"))
        .disconnect(0)
        .frame(1, C, say("lobby", "bye"));

    let mut nicks = Script::new();
    nicks
        .connect(0, "ada", 0)
        .connect(1, "ADA", 0)
        .connect(2, "bob", 0)
        .frame(
            0,
            C,
            SetNick {
                name: "carol".into(),
            },
        )
        .frame(
            2,
            C,
            SetNick {
                name: "Carol".into(),
            },
        )
        .frame(
            2,
            C,
            SetNick {
                name: "/bad".into(),
            },
        )
        .connect(1, "ada", 0)
        .frame(
            1,
            C,
            PrivateMessage {
                to: "carol".into(),
                from: String::new(),
                text: "psst".into(),
                action: true,
                timestamp_ms: 0,
            },
        )
        .frame(
            1,
            C,
            PrivateMessage {
                to: "nobody".into(),
                from: String::new(),
                text: "hello?".into(),
                action: false,
                timestamp_ms: 0,
            },
        );

    let mut rate = Script::new();
    rate.connect(0, "ada", 0).connect(1, "bob", 0);
    for _ in 0..5 {
        rate.frame(0, C, say("lobby", "spam"));
    }
    rate.tick(2000)
        .frame(0, C, say("lobby", "calm"))
        .frame(0, C, say("lobby", &"x".repeat(100)));

    // Frames from a connection that never said hello, then one that sends
    // garbage and is cut off, then a frame of the wrong service.
    let mut strangers = Script::new();
    strangers
        .connect(0, "ada", 0)
        .frame(3, C, say("lobby", "who am i"))
        .connect(1, "bob", 0)
        .bytes(1, b"not a lanlink frame at all")
        .frame(0, C, say("lobby", "is bob gone?"))
        .frame(
            0,
            1,
            ListRequest {
                path: String::new(),
                recursive: false,
            },
        );

    vec![
        ("rooms", rooms),
        ("nicks", nicks),
        ("rate-limit", rate),
        ("strangers", strangers),
    ]
}

fn offer(name: &str, data: &[u8], to: Option<&str>) -> FileOffer {
    FileOffer {
        name: name.into(),
        size: data.len() as u64,
        hash: Some(*blake3::hash(data).as_bytes()),
        offset: 0,
        to: to.map(Into::into),
        from: None,
    }
}

fn chunk(offset: u64, data: &'static [u8]) -> FileChunk {
    FileChunk {
        offset,
        data: Bytes::from_static(data),
    }
}

fn complete(data: &[u8]) -> FileComplete {
    FileComplete {
        size: data.len() as u64,
        hash: *blake3::hash(data).as_bytes(),
    }
}

fn request(name: &str) -> FileRequest {
    FileRequest {
        name: name.into(),
        offset: 0,
        prefix_hash: None,
    }
}

fn file_seeds() -> Vec<(&'static str, Script)> {
    let mut download = Script::new();
    download
        .connect(0, "ada", 0)
        .frame(
            0,
            1,
            ListRequest {
                path: String::new(),
                recursive: true,
            },
        )
        .frame(0, 1, request("sub/b.bin"))
        .frame(
            0,
            1,
            FileAccept {
                offset: 3000,
                prefix_hash: None,
            },
        )
        .frame(0, 3, request("a.txt"))
        .frame(0, 5, request("link"))
        .frame(0, 7, request("outdir/secret"))
        .frame(0, 9, request("../outside/secret"))
        .frame(
            0,
            11,
            ListRequest {
                path: "outdir".into(),
                recursive: false,
            },
        );

    let mut upload = Script::new();
    upload
        .connect(0, "ada", 0)
        .frame(0, 1, offer("new/up.txt", b"hello", None))
        .frame(0, 1, chunk(0, b"hel"))
        .frame(0, 1, chunk(3, b"lo"))
        .frame(0, 1, complete(b"hello"))
        .frame(0, 3, offer("half.txt", b"abcdef", None))
        .frame(0, 3, chunk(0, b"abc"))
        .disconnect(0)
        .connect(0, "ada", 0)
        .frame(0, 5, offer("half.txt", b"abcdef", None))
        .frame(0, 5, chunk(3, b"def"))
        .frame(0, 5, complete(b"abcdef"));

    let mut escapes = Script::new();
    escapes.connect(0, "ada", 0);
    for (stream, name) in [
        (1, "escape/x"),
        (3, "../x"),
        (5, "old.txt"),
        (7, "/tmp/x"),
        (9, "a\\..\\b"),
    ] {
        escapes.frame(0, stream, offer(name, b"x", None));
    }
    escapes
        .frame(0, 2, offer("even.txt", b"x", None))
        .frame(0, 11, chunk(0, b"no offer"))
        .frame(
            0,
            13,
            FileCancel {
                code: ErrorCode::OTHER,
                reason: "nothing to cancel".into(),
            },
        );

    // ada sends bob a file through the server: it reaches bob on stream 2.
    let mut relay = Script::new();
    relay
        .connect(0, "ada", 0)
        .connect(1, "bob", 0)
        .frame(0, 1, offer("gift.txt", b"gift", Some("bob")))
        .frame(
            1,
            2,
            FileAccept {
                offset: 0,
                prefix_hash: None,
            },
        )
        .frame(0, 1, chunk(0, b"gift"))
        .frame(0, 1, complete(b"gift"))
        .frame(1, 2, complete(b"gift"))
        .frame(0, 3, offer("again.txt", b"again", Some("bob")))
        .frame(0, 5, offer("self.txt", b"me", Some("ada")))
        .disconnect(1);

    // An upload named like the partial file of another: it must not be
    // taken for that one's partial, resumed and thrown away.
    let mut part_name = Script::new();
    part_name
        .connect(0, "ada", 0)
        .frame(0, 1, offer(".x.lanlink-part", b"mine", None))
        .frame(0, 1, chunk(0, b"mine"))
        .frame(0, 1, complete(b"mine"))
        .frame(0, 3, offer("x", b"other content", None))
        .frame(
            0,
            3,
            FileCancel {
                code: ErrorCode::HASH_MISMATCH,
                reason: "prefix differs".into(),
            },
        );

    vec![
        ("download", download),
        ("part-name", part_name),
        ("upload-and-resume", upload),
        ("escapes", escapes),
        ("relay", relay),
    ]
}

fn mic(name: &str) -> AudioAnnounce {
    AudioAnnounce {
        name: name.into(),
        publisher: "someone else".into(),
        codec: AudioCodec::OPUS,
        sample_rate: 48_000,
        channels: 1,
        frame_duration_us: 20_000,
    }
}

fn cam(name: &str) -> VideoAnnounce {
    VideoAnnounce {
        name: name.into(),
        publisher: String::new(),
        codec: VideoCodec::MJPEG,
        width: 64,
        height: 48,
        fps_milli: 30_000,
    }
}

fn media_seeds() -> Vec<(&'static str, Script)> {
    const MEDIA: u8 = 1;
    let audio = FIRST_MEDIA_STREAM;
    let video = FIRST_MEDIA_STREAM + 2;
    let packet = AudioPacket {
        seq: 1,
        timestamp_us: 20_000,
        data: Bytes::from_static(b"opus"),
    };
    let frame = VideoFrame {
        seq: 1,
        timestamp_us: 33_000,
        keyframe: true,
        data: Bytes::from_static(b"jpeg"),
    };

    let mut relay = Script::new();
    relay
        .connect(0, "ada", MEDIA)
        .connect(1, "bob", MEDIA)
        .frame(0, 1, mic("mic"))
        .frame(0, 3, cam("cam"))
        .frame(1, audio, AudioSubscribe)
        .frame(1, video, VideoSubscribe)
        .frame(0, 1, packet.clone())
        .frame(0, 3, frame.clone())
        .connect(2, "late", MEDIA)
        .frame(0, 1, AudioEnd)
        .frame(0, 3, packet.clone())
        .disconnect(0);

    let mut mistakes = Script::new();
    mistakes
        .connect(0, "ada", MEDIA)
        .connect(1, "bob", 0)
        .frame(0, 1, mic("mic"))
        .frame(1, 1, mic("mic"))
        .frame(1, 1, mic(""))
        .frame(1, 5, packet)
        .frame(1, audio, VideoSubscribe)
        .frame(0, 1, frame)
        .frame(0, 1, say("lobby", "not media"));

    // A publisher renames its stream onto a name another stream has.
    let mut rename = Script::new();
    rename
        .connect(0, "ada", MEDIA)
        .connect(1, "bob", MEDIA)
        .frame(0, 1, mic("mic"))
        .frame(1, 1, cam("cam"))
        .frame(1, 1, cam("mic"));

    vec![("relay", relay), ("mistakes", mistakes), ("rename", rename)]
}
