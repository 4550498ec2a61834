//! `lanlink ls`, `get`, `put`, `send` and `receive`: argument wiring around
//! the file operations of [`lanlink_client::Session`].

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lanlink_client::files::{free_name, name_taken, OfferAnswer};
use lanlink_client::{
    self as client, ClientError, Events, IncomingOffer, Resuming, Session, TransferOptions,
};
use lanlink_proto::ErrorCode;
use lanlink_transport::text::display_safe;

use crate::progress::{human_bytes, Reporter};

/// `lanlink ls`: prints one line per entry.
pub fn ls(session: &Session, path: &str, recursive: bool) -> Result<(), ClientError> {
    for e in session.list(path, recursive)? {
        let name = if e.name.is_empty() { path } else { &e.name };
        // The server's file names, shown: nothing in them acts on the terminal.
        let name = display_safe(name);
        if e.is_dir {
            println!("{:>10}  {name}/", "-");
        } else {
            println!("{:>10}  {name}", human_bytes(e.size));
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

/// On Ctrl-C (or SIGTERM), says `text` and exits with status 130 at once,
/// leaving partial files where they are for the next run to resume.
pub fn on_interrupt_say(text: &'static str) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("interrupt".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                // A new line first: a progress bar may hold this one.
                eprintln!("\ninterrupted: {text}");
                std::process::exit(130);
            }
        });
}

/// `e` with the way out that this command offers, when a file of that
/// name is in the way.
fn hinted(e: ClientError, hint: &str) -> ClientError {
    if e.code() == Some(ErrorCode::ALREADY_EXISTS) {
        e.with_hint(hint)
    } else {
        e
    }
}

/// A file session that connects again and resumes when it is lost.
pub type Link = Resuming<Box<dyn FnMut() -> Result<(Session, Events), ClientError>>>;

/// `lanlink get`.
pub fn get(
    link: &mut Link,
    names: &[String],
    dest: &Path,
    options: &TransferOptions,
) -> Result<(), ClientError> {
    on_interrupt_say("run the same command again to resume (partial files are kept)");
    let mut report = Reporter::new("got");
    for name in names {
        link.run(&mut report, |s, _, progress| {
            s.get(name, dest, options, progress)
        })
        .map_err(|e| {
            hinted(
                e,
                "it differs from the server's: --force replaces it, -o DIR saves elsewhere",
            )
        })?;
    }
    Ok(())
}

/// `lanlink put`.
pub fn put(
    link: &mut Link,
    paths: &[PathBuf],
    options: &TransferOptions,
) -> Result<(), ClientError> {
    on_interrupt_say("run the same command again to resume (the server keeps the partial file)");
    let mut report = Reporter::new("sent");
    for p in paths {
        link.run(&mut report, |s, _, progress| s.put(p, options, progress))
            .map_err(|e| {
                hinted(
                    e,
                    "the server does not replace files: upload under another name with --as NAME",
                )
            })?;
    }
    Ok(())
}

/// `lanlink send --to NICK`, waiting up to `timeout` for each answer.
pub fn send(
    session: &Session,
    to: &str,
    paths: &[PathBuf],
    timeout: Duration,
) -> Result<(), ClientError> {
    on_interrupt_say("send again to resume (the receiver keeps the partial file)");
    let mut report = Reporter::new("delivered");
    let options = TransferOptions {
        accept_timeout: Some(timeout),
        ..TransferOptions::default()
    };
    for p in paths {
        println!(
            "offering {} to {to}; waiting up to {} s for them to accept",
            p.display(),
            timeout.as_secs()
        );
        session.send_file(to, p, &options, &mut report)?;
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

/// What `receive` does with an offered file whose name is taken here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnConflict {
    /// Ask on the terminal (without one: skip).
    Ask,
    /// Replace the file here.
    Overwrite,
    /// Save it as `name (1).ext`.
    Rename,
    /// Decline it.
    Skip,
}

/// How `lanlink receive` behaves.
#[derive(Debug, Clone, Copy)]
pub struct ReceiveOptions {
    /// Accept offers without asking.
    pub yes: bool,
    /// What to do when a file of the same name is here.
    pub on_conflict: OnConflict,
    /// Exit after this many files.
    pub count: Option<usize>,
}

/// Asks `question` on the terminal and returns the answer, trimmed and
/// in lower case. What was typed before the question is thrown away: a
/// key pressed while nothing was asked must not answer it (a stray `y`
/// accepted the next file offered).
fn ask(question: &str) -> String {
    let _ = rustix::termios::tcflush(std::io::stdin(), rustix::termios::QueueSelector::IFlush);
    print!("{question}");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    answer.trim().to_lowercase()
}

/// Asks the user about `offer` on the terminal (or answers as `answer`
/// says); returns whether to accept.
pub fn decide(offer: &IncomingOffer, answer: Answer) -> bool {
    // The sender chose the name (the server vouches for `from`): shown
    // escaped, it cannot act on the terminal.
    let (from, name) = (display_safe(offer.from()), display_safe(offer.name()));
    let size = human_bytes(offer.size());
    match answer {
        Answer::Yes => {
            println!("accepting {name} ({size}) from {from}");
            true
        }
        Answer::No => {
            println!("declining {name} from {from} (use --yes to accept without asking)");
            false
        }
        Answer::Ask => matches!(
            ask(&format!("{from} offers {name} ({size}). Accept? [y/N] ")).as_str(),
            "y" | "yes"
        ),
    }
}

/// What to do with `offer`, whose name is taken in `dest`: `None` to skip
/// it, else the options to accept it with.
fn resolve_conflict(
    offer: &IncomingOffer,
    dest: &Path,
    policy: OnConflict,
    terminal: bool,
    options: &TransferOptions,
) -> Option<TransferOptions> {
    let name = offer.name();
    let shown = display_safe(name);
    let choice = match (policy, terminal) {
        (OnConflict::Ask, true) => {
            let rename = free_name(dest, name).map_or(String::new(), |r| {
                format!(", [r]ename to \"{}\"", display_safe(&r))
            });
            match ask(&format!(
                "{shown} exists in {}: [o]verwrite{rename}, [s]kip? ",
                dest.display()
            ))
            .as_str()
            {
                "o" | "overwrite" => client::OnConflict::Overwrite,
                "r" | "rename" => client::OnConflict::Rename,
                _ => client::OnConflict::Skip,
            }
        }
        (OnConflict::Ask, false) | (OnConflict::Skip, _) => client::OnConflict::Skip,
        (OnConflict::Overwrite, _) => client::OnConflict::Overwrite,
        (OnConflict::Rename, _) => client::OnConflict::Rename,
    };
    let chosen = options.on_conflict(dest, name, choice);
    match &chosen {
        Some(TransferOptions {
            as_name: Some(renamed),
            ..
        }) => println!("saving {shown} as {}", display_safe(renamed)),
        Some(_) => {}
        None => println!(
            "skipping {shown}: a file of that name is in {} \
             (--on-conflict overwrite or rename takes it)",
            dest.display()
        ),
    }
    chosen
}

/// `lanlink receive`: accepts offers (asking on a terminal unless `yes`)
/// until `count` files arrived, or until the connection ends. A name that
/// is taken here is asked about before accepting (or handled as
/// `on_conflict` says). Files arrive side by side
/// ([`Session::receive_files`]): a sender that stalls holds up its own file
/// only.
pub fn receive(
    session: &Session,
    events: &Events,
    dest: &Path,
    how: ReceiveOptions,
) -> Result<(), ClientError> {
    on_interrupt_say("partial files are kept; receiving the same files again resumes them");
    let terminal = std::io::stdin().is_terminal();
    let answer = match (how.yes, terminal) {
        (true, _) => Answer::Yes,
        (false, true) => Answer::Ask,
        (false, false) => Answer::No,
    };
    // The name is the server's to give: escaped (an outside attack,
    // helper-73, cleared the screen through it).
    println!(
        "waiting for files as {} (Ctrl-C to stop)",
        display_safe(&session.name())
    );
    let options = TransferOptions::default();
    let choose = |offer: &IncomingOffer| {
        if !decide(offer, answer) {
            return OfferAnswer::Decline("declined by the receiver".into());
        }
        if !name_taken(dest, offer.name()) {
            return OfferAnswer::Accept(options.clone());
        }
        match resolve_conflict(offer, dest, how.on_conflict, terminal, &options) {
            Some(o) => OfferAnswer::Accept(o),
            None => {
                OfferAnswer::Decline(format!("{} already exists at the receiver", offer.name()))
            }
        }
    };
    let ended = |offer: &IncomingOffer, result: Result<_, ClientError>| {
        if let Err(e) = result {
            not_received(offer, &e);
        }
    };
    session
        .receive_files(events, dest, choose)
        .count_opt(how.count)
        .progress(|| Reporter::new("received"))
        .on_end(ended)
        .run()?;
    Ok(())
}

/// Says on stderr that `offer` was not received, and why.
fn not_received(offer: &IncomingOffer, e: &ClientError) {
    eprintln!(
        "lanlink: {} from {}: not received: {}",
        display_safe(offer.name()),
        display_safe(offer.from()),
        display_safe(&e.to_string())
    );
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
