//! The programs that measure lanlink, and what they share. None of this is
//! installed with `cargo install --path apps`; the scripts build and run it.
//!
//! - `lanlink-bench chat`: chat load against a running server
//!   (`scripts/bench-chat`).
//! - `lanlink-bench fanout`: chat fan-out in one room from a few
//!   event-driven threads, speaking plain lanlink or IRC ([`fanout`],
//!   `scripts/bench-irc`: lanlink against InspIRCd).
//! - `lanlink-soak`: the soak and fault run (`scripts/soak`,
//!   `scripts/netem`).
//! - examples `relay_bench` (the media relay's fan-out) and `audio_latency`
//!   (added audio latency with clicks, `scripts/bench-audio-latency`).
//!
//! - `lanlink-attack`: hostile peers of every kind against a release
//!   server while honest `lanlink` processes use it (`scripts/attack`).
//!
//! What they share: one latency histogram, [`Latency`], one `/proc`
//! reader, [`procinfo`], the child processes they run, [`procs`], and the
//! audio check of a listener's recording, [`wav`]. They connect with
//! `lanlink-client` and borrow a few helpers (logging, rate parsing) from
//! `lanlink-apps`.

pub mod fanout;
mod latency;
pub mod procinfo;
pub mod procs;
pub mod wav;

pub use latency::Latency;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// A run's scratch folder, removed on drop unless kept.
#[derive(Debug)]
pub struct Scratch {
    /// The folder.
    pub path: PathBuf,
    /// Leave it behind (to look at it afterwards).
    pub keep: bool,
}

impl Scratch {
    /// Makes `NAME-PID` under `base`, or by default under /dev/shm (tmpfs:
    /// no disk writes) or the temp folder without it.
    pub fn make(base: Option<&Path>, name: &str, keep: bool) -> Result<Scratch, String> {
        let base = base.map_or_else(
            || {
                let shm = Path::new("/dev/shm");
                if shm.is_dir() {
                    shm.to_owned()
                } else {
                    std::env::temp_dir()
                }
            },
            Path::to_owned,
        );
        let path = mkdir(&base.join(format!("{name}-{}", std::process::id())))?;
        Ok(Scratch { path, keep })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Prints a run's verdict: `PROGRAM: PASS (pass)` when there are no
/// failures, else each failure and `PROGRAM: FAIL (N problem(s))`.
/// Returns whether it passed.
pub fn verdict(program: &str, pass: &str, failures: &[String]) -> bool {
    if failures.is_empty() {
        println!("{program}: PASS{pass}");
        return true;
    }
    for f in failures {
        println!("FAIL: {f}");
    }
    println!("{program}: FAIL ({} problem(s))", failures.len());
    false
}

/// Creates `p` (and its parents); returns it.
pub fn mkdir(p: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(p).map_err(|e| format!("create {}: {e}", p.display()))?;
    Ok(p.to_owned())
}

/// Parses `60s`, `1.5m`, `500ms`, `2h` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a duration: {text:?} (try 60s, 500ms, 2m)"))?;
    let secs = v * scale;
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("{text:?}: durations run from 0 to 24 h"));
    }
    Ok(Duration::from_secs_f64(secs))
}
