//! Listing a shared folder (or describing one shared file).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::UNIX_EPOCH;

use lanlink_proto::file::DirEntry;

use crate::ServiceError;

/// The most entries one listing returns, so a huge tree cannot make the
/// server build an unbounded answer.
pub const MAX_ENTRIES: usize = 200_000;

/// Lists `full` (already resolved inside `root`). A file gives one entry with
/// an empty name; a folder gives its entries (all files and folders below it
/// when `recursive`), sorted by name. Symlinks are listed only when they
/// resolve inside `root`; partial files of unfinished uploads
/// (`.NAME.lanlink-part`) are not listed. Stops early, with an error, once
/// `cancel` is set.
pub fn list(
    root: &Path,
    full: &Path,
    recursive: bool,
    cancel: &AtomicBool,
) -> Result<Vec<DirEntry>, ServiceError> {
    let meta = std::fs::metadata(full).map_err(|e| ServiceError::io("inspect", full, e))?;
    if !meta.is_dir() {
        return Ok(vec![entry(String::new(), &meta)]);
    }
    let root = root
        .canonicalize()
        .map_err(|e| ServiceError::io("open folder", root, e))?;
    let mut out = Vec::new();
    walk(&root, full, "", recursive, cancel, &mut out)?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn walk(
    root: &Path,
    dir: &Path,
    prefix: &str,
    recursive: bool,
    cancel: &AtomicBool,
    out: &mut Vec<DirEntry>,
) -> Result<(), ServiceError> {
    let rd = std::fs::read_dir(dir).map_err(|e| ServiceError::io("list", dir, e))?;
    for item in rd {
        if out.len() >= MAX_ENTRIES {
            return Ok(());
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(super::cancelled(dir));
        }
        let Ok(item) = item else { continue };
        let Some(name) = item.file_name().to_str().map(str::to_owned) else {
            continue; // not UTF-8: cannot be named on the wire
        };
        if super::incoming::is_part_name(&name) {
            continue; // an unfinished upload (share = inbox), not content
        }
        let path = item.path();
        // `dir` lies inside the share, and so does whatever in it is not a
        // symlink: one lstat, no path resolution (which costs a readlink
        // per path component and made a 100k-file listing take seconds).
        // Follow symlinks only when they stay inside the share.
        let Ok(mut meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            match path.canonicalize() {
                Ok(real) if real.starts_with(root) => {}
                _ => continue,
            }
            let Ok(target) = std::fs::metadata(&path) else {
                continue;
            };
            meta = target;
        }
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let is_dir = meta.is_dir();
        out.push(entry(rel.clone(), &meta));
        if is_dir && recursive {
            walk(root, &path, &rel, recursive, cancel, out)?;
        }
    }
    Ok(())
}

fn entry(name: String, meta: &std::fs::Metadata) -> DirEntry {
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    DirEntry {
        name,
        is_dir: meta.is_dir(),
        size: if meta.is_dir() { 0 } else { meta.len() },
        modified,
    }
}
