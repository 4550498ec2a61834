//! The `file` fuzz target: a [`FileService`] over a fresh share and inbox
//! per run, driven by a script.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lanlink_proto::file::ContentHash;
use lanlink_proto::{Message, StreamId};
use lanlink_transport::ConnId;

use super::{check_sent, events, Event, Stats};
use crate::file::{FileConfig, FileService};

/// What a path is, as seen without following symlinks.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

/// A temporary folder holding `share/`, `inbox/` and `outside/` (which the
/// service must never touch), with symlinks out of both served folders.
/// Removed on drop.
struct Folders {
    root: PathBuf,
}

impl Folders {
    fn new() -> Folders {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let root =
            std::env::temp_dir().join(format!("lanlink-fuzz-file-{}-{run}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let folders = Folders { root };
        let (share, inbox, outside) = (folders.share(), folders.inbox(), folders.outside());
        for dir in [share.join("sub"), inbox.clone(), outside.clone()] {
            std::fs::create_dir_all(dir).expect("create fuzz folders");
        }
        let write = |path: PathBuf, data: &[u8]| std::fs::write(path, data).expect("write");
        write(share.join("a.txt"), b"hello world\n");
        write(share.join("sub/b.bin"), &[7u8; 3000]);
        write(inbox.join("old.txt"), b"uploaded earlier\n");
        write(outside.join("secret"), b"top secret\n");
        let link = |target: &Path, link: PathBuf| {
            std::os::unix::fs::symlink(target, link).expect("symlink");
        };
        link(&outside.join("secret"), share.join("link"));
        link(&outside, share.join("outdir"));
        link(&outside, inbox.join("escape"));
        folders
    }

    fn share(&self) -> PathBuf {
        self.root.join("share")
    }

    fn inbox(&self) -> PathBuf {
        self.root.join("inbox")
    }

    fn outside(&self) -> PathBuf {
        self.root.join("outside")
    }

    /// Everything under the root, by relative path.
    fn snapshot(&self) -> BTreeMap<String, Entry> {
        let mut entries = BTreeMap::new();
        walk(&self.root, "", &mut entries);
        entries
    }
}

impl Drop for Folders {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn walk(dir: &Path, prefix: &str, entries: &mut BTreeMap<String, Entry>) {
    let Ok(list) = std::fs::read_dir(dir) else {
        return;
    };
    for item in list.flatten() {
        let name = format!("{prefix}{}", item.file_name().to_string_lossy());
        let path = item.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let entry = if meta.file_type().is_symlink() {
            Entry::Link(std::fs::read_link(&path).unwrap_or_default())
        } else if meta.is_dir() {
            walk(&path, &format!("{name}/"), entries);
            Entry::Dir
        } else {
            Entry::File(std::fs::read(&path).unwrap_or_default())
        };
        entries.insert(name, entry);
    }
}

/// Runs a script against a fresh [`FileService`] serving a fresh share and
/// inbox. Connections are known to each other by the names they connected
/// with (for offers to another user), and frames from a connection that is
/// not connected are dropped, as the hub does. Checks:
///
/// - after every event, that everything it sends goes to a connected client
///   and encodes, and that every upload it confirmed (`FileComplete`) is
///   still in the inbox with the content it confirmed (overwriting is off,
///   so nothing may replace or remove it);
/// - at the end, once everyone has left, that no transfer remains;
/// - and that on disk nothing changed but new files and folders inside the
///   inbox: the share, `outside/`, the inbox's earlier file and its symlink
///   out are as they were, and the service created no symlink.
///
/// # Panics
/// When a check fails.
pub fn run(data: &[u8]) -> Stats {
    let folders = Folders::new();
    let before = folders.snapshot();
    let mut file = FileService::new(FileConfig {
        share: Some(folders.share()),
        inbox: Some(folders.inbox()),
        max_upload_size: 64 * 1024,
        min_free_space: 0,
        allow_overwrite: false,
        chunk_size: 1024,
        // Every partial file nobody is writing goes at the next sweep
        // (the script's ticks drive it).
        partial_max_age: Some(Duration::ZERO),
        ..FileConfig::default()
    });
    let mut clock = Instant::now();
    let mut connected: BTreeMap<ConnId, String> = BTreeMap::new();
    let mut stats = Stats::default();
    let mut out = Vec::new();
    // Accepted uploads by transfer, then confirmed ones by name.
    let mut uploads: BTreeMap<(ConnId, StreamId), String> = BTreeMap::new();
    let mut published: BTreeMap<String, ContentHash> = BTreeMap::new();
    for event in events(data) {
        match event {
            Event::Connect { conn, name, .. } => {
                stats.connects += 1;
                connected.insert(conn, name);
            }
            Event::Disconnect { conn } => {
                connected.remove(&conn);
                file.disconnect(conn, &mut out);
                file.work_inline(&mut out);
            }
            Event::Frame { conn, frame, .. } => {
                let Some(name) = connected.get(&conn) else {
                    continue;
                };
                stats.frames += 1;
                let key = (conn, frame.stream);
                let upload = match &frame.message {
                    Message::FileOffer(o) => {
                        // A new offer on a stream starts a new transfer.
                        uploads.remove(&key);
                        o.to.is_none().then(|| o.name.clone())
                    }
                    _ => None,
                };
                let lookup = |nick: &str| {
                    connected
                        .iter()
                        .find(|(_, n)| n.as_str() == nick)
                        .map(|(c, _)| *c)
                };
                file.handle(
                    conn,
                    name,
                    frame.stream,
                    frame.message,
                    clock,
                    &lookup,
                    &mut out,
                );
                // The jobs run at once here; the server runs them on its
                // workers, in the same order per connection.
                file.work_inline(&mut out);
                for o in out.iter().filter(|o| (o.to, o.frame.stream) == key) {
                    match &o.frame.message {
                        Message::FileAccept(_) => {
                            if let Some(name) = &upload {
                                uploads.insert(key, name.clone());
                            }
                        }
                        Message::FileComplete(c) => {
                            if let Some(name) = uploads.remove(&key) {
                                published.insert(name, c.hash);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Event::Tick(d) => {
                clock += d;
                file.tick(clock);
                file.work_inline(&mut out);
            }
        }
        check_sent("file", &out, &connected);
        stats.sent += out.len();
        out.clear();
        for (name, hash) in &published {
            let content = std::fs::read(folders.inbox().join(name)).unwrap_or_default();
            assert!(
                blake3::hash(&content).as_bytes() == hash,
                "the confirmed upload {name:?} was replaced or removed"
            );
        }
    }
    for conn in std::mem::take(&mut connected).into_keys() {
        file.disconnect(conn, &mut out);
    }
    file.work_inline(&mut out);
    assert_eq!(file.transfer_count(), 0, "transfers outlived their clients");
    drop(file);
    check_disk(&before, &folders.snapshot());
    stats
}

/// Only new files and folders inside the inbox may differ.
fn check_disk(before: &BTreeMap<String, Entry>, after: &BTreeMap<String, Entry>) {
    for (name, entry) in before {
        assert_eq!(after.get(name), Some(entry), "{name} changed or vanished");
    }
    for (name, entry) in after {
        if before.contains_key(name) {
            continue;
        }
        assert!(
            name.starts_with("inbox/"),
            "{name} appeared outside the inbox"
        );
        assert!(
            !matches!(entry, Entry::Link(_)),
            "the service created the symlink {name}"
        );
    }
}
