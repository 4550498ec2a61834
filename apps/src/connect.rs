//! Connecting to a server the way every `lanlink` command does: TLS unless
//! told `--plain`, with the server's certificate pinned on first use in a
//! known-servers file (like SSH's `known_hosts`), or pinned up front with
//! `--server-fingerprint`.
//!
//! Where things live (`LANLINK_HOME` overrides both, for scripts and tests):
//! - the client's pins: `$XDG_CONFIG_HOME/lanlink/known_servers`
//!   (`~/.config/lanlink/known_servers`), one `HOST:PORT SHA256:…` per line;
//! - the server's certificate and key: `$XDG_DATA_HOME/lanlink/server`
//!   (`~/.local/share/lanlink/server`).

use std::io::Write;
use std::path::{Path, PathBuf};

use lanlink_proto::{control::Hello, Capabilities};
use lanlink_transport::{Client, ClientConfig, ClientTls, Fingerprint, TransportError};

/// How to reach one server: its address, token, and how to trust it.
#[derive(Debug, Clone)]
pub struct Target {
    /// `HOST:PORT`.
    pub addr: String,
    /// The server's access token, if it requires one.
    pub token: Option<String>,
    /// TLS or not, and which certificate to accept.
    pub security: Security,
}

/// How a client secures its connection.
#[derive(Debug, Clone)]
pub enum Security {
    /// Plain TCP: only with `--plain`, against a server run with `--plain`.
    Plain,
    /// TLS. `pin` (from `--server-fingerprint`) fixes the certificate;
    /// otherwise the known-servers file decides, learning new servers on
    /// first use.
    Tls {
        /// The fingerprint given on the command line.
        pin: Option<Fingerprint>,
        /// The known-servers file (`None`: pin nothing, remember nothing).
        known: Option<KnownServers>,
    },
}

impl Security {
    /// What the command-line flags ask for: `--plain`, or TLS with the
    /// given pin and the user's known-servers file.
    pub fn from_flags(plain: bool, pin: Option<Fingerprint>) -> Security {
        if plain {
            Security::Plain
        } else {
            Security::Tls {
                pin,
                known: Some(KnownServers::default_location()),
            }
        }
    }
}

impl Target {
    /// Connects and says hello as `name` with `capabilities`.
    ///
    /// On first contact with a TLS server the certificate's fingerprint is
    /// printed on stderr and remembered; afterwards a different certificate
    /// is refused, before anything is sent, with a warning that says how to
    /// forget the old one.
    pub fn connect(&self, name: &str, capabilities: Capabilities) -> Result<Client, String> {
        self.connect_with(name, capabilities, ClientConfig::default())
    }

    /// [`connect`](Self::connect) with other client settings (the TLS part
    /// of `config` is replaced by this target's).
    pub fn connect_with(
        &self,
        name: &str,
        capabilities: Capabilities,
        mut config: ClientConfig,
    ) -> Result<Client, String> {
        let hello = Hello {
            name: name.to_owned(),
            token: self.token.clone(),
            capabilities,
        };
        let (explicit, known) = match &self.security {
            Security::Plain => {
                config.tls = None;
                return Client::connect(&self.addr, hello, config).map_err(|e| e.to_string());
            }
            Security::Tls { pin, known } => (*pin, known.as_ref()),
        };
        let remembered = match (explicit, known) {
            (None, Some(known)) => known.lookup(&self.addr)?,
            _ => None,
        };
        config.tls = Some(ClientTls {
            pin: explicit.or(remembered),
        });
        match Client::connect(&self.addr, hello, config) {
            Ok(client) => {
                if let (None, None, Some(known), Some(found)) =
                    (explicit, remembered, known, client.server_fingerprint())
                {
                    known.remember(&self.addr, found)?;
                    eprintln!(
                        "lanlink: first connection to {}: its certificate is {found}\n\
                         lanlink: pinned in {}; you will be warned if it ever changes",
                        self.addr,
                        known.path().display()
                    );
                }
                Ok(client)
            }
            Err(TransportError::FingerprintMismatch {
                expected, found, ..
            }) => Err(match (explicit, known) {
                (Some(_), _) | (None, None) => format!(
                    "the server at {} presented certificate {found}, not the expected {expected}; \
                     refusing to connect (nothing was sent)",
                    self.addr
                ),
                (None, Some(known)) => format!(
                    "WARNING: the server at {addr} presented certificate\n  {found}\n\
                     but this one was pinned for it on first use:\n  {expected}\n\
                     Someone may be impersonating the server, or it was reinstalled and lost its \
                     data folder. Nothing was sent.\n\
                     If you know the server was reinstalled, forget the old certificate with\n  \
                     lanlink forget {addr}\n(pins are kept in {path})",
                    addr = self.addr,
                    path = known.path().display()
                ),
            }),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The client's file of pinned server certificates.
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

    /// The fingerprint pinned for `addr`, if any.
    pub fn lookup(&self, addr: &str) -> Result<Option<Fingerprint>, String> {
        Ok(self
            .entries()?
            .into_iter()
            .find(|(a, _)| a == addr)
            .map(|(_, fp)| fp))
    }

    /// Pins `fingerprint` for `addr` (one appended line).
    pub fn remember(&self, addr: &str, fingerprint: Fingerprint) -> Result<(), String> {
        if addr.is_empty() || addr.contains(char::is_whitespace) {
            return Err(format!("cannot pin {addr:?}: not a HOST:PORT"));
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
        // One write per line: concurrent first connections append whole lines.
        file.write_all(format!("{addr} {fingerprint}\n").as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }

    /// Removes every pin for `addr`; returns how many there were.
    pub fn forget(&self, addr: &str) -> Result<usize, String> {
        let entries = self.entries()?;
        let kept: Vec<_> = entries.iter().filter(|(a, _)| a != addr).collect();
        let removed = entries.len() - kept.len();
        if removed > 0 {
            let text: String = kept.iter().map(|(a, fp)| format!("{a} {fp}\n")).collect();
            let tmp = self.path.with_extension("tmp");
            std::fs::write(&tmp, text)
                .and_then(|()| std::fs::rename(&tmp, &self.path))
                .map_err(|e| format!("cannot rewrite {}: {e}", self.path.display()))?;
        }
        Ok(removed)
    }

    fn entries(&self) -> Result<Vec<(String, Fingerprint)>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("cannot read {}: {e}", self.path.display())),
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
            match parsed {
                Some(entry) => out.push(entry),
                None => {
                    return Err(format!(
                        "{}:{}: not `HOST:PORT SHA256:…`: {line:?}",
                        self.path.display(),
                        n + 1
                    ))
                }
            }
        }
        Ok(out)
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
        let dir = std::env::temp_dir().join(format!("lanlink-known-{}", std::process::id()));
        let known = KnownServers::at(dir.join("sub/known_servers"));
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
        std::fs::write(known.path(), "garbage line\n").unwrap();
        let err = known.lookup("nas:7878").unwrap_err();
        assert!(err.contains(":1:"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
