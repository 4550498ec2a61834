//! DNS-rebinding protection: the `Host` names a server without an access
//! token answers to.
//!
//! A page on `http://evil.example/` can make its name resolve to this
//! server's LAN address (DNS rebinding); the browser then treats the
//! server's answers as evil.example's own, so that page could read the
//! share, upload, chat and listen — the same-origin policy and the
//! WebSocket `Origin` check do not help, since to the browser it *is* the
//! same origin. What the browser cannot hide is the name: its requests
//! carry `Host: evil.example`. So a server without a token answers only
//! requests whose `Host` is an IP literal, `localhost` (or a name under
//! it), this machine's host name (also with `.local`, as mDNS gives it), or
//! a name given with `--http-host`; the others get `421 Misdirected
//! Request`. (With a token, a rebound page has no session cookie — the
//! cookie belongs to the real name — and cannot guess the token.)
//!
//! A request without `Host` is let through: every browser sends one, so
//! such a request cannot come from a rebound page.

use std::net::IpAddr;

/// The machine's host name and its mDNS form (`NAME.local`), lowercase;
/// empty if it cannot be read.
pub(super) fn machine_names() -> Vec<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name = normal(name.trim());
    if name.is_empty() || name == "localhost" {
        return Vec::new();
    }
    let short = name.split('.').next().unwrap_or(&name).to_owned();
    let mut names = vec![name.clone(), format!("{short}.local")];
    if short != name {
        names.push(short);
    }
    names
}

/// A host name as compared: lowercase, without a trailing dot.
pub(super) fn normal(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The host part of a `Host` header value (no port, no brackets).
fn host_part(value: &str) -> &str {
    let value = value.trim();
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match value.rsplit_once(':') {
        // One colon and digits after it: a port. (Several colons: an
        // unbracketed IPv6 address, which is not a valid Host but is
        // parsed as it is.)
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => value,
    }
}

/// Whether a server without a token answers a request with this `Host`
/// (`None`: the request had none); `names` are the other names it answers
/// to, [`normal`]ised.
pub(super) fn allowed(host: Option<&str>, names: &[String]) -> bool {
    let Some(value) = host else {
        return true;
    };
    let host = host_part(value);
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    let host = normal(host);
    !host.is_empty()
        && (host == "localhost" || host.ends_with(".localhost") || names.contains(&host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_localhost_and_the_given_names_pass() {
        let names = vec!["lanbox".to_owned(), "lanbox.local".to_owned()];
        for host in [
            "127.0.0.1:7879",
            "192.168.1.10",
            "[::1]:7879",
            "[fe80::1]",
            "localhost:7879",
            "LOCALHOST",
            "app.localhost:1",
            "lanbox:7879",
            "LanBox.Local.:7879",
        ] {
            assert!(allowed(Some(host), &names), "{host}");
        }
        assert!(allowed(None, &names), "no Host: not a browser");
    }

    #[test]
    fn other_names_are_refused() {
        let names = vec!["lanbox".to_owned()];
        for host in [
            "evil.example",
            "evil.example:7879",
            "lanbox.evil.example",
            "127.0.0.1.nip.io",
            "localhost.evil.example",
            "",
            ":7879",
            "[]",
            "x",
        ] {
            assert!(!allowed(Some(host), &names), "{host:?}");
        }
    }

    #[test]
    fn the_page_policy_names_its_websocket_origins_for_a_plain_host_only() {
        use super::super::{page_policy, PAGE_POLICY};
        assert_eq!(
            page_policy(Some("192.168.1.10:7879")),
            PAGE_POLICY.replace(
                "connect-src 'self'",
                "connect-src 'self' ws://192.168.1.10:7879 wss://192.168.1.10:7879"
            )
        );
        assert!(page_policy(Some("[::1]:7879")).contains("wss://[::1]:7879;"));
        for host in ["a; script-src *", "a b", "a'", "", "\u{e9}.lan"] {
            assert_eq!(page_policy(Some(host)), PAGE_POLICY, "{host:?}");
        }
        assert_eq!(page_policy(None), PAGE_POLICY);
    }

    #[test]
    fn the_machine_names_are_normal() {
        for n in machine_names() {
            assert_eq!(n, normal(&n));
            assert!(allowed(Some(&format!("{n}:7879")), &machine_names()));
        }
    }
}
