//! File names from the network are hostile until proven otherwise.
//!
//! A name is a relative, `/`-separated path. [`validate`] rejects anything
//! that could leave the target folder by its spelling (absolute paths, `..`,
//! drive letters, backslashes, NUL and control characters, names made only of
//! dots); [`resolve_existing`] and [`prepare_new`] then check, on the real
//! file system, that symlinks do not lead out of it either.

use std::path::{Component, Path, PathBuf};

use unicode_normalization::UnicodeNormalization;

use crate::ServiceError;

/// The longest name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 4096;
/// The longest single path component accepted, in bytes.
pub const MAX_COMPONENT_LEN: usize = 255;

fn bad(name: &str, reason: &'static str) -> ServiceError {
    ServiceError::BadPath {
        name: name.to_owned(),
        reason,
    }
}

/// [`validate`]s the name of a file about to be **written** (an upload, a
/// download, a received file) and returns where to write it, in Unicode
/// normal form C.
///
/// Beyond [`validate_existing`], a written name is later shown (listings,
/// offers, the receiver's terminal), so nothing in it may reorder or hide
/// text (`doc\u{202e}fdp.exe` looks like `docexe.pdf`) or break a line,
/// and no component may start or end with white space or end with a dot
/// (`a.txt ` and `a.txt.` look like `a.txt`, and Windows drops them).
/// Names are stored composed (NFC), so `café` sent decomposed, as macOS
/// spells it, is the same file as `café` typed elsewhere, never a second
/// file that looks identical.
pub fn validate_target(name: &str) -> Result<PathBuf, ServiceError> {
    if name.chars().any(crate::text::hides_or_reorders) {
        return Err(bad(
            name,
            "it contains bidirectional text controls, invisible characters or line separators",
        ));
    }
    let composed: String = name.nfc().collect();
    let rel = validate_existing(&composed)?;
    for part in composed.split('/') {
        if part.starts_with(char::is_whitespace) || part.ends_with(char::is_whitespace) {
            return Err(bad(name, "a part of it starts or ends with white space"));
        }
        if part.ends_with('.') {
            return Err(bad(name, "a part of it ends with a dot"));
        }
    }
    Ok(rel)
}

/// [`validate`]s the name of a file to read and refuses names that could
/// be another file's partial (`.NAME.lanlink-part`): published under such
/// a name, a file would later be taken for that partial, resumed from and
/// deleted, and a partial is never served as if it were complete.
pub fn validate_existing(name: &str) -> Result<PathBuf, ServiceError> {
    let rel = validate(name, false)?;
    let reserved = rel
        .components()
        .any(|c| super::incoming::is_part_name(&c.as_os_str().to_string_lossy()));
    if reserved {
        return Err(ServiceError::BadPath {
            name: name.to_owned(),
            reason: "names like `.NAME.lanlink-part` are reserved for partial files",
        });
    }
    Ok(rel)
}

/// Checks a relative name and returns it as a path of normal components.
///
/// `""` is accepted only when `allow_root` is set (it names the folder
/// itself, as in "list the share").
pub fn validate(name: &str, allow_root: bool) -> Result<PathBuf, ServiceError> {
    if name.is_empty() {
        return if allow_root {
            Ok(PathBuf::new())
        } else {
            Err(bad(name, "the name is empty"))
        };
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad(name, "the name is too long"));
    }
    if name.chars().any(|c| c == '\0') {
        return Err(bad(name, "it contains a NUL byte"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad(name, "it contains control characters"));
    }
    if name.contains('\\') {
        return Err(bad(name, "it contains a backslash"));
    }
    if name.starts_with('/') {
        return Err(bad(name, "absolute paths are not allowed"));
    }
    if name.len() >= 2 && name.as_bytes()[1] == b':' && name.as_bytes()[0].is_ascii_alphabetic() {
        return Err(bad(name, "drive-letter paths are not allowed"));
    }
    let mut out = PathBuf::new();
    for part in name.split('/') {
        if part.is_empty() {
            return Err(bad(name, "it has an empty path component"));
        }
        if part.chars().all(|c| c == '.') {
            return Err(bad(
                name,
                "`.`, `..` and names made only of dots are not allowed",
            ));
        }
        if part.len() > MAX_COMPONENT_LEN {
            return Err(bad(name, "a path component is too long"));
        }
        out.push(part);
    }
    // Belt and braces: after the checks above every component must be normal.
    if !out.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(bad(name, "it is not a plain relative path"));
    }
    Ok(out)
}

/// Resolves `rel` (already validated) under `root` for reading, following
/// symlinks, and refuses a result outside `root`.
pub fn resolve_existing(root: &Path, rel: &Path, name: &str) -> Result<PathBuf, ServiceError> {
    let root = root
        .canonicalize()
        .map_err(|e| ServiceError::io("open folder", root, e))?;
    let full = match root.join(rel).canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ServiceError::NoSuchFile {
                name: name.to_owned(),
            })
        }
        Err(e) => return Err(ServiceError::io("open", &root.join(rel), e)),
    };
    if !full.starts_with(&root) {
        return Err(bad(
            name,
            "it leads out of the shared folder through a symlink",
        ));
    }
    Ok(full)
}

/// Prepares `rel` (already validated) under `root` for writing: creates the
/// missing parent folders, and refuses any existing component that is a
/// symlink or leads out of `root`. Returns the full path of the file.
pub fn prepare_new(root: &Path, rel: &Path, name: &str) -> Result<PathBuf, ServiceError> {
    prepare_new_within(root, rel, name, usize::MAX).map(|p| p.target)
}

/// A target [`prepare_new_within`] made ready.
#[derive(Debug)]
pub struct Prepared {
    /// The full path of the file.
    pub target: PathBuf,
    /// The folders created for it, outermost first.
    pub created: Vec<PathBuf>,
}

impl Prepared {
    /// Removes the folders that were created (if still empty), innermost
    /// first: a refused upload leaves nothing behind.
    pub fn undo(&self) {
        for dir in self.created.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Where a new file would go, checked but not created yet (see [`plan_new`]).
#[derive(Debug)]
pub struct Plan {
    /// The full path of the file.
    pub target: PathBuf,
    /// The parent folders that do not exist yet, outermost first.
    pub missing: Vec<PathBuf>,
    name: String,
}

/// Checks `rel` (already validated) under `root` for writing without
/// changing anything: refuses any existing component that is a symlink,
/// leads out of `root` or is not a folder, and a target that is a symlink
/// or a folder.
pub fn plan_new(root: &Path, rel: &Path, name: &str) -> Result<Plan, ServiceError> {
    let root = root
        .canonicalize()
        .map_err(|e| ServiceError::io("open folder", root, e))?;
    let mut dir = root;
    let parts: Vec<_> = rel.components().collect();
    let Some((file, parents)) = parts.split_last() else {
        return Err(bad(name, "the name is empty"));
    };
    let mut missing = Vec::new();
    for part in parents {
        dir.push(part);
        if !missing.is_empty() {
            // Below a missing folder nothing exists yet.
            missing.push(dir.clone());
            continue;
        }
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(bad(name, "a folder on its path is a symlink"))
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(bad(name, "a folder on its path is a file")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(dir.clone()),
            Err(e) => return Err(ServiceError::io("inspect", &dir, e)),
        }
    }
    let target = dir.join(file);
    if let Ok(m) = std::fs::symlink_metadata(&target) {
        if m.file_type().is_symlink() {
            return Err(bad(name, "the target is a symlink"));
        }
        if m.is_dir() {
            return Err(bad(name, "the target is a folder"));
        }
    }
    Ok(Plan {
        target,
        missing,
        name: name.to_owned(),
    })
}

impl Plan {
    /// Creates the missing folders, unless there are more than
    /// `max_new_folders` of them: then nothing is created at all.
    pub fn create(self, max_new_folders: usize) -> Result<Prepared, ServiceError> {
        if self.missing.len() > max_new_folders {
            return Err(ServiceError::EntryQuotaExceeded {
                name: self.name,
                needed: self.missing.len() as u64 + 1,
                left: max_new_folders as u64 + 1,
            });
        }
        let mut prepared = Prepared {
            target: self.target,
            created: Vec::with_capacity(self.missing.len()),
        };
        for dir in self.missing {
            if let Err(e) = std::fs::create_dir(&dir) {
                prepared.undo();
                return Err(ServiceError::io("create folder", &dir, e));
            }
            prepared.created.push(dir);
        }
        Ok(prepared)
    }
}

/// [`plan_new`] then [`Plan::create`].
pub fn prepare_new_within(
    root: &Path,
    rel: &Path,
    name: &str,
    max_new_folders: usize,
) -> Result<Prepared, ServiceError> {
    plan_new(root, rel, name)?.create(max_new_folders)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_named_like_partial_files_are_refused_anywhere_in_the_path() {
        for name in [".x.lanlink-part", "d/.y.lanlink-part", ".z.lanlink-part/f"] {
            let err = validate_target(name).unwrap_err().to_string();
            assert!(err.contains("reserved"), "{name}: {err}");
        }
        for name in [
            "x.lanlink-part",
            ".lanlink-part",
            "d/.x.lanlink-parts",
            "a/b",
        ] {
            assert!(validate_target(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn written_names_may_not_reorder_hide_or_break_text() {
        for name in [
            "doc-rloab\u{202e}gnp.exe.txt",
            "a\u{2066}b",
            "in\u{200b}visible",
            "soft\u{ad}hyphen",
            "\u{feff}bom",
            "tag\u{e0041}",
            "line\u{2028}break",
            "para\u{2029}graph",
            "folder/\u{3164}",
        ] {
            match validate_target(name) {
                Err(ServiceError::BadPath { reason, .. }) => {
                    assert!(reason.contains("invisible"), "{name:?}: {reason}")
                }
                other => panic!("{name:?} accepted: {other:?}"),
            }
            // Reading an existing file of such a name stays possible.
            assert!(validate(name, false).is_ok(), "{name:?}");
        }
        assert!(validate_target("ünï cødé/song.mp3").is_ok());
    }

    #[test]
    fn written_names_cannot_pass_for_another_name() {
        for (name, why) in [
            (" ", "white space"),
            ("\u{3000}", "white space"),
            ("trail ", "white space"),
            (" lead.txt", "white space"),
            ("dir /a", "white space"),
            ("trail.", "dot"),
            ("dir./a", "dot"),
            ("\u{2063}.txt", "invisible"),
        ] {
            match validate_target(name) {
                Err(ServiceError::BadPath { reason, .. }) => {
                    assert!(reason.contains(why), "{name:?}: {reason}")
                }
                other => panic!("{name:?} accepted: {other:?}"),
            }
        }
        let decomposed = "cafe\u{301}.txt";
        assert_eq!(
            validate_target(decomposed).unwrap(),
            PathBuf::from("caf\u{e9}.txt"),
            "stored composed, the same file as `café.txt` typed anywhere else"
        );
        assert_eq!(
            validate_existing(decomposed).unwrap(),
            PathBuf::from(decomposed),
            "an existing file is read by the name it has"
        );
        for name in ["a b.txt", "-rf", "v1.2/notes.md", ".hidden", "ｃａｆｅ.txt"] {
            assert!(validate_target(name).is_ok(), "{name:?}");
        }
    }

    #[test]
    fn attacks_are_refused_with_a_reason() {
        for (name, why) in [
            ("../x", "dots"),
            ("a/../../b", "dots"),
            ("/etc/passwd", "absolute"),
            ("..", "dots"),
            ("...", "dots"),
            (".", "dots"),
            ("a/./b", "dots"),
            ("a\0b", "NUL"),
            ("a\nb", "control"),
            ("a\x1b[2Jb", "control"),
            ("a\\..\\b", "backslash"),
            ("C:stuff", "drive"),
            ("a//b", "empty"),
            ("a/", "empty"),
            ("", "empty"),
        ] {
            match validate(name, false) {
                Err(ServiceError::BadPath { name: n, reason }) => {
                    assert_eq!(n, name);
                    assert!(reason.contains(why), "{name:?}: {reason}");
                }
                other => panic!("{name:?} accepted: {other:?}"),
            }
        }
    }

    #[test]
    fn ordinary_names_pass() {
        assert_eq!(validate("a.txt", false).unwrap(), PathBuf::from("a.txt"));
        assert_eq!(
            validate("dir/sub/.hidden", false).unwrap(),
            PathBuf::from("dir/sub/.hidden")
        );
        assert_eq!(
            validate("ünï cødé.mp3", false).unwrap(),
            PathBuf::from("ünï cødé.mp3")
        );
        assert_eq!(validate("", true).unwrap(), PathBuf::new());
    }

    #[test]
    fn symlinks_out_of_the_folder_are_refused() {
        let base = std::env::temp_dir().join(format!("lanlink-path-{}", std::process::id()));
        let share = base.join("share");
        let outside = base.join("outside");
        std::fs::create_dir_all(&share).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"s").unwrap();
        std::fs::write(share.join("ok"), b"ok").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), share.join("link")).unwrap();
        std::os::unix::fs::symlink(&outside, share.join("dirlink")).unwrap();

        assert!(resolve_existing(&share, Path::new("ok"), "ok").is_ok());
        for name in ["link", "dirlink/secret"] {
            let err = resolve_existing(&share, &validate(name, false).unwrap(), name).unwrap_err();
            assert!(err.to_string().contains("symlink"), "{err}");
        }
        assert!(matches!(
            resolve_existing(&share, Path::new("missing"), "missing"),
            Err(ServiceError::NoSuchFile { .. })
        ));
        // Writing through a symlinked folder or onto a symlink is refused,
        // and nothing is created outside.
        for name in ["dirlink/new", "link"] {
            let err = prepare_new(&share, &validate(name, false).unwrap(), name).unwrap_err();
            assert!(err.to_string().contains("symlink"), "{err}");
        }
        assert!(!outside.join("new").exists());
        let p = prepare_new(&share, Path::new("a/b/c.txt"), "a/b/c.txt").unwrap();
        assert!(p.starts_with(share.canonicalize().unwrap()) && share.join("a/b").is_dir());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
