//! Peer-supplied text made safe to show: [`display_safe`].
//!
//! Every string a peer sends (a name, a reason, a refusal text, a path) can
//! hold characters that act on whatever shows it: an `ESC ] 0 ; … BEL`
//! retitles a terminal, `ESC [ 2 J` clears it, a newline forges a second log
//! line, a bidi override (U+202E) reverses what follows it, and zero-width or
//! tag characters hide text in plain sight. [`display_safe`] turns each of
//! them into a visible escape. It lives here, below the services, because
//! the transport logs peer text too (names in a `Hello`, goodbye reasons);
//! `lanlink_services::text` re-exports it next to the rules for names.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `s` made safe to print on a terminal or in a log line.
///
/// Replaced by a `\u{…}` escape (lowercase hex, as Rust's `{:?}` writes it):
/// - control characters: C0 (including ESC, CR, LF and TAB), DEL, and C1
///   (U+0080–U+009F);
/// - the line and paragraph separators U+2028 and U+2029;
/// - bidirectional controls (U+061C, U+200E, U+200F, U+202A–U+202E,
///   U+2066–U+2069) and every other invisible format character (see
///   [`is_invisible`]), except a U+200D ZERO WIDTH JOINER between two
///   pictographs, where emoji sequences (👨‍👩‍👧) need it. Anywhere else a
///   joiner only hides: `ada` and `ada` followed by a joiner would read
///   the same.
///
/// Everything else is kept, including backslashes: the escape is for safety,
/// not a reversible encoding. The result is borrowed when nothing needed
/// escaping, which is the common case.
pub fn display_safe(s: &str) -> Cow<'_, str> {
    let escaped = |i: usize, c: char| {
        if c == ZWJ {
            let before = s[..i].chars().next_back();
            let after = s[i + c.len_utf8()..].chars().next();
            !(before.is_some_and(is_pictograph) && after.is_some_and(is_pictograph))
        } else {
            needs_escape(c)
        }
    };
    let Some(first) = s
        .char_indices()
        .find(|&(i, c)| escaped(i, c))
        .map(|(i, _)| i)
    else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 8);
    out.push_str(&s[..first]);
    for (i, c) in s[first..].char_indices() {
        if escaped(first + i, c) {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

const ZWJ: char = '\u{200D}';

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') || is_invisible(c)
}

/// Whether `c` can stand on either side of a joiner in an emoji sequence:
/// the pictographic blocks (emoji, symbols, skin-tone modifiers) and the
/// older symbols emoji use.
fn is_pictograph(c: char) -> bool {
    matches!(
        c,
        '\u{1F000}'..='\u{1FAFF}'
            | '\u{2600}'..='\u{27BF}'
            | '\u{2B00}'..='\u{2BFF}'
            | '\u{2190}'..='\u{21FF}'
            | '\u{2300}'..='\u{23FF}'
            | '\u{00A9}'
            | '\u{00AE}'
            | '\u{203C}'
            | '\u{2049}'
            | '\u{2122}'
            | '\u{2139}'
    )
}

/// [`display_safe`], cut to `most` characters of `s` (then `…`): a
/// peer's name in a prompt or a list, where a long one would push out
/// what matters.
pub fn display_cut(s: &str, most: usize) -> String {
    let cut: String = s.chars().take(most).collect();
    let mut out = display_safe(&cut).into_owned();
    if s.chars().nth(most).is_some() {
        out.push('…');
    }
    out
}

/// Whether `c` may not stand in a name that others are shown (a stream's,
/// a written file's): it reorders text ([`is_bidi_control`]), hides
/// ([`is_invisible`]) or breaks a line (U+2028, U+2029).
pub fn hides_or_reorders(c: char) -> bool {
    is_bidi_control(c) || is_invisible(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Whether `c` is a bidirectional formatting control: it reorders the text
/// around it when shown (the "Trojan Source" characters).
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Whether `c` shows as nothing (or as blank space without being
/// whitespace): Unicode's Default_Ignorable_Code_Point set (soft hyphen,
/// zero-width space/joiners, word joiner, BOM, bidi controls, variation
/// selectors, tag characters, Hangul fillers, …), the other format
/// characters (general category Cf) and U+2800 BRAILLE PATTERN BLANK.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        // Default_Ignorable_Code_Point (DerivedCoreProperties.txt).
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
            // The other format characters (Cf): prepended concatenation
            // marks, interlinear annotation, Egyptian hieroglyph controls.
            | '\u{0600}'..='\u{0605}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{FFF9}'..='\u{FFFB}'
            // Not a format character, but renders as an empty cell.
            | '\u{2800}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_is_borrowed() {
        for s in [
            "",
            "hello",
            "ünïcødé and 漢字",
            "tab-free",
            "👨\u{200D}👩\u{200D}👧",
        ] {
            assert!(matches!(display_safe(s), Cow::Borrowed(_)), "{s:?}");
        }
    }

    #[test]
    fn terminal_and_log_controls_are_escaped() {
        assert_eq!(
            display_safe("\u{1b}]0;pwned\u{7}x"),
            "\\u{1b}]0;pwned\\u{7}x"
        );
        assert_eq!(display_safe("\u{1b}[2J"), "\\u{1b}[2J");
        assert_eq!(
            display_safe("a\nINFO forged line\r\tb"),
            "a\\u{a}INFO forged line\\u{d}\\u{9}b"
        );
        assert_eq!(display_safe("del\u{7f}"), "del\\u{7f}");
        assert_eq!(display_safe("c1\u{9b}31m"), "c1\\u{9b}31m");
        assert_eq!(display_safe("nel\u{85}x"), "nel\\u{85}x");
        assert_eq!(
            display_safe("ls\u{2028}ps\u{2029}"),
            "ls\\u{2028}ps\\u{2029}"
        );
    }

    #[test]
    fn bidi_and_invisible_are_escaped() {
        assert_eq!(display_safe("abc\u{202E}fdp.exe"), "abc\\u{202e}fdp.exe");
        for c in [
            '\u{202A}',
            '\u{202D}',
            '\u{2066}',
            '\u{2069}',
            '\u{200E}',
            '\u{200F}',
            '\u{061C}',
            '\u{200B}',
            '\u{200C}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{E0041}',
            '\u{E0001}',
            '\u{FFF9}',
        ] {
            let s = format!("a{c}b");
            let want = format!("a\\u{{{:x}}}b", u32::from(c));
            assert_eq!(display_safe(&s), want, "{:x}", u32::from(c));
        }
        // The result holds only printable, visible characters.
        let hostile: String = (0u32..0x3000)
            .chain(0xE0000..0xE0100)
            .filter_map(char::from_u32)
            .collect();
        let safe = display_safe(&hostile);
        assert!(!safe
            .chars()
            .any(|c| c.is_control() || c == '\u{2028}' || is_bidi_control(c) || is_invisible(c)));
        assert_eq!(safe.lines().count(), 1);
    }

    /// Known limit of the issue 13 attack run, closed: a joiner after a
    /// name made `honest-ada` plus U+200D read like `honest-ada` in a log.
    /// It is kept only inside emoji sequences.
    #[test]
    fn a_joiner_is_kept_only_between_pictographs() {
        assert_eq!(display_safe("honest-ada\u{200D}"), "honest-ada\\u{200d}");
        assert_eq!(display_safe("\u{200D}ada"), "\\u{200d}ada");
        assert_eq!(display_safe("a\u{200D}b"), "a\\u{200d}b");
        assert_eq!(display_safe("👨\u{200D}ada"), "👨\\u{200d}ada");
        assert_eq!(display_safe("ada\u{200D}👩"), "ada\\u{200d}👩");
        for emoji in [
            "👨\u{200D}👩\u{200D}👧",
            "🧑🏽\u{200D}💻",
            "❤\u{200D}🔥",
            "🐻\u{200D}❄",
        ] {
            assert!(matches!(display_safe(emoji), Cow::Borrowed(_)), "{emoji:?}");
        }
        // Two joiners in a row: neither sits between two pictographs.
        assert_eq!(
            display_safe("👨\u{200D}\u{200D}👩"),
            "👨\\u{200d}\\u{200d}👩"
        );
    }
}
