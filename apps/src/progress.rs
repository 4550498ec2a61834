//! Transfer progress for people: an `indicatif` bar with bytes, rate and ETA
//! on a terminal, one plain line per event otherwise. Sizes and rates are in
//! binary units (KiB, MiB, GiB) everywhere, as the bar shows them.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use lanlink_client::{Progress, TransferSummary};
use lanlink_transport::text::display_safe;

/// Reports progress on stderr (bar) and results on stdout (lines).
pub struct Reporter {
    verb: &'static str,
    bar: Option<ProgressBar>,
    terminal: bool,
}

impl Reporter {
    /// `verb` names what happened to a finished file (`got`, `sent`, …).
    pub fn new(verb: &'static str) -> Reporter {
        Reporter {
            verb,
            bar: None,
            terminal: std::io::stderr().is_terminal(),
        }
    }
}

impl Progress for Reporter {
    fn start(&mut self, name: &str, total: u64, resumed_from: u64) {
        if resumed_from > 0 && resumed_from >= total {
            return; // Nothing to move: `finish` says so.
        }
        if resumed_from > 0 {
            println!(
                "resuming {} from {} of {}",
                display_safe(name),
                human_bytes(resumed_from),
                human_bytes(total)
            );
        }
        if self.terminal {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(display_safe(name).into_owned());
            starting_at(&bar, resumed_from);
            self.bar = Some(bar);
        }
    }

    fn advance(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    fn interrupted(&mut self, why: &str, retry_in: std::time::Duration) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
        // Said at once, on stderr: the transfer is not going on meanwhile.
        eprintln!(
            "lanlink: {}; resuming in {} s",
            display_safe(why),
            retry_in.as_secs_f64().round()
        );
    }

    fn finish(&mut self, s: &TransferSummary) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let hash: String = s.hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
        if s.unchanged {
            println!(
                "{} ({}): already there and the same (blake3 {hash}…), skipped",
                display_safe(&s.path.to_string_lossy()),
                human_bytes(s.size)
            );
            return;
        }
        println!(
            "{} {} ({}{}) in {:.2} s, {}, blake3 {hash}…",
            self.verb,
            display_safe(&s.path.to_string_lossy()),
            human_bytes(s.size),
            if s.resumed_from > 0 {
                format!(", resumed at {}", human_bytes(s.resumed_from))
            } else {
                String::new()
            },
            s.elapsed.as_secs_f64(),
            human_rate(s.size.saturating_sub(s.resumed_from), s.elapsed),
        );
    }
}

/// Puts `bar` at `resumed_from` without counting the bytes that were
/// there already into its rate and ETA: they arrived before, not in the
/// first moment (a resumed `get` showed 786 MiB/s and "eta 0s" at 20
/// MiB/s). The bar's estimator takes the jump at this tick and forgets it.
fn starting_at(bar: &ProgressBar, resumed_from: u64) {
    bar.set_position(resumed_from);
    bar.tick();
    bar.reset_eta();
}

/// A size for people, in binary units: `512 B`, `1.5 KiB`, `3.2 MiB`,
/// `1.1 GiB` (the units of the progress bar).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A rate for people: [`human_bytes`] a second.
pub fn human_rate(bytes: u64, elapsed: std::time::Duration) -> String {
    let per_second = bytes as f64 / elapsed.as_secs_f64().max(1e-6);
    format!("{}/s", human_bytes(per_second as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes a transfer resumed from are not counted as moved.
    #[test]
    fn a_resumed_bar_rates_only_what_moves() {
        let bar =
            ProgressBar::with_draw_target(Some(1 << 30), indicatif::ProgressDrawTarget::hidden());
        starting_at(&bar, 500 << 20);
        for i in 1..=10 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            bar.set_position((500 << 20) + i * 10_000);
            bar.tick();
        }
        // About 1 MB/s (10 kB each 10 ms), far below 500 MiB in the
        // first moment.
        assert!(bar.per_sec() < 3e6, "{} B/s", bar.per_sec());
    }

    #[test]
    fn sizes_in_one_unit_family() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 + 200 * 1024), "3.2 MiB");
        assert_eq!(human_bytes(u64::MAX), "16384.0 PiB");
        let second = std::time::Duration::from_secs(2);
        assert_eq!(human_rate(4 * 1024 * 1024, second), "2.0 MiB/s");
    }
}
