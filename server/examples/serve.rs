//! A lanlink server in a program of your own: TLS with a certificate kept
//! across runs (clients pin it on first use), a shared folder, an inbox,
//! and a clean stop when standard input ends (Enter, or Ctrl-D).
//!
//! `cargo run -p lanlink-server --example serve -- 0.0.0.0:7878 SHARE INBOX`
//!
//! Then, from another machine: `lanlink ls HOST`, `lanlink put HOST FILE`,
//! `lanlink chat HOST`.
use std::net::TcpListener;

use lanlink_server::{run, ServerConfig, ServerIdentity, Shutdown};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bind, share, inbox] = &args[..] else {
        return Err("usage: serve ADDRESS:PORT SHARE INBOX".into());
    };
    let mut config = ServerConfig::default();
    // A new certificate on every run would look like an impostor to the
    // clients that pinned the last one.
    let (identity, created) = ServerIdentity::load_or_create("serve-data".as_ref())?;
    let what = if created { "created" } else { "kept" };
    println!("certificate {what}: {}", identity.fingerprint());
    config.transport.tls = Some(identity);
    config.file.share = Some(share.into());
    config.file.inbox = Some(inbox.into());
    // Before saying it serves: a missing folder is an error here, not
    // one for each client that asks.
    config.check_folders()?;

    let listener = TcpListener::bind(bind)?;
    println!("serving on {}; press Enter to stop", listener.local_addr()?);
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_line(&mut String::new());
        // Every client is told goodbye; `run` returns once all are gone.
        stop.trigger();
    });
    run(listener, config, shutdown)?;
    println!("stopped");
    Ok(())
}
