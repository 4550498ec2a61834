//! Says each line of its standard input in a room, and makes sure the
//! server took it: a line refused for coming too fast is said again once
//! the server says it may; a line refused for anything else (too long, a
//! room it may not speak in) is reported, and the exit status is 1. So is
//! a lost connection: a script that could not deliver never exits 0.
//!
//! `printf 'build 812 passed\ndeploying\n' | cargo run -p lanlink-client --example announce -- HOST [ROOM]`
use std::io::BufRead;
use std::time::Duration;

use lanlink_client::{ClientError, Session};

/// How long one line may wait for the rate limit, in all.
const MAX_WAIT: Duration = Duration::from_secs(60);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let host = args.first().map_or("127.0.0.1", String::as_str);
    let room = args.get(1).map_or("lobby", String::as_str);
    // The events are not needed here: dropping them lets the session go
    // on without anyone reading them.
    let (session, _) = Session::builder(host).name("announcer").connect()?;
    session.join(room, None)?;
    let mut refused = 0;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let mut waited = Duration::ZERO;
        loop {
            match session.say_confirmed(room, &line, Duration::from_secs(10)) {
                Ok(()) => break,
                // Too fast: the refusal says how long to wait.
                Err(e) if e.retry_after().is_some_and(|w| waited + w <= MAX_WAIT) => {
                    let wait = e.retry_after().unwrap_or_default();
                    std::thread::sleep(wait);
                    waited += wait;
                }
                // The server's words: printed escaped.
                Err(ClientError::Refused { reason, .. }) => {
                    eprintln!("not said: {}", reason.escape_debug());
                    refused += 1;
                    break;
                }
                // Disconnected, or no answer: nothing more can be said.
                Err(e) => return Err(e.into()),
            }
        }
    }
    session.close("done");
    if refused > 0 {
        return Err(format!("{refused} line(s) were refused").into());
    }
    Ok(())
}
