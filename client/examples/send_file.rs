//! Offers a file to a user and prints its progress until it arrived.
//!
//! `cargo run -p lanlink-client --example send_file -- HOST USER FILE`
use lanlink_client::{Capabilities, ProgressFn, Session, TransferOptions, TransferProgress};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, user, file] = &args[..] else {
        return Err("usage: send_file HOST USER FILE".into());
    };
    // Files only: no room, no name to keep unique. The events are dropped
    // (`_`): nobody reads them, and held unread they would fill and stop
    // the session.
    let (session, _) = Session::builder(host)
        .capabilities(Capabilities::FILE)
        .connect()?;
    let mut progress = ProgressFn::new(|p| match p {
        TransferProgress::Started { name, total, .. } => println!("offering {name} ({total} B)"),
        TransferProgress::Advanced { done, total } => println!("{done}/{total} bytes"),
        TransferProgress::Finished(s) => println!("delivered {} in {:?}", s.name, s.elapsed),
        _ => {}
    });
    let options = TransferOptions::default();
    session.send_file(user, file.as_ref(), &options, &mut progress)?;
    Ok(())
}
