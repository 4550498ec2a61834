//! `lanlink`: the command-line client.
//!
//! ```text
//! lanlink chat 192.168.1.10 --name ada
//! lanlink get 192.168.1.10 music/album -o ~/Music
//! lanlink send 192.168.1.10 --to bob holiday.jpg
//! ```

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use lanlink_apps::audio::{self, ListenOutput, TalkInput};
use lanlink_apps::chat_client::{self, ChatOptions};
use lanlink_apps::connect::{describe, Server};
use lanlink_apps::files;
use lanlink_apps::video::{self, CamSource, Capture, ViewTarget};
use lanlink_client::{
    with_default_port, ClientError, Event, Events, KnownServers, Session, TransferOptions,
};
use lanlink_proto::Capabilities;
use lanlink_transport::{Fingerprint, Shutdown};

/// The lanlink client: chat, exchange files, talk and listen, and publish or
/// watch video with everyone connected to a lanlink server.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Join the chat: type lines to talk, /help for commands.
    Chat {
        /// The server, as HOST or HOST:PORT (default port 7878).
        host: String,
        /// Your nickname.
        #[arg(long)]
        name: String,
        /// Room to talk in (the server starts everyone in `lobby`).
        #[arg(long)]
        room: Option<String>,
        /// The password of that room (the first one in sets it).
        #[arg(
            long,
            requires = "room",
            env = "LANLINK_ROOM_PASSWORD",
            hide_env_values = true
        )]
        room_password: Option<String>,
        /// Start lines with the time: auto (on a terminal), always, never.
        #[arg(long, value_enum, default_value_t, value_name = "WHEN")]
        timestamps: chat_client::Timestamps,
        #[command(flatten)]
        auth: Auth,
    },
    /// List the files the server shares.
    Ls {
        /// The server, as HOST or HOST:PORT.
        host: String,
        /// A folder (or file) of the share; the share's root if omitted.
        #[arg(default_value = "")]
        path: String,
        /// List everything below the folder.
        #[arg(short, long)]
        recursive: bool,
        #[command(flatten)]
        auth: Auth,
    },
    /// Download files or whole folders from the server's share.
    Get {
        /// The server, as HOST or HOST:PORT.
        host: String,
        /// Names in the share (files or folders).
        #[arg(required = true)]
        names: Vec<String>,
        /// Where to put them.
        #[arg(short = 'o', long = "output", default_value = ".")]
        dir: PathBuf,
        /// Replace files here that differ from the server's (files that are
        /// the same are skipped, partial ones resumed).
        #[arg(long)]
        force: bool,
        /// Cap the rate, in bytes per second (500K, 10M, 1G).
        #[arg(long, value_parser = files::parse_rate)]
        limit_rate: Option<u64>,
        #[command(flatten)]
        auth: Auth,
    },
    /// Upload files or folders to the server's inbox.
    Put {
        /// The server, as HOST or HOST:PORT.
        host: String,
        /// Local files or folders.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The name to give it on the server (one file only).
        #[arg(long = "as")]
        as_name: Option<String>,
        /// Cap the rate, in bytes per second (500K, 10M, 1G).
        #[arg(long, value_parser = files::parse_rate)]
        limit_rate: Option<u64>,
        #[command(flatten)]
        auth: Auth,
    },
    /// Offer files to a connected user; the server relays without storing.
    Send {
        /// The server, as HOST or HOST:PORT.
        host: String,
        /// The receiver's nickname.
        #[arg(long)]
        to: String,
        /// Local files or folders.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Your name, shown to the receiver.
        #[arg(long, default_value_t = default_name())]
        name: String,
        /// Withdraw an offer nobody answered after this many seconds.
        #[arg(long, default_value_t = 120, value_name = "SECONDS")]
        timeout: u64,
        #[command(flatten)]
        auth: Auth,
    },
    /// Wait for files other users send you.
    Receive {
        /// The server, as HOST or HOST:PORT.
        host: String,
        /// Your nickname (what senders use with --to).
        #[arg(long)]
        name: String,
        /// Where to put received files.
        #[arg(short = 'o', long = "output", default_value = ".")]
        dir: PathBuf,
        /// Accept every offer without asking.
        #[arg(long)]
        yes: bool,
        /// When a file of the same name is here: overwrite, rename (save as
        /// `name (1).ext`), skip, or ask (the default on a terminal; skip
        /// otherwise).
        #[arg(long, value_enum, value_name = "WHAT", default_value = "ask")]
        on_conflict: files::OnConflict,
        /// The same as --on-conflict overwrite.
        #[arg(long)]
        force: bool,
        /// Exit after this many files.
        #[arg(long)]
        count: Option<usize>,
        #[command(flatten)]
        auth: Auth,
    },
    /// Publish a camera (or the test pattern, or JPEG files) as a video stream.
    Cam {
        /// The server, as HOST or HOST:PORT.
        host: String,
        #[command(flatten)]
        input: CamInput,
        #[command(flatten)]
        video: VideoArgs,
        /// The stream's name (default: your name).
        #[arg(long = "name")]
        stream: Option<String>,
        /// Stop after this many frames.
        #[arg(long)]
        frames: Option<u64>,
        #[command(flatten)]
        auth: Auth,
    },
    /// Watch a video stream in a window, or save its frames as JPEGs.
    View {
        /// The server, as HOST or HOST:PORT.
        host: String,
        /// The stream's name (default: the first one announced).
        stream: Option<String>,
        /// Write each frame as a JPEG into this folder instead of a window.
        #[arg(long)]
        save: Option<PathBuf>,
        /// Stop after this many frames.
        #[arg(long)]
        frames: Option<u64>,
        #[command(flatten)]
        auth: Auth,
    },
    /// List the cameras on this machine and their formats.
    Cameras,
    /// Talk: publish a microphone, a WAV file or a tone as an audio stream.
    Talk {
        /// The server, as HOST or HOST:PORT.
        host: String,
        #[command(flatten)]
        input: TalkArgs,
        /// The stream's name (default: your name).
        #[arg(long = "name")]
        stream: Option<String>,
        /// Stop after this many seconds.
        #[arg(long)]
        seconds: Option<f64>,
        #[command(flatten)]
        auth: Auth,
    },
    /// Listen: play every audio stream (mixed), or one, on a device or into a WAV file.
    Listen {
        /// The server, as HOST or HOST:PORT.
        host: String,
        /// Only this stream (default: all of them, mixed).
        stream: Option<String>,
        /// Play on this device (default: the default output).
        #[arg(long, conflicts_with = "output_file")]
        output_device: Option<String>,
        /// Write a WAV file instead of playing.
        #[arg(long)]
        output_file: Option<PathBuf>,
        /// Stop after this many seconds (default: when every stream ended).
        #[arg(long)]
        seconds: Option<f64>,
        #[command(flatten)]
        auth: Auth,
    },
    /// List the audio devices on this machine.
    Devices,
    /// Operate the server: kick or ban a user or an address.
    Admin {
        /// The server, as HOST or HOST:PORT.
        host: String,
        /// `kick NAME`, `ban NAME|ADDRESS`, `unban NAME|ADDRESS` or `bans`.
        #[arg(value_parser = ["kick", "ban", "unban", "bans"])]
        command: String,
        /// The nickname or IP address (none for `bans`).
        #[arg(default_value = "")]
        argument: String,
        /// The server's admin token.
        #[arg(long, env = "LANLINK_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: String,
        #[command(flatten)]
        auth: Auth,
    },
    /// Forget the certificate pinned for a server (after it was reinstalled
    /// and got a new one); the next connection pins the new one.
    Forget {
        /// The server, as HOST or HOST:PORT, as you connect to it.
        host: String,
    },
}

#[derive(clap::Args, Debug)]
#[group(required = false, multiple = false)]
struct TalkArgs {
    /// Capture from this device (default: the default input).
    #[arg(long)]
    input_device: Option<String>,
    /// Send a WAV file.
    #[arg(long)]
    input_file: Option<PathBuf>,
    /// Send a sine tone of this frequency in Hz.
    #[arg(long)]
    tone: Option<f32>,
}

#[derive(clap::Args, Debug)]
struct VideoArgs {
    /// Frame size, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720", value_parser = video::parse_size)]
    size: (u32, u32),
    /// Frames per second.
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    /// JPEG quality where this side encodes (1-100).
    #[arg(long, default_value_t = 80)]
    quality: u8,
}

#[derive(clap::Args, Debug)]
#[group(required = false, multiple = false)]
struct CamInput {
    /// A camera: its index (0) or device path (/dev/video0).
    #[arg(long)]
    device: Option<String>,
    /// The moving test pattern (frame counter and capture time drawn in).
    #[arg(long)]
    test_pattern: bool,
    /// A folder of JPEGs or an MJPEG file, played in a loop.
    #[arg(long)]
    jpeg_dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct Auth {
    /// The server's access token, if it requires one.
    #[arg(long, env = "LANLINK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Connect without TLS, to a server run with --plain (everything,
    /// passwords included, crosses the network readable by anyone on it).
    #[arg(long)]
    plain: bool,
    /// Accept only the server whose certificate has this fingerprint
    /// (`lanlink-server` prints it at start), instead of trusting the
    /// first one seen.
    #[arg(long, env = "LANLINK_SERVER_FINGERPRINT", conflicts_with = "plain")]
    server_fingerprint: Option<Fingerprint>,
}

impl Auth {
    /// Where and how to connect for `host`.
    fn target(self, host: &str) -> Server {
        Server::from_flags(host, self.token, self.plain, self.server_fingerprint)
    }
}

/// A shutdown signal fired by Ctrl-C or SIGTERM, so long-running commands
/// end cleanly (a goodbye to the server, a summary line).
fn interruptible() -> Shutdown {
    let shutdown = Shutdown::new();
    if let Err(e) = lanlink_apps::on_signal(shutdown.clone()) {
        eprintln!("warning: Ctrl-C will not stop cleanly: {e}");
    }
    shutdown
}

fn default_name() -> String {
    lanlink_client::default_name()
}

fn main() -> ExitCode {
    if std::env::var_os("RUST_LOG").is_some() {
        lanlink_apps::init_logging();
    }
    let args = Args::parse();
    let files_name = format!("{}-files-{}", default_name(), std::process::id());
    let result: Result<i32, ClientError> = match args.command {
        Cmd::Chat {
            host,
            name,
            room,
            room_password,
            timestamps,
            auth,
        } => chat_client::run(ChatOptions {
            server: auth.target(&host),
            name,
            room,
            room_password,
            timestamps,
        }),
        Cmd::Ls {
            host,
            path,
            recursive,
            auth,
        } => with_session(&host, &files_name, auth, false, |s, _| {
            files::ls(s, &path, recursive)
        }),
        Cmd::Get {
            host,
            names,
            dir,
            force,
            limit_rate,
            auth,
        } => with_session(&host, &files_name, auth, false, |s, _| {
            let options = TransferOptions {
                force,
                rate_limit: limit_rate,
                ..TransferOptions::default()
            };
            files::get(s, &names, &dir, &options)
        }),
        Cmd::Put {
            host,
            files: paths,
            as_name,
            limit_rate,
            auth,
        } => {
            if as_name.is_some() && paths.len() > 1 {
                eprintln!("error: --as names one file; give one FILE");
                Ok(2)
            } else {
                with_session(&host, &files_name, auth, false, |s, _| {
                    let options = TransferOptions {
                        rate_limit: limit_rate,
                        as_name,
                        ..TransferOptions::default()
                    };
                    files::put(s, &paths, &options)
                })
            }
        }
        Cmd::Send {
            host,
            to,
            files: paths,
            name,
            timeout,
            auth,
        } => with_session(&host, &name, auth, false, |s, _| {
            files::send(s, &to, &paths, std::time::Duration::from_secs(timeout))
        }),
        Cmd::Cam {
            host,
            input,
            video: v,
            stream,
            frames,
            auth,
        } => {
            let source = match (input.device, input.jpeg_dir) {
                (Some(dev), _) => CamSource::Device(dev),
                (None, Some(dir)) => CamSource::Jpegs(dir),
                (None, None) => CamSource::TestPattern,
            };
            let capture = Capture {
                width: v.size.0,
                height: v.size.1,
                fps: v.fps,
                quality: v.quality,
            };
            let shutdown = interruptible();
            video::cam(
                &auth.target(&host),
                &default_name(),
                &source,
                capture,
                stream,
                frames,
                &shutdown,
            )
            .map(|()| 0)
        }
        Cmd::View {
            host,
            stream,
            save,
            frames,
            auth,
        } => {
            let target = save.map_or(ViewTarget::Window, ViewTarget::Save);
            let shutdown = interruptible();
            video::view(
                &auth.target(&host),
                &files_name,
                stream.as_deref(),
                &target,
                frames,
                &shutdown,
            )
            .map(|()| 0)
        }
        Cmd::Cameras => video::cameras().map(|()| 0),
        Cmd::Admin {
            host,
            command,
            argument,
            admin_token,
            auth,
        } => admin(&auth.target(&host), &command, &argument, admin_token),
        Cmd::Forget { host } => {
            let known = KnownServers::default_location();
            let addr = with_default_port(&host);
            known.forget(&addr).map(|n| {
                match n {
                    0 => println!("no certificate was pinned for {addr}"),
                    _ => println!(
                        "forgot the certificate pinned for {addr} (in {})",
                        known.path().display()
                    ),
                }
                0
            })
        }
        Cmd::Devices => audio::devices().map(|()| 0),
        Cmd::Talk {
            host,
            input,
            stream,
            seconds,
            auth,
        } => {
            let input = match (input.input_file, input.tone) {
                (Some(f), _) => TalkInput::File(f),
                (None, Some(hz)) => TalkInput::Tone(hz),
                (None, None) => TalkInput::Device(input.input_device),
            };
            let shutdown = interruptible();
            audio::talk(
                &auth.target(&host),
                &default_name(),
                &input,
                stream,
                seconds,
                &shutdown,
            )
            .map(|()| 0)
        }
        Cmd::Listen {
            host,
            stream,
            output_device,
            output_file,
            seconds,
            auth,
        } => {
            let output = match output_file {
                Some(f) => ListenOutput::File(f),
                None => ListenOutput::Device(output_device),
            };
            let shutdown = interruptible();
            audio::listen(
                &auth.target(&host),
                &files_name,
                &output,
                stream.as_deref(),
                seconds,
                &shutdown,
            )
            .map(|_| 0)
        }
        Cmd::Receive {
            host,
            name,
            dir,
            yes,
            on_conflict,
            force,
            count,
            auth,
        } => with_session(&host, &name, auth, true, |s, events| {
            let on_conflict = if force {
                files::OnConflict::Overwrite
            } else {
                on_conflict
            };
            let how = files::ReceiveOptions {
                yes,
                on_conflict,
                count,
            };
            files::receive(s, events, &dir, how)
        }),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::from(1)
        }
    }
}

/// `lanlink admin`: one request, its answer on stdout (exit 1 if refused).
fn admin(
    server: &Server,
    command: &str,
    argument: &str,
    token: String,
) -> Result<i32, ClientError> {
    let name = format!("admin-{}", std::process::id());
    let (session, events) = server.connect(&name, Capabilities(0))?;
    session.send(lanlink_proto::control::Admin {
        token,
        command: command.to_owned(),
        argument: argument.to_owned(),
    })?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        match events.recv_timeout(std::time::Duration::from_millis(200)) {
            Some(Event::AdminReply(reply)) => {
                session.close("done");
                if reply.ok {
                    println!("{}", reply.text);
                    return Ok(0);
                }
                eprintln!("error: {}", reply.text);
                return Ok(1);
            }
            Some(Event::Disconnected(reason)) => return Err(ClientError::Disconnected(reason)),
            _ => {}
        }
    }
    eprintln!("error: the server did not answer");
    Ok(1)
}

/// Connects as `name` for file work (`chat`: also joins the chat, so other
/// users can address this client by `name`), runs `work`, says goodbye.
fn with_session(
    host: &str,
    name: &str,
    auth: Auth,
    chat: bool,
    work: impl FnOnce(&Session, &Events) -> Result<(), ClientError>,
) -> Result<i32, ClientError> {
    let capabilities = if chat {
        Capabilities::CHAT | Capabilities::FILE
    } else {
        Capabilities::FILE
    };
    let (session, events) = auth.target(host).connect(name, capabilities)?;
    let result = work(&session, &events);
    session.close("done");
    result.map(|()| 0)
}
