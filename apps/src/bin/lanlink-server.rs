//! `lanlink-server`: the lanlink server: chat rooms, file sharing, and the
//! audio and video relay, and a page for browsers (HTTPS with the
//! server's own certificate when TLS is on).
//!
//! ```text
//! lanlink-server --bind 0.0.0.0:7878 --motd "welcome to the LAN"
//! ```

use std::io::IsTerminal;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use lanlink_apps::audio::{self, TalkInput};
use lanlink_apps::video::{self, CamSource, Capture};
use lanlink_client::discovery::{Announcement, Announcer};
use lanlink_server::http::{serve_http_with, FrameLimits, HttpConfig, LatestFrames};
use lanlink_server::{run, ServerConfig, DEFAULT_PORT};
use lanlink_services::chat::ChatConfig;
use lanlink_services::file::FileConfig;
use lanlink_services::media::MediaConfig;
use lanlink_transport::{Rate, ServerIdentity, Shutdown};

/// The lanlink server: one process that everyone on the LAN connects to.
///
/// It announces itself on the LAN (mDNS/DNS-SD, `_lanlink._tcp`, with its
/// name and certificate fingerprint), so clients find it without an
/// address; `--no-announce` keeps it quiet.
#[derive(Parser, Debug)]
#[command(name = "lanlink-server", version, about, long_about = None)]
struct Args {
    /// Address and port to listen on.
    #[arg(long, default_value_t = format!("0.0.0.0:{DEFAULT_PORT}"))]
    bind: String,
    /// Require clients to present this access token.
    #[arg(long, env = "LANLINK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Refuse connections beyond this many clients.
    #[arg(long, default_value_t = 1024)]
    max_clients: usize,
    /// Message of the day, shown to every client on connect.
    #[arg(long)]
    motd: Option<String>,
    /// The server's name, shown to clients.
    #[arg(long, default_value = "lanlink")]
    name: String,
    /// Messages per room replayed to newcomers.
    #[arg(long, default_value_t = 50)]
    history: usize,
    /// Longest chat message accepted, in bytes.
    #[arg(long, default_value_t = 4096)]
    max_message_len: usize,
    /// Chat messages a client may send in a burst.
    #[arg(long, default_value_t = 10)]
    rate_burst: u32,
    /// Chat messages per second a client may sustain after its burst.
    #[arg(long, default_value_t = 2.0)]
    rate_per_second: f64,
    /// Chat messages (room and private) all connections of one address may
    /// send in a burst...
    #[arg(long, default_value_t = 40)]
    address_rate_burst: u32,
    /// ...and per second after it.
    #[arg(long, default_value_t = 8.0)]
    address_rate_per_second: f64,
    /// Other chat requests (join, leave, nick change, roster, history) a
    /// connection may make in a burst...
    #[arg(long, default_value_t = 20)]
    request_burst: u32,
    /// ...and per second after it.
    #[arg(long, default_value_t = 2.0)]
    requests_per_second: f64,
    /// The same requests from all connections of one address, in a burst...
    #[arg(long, default_value_t = 40)]
    address_request_burst: u32,
    /// ...and per second after it.
    #[arg(long, default_value_t = 4.0)]
    address_requests_per_second: f64,
    /// Wrong room passwords one address may give per minute; then every
    /// password from it is refused until the minute has refilled.
    #[arg(long, default_value_t = 5)]
    password_guesses_per_minute: u32,
    /// Wrong room passwords all addresses together may give per minute;
    /// past that, only addresses that have not guessed wrong within the
    /// hour are still checked.
    #[arg(long, default_value_t = 30)]
    password_guesses_in_all_per_minute: u32,
    /// Arrivals by connecting that the default room is told, per address
    /// per minute; beyond it a newcomer joins quietly (listed, but told
    /// only once it speaks or renames itself).
    #[arg(long, default_value_t = 20)]
    told_arrivals_per_minute: u32,
    /// The same from all addresses together, per second (a burst of 20
    /// seconds' worth).
    #[arg(long, default_value_t = 5)]
    told_arrivals_in_all_per_second: u32,
    /// Rooms one connection may be in at once (the default room aside).
    #[arg(long, default_value_t = 32)]
    max_rooms_per_client: usize,
    /// Rooms that may exist at once (the default room aside).
    #[arg(long, default_value_t = 1024)]
    max_rooms: usize,
    /// Rooms the clients of one address may have opened that still exist.
    #[arg(long, default_value_t = 64)]
    max_rooms_per_address: usize,
    /// Seconds a new connection has to complete its handshake.
    #[arg(long, default_value_t = 5.0)]
    handshake_timeout: f64,
    /// Seconds of silence after which a client is disconnected.
    #[arg(long, default_value_t = 35.0)]
    idle_timeout: f64,
    /// Seconds between the server's keepalive pings to each client (keep
    /// it well under --idle-timeout: a client that only answers pings,
    /// such as the browser page, is cut otherwise).
    #[arg(long, default_value_t = 10.0)]
    ping_interval: f64,
    /// Scale out: share chat rooms with other lanlink servers through
    /// these NATS servers (nats://HOST:PORT, comma-separated; see
    /// docs/SCALE-OUT.md). Off by default. With a NATS user:
    /// nats://USER@HOST:PORT and the password in the environment variable
    /// LANLINK_NATS_PASSWORD (or nats://USER:PASSWORD@…).
    #[arg(long, value_name = "URL[,URL…]", value_delimiter = ',')]
    nats: Vec<String>,
    /// Print the NATS permissions that bind server id ID to its NATS user
    /// (a JSON object for that user's `permissions` in nats-server's
    /// `authorization` block) and exit.
    #[arg(long, value_name = "ID")]
    print_nats_permissions: Option<String>,
    /// This server's id among those sharing NATS: 1 to 32 letters, digits,
    /// '-' or '_'; remote users are shown as name@ID. Default: the --name
    /// and 6 random hex digits.
    #[arg(long, value_name = "ID")]
    server_id: Option<String>,
    /// Copies JetStream keeps of the chat history and presence (3 on a
    /// NATS cluster of 3 or more, so losing a node loses nothing).
    #[arg(long, default_value_t = 1)]
    nats_replicas: usize,
    /// Hours the shared chat history keeps a message (when the stream is
    /// made; an existing stream keeps its own).
    #[arg(long, default_value_t = 168.0)]
    nats_history_hours: f64,
    /// The file where room messages wait for NATS across restarts. Default
    /// with --server-id: nats-outbox-ID.jsonl in the --data-dir; without
    /// it (a new id each start), in memory only.
    #[arg(long, value_name = "FILE")]
    nats_outbox: Option<PathBuf>,
    /// A folder clients may list and download from (read-only).
    #[arg(long)]
    share: Option<PathBuf>,
    /// A folder where uploads land.
    #[arg(long)]
    inbox: Option<PathBuf>,
    /// The largest upload accepted, in bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024 * 1024)]
    max_upload_size: u64,
    /// Let uploads replace existing files in the inbox.
    #[arg(long)]
    force: bool,
    /// Where browsers connect: [http://|https://]HOST:PORT. Default
    /// 0.0.0.0:7879, in HTTPS with the server's own certificate (the page
    /// shows its fingerprint), or in plain HTTP with --plain. With TLS on,
    /// plain http:// is allowed on a loopback address only.
    #[arg(long, value_name = "[http://|https://]HOST:PORT")]
    http: Option<String>,
    /// A host name browsers use for this server (a DNS name of the LAN),
    /// repeatable. Without an access token the HTTP side answers only IP
    /// addresses, localhost, this machine's host name (and NAME.local) and
    /// these; other names get 421, against DNS rebinding.
    #[arg(long = "http-host", value_name = "NAME")]
    http_host: Vec<String>,
    /// Serve no HTTP at all.
    #[arg(long, conflicts_with = "http")]
    no_http: bool,
    /// The room the browser link printed at start (and its QR code) joins:
    /// `?room=ROOM` (default: the default room).
    #[arg(long, value_name = "ROOM")]
    link_room: Option<String>,
    /// The name the browser link printed at start joins with (`?name=NAME`):
    /// for a link meant for one device (default: the page asks).
    #[arg(long, value_name = "NAME")]
    link_name: Option<String>,
    /// HTTP connections open at once; beyond it, new ones get 503.
    #[arg(long, default_value_t = 256)]
    http_max_connections: usize,
    /// HTTP connections one address may hold open at once.
    #[arg(long, default_value_t = 16)]
    http_max_per_address: usize,
    /// TLS handshakes (HTTPS connections) one address may start at once...
    #[arg(long, default_value_t = 64)]
    http_handshake_burst: u32,
    /// ...and per second after that.
    #[arg(long, default_value_t = 16.0)]
    http_handshakes_per_second: f64,
    /// Seconds an HTTP client (HTTPS: its TLS handshake and request head
    /// together) has to send its whole request head.
    #[arg(long, default_value_t = 5.0)]
    http_header_timeout: f64,
    /// Bytes of video frames kept for browsers (the newest frame of each
    /// live stream).
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    http_frame_bytes: usize,
    /// Audio and video streams one client may publish at once.
    #[arg(long, default_value_t = 4)]
    max_streams_per_client: usize,
    /// Audio and video streams all clients of one address may publish
    /// at once (another server's streams do not count).
    #[arg(long, default_value_t = 16)]
    max_streams_per_address: usize,
    /// Audio and video streams the server relays at once.
    #[arg(long, default_value_t = 256)]
    max_streams: usize,
    /// Stream announcements (new streams and renames, each broadcast to
    /// every media client) a connection may make in a burst...
    #[arg(long, default_value_t = 10)]
    announce_burst: u32,
    /// ...and per second after it.
    #[arg(long, default_value_t = 1.0)]
    announces_per_second: f64,
    /// The same for all connections of one address, in a burst...
    #[arg(long, default_value_t = 20)]
    address_announce_burst: u32,
    /// ...and per second after it.
    #[arg(long, default_value_t = 2.0)]
    address_announces_per_second: f64,
    /// Also publish a demo video stream (the moving test pattern) and a demo
    /// tone, so there is something to watch and hear straight away.
    #[arg(long)]
    demo: bool,
    /// The token that lets a client kick and ban (`lanlink admin`).
    #[arg(long, env = "LANLINK_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Wrong admin tokens one address may try per minute (all its
    /// connections together); each also closes its connection.
    #[arg(long, default_value_t = 5)]
    admin_guesses_per_minute: u32,
    /// Wrong admin tokens all addresses together may try per minute; past
    /// that, only addresses that have not guessed wrong within the hour
    /// are still checked.
    #[arg(long, default_value_t = 30)]
    admin_guesses_in_all_per_minute: u32,
    /// Refuse this IP address or nickname (repeatable).
    #[arg(long = "ban", value_name = "ADDRESS|NAME")]
    bans: Vec<String>,
    /// Connection attempts one address may make at once...
    #[arg(long, default_value_t = 20)]
    connect_burst: u32,
    /// ...and per second after that.
    #[arg(long, default_value_t = 10.0)]
    connects_per_second: f64,
    /// Connections one address may hold at once (handshaking or
    /// connected), so that one machine cannot take every client slot.
    #[arg(long, default_value_t = 16)]
    max_conns_per_address: usize,
    /// Lift the per-address limits (connections held, chat requests and
    /// messages, arrivals told and stream announcements per address; connection attempts
    /// stay limited by
    /// --connect-burst): for benchmarks and soak runs whose clients all
    /// come from one machine. Never for a server others can reach.
    #[arg(long)]
    no_address_limits: bool,
    /// Connections allowed to be handshaking at the same time; a new one
    /// beyond it takes the place of the oldest, whose handshake is cut.
    #[arg(long, default_value_t = 64)]
    max_handshakes: usize,
    /// Bytes queued for one client before it is disconnected as too slow.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_queued_per_client: usize,
    /// Bytes queued for all clients together before the ones holding
    /// the most are disconnected.
    #[arg(long, default_value_t = 512 * 1024 * 1024)]
    max_queued_total: usize,
    /// File transfers one client may run at once.
    #[arg(long, default_value_t = 3)]
    max_transfers_per_client: usize,
    /// Bytes one client address may upload while the server runs (each
    /// file and folder it creates counts 4096 bytes too).
    #[arg(long)]
    upload_quota: Option<u64>,
    /// Files and folders one client address may create in the inbox
    /// while the server runs (0: no limit).
    #[arg(long, default_value_t = 100_000)]
    upload_file_quota: u64,
    /// Seconds after which the partial file of an upload nobody writes to
    /// any more is deleted (0: keep them until resumed).
    #[arg(long, default_value_t = 24 * 3600)]
    partial_max_age: u64,
    /// Threads that do the file service's disk work (reading, hashing,
    /// writing); one client's jobs run one at a time. Default: the number
    /// of cores, at least 2, at most 4.
    #[arg(long)]
    file_workers: Option<usize>,
    /// How much nicer (lower priority) than the rest of the server the
    /// file workers run, 0-19 (Linux): a worker hashing a large file then
    /// takes the CPU only when chat and the connections do not want it.
    #[arg(long, default_value_t = lanlink_server::workers::DEFAULT_WORKER_NICE,
          value_parser = clap::value_parser!(i32).range(0..=19))]
    file_worker_nice: i32,
    /// Speak plain TCP instead of TLS: everything, the access token
    /// included, crosses the network readable by anyone on it. Clients must
    /// pass --plain too.
    #[arg(long)]
    plain: bool,
    /// Where the server keeps its TLS certificate and key (created on
    /// first start). Default: $LANLINK_HOME/server, else
    /// ~/.local/share/lanlink/server.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print the certificate's fingerprint (creating the certificate if
    /// needed) and exit: give it to clients' --server-fingerprint.
    #[arg(long)]
    show_fingerprint: bool,
    /// Publish this capture device as an audio stream (`default` for the
    /// default input), as the original prototype's server did.
    #[arg(long)]
    audio_input: Option<String>,
    /// Do not announce the server on the LAN (mDNS/DNS-SD): clients then
    /// need its address. A server bound to a loopback address is never
    /// announced.
    #[arg(long)]
    no_announce: bool,
}

/// The default port of the HTTP (browser) video server.
const DEFAULT_HTTP_PORT: u16 = 7879;

fn main() -> ExitCode {
    lanlink_apps::init_logging();
    let args = Args::parse();
    if args.max_message_len > usize::from(u16::MAX) {
        eprintln!("error: --max-message-len cannot exceed 65535 (the wire format's limit)");
        return ExitCode::from(2);
    }
    if args
        .server_id
        .as_deref()
        .is_some_and(|id| !lanlink_server::nats::valid_server_id(id))
    {
        eprintln!("error: --server-id must be 1 to 32 letters, digits, '-' or '_'");
        return ExitCode::from(2);
    }
    if let Some(id) = &args.print_nats_permissions {
        if !lanlink_server::nats::valid_server_id(id) {
            eprintln!("error: a server id is 1 to 32 letters, digits, '-' or '_'");
            return ExitCode::from(2);
        }
        let permissions = lanlink_server::nats::permissions(id);
        println!("{permissions:#}");
        return ExitCode::SUCCESS;
    }
    if args.admin_token.as_deref().is_some_and(|t| t.len() < 12) {
        eprintln!("error: --admin-token must be at least 12 characters (it guards kick and ban)");
        return ExitCode::from(2);
    }
    let identity = if args.plain {
        None
    } else {
        let dir = args
            .data_dir
            .clone()
            .unwrap_or_else(lanlink_client::default_server_data_dir);
        match ServerIdentity::load_or_create(&dir) {
            Ok((identity, created)) => {
                if args.show_fingerprint {
                    println!("{}", identity.fingerprint());
                    return ExitCode::SUCCESS;
                }
                if created {
                    println!(
                        "created a TLS certificate in {}",
                        lanlink_transport::tls::certificate_path(&dir).display()
                    );
                }
                Some(identity)
            }
            Err(e) => {
                eprintln!("error: TLS certificate in {}: {e}", dir.display());
                return ExitCode::from(1);
            }
        }
    };
    if args.show_fingerprint {
        eprintln!("error: --show-fingerprint: a --plain server has no certificate");
        return ExitCode::from(2);
    }
    let listener = match TcpListener::bind(&args.bind) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.bind);
            return ExitCode::from(1);
        }
    };
    let local = listener
        .local_addr()
        .map_or_else(|_| args.bind.clone(), |a| a.to_string());

    let mut config = ServerConfig {
        server_name: args.name.clone(),
        chat: ChatConfig {
            history_len: args.history,
            max_message_len: args.max_message_len,
            rate_burst: args.rate_burst,
            rate_per_second: args.rate_per_second,
            address_message_rate: Rate {
                burst: args.address_rate_burst,
                per_second: args.address_rate_per_second,
            },
            request_rate: Rate {
                burst: args.request_burst,
                per_second: args.requests_per_second,
            },
            address_request_rate: Rate {
                burst: args.address_request_burst,
                per_second: args.address_requests_per_second,
            },
            password_guesses: Rate::per_minute(args.password_guesses_per_minute.max(1)),
            password_guesses_in_all: Rate::per_minute(
                args.password_guesses_in_all_per_minute.max(1),
            ),
            max_rooms_per_client: args.max_rooms_per_client,
            max_rooms: args.max_rooms,
            max_rooms_per_address: args.max_rooms_per_address,
            told_arrivals: Rate::per_minute(args.told_arrivals_per_minute.max(1)),
            told_arrivals_in_all: Rate {
                burst: args
                    .told_arrivals_in_all_per_second
                    .max(1)
                    .saturating_mul(20),
                per_second: f64::from(args.told_arrivals_in_all_per_second.max(1)),
            },
            motd: args.motd,
            ..ChatConfig::default()
        },
        file: FileConfig {
            share: args.share.clone(),
            inbox: args.inbox.clone(),
            max_upload_size: args.max_upload_size,
            allow_overwrite: args.force,
            max_transfers_per_client: args.max_transfers_per_client.max(1),
            upload_quota: args.upload_quota,
            upload_entry_quota: (args.upload_file_quota > 0).then_some(args.upload_file_quota),
            partial_max_age: (args.partial_max_age > 0)
                .then(|| Duration::from_secs(args.partial_max_age)),
            ..FileConfig::default()
        },
        admin_token: args.admin_token.clone(),
        admin_guesses: Rate::per_minute(args.admin_guesses_per_minute.max(1)),
        admin_guesses_in_all: Rate::per_minute(args.admin_guesses_in_all_per_minute.max(1)),
        ..ServerConfig::default()
    };
    if !args.nats.is_empty() {
        let id = args
            .server_id
            .clone()
            .unwrap_or_else(|| lanlink_server::nats::server_id(&args.name));
        println!("server id {id} (scale-out through NATS)");
        let outbox_file = args.nats_outbox.clone().or_else(|| {
            let dir = args
                .data_dir
                .clone()
                .unwrap_or_else(lanlink_client::default_server_data_dir);
            args.server_id
                .as_ref()
                .map(|id| dir.join(format!("nats-outbox-{id}.jsonl")))
        });
        // A minute to ten years.
        let hours = args.nats_history_hours.clamp(1.0 / 60.0, 24.0 * 3653.0);
        config.nats = Some(lanlink_server::nats::NatsConfig {
            replicas: args.nats_replicas.clamp(1, 5),
            history_age: Duration::from_secs_f64(hours * 3600.0),
            outbox_file,
            password: std::env::var("LANLINK_NATS_PASSWORD").ok(),
            ..lanlink_server::nats::NatsConfig::new(args.nats.clone(), id)
        });
    }
    if let Some(n) = args.file_workers {
        config.workers.threads = n.max(1);
    }
    config.workers.nice = args.file_worker_nice;
    config.media = MediaConfig {
        max_streams_per_client: args.max_streams_per_client,
        max_streams_per_address: args.max_streams_per_address,
        max_streams: args.max_streams,
        announce_rate: Rate {
            burst: args.announce_burst.max(1),
            per_second: args.announces_per_second.max(0.0),
        },
        address_announce_rate: Rate {
            burst: args.address_announce_burst.max(1),
            per_second: args.address_announces_per_second.max(0.0),
        },
        ..MediaConfig::default()
    };
    // Named by their flags: "--share PATH: no such folder…".
    if let Err(e) = config.check_folders() {
        eprintln!("error: --{e}");
        return ExitCode::from(2);
    }
    let fingerprint = identity.as_ref().map(ServerIdentity::fingerprint);
    config.transport.tls = identity;
    config.transport.token = args.token;
    config.transport.attempts_per_address = Rate {
        burst: args.connect_burst.max(1),
        per_second: args.connects_per_second.max(0.01),
    };
    config.transport.max_handshakes = args.max_handshakes.max(1);
    config.transport.max_conns_per_address = args.max_conns_per_address.max(1);
    if args.no_address_limits {
        config.transport.max_conns_per_address = usize::MAX;
        config.chat.address_request_rate = Rate::UNLIMITED;
        config.chat.address_message_rate = Rate::UNLIMITED;
        config.chat.told_arrivals = Rate::UNLIMITED;
        config.media.address_announce_rate = Rate::UNLIMITED;
    }
    config.transport.conn.max_queued_bytes = args.max_queued_per_client.max(64 * 1024);
    config.transport.max_total_queued_bytes = args.max_queued_total;
    for ban in &args.bans {
        match ban.parse::<std::net::IpAddr>() {
            Ok(ip) => {
                config.transport.bans.ban(ip);
            }
            Err(_) => config.banned_names.push(ban.clone()),
        }
    }
    config.transport.max_clients = args.max_clients;
    config.transport.handshake_timeout = Duration::from_secs_f64(args.handshake_timeout.max(0.1));
    config.transport.conn.idle_timeout = Duration::from_secs_f64(args.idle_timeout.max(1.0));
    config.transport.conn.ping_interval = Duration::from_secs_f64(args.ping_interval.max(0.1));

    let shutdown = Shutdown::new();
    if let Err(e) = lanlink_apps::on_signal(shutdown.clone()) {
        eprintln!("error: cannot install signal handlers: {e}");
        return ExitCode::from(1);
    }

    // Browsers: every relayed video frame also lands in `frames`.
    let mut http_thread = None;
    if !args.no_http {
        let spec = args
            .http
            .clone()
            .unwrap_or_else(|| format!("0.0.0.0:{DEFAULT_HTTP_PORT}"));
        let (https, http_addr) = match http_scheme(&spec, args.plain) {
            Ok(found) => found,
            Err(why) => {
                eprintln!("error: --http {spec}: {why}");
                return ExitCode::from(2);
            }
        };
        let http = match TcpListener::bind(http_addr) {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "error: cannot listen for HTTP on {http_addr}: {e} (--no-http to go without)"
                );
                return ExitCode::from(1);
            }
        };
        let http_local = http
            .local_addr()
            .map_or_else(|_| http_addr.to_owned(), |a| a.to_string());
        let loopback = http.local_addr().is_ok_and(|a| a.ip().is_loopback());
        if !https && !args.plain && !loopback {
            eprintln!(
                "error: --http {spec}: plain HTTP on {http_local} would show the page, the access \
                 token and the session cookie to anyone on the network; use a loopback address \
                 (http://127.0.0.1:{DEFAULT_HTTP_PORT}), leave out http:// to serve HTTPS, or run \
                 the whole server --plain"
            );
            return ExitCode::from(2);
        }
        let frames = LatestFrames::with_limits(FrameLimits {
            max_bytes: args.http_frame_bytes,
            ..FrameLimits::default()
        });
        config.video_tap = Some(lanlink_server::http::video_tap(frames.clone()));
        config.browser_frames = Some(frames.clone());
        let audio = lanlink_server::http::AudioListeners::default();
        config.audio_tap = Some(audio.tap());
        config.browser_audio = Some(audio.clone());
        let http_config = HttpConfig {
            audio,
            max_connections: args.http_max_connections.max(1),
            max_per_address: args.http_max_per_address.max(1),
            header_timeout: Duration::from_secs_f64(args.http_header_timeout.max(0.1)),
            handshake_rate: Rate {
                burst: args.http_handshake_burst.max(1),
                per_second: args.http_handshakes_per_second.max(0.01),
            },
            tls: if https {
                config.transport.tls.clone()
            } else {
                None
            },
            access_token: config.transport.token.clone(),
            token_guesses: config.transport.token_guesses.clone(),
            // Browser chat: `/ws` hands each browser to the transport.
            adopter: Some(config.transport.adopter.clone()),
            files: config.file.clone(),
            host_names: args.http_host.clone(),
            ..HttpConfig::default()
        };
        let shutdown = shutdown.clone();
        http_thread = Some(std::thread::spawn(move || {
            serve_http_with(http, frames, http_config, shutdown)
        }));
        let scheme = if https { "https" } else { "http" };
        let link = browser_link(
            scheme,
            &browser_address(&http_local),
            args.link_name.as_deref(),
            args.link_room.as_deref(),
        );
        println!("browser page: {link}");
        if https {
            println!(
                "  (HTTPS with the certificate below: a browser warns on its first visit; \
                 compare the SHA-256 in its certificate details with this console's)"
            );
        }
        if std::io::stdout().is_terminal() {
            print_qr(&link);
        }
        if loopback {
            println!("(this machine only; --http 0.0.0.0:{DEFAULT_HTTP_PORT} lets the LAN in)");
        } else if !https {
            println!("(plain HTTP: anyone who can reach it can watch every video stream)");
        }
    }

    // Streams the server publishes itself, like a client's would be.
    let mut local_threads = Vec::new();
    if args.demo || args.audio_input.is_some() {
        let (tx, rx) = crossbeam_channel::bounded::<(u32, lanlink_proto::Message)>(64);
        config.local_media = Some(rx);
        if args.demo {
            let capture = Capture {
                width: 1280,
                height: 720,
                fps: 30.0,
                quality: 80,
            };
            let source = match video::open_source(&CamSource::TestPattern, capture) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: demo stream: {e}");
                    return ExitCode::from(1);
                }
            };
            let (shutdown, tx) = (shutdown.clone(), tx.clone());
            local_threads.push(std::thread::spawn(move || {
                lanlink_client::video::publish(source, "demo", None, &shutdown, |m| {
                    tx.send((1, m)).is_ok()
                })
                .map(|_| ())
            }));
            println!("publishing the demo stream \"demo\" (1280x720 test pattern, 30 fps) and the tone \"demo-tone\" (440 Hz)");
        }
        let mut audio_inputs = Vec::new();
        if args.demo {
            audio_inputs.push(("demo-tone".to_owned(), 3, TalkInput::Tone(440.0)));
        }
        if let Some(dev) = &args.audio_input {
            let device = (dev != "default").then(|| dev.clone());
            audio_inputs.push((format!("{} input", args.name), 5, TalkInput::Device(device)));
        }
        for (name, stream, input) in audio_inputs {
            let source = match audio::open_input(&input) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: audio input: {e}");
                    return ExitCode::from(1);
                }
            };
            let (shutdown, tx) = (shutdown.clone(), tx.clone());
            local_threads.push(std::thread::spawn(move || {
                lanlink_client::audio::publish(source, &name, None, &shutdown, |m| {
                    tx.send((stream, m)).is_ok()
                })
                .map(|_| ())
            }));
        }
    }

    // Withdrawn (a goodbye on the LAN) when main returns.
    let _announcer = (!args.no_announce)
        .then(|| announce(&args.name, &listener, fingerprint))
        .flatten();
    // One line on stdout that scripts (and people) can wait for.
    match fingerprint {
        Some(fp) => {
            println!("TLS certificate {fp}");
            println!("  short form {} (clients show it too)", fp.grouped());
            if std::io::stdout().is_terminal() {
                print_qr(&fp.to_string());
            }
        }
        None => println!("plain TCP, no TLS (--plain): anyone on the network can read the traffic"),
    }
    // The address to give clients (the browser page's is another port).
    let plain = if fingerprint.is_none() {
        " --plain"
    } else {
        ""
    };
    println!(
        "clients: lanlink chat {}{plain}{}",
        browser_address(&local.to_string()),
        if _announcer.is_some() {
            " (on this LAN, `lanlink chat` alone finds it)"
        } else {
            ""
        }
    );
    // Last: what scripts wait for, after which they may close our output.
    println!(
        "lanlink server listening on {local} (protocol version {})",
        lanlink_proto::PROTOCOL_VERSION
    );
    let result = run(listener, config, shutdown.clone());
    shutdown.trigger();
    for t in local_threads {
        if let Ok(Err(e)) = t.join() {
            eprintln!("warning: {e}");
        }
    }
    if let Some(t) = http_thread {
        let _ = t.join();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Announces the server as `name` on the LAN unless it is bound to
/// loopback; a failure is a warning (the server runs without).
fn announce(
    name: &str,
    listener: &TcpListener,
    fingerprint: Option<lanlink_transport::Fingerprint>,
) -> Option<Announcer> {
    let bound = listener.local_addr().ok()?;
    if bound.ip().is_loopback() {
        println!("not announced on the LAN (bound to a loopback address)");
        return None;
    }
    let what = Announcement {
        server_name: name.to_owned(),
        port: bound.port(),
        address: (!bound.ip().is_unspecified()).then_some(bound.ip()),
        fingerprint,
    };
    match Announcer::start(&what) {
        Ok(announcer) => {
            println!(
                "announced on the LAN as \"{}\" (_lanlink._tcp; --no-announce to stop)",
                announcer.instance()
            );
            Some(announcer)
        }
        Err(e) => {
            eprintln!("warning: not announced on the LAN ({e}); clients need the address");
            None
        }
    }
}

/// `text` as a QR code, in Unicode half blocks (two rows of modules per
/// line), light on dark so it scans from a dark terminal.
fn print_qr(text: &str) {
    use qrcode::render::unicode::Dense1x2;
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => {
            let art = code
                .render::<Dense1x2>()
                .dark_color(Dense1x2::Light)
                .light_color(Dense1x2::Dark)
                .build();
            println!("{art}");
        }
        Err(e) => eprintln!("warning: no QR code: {e}"),
    }
}

/// Whether `--http SPEC` asks for HTTPS, and the address in it: `https://`
/// needs TLS, `http://` is plain, no scheme is HTTPS with TLS and plain
/// HTTP without.
fn http_scheme(spec: &str, plain: bool) -> Result<(bool, &str), &'static str> {
    if let Some(addr) = spec.strip_prefix("https://") {
        if plain {
            return Err("a --plain server has no certificate for HTTPS");
        }
        Ok((true, addr.trim_end_matches('/')))
    } else if let Some(addr) = spec.strip_prefix("http://") {
        Ok((false, addr.trim_end_matches('/')))
    } else if spec.contains("://") {
        Err("the scheme is http:// or https://")
    } else {
        Ok((!plain, spec))
    }
}

/// `0.0.0.0:7879` is not an address a browser can open: show this
/// machine's LAN address (what a phone scanning the QR code can reach
/// without name resolution), else its host name (or localhost).
fn browser_address(bound: &str) -> String {
    match bound
        .strip_prefix("0.0.0.0:")
        .or_else(|| bound.strip_prefix("[::]:"))
    {
        Some(port) => {
            let host = lan_ip().map(|ip| ip.to_string()).unwrap_or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "localhost".into())
            });
            format!("{host}:{port}")
        }
        None => bound.to_owned(),
    }
}

/// The IPv4 address this machine reaches the network with: the source
/// address of a route to a documentation address (a UDP "connect" sends
/// nothing). `None` without such a route.
fn lan_ip() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

/// The page's URL, joining as `name` and into `room` when given
/// (`/?name=NAME&room=ROOM`, percent-encoded): what the console prints
/// and shows as a QR code.
fn browser_link(scheme: &str, host: &str, name: Option<&str>, room: Option<&str>) -> String {
    let query: Vec<String> = [("name", name), ("room", room)]
        .into_iter()
        .filter_map(|(key, value)| value.map(|v| format!("{key}={}", query_escape(v))))
        .collect();
    if query.is_empty() {
        format!("{scheme}://{host}/")
    } else {
        format!("{scheme}://{host}/?{}", query.join("&"))
    }
}

/// `s` percent-encoded for a query value (UTF-8; only unreserved
/// characters stay as they are).
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
