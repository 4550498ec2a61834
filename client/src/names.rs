//! Stream names nobody has to think about: one per user and kind by
//! default (`ada-mic`, `ada-cam`), and the next free one (`ada-mic-2`, …)
//! when that is taken, so a second talker, a camera next to a microphone,
//! or two users who both keep the defaults all just work.
//!
//! ```
//! use lanlink_client::names::{default_stream_name, free_name};
//!
//! let base = default_stream_name("ada", "mic");
//! assert_eq!(base, "ada-mic");
//! let taken = ["ada-mic".to_owned(), "ada-mic-2".to_owned()];
//! assert_eq!(free_name(&base, &taken), "ada-mic-3");
//! ```
//!
//! [`publish_named`] publishes under such a name, trying the next one when
//! the server says another program took it first.

use lanlink_proto::ErrorCode;

use crate::{ClientError, Publisher, Session};

/// How many default names are tried before giving up.
const ATTEMPTS: usize = 8;

/// The default name of `user`'s stream of this kind (`mic`, `cam`).
pub fn default_stream_name(user: &str, kind: &str) -> String {
    format!("{user}-{kind}")
}

/// `base` if it is not in `taken`, else the first free of `base-2`,
/// `base-3`, …
pub fn free_name(base: &str, taken: &[String]) -> String {
    let is_free = |name: &str| !taken.iter().any(|t| t == name);
    let mut name = base.to_owned();
    let mut n = 1;
    while !is_free(&name) {
        n += 1;
        name = format!("{base}-{n}");
    }
    name
}

/// Publishes with `start(name)` until the stream ends; returns the name
/// used and what [`Publisher::wait`] said.
///
/// A name the user `chose` is used as it is: if it is taken, that is the
/// answer. Otherwise the first name free of `base`, `base-2`, … (looking at
/// the streams the session knows of) is used, and when the server still
/// says it is taken (another program took it at the same moment) the next
/// one is tried, a few times at most.
///
/// ```no_run
/// use std::time::Duration;
/// use lanlink_client::lanlink_audio::{Format, ToneSource};
/// use lanlink_client::names::{default_stream_name, publish_named};
/// use lanlink_client::Session;
///
/// let (session, _) = Session::builder("192.168.1.10").name("ada").connect()?;
/// let base = default_stream_name("ada", "mic");
/// // A second `ada-mic` becomes `ada-mic-2`; each try starts a fresh source.
/// let (name, sent) = publish_named(&session, None, &base, |name| {
///     let tone = ToneSource::new(Format::MONO_48K, 440.0, 0.5)?;
///     session.publish_audio(name, tone, Some(Duration::from_secs(5)))
/// })?;
/// println!("published {sent} packets as {name}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn publish_named(
    session: &Session,
    chosen: Option<String>,
    base: &str,
    mut start: impl FnMut(&str) -> Result<Publisher, ClientError>,
) -> Result<(String, u64), ClientError> {
    if let Some(name) = chosen {
        let sent = start(&name)?.wait()?;
        return Ok((name, sent));
    }
    let mut refused: Vec<String> = Vec::new();
    loop {
        let mut taken: Vec<String> = session
            .streams()
            .iter()
            .map(|s| s.name().to_owned())
            .collect();
        taken.extend(refused.iter().cloned());
        let name = free_name(base, &taken);
        match start(&name)?.wait() {
            Err(ClientError::Refused { code, .. })
                if code == ErrorCode::NAME_TAKEN && refused.len() + 1 < ATTEMPTS =>
            {
                refused.push(name);
            }
            other => return other.map(|sent| (name, sent)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_free_name_is_chosen() {
        let taken = |names: &[&str]| names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(free_name("ada-mic", &taken(&[])), "ada-mic");
        assert_eq!(
            free_name("ada-mic", &taken(&["ada-cam", "bob-mic"])),
            "ada-mic"
        );
        assert_eq!(free_name("ada-mic", &taken(&["ada-mic"])), "ada-mic-2");
        assert_eq!(
            free_name("ada-mic", &taken(&["ada-mic", "ada-mic-2", "ada-mic-4"])),
            "ada-mic-3"
        );
        assert_eq!(default_stream_name("ada", "cam"), "ada-cam");
    }
}
