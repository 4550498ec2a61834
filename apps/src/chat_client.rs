//! `lanlink chat`: type lines, see the room.
//!
//! On a terminal, lines are edited with rustyline and incoming messages are
//! printed *above* the line being typed, so they never garble it. When stdin
//! is not a terminal (a script, a pipe, a test), every input line is sent,
//! every event is printed as one line on stdout, and at end of input the
//! client says goodbye after everything it sent has been delivered.

use std::io::{BufRead, IsTerminal};
use std::sync::{Arc, Mutex};

use lanlink_proto::{chat, Capabilities, Frame, Message};
use lanlink_services::chat::command::{format_event, parse_line, Command, HELP};
use lanlink_transport::{CloseReason, Event};

use crate::connect::Target;

/// What `lanlink chat` needs to know.
#[derive(Debug, Clone)]
pub struct ChatOptions {
    /// The server and how to reach it.
    pub target: Target,
    /// The nickname to ask for.
    pub name: String,
    /// The room to talk in; the server puts everyone in its default room
    /// first.
    pub room: Option<String>,
    /// The password of that room, if it has one.
    pub room_password: Option<String>,
}

/// Runs the chat client until the user quits, input ends or the server goes
/// away. Returns the process exit code.
pub fn run(options: ChatOptions) -> Result<i32, String> {
    let client = options.target.connect(&options.name, Capabilities::CHAT)?;
    let welcome = client.welcome().clone();
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();

    // The server puts everyone in its default room and sends that room's
    // History first: wait for it, so the first line typed (or piped) goes
    // to a known room.
    let mut greeting = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut default_room = None;
    while default_room.is_none() && std::time::Instant::now() < deadline {
        if let Some(frame) = client
            .recv_timeout(std::time::Duration::from_millis(100))
            .map_err(|e| e.to_string())?
        {
            if let Message::History(h) = &frame.message {
                default_room = Some(h.room.clone());
            }
            greeting.push(frame);
        }
    }
    let room = Arc::new(Mutex::new(default_room.unwrap_or_else(|| "lobby".into())));
    if let Some(wanted) = &options.room {
        client
            .send(&Frame::control(chat::Join {
                room: wanted.clone(),
                password: options.room_password.clone(),
            }))
            .map_err(|e| e.to_string())?;
        *lock(&room) = wanted.clone();
    }

    let mut editor = if interactive {
        rustyline::DefaultEditor::new().ok()
    } else {
        None
    };
    let mut printer: Box<dyn FnMut(String) + Send> = match editor.as_mut() {
        Some(ed) => match ed.create_external_printer() {
            Ok(mut p) => Box::new(move |line| {
                let _ = rustyline::ExternalPrinter::print(&mut p, line);
            }),
            Err(_) => Box::new(|line| println!("{line}")),
        },
        None => Box::new(|line| println!("{line}")),
    };
    // Nothing is being edited yet: plain prints are safe (and the external
    // printer only shows what arrives once the editor runs).
    println!(
        "-- connected to {} as {} (type /help for commands)",
        welcome.server_name, welcome.name
    );
    for frame in &greeting {
        if let Some(text) = format_event(&frame.message) {
            println!("{text}");
        }
    }

    let events = client.events().clone();
    // Tells the input loop the moment the connection ends, so a script whose
    // stdin stays open still exits when the server goes away.
    let (closed_tx, closed) = crossbeam_channel::bounded::<()>(1);
    let receiver = std::thread::spawn(move || {
        let _closed_tx = closed_tx;
        for event in events {
            match event {
                Event::Frame { frame, .. } => {
                    if let Some(text) = format_event(&frame.message) {
                        printer(text);
                    }
                }
                Event::Closed { reason, .. } => {
                    return reason;
                }
                Event::Hello { .. } => {}
            }
        }
        CloseReason::Local("closed".into())
    });

    let mut quit_reason = String::from("quit");
    let mut send_line = |line: &str| -> bool {
        let current = lock(&room).clone();
        match parse_line(line, &current) {
            Ok(Command::Send(message)) => {
                if let Message::Join(j) = &message {
                    *lock(&room) = j.room.clone();
                }
                if let Err(e) = client.send(&Frame::control(message)) {
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
            Ok(Command::Help) => println!("{HELP}"),
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
        eprintln!("-- disconnected: {reason}");
        return Ok(match reason {
            CloseReason::Goodbye(_) => 0,
            _ => 1,
        });
    }
    // Goodbye goes out after everything queued, and `close` waits for the
    // server to close its side: by then it has handled every line we sent.
    client.close(&quit_reason);
    let _ = receiver.join();
    Ok(0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
