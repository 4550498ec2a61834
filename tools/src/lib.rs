//! The programs that measure lanlink, and what they share. None of this is
//! installed with `cargo install --path apps`; the scripts build and run it.
//!
//! - `lanlink-bench chat`: chat load against a running server
//!   (`scripts/bench-chat`).
//! - `lanlink-soak`: the soak and fault run (`scripts/soak`,
//!   `scripts/netem`).
//! - examples `relay_bench` (the media relay's fan-out) and `audio_latency`
//!   (added audio latency with clicks, `scripts/bench-audio-latency`).
//!
//! What they share: one latency histogram, [`Latency`], and one `/proc`
//! reader, [`procinfo`]. [`client`] is the one place that names the client
//! code these programs borrow from the apps.

mod latency;
pub mod procinfo;

pub use latency::Latency;

pub mod client {
    //! The client code the tools use (connecting with TLS and pinning, the
    //! audio publish and play loops), wherever it lives.
    pub use lanlink_apps::audio;
    pub use lanlink_apps::connect::{KnownServers, Security, Target};
    pub use lanlink_apps::files::parse_rate;
    pub use lanlink_apps::init_logging;
}
