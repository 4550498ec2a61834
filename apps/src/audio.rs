//! `lanlink talk`, `lanlink listen`, `lanlink devices`, and the sources the
//! server publishes itself: devices and files opened from the flags; the
//! publishing and mixing live in [`lanlink_client::audio`].

use std::path::PathBuf;
use std::time::Duration;

use lanlink_audio::{
    AudioSink, AudioSource, CaptureStream, PlaybackStream, StreamOptions, ToneSource, WavSink,
    WavSource,
};
use lanlink_client::audio::{ListenNotice, ListenOptions, ListenReport, FORMAT};
use lanlink_client::{ClientError, Session};
use lanlink_proto::Capabilities;
use lanlink_transport::text::display_safe;
use lanlink_transport::Shutdown;

use crate::connect::Server;

/// Where `lanlink talk` takes sound from.
#[derive(Debug, Clone)]
pub enum TalkInput {
    /// A capture device by name (`None`: the default one).
    Device(Option<String>),
    /// A WAV file (any rate and channel count; converted).
    File(PathBuf),
    /// A sine tone of this frequency.
    Tone(f32),
}

/// Where `lanlink listen` plays to.
#[derive(Debug, Clone)]
pub enum ListenOutput {
    /// A playback device by name (`None`: the default one).
    Device(Option<String>),
    /// A WAV file (48 kHz mono).
    File(PathBuf),
}

/// Runs `f` with stderr (fd 2) pointed at /dev/null: alsa-lib, its JACK
/// and OSS plugins and libjack print their probing failures there directly
/// ("ALSA lib confmisc.c… Cannot get card index", "jack server is not
/// running"), none of which is ours to show. Errors still come back as
/// values. Nothing else may print meanwhile: call it before any thread of
/// ours runs.
#[cfg(unix)]
pub fn without_stderr<T>(f: impl FnOnce() -> T) -> T {
    use std::os::fd::AsFd;
    let saved = rustix::io::dup(std::io::stderr().as_fd()).ok();
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .ok();
    let silenced = match (&saved, &null) {
        (Some(_), Some(null)) => rustix::stdio::dup2_stderr(null).is_ok(),
        _ => false,
    };
    let result = f();
    if let (true, Some(saved)) = (silenced, saved) {
        let _ = rustix::stdio::dup2_stderr(&saved);
    }
    result
}

/// Runs `f` (no sound libraries print on stderr here).
#[cfg(not(unix))]
pub fn without_stderr<T>(f: impl FnOnce() -> T) -> T {
    f()
}

/// What to say when no microphone can be opened.
const NO_MICROPHONE: &str = "no microphone to talk with: send a tone with --tone 440, or a WAV \
                             file with --input-file FILE.wav (`lanlink devices` lists the \
                             inputs here)";

/// Opens a source delivering 48 kHz mono.
pub fn open_input(input: &TalkInput) -> Result<Box<dyn AudioSource>, ClientError> {
    let source: Box<dyn AudioSource> = match input {
        TalkInput::Device(name) => {
            let options = StreamOptions {
                format: FORMAT,
                ..StreamOptions::default()
            };
            let opened = without_stderr(|| CaptureStream::open(name.as_deref(), options));
            Box::new(opened.map_err(|e| ClientError::from(e).with_hint(NO_MICROPHONE))?)
        }
        TalkInput::File(path) => Box::new(WavSource::open(path, FORMAT)?),
        TalkInput::Tone(hz) => Box::new(ToneSource::new(FORMAT, *hz, 0.5)?),
    };
    Ok(source)
}

/// Opens the sink `lanlink listen` plays to (48 kHz mono).
pub fn open_output(output: &ListenOutput) -> Result<Box<dyn AudioSink>, ClientError> {
    let sink: Box<dyn AudioSink> = match output {
        ListenOutput::Device(name) => {
            let options = StreamOptions {
                format: FORMAT,
                ..StreamOptions::default()
            };
            Box::new(without_stderr(|| {
                PlaybackStream::open(name.as_deref(), options)
            })?)
        }
        ListenOutput::File(path) => Box::new(WavSink::create(path, FORMAT)?),
    };
    Ok(sink)
}

/// `lanlink talk`: publishes until the source ends, `seconds` pass, or
/// `shutdown`.
pub fn talk(
    server: &Server,
    user: &str,
    input: &TalkInput,
    name: Option<String>,
    seconds: Option<f64>,
    shutdown: &Shutdown,
) -> Result<(), ClientError> {
    let mut source = Some(open_input(input)?);
    let (session, _) = server.connect(user, Capabilities::AUDIO)?;
    let base = lanlink_client::names::default_stream_name(user, "mic");
    let sent = lanlink_client::names::publish_named(&session, name, &base, |name| {
        // A retry under another name starts the source again.
        let source = match source.take() {
            Some(s) => s,
            None => open_input(input)?,
        };
        println!("talking as {name} (Opus, 48 kHz mono, 20 ms frames)");
        let publisher =
            session.publish_audio(name, source, seconds.map(Duration::from_secs_f64))?;
        stop_on(shutdown, publisher.stopper());
        Ok(publisher)
    });
    session.close("done");
    let (_, sent) = sent?;
    println!("sent {sent} packets ({:.1} s of audio)", sent as f64 * 0.02);
    Ok(())
}

/// Fires `target` when `shutdown` does (a Ctrl-C reaching a worker).
pub fn stop_on(shutdown: &Shutdown, target: Shutdown) {
    shutdown.on_trigger(move || target.trigger());
}

/// `lanlink listen`: plays every audio stream (mixed), or only `only`,
/// until every stream it heard has ended and played out, `seconds` pass,
/// or `shutdown`. Prints `+ NAME (PUBLISHER)` and `- NAME` as streams come
/// and go.
pub fn listen(
    server: &Server,
    user: &str,
    output: &ListenOutput,
    only: Option<&str>,
    seconds: Option<f64>,
    shutdown: &Shutdown,
) -> Result<ListenReport, ClientError> {
    let sink = open_output(output)?;
    let (session, _) = server.connect(user, Capabilities::AUDIO)?;
    println!(
        "listening{}",
        only.map_or(String::new(), |n| format!(" to {n}"))
    );
    let report = play(&session, sink, only, seconds, shutdown);
    session.close("done");
    let report = report?;
    for (name, s) in &report.streams {
        println!(
            "{}: received {} packets, lost {}, late {}, concealed {}",
            display_safe(name),
            s.received,
            s.lost,
            s.late,
            s.concealed
        );
    }
    println!("played {:.1} s", report.frames as f64 * 0.02);
    Ok(report)
}

/// Plays on `session` into `sink`, printing streams as they come and go.
pub fn play(
    session: &Session,
    sink: Box<dyn AudioSink>,
    only: Option<&str>,
    seconds: Option<f64>,
    shutdown: &Shutdown,
) -> Result<ListenReport, ClientError> {
    let options = ListenOptions {
        only: only.map(str::to_owned),
        limit: seconds.map(Duration::from_secs_f64),
    };
    let listener = session.listen(sink, options)?;
    stop_on(shutdown, listener.stopper());
    let notices = listener.notices().clone();
    let printer = std::thread::spawn(move || {
        for notice in notices {
            // Names and reasons come from the server (and the publisher):
            // escaped, so they cannot drive the terminal.
            match notice {
                ListenNotice::Playing { name, publisher } => {
                    println!("+ {} ({})", display_safe(&name), display_safe(&publisher))
                }
                ListenNotice::Ended { name } => println!("- {}", display_safe(&name)),
                ListenNotice::Skipped { name, reason } => {
                    eprintln!(
                        "skipping {}: {}",
                        display_safe(&name),
                        display_safe(&reason)
                    );
                }
            }
        }
    });
    let report = listener.wait();
    let _ = printer.join();
    report
}

/// `lanlink devices`: the capture and playback devices that can be used
/// (not the plugins ALSA lists that open nothing), without the sound
/// libraries' noise; says so plainly when there is no sound card.
pub fn devices() -> Result<(), ClientError> {
    let list: Vec<_> = without_stderr(lanlink_audio::list_devices)?
        .into_iter()
        .filter(|d| !d.input_configs.is_empty() || !d.output_configs.is_empty())
        .collect();
    // ALSA's `null` device plays nothing and records silence.
    if list.iter().all(|d| d.id == "null") {
        println!(
            "no sound card here: nothing to record from or play to.\n\
             Without one, `lanlink talk HOST --tone 440` or `--input-file FILE.wav` sends \
             sound, and `lanlink listen HOST --output-file FILE.wav` records it."
        );
        return Ok(());
    }
    for d in list {
        let mut roles = Vec::new();
        if !d.input_configs.is_empty() {
            roles.push(if d.is_default_input {
                "input (default)"
            } else {
                "input"
            });
        }
        if !d.output_configs.is_empty() {
            roles.push(if d.is_default_output {
                "output (default)"
            } else {
                "output"
            });
        }
        println!("{}  [{}]  {}", d.id, roles.join(", "), d.name);
    }
    Ok(())
}
