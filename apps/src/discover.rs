//! Which server a `lanlink` command talks to when no address is given:
//! the one announced on the LAN ([`lanlink_client::discovery`]), chosen
//! as a person expects: the only one is used, several are listed and asked
//! about on a terminal (an error listing them in a script), none is an
//! error saying how to give one. Also `lanlink servers`, and how the first
//! command-line argument is told apart from the command's own.

use std::io::{BufRead, IsTerminal, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lanlink_client::discovery::{self, Browse, FoundServer, Wanted};
use lanlink_client::{ClientError, KnownServers};
use lanlink_transport::Fingerprint;

use crate::connect::Server;

/// What `--help` says about choosing the server (every command's).
pub const SERVER_HELP: &str = "\
The server: `-s HOST` (HOST or HOST:PORT, default port 7878), or HOST as the
first argument, or nothing: then the server announced on the LAN is used
(several: you are asked, or, in a script, shown the list). HOST as the first
argument is read as the server when the command takes nothing else (chat,
receive, cam, talk), when it looks like an address (an IP address, NAME:PORT,
localhost, NAME.local), when the command would otherwise get one argument too
many (ls, view, listen with two; admin before its command), and, for put and
send, when no local file of that name exists. Otherwise say `-s pi`:
`lanlink get -s pi music` (while `lanlink get music` fetches `music` from the
server found on the LAN).";

/// Whether `word` reads as a server address rather than a file, path or
/// stream name: an IP address (with or without port, IPv6 in brackets or
/// bare), `NAME:PORT`, `localhost`, or an mDNS name (`pi.local`).
pub fn looks_like_address(word: &str) -> bool {
    let bare = word.strip_prefix('[').and_then(|w| w.split(']').next());
    let host_port = word
        .rsplit_once(':')
        .filter(|(host, port)| !host.is_empty() && !port.is_empty() && port.parse::<u16>().is_ok());
    word.parse::<IpAddr>().is_ok()
        || bare.is_some_and(|b| b.parse::<IpAddr>().is_ok())
        || host_port.is_some_and(|(host, _)| !host.contains('/'))
        || word.eq_ignore_ascii_case("localhost")
        || word.to_ascii_lowercase().ends_with(".local")
}

/// How the first positional argument of a command may be its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRule {
    /// The command has no other positional argument: any word.
    Only,
    /// Up to `max` more arguments follow (ls, view, listen: 1): the first
    /// is the server when there are `max + 1`, or when it looks like an
    /// address.
    AtMost(usize),
    /// One or more local files follow (put, send): the first is the
    /// server when others follow and it looks like an address or is no
    /// local file.
    LocalFiles,
    /// One or more names follow (get): the first is the server when others
    /// follow and it looks like an address.
    Names,
}

/// Splits `args` (the positional arguments as given) into the server, if
/// the first one is it by `rule`, and the rest. With `-s` (`explicit`),
/// every argument is the command's own.
pub fn split_host(
    explicit: Option<String>,
    mut args: Vec<String>,
    rule: HostRule,
) -> (Option<String>, Vec<String>) {
    if explicit.is_some() || args.is_empty() {
        return (explicit, args);
    }
    let first = &args[0];
    let is_host = match rule {
        HostRule::Only => true,
        HostRule::AtMost(max) => args.len() > max || looks_like_address(first),
        HostRule::LocalFiles => {
            args.len() > 1 && (looks_like_address(first) || !Path::new(first).exists())
        }
        HostRule::Names => args.len() > 1 && looks_like_address(first),
    };
    if is_host {
        let host = args.remove(0);
        (Some(host), args)
    } else {
        (None, args)
    }
}

/// The flags every command shares about the server, as given.
#[derive(Debug, Clone, Default)]
pub struct ServerFlags {
    /// The access token.
    pub token: Option<String>,
    /// `--plain`.
    pub plain: bool,
    /// `--server-fingerprint`.
    pub fingerprint: Option<Fingerprint>,
}

/// The server to talk to: `host` if given, else the one announced on the
/// LAN ([`discovery::choose`]; several are asked about on a terminal).
/// Anything said about the choice goes to stderr.
pub fn choose(host: Option<&str>, flags: ServerFlags) -> Result<Server, ClientError> {
    if let Some(host) = host {
        return Ok(Server::from_flags(
            host,
            flags.token,
            flags.plain,
            flags.fingerprint,
        ));
    }
    let wanted = Wanted {
        plain: flags.plain,
        fingerprint: flags.fingerprint,
    };
    let pins = Arc::new(KnownServers::default_location());
    let ask_user = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let chosen = discovery::choose(Browse::default(), wanted, pins, |servers| {
        ask_user.then(|| ask(servers)).flatten()
    })?;
    eprintln!(
        "lanlink: using {} at {} (found on the LAN)",
        quoted(&chosen.server),
        chosen.addr
    );
    if let (Some(pinned), Some(announced)) = (chosen.pinned_instead, chosen.server.fingerprint) {
        eprintln!(
            "lanlink: WARNING: the announcement on the LAN names certificate\n  {announced}\n\
             but this one is pinned for {}:\n  {pinned}\n\
             The pinned one is checked: whoever announced the other may be an impostor.",
            chosen.addr
        );
    }
    Ok(Server {
        addr: chosen.addr,
        token: flags.token,
        trust: chosen.trust,
    })
}

/// `"NAME" (INSTANCE)`, or just `"NAME"` when they are the same.
fn quoted(server: &FoundServer) -> String {
    if server.name == server.instance {
        format!("\"{}\"", server.name)
    } else {
        format!("\"{}\" ({})", server.name, server.instance)
    }
}

/// One line describing `server`, for lists.
pub fn describe(server: &FoundServer) -> String {
    let addr = server
        .address()
        .unwrap_or_else(|| "no usable address".into());
    let security = match server.fingerprint {
        Some(fp) => format!("certificate {}", fp.grouped()),
        None => "plain TCP (--plain)".into(),
    };
    let version = if server.is_compatible() {
        String::new()
    } else {
        format!(
            ", protocol version {} (this client speaks {})",
            server.version,
            lanlink_proto::PROTOCOL_VERSION
        )
    };
    format!("{addr:<22} {}  {security}{version}", quoted(server))
}

/// [`ClientError::NoServer`] as a person should read it: what was found
/// and how to name a server.
pub fn explain(found: &[FoundServer], unusable: &[FoundServer], ignored: usize) -> String {
    let mut text = if found.is_empty() {
        format!(
            "no lanlink server announced itself on the LAN (looked for {} s); give its \
             address: `lanlink COMMAND HOST …` or `-s HOST` (`lanlink-server` prints it)",
            Browse::default().patience.as_secs()
        )
    } else {
        String::from(
            "several lanlink servers announce themselves on the LAN; choose one with -s ADDRESS:",
        )
    };
    for s in found {
        text.push_str(&format!("\n  {}", describe(s)));
    }
    for s in unusable {
        text.push_str(&format!("\n  not usable here: {}", describe(s)));
    }
    if ignored > 0 {
        text.push_str(&format!(
            "\n  ({ignored} announcement(s) ignored: malformed, or past the first {})",
            discovery::MAX_SERVERS
        ));
    }
    text
}

/// Lists `servers` on the terminal and asks which one (by number).
fn ask(servers: &[FoundServer]) -> Option<usize> {
    eprintln!("lanlink servers on the LAN:");
    for (i, s) in servers.iter().enumerate() {
        eprintln!("  {}) {}", i + 1, describe(s));
    }
    let mut stdin = std::io::stdin().lock();
    for _ in 0..3 {
        eprint!("which one? [1-{}] ", servers.len());
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if stdin.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Ok(n) = line.trim().parse::<usize>() {
            if (1..=servers.len()).contains(&n) {
                return Some(n - 1);
            }
        }
    }
    None
}

/// `lanlink servers`: what is announced on the LAN, one line each; exit
/// status 1 when nothing is.
pub fn list(wait: Duration) -> Result<i32, ClientError> {
    let found = discovery::browse(Browse {
        patience: wait,
        ..Browse::default()
    })?;
    for s in &found.servers {
        println!("{}", describe(s));
    }
    if found.ignored > 0 {
        eprintln!(
            "lanlink: {} announcement(s) ignored: malformed, or past the first {}",
            found.ignored,
            discovery::MAX_SERVERS
        );
    }
    if found.servers.is_empty() {
        eprintln!(
            "no lanlink server announced itself on the LAN (looked for {:.1} s)",
            wait.as_secs_f64()
        );
        return Ok(1);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(
        explicit: Option<&str>,
        args: &[&str],
        rule: HostRule,
    ) -> (Option<String>, Vec<String>) {
        split_host(
            explicit.map(Into::into),
            args.iter().map(|s| (*s).to_owned()).collect(),
            rule,
        )
    }

    fn host(h: &str, rest: &[&str]) -> (Option<String>, Vec<String>) {
        (
            Some(h.into()),
            rest.iter().map(|s| (*s).to_owned()).collect(),
        )
    }

    fn no_host(rest: &[&str]) -> (Option<String>, Vec<String>) {
        (None, rest.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn addresses_are_told_from_names() {
        for yes in [
            "10.0.0.2",
            "10.0.0.2:7878",
            "::1",
            "[::1]",
            "[::1]:9",
            "pi:7878",
            "localhost",
            "pi.local",
            "Pi.Local",
        ] {
            assert!(looks_like_address(yes), "{yes}");
        }
        for no in ["music", "photo.jpg", "a/b:1", "album:", ":80", "tree", "pi"] {
            assert!(!looks_like_address(no), "{no}");
        }
    }

    #[test]
    fn the_first_argument_is_the_server_by_a_fixed_rule() {
        // Every invocation of before keeps its meaning.
        assert_eq!(split(None, &["pi"], HostRule::Only), host("pi", &[]));
        assert_eq!(
            split(None, &["pi", "music"], HostRule::AtMost(1)),
            host("pi", &["music"])
        );
        assert_eq!(
            split(None, &["10.0.0.2:7878"], HostRule::AtMost(1)),
            host("10.0.0.2:7878", &[])
        );
        assert_eq!(
            split(None, &["127.0.0.1:9", "a", "b"], HostRule::Names),
            host("127.0.0.1:9", &["a", "b"])
        );
        assert_eq!(
            split(None, &["pi", "/no/such/file"], HostRule::LocalFiles),
            host("pi", &["/no/such/file"])
        );
        // Without a server, the arguments are the command's own.
        assert_eq!(split(None, &[], HostRule::Only), no_host(&[]));
        assert_eq!(
            split(None, &["music"], HostRule::AtMost(1)),
            no_host(&["music"])
        );
        assert_eq!(split(None, &["song"], HostRule::Names), no_host(&["song"]));
        assert_eq!(
            split(None, &["a", "b"], HostRule::Names),
            no_host(&["a", "b"])
        );
        let file = std::env::current_exe().unwrap();
        let file = file.to_str().unwrap();
        assert_eq!(
            split(None, &[file, file], HostRule::LocalFiles),
            no_host(&[file, file])
        );
        // With -s, nothing is the server.
        assert_eq!(
            split(Some("pi"), &["10.0.0.2", "x"], HostRule::Names),
            host("pi", &["10.0.0.2", "x"])
        );
    }
}
