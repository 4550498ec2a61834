//! The properties the fuzz targets check, kept out of the targets so that
//! each target is one line and so that `proto/tests/fuzz_corpus.rs` can replay
//! the corpus through the very same checks on the stable toolchain.
//!
//! - [`check_decode`] (target `decode`): any bytes, any payload limit, any
//!   split: the decoder never panics and agrees with itself.
//! - [`check_round_trip`] (target `round_trip`): encodings are canonical.
//! - [`client::run`] (target `client`): what a client makes of a hostile
//!   server's frames; `apps/tests/fuzz_client.rs` replays its corpus.

mod checks;
pub mod client;

pub use checks::{check_decode, check_round_trip, decode_stream, Decoded, SMALL_MAX_PAYLOAD};
