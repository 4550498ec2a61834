//! Which server certificates to trust: pinned on first use in a store
//! (like SSH's `known_hosts`), or fixed up front.

use std::io::Write;
use std::path::{Path, PathBuf};

use lanlink_transport::Fingerprint;

use crate::ClientError;

/// Where pinned server certificates are kept. [`KnownServers`] is a file;
/// an application may keep pins anywhere else.
pub trait PinStore: Send + Sync {
    /// The fingerprint pinned for `addr` (`HOST:PORT`), if any.
    fn lookup(&self, addr: &str) -> Result<Option<Fingerprint>, ClientError>;
    /// Pins `fingerprint` for `addr`.
    fn remember(&self, addr: &str, fingerprint: Fingerprint) -> Result<(), ClientError>;
    /// Where the pins live, for messages (`None`: nowhere a user can see).
    fn location(&self) -> Option<&Path> {
        None
    }
}

/// How a session decides whether to trust the server's certificate.
#[derive(Clone)]
pub enum Trust {
    /// Plain TCP, no TLS (only against a server run with `--plain`).
    Plain,
    /// TLS; the certificate must have this fingerprint.
    Fingerprint(Fingerprint),
    /// TLS; the store decides: a pinned certificate must match, an
    /// unknown server is pinned on first use.
    FirstUse(std::sync::Arc<dyn PinStore>),
    /// TLS; a certificate pinned in the store must match (the pin wins),
    /// and a server not pinned yet must present `expected` (learnt from
    /// its announcement on the LAN), which is then pinned.
    FirstUseExpecting {
        /// Where pins are kept.
        store: std::sync::Arc<dyn PinStore>,
        /// The fingerprint a server not pinned yet must have.
        expected: Fingerprint,
    },
    /// TLS without checking the certificate: encrypted, but open to a man
    /// in the middle. For tests and throw-away tools only.
    AnyCertificate,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trust::Plain => f.write_str("Plain"),
            Trust::Fingerprint(fp) => write!(f, "Fingerprint({fp})"),
            Trust::FirstUse(store) => write!(f, "FirstUse({:?})", store.location()),
            Trust::FirstUseExpecting { store, expected } => {
                write!(f, "FirstUseExpecting({:?}, {expected})", store.location())
            }
            Trust::AnyCertificate => f.write_str("AnyCertificate"),
        }
    }
}

/// How the server's certificate was trusted, for the application to tell
/// its user (the library prints nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustOutcome {
    /// Plain TCP: nothing to trust.
    Plain,
    /// It matched the fingerprint given up front.
    Matched(Fingerprint),
    /// It matched the one pinned earlier.
    Known(Fingerprint),
    /// First contact: it was pinned now, in `store` (its location).
    PinnedOnFirstUse {
        /// The server's certificate.
        fingerprint: Fingerprint,
        /// Where it was pinned.
        store: Option<PathBuf>,
    },
    /// First contact: it had the fingerprint it was expected to have
    /// ([`Trust::FirstUseExpecting`]) and was pinned now.
    PinnedAsExpected {
        /// The server's certificate.
        fingerprint: Fingerprint,
        /// Where it was pinned.
        store: Option<PathBuf>,
    },
    /// Not checked ([`Trust::AnyCertificate`]).
    Unchecked(Fingerprint),
}

/// The client's file of pinned server certificates: one
/// `HOST:PORT SHA256:…` per line.
#[derive(Debug, Clone)]
pub struct KnownServers {
    path: PathBuf,
}

impl KnownServers {
    /// The file at `path` (created on first pin).
    pub fn at(path: impl Into<PathBuf>) -> KnownServers {
        KnownServers { path: path.into() }
    }

    /// `$LANLINK_HOME/known_servers`, else
    /// `$XDG_CONFIG_HOME/lanlink/known_servers`, else
    /// `~/.config/lanlink/known_servers`.
    pub fn default_location() -> KnownServers {
        let dir = match std::env::var_os("LANLINK_HOME") {
            Some(home) => PathBuf::from(home),
            None => xdg_dir("XDG_CONFIG_HOME", ".config").join("lanlink"),
        };
        KnownServers::at(dir.join("known_servers"))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes every pin for `addr`; returns how many there were.
    pub fn forget(&self, addr: &str) -> Result<usize, ClientError> {
        let entries = self.entries()?;
        let kept: Vec<_> = entries.iter().filter(|(a, _)| a != addr).collect();
        let removed = entries.len() - kept.len();
        if removed > 0 {
            let text: String = kept.iter().map(|(a, fp)| format!("{a} {fp}\n")).collect();
            let tmp = self.path.with_extension("tmp");
            std::fs::write(&tmp, text)
                .and_then(|()| std::fs::rename(&tmp, &self.path))
                .map_err(|source| self.io("cannot rewrite", source))?;
        }
        Ok(removed)
    }

    fn io(&self, context: &'static str, source: std::io::Error) -> ClientError {
        ClientError::PinStore {
            context,
            path: self.path.clone(),
            source,
        }
    }

    fn entries(&self) -> Result<Vec<(String, Fingerprint)>, ClientError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io("cannot read", e)),
        };
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let parsed = match (words.next(), words.next()) {
                (Some(addr), Some(fp)) => fp.parse().ok().map(|fp| (addr.to_owned(), fp)),
                _ => None,
            };
            out.push(parsed.ok_or_else(|| ClientError::BadPinLine {
                path: self.path.clone(),
                line: n + 1,
                text: line.to_owned(),
            })?);
        }
        Ok(out)
    }
}

impl PinStore for KnownServers {
    fn lookup(&self, addr: &str) -> Result<Option<Fingerprint>, ClientError> {
        Ok(self
            .entries()?
            .into_iter()
            .find(|(a, _)| a == addr)
            .map(|(_, fp)| fp))
    }

    fn remember(&self, addr: &str, fingerprint: Fingerprint) -> Result<(), ClientError> {
        if addr.is_empty() || addr.contains(char::is_whitespace) {
            return Err(ClientError::BadAddress {
                addr: addr.to_owned(),
            });
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.io("cannot create the folder of", e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.io("cannot write", e))?;
        // One write per line: concurrent first connections append whole lines.
        file.write_all(format!("{addr} {fingerprint}\n").as_bytes())
            .map_err(|e| self.io("cannot write", e))
    }

    fn location(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

/// The server's data folder: `$LANLINK_HOME/server`, else
/// `$XDG_DATA_HOME/lanlink/server`, else `~/.local/share/lanlink/server`.
pub fn default_server_data_dir() -> PathBuf {
    match std::env::var_os("LANLINK_HOME") {
        Some(home) => PathBuf::from(home).join("server"),
        None => xdg_dir("XDG_DATA_HOME", ".local/share")
            .join("lanlink")
            .join("server"),
    }
}

fn xdg_dir(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(fallback),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_remembered_looked_up_and_forgotten_per_address() {
        let dir = tempfile::tempdir().unwrap();
        let known = KnownServers::at(dir.path().join("sub/known_servers"));
        let a: Fingerprint = format!("SHA256:{}", "ab".repeat(32)).parse().unwrap();
        let b: Fingerprint = format!("SHA256:{}", "cd".repeat(32)).parse().unwrap();
        assert_eq!(known.lookup("pi:7878").unwrap(), None);
        known.remember("pi:7878", a).unwrap();
        known.remember("nas:7878", b).unwrap();
        assert_eq!(known.lookup("pi:7878").unwrap(), Some(a));
        assert_eq!(known.lookup("nas:7878").unwrap(), Some(b));
        assert_eq!(known.forget("pi:7878").unwrap(), 1);
        assert_eq!(known.lookup("pi:7878").unwrap(), None);
        assert_eq!(known.lookup("nas:7878").unwrap(), Some(b));
        assert!(matches!(
            known.remember("bad addr", a),
            Err(ClientError::BadAddress { .. })
        ));
        std::fs::write(known.path(), "garbage line\n").unwrap();
        match known.lookup("nas:7878") {
            Err(ClientError::BadPinLine { line: 1, .. }) => {}
            other => panic!("expected a bad line 1, got {other:?}"),
        }
    }
}
