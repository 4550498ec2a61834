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

use lanlink_apps::chat_client::{self, ChatOptions};
use lanlink_apps::{files, host_with_port};

/// The lanlink client: chat and exchange files with everyone connected to a
/// lanlink server.
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
        /// Overwrite files that already exist.
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
        /// Overwrite files that already exist.
        #[arg(long)]
        force: bool,
        /// Exit after this many files.
        #[arg(long)]
        count: Option<usize>,
        #[command(flatten)]
        auth: Auth,
    },
}

#[derive(clap::Args, Debug)]
struct Auth {
    /// The server's access token, if it requires one.
    #[arg(long, env = "LANLINK_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

fn default_name() -> String {
    std::env::var("USER").unwrap_or_else(|_| "lanlink".into())
}

fn main() -> ExitCode {
    if std::env::var_os("RUST_LOG").is_some() {
        lanlink_apps::init_logging();
    }
    let args = Args::parse();
    let files_name = format!("{}-files-{}", default_name(), std::process::id());
    let result: Result<i32, String> = match args.command {
        Cmd::Chat {
            host,
            name,
            room,
            auth,
        } => chat_client::run(ChatOptions {
            addr: host_with_port(&host),
            name,
            room,
            token: auth.token,
        })
        .map_err(|e| e.to_string()),
        Cmd::Ls {
            host,
            path,
            recursive,
            auth,
        } => with_client(&host, &files_name, auth, false, |c| {
            files::ls(c, &path, recursive)
        }),
        Cmd::Get {
            host,
            names,
            dir,
            force,
            limit_rate,
            auth,
        } => with_client(&host, &files_name, auth, false, |c| {
            files::get(c, &names, &dir, force, limit_rate)
        }),
        Cmd::Put {
            host,
            files: paths,
            as_name,
            limit_rate,
            auth,
        } => {
            if as_name.is_some() && paths.len() > 1 {
                Err("--as names one file; give one FILE".to_owned())
            } else {
                with_client(&host, &files_name, auth, false, |c| {
                    files::put(c, &paths, as_name.as_deref(), limit_rate)
                })
            }
        }
        Cmd::Send {
            host,
            to,
            files: paths,
            name,
            auth,
        } => with_client(&host, &name, auth, false, |c| files::send(c, &to, &paths)),
        Cmd::Receive {
            host,
            name,
            dir,
            yes,
            force,
            count,
            auth,
        } => with_client(&host, &name, auth, true, |c| {
            files::receive(c, &dir, yes, force, count)
        }),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn with_client(
    host: &str,
    name: &str,
    auth: Auth,
    chat: bool,
    work: impl FnOnce(&lanlink_transport::Client) -> Result<(), lanlink_services::ServiceError>,
) -> Result<i32, String> {
    let client =
        files::connect(&host_with_port(host), name, auth.token, chat).map_err(|e| e.to_string())?;
    let result = work(&client);
    client.close("done");
    result.map(|()| 0).map_err(|e| e.to_string())
}
