//! `lanlink`: the command-line client.
//!
//! ```text
//! lanlink chat 192.168.1.10 --name ada
//! ```

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lanlink_apps::chat_client::{self, ChatOptions};
use lanlink_apps::host_with_port;

/// The lanlink client: chat with everyone connected to a lanlink server.
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
        /// The server's access token, if it requires one.
        #[arg(long, env = "LANLINK_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

fn main() -> ExitCode {
    if std::env::var_os("RUST_LOG").is_some() {
        lanlink_apps::init_logging();
    }
    let args = Args::parse();
    let result = match args.command {
        Cmd::Chat {
            host,
            name,
            room,
            token,
        } => chat_client::run(ChatOptions {
            addr: host_with_port(&host),
            name,
            room,
            token,
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
