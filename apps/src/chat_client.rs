//! `lanlink chat`: type lines, see the room, exchange files.
//!
//! On a terminal, lines are edited with rustyline and incoming messages are
//! printed *above* the line being typed, so they never garble it. When stdin
//! is not a terminal (a script, a pipe, a test), every input line is sent,
//! every event is printed as one line on stdout, and at end of input the
//! client says goodbye after everything it sent has been delivered.
//!
//! Besides the chat commands of [`lanlink_services::chat::command`], the
//! chat handles files: offers from other users are shown as they arrive
//! (`/accept`, `/decline`), and `/send USER PATH`, `/ls [PATH]` and
//! `/get NAME` run in the background while the chat goes on.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lanlink_client::{ClientError, Event, IncomingOffer, Quiet, Session, TransferOptions};
use lanlink_proto::{Capabilities, Message};
use lanlink_services::chat::command::{format_event, parse_line, Command, HELP};
use lanlink_transport::CloseReason;

use crate::connect::Server;

/// The file commands, added to the chat's own `/help`.
const FILE_HELP: &str = "\
/send USER PATH   offer a file or folder to USER
/ls [PATH]        list the server's shared folder
/get NAME         download NAME from the share into this folder
/accept [N]       accept the oldest (or Nth) file offered to you
/decline [N]      decline it";

/// What `lanlink chat` needs to know.
#[derive(Debug, Clone)]
pub struct ChatOptions {
    /// The server and how to reach it.
    pub server: Server,
    /// The nickname to ask for.
    pub name: String,
    /// The room to talk in; the server puts everyone in its default room
    /// first.
    pub room: Option<String>,
    /// The password of that room, if it has one.
    pub room_password: Option<String>,
}

type Printer = Arc<Mutex<Box<dyn FnMut(String) + Send>>>;

fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The line a person sees for `event`, if any.
fn line_for(event: &Event) -> Option<String> {
    let message: Message = match event {
        Event::Message(m) => m.clone().into(),
        Event::Private(m) => m.clone().into(),
        Event::Presence(p) => p.clone().into(),
        Event::NickChanged(n) => n.clone().into(),
        Event::Roster(r) => r.clone().into(),
        Event::History(h) => h.clone().into(),
        Event::Notice(n) => n.clone().into(),
        Event::ServerError(e) => e.clone().into(),
        Event::FileOffered(o) => {
            let safe = |s: &str| {
                format_event(&Message::Notice(lanlink_proto::chat::Notice {
                    room: None,
                    text: s.to_owned(),
                }))
            };
            return safe(&format!(
                "{} offers {} ({} bytes): /accept or /decline",
                o.from(),
                o.name(),
                o.size()
            ));
        }
        _ => return None,
    };
    format_event(&message)
}

/// Runs the chat client until the user quits, input ends or the server goes
/// away. Returns the process exit code.
pub fn run(options: ChatOptions) -> Result<i32, ClientError> {
    let (session, events) = options
        .server
        .connect(&options.name, Capabilities::CHAT | Capabilities::FILE)?;
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();

    // The server puts everyone in its default room and sends that room's
    // History first: wait for it, so the first line typed (or piped) goes
    // to a known room.
    let mut greeting = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut default_room = None;
    while default_room.is_none() && Instant::now() < deadline {
        if let Some(event) = events.recv_timeout(Duration::from_millis(100)) {
            if let Event::History(h) = &event {
                default_room = Some(h.room.clone());
            }
            if let Event::Disconnected(reason) = event {
                return Err(ClientError::Disconnected(reason));
            }
            greeting.push(event);
        }
    }
    let room = Arc::new(Mutex::new(default_room.unwrap_or_else(|| "lobby".into())));
    // A room just asked for, and the one we were in: lines go to the new
    // room at once, and a refusal (a wrong password) moves the prompt back.
    let pending_join: Arc<Mutex<Option<(String, String)>>> = Arc::new(Mutex::new(None));
    if let Some(wanted) = &options.room {
        session.join(wanted, options.room_password.as_deref())?;
        *lock(&room) = wanted.clone();
    }

    let mut editor = if interactive {
        rustyline::DefaultEditor::new().ok()
    } else {
        None
    };
    let printer: Printer = Arc::new(Mutex::new(match editor.as_mut() {
        Some(ed) => match ed.create_external_printer() {
            // Each line ends with its newline here: between two prompts
            // (raw mode off, just after Enter) rustyline writes the text
            // as it is, and the next prompt, drawn from the start of the
            // line, would wipe a line left unterminated. That is how a
            // `/join`'s roster or a `/who` answer got lost now and then.
            Ok(mut p) => Box::new(move |line: String| {
                let _ = rustyline::ExternalPrinter::print(&mut p, line + "\n");
            }),
            Err(_) => Box::new(|line| println!("{line}")),
        },
        None => Box::new(|line| println!("{line}")),
    }));
    // Nothing is being edited yet: plain prints are safe (and the external
    // printer only shows what arrives once the editor runs).
    let welcome = session.welcome();
    println!(
        "-- connected to {} as {} (type /help for commands)",
        welcome.server_name,
        session.name()
    );
    for event in &greeting {
        if let Some(text) = line_for(event) {
            println!("{text}");
        }
    }

    let offers: Arc<Mutex<Vec<IncomingOffer>>> = Arc::new(Mutex::new(Vec::new()));
    // Tells the input loop the moment the connection ends, so a script whose
    // stdin stays open still exits when the server goes away.
    let (closed_tx, closed) = crossbeam_channel::bounded::<()>(1);
    let receiver = {
        let (printer, offers, room, pending) = (
            printer.clone(),
            offers.clone(),
            room.clone(),
            pending_join.clone(),
        );
        std::thread::spawn(move || {
            let _closed_tx = closed_tx;
            for event in events {
                match &event {
                    Event::Disconnected(reason) => {
                        // Said at once, not after the next Enter: above the
                        // prompt on a terminal, on stderr for scripts.
                        let line = format!("-- disconnected: {reason}");
                        if interactive {
                            (lock(&printer))(line);
                        } else {
                            eprintln!("{line}");
                        }
                        return reason.clone();
                    }
                    Event::FileOffered(o) => lock(&offers).push(o.clone()),
                    // A join answers with the room's roster (a newcomer
                    // gets its history first): it went through.
                    Event::Roster(r) => {
                        let mut pending = lock(&pending);
                        if pending
                            .as_ref()
                            .is_some_and(|(new, _)| new.to_lowercase() == r.room.to_lowercase())
                        {
                            *pending = None;
                        }
                    }
                    Event::ServerError(_) => {
                        if let Some((_, previous)) = lock(&pending).take() {
                            *lock(&room) = previous;
                        }
                    }
                    _ => {}
                }
                if let Some(text) = line_for(&event) {
                    (lock(&printer))(text);
                }
            }
            CloseReason::Local("closed".into())
        })
    };

    let mut quit_reason = String::from("quit");
    let mut send_line = |line: &str| -> bool {
        if let Some(handled) = file_command(line, &session, &offers, &printer) {
            if let Err(e) = handled {
                eprintln!("!! {e}");
            }
            return true;
        }
        let current = lock(&room).clone();
        match parse_line(line, &current) {
            Ok(Command::Send(message)) => {
                if let Message::Join(j) = &message {
                    let previous = std::mem::replace(&mut *lock(&room), j.room.clone());
                    *lock(&pending_join) = Some((j.room.clone(), previous));
                }
                if let Err(e) = session.send(message) {
                    eprintln!("!! {e}");
                    return false;
                }
            }
            Ok(Command::Quit { reason }) => {
                if let Some(r) = reason {
                    quit_reason = r;
                }
                return false;
            }
            Ok(Command::Help) => println!("{HELP}\n{FILE_HELP}"),
            Ok(Command::Empty) => {}
            Err(e) => eprintln!("!! {e}"),
        }
        true
    };

    if let Some(ed) = editor.as_mut() {
        loop {
            let prompt = format!("[{}]> ", lock(&room));
            match ed.readline(&prompt) {
                Ok(line) => {
                    let _ = ed.add_history_entry(line.as_str());
                    if !send_line(&line) {
                        break;
                    }
                }
                Err(_) => break, // Ctrl-D, Ctrl-C
            }
            if matches!(
                closed.try_recv(),
                Err(crossbeam_channel::TryRecvError::Disconnected)
            ) {
                break;
            }
        }
    } else {
        let (lines_tx, lines) = crossbeam_channel::bounded::<String>(64);
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        loop {
            crossbeam_channel::select! {
                recv(lines) -> line => match line {
                    Ok(line) => {
                        if !send_line(&line) {
                            break;
                        }
                    }
                    Err(_) => break, // end of input
                },
                recv(closed) -> _ => break,
            }
        }
    }

    // The receiver drops its end of `closed` only when the connection is over.
    if matches!(
        closed.try_recv(),
        Err(crossbeam_channel::TryRecvError::Disconnected)
    ) {
        let reason = receiver.join().unwrap_or(CloseReason::PeerClosed);
        return Ok(match reason {
            CloseReason::Goodbye(_) => 0,
            _ => 1,
        });
    }
    // Goodbye goes out after everything queued, and `close` waits for the
    // server to close its side: by then it has handled every line we sent.
    session.close(&quit_reason);
    let _ = receiver.join();
    Ok(0)
}

/// Runs a file command (`/send`, `/ls`, `/get`, `/accept`, `/decline`) in
/// the background; `None` if `line` is not one.
fn file_command(
    line: &str,
    session: &Session,
    offers: &Arc<Mutex<Vec<IncomingOffer>>>,
    printer: &Printer,
) -> Option<Result<(), String>> {
    let line = line.trim();
    let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    let say = {
        let printer = printer.clone();
        move |text: String| (lock(&printer))(text)
    };
    let nth = |rest: &str| -> Result<IncomingOffer, String> {
        let n: usize = if rest.is_empty() {
            1
        } else {
            rest.parse()
                .map_err(|_| format!("not a number: {rest:?}"))?
        };
        let mut offers = lock(offers);
        if n == 0 || n > offers.len() {
            return Err(format!("no offer number {n} ({} waiting)", offers.len()));
        }
        Ok(offers.remove(n - 1))
    };
    let session = session.clone();
    match command.to_ascii_lowercase().as_str() {
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
                        let kind = if e.is_dir { "/" } else { "" };
                        say(format!("-- {:>12}  {}{kind}", e.size, e.name));
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
                            say(format!("-- got {} ({} bytes)", s.path.display(), s.size));
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
            std::thread::spawn(move || {
                let options = TransferOptions::default();
                match session.accept_file(&offer, ".".as_ref(), &options, &mut Quiet) {
                    Ok(s) => say(format!(
                        "-- received {} ({} bytes)",
                        s.path.display(),
                        s.size
                    )),
                    Err(e) => say(format!("!! receiving {} failed: {e}", offer.name())),
                }
            });
        }
        "/decline" => {
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
        _ => return None,
    }
    Some(Ok(()))
}
