//! Uploads a file or a folder into a server's inbox and goes on by itself
//! when the connection is lost (the server restarted, the Wi-Fi dropped):
//! it connects again and resumes where it stopped, for up to a minute
//! without progress.
//!
//! `cargo run -p lanlink-client --example backup -- HOST PATH`
use lanlink_client::{
    Capabilities, ProgressFn, Resume, Resuming, Session, TransferOptions, TransferProgress,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, path] = &args[..] else {
        return Err("usage: backup HOST PATH".into());
    };
    // Files only: a chat room's lines would wait unread in the events.
    let builder = Session::builder(host)
        .name("backup")
        .capabilities(Capabilities::FILE);
    let mut link = Resuming::connect(builder, Resume::default())?;
    let mut progress = ProgressFn::new(|p| match p {
        TransferProgress::Started {
            name,
            total,
            resumed_from,
        } => println!("uploading {name} ({total} B) from {resumed_from}"),
        TransferProgress::Finished(s) => println!("stored {} ({} B)", s.name, s.size),
        TransferProgress::Interrupted { why, retry_in } => {
            eprintln!("{why}; resuming in {retry_in:?}")
        }
        _ => {}
    });
    let options = TransferOptions::default();
    link.run(&mut progress, |session, _events, progress| {
        session.put(path.as_ref(), &options, progress)
    })?;
    Ok(())
}
