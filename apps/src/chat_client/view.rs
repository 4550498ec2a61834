//! How chat lines look: a `HH:MM` timestamp in front, and each nickname in
//! a colour of its own on a terminal.

use std::io::IsTerminal;

use lanlink_proto::Message;
use lanlink_services::chat::command::format_event;

/// Whether lines start with the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Timestamps {
    /// On a terminal only (a script reads lines as the server sent them).
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Turns what happened into lines for a person.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    timestamps: bool,
    colour: bool,
}

/// Twelve colours that read on dark and light backgrounds alike: the six
/// ANSI hues, normal and bright (no black, white or grey).
const NICK_COLOURS: [u8; 12] = [31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96];

impl View {
    /// Timestamps as asked (`Auto`: when `terminal`); colours only when
    /// stdout is a terminal, `NO_COLOR` is unset and `TERM` is not `dumb`.
    pub(crate) fn new(timestamps: Timestamps, terminal: bool) -> View {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        View {
            timestamps: match timestamps {
                Timestamps::Auto => terminal,
                Timestamps::Always => true,
                Timestamps::Never => false,
            },
            colour: std::io::stdout().is_terminal() && !no_color && !dumb,
        }
    }

    /// A line about something happening now (`-- bob joined lobby`).
    pub(crate) fn info(&self, text: &str) -> String {
        self.stamped(0, text)
    }

    /// A chat or private message, stamped with the time the server gave
    /// it (now, if it gave none), the speaker's nickname coloured.
    pub(crate) fn speech(&self, message: &Message, timestamp_ms: u64) -> Option<String> {
        let line = format_event(message)?;
        let line = if self.colour {
            colour_speaker(&line)
        } else {
            line
        };
        Some(self.stamped(timestamp_ms, &line))
    }

    fn stamped(&self, timestamp_ms: u64, text: &str) -> String {
        if self.timestamps {
            format!("{} {text}", clock(timestamp_ms))
        } else {
            text.to_owned()
        }
    }
}

/// `HH:MM` in local time for a Unix time in milliseconds (0: now).
pub(crate) fn clock(unix_ms: u64) -> String {
    let at = i64::try_from(unix_ms)
        .ok()
        .filter(|ms| *ms > 0)
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .unwrap_or_else(jiff::Timestamp::now);
    at.to_zoned_datetime(jiff::tz::TimeZone::system())
        .strftime("%H:%M")
        .to_string()
}

/// The colour of a nickname: the same on every run and every machine
/// (FNV-1a of its lowercase form, so that case does not change it).
pub(crate) fn nick_colour(nick: &str) -> u8 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in nick.to_lowercase().bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    NICK_COLOURS[hash as usize % NICK_COLOURS.len()]
}

/// `[room] <nick> text` or `[room] * nick text` with the nickname
/// coloured. Names hold no whitespace (the server's rule), so the speaker
/// ends at the first `> ` or space. Anything else is left as it is.
fn colour_speaker(line: &str) -> String {
    let Some(place_end) = line.find("] ").map(|i| i + 2) else {
        return line.to_owned();
    };
    let (head, rest) = line.split_at(place_end);
    let (open, rest, close) = if let Some(r) = rest.strip_prefix('<') {
        ("<", r, "> ")
    } else if let Some(r) = rest.strip_prefix("* ") {
        ("* ", r, " ")
    } else {
        return line.to_owned();
    };
    let Some(end) = rest.find(close) else {
        return line.to_owned();
    };
    let (nick, tail) = rest.split_at(end);
    format!("{head}{open}\x1b[{}m{nick}\x1b[0m{tail}", nick_colour(nick))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_stable_and_spread() {
        assert_eq!(nick_colour("ada"), nick_colour("ADA"));
        let names = ["ada", "bob", "cat", "dan", "eve", "fay", "gus", "hal"];
        let distinct: std::collections::BTreeSet<u8> =
            names.iter().map(|n| nick_colour(n)).collect();
        assert!(distinct.len() >= 4, "{distinct:?}");
    }

    #[test]
    fn only_the_speaker_is_coloured() {
        let c = nick_colour("ada");
        assert_eq!(
            colour_speaker("[lobby] <ada> hi <bob> there"),
            format!("[lobby] <\x1b[{c}mada\x1b[0m> hi <bob> there")
        );
        assert_eq!(
            colour_speaker("[pm] * ada waves"),
            format!("[pm] * \x1b[{c}mada\x1b[0m waves")
        );
        assert_eq!(colour_speaker("-- ada joined"), "-- ada joined");
    }

    #[test]
    fn clock_reads_hours_and_minutes() {
        let t = clock(1_700_000_000_000);
        assert_eq!(t.len(), 5, "{t}");
        assert_eq!(t.as_bytes()[2], b':');
    }
}
