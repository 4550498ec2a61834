//! `lanlink`: the command-line client.
//!
//! ```text
//! lanlink chat                      # the server announced on the LAN, as $USER
//! lanlink get music/album -o ~/Music
//! lanlink send --to bob holiday.jpg
//! lanlink chat 192.168.1.10 --name ada
//! ```

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use lanlink_apps::audio::{self, ListenOutput, TalkInput};
use lanlink_apps::chat_client::{self, ChatOptions};
use lanlink_apps::connect::{describe, Server};
use lanlink_apps::discover::{self, HostRule, ServerFlags, SERVER_HELP};
use lanlink_apps::files;
use lanlink_apps::video::{self, CamSource, Capture, ViewTarget};
use lanlink_client::{
    with_default_port, ClientError, Event, Events, KnownServers, Resume, Resuming, Session,
    TransferOptions,
};
use lanlink_proto::Capabilities;
use lanlink_transport::{Fingerprint, Shutdown};

/// The lanlink client: chat, exchange files, talk and listen, and publish or
/// watch video with everyone connected to a lanlink server.
#[derive(Parser, Debug)]
#[command(name = "lanlink", version, about, long_about = None, after_help = SERVER_HELP)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Join the chat: type lines to talk, /help for commands.
    #[command(after_help = SERVER_HELP)]
    Chat {
        /// The server, as HOST or HOST:PORT (default port 7878); the one on
        /// the LAN if omitted.
        host: Option<String>,
        /// Your nickname (default: $USER, else the host name).
        #[arg(long, default_value_t = default_name())]
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
    #[command(after_help = SERVER_HELP)]
    Ls {
        /// The server, as HOST or HOST:PORT; the one on the LAN if omitted.
        host: Option<String>,
        /// A folder (or file) of the share; the share's root if omitted.
        path: Option<String>,
        /// List everything below the folder.
        #[arg(short, long)]
        recursive: bool,
        #[command(flatten)]
        auth: Auth,
    },
    /// Download files or whole folders from the server's share.
    #[command(
        after_help = SERVER_HELP,
        override_usage = "lanlink get [OPTIONS] [HOST] <NAMES>..."
    )]
    Get {
        /// Names in the share (files or folders), after the server (HOST or
        /// HOST:PORT) if it is given first; the one on the LAN otherwise.
        #[arg(required = true, value_name = "NAMES")]
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
        /// After the connection is lost, or while the server is busy, keep
        /// trying (connecting again and resuming) for this many seconds
        /// without progress (0: stop at once and exit 1; running the same
        /// command again resumes).
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        retry_for: u64,
        #[command(flatten)]
        auth: Auth,
    },
    /// Upload files or folders to the server's inbox.
    #[command(
        after_help = SERVER_HELP,
        override_usage = "lanlink put [OPTIONS] [HOST] <FILES>..."
    )]
    Put {
        /// Local files or folders, after the server (HOST or HOST:PORT) if
        /// it is given first; the one on the LAN otherwise.
        #[arg(required = true, value_name = "FILES")]
        files: Vec<String>,
        /// The name to give it on the server (one file only).
        #[arg(long = "as")]
        as_name: Option<String>,
        /// Cap the rate, in bytes per second (500K, 10M, 1G).
        #[arg(long, value_parser = files::parse_rate)]
        limit_rate: Option<u64>,
        /// After the connection is lost, or while the server is busy, keep
        /// trying (connecting again and resuming) for this many seconds
        /// without progress (0: stop at once and exit 1; running the same
        /// command again resumes).
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        retry_for: u64,
        #[command(flatten)]
        auth: Auth,
    },
    /// Offer files to a connected user; the server relays without storing.
    #[command(
        after_help = SERVER_HELP,
        override_usage = "lanlink send [OPTIONS] --to <TO> [HOST] <FILES>..."
    )]
    Send {
        /// The receiver's nickname.
        #[arg(long)]
        to: String,
        /// Local files or folders, after the server (HOST or HOST:PORT) if
        /// it is given first; the one on the LAN otherwise.
        #[arg(required = true, value_name = "FILES")]
        files: Vec<String>,
        /// Your name, shown to the receiver.
        #[arg(long, default_value_t = default_name())]
        name: String,
        /// Withdraw an offer nobody answered after this many seconds.
        #[arg(long, default_value_t = 120, value_name = "SECONDS")]
        timeout: u64,
        #[command(flatten)]
        auth: Auth,
    },
    /// Wait for files other users send you (also while your chat runs).
    #[command(after_help = SERVER_HELP)]
    Receive {
        /// The server, as HOST or HOST:PORT; the one on the LAN if omitted.
        host: Option<String>,
        /// Your name, what senders use with --to (default: $USER, else the
        /// host name). Offers to it come here even while a chat of yours
        /// runs under the same name.
        #[arg(long, default_value_t = default_name())]
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
        /// Exit after this many files (at least 1); no more arrive at once
        /// than are still wanted, and offers left waiting are declined.
        #[arg(long)]
        count: Option<std::num::NonZeroUsize>,
        #[command(flatten)]
        auth: Auth,
    },
    /// Publish a camera (or the test pattern, or JPEG files) as a video stream.
    #[command(after_help = SERVER_HELP)]
    Cam {
        /// The server, as HOST or HOST:PORT; the one on the LAN if omitted.
        host: Option<String>,
        #[command(flatten)]
        input: CamInput,
        #[command(flatten)]
        video: VideoArgs,
        /// The stream's name (default: USER-cam, or USER-cam-2… when taken).
        #[arg(long = "stream", visible_alias = "name", value_name = "STREAM")]
        stream: Option<String>,
        /// Stop after this many frames.
        #[arg(long)]
        frames: Option<u64>,
        #[command(flatten)]
        auth: Auth,
    },
    /// Watch a video stream in a window, or save its frames as JPEGs.
    #[command(after_help = SERVER_HELP)]
    View {
        /// The server, as HOST or HOST:PORT; the one on the LAN if omitted.
        host: Option<String>,
        /// The stream's name (default: the first one announced).
        stream: Option<String>,
        /// Write each frame as a JPEG into this folder instead of a window
        /// (frames that do not decode are skipped, and counted at the end).
        #[arg(long)]
        save: Option<PathBuf>,
        /// Stop after this many frames shown or saved.
        #[arg(long)]
        frames: Option<u64>,
        #[command(flatten)]
        auth: Auth,
    },
    /// List the cameras on this machine and their formats.
    Cameras,
    /// Talk: publish a microphone, a WAV file or a tone as an audio stream.
    #[command(after_help = SERVER_HELP)]
    Talk {
        /// The server, as HOST or HOST:PORT; the one on the LAN if omitted.
        host: Option<String>,
        #[command(flatten)]
        input: TalkArgs,
        /// The stream's name (default: USER-mic, or USER-mic-2… when taken).
        #[arg(long = "stream", visible_alias = "name", value_name = "STREAM")]
        stream: Option<String>,
        /// Stop after this many seconds.
        #[arg(long)]
        seconds: Option<f64>,
        #[command(flatten)]
        auth: Auth,
    },
    /// Listen: play every audio stream (mixed), or one, on a device or into a WAV file.
    #[command(after_help = SERVER_HELP)]
    Listen {
        /// The server, as HOST or HOST:PORT; the one on the LAN if omitted.
        host: Option<String>,
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
    #[command(
        after_help = SERVER_HELP,
        override_usage = "lanlink admin [OPTIONS] --admin-token <ADMIN_TOKEN> [HOST] <COMMAND> [ARGUMENT]"
    )]
    Admin {
        /// `kick NAME`, `ban NAME|ADDRESS`, `unban NAME|ADDRESS`, `bans` or
        /// `who` (every connection: name, address, rooms, streams,
        /// transfers, connected since),
        /// after the server (HOST or HOST:PORT) if it is given first; the
        /// one on the LAN otherwise.
        #[arg(required = true, num_args = 1..=3, value_name = "COMMAND")]
        words: Vec<String>,
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
    /// List the lanlink servers announced on the LAN (mDNS/DNS-SD).
    Servers {
        /// Listen this many seconds at most.
        #[arg(long, default_value_t = 3.0)]
        wait: f64,
    },
    /// Print a shell completion script: `lanlink completions bash >
    /// ~/.local/share/bash-completion/completions/lanlink`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
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
    /// The server, as HOST or HOST:PORT: then every argument is the
    /// command's own (see the end of --help).
    #[arg(short = 's', long = "server", value_name = "HOST")]
    server: Option<String>,
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
    /// The positional arguments `args` split by `rule` into the server
    /// (`-s`, else the first argument when it is the server) and the rest.
    fn split(&mut self, args: Vec<String>, rule: HostRule) -> (Option<String>, Vec<String>) {
        discover::split_host(self.server.take(), args, rule)
    }

    /// Where and how to connect: `host`, else `-s`, else the server
    /// announced on the LAN.
    fn target(mut self, host: Option<String>) -> Result<Server, ClientError> {
        let host = host.or_else(|| self.server.take());
        discover::choose(
            host.as_deref(),
            ServerFlags {
                token: self.token,
                plain: self.plain,
                fingerprint: self.server_fingerprint,
            },
        )
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

/// A mistake on the command line that clap cannot see (too many
/// arguments once the server is taken out): said like clap says its own.
fn usage(text: &str) -> Result<i32, ClientError> {
    eprintln!("error: {text}\n\nFor more information, try '--help'.");
    Ok(2)
}

/// The positional arguments of a command that has at most one besides the
/// server, as (server, that one).
fn host_and_one(
    auth: &mut Auth,
    first: Option<String>,
    second: Option<String>,
) -> Result<(Option<String>, Option<String>), String> {
    let (host, rest) = auth.split(
        first.into_iter().chain(second).collect(),
        HostRule::AtMost(1),
    );
    match <[String; 1]>::try_from(rest) {
        Ok([one]) => Ok((host, Some(one))),
        Err(rest) if rest.is_empty() => Ok((host, None)),
        Err(rest) => Err(format!("unexpected argument '{}'", rest[rest.len() - 1])),
    }
}

/// The server of a command whose only positional argument is HOST.
fn only_host(auth: &mut Auth, host: Option<String>) -> Result<Option<String>, String> {
    let (host, rest) = auth.split(host.into_iter().collect(), HostRule::Only);
    match rest.first() {
        Some(extra) => Err(format!(
            "unexpected argument '{extra}' (the server is already given with -s)"
        )),
        None => Ok(host),
    }
}

fn main() -> ExitCode {
    if std::env::var_os("RUST_LOG").is_some() {
        lanlink_apps::init_logging();
    }
    let args = Args::parse();
    match run(args.command) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::from(1)
        }
    }
}

fn run(command: Cmd) -> Result<i32, ClientError> {
    let files_name = format!("{}-files-{}", default_name(), std::process::id());
    match command {
        Cmd::Chat {
            host,
            name,
            room,
            room_password,
            timestamps,
            mut auth,
        } => {
            let host = match only_host(&mut auth, host) {
                Ok(h) => h,
                Err(e) => return usage(&e),
            };
            chat_client::run(ChatOptions {
                server: auth.target(host)?,
                name,
                room,
                room_password,
                timestamps,
            })
        }
        Cmd::Ls {
            host,
            path,
            recursive,
            mut auth,
        } => {
            let (host, path) = match host_and_one(&mut auth, host, path) {
                Ok(split) => split,
                Err(e) => return usage(&e),
            };
            let path = path.unwrap_or_default();
            with_session(
                auth.target(host)?,
                &files_name,
                Capabilities::FILE,
                |s, _| files::ls(s, &path, recursive),
            )
        }
        Cmd::Get {
            names,
            dir,
            force,
            limit_rate,
            retry_for,
            mut auth,
        } => {
            let (host, names) = auth.split(names, HostRule::Names);
            if names.is_empty() {
                return usage("give the NAMES to download after the server");
            }
            let options = TransferOptions {
                force,
                rate_limit: limit_rate,
                ..TransferOptions::default()
            };
            let mut link = resuming(auth.target(host)?, files_name, retry_for)?;
            files::get(&mut link, &names, &dir, &options).map(|()| 0)
        }
        Cmd::Put {
            files: paths,
            as_name,
            limit_rate,
            retry_for,
            mut auth,
        } => {
            let (host, paths) = auth.split(paths, HostRule::LocalFiles);
            let paths: Vec<PathBuf> = paths.into_iter().map(PathBuf::from).collect();
            if paths.is_empty() {
                return usage("give the FILES to upload after the server");
            }
            if as_name.is_some() && paths.len() > 1 {
                eprintln!("error: --as names one file; give one FILE");
                return Ok(2);
            }
            let options = TransferOptions {
                rate_limit: limit_rate,
                as_name,
                busy_patience: Some(std::time::Duration::from_secs(retry_for)),
                ..TransferOptions::default()
            };
            let mut link = resuming(auth.target(host)?, files_name, retry_for)?;
            files::put(&mut link, &paths, &options).map(|()| 0)
        }
        Cmd::Send {
            to,
            files: paths,
            name,
            timeout,
            mut auth,
        } => {
            let (host, paths) = auth.split(paths, HostRule::LocalFiles);
            let paths: Vec<PathBuf> = paths.into_iter().map(PathBuf::from).collect();
            if paths.is_empty() {
                return usage("give the FILES to send after the server");
            }
            let timeout = std::time::Duration::from_secs(timeout);
            with_session(auth.target(host)?, &name, Capabilities::FILE, |s, _| {
                files::send(s, &to, &paths, timeout)
            })
        }
        Cmd::Cam {
            host,
            input,
            video: v,
            stream,
            frames,
            mut auth,
        } => {
            let host = match only_host(&mut auth, host) {
                Ok(h) => h,
                Err(e) => return usage(&e),
            };
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
            let server = auth.target(host)?;
            let shutdown = interruptible();
            video::cam(
                &server,
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
            mut auth,
        } => {
            let (host, stream) = match host_and_one(&mut auth, host, stream) {
                Ok(split) => split,
                Err(e) => return usage(&e),
            };
            let server = auth.target(host)?;
            let target = save.map_or(ViewTarget::Window, ViewTarget::Save);
            let shutdown = interruptible();
            video::view(
                &server,
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
            words,
            admin_token,
            mut auth,
        } => {
            const COMMANDS: [&str; 5] = ["kick", "ban", "unban", "bans", "who"];
            let explicit = auth.server.take();
            let (host, mut words) = match words.first() {
                Some(w) if explicit.is_none() && !COMMANDS.contains(&w.as_str()) => {
                    (Some(words[0].clone()), words[1..].to_vec())
                }
                _ => (explicit, words),
            };
            if words.is_empty() || words.len() > 2 || !COMMANDS.contains(&words[0].as_str()) {
                return usage(&format!(
                    "give one of the admin commands {} (then its NAME or ADDRESS)",
                    COMMANDS.join(", ")
                ));
            }
            let argument = if words.len() == 2 {
                words.pop().unwrap_or_default()
            } else {
                String::new()
            };
            admin(&auth.target(host)?, &words[0], &argument, admin_token)
        }
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
        Cmd::Servers { wait } => {
            discover::list(std::time::Duration::from_secs_f64(wait.clamp(0.1, 60.0)))
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Args as clap::CommandFactory>::command(),
                "lanlink",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
        Cmd::Devices => audio::devices().map(|()| 0),
        Cmd::Talk {
            host,
            input,
            stream,
            seconds,
            mut auth,
        } => {
            let host = match only_host(&mut auth, host) {
                Ok(h) => h,
                Err(e) => return usage(&e),
            };
            let input = match (input.input_file, input.tone) {
                (Some(f), _) => TalkInput::File(f),
                (None, Some(hz)) => TalkInput::Tone(hz),
                (None, None) => TalkInput::Device(input.input_device),
            };
            let server = auth.target(host)?;
            let shutdown = interruptible();
            audio::talk(&server, &default_name(), &input, stream, seconds, &shutdown).map(|()| 0)
        }
        Cmd::Listen {
            host,
            stream,
            output_device,
            output_file,
            seconds,
            mut auth,
        } => {
            let (host, stream) = match host_and_one(&mut auth, host, stream) {
                Ok(split) => split,
                Err(e) => return usage(&e),
            };
            let output = match output_file {
                Some(f) => ListenOutput::File(f),
                None => ListenOutput::Device(output_device),
            };
            let server = auth.target(host)?;
            let shutdown = interruptible();
            audio::listen(
                &server,
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
            mut auth,
        } => {
            let host = match only_host(&mut auth, host) {
                Ok(h) => h,
                Err(e) => return usage(&e),
            };
            let server = auth.target(host)?;
            // A receiver, not a chat user: the same person's chat can run
            // under the same name (an older server only reaches chat users).
            let (session, events) =
                server.connect(&name, Capabilities::FILE | Capabilities::OFFERS)?;
            let (session, events) = if session
                .welcome()
                .capabilities
                .contains(Capabilities::OFFERS)
            {
                (session, events)
            } else {
                session.close("older server");
                server.connect(&name, Capabilities::CHAT | Capabilities::FILE)?
            };
            let how = files::ReceiveOptions {
                yes,
                on_conflict: if force {
                    files::OnConflict::Overwrite
                } else {
                    on_conflict
                },
                count: count.map(std::num::NonZeroUsize::get),
            };
            let result = files::receive(&session, &events, &dir, how);
            session.close("done");
            result.map(|()| 0)
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
                    // One line at a time, each escaped: the server's text.
                    for line in reply.text.lines() {
                        println!("{}", lanlink_services::text::display_safe(line));
                    }
                    return Ok(0);
                }
                eprintln!(
                    "error: {}",
                    lanlink_services::text::display_safe(&reply.text)
                );
                return Ok(1);
            }
            Some(Event::Disconnected(reason)) => return Err(ClientError::Disconnected(reason)),
            _ => {}
        }
    }
    eprintln!("error: the server did not answer");
    Ok(1)
}

/// A file session with `server` as `name` that connects again and resumes
/// for `retry_for` seconds without progress when the connection is lost.
fn resuming(server: Server, name: String, retry_for: u64) -> Result<files::Link, ClientError> {
    let policy = Resume {
        patience: std::time::Duration::from_secs(retry_for),
        ..Resume::default()
    };
    let mut first = true;
    Resuming::connect(
        Box::new(move || {
            // The first time as every command connects (saying which
            // certificate was pinned); again quietly.
            if std::mem::take(&mut first) {
                server.connect(&name, Capabilities::FILE)
            } else {
                server.builder(&name, Capabilities::FILE).connect()
            }
        }) as Box<dyn FnMut() -> Result<(Session, Events), ClientError>>,
        policy,
    )
}

/// Connects to `server` as `name` with `capabilities`, runs `work`, says
/// goodbye.
fn with_session(
    server: Server,
    name: &str,
    capabilities: Capabilities,
    work: impl FnOnce(&Session, &Events) -> Result<(), ClientError>,
) -> Result<i32, ClientError> {
    let (session, events) = server.connect(name, capabilities)?;
    let result = work(&session, &events);
    session.close("done");
    result.map(|()| 0)
}
