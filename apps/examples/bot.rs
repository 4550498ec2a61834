//! Runs a lanlink server inside this process and connects a bot to it that
//! answers `!time` and `!echo TEXT` in the lobby; then you can join with
//! `lanlink chat 127.0.0.1:7979 --name you` and talk to it.
//!
//! ```text
//! cargo run -p lanlink-apps --example bot
//! ```
//!
//! With `--self-test` it also connects a second client, asks the bot once,
//! prints the answer and exits (that is how CI runs it).

use std::net::TcpListener;
use std::time::Duration;

use lanlink_client::{Event, Session, Trust};
use lanlink_server::{run, ServerConfig};
use lanlink_transport::{ServerIdentity, Shutdown};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let self_test = std::env::args().any(|a| a == "--self-test");

    // 1. A server on a bound listener, stopped by a Shutdown signal.
    let listener = TcpListener::bind(if self_test {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:7979"
    })?;
    let addr = listener.local_addr()?.to_string();
    // TLS with a certificate kept between runs, so `lanlink chat` pins it once.
    let (identity, _) =
        ServerIdentity::load_or_create(&std::env::temp_dir().join("lanlink-bot-example"))?;
    let fingerprint = identity.fingerprint();
    let mut config = ServerConfig::default();
    config.transport.tls = Some(identity);
    let shutdown = Shutdown::new();
    let server = {
        let shutdown = shutdown.clone();
        std::thread::spawn(move || run(listener, config, shutdown))
    };
    // Our own clients know the certificate: they pin it.
    let connect = |name: &str| {
        Session::builder(&addr)
            .name(name)
            .trust(Trust::Fingerprint(fingerprint))
            .connect()
    };

    // 2. A bot: a session that answers some of what is said.
    let (bot, events) = connect("bot")?;
    println!("server on {addr} (certificate {fingerprint}); the bot is in the lobby");
    let bot_thread = std::thread::spawn(move || {
        for event in events {
            let Event::Message(m) = event else { continue };
            let reply = match m.text.split_once(' ').unwrap_or((&m.text, "")) {
                ("!time", _) => format!("{}: it is {:?}", m.from, std::time::SystemTime::now()),
                ("!echo", rest) => format!("{}: {rest}", m.from),
                _ => continue,
            };
            if bot.say(&m.room, &reply).is_err() {
                break;
            }
        }
    });

    if self_test {
        let (me, events) = connect("tester")?;
        me.say("lobby", "!echo hello bot")?;
        loop {
            match events.recv_timeout(Duration::from_secs(10)) {
                Some(Event::Message(m)) => {
                    println!("<{}> {}", m.from, m.text);
                    break;
                }
                Some(_) => continue,
                None => return Err("the bot did not answer".into()),
            }
        }
        me.close("done");
        shutdown.trigger();
    }
    server.join().map_err(|_| "server thread panicked")??;
    let _ = bot_thread.join();
    Ok(())
}
