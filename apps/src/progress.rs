//! Transfer progress for people: an `indicatif` bar with bytes, rate and ETA
//! on a terminal, one plain line per event otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use lanlink_client::{Progress, TransferSummary};

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
        if resumed_from > 0 {
            println!("resuming {name} from byte {resumed_from} of {total}");
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
            bar.set_message(name.to_owned());
            bar.set_position(resumed_from);
            self.bar = Some(bar);
        }
    }

    fn advance(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    fn finish(&mut self, s: &TransferSummary) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let moved = s.size - s.resumed_from;
        let secs = s.elapsed.as_secs_f64().max(1e-6);
        let hash: String = s.hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
        println!(
            "{} {} ({} bytes{}) in {:.2} s, {:.1} MB/s, blake3 {hash}…",
            self.verb,
            s.path.display(),
            s.size,
            if s.resumed_from > 0 {
                format!(", resumed at {}", s.resumed_from)
            } else {
                String::new()
            },
            secs,
            moved as f64 / secs / 1e6,
        );
    }
}
