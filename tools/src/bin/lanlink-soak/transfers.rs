//! File transfers, some killed halfway and resumed, with `lanlink get` and
//! `lanlink put` processes.
//!
//! Rounds repeat until the run's end: a download killed (SIGKILL) once its
//! partial file holds half the bytes, then run again to completion; the
//! same for an upload; then an uninterrupted download and upload. After
//! every kill no file may exist under its final name (a partial is
//! `.NAME.lanlink-part` until verified); after every completion the file's
//! BLAKE3 hash must be the source's, and the client's summary line must
//! print the same hash.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lanlink_tools::procs::{self, Lanlink, Proc};

/// The transfer figures of a run.
#[derive(Debug, Default)]
pub struct TransferReport {
    /// Transfers that completed (downloads, uploads).
    pub completed_get: u64,
    /// Uploads that completed.
    pub completed_put: u64,
    /// Transfers killed halfway.
    pub killed: u64,
    /// Of the completed, those whose client said it resumed.
    pub resumed: u64,
    /// Completed transfers whose hash matched the source.
    pub hashes_ok: u64,
    /// Files found under their final name right after a kill.
    pub final_named_after_kill: u64,
    /// Transfers that finished before the kill came (no interruption).
    pub finished_before_kill: u64,
    /// Retries of an upload the server still held from the killed client.
    pub busy_retries: u64,
    /// The longest it held one, from the first retry to success, seconds.
    pub busy_wait_max: f64,
    /// Bytes moved by completed transfers (whole files).
    pub bytes: u64,
    /// Everything that went wrong.
    pub failures: Vec<String>,
}

/// Where the transfers happen.
pub struct Dirs {
    /// The server's share (holds the source files).
    pub share: PathBuf,
    /// The server's inbox.
    pub inbox: PathBuf,
    /// Where downloads go (a fresh subfolder per round).
    pub downloads: PathBuf,
}

/// Names (in the share) of the files transferred.
pub const FILES: [&str; 2] = ["soak-a.bin", "soak-b.bin"];

/// Writes the source files: `size` pseudo-random bytes each.
pub fn make_sources(share: &Path, size: u64) -> Result<(), String> {
    let mut rng = crate::impair::Rng::new(size);
    for name in FILES {
        let mut data = Vec::with_capacity(size as usize);
        while (data.len() as u64) < size {
            data.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        data.truncate(size as usize);
        let path = share.join(name);
        std::fs::write(&path, &data).map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// BLAKE3 of a file, as hex.
pub fn hash_file(path: &Path) -> Result<String, String> {
    let mut hasher = blake3::Hasher::new();
    let mut f = std::fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    std::io::copy(&mut f, &mut hasher).map_err(|e| format!("read {}: {e}", path.display()))?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// The partial file a transfer to `target` writes: `.NAME.lanlink-part` on
/// a client, `.NAME.TAG.lanlink-part` in a server's inbox (the tag names
/// the uploader), whichever is there.
fn partial_of(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let plain = target.with_file_name(format!(".{name}.lanlink-part"));
    let owned_prefix = format!(".{name}.");
    let dir = target.parent().unwrap_or(Path::new("."));
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with(&owned_prefix) && n.ends_with(".lanlink-part"))
        .map_or(plain, |n| target.with_file_name(n))
}

/// Runs rounds until `until` (at most 10,000). `rate` caps the transfers
/// that are to be killed, so that there is a middle to kill them in.
pub fn run(
    lanlink: &Lanlink,
    addr: &str,
    dirs: &Dirs,
    size: u64,
    rate: &str,
    until: Instant,
) -> TransferReport {
    let mut r = TransferReport::default();
    let mut sources = Vec::new();
    for name in FILES {
        match hash_file(&dirs.share.join(name)) {
            Ok(h) => sources.push(h),
            Err(e) => {
                r.failures.push(e);
                return r;
            }
        }
    }
    let t = Transfers {
        lanlink,
        addr,
        dirs,
        size,
        rate,
        sources,
    };
    let mut round = 0u64;
    while Instant::now() < until && round < 10_000 && r.failures.len() < 10 {
        let dest = dirs.downloads.join(format!("round-{round}"));
        if let Err(e) = std::fs::create_dir_all(&dest) {
            r.failures.push(format!("create {}: {e}", dest.display()));
            break;
        }
        match round % 4 {
            0 => t.get(&mut r, 0, &dest, true),
            1 => t.put(&mut r, 0, &format!("up-{round}.bin"), true),
            2 => t.get(&mut r, 1, &dest, false),
            _ => t.put(&mut r, 1, &format!("up-{round}.bin"), false),
        }
        // Verified files are removed, so a long run needs no more space
        // than one round.
        let _ = std::fs::remove_dir_all(&dest);
        round += 1;
    }
    r
}

struct Transfers<'a> {
    lanlink: &'a Lanlink,
    addr: &'a str,
    dirs: &'a Dirs,
    size: u64,
    rate: &'a str,
    sources: Vec<String>,
}

/// How long one uninterrupted transfer may take.
const PATIENCE: Duration = Duration::from_secs(120);

impl Transfers<'_> {
    fn get_cmd(&self, file: usize, dest: &Path, limited: bool) -> std::process::Command {
        let mut cmd = self.lanlink.client("get");
        cmd.arg(self.addr).arg(FILES[file]).arg("-o").arg(dest);
        if limited {
            cmd.args(["--limit-rate", self.rate]);
        }
        cmd
    }

    fn put_cmd(&self, file: usize, as_name: &str, limited: bool) -> std::process::Command {
        let mut cmd = self.lanlink.client("put");
        cmd.arg(self.addr)
            .arg(self.dirs.share.join(FILES[file]))
            .args(["--as", as_name]);
        if limited {
            cmd.args(["--limit-rate", self.rate]);
        }
        cmd
    }

    /// Starts `cmd` and kills it once `target`'s partial file holds half the
    /// file (or after 30 s); then checks nothing has the final name.
    fn start_and_kill(&self, r: &mut TransferReport, cmd: std::process::Command, target: &Path) {
        let label = format!("interrupted transfer to {}", target.display());
        let mut p = match Proc::spawn(label, cmd, false) {
            Ok(p) => p,
            Err(e) => {
                r.failures.push(e);
                return;
            }
        };
        let partial = partial_of(target);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut exited = None;
        while Instant::now() < deadline {
            let held = std::fs::metadata(&partial).map_or(0, |m| m.len());
            if held >= self.size / 2 {
                break;
            }
            if let Some(s) = p.exited() {
                exited = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(s) = exited {
            if s.success() {
                r.finished_before_kill += 1;
            } else {
                r.failures.push(format!(
                    "{} failed before it could be interrupted: {}",
                    p.label,
                    p.stderr_tail()
                ));
            }
            return;
        }
        p.kill();
        r.killed += 1;
        if target.exists() {
            r.final_named_after_kill += 1;
            r.failures.push(format!(
                "{} exists under its final name right after its transfer was killed",
                target.display()
            ));
        }
    }

    /// Runs `cmd` to completion and checks `target` against source `file`.
    fn complete(
        &self,
        r: &mut TransferReport,
        what: &str,
        cmd: impl Fn() -> std::process::Command,
        target: &Path,
        file: usize,
    ) -> bool {
        // An upload resumed right after its client was killed can find the
        // server still holding the old transfer: it has not yet read the
        // close (on a delayed or lossy path, not before the data in flight
        // has arrived). It refuses with "being uploaded" until then; retry
        // for up to 15 s and record how long that took.
        let first = Instant::now();
        for attempt in 0..75 {
            let (status, out, err) = match procs::run(what, cmd(), PATIENCE) {
                Ok(x) => x,
                Err(e) => {
                    r.failures.push(e);
                    return false;
                }
            };
            match status {
                Some(s) if s.success() => {
                    if attempt > 0 {
                        r.busy_wait_max = r.busy_wait_max.max(first.elapsed().as_secs_f64());
                    }
                    if out.iter().any(|l| l.starts_with("resuming ")) {
                        r.resumed += 1;
                    }
                    return self.verify(r, what, &out, target, file);
                }
                Some(_) if attempt < 74 && err.contains("being uploaded") => {
                    r.busy_retries += 1;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Some(s) => {
                    r.failures.push(format!("{what}: exited with {s}: {err}"));
                    return false;
                }
                None => {
                    r.failures
                        .push(format!("{what}: did not finish within {PATIENCE:?}: {err}"));
                    return false;
                }
            }
        }
        false
    }

    fn verify(
        &self,
        r: &mut TransferReport,
        what: &str,
        out: &[String],
        target: &Path,
        file: usize,
    ) -> bool {
        let want = &self.sources[file];
        match hash_file(target) {
            Ok(h) if h == *want => {
                // The client prints the first 8 bytes of the hash it verified.
                let printed = out
                    .iter()
                    .find_map(|l| l.split("blake3 ").nth(1))
                    .map(|h| h.trim_end_matches('…').to_owned());
                if printed
                    .as_ref()
                    .is_some_and(|p| !want.starts_with(p.as_str()))
                {
                    r.failures.push(format!(
                        "{what}: the client printed hash {printed:?}, the file's is {want}"
                    ));
                    return false;
                }
                r.hashes_ok += 1;
                r.bytes += self.size;
                if partial_of(target).exists() {
                    r.failures.push(format!(
                        "{what}: a partial file is left next to the completed {}",
                        target.display()
                    ));
                }
                true
            }
            Ok(h) => {
                r.failures.push(format!(
                    "{what}: {} has BLAKE3 {h}, the source {want}",
                    target.display()
                ));
                false
            }
            Err(e) => {
                r.failures.push(format!("{what}: {e}"));
                false
            }
        }
    }

    fn get(&self, r: &mut TransferReport, file: usize, dest: &Path, interrupt: bool) {
        let target = dest.join(FILES[file]);
        if interrupt {
            self.start_and_kill(r, self.get_cmd(file, dest, true), &target);
            if target.exists() {
                return; // reported, or it finished before the kill
            }
        }
        let what = format!("get {}", FILES[file]);
        if self.complete(r, &what, || self.get_cmd(file, dest, false), &target, file) {
            r.completed_get += 1;
        }
    }

    fn put(&self, r: &mut TransferReport, file: usize, as_name: &str, interrupt: bool) {
        let target = self.dirs.inbox.join(as_name);
        if interrupt {
            self.start_and_kill(r, self.put_cmd(file, as_name, true), &target);
            if target.exists() {
                let _ = std::fs::remove_file(&target);
                return;
            }
        }
        let what = format!("put {} as {as_name}", FILES[file]);
        if self.complete(
            r,
            &what,
            || self.put_cmd(file, as_name, false),
            &target,
            file,
        ) {
            r.completed_put += 1;
        }
        let _ = std::fs::remove_file(&target);
    }
}
