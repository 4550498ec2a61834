//! Peer-supplied text made safe to show, and names made safe to compare.
//!
//! Every string a peer sends (a nickname, a room or stream name, a file name,
//! a reason, a refusal text) can hold bytes that act on whatever shows it: an
//! `ESC ] 0 ; … BEL` retitles a terminal, `ESC [ 2 J` clears it, a newline
//! forges a second log line, a bidi override (U+202E) reverses what follows
//! it, and zero-width or tag characters hide text in plain sight.
//!
//! - [`display_safe`] is for *showing*: it replaces every such character by a
//!   visible Rust-style escape (`\u{1b}`), so the text stays readable, nothing
//!   acts on the terminal or the log, and one string is always one line.
//! - [`name_problem`] is for *accepting* a name (nickname, room, stream): a
//!   name holding any of these characters can never be valid, so it is
//!   refused rather than escaped.
//! - [`name_skeleton`] is for *comparing* names: two names that look the same
//!   (Cyrillic `а` for Latin `a`, fullwidth letters, dotless `ı`, case) have
//!   the same skeleton, so uniqueness and bans hold against look-alikes.

use unicode_normalization::UnicodeNormalization;

pub use lanlink_transport::text::{display_safe, hides_or_reorders, is_bidi_control, is_invisible};

/// Why `name` can never be a valid nickname, room or stream name, or `None`
/// when its characters are all acceptable. Only the characters are judged:
/// emptiness, length and leading characters are each name kind's own rules.
///
/// Refused: whitespace, control characters, bidirectional controls and
/// invisible characters ([`is_invisible`]), which includes zero-width
/// joiners and variation selectors (so emoji ZWJ sequences and emoji
/// presentation selectors are not allowed in names).
pub fn name_problem(name: &str) -> Option<&'static str> {
    // Order matters only for which reason is given: the most specific first.
    if name.chars().any(char::is_control) {
        Some("it contains control characters")
    } else if name.chars().any(char::is_whitespace) {
        Some("it contains whitespace")
    } else if name.chars().any(is_bidi_control) {
        Some("it contains bidirectional text controls")
    } else if name.chars().any(is_invisible) {
        Some("it contains invisible characters")
    } else {
        None
    }
}

/// The key two names are compared by: names that a person could take for
/// one another have the same skeleton.
///
/// It is the Unicode TR39 confusable skeleton (via `unicode-security`) of the
/// NFKC-normalised, lowercased name, lowercased once more because some
/// prototypes are capitals: fullwidth `ａｄａ`, Cyrillic `аdа`, `ADA`, and
/// `Ada` all give the skeleton of `ada`; dotless `ı` gives that of `i`;
/// default-ignorable characters (zero-width, BOM, bidi, tags) are dropped.
/// Lowercasing first (as TR39 advises for case-insensitive use) keeps
/// "same name up to case" a strict subset of "same skeleton"; the cost is
/// that look-alikes across case (capital `I` vs lowercase `l`) are not
/// caught.
///
/// The skeleton is a comparison key only, never something to show: it maps
/// `m` to `rn`, for one.
pub fn name_skeleton(name: &str) -> String {
    let folded: String = name.nfkc().flat_map(char::to_lowercase).collect();
    let skeleton: String = unicode_security::skeleton(&folded).collect();
    skeleton.chars().flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_hidden_characters_are_refused() {
        for name in ["ada", "Bob_2", "ünïcødé", "a-b.c", "漢字", "#ops"] {
            assert_eq!(name_problem(name), None, "{name}");
        }
        let cases = [
            ("a\u{1b}[31m", "it contains control characters"),
            ("a\nb", "it contains control characters"),
            ("a\u{85}", "it contains control characters"),
            ("a b", "it contains whitespace"),
            ("a\u{3000}b", "it contains whitespace"),
            ("a\u{2028}", "it contains whitespace"),
            ("ada\u{202E}", "it contains bidirectional text controls"),
            ("\u{2067}ada", "it contains bidirectional text controls"),
            ("\u{200F}ada", "it contains bidirectional text controls"),
            ("a\u{200B}da", "it contains invisible characters"),
            ("a\u{200D}da", "it contains invisible characters"),
            ("\u{FEFF}ada", "it contains invisible characters"),
            ("a\u{00AD}da", "it contains invisible characters"),
            ("ada\u{E0041}\u{E007F}", "it contains invisible characters"),
            ("ada\u{FE0F}", "it contains invisible characters"),
            ("\u{3164}", "it contains invisible characters"),
            ("\u{2800}", "it contains invisible characters"),
            ("a\u{2060}", "it contains invisible characters"),
        ];
        for (name, why) in cases {
            assert_eq!(name_problem(name), Some(why), "{name:?}");
        }
    }

    #[test]
    fn look_alikes_share_a_skeleton() {
        let ada = name_skeleton("ada");
        // Cyrillic а (U+0430) for Latin a.
        assert_eq!(name_skeleton("\u{0430}d\u{0430}"), ada);
        // Fullwidth.
        assert_eq!(name_skeleton("ａｄａ"), ada);
        assert_eq!(name_skeleton("ＡＤＡ"), ada);
        // Case.
        assert_eq!(name_skeleton("ADA"), ada);
        assert_eq!(name_skeleton("Ada"), ada);
        // Invisible and bidi characters vanish (they are refused as names too).
        assert_eq!(name_skeleton("a\u{200B}da"), ada);
        assert_eq!(name_skeleton("\u{FEFF}ada"), ada);
        assert_eq!(name_skeleton("a\u{00AD}da"), ada);
        assert_eq!(name_skeleton("ada\u{202E}"), ada);
        assert_eq!(name_skeleton("ada\u{E0041}\u{E007F}"), ada);
        // Dotless i.
        assert_eq!(name_skeleton("al\u{0131}ce"), name_skeleton("alice"));
        // Cyrillic о and е, Greek ο.
        assert_eq!(name_skeleton("b\u{043E}b"), name_skeleton("bob"));
        assert_eq!(name_skeleton("b\u{03BF}b"), name_skeleton("bob"));
        assert_eq!(name_skeleton("\u{0435}ve"), name_skeleton("eve"));
        // Different names stay different.
        assert_ne!(name_skeleton("bob"), ada);
        assert_ne!(name_skeleton("adam"), ada);
        assert_ne!(name_skeleton("lobby"), name_skeleton("hobby"));
    }
}
