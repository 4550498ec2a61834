//! Listing a shared folder (or describing one shared file).

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::UNIX_EPOCH;

use lanlink_proto::file::DirEntry;

use crate::ServiceError;

/// The most entries one listing holds, so a huge tree cannot make the
/// server build an unbounded answer.
pub const MAX_ENTRIES: usize = 200_000;

/// The most bytes of names (plus 32 a entry for the rest) one listing
/// holds: half of what a client may have waiting to be read
/// ([`lanlink_transport::ConnConfig`]'s reliable queue, 16 MiB), so an
/// honest `ls -r` of a big tree gets a clear refusal instead of being cut
/// off as too slow, and a listing nobody reads holds little.
pub const MAX_BYTES: usize = 8 << 20;

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
    list_within(root, full, recursive, cancel, MAX_ENTRIES, MAX_BYTES)
}

/// [`list`] with other limits than [`MAX_ENTRIES`] and [`MAX_BYTES`]: past
/// either, [`ServiceError::ListingTooBig`].
fn list_within(
    root: &Path,
    full: &Path,
    recursive: bool,
    cancel: &AtomicBool,
    max_entries: usize,
    max_bytes: usize,
) -> Result<Vec<DirEntry>, ServiceError> {
    let meta = std::fs::metadata(full).map_err(|e| ServiceError::io("inspect", full, e))?;
    if !meta.is_dir() {
        return Ok(vec![entry(String::new(), &meta)]);
    }
    let root = root
        .canonicalize()
        .map_err(|e| ServiceError::io("open folder", root, e))?;
    let mut out = Vec::new();
    let mut budget = Budget {
        entries: max_entries,
        bytes: max_bytes,
    };
    if walk(&root, full, "", recursive, cancel, &mut budget, &mut out)?.is_break() {
        return Err(ServiceError::ListingTooBig {
            path: full
                .strip_prefix(&root)
                .map_or_else(|_| String::new(), |p| p.to_string_lossy().into_owned()),
            max_entries,
            max_bytes,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What is left of a listing's size limits.
struct Budget {
    entries: usize,
    bytes: usize,
}

/// Adds `dir`'s entries (and, when `recursive`, those below) to `out`;
/// `Break` once the budget is spent.
fn walk(
    root: &Path,
    dir: &Path,
    prefix: &str,
    recursive: bool,
    cancel: &AtomicBool,
    budget: &mut Budget,
    out: &mut Vec<DirEntry>,
) -> Result<ControlFlow<()>, ServiceError> {
    let rd = std::fs::read_dir(dir).map_err(|e| ServiceError::io("list", dir, e))?;
    for item in rd {
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
        let cost = rel.len() + 32;
        if budget.entries == 0 || budget.bytes < cost {
            return Ok(ControlFlow::Break(()));
        }
        budget.entries -= 1;
        budget.bytes -= cost;
        let is_dir = meta.is_dir();
        out.push(entry(rel.clone(), &meta));
        if is_dir
            && recursive
            && walk(root, &path, &rel, recursive, cancel, budget, out)?.is_break()
        {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the third outside attack: a recursive listing of 120,000
    /// long names (17 MB) was more than a client may have waiting, so an
    /// honest `lanlink ls -r` was cut off as too slow, and unread listings
    /// held hundreds of MiB. Past its limits a listing is now a clear
    /// refusal, found without walking the rest of the tree.
    #[test]
    fn a_listing_past_its_limits_is_refused_not_cut_off() {
        let dir = std::env::temp_dir().join(format!("lanlink-listing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("wide")).unwrap();
        for i in 0..50 {
            std::fs::write(
                dir.join("wide").join(format!("{i:03}-{}", "n".repeat(60))),
                b"",
            )
            .unwrap();
        }
        let cancel = AtomicBool::new(false);
        let all = list_within(&dir, &dir, true, &cancel, 1000, 1 << 20).unwrap();
        assert_eq!(all.len(), 51);
        // 40 entries of ~100 bytes: the bytes run out first...
        let err = list_within(&dir, &dir, true, &cancel, 1000, 40 * 100).unwrap_err();
        assert!(matches!(err, ServiceError::ListingTooBig { .. }), "{err}");
        assert!(err.to_string().contains("list a folder inside it"), "{err}");
        // ...or the entries do; without -r the folder itself is one entry.
        let err = list_within(&dir, &dir.join("wide"), false, &cancel, 10, 1 << 20).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("wide holds more than 10 entries"),
            "{err}"
        );
        assert_eq!(
            list_within(&dir, &dir, false, &cancel, 10, 1 << 20)
                .unwrap()
                .len(),
            1
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
