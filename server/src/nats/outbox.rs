//! The chat outbox: room messages said here that JetStream has not yet
//! acknowledged, in order, in memory and (with
//! [`NatsConfig::outbox_file`](super::NatsConfig::outbox_file)) in a file,
//! so that what was said while NATS was away survives a restart of this
//! server and is published when NATS returns.
//!
//! The file is a journal of JSON lines: `{"subject","id","payload"}` when
//! a message is queued, `{"acked": id}` when JetStream took it. It is
//! emptied whenever the queue is, and rewritten with just the queue after
//! [`REWRITE_AFTER`] acknowledgements, so it never holds more than the
//! queue's bound plus that many lines. Lines are written straight to the
//! file (they survive the process, not a power cut). On start the
//! journal's unacknowledged messages are queued again, in order, with
//! their ids: a message whose acknowledgement was lost is stored once by
//! JetStream's duplicate window and shown once by the receivers' dedupe.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::MAX_EVENT_BYTES;

/// Acknowledgement lines after which the journal is rewritten.
pub const REWRITE_AFTER: usize = 4096;

/// A message waiting for JetStream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unsent {
    pub(super) subject: String,
    /// Its event id, `<server>-<seq>` (the `Nats-Msg-Id`).
    pub(super) id: String,
    pub(super) payload: String,
}

/// The queue, and its journal if there is one.
pub(super) struct Outbox {
    queue: VecDeque<Unsent>,
    max: usize,
    journal: Option<Journal>,
    /// Held (locked) while this process owns the journal.
    _lock: Option<File>,
}

struct Journal {
    path: PathBuf,
    file: File,
    acked: usize,
}

impl Outbox {
    /// An outbox of at most `max` messages, journaled in `path` if given;
    /// what the journal holds is queued again. A journal that cannot be
    /// opened is logged and the outbox kept in memory.
    pub(super) fn open(max: usize, path: Option<&Path>) -> Outbox {
        let mut outbox = Outbox {
            queue: VecDeque::new(),
            max: max.max(1),
            journal: None,
            _lock: None,
        };
        let Some(path) = path else { return outbox };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        // Two processes on one journal would replay each other's messages.
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.with_extension("lock"));
        match lock {
            Ok(lock) if fs4::FileExt::try_lock(&lock).is_ok() => outbox._lock = Some(lock),
            _ => {
                tracing::warn!(
                    path = %path.display(),
                    "nats: outbox file in use by another process (or unusable); the outbox is in memory only"
                );
                return outbox;
            }
        }
        outbox.queue = read_journal(path, outbox.max);
        if !outbox.queue.is_empty() {
            tracing::info!(
                messages = outbox.queue.len(),
                path = %path.display(),
                "nats: messages from the outbox file wait for JetStream"
            );
        }
        match OpenOptions::new().create(true).append(true).open(path) {
            Ok(file) => {
                outbox.journal = Some(Journal {
                    path: path.to_owned(),
                    file,
                    acked: 0,
                });
                // Start the journal afresh with just the queue.
                outbox.rewrite();
            }
            Err(e) => tracing::error!(
                path = %path.display(),
                "nats: outbox file unusable, the outbox is in memory only: {e}"
            ),
        }
        outbox
    }

    /// Queues `m`; false (and nothing kept) if the outbox is full.
    pub(super) fn push(&mut self, m: Unsent) -> bool {
        if self.queue.len() >= self.max {
            return false;
        }
        self.append(&json!({"subject": m.subject, "id": m.id, "payload": m.payload}));
        self.queue.push_back(m);
        true
    }

    /// The oldest message waiting.
    pub(super) fn front(&self) -> Option<&Unsent> {
        self.queue.front()
    }

    /// Messages waiting.
    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether none waits.
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The oldest message was acknowledged by JetStream.
    pub(super) fn pop_acked(&mut self) {
        let Some(m) = self.queue.pop_front() else {
            return;
        };
        let rewrite = match &mut self.journal {
            Some(j) => {
                j.acked += 1;
                self.queue.is_empty() || j.acked >= REWRITE_AFTER
            }
            None => false,
        };
        if rewrite {
            self.rewrite();
        } else {
            self.append(&json!({ "acked": m.id }));
        }
    }

    fn append(&mut self, line: &Value) {
        let Some(j) = &mut self.journal else { return };
        let mut text = line.to_string();
        text.push('\n');
        if let Err(e) = j.file.write_all(text.as_bytes()) {
            tracing::error!(path = %j.path.display(), "nats: outbox file write failed: {e}");
        }
    }

    /// Replaces the journal with the queue alone (a new file renamed over
    /// the old one, so a crash leaves one or the other).
    fn rewrite(&mut self) {
        let Some(j) = &mut self.journal else { return };
        let fresh = j.path.with_extension("new");
        let written = (|| -> std::io::Result<File> {
            let mut file = File::create(&fresh)?;
            for m in &self.queue {
                let line = json!({"subject": m.subject, "id": m.id, "payload": m.payload});
                writeln!(file, "{line}")?;
            }
            std::fs::rename(&fresh, &j.path)?;
            OpenOptions::new().append(true).open(&j.path)
        })();
        match written {
            Ok(file) => {
                j.file = file;
                j.acked = 0;
            }
            Err(e) => {
                tracing::error!(path = %j.path.display(), "nats: outbox file rewrite failed: {e}");
            }
        }
    }
}

/// The unacknowledged messages of a journal, in order, at most `max`
/// (the oldest kept); lines that are too long or malformed are skipped.
fn read_journal(path: &Path, max: usize) -> VecDeque<Unsent> {
    let Ok(file) = File::open(path) else {
        return VecDeque::new();
    };
    let mut queue: VecDeque<Unsent> = VecDeque::new();
    let mut acked: HashSet<String> = HashSet::new();
    // Bounded reads: a line is taken whole only up to twice the largest
    // event (its JSON escaping), and so many lines at most.
    let limit = 2 * MAX_EVENT_BYTES + 1024;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    for _ in 0..(max + REWRITE_AFTER + 1) * 2 {
        line.clear();
        match (&mut reader)
            .take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.len() > limit || line.last() != Some(&b'\n') {
            // Too long (or cut short by a crash): skip the rest of it.
            if line.last() != Some(&b'\n') {
                let mut rest = Vec::new();
                let _ = (&mut reader)
                    .take(64 * 1024 * 1024)
                    .read_until(b'\n', &mut rest);
            }
            continue;
        }
        let Ok(value) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        let text = |key: &str| value.get(key)?.as_str().map(str::to_owned);
        if let Some(id) = text("acked") {
            acked.insert(id);
        } else if let (Some(subject), Some(id), Some(payload)) =
            (text("subject"), text("id"), text("payload"))
        {
            if queue.len() < max {
                queue.push_back(Unsent {
                    subject,
                    id,
                    payload,
                });
            }
        }
    }
    queue.retain(|m| !acked.contains(&m.id));
    queue
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(i: u32) -> Unsent {
        Unsent {
            subject: "lanlink.room.6c.said".into(),
            id: format!("a-{i}"),
            payload: format!("{{\"text\":\"line {i}\\n\"}}"),
        }
    }

    #[test]
    fn the_journal_keeps_what_was_not_acknowledged_in_order() {
        let dir = std::env::temp_dir().join(format!("lanlink-outbox-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("outbox.jsonl");
        let _ = std::fs::remove_file(&path);
        let mut outbox = Outbox::open(3, Some(&path));
        assert!(outbox.is_empty());
        for i in 1..=3 {
            assert!(outbox.push(m(i)));
        }
        assert!(!outbox.push(m(4)), "bounded");
        outbox.pop_acked();
        drop(outbox);
        // A restart: 2 and 3, in order, ids kept.
        let mut outbox = Outbox::open(3, Some(&path));
        assert_eq!(outbox.len(), 2);
        assert_eq!(outbox.front(), Some(&m(2)));
        outbox.pop_acked();
        outbox.pop_acked();
        // Emptied: the file is too.
        assert_eq!(std::fs::metadata(&path).map(|m| m.len()).ok(), Some(0));
        assert!(outbox.push(m(5)));
        // A line cut short by a crash and garbage are skipped.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"not json\n{\"subject\":\"x\",\"id\":")
            .unwrap();
        drop((outbox, file));
        let outbox = Outbox::open(3, Some(&path));
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox.front(), Some(&m(5)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
