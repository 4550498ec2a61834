//! The access token for browsers: `POST /auth` trades the server's token
//! (the one native clients put in their `Hello`) for a session cookie, and
//! every other route asks `Auth::allows` (or [`Auth::allows_cookie`]).
//!
//! Wrong tokens cost a guess from the [`GuessLimit`] the transport checks
//! native `Hello`s against (one budget for the one token: by default 5 a
//! minute per address and 30 in all); once an address's, or everyone's,
//! are spent, every attempt is answered 429, right token or not, until the
//! buckets refill. Sessions are random 128-bit values kept in a bounded
//! store ([`MAX_SESSIONS`], the oldest dropped first) and expire after
//! [`SESSION_LIFETIME`]. Tokens are compared in constant time.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lanlink_transport::GuessLimit;

use super::request::Request;

/// The name of the session cookie.
pub const COOKIE: &str = "lanlink";
/// Sessions kept at once; beyond it the oldest is dropped.
pub const MAX_SESSIONS: usize = 4096;
/// How long a session cookie stays good.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The largest `POST /auth` body read.
pub const MAX_BODY: usize = 1024;

/// What a login attempt comes to.
#[derive(Debug, PartialEq, Eq)]
pub enum Login {
    /// The right token: send this `Set-Cookie` value (204).
    Granted(String),
    /// The server has no token: nothing to do (204, no cookie).
    NotNeeded,
    /// A wrong or missing token (403).
    Wrong,
    /// Too many wrong tokens from this address (429).
    Limited,
    /// No system randomness for a session id (503).
    Unavailable,
}

/// The browser side of the access token. Shared by every HTTP thread.
pub struct Auth {
    token: Option<String>,
    guesses: GuessLimit,
    state: Mutex<State>,
}

struct State {
    /// Session id → when it was made.
    sessions: HashMap<String, Instant>,
    /// Session ids, oldest first (may hold ids already expired).
    order: VecDeque<String>,
}

impl Auth {
    /// Checks browsers against `token` (`None`: everyone is let in),
    /// counting wrong ones in `guesses` (share the transport's).
    pub fn new(token: Option<String>, guesses: GuessLimit) -> Auth {
        Auth {
            token,
            guesses,
            state: Mutex::new(State {
                sessions: HashMap::new(),
                order: VecDeque::new(),
            }),
        }
    }

    /// The server's token, for the `/ws` bridge to put into the `Hello`
    /// of a browser whose upgrade request has a live session cookie (it
    /// never goes to the browser).
    pub(super) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Whether browsers must give a token.
    pub fn token_required(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `request` may use the protected routes: always without a
    /// token, otherwise only with a live session cookie.
    pub(super) fn allows(&self, request: &Request) -> bool {
        self.allows_cookie(request.header("cookie"), Instant::now())
    }

    /// `Auth::allows` for a `Cookie` header's value, at `now`.
    pub fn allows_cookie(&self, cookie: Option<&str>, now: Instant) -> bool {
        if self.token.is_none() {
            return true;
        }
        let Some(id) = cookie.and_then(session_of) else {
            return false;
        };
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .sessions
            .get(id)
            .is_some_and(|made| now.saturating_duration_since(*made) < SESSION_LIFETIME)
    }

    /// `GET /auth`'s answer: whether a token is asked for, and whether
    /// this browser is in.
    pub(super) fn status_json(&self, request: &Request) -> String {
        format!(
            "{{\"token_required\":{},\"ok\":{}}}",
            self.token_required(),
            self.allows(request)
        )
    }

    /// A login from `ip` with `body` (`{"token":"…"}`) at `now`; `secure`
    /// when the request came over HTTPS (the cookie is then `Secure`).
    pub fn login(&self, ip: IpAddr, body: &[u8], secure: bool, now: Instant) -> Login {
        let Some(expected) = &self.token else {
            return Login::NotNeeded;
        };
        if self.guesses.check(ip, now).is_err() {
            return Login::Limited;
        }
        let given = token_of(body);
        let right = given.is_some_and(|t| {
            lanlink_transport::server::constant_time_eq(t.as_bytes(), expected.as_bytes())
        });
        if !right {
            self.guesses.wrong(ip, now);
            return Login::Wrong;
        }
        let Some(id) = random_hex() else {
            return Login::Unavailable;
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.sessions.insert(id.clone(), now);
        state.order.push_back(id.clone());
        // Expired first, then the oldest beyond the bound.
        while let Some(oldest) = state.order.front() {
            let expired = state
                .sessions
                .get(oldest)
                .is_none_or(|made| now.saturating_duration_since(*made) >= SESSION_LIFETIME);
            if !expired && state.sessions.len() <= MAX_SESSIONS {
                break;
            }
            if let Some(old) = state.order.pop_front() {
                state.sessions.remove(&old);
            }
        }
        let secure = if secure { "; Secure" } else { "" };
        Login::Granted(format!(
            "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/{secure}"
        ))
    }

    #[cfg(test)]
    fn session_count(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sessions
            .len()
    }
}

/// Our session id in a `Cookie` header (`a=b; lanlink=…; c=d`).
fn session_of(cookie: &str) -> Option<&str> {
    cookie.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE && value.len() == 32).then_some(value)
    })
}

/// The token in a `{"token":"…"}` body; only a plain JSON string (escapes
/// other than `\"` and `\\` are refused, tokens are printable).
fn token_of(body: &[u8]) -> Option<String> {
    if body.len() > MAX_BODY {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    let after = text.split_once("\"token\"")?.1.trim_start();
    let after = after.strip_prefix(':')?.trim_start();
    let mut chars = after.strip_prefix('"')?.chars();
    let mut token = String::new();
    loop {
        match chars.next()? {
            '"' => break,
            '\\' => match chars.next()? {
                c @ ('"' | '\\' | '/') => token.push(c),
                _ => return None,
            },
            c if c.is_control() => return None,
            c => token.push(c),
        }
    }
    let tail = chars.as_str().trim();
    (tail == "}").then_some(token)
}

/// 128 random bits in hex; `None` without system randomness (not
/// expected on any supported system): never a guessable session.
fn random_hex() -> Option<String> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    fn cookie_of(login: Login) -> String {
        let Login::Granted(set) = login else {
            panic!("not granted: {login:?}")
        };
        set.split(';').next().unwrap().to_owned()
    }

    #[test]
    fn no_token_lets_everyone_in() {
        let auth = Auth::new(None, GuessLimit::default());
        assert!(!auth.token_required());
        assert!(auth.allows_cookie(None, Instant::now()));
        assert_eq!(
            auth.login(ip(1), b"{}", false, Instant::now()),
            Login::NotNeeded
        );
    }

    #[test]
    fn the_right_token_gives_a_cookie_that_works_until_it_expires() {
        let auth = Auth::new(Some("sesame-sesame".into()), GuessLimit::default());
        let now = Instant::now();
        assert!(!auth.allows_cookie(None, now));
        let login = auth.login(ip(1), br#"{"token":"sesame-sesame"}"#, true, now);
        let Login::Granted(set) = &login else {
            panic!("{login:?}")
        };
        assert!(set.ends_with("; HttpOnly; SameSite=Strict; Path=/; Secure"));
        let cookie = cookie_of(login);
        assert_eq!(cookie.len(), COOKIE.len() + 1 + 32);
        let header = format!("theme=dark; {cookie}; x=y");
        assert!(auth.allows_cookie(Some(&header), now));
        assert!(auth.allows_cookie(Some(&header), now + SESSION_LIFETIME / 2));
        assert!(!auth.allows_cookie(Some(&header), now + SESSION_LIFETIME));
        assert!(!auth.allows_cookie(Some("lanlink=00000000000000000000000000000000"), now));
        let plain = auth.login(ip(1), br#"{ "token" : "sesame-sesame" }"#, false, now);
        assert!(matches!(plain, Login::Granted(s) if s.ends_with("Path=/")));
    }

    #[test]
    fn wrong_tokens_are_refused_then_limited_per_address() {
        let auth = Auth::new(Some("sesame-sesame".into()), GuessLimit::default());
        let now = Instant::now();
        for body in [
            &br#"{"token":"sesame"}"#[..],
            b"",
            b"{\"token\":\"sesame-sesame\"",
            b"{\"token\":\"sesame-sesame\"} trailing",
            b"\xff\xfe",
        ] {
            assert_eq!(auth.login(ip(1), body, false, now), Login::Wrong);
        }
        // Five wrong guesses spent: even the right token waits.
        let right = br#"{"token":"sesame-sesame"}"#;
        assert_eq!(auth.login(ip(1), right, false, now), Login::Limited);
        // Another address is not affected.
        assert!(matches!(
            auth.login(ip(2), right, false, now),
            Login::Granted(_)
        ));
        // A guess comes back after 12 s.
        let later = now + Duration::from_secs(13);
        assert!(matches!(
            auth.login(ip(1), right, false, later),
            Login::Granted(_)
        ));
        let huge = format!("{{\"token\":\"{}\"}}", "a".repeat(MAX_BODY));
        assert_eq!(auth.login(ip(3), huge.as_bytes(), false, now), Login::Wrong);
    }

    #[test]
    fn guessing_from_many_addresses_is_limited_in_all_and_sessions_stay() {
        let guesses = GuessLimit::default();
        let auth = Auth::new(Some("sesame-sesame".into()), guesses.clone());
        let now = Instant::now();
        let right = br#"{"token":"sesame-sesame"}"#;
        let cookie = cookie_of(auth.login(ip(1), right, false, now));
        // Six addresses, five wrong guesses each: thirty in all.
        for n in 10..16 {
            for _ in 0..5 {
                assert_eq!(
                    auth.login(ip(n), br#"{"token":"guess"}"#, false, now),
                    Login::Wrong
                );
            }
        }
        // Then no guessing address is checked, even with guesses of its own
        // left, not even with the right token; the session made before keeps
        // working.
        // A new address's first guess is still checked, its second not.
        let guess = br#"{"token":"guess"}"#;
        assert_eq!(auth.login(ip(20), guess, false, now), Login::Wrong);
        assert_eq!(auth.login(ip(20), guess, false, now), Login::Limited);
        assert_eq!(auth.login(ip(10), right, false, now), Login::Limited);
        assert_eq!(auth.login(ip(20), right, false, now), Login::Limited);
        assert!(
            guesses.check(ip(11), now).is_err(),
            "shared with the transport"
        );
        assert!(auth.allows_cookie(Some(&cookie), now));
        // An address that never guessed wrong is not locked out by them.
        assert!(matches!(
            auth.login(ip(99), right, false, now),
            Login::Granted(_)
        ));
        // Guesses come back at 30 a minute.
        let later = now + Duration::from_secs(62);
        assert!(matches!(
            auth.login(ip(10), right, false, later),
            Login::Granted(_)
        ));
    }

    #[test]
    fn sessions_are_bounded_oldest_dropped() {
        let auth = Auth::new(Some("t".into()), GuessLimit::default());
        let now = Instant::now();
        let first = cookie_of(auth.login(ip(1), br#"{"token":"t"}"#, false, now));
        for _ in 0..MAX_SESSIONS {
            auth.login(ip(1), br#"{"token":"t"}"#, false, now);
        }
        assert_eq!(auth.session_count(), MAX_SESSIONS);
        assert!(!auth.allows_cookie(Some(&first), now));
    }

    #[test]
    fn token_bodies_are_parsed_strictly() {
        assert_eq!(token_of(br#"{"token":"a\"b"}"#).as_deref(), Some("a\"b"));
        assert_eq!(token_of(br#"{"token":"a\nb"}"#), None);
        assert_eq!(token_of(b"{\"token\":\"a\nb\"}"), None);
        assert_eq!(session_of("lanlink=short"), None);
    }
}
