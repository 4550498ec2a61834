//! `lanlink chat`: type lines, see the room, exchange files.
//!
//! On a terminal, lines are edited with rustyline (Tab completes commands,
//! rooms and nicknames) and incoming messages are printed *above* the line
//! being typed, so they never garble it; each line starts with the time
//! and nicknames have colours of their own. When the connection is lost
//! the client says why at once, then reconnects (1 s, 2 s, 4 s … 30 s
//! apart) and joins its rooms again, passwords included.
//!
//! When stdin is not a terminal (a script, a pipe, a test), every input
//! line is sent, every event is printed as one line on stdout, and the
//! client makes sure each line arrived
//! ([`lanlink_client::Session::send_confirmed`]: a `Confirm` after each line,
//! which the server answers only after handling the line, so a refusal in
//! between is that line's). A line
//! refused for coming too fast is sent again once the server says it may;
//! one refused for another reason makes the exit status 1; one the server
//! does not answer at all ends the client (exit 1). A lost connection ends
//! the client: exit 1, or 0 only when the server said goodbye after the
//! input had ended and every line was delivered (input still open could
//! not be sent). At end of input it says goodbye after everything it sent
//! was handled.
//!
//! Besides the chat commands of [`lanlink_services::chat::command`], the
//! chat handles files: offers from other users are shown as they arrive
//! (`/accept`, `/decline`), and `/send USER PATH`, `/ls [PATH]` and
//! `/get NAME` run in the background while the chat goes on.

mod complete;
mod files;
mod state;
mod view;

use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use lanlink_client::{Backoff, ClientError, Event, Events, Paced, Reconnecting, Session};
use lanlink_proto::{Capabilities, ErrorCode, Message};
use lanlink_services::chat::command::{parse_line, Command, HELP};
use lanlink_transport::text::display_safe;
use lanlink_transport::CloseReason;

use crate::connect::{describe, Server};
use lanlink_client::ChatModel;
use state::fold;
pub use view::Timestamps;
use view::View;

/// Every command, for Tab completion.
const COMMANDS: &[&str] = &[
    "/accept", "/decline", "/get", "/help", "/join", "/leave", "/ls", "/me", "/msg", "/nick",
    "/quit", "/send", "/who",
];

/// How long to wait for the server to answer a join or a script's line.
const ANSWER_PATIENCE: Duration = Duration::from_secs(10);

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
    /// Whether lines start with the time.
    pub timestamps: Timestamps,
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the threads of a chat client share.
pub(crate) struct Chat {
    view: View,
    interactive: bool,
    state: Arc<Mutex<ChatModel>>,
    /// A script's session (`None` once it is lost); on a terminal the
    /// link's.
    session: Mutex<Option<Session>>,
    /// On a terminal: the session that connects again by itself and joins
    /// its rooms again.
    link: Option<Reconnecting>,
    /// The server's address, as the user gave it.
    addr: String,
    printer: Mutex<Box<dyn FnMut(String) + Send>>,
    /// Answers the input side waits for (rosters, histories, errors).
    replies_tx: Sender<Event>,
    replies: Receiver<Event>,
    quitting: AtomicBool,
    /// Connecting again met what waiting cannot mend (a changed
    /// certificate, a refused name): no connection will come.
    gave_up: AtomicBool,
    /// A script's lines that were refused or not delivered.
    failures: AtomicUsize,
    /// How fast a script's lines may go.
    pacing: Mutex<Paced>,
    /// How fast its joins may go: limited apart from lines (a wait for
    /// the room-password guesses must not space every later line).
    join_pacing: Mutex<Paced>,
}

enum Step {
    Continue,
    Quit(Option<String>),
}

impl Chat {
    fn print(&self, line: String) {
        (lock(&self.printer))(line);
    }

    /// Prints from the thread that reads the lines, while no line is being
    /// edited: straight to the terminal (rustyline's printer could wait for
    /// the next prompt, which this thread would never show), through the
    /// script's printer otherwise.
    fn print_here(&self, text: String) {
        if self.interactive {
            println!("{text}");
        } else {
            self.print(text);
        }
    }

    fn note(&self, text: &str) {
        self.print(self.view.info(text));
    }

    /// A problem with what the user typed: on stderr, as before.
    /// Says what went wrong on stderr. The text may quote the server (a
    /// refusal's reason, an error's): escaped here, whatever the caller
    /// did (an outside attack, helper-72, set the terminal's title and
    /// cleared its screen through a refusal's reason).
    fn complain(&self, text: &str) {
        eprintln!("!! {}", display_safe(text));
    }

    fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A line typed while there is no connection (a terminal is
    /// reconnecting; a script's connection is over for good).
    fn not_connected(&self) {
        self.complain(if self.gave_up.load(Ordering::Relaxed) {
            "not connected, and not reconnecting (see above); /quit to leave"
        } else if self.interactive {
            "not connected (reconnecting; /quit to stop)"
        } else {
            "not connected"
        });
    }

    pub(crate) fn session(&self) -> Option<Session> {
        match &self.link {
            Some(link) => link.session(),
            None => lock(&self.session).clone(),
        }
    }

    fn drain_replies(&self) {
        while self.replies.try_recv().is_ok() {}
    }

    /// Shows `event` and learns from it.
    fn handle(&self, event: &Event) {
        let lines = state::apply(&mut lock(&self.state), event, &self.view, !self.interactive);
        for line in lines {
            self.print(line);
        }
        // What the waits for answers look at (a room's name, whether a
        // history is empty): not the whole roster or history, which a
        // server may make 16 MiB each.
        let reply = match event {
            Event::Roster(r) => Some(Event::Roster(lanlink_proto::chat::Roster {
                room: r.room.clone(),
                members: Vec::new(),
            })),
            Event::History(h) => Some(Event::History(lanlink_proto::chat::History {
                room: h.room.clone(),
                messages: h.messages.iter().take(1).cloned().collect(),
            })),
            Event::ServerError(_) => Some(event.clone()),
            _ => None,
        };
        if let Some(reply) = reply {
            let _ = self.replies_tx.try_send(reply);
        }
    }

    /// Follows the connection's events (on a terminal, over every
    /// reconnect) until it is over for good; returns why it ended.
    fn follow(&self, events: Events) -> CloseReason {
        // "Disconnected" was said: not again when reconnecting gives up.
        let mut told = false;
        // Connecting again met what waiting cannot mend.
        let mut gave_up = false;
        for event in events {
            match event {
                Event::Disconnected(reason) => {
                    *lock(&self.session) = None;
                    let _ = self
                        .replies_tx
                        .try_send(Event::Disconnected(reason.clone()));
                    if !self.quitting.load(Ordering::Relaxed) && !told {
                        // Said at once, not after the next Enter: above
                        // the prompt on a terminal, on stderr for scripts.
                        let line = format!("-- disconnected: {reason}");
                        if self.interactive {
                            self.note(&line);
                        } else {
                            eprintln!("{line}");
                        }
                    }
                    if gave_up {
                        return CloseReason::Local("gave up reconnecting".into());
                    }
                    return reason;
                }
                Event::Reconnecting {
                    reason,
                    attempt,
                    retry_in,
                } => {
                    if !told {
                        told = true;
                        lock(&self.state).disconnected();
                        let _ = self
                            .replies_tx
                            .try_send(Event::Disconnected(reason.clone()));
                        self.note(&format!("-- disconnected: {reason}"));
                    }
                    self.note(&format!(
                        "-- reconnecting in {} s (attempt {attempt}; /quit to stop)",
                        retry_in.as_secs()
                    ));
                }
                // A changed certificate, a wrong token, a refused name:
                // waiting will not mend it.
                Event::ConnectFailed(e) if !lanlink_client::worth_connecting_again(&e) => {
                    gave_up = true;
                    self.gave_up.store(true, Ordering::Relaxed);
                    self.note(&format!("!! {}", describe(&e)));
                    self.note("-- not reconnecting: trying again would not help; /quit to leave");
                }
                Event::ConnectFailed(e) => self.note(&format!("!! reconnecting failed: {e}")),
                Event::Reconnected { name } => {
                    told = false;
                    // The name is the server's word: escaped like any other.
                    self.note(&format!(
                        "-- reconnected to {} as {}",
                        self.addr,
                        display_safe(&name)
                    ));
                    lock(&self.state).set_me(&name);
                }
                event => self.handle(&event),
            }
        }
        CloseReason::Local("closed".into())
    }

    /// Handles one typed line.
    fn line(self: &Arc<Self>, line: &str) -> Step {
        if let Some(result) = files::command(line, self) {
            if let Err(e) = result {
                self.complain(&e);
                self.failed();
            }
            return Step::Continue;
        }
        let current = lock(&self.state).current().to_owned();
        match parse_line(line, &current) {
            Ok(Command::Send(Message::Join(j))) => {
                if !self.join(&j.room, j.password.as_deref()) {
                    self.failed();
                    // A script's next lines were meant for that room, not
                    // the one it is still in.
                    if !self.interactive {
                        self.complain("stopping: the lines after it are not sent");
                        return Step::Quit(Some("could not join the room".into()));
                    }
                }
            }
            Ok(Command::Send(message)) => match self.session() {
                None => {
                    self.not_connected();
                    self.failed();
                }
                // A leave is confirmed, so that the next prompt (and line)
                // is for the room the user is still in.
                Some(session) if self.interactive => {
                    let sent = match &message {
                        Message::Leave(_) => {
                            session.send_confirmed(message.clone(), ANSWER_PATIENCE)
                        }
                        _ => session.send(message.clone()),
                    };
                    match sent {
                        Ok(()) => self.remember(&message),
                        // A refusal is shown as it comes.
                        Err(ClientError::Refused { .. }) => {}
                        Err(e) => self.complain(&e.to_string()),
                    }
                }
                Some(session) => {
                    if !self.deliver(&session, &message) {
                        // No answer: the rest would wait as long, each.
                        self.complain("stopping: the lines after it are not sent");
                        return Step::Quit(Some("the server stopped answering".into()));
                    }
                }
            },
            Ok(Command::Quit { reason }) => return Step::Quit(reason),
            Ok(Command::Help) => self.print_here(format!("{HELP}\n{}", files::FILE_HELP)),
            Ok(Command::Empty) => {}
            Err(e) => {
                self.complain(&e.to_string());
                self.failed();
                // A script's /join it could not even send: the lines after
                // it were meant for that room too.
                if !self.interactive && line.trim_start().starts_with("/join") {
                    self.complain("stopping: the lines after it are not sent");
                    return Step::Quit(Some("could not join the room".into()));
                }
            }
        }
        Step::Continue
    }

    /// Learns from a message the server has taken: a line said (not to
    /// be shown twice), a room left (plain lines go to another now).
    fn remember(&self, message: &Message) {
        match message {
            Message::ChatMessage(m) => lock(&self.state).said(&m.room, &m.text),
            Message::Leave(l) => {
                let now = lock(&self.state).left(&l.room).map(str::to_owned);
                if let Some(room) = now {
                    self.print_here(self.view.info(&format!("-- talking in {room}")));
                }
            }
            _ => {}
        }
    }

    /// Joins `room`, or switches to it if we are in it already (showing
    /// who is there, without its history again). Waits until the server
    /// has handled the join ([`Session::join_confirmed`]) and its roster
    /// of the room is shown, so the prompt changes only once the room is
    /// joined: a refusal (a wrong password, shown as it comes) leaves it
    /// where it was.
    fn join(&self, room: &str, password: Option<&str>) -> bool {
        let Some(session) = self.session() else {
            self.not_connected();
            return false;
        };
        self.drain_replies();
        let known = lock(&self.state).in_room(room).map(str::to_owned);
        let asked = match known {
            Some(name) => {
                self.note(&format!("-- talking in {name}"));
                session.roster(&name)
            }
            None => {
                lock(&self.state).joining(room);
                match &self.link {
                    // Joined again after a reconnect, with its password.
                    Some(link) => link.join_confirmed(room, password, ANSWER_PATIENCE),
                    // A script's join refused as too fast is sent again
                    // once the server allows, as its lines are.
                    None if !self.interactive => {
                        let join = lanlink_proto::chat::Join {
                            room: room.to_owned(),
                            password: password.map(str::to_owned),
                        };
                        lock(&self.join_pacing).send(&session, join)
                    }
                    None => session.join_confirmed(room, password, ANSWER_PATIENCE),
                }
            }
        };
        match asked {
            Ok(()) => {}
            // A script hides refusals for sending too fast: said here.
            Err(ClientError::Refused { code, reason })
                if code == ErrorCode::RATE_LIMITED && !self.interactive =>
            {
                self.complain(&format!(
                    "not joined to {room}: the server kept refusing it as too fast ({reason})"
                ));
                return false;
            }
            // Shown already, as the event it also is.
            Err(ClientError::Refused { .. }) => return false,
            Err(ClientError::Unconfirmed { .. }) => {
                self.complain(&format!("the server did not answer /join {room}"));
                return false;
            }
            Err(e) => {
                self.complain(&e.to_string());
                return false;
            }
        }
        // The roster came before the join's confirmation: shown once the
        // events before it are.
        let deadline = Instant::now() + ANSWER_PATIENCE;
        loop {
            match self.replies.recv_deadline(deadline) {
                Ok(Event::Roster(r)) if fold(&r.room) == fold(room) => {
                    let mut state = lock(&self.state);
                    if let Some(name) = state.in_room(room).map(str::to_owned) {
                        state.set_current(&name);
                        return true;
                    }
                }
                Ok(Event::Disconnected(_)) => return false,
                Ok(_) => {}
                Err(_) => {
                    self.complain(&format!("the server did not answer /join {room}"));
                    return false;
                }
            }
        }
    }

    /// Script mode: sends `message` and makes sure the server handled it,
    /// sending it again while it is refused as too fast ([`Paced`]).
    /// Returns false when the server did not answer at all (or the
    /// connection is gone): nothing more should be sent.
    fn deliver(&self, session: &Session, message: &Message) -> bool {
        let sent = lock(&self.pacing).send(session, message.clone());
        match sent {
            Ok(()) => {
                self.remember(message);
                true
            }
            Err(ClientError::Refused { code, reason })
                if code == ErrorCode::RATE_LIMITED && !self.interactive =>
            {
                self.complain(&format!(
                    "not delivered: the server kept refusing it as too fast ({reason})"
                ));
                self.failed();
                true
            }
            // The refusal itself was shown, as an event.
            Err(ClientError::Refused { .. }) => {
                self.failed();
                true
            }
            Err(e) => {
                self.complain(&e.to_string());
                self.failed();
                false
            }
        }
    }
}

/// The room as the prompt shows it: the server spells it (a hostile one
/// may put escape sequences there), so escaped, and cut to 40 characters.
fn prompt_room(room: &str) -> String {
    lanlink_transport::text::display_cut(room, 40)
}

/// Whether the follower is done with the connection (it holds the other
/// end of `closed` until then).
fn over(closed: &Receiver<()>) -> bool {
    matches!(
        closed.try_recv(),
        Err(crossbeam_channel::TryRecvError::Disconnected)
    )
}

/// Runs the chat client until the user quits, input ends or the server goes
/// away. Returns the process exit code.
pub fn run(options: ChatOptions) -> Result<i32, ClientError> {
    let builder = options
        .server
        .builder(&options.name, Capabilities::CHAT | Capabilities::FILE);
    let addr = &options.server.addr;
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    // On a terminal the chat outlives its connection: it connects again
    // and joins its rooms again. A script's chat ends with it.
    let (session, events, link) = if interactive {
        let (link, events) = Reconnecting::connect(builder, Backoff::default())?;
        let Some(session) = link.session() else {
            return Err(ClientError::Disconnected(CloseReason::PeerClosed));
        };
        crate::connect::tell_trust(&session, addr);
        (session, events, Some(link))
    } else {
        let (session, events) = crate::connect::connect(builder, addr)?;
        (session, events, None)
    };
    let state = Arc::new(Mutex::new(ChatModel::new(&session.name())));

    let mut editor = if interactive {
        let config = rustyline::Config::builder().auto_add_history(true).build();
        rustyline::Editor::<complete::ChatHelper, rustyline::history::DefaultHistory>::with_config(
            config,
        )
        .ok()
    } else {
        None
    };
    if let Some(ed) = editor.as_mut() {
        ed.set_helper(Some(complete::ChatHelper {
            state: state.clone(),
        }));
    }
    let printer: Box<dyn FnMut(String) + Send> = match editor.as_mut() {
        Some(ed) => match ed.create_external_printer() {
            // With its newline: between two prompts (while a line is
            // handled) rustyline writes the text as it is, and without one
            // the next prompt drew over it (the roster line that 6 of 29
            // joins lacked).
            Ok(mut p) => Box::new(move |line: String| {
                let _ = rustyline::ExternalPrinter::print(&mut p, line + "\n");
            }),
            Err(_) => Box::new(|line| println!("{line}")),
        },
        // A script's reader that went away (`| head`) ends the client:
        // quietly, not with a panic, and not with success.
        None => Box::new(|line| {
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                eprintln!("-- standard output is closed; stopping");
                std::process::exit(1);
            }
        }),
    };
    let (replies_tx, replies) = crossbeam_channel::bounded(256);
    let chat = Arc::new(Chat {
        view: View::new(options.timestamps, interactive),
        interactive,
        state,
        session: Mutex::new(Some(session.clone())),
        link,
        addr: addr.clone(),
        printer: Mutex::new(printer),
        replies_tx,
        replies,
        quitting: AtomicBool::new(false),
        gave_up: AtomicBool::new(false),
        failures: AtomicUsize::new(0),
        pacing: Mutex::new(Paced::new().patience(ANSWER_PATIENCE)),
        join_pacing: Mutex::new(Paced::new().patience(ANSWER_PATIENCE)),
    });

    // Nothing is being edited yet: a plain print is safe.
    chat.print_here(chat.view.info(&format!(
        "-- connected to {} as {} (type /help for commands{})",
        display_safe(&session.welcome().server_name),
        display_safe(&session.name()),
        if interactive { ", Tab completes" } else { "" }
    )));
    // Tells the input loop the moment the connection is over for good, so
    // a script whose stdin stays open still exits when the server goes.
    let (closed_tx, closed) = crossbeam_channel::bounded::<()>(1);
    let follower = {
        let chat = chat.clone();
        std::thread::spawn(move || {
            let _closed_tx = closed_tx;
            chat.follow(events)
        })
    };

    // The server puts everyone in its default room and sends its history
    // first: wait for it, so the first line goes to a known room.
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Ok(event) = chat.replies.recv_deadline(deadline) {
        if let Event::History(h) = event {
            lock(&chat.state).set_current(&h.room);
            break;
        }
    }
    if lock(&chat.state).current().is_empty() {
        lock(&chat.state).set_current("lobby");
    }
    if let Some(wanted) = &options.room {
        if !chat.join(wanted, options.room_password.as_deref()) && !interactive {
            // A script's lines were meant for that room, not another one.
            chat.quitting.store(true, Ordering::Relaxed);
            session.close("could not join the room");
            let _ = follower.join();
            return Ok(1);
        }
    }
    drop(session);

    let mut quit_reason = String::from("quit");
    // A script's input not read to its end (or read and not sent) when the
    // connection ended: those lines were not delivered.
    let mut unsent_input = false;
    let input_done = Arc::new(AtomicBool::new(false));
    if let Some(ed) = editor.as_mut() {
        loop {
            let prompt = format!("[{}]> ", prompt_room(lock(&chat.state).current()));
            match ed.readline(&prompt) {
                Ok(line) => {
                    if let Step::Quit(reason) = chat.line(&line) {
                        quit_reason = reason.unwrap_or(quit_reason);
                        break;
                    }
                }
                Err(_) => break, // Ctrl-D, Ctrl-C
            }
            if over(&closed) {
                break;
            }
        }
        // Lines printed while a line was being read wait in rustyline's
        // channel of one; nobody reads it now, and a second one would block
        // the follower for ever (and with it the quit). Dropping the editor
        // lets that send fail; later lines go straight to the terminal.
        drop(editor);
    } else {
        let (lines_tx, lines) = crossbeam_channel::bounded::<String>(64);
        let done = input_done.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    return;
                }
            }
            done.store(true, Ordering::Release);
        });
        loop {
            crossbeam_channel::select! {
                recv(lines) -> line => match line {
                    Ok(line) => {
                        if let Step::Quit(reason) = chat.line(&line) {
                            quit_reason = reason.unwrap_or(quit_reason);
                            break;
                        }
                    }
                    Err(_) => break, // end of input
                },
                recv(closed) -> _ => break,
            }
        }
        if over(&closed) {
            // Input at its end is read at once: a moment for the reader.
            let deadline = Instant::now() + Duration::from_millis(200);
            while !input_done.load(Ordering::Acquire) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            unsent_input = !input_done.load(Ordering::Acquire) || !lines.is_empty();
        }
    }

    let failures = chat.failures.load(Ordering::Relaxed);
    let undelivered = || {
        if failures > 0 {
            eprintln!("-- {failures} line(s) were refused or not delivered");
        }
    };
    if over(&closed) {
        // The connection is over: the server closed it, or it was lost.
        let reason = follower.join().unwrap_or(CloseReason::PeerClosed);
        undelivered();
        if unsent_input {
            eprintln!(
                "-- the connection ended before the end of the input: lines after it were not sent"
            );
        }
        return Ok(match reason {
            CloseReason::Goodbye(_) if failures == 0 && !unsent_input => 0,
            _ => 1,
        });
    }
    // Goodbye goes out after everything queued, and `close` waits for the
    // server to close its side: by then it has handled every line we sent.
    chat.quitting.store(true, Ordering::Relaxed);
    match &chat.link {
        // Also stops a reconnect that is waiting.
        Some(link) => link.close(&quit_reason),
        None => {
            if let Some(session) = chat.session() {
                session.close(&quit_reason);
            }
        }
    }
    let _ = follower.join();
    undelivered();
    Ok(if failures > 0 && !interactive { 1 } else { 0 })
}
