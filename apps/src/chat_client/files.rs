//! The chat's file commands: `/send`, `/ls`, `/get`, `/accept`,
//! `/decline`. Transfers run in the background while the chat goes on.

use std::path::PathBuf;
use std::sync::Arc;

use lanlink_client::{IncomingOffer, OnConflict, Quiet, TransferOptions};
use lanlink_transport::text::display_safe;

use super::{lock, Chat};
use crate::progress::human_bytes;

/// The file commands, added to the chat's own `/help`.
pub(crate) const FILE_HELP: &str = "\
/send USER PATH   offer a file or folder to USER
/ls [PATH]        list the server's shared folder
/get NAME         download NAME from the share into this folder
/accept [N]       accept the oldest (or Nth) file offered to you, into
                  this folder (beside a file of its name: NAME (1))
/decline [N]      decline it";

/// Runs a file command in the background; `None` if `line` is not one.
pub(crate) fn command(line: &str, chat: &Arc<Chat>) -> Option<Result<(), String>> {
    let line = line.trim();
    let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    let command = command.to_ascii_lowercase();
    if !matches!(
        command.as_str(),
        "/send" | "/ls" | "/get" | "/accept" | "/decline"
    ) {
        return None;
    }
    let Some(session) = chat.session() else {
        return Some(Err("not connected".into()));
    };
    // What these commands print holds the server's words (file names,
    // refusals): nothing in them may act on the terminal.
    let say = {
        let chat = chat.clone();
        move |text: String| chat.print(chat.view.info(&display_safe(&text)))
    };
    let nth = |rest: &str| -> Result<IncomingOffer, String> {
        let n: usize = if rest.is_empty() {
            1
        } else {
            rest.parse()
                .map_err(|_| format!("not a number: {rest:?}"))?
        };
        let mut state = lock(&chat.state);
        let waiting = state.offers().len();
        n.checked_sub(1)
            .and_then(|i| state.take_offer(i))
            .ok_or_else(|| format!("no offer number {n} ({waiting} waiting)"))
    };
    match command.as_str() {
        "/send" => {
            let Some((to, path)) = rest.split_once(' ') else {
                return Some(Err("usage: /send USER PATH".into()));
            };
            let (to, path) = (to.to_owned(), PathBuf::from(path.trim()));
            say(format!("-- offering {} to {to}", path.display()));
            std::thread::spawn(move || {
                let options = TransferOptions::default();
                match session.send_file(&to, &path, &options, &mut Quiet) {
                    Ok(done) => say(format!("-- {to} received {} file(s)", done.len())),
                    Err(e) => say(format!("!! sending {} failed: {e}", path.display())),
                }
            });
        }
        "/ls" => {
            let path = rest.to_owned();
            std::thread::spawn(move || match session.list(&path, false) {
                Ok(entries) if entries.is_empty() => say("-- (empty)".into()),
                Ok(entries) => {
                    for e in entries {
                        if e.is_dir {
                            say(format!("-- {:>10}  {}/", "-", e.name));
                        } else {
                            say(format!("-- {:>10}  {}", human_bytes(e.size), e.name));
                        }
                    }
                }
                Err(e) => say(format!("!! {e}")),
            });
        }
        "/get" => {
            if rest.is_empty() {
                return Some(Err("usage: /get NAME".into()));
            }
            let name = rest.to_owned();
            std::thread::spawn(move || {
                let options = TransferOptions::default();
                match session.get(&name, ".".as_ref(), &options, &mut Quiet) {
                    Ok(done) => {
                        for s in done {
                            let what = if s.unchanged { "already had" } else { "got" };
                            say(format!(
                                "-- {what} {} ({})",
                                s.path.display(),
                                human_bytes(s.size)
                            ));
                        }
                    }
                    Err(e) => say(format!("!! getting {name} failed: {e}")),
                }
            });
        }
        "/accept" => {
            let offer = match nth(rest) {
                Ok(o) => o,
                Err(e) => return Some(Err(e)),
            };
            // A file of that name here is kept: this one goes beside it.
            let here = std::path::Path::new(".");
            let Some(options) =
                TransferOptions::default().on_conflict(here, offer.name(), OnConflict::Rename)
            else {
                let _ = session.decline_file(&offer, "no free name for it at the receiver");
                return Some(Err(format!(
                    "{} is here already, and so are its names up to (999): declined",
                    offer.name()
                )));
            };
            if let Some(renamed) = &options.as_name {
                say(format!(
                    "-- {} is here already: saving this one as {renamed}",
                    offer.name()
                ));
            }
            std::thread::spawn(move || {
                match session.accept_file(&offer, here, &options, &mut Quiet) {
                    Ok(s) => say(format!(
                        "-- received {} ({})",
                        s.path.display(),
                        human_bytes(s.size)
                    )),
                    Err(e) => say(format!("!! receiving {} failed: {e}", offer.name())),
                }
            });
        }
        _ => {
            let offer = match nth(rest) {
                Ok(o) => o,
                Err(e) => return Some(Err(e)),
            };
            return Some(
                session
                    .decline_file(&offer, "declined by the receiver")
                    .map_err(|e| e.to_string()),
            );
        }
    }
    Some(Ok(()))
}
