//! A chat bot that answers `!time` in a room with the time of day (UTC)
//! where the bot runs. It stays: when the server goes away it connects
//! again (1 s, 2 s, 4 s … apart) and joins its room again, with its
//! password; it gives up only when that cannot work (banned, a changed
//! certificate), and then exits with status 1.
//!
//! `cargo run -p lanlink-client --example chat_bot -- HOST [ROOM [PASSWORD]]`
use lanlink_client::{Backoff, Event, Reconnecting, Session};
use std::time::{SystemTime, UNIX_EPOCH};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let host = args.first().map_or("127.0.0.1", String::as_str);
    let room = args.get(1).map_or("lobby", String::as_str);
    let password = args.get(2).map(String::as_str);
    let builder = Session::builder(host).name("timebot");
    let (bot, events) = Reconnecting::connect(builder, Backoff::default())?;
    bot.join(room, password)?;
    for event in events {
        match event {
            Event::Message(m) if m.room == room && m.text.trim() == "!time" => {
                // A line said as the connection goes is lost with it.
                if let Err(e) = bot.say(room, &format!("{}: it is {} UTC", m.from, time_of_day()?))
                {
                    eprintln!("could not answer: {e}");
                }
            }
            Event::Reconnecting {
                reason, retry_in, ..
            } => {
                println!("lost the server ({reason}); trying again in {retry_in:?}");
            }
            Event::ConnectFailed(e) => println!("could not connect: {e}"),
            // The server's word: a bot prints it escaped.
            Event::Reconnected { name } => {
                println!("back as {}, joining {room} again", name.escape_debug())
            }
            Event::Disconnected(reason) => return Err(format!("disconnected: {reason}").into()),
            _ => {}
        }
    }
    Ok(())
}

/// `HH:MM:SS`, UTC.
fn time_of_day() -> Result<String, std::time::SystemTimeError> {
    let s = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() % 86_400;
    Ok(format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60))
}
