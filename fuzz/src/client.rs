// The `client` fuzz target's driver: what a client makes of a hostile
// server's frames. Kept out of the target so that `apps/tests/fuzz_client.rs`
// replays the committed corpus through the very same code on stable (it
// `include!`s this file, hence no inner doc comments here).
//
// The input: byte 0 picks what is driven (its low four bits modulo 7),
// its bit 4 is the `force` of transfers (overwrite) and bit 5 makes the
// mixer play one stream only; the rest is a byte stream from the server, cut into
// frames by the real decoder (up to the first decode error). Frames on
// stream 0 are delivered on the stream of the operation in progress, so
// that mutations reach it easily.
//
// | byte 0 & 15 % 7 | driven | checks |
// | --- | --- | --- |
// | 0 | `FileClient::get("pkg")` (a listing, then each entry downloaded) | nothing written outside the destination folder, through `..`, absolute names or the symlink there; the pre-existing file and the folder outside untouched (unless `force`, the file may be replaced, never followed) |
// | 1 | `FileClient::accept` of the first `FileOffer` (a relayed file) | the same |
// | 2 | `FileClient::receive`, accepting whatever is offered | the same |
// | 3 | `FileClient::put` of a local file (acks, prefix hashes, completions from the server) | the local file is only read |
// | 4 | `FileClient::list("")` | no panic, no hang |
// | 5 | `audio::Mixer`: announcements added, packets pushed, streams ended, a frame mixed after each | never panics; every sample is finite and within -1..=1 |
// | 6 | the session's event routing (`lanlink_client::fuzz_route`) | never panics |

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lanlink_client::audio::Mixer;
use lanlink_proto::{Frame, FrameDecoder, Message, StreamId};
use lanlink_services::file::{FileClient, FileLink, Quiet};
use lanlink_transport::{CloseReason, TransportError};

/// What a run drove, for the replay test to tell a seed that reaches the
/// client from one the decoder stopped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClientStats {
    /// Frames decoded from the input.
    pub frames: usize,
    /// Frames the client took (read by the file client, mixed, routed).
    pub taken: usize,
}

/// The frames a client's decoder takes off the wire from `bytes`, up to
/// the first error (where a client would close the connection).
pub fn frames_of(bytes: &[u8]) -> Vec<Frame> {
    let mut decoder = FrameDecoder::new();
    decoder.push(bytes);
    let mut frames = Vec::new();
    while let Ok(Some(f)) = decoder.decode() {
        frames.push(f);
        if frames.len() >= 4096 {
            break;
        }
    }
    frames
}

/// A connection whose server says exactly what the input says, then
/// closes.
struct Scripted {
    frames: RefCell<VecDeque<Frame>>,
    next: Cell<StreamId>,
    /// The stream of the operation in progress: the last one opened (0
    /// before any, where an accepted offer's frames stay on stream 0).
    active: Cell<StreamId>,
    taken: Cell<usize>,
}

impl Scripted {
    fn new(frames: Vec<Frame>) -> Scripted {
        Scripted {
            frames: RefCell::new(frames.into()),
            next: Cell::new(1),
            active: Cell::new(0),
            taken: Cell::new(0),
        }
    }
}

impl FileLink for Scripted {
    fn open_stream(&self) -> StreamId {
        let s = self.next.get();
        self.next.set(s.wrapping_add(2));
        self.active.set(s);
        s
    }
    fn send(&self, _: &Frame) -> Result<(), TransportError> {
        Ok(())
    }
    fn recv_timeout(&self, _: Duration) -> Result<Option<Frame>, TransportError> {
        match self.frames.borrow_mut().pop_front() {
            Some(mut f) => {
                self.taken.set(self.taken.get() + 1);
                if f.stream == 0 {
                    f.stream = self.active.get();
                }
                Ok(Some(f))
            }
            None => Err(TransportError::Closed(CloseReason::Local(
                "the fuzz input ended".into(),
            ))),
        }
    }
}

/// A fresh folder per input: `dest/` (where files are received, holding
/// `existing.txt` and a symlink `escape` to `outside/`), `outside/secret`
/// and `local/upload.bin` (what is uploaded).
struct Scene {
    root: PathBuf,
}

const SECRET: &[u8] = b"nobody writes here\n";
const EXISTING: &[u8] = b"was here first\n";
const UPLOAD: &[u8] = b"a file the client uploads\n";

impl Scene {
    fn new() -> Scene {
        static N: AtomicU64 = AtomicU64::new(0);
        let root = std::env::temp_dir().join(format!(
            "lanlink-fuzz-client-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["dest", "outside", "local"] {
            std::fs::create_dir_all(root.join(dir)).expect("create the scene");
        }
        std::fs::write(root.join("outside/secret"), SECRET).expect("write the secret");
        std::fs::write(root.join("dest/existing.txt"), EXISTING).expect("write a file");
        std::fs::write(root.join("local/upload.bin"), UPLOAD).expect("write the upload");
        std::os::unix::fs::symlink("../outside", root.join("dest/escape")).expect("symlink");
        Scene { root }
    }

    fn dest(&self) -> PathBuf {
        self.root.join("dest")
    }

    /// Nothing outside `dest/` changed; inside it, only plain files and
    /// folders were added (the symlink is the one that was there).
    fn check(&self, force: bool) {
        let names = |dir: &Path| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(dir)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        assert_eq!(names(&self.root), ["dest", "local", "outside"]);
        assert_eq!(names(&self.root.join("outside")), ["secret"]);
        assert_eq!(names(&self.root.join("local")), ["upload.bin"]);
        assert_eq!(
            std::fs::read(self.root.join("outside/secret"))
                .ok()
                .as_deref(),
            Some(SECRET)
        );
        assert_eq!(
            std::fs::read(self.root.join("local/upload.bin"))
                .ok()
                .as_deref(),
            Some(UPLOAD)
        );
        let escape = std::fs::symlink_metadata(self.root.join("dest/escape"));
        assert!(escape.is_ok_and(|m| m.file_type().is_symlink()));
        let existing = self.root.join("dest/existing.txt");
        let meta = std::fs::symlink_metadata(&existing);
        assert!(
            meta.is_ok_and(|m| m.is_file()),
            "existing.txt was replaced by a non-file"
        );
        if !force {
            assert_eq!(std::fs::read(&existing).ok().as_deref(), Some(EXISTING));
        }
        walk(&self.dest(), &self.dest().join("escape"));
    }
}

/// Everything under `dir` is a plain file or folder, but `allowed`.
fn walk(dir: &Path, allowed: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path == allowed {
            continue;
        }
        let t = std::fs::symlink_metadata(&path).map(|m| m.file_type());
        match t {
            Ok(t) if t.is_dir() => walk(&path, allowed),
            Ok(t) => assert!(t.is_file(), "{} is neither file nor folder", path.display()),
            Err(_) => {}
        }
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Runs one input (the format is at the top of this file).
pub fn run(data: &[u8]) -> ClientStats {
    let (&op, wire) = data.split_first().unwrap_or((&0, &[]));
    let frames = frames_of(wire);
    let mut stats = ClientStats {
        frames: frames.len(),
        taken: 0,
    };
    let force = op & 0x10 != 0;
    match (op & 0x0f) % 7 {
        mode @ 0..=4 => {
            let scene = Scene::new();
            let mut frames = frames;
            let offer_at = frames
                .iter()
                .position(|f| matches!(f.message, Message::FileOffer(_)));
            // An accepted offer was taken off the wire before the accept
            // (by the session's routing): the file client sees what follows.
            let offer = match (mode, offer_at) {
                (1, Some(at)) => {
                    let f = frames.remove(at);
                    match f.message {
                        Message::FileOffer(o) => Some((f.stream, o)),
                        _ => None,
                    }
                }
                _ => None,
            };
            let link = Scripted::new(frames);
            // The offer an accept starts from is taken too.
            let offered = usize::from(mode == 1 && offer.is_some());
            let mut files = FileClient::new(&link);
            files.timeout = Duration::from_millis(50);
            files.accept_timeout = Duration::from_millis(50);
            let dest = scene.dest();
            let _ = match mode {
                0 => files.get("pkg", &dest, force, &mut Quiet).map(drop),
                1 => match offer {
                    Some((stream, o)) => {
                        files.accept(stream, &o, &dest, force, &mut Quiet).map(drop)
                    }
                    None => Ok(()),
                },
                2 => files
                    .receive(
                        &dest,
                        force,
                        Duration::from_millis(50),
                        &mut |_| true,
                        &mut Quiet,
                    )
                    .map(drop),
                3 => files
                    .put(&scene.root.join("local/upload.bin"), None, &mut Quiet)
                    .map(drop),
                _ => files.list("", true).map(drop),
            };
            stats.taken = link.taken.get() + offered;
            scene.check(force);
        }
        5 => {
            let only = (op & 0x20 != 0).then(|| "a".to_owned());
            let mut mixer = Mixer::new(only);
            let mut now = Instant::now();
            let mut out = vec![0f32; 960];
            for f in frames {
                stats.taken += 1;
                match f.message {
                    Message::AudioAnnounce(a) => {
                        let _ = mixer.add(f.stream, &a);
                    }
                    Message::AudioPacket(p) => mixer.push(f.stream, p, now),
                    Message::AudioEnd(_) => {
                        let _ = mixer.end(f.stream);
                    }
                    _ => {}
                }
                now += Duration::from_millis(20);
                let _ = mixer.mix(now, &mut out);
                assert!(
                    out.iter()
                        .all(|s| s.is_finite() && (-1.0..=1.0).contains(s)),
                    "the mix holds a sample out of range"
                );
            }
            let _ = (mixer.finished(), mixer.stats());
        }
        _ => {
            stats.taken = frames.len();
            let _ = lanlink_client::fuzz_route(frames);
        }
    }
    stats
}
