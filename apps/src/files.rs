//! `lanlink ls`, `get`, `put`, `send` and `receive`: argument wiring around
//! [`lanlink_services::file::FileClient`].

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lanlink_proto::Capabilities;
use lanlink_services::file::FileClient;
use lanlink_services::ServiceError;
use lanlink_transport::Client;

use crate::connect::Target;

use crate::progress::Reporter;

/// Connects for file work. `chat` also joins the chat (so other users can
/// address this client by `name`).
pub fn connect(target: &Target, name: &str, chat: bool) -> Result<Client, ServiceError> {
    let capabilities = if chat {
        Capabilities::CHAT | Capabilities::FILE
    } else {
        Capabilities::FILE
    };
    target
        .connect(name, capabilities)
        .map_err(ServiceError::Connection)
}

/// `lanlink ls`: prints one line per entry.
pub fn ls(client: &Client, path: &str, recursive: bool) -> Result<(), ServiceError> {
    let entries = FileClient::new(client).list(path, recursive)?;
    for e in entries {
        let name = if e.name.is_empty() {
            path.to_owned()
        } else {
            e.name
        };
        if e.is_dir {
            println!("{:>14}  {name}/", "-");
        } else {
            println!("{:>14}  {name}", e.size);
        }
    }
    Ok(())
}

/// Parses a rate like `500K`, `10M` or `1G` (bytes per second, powers of
/// 1024) or a plain number of bytes per second.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_uppercase()),
        _ => (t, 'B'),
    };
    let n: f64 = digits
        .parse()
        .map_err(|_| format!("not a rate: {text:?} (try 500K, 10M, 1G)"))?;
    let scale = match unit {
        'B' => 1.0,
        'K' => 1024.0,
        'M' => 1024.0 * 1024.0,
        'G' => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("unknown unit in {text:?} (use K, M or G)")),
    };
    if n.is_nan() || n <= 0.0 {
        return Err(format!("rate must be positive: {text:?}"));
    }
    Ok((n * scale) as u64)
}

/// `lanlink get`.
pub fn get(
    client: &Client,
    names: &[String],
    dest: &Path,
    force: bool,
    rate: Option<u64>,
) -> Result<(), ServiceError> {
    std::fs::create_dir_all(dest).map_err(|e| ServiceError::io("create folder", dest, &e))?;
    let mut files = FileClient::new(client);
    files.rate_limit = rate;
    let mut report = Reporter::new("got");
    for name in names {
        files.get(name, dest, force, &mut report)?;
    }
    Ok(())
}

/// `lanlink put`.
pub fn put(
    client: &Client,
    paths: &[PathBuf],
    as_name: Option<&str>,
    rate: Option<u64>,
) -> Result<(), ServiceError> {
    let mut files = FileClient::new(client);
    files.rate_limit = rate;
    let mut report = Reporter::new("sent");
    for p in paths {
        files.put(p, as_name, &mut report)?;
    }
    Ok(())
}

/// `lanlink send --to NICK`.
pub fn send(client: &Client, to: &str, paths: &[PathBuf]) -> Result<(), ServiceError> {
    let mut files = FileClient::new(client);
    let mut report = Reporter::new("delivered");
    for p in paths {
        println!(
            "offering {} to {to}; waiting for them to accept",
            p.display()
        );
        files.send_to(to, p, &mut report)?;
    }
    Ok(())
}

/// `lanlink receive`: accepts offers (asking on a terminal unless `yes`)
/// until `count` files arrived, or forever.
pub fn receive(
    client: &Client,
    dest: &Path,
    yes: bool,
    force: bool,
    count: Option<usize>,
) -> Result<(), ServiceError> {
    std::fs::create_dir_all(dest).map_err(|e| ServiceError::io("create folder", dest, &e))?;
    let mut files = FileClient::new(client);
    let mut report = Reporter::new("received");
    let ask = !yes && std::io::stdin().is_terminal();
    println!(
        "waiting for files as {} (Ctrl-C to stop)",
        client.welcome().name
    );
    let mut received = 0;
    while count.is_none_or(|c| received < c) {
        let mut decide = |o: &lanlink_proto::file::FileOffer| {
            let from = o.from.as_deref().unwrap_or("?");
            if yes {
                println!("accepting {} ({} bytes) from {from}", o.name, o.size);
                return true;
            }
            if !ask {
                println!(
                    "declining {} from {from} (use --yes to accept without asking)",
                    o.name
                );
                return false;
            }
            print!(
                "{from} offers {} ({} bytes). Accept? [y/N] ",
                o.name, o.size
            );
            let _ = std::io::stdout().flush();
            let mut answer = String::new();
            let _ = std::io::stdin().lock().read_line(&mut answer);
            matches!(answer.trim(), "y" | "Y" | "yes")
        };
        if files
            .receive(
                dest,
                force,
                Duration::from_secs(3600),
                &mut decide,
                &mut report,
            )?
            .is_some()
        {
            received += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert_eq!(parse_rate("500K"), Ok(512_000));
        assert_eq!(parse_rate("10m"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_rate("1.5G"), Ok(1_610_612_736));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("5X").is_err());
    }
}
