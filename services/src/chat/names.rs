//! Naming rules for nicknames and rooms, and the key under which both are
//! looked up: their look-alike skeleton, so that names a person could take
//! for one another are one name.
//!
//! Names end up in other people's terminals and in command lines
//! (`/msg NICK TEXT`), so they may not hold whitespace, control characters,
//! bidi controls or invisible characters ([`name_problem`]).
//! A nickname may not start with `#` (reads as a room) or `/` (reads as a
//! command); a room name may not start with `/`.

use crate::error::{NameKind, ServiceError};
use crate::text::{name_problem, name_skeleton};

/// The key a name is compared and looked up by ([`name_skeleton`]): `Ada`,
/// `ada`, fullwidth `ａｄａ` and Cyrillic `аdа` are the same user, `Lobby`
/// and `lobby` the same room. A key is never shown (it spells `m` as `rn`).
pub fn fold(name: &str) -> String {
    name_skeleton(name)
}

/// The order names are listed in: ignoring case.
pub fn sort_key(name: &str) -> String {
    name.to_lowercase()
}

/// Checks a nickname against the rules; `max_len` is in bytes.
pub fn check_nickname(name: &str, max_len: usize) -> Result<(), ServiceError> {
    check(NameKind::Nickname, name, max_len)?;
    if name.starts_with('#') || name.starts_with('/') {
        return Err(invalid(
            NameKind::Nickname,
            name,
            "it may not start with '#' or '/'",
        ));
    }
    Ok(())
}

/// Checks the name a client that does not chat (a file transfer, a
/// viewer) gave in its `Hello`: the nickname rules but for the leading
/// character, since it is shown to others (as a sender, a publisher) and
/// logged all the same.
pub fn check_hello_name(name: &str, max_len: usize) -> Result<(), ServiceError> {
    check(NameKind::Nickname, name, max_len)
}

/// Checks a room name against the rules; `max_len` is in bytes.
pub fn check_room(name: &str, max_len: usize) -> Result<(), ServiceError> {
    check(NameKind::Room, name, max_len)?;
    if name.starts_with('/') {
        return Err(invalid(NameKind::Room, name, "it may not start with '/'"));
    }
    Ok(())
}

fn check(kind: NameKind, name: &str, max_len: usize) -> Result<(), ServiceError> {
    if name.is_empty() {
        return Err(invalid(kind, name, "it is empty"));
    }
    if name.len() > max_len {
        let reason = format!("it is longer than {max_len} bytes");
        return Err(invalid(kind, name, &reason));
    }
    if let Some(problem) = name_problem(name) {
        return Err(invalid(kind, name, problem));
    }
    Ok(())
}

fn invalid(kind: NameKind, name: &str, reason: &str) -> ServiceError {
    ServiceError::InvalidName {
        kind,
        name: name.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(r: Result<(), ServiceError>) -> String {
        match r {
            Err(ServiceError::InvalidName { reason, .. }) => reason,
            other => panic!("expected InvalidName, got {other:?}"),
        }
    }

    #[test]
    fn good_names_pass() {
        for name in ["ada", "Bob_2", "ünïcødé", "a-b.c", "x"] {
            assert!(check_nickname(name, 32).is_ok(), "{name}");
            assert!(check_room(name, 32).is_ok(), "{name}");
        }
        assert!(check_room("#ops", 32).is_ok());
        assert!(check_nickname(&"a".repeat(32), 32).is_ok());
    }

    #[test]
    fn bad_names_say_why() {
        assert_eq!(reason(check_nickname("", 32)), "it is empty");
        assert_eq!(
            reason(check_nickname(&"a".repeat(33), 32)),
            "it is longer than 32 bytes"
        );
        // The limit is in bytes: 17 two-byte characters are 34 bytes.
        assert_eq!(
            reason(check_nickname(&"é".repeat(17), 32)),
            "it is longer than 32 bytes"
        );
        assert_eq!(reason(check_nickname("a b", 32)), "it contains whitespace");
        assert_eq!(
            reason(check_nickname("a\tb", 32)),
            "it contains control characters"
        );
        assert_eq!(
            reason(check_nickname("ada\u{202e}", 32)),
            "it contains bidirectional text controls"
        );
        assert_eq!(
            reason(check_room("a\u{200b}b", 32)),
            "it contains invisible characters"
        );
        assert_eq!(
            reason(check_hello_name("x\u{1b}]0;owned\u{7}", 32)),
            "it contains control characters"
        );
        assert!(check_hello_name("#not-a-room", 32).is_ok());
        assert_eq!(
            reason(check_nickname("a\u{1b}[31m", 32)),
            "it contains control characters"
        );
        assert_eq!(
            reason(check_nickname("#ops", 32)),
            "it may not start with '#' or '/'"
        );
        assert_eq!(
            reason(check_nickname("/me", 32)),
            "it may not start with '#' or '/'"
        );
        assert_eq!(reason(check_room("/x", 32)), "it may not start with '/'");
        assert_eq!(
            reason(check_room("two words", 32)),
            "it contains whitespace"
        );
    }

    #[test]
    fn error_names_the_kind_and_the_name() {
        let e = check_room("a b", 32).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"invalid room name "a b": it contains whitespace"#
        );
        let e = check_nickname("", 32).unwrap_err();
        assert_eq!(e.to_string(), r#"invalid nickname "": it is empty"#);
    }

    #[test]
    fn refusals_quote_hostile_names_escaped() {
        let hostile = "\u{1b}]0;x\u{7}\u{1b}[2J\n\u{202e}\u{200b}";
        let e = check_nickname(hostile, 64).unwrap_err().to_string();
        assert!(
            !e.chars()
                .any(|c| c.is_control() || crate::text::is_invisible(c)),
            "{e:?}"
        );
        let taken = ServiceError::NameTaken {
            name: hostile.into(),
        };
        assert!(!taken.to_string().chars().any(char::is_control));
    }

    #[test]
    fn folding_ignores_case_and_look_alikes() {
        assert_eq!(fold("Ada"), fold("aDA"));
        assert_eq!(fold("ÉMILE"), fold("émile"));
        assert_eq!(fold("b\u{043e}b"), fold("bob"));
        assert_ne!(fold("bob"), fold("rob"));
        assert_eq!(sort_key("ÉMILE"), "émile");
    }
}
