//! `lanlink ls`, `get`, `put`, `send` and `receive`: argument wiring around
//! the file operations of [`lanlink_client::Session`].

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lanlink_client::{ClientError, Event, Events, IncomingOffer, Session, TransferOptions};
use lanlink_services::ServiceError;

use crate::progress::Reporter;

/// `lanlink ls`: prints one line per entry.
pub fn ls(session: &Session, path: &str, recursive: bool) -> Result<(), ClientError> {
    for e in session.list(path, recursive)? {
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

fn create_folder(dest: &Path) -> Result<(), ClientError> {
    std::fs::create_dir_all(dest).map_err(|e| ServiceError::io("create folder", dest, e).into())
}

/// `lanlink get`.
pub fn get(
    session: &Session,
    names: &[String],
    dest: &Path,
    options: &TransferOptions,
) -> Result<(), ClientError> {
    create_folder(dest)?;
    let mut report = Reporter::new("got");
    for name in names {
        session.get(name, dest, options, &mut report)?;
    }
    Ok(())
}

/// `lanlink put`.
pub fn put(
    session: &Session,
    paths: &[PathBuf],
    options: &TransferOptions,
) -> Result<(), ClientError> {
    let mut report = Reporter::new("sent");
    for p in paths {
        session.put(p, options, &mut report)?;
    }
    Ok(())
}

/// `lanlink send --to NICK`.
pub fn send(session: &Session, to: &str, paths: &[PathBuf]) -> Result<(), ClientError> {
    let mut report = Reporter::new("delivered");
    for p in paths {
        println!(
            "offering {} to {to}; waiting for them to accept",
            p.display()
        );
        session.send_file(to, p, &TransferOptions::default(), &mut report)?;
    }
    Ok(())
}

/// How `receive` answers offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Accept every offer.
    Yes,
    /// Ask on the terminal.
    Ask,
    /// Decline (no terminal and no `--yes`).
    No,
}

/// Asks the user about `offer` on the terminal (or answers as `answer`
/// says); returns whether to accept.
pub fn decide(offer: &IncomingOffer, answer: Answer) -> bool {
    let (from, name, size) = (offer.from(), offer.name(), offer.size());
    match answer {
        Answer::Yes => {
            println!("accepting {name} ({size} bytes) from {from}");
            true
        }
        Answer::No => {
            println!("declining {name} from {from} (use --yes to accept without asking)");
            false
        }
        Answer::Ask => {
            print!("{from} offers {name} ({size} bytes). Accept? [y/N] ");
            let _ = std::io::stdout().flush();
            let mut answer = String::new();
            let _ = std::io::stdin().lock().read_line(&mut answer);
            matches!(answer.trim(), "y" | "Y" | "yes")
        }
    }
}

/// `lanlink receive`: accepts offers (asking on a terminal unless `yes`)
/// until `count` files arrived, or until the connection ends.
pub fn receive(
    session: &Session,
    events: &Events,
    dest: &Path,
    yes: bool,
    force: bool,
    count: Option<usize>,
) -> Result<(), ClientError> {
    create_folder(dest)?;
    let mut report = Reporter::new("received");
    let answer = match (yes, std::io::stdin().is_terminal()) {
        (true, _) => Answer::Yes,
        (false, true) => Answer::Ask,
        (false, false) => Answer::No,
    };
    println!("waiting for files as {} (Ctrl-C to stop)", session.name());
    let options = TransferOptions {
        force,
        ..TransferOptions::default()
    };
    let mut received = 0;
    while count.is_none_or(|c| received < c) {
        match events.recv_timeout(Duration::from_millis(500)) {
            Some(Event::FileOffered(offer)) => {
                if decide(&offer, answer) {
                    session.accept_file(&offer, dest, &options, &mut report)?;
                    received += 1;
                } else {
                    session.decline_file(&offer, "declined by the receiver")?;
                }
            }
            Some(Event::Disconnected(reason)) => return Err(ClientError::Disconnected(reason)),
            _ => {}
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
