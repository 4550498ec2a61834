//! Says each line of its standard input in a room, and makes sure the
//! server took it ([`Paced`]): a line refused for coming too fast is said
//! again once the server says it may, and the lines after it are spaced
//! so; a line refused for anything else (too long, a room it may not speak
//! in) is reported, and the exit status is 1. So is a room it cannot join
//! and a lost connection: a script that could not deliver never exits 0.
//!
//! `printf 'build 812 passed\ndeploying\n' | cargo run -p lanlink-client --example announce -- HOST [ROOM [PASSWORD]]`
use std::io::BufRead;
use std::time::Duration;

use lanlink_client::text::display_safe;
use lanlink_client::{ClientError, Paced, Session};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let host = args.first().map_or("127.0.0.1", String::as_str);
    let room = args.get(1).map_or("lobby", String::as_str);
    let password = args.get(2).map(String::as_str);
    // The events are not needed here: dropping them lets the session go
    // on without anyone reading them.
    let (session, _) = Session::builder(host).name("announcer").connect()?;
    // Confirmed, so a wrong password is said here, not blamed on a line.
    session.join_confirmed(room, password, Duration::from_secs(10))?;
    let mut paced = Paced::new();
    let mut refused = 0;
    for line in std::io::stdin().lock().lines() {
        match paced.say(&session, room, &line?) {
            Ok(()) => {}
            // The server's words: printed escaped.
            Err(ClientError::Refused { reason, .. }) => {
                eprintln!("not said: {}", display_safe(&reason));
                refused += 1;
            }
            // Disconnected, or no answer: nothing more can be said.
            Err(e) => return Err(e.into()),
        }
    }
    session.close("done");
    if refused > 0 {
        return Err(format!("{refused} line(s) were refused").into());
    }
    Ok(())
}
