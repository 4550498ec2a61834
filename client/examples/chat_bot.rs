//! A chat bot that answers `!time` in a room with the time of day (UTC)
//! where the bot runs.
//!
//! `cargo run -p lanlink-client --example chat_bot -- HOST [ROOM]`
use lanlink_client::{Event, Session};
use std::time::{SystemTime, UNIX_EPOCH};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let host = args.first().map_or("127.0.0.1", String::as_str);
    let room = args.get(1).map_or("lobby", String::as_str);
    let (session, events) = Session::builder(host).name("timebot").connect()?;
    session.join(room, None)?;
    for event in events {
        match event {
            Event::Message(m) if m.room == room && m.text.trim() == "!time" => {
                session.say(room, &format!("{}: it is {} UTC", m.from, time_of_day()?))?;
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
