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
//! - `lanlink-attack`: hostile peers of every kind against a release
//!   server while honest `lanlink` processes use it (`scripts/attack`).
//!
//! What they share: one latency histogram, [`Latency`], one `/proc`
//! reader, [`procinfo`], the child processes they run, [`procs`], and the
//! audio check of a listener's recording, [`wav`]. They connect with
//! `lanlink-client` and borrow a few helpers (logging, rate parsing) from
//! `lanlink-apps`.

mod latency;
pub mod procinfo;
pub mod procs;
pub mod wav;

pub use latency::Latency;
