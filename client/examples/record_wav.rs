//! Records the mix of every talker on the server into a WAV file.
//!
//! `cargo run -p lanlink-client --example record_wav -- HOST OUT.wav SECONDS`
use lanlink_client::audio::{ListenOptions, FORMAT};
use lanlink_client::Session;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, out, seconds] = &args[..] else {
        return Err("usage: record_wav HOST OUT.wav SECONDS".into());
    };
    // The events are dropped (`_`): held unread they would fill and stop
    // the session.
    let (session, _) = Session::builder(host).name("recorder").connect()?;
    let sink = lanlink_client::lanlink_audio::WavSink::create(out, FORMAT)?;
    let limit = Some(Duration::from_secs_f64(seconds.parse()?));
    let options = ListenOptions { only: None, limit };
    let report = session.listen(sink, options)?.wait()?;
    println!("recorded {:.1} s into {out}", report.frames as f64 * 0.02);
    Ok(())
}
