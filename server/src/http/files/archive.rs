//! Folders for browsers as tar (`GET /tar/DIR`): planned, measured, then
//! streamed file by file.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::AtomicBool;

use lanlink_services::file::{listing, path};
use lanlink_services::ServiceError;
use lanlink_transport::Shutdown;

use super::super::pace::{MinPace, Paced};
use super::super::{respond, Peer};
use super::{disposition, Found, UntilShutdown, READ_SIZE};

/// The name a folder's tar stream is given, and the folder its entries are
/// put in.
fn tar_base(share: &Path, found: &Found) -> String {
    let base = match found.name.rsplit('/').next() {
        Some(b) if !b.is_empty() => b.to_owned(),
        _ => share
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| path::validate(n, false).is_ok())
            .unwrap_or("share")
            .to_owned(),
    };
    base
}

/// Streams a folder of the share as a tar: entries are listed and
/// checked first (as `lanlink ls -r` would see them: symlinks only inside
/// the share, no partial files, plain files and folders only), which
/// gives the archive's exact length; then each file is read as it is
/// written. Nothing is built in memory or on disk. The `Content-Length`
/// lets the browser show progress and tell a cut download from a whole
/// one: a file that cannot be read any more when its turn comes ends the
/// connection early rather than send a wrong archive.
pub(super) fn send_tar(
    s: &mut impl Peer,
    share: &Path,
    found: &Found,
    shutdown: &Shutdown,
    min_pace: MinPace,
) -> io::Result<()> {
    let base = tar_base(share, found);
    let plan = listing::list(share, &found.full, true, &AtomicBool::new(false))
        .map(|entries| plan_tar(&found.full, &base, &entries));
    let Ok((plan, length)) = plan.and_then(|plan| {
        let length = tar_length(&plan).map_err(|e| ServiceError::io("measure", &found.full, e))?;
        Ok((plan, length))
    }) else {
        return respond(
            s,
            "500 Internal Server Error",
            "text/plain",
            b"cannot list that folder\n",
        );
    };
    write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nContent-Length: {length}\r\n\
         Content-Disposition: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
         Connection: close\r\n\r\n",
        disposition(&format!("{base}.tar"))
    )?;
    let out = BufWriter::with_capacity(READ_SIZE, Paced::new(&mut *s, min_pace));
    write_tar(out, &found.full, &plan, shutdown)?;
    s.flush()
}

/// One entry of a tar about to be written.
#[derive(Debug)]
struct Planned {
    /// Its name in the archive (`BASE/…`, folders ending in `/`).
    name: String,
    /// Its name under the folder (files), to open it again when its turn
    /// comes; `None` for a folder.
    rel: Option<String>,
    /// Bytes of content (0 for a folder).
    size: u64,
    modified: u64,
}

impl Planned {
    fn header(&self) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(self.modified);
        header.set_size(self.size);
        if self.rel.is_some() {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
        } else {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
        }
        header
    }
}

/// What a tar of `entries` (names relative to `folder`) under `base/`
/// holds: every folder, and every plain file that resolves inside the
/// folder; names some unpacker could take for a way out (backslashes,
/// control characters) stay out.
fn plan_tar(folder: &Path, base: &str, entries: &[lanlink_proto::file::DirEntry]) -> Vec<Planned> {
    let mut plan = vec![Planned {
        name: format!("{base}/"),
        rel: None,
        size: 0,
        modified: 0,
    }];
    for e in entries {
        if path::validate(&e.name, false).is_err() {
            continue;
        }
        let modified = u64::try_from(e.modified).unwrap_or(0);
        if e.is_dir {
            plan.push(Planned {
                name: format!("{base}/{}/", e.name),
                rel: None,
                size: 0,
                modified,
            });
            continue;
        }
        let meta = path::resolve_existing(folder, Path::new(&e.name), &e.name)
            .ok()
            .and_then(|full| std::fs::metadata(full).ok());
        // Plain files only: opening a FIFO could block for ever.
        let Some(meta) = meta.filter(std::fs::Metadata::is_file) else {
            continue;
        };
        plan.push(Planned {
            name: format!("{base}/{}", e.name),
            rel: Some(e.name.clone()),
            size: meta.len(),
            modified,
        });
    }
    plan
}

/// Counts what is written to it.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The exact length of the tar of `plan`: its headers (long names
/// included) written for real to a counter, and each file's content
/// padded to 512 bytes.
fn tar_length(plan: &[Planned]) -> io::Result<u64> {
    let mut counter = Counter(0);
    let mut content = 0u64;
    {
        let mut tar = tar::Builder::new(&mut counter);
        for p in plan {
            tar.append_data(&mut p.header(), &p.name, io::empty())?;
            content = content.saturating_add(p.size.div_ceil(512).saturating_mul(512));
        }
        tar.finish()?;
    }
    Ok(counter.0.saturating_add(content))
}

/// Writes the tar of `plan` (files under `folder`) to `out`: exactly
/// [`tar_length`] bytes, or an error.
fn write_tar<W: Write>(
    out: W,
    folder: &Path,
    plan: &[Planned],
    shutdown: &Shutdown,
) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    for p in plan {
        if shutdown.is_triggered() {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let Some(rel) = &p.rel else {
            tar.append_data(&mut p.header(), &p.name, io::empty())?;
            continue;
        };
        // Opened again through the checks: a symlink swapped in since the
        // listing cannot lead out, nor a FIFO block us.
        let vanished = || io::Error::new(io::ErrorKind::NotFound, "a file went away");
        let full = path::resolve_existing(folder, Path::new(rel), rel).map_err(|_| vanished())?;
        if !std::fs::metadata(&full).is_ok_and(|m| m.is_file()) {
            return Err(vanished());
        }
        let file = File::open(&full)?;
        // Exactly the planned size, whatever happens to the file meanwhile.
        let body = UntilShutdown {
            inner: file,
            shutdown,
        }
        .take(p.size)
        .chain(io::repeat(0))
        .take(p.size);
        tar.append_data(&mut p.header(), &p.name, body)?;
    }
    tar.into_inner()?.flush()
}

#[cfg(test)]
mod tests {
    use super::super::find;
    use super::super::tests::scratch;
    use super::*;

    #[test]
    fn tar_streams_the_folder_and_unpacks_identically() {
        let base = scratch("tar");
        let share = base.join("share");
        let outside = base.join("outside");
        std::fs::create_dir_all(share.join("album/deep/er")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"secret").unwrap();
        let big: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(share.join("album/big.bin"), &big).unwrap();
        std::fs::write(share.join("album/deep/er/empty"), b"").unwrap();
        let long = "n".repeat(150);
        std::fs::write(share.join("album/deep").join(&long), b"long name").unwrap();
        std::fs::write(share.join("album/.x.lanlink-part"), b"partial").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), share.join("album/out")).unwrap();

        let found = find(&share, "album").unwrap();
        let entries = listing::list(&share, &found.full, true, &AtomicBool::new(false)).unwrap();
        // Written through a writer that sees only small pieces: streamed.
        struct Sink {
            bytes: Vec<u8>,
            largest: usize,
        }
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.largest = self.largest.max(b.len());
                self.bytes.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut sink = Sink {
            bytes: Vec::new(),
            largest: 0,
        };
        let base_name = tar_base(&share, &found);
        assert_eq!(base_name, "album");
        let plan = plan_tar(&found.full, &base_name, &entries);
        let length = tar_length(&plan).unwrap();
        write_tar(
            BufWriter::with_capacity(READ_SIZE, &mut sink),
            &found.full,
            &plan,
            &Shutdown::new(),
        )
        .unwrap();
        assert!(sink.largest <= READ_SIZE, "written in pieces");
        assert_eq!(sink.bytes.len() as u64, length, "the length told ahead");
        // A file that goes away before its turn ends the stream with an
        // error, not a wrong archive.
        std::fs::remove_file(share.join("album/big.bin")).unwrap();
        let cut = write_tar(io::sink(), &found.full, &plan, &Shutdown::new());
        assert!(cut.is_err());
        std::fs::write(share.join("album/big.bin"), &big).unwrap();
        let mut archive = tar::Archive::new(&sink.bytes[..]);
        let mut seen = std::collections::BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            seen.insert(name, data);
        }
        let names: Vec<&str> = seen.keys().map(String::as_str).collect();
        let long_name = format!("album/deep/{long}");
        assert_eq!(
            names,
            [
                "album/",
                "album/big.bin",
                "album/deep/",
                "album/deep/er/",
                "album/deep/er/empty",
                &long_name,
            ]
        );
        assert_eq!(seen["album/big.bin"], big);
        assert_eq!(seen[&long_name], b"long name");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
