//! Transfers that outlive their connection: [`Resuming`], [`Resume`].
//!
//! A download or upload resumes where it stopped when it is run again
//! (partial files are kept and their verified prefix is not sent twice).
//! [`Resuming`] does that by itself: it holds a session, and when the
//! connection is lost mid-transfer (the server restarted, the Wi-Fi went
//! away, the server ended a frame arriving too slowly while it was full) it
//! says so at once through [`Progress::interrupted`], connects again and
//! runs the transfer again, for as long as [`Resume::patience`] allows
//! without a byte moving. What trying again cannot mend (a refusal, a
//! wrong hash, a ban, another certificate) ends it at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lanlink_proto::ErrorCode;
use lanlink_services::file::Progress;
use lanlink_services::ServiceError;
use lanlink_transport::{CloseReason, TransportError};

use crate::files::TransferSummary;
use crate::{Backoff, ClientError, Events, Session, SessionBuilder};

/// How long [`Resuming`] keeps trying, and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// Give up once this long passed without a byte of the transfer
    /// moving (counted from the last byte, or from the start). Zero: a
    /// lost connection ends the transfer at once.
    pub patience: Duration,
    /// The waits before each new attempt (reset once bytes move again).
    pub backoff: Backoff,
}

impl Default for Resume {
    /// A minute of patience; attempts after 1 s, 2 s, 4 s, then every 8 s.
    fn default() -> Resume {
        Resume {
            patience: Duration::from_secs(60),
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(8)),
        }
    }
}

impl Resume {
    /// Never tries again: a lost connection ends the transfer (run it
    /// again later to resume).
    pub fn never() -> Resume {
        Resume {
            patience: Duration::ZERO,
            ..Resume::default()
        }
    }
}

/// How a [`Resuming`] connects, the first time and each time again.
///
/// A [`SessionBuilder`] connects as it was built, each time (as a
/// [`Reconnecting`](crate::Reconnecting)'s does); a closure returning
/// [`SessionBuilder::connect`]'s result can connect otherwise the first
/// time (saying which certificate it pinned) or elsewhere later.
pub trait Connect {
    /// Connects once.
    ///
    /// # Errors
    /// As [`SessionBuilder::connect`].
    fn connect(&mut self) -> Result<(Session, Events), ClientError>;
}

impl Connect for SessionBuilder {
    fn connect(&mut self) -> Result<(Session, Events), ClientError> {
        self.clone().connect()
    }
}

impl<F> Connect for F
where
    F: FnMut() -> Result<(Session, Events), ClientError>,
{
    fn connect(&mut self) -> Result<(Session, Events), ClientError> {
        self()
    }
}

/// A session that is connected again when it is lost, for transfers that
/// resume over the new connection.
///
/// It holds each session's [`Events`] for the work it runs (a
/// [`Session::receive_files`] reads them) and reads them only there:
/// connect with [`Capabilities::FILE`](crate::Capabilities::FILE) alone,
/// or a chat room's lines fill them and transfers stall (see [`Events`]).
///
/// ```no_run
/// use lanlink_client::{Capabilities, Quiet, Resume, Resuming, Session, TransferOptions};
///
/// # fn main() -> Result<(), lanlink_client::ClientError> {
/// let builder = Session::builder("192.168.1.20")
///     .name("backup")
///     .capabilities(Capabilities::FILE);
/// let mut link = Resuming::connect(builder, Resume::default())?;
/// let options = TransferOptions::default();
/// link.run(&mut Quiet, |session, _, progress| {
///     session.put("photos".as_ref(), &options, progress)
/// })?;
/// # Ok(()) }
/// ```
pub struct Resuming<C> {
    policy: Resume,
    connect: C,
    session: Option<(Session, Events)>,
}

impl<C> std::fmt::Debug for Resuming<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resuming")
            .field("policy", &self.policy)
            .field("connected", &self.session.is_some())
            .finish_non_exhaustive()
    }
}

impl<C: Connect> Resuming<C> {
    /// Connects with `connect`, a [`SessionBuilder`] or a closure (the
    /// first time, an error is returned at once: a wrong address is not
    /// waited on), and keeps it to connect again, as `policy` says.
    pub fn connect(mut connect: C, policy: Resume) -> Result<Resuming<C>, ClientError> {
        let session = connect.connect()?;
        Ok(Resuming {
            policy,
            connect,
            session: Some(session),
        })
    }

    /// Runs `work` (a transfer that resumes when run again: `get`, `put`)
    /// on the session; when it fails because the connection was lost,
    /// tells `progress`, waits, connects again and runs it again. Returns
    /// its result, the first error trying again cannot mend, or the last
    /// error once [`Resume::patience`] passed with no byte moving.
    pub fn run<T>(
        &mut self,
        progress: &mut dyn Progress,
        mut work: impl FnMut(&Session, &Events, &mut dyn Progress) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut backoff = self.policy.backoff.clone();
        let mut moved_at = Instant::now();
        // How far each file has got, over all attempts.
        let mut best = HashMap::new();
        loop {
            let mut error = match &self.session {
                Some((session, events)) => {
                    let mut watch = Watch {
                        inner: &mut *progress,
                        best: &mut best,
                        file: String::new(),
                        moved: false,
                    };
                    let result = work(session, events, &mut watch);
                    if watch.moved {
                        moved_at = Instant::now();
                        backoff.reset();
                    }
                    match result {
                        Ok(done) => return Ok(done),
                        Err(e) if worth_reconnecting(&e) => e,
                        Err(e) => return Err(e),
                    }
                }
                None => ClientError::Disconnected(CloseReason::PeerClosed),
            };
            if let Some((session, _)) = self.session.take() {
                session.close("connection lost");
            }
            // Connect again, as long as patience lasts.
            loop {
                let wait = backoff.next().unwrap_or(Duration::from_secs(1));
                if moved_at.elapsed() + wait > self.policy.patience {
                    return Err(error);
                }
                progress.interrupted(&error.to_string(), wait);
                std::thread::sleep(wait);
                match self.connect.connect() {
                    Ok(session) => {
                        self.session = Some(session);
                        break;
                    }
                    Err(e) if worth_connecting_again(&e) => error = e,
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// The session now (`None` between a lost connection and the next).
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref().map(|(s, _)| s)
    }
}

impl<C> Drop for Resuming<C> {
    fn drop(&mut self) {
        if let Some((session, _)) = self.session.take() {
            session.close("done");
        }
    }
}

/// Passes progress on, noting whether the transfer got further than
/// ever before (by [`PROGRESS_STEP`] at least, or to its end): an attempt
/// that resumes further on than the last one counts, though it was cut
/// off before its first acknowledgement; one that moves a byte or two
/// (a hostile server dripping) does not keep the transfer going for ever.
struct Watch<'a> {
    inner: &'a mut dyn Progress,
    best: &'a mut HashMap<String, u64>,
    file: String,
    moved: bool,
}

/// How much further than ever a transfer must get to count as moving.
pub const PROGRESS_STEP: u64 = 64 * 1024;

impl Watch<'_> {
    fn reached(&mut self, at: u64, total_done: bool) {
        let best = self.best.entry(self.file.clone()).or_insert(at);
        if at >= best.saturating_add(PROGRESS_STEP) || (total_done && at > *best) {
            self.moved = true;
            *best = at;
        }
    }
}

impl Progress for Watch<'_> {
    fn start(&mut self, name: &str, total: u64, resumed_from: u64) {
        name.clone_into(&mut self.file);
        self.reached(resumed_from, resumed_from >= total);
        self.inner.start(name, total, resumed_from);
    }
    fn advance(&mut self, done: u64) {
        self.reached(done, false);
        self.inner.advance(done);
    }
    fn finish(&mut self, summary: &TransferSummary) {
        self.moved = true;
        self.inner.finish(summary);
    }
    fn interrupted(&mut self, why: &str, retry_in: Duration) {
        self.inner.interrupted(why, retry_in);
    }
}

/// Whether a session that ended with `reason` is worth connecting again:
/// the link was lost, or the server was restarting, full, busy or found
/// the client too slow. Not when it was banned or kicked, refused for a
/// reason the same connection would meet again (a wrong token, a bad
/// name), sent bytes that are not lanlink, or was closed on purpose.
///
/// What [`Resuming`] and [`Reconnecting`](crate::Reconnecting) decide by;
/// a program that reconnects by itself should decide the same way.
///
/// ```
/// use lanlink_client::{proto::ErrorCode, worth_reconnecting_after, CloseReason};
///
/// assert!(worth_reconnecting_after(&CloseReason::PeerClosed));
/// let banned = CloseReason::PeerError { code: ErrorCode::BANNED, message: "kicked".into() };
/// assert!(!worth_reconnecting_after(&banned));
/// ```
pub fn worth_reconnecting_after(reason: &CloseReason) -> bool {
    reason_passes(reason)
}

/// Whether connecting again later may work after a connect that failed
/// with `e`: the server unreachable, restarting, full or busy, or still
/// holding our name from the connection just lost. Not after a wrong
/// token, a refused name, a changed certificate or a ban.
pub fn worth_connecting_again(e: &ClientError) -> bool {
    worth_reconnecting(e) || is_name_still_held(e)
}

/// Whether `e` means the connection was lost, or could not be made, in a
/// way that connecting again may mend.
pub(crate) fn worth_reconnecting(e: &ClientError) -> bool {
    match e {
        ClientError::Disconnected(reason) => reason_passes(reason),
        ClientError::Transport(t) | ClientError::Service(ServiceError::Connection(t)) => {
            transport_passes(t)
        }
        ClientError::Hinted { error, .. } => worth_reconnecting(error),
        // A server that stopped answering on a connection still up (a
        // worker stuck, a relay gone quiet): a fresh connection starts
        // over, resuming what arrived.
        ClientError::Service(ServiceError::NoAnswer { .. }) => true,
        _ => false,
    }
}

fn transport_passes(e: &TransportError) -> bool {
    match e {
        TransportError::Closed(reason) => reason_passes(reason),
        TransportError::Io { .. }
        | TransportError::Connect { .. }
        | TransportError::HandshakeTimeout { .. }
        | TransportError::ClosedDuringHandshake { .. }
        | TransportError::TlsClosed { .. } => true,
        TransportError::Refused { code, .. } => code_passes(*code),
        _ => false,
    }
}

fn reason_passes(reason: &CloseReason) -> bool {
    match reason {
        CloseReason::PeerError { code, .. } | CloseReason::Refused { code, .. } => {
            code_passes(*code)
        }
        // Bytes that are not lanlink, or ours closing on purpose: the same
        // again would end the same way.
        CloseReason::Malformed(_) | CloseReason::Unexpected(_) | CloseReason::Local(_) => false,
        _ => true,
    }
}

/// Codes of refusals and errors that may pass: the server full, busy,
/// restarting, or the transfer's frame ended to make room.
fn code_passes(code: ErrorCode) -> bool {
    [
        ErrorCode::SERVER_FULL,
        ErrorCode::TOO_MANY_CONNECTIONS,
        ErrorCode::RATE_LIMITED,
        ErrorCode::TOO_SLOW,
        ErrorCode::TIMEOUT,
        ErrorCode::SHUTTING_DOWN,
        ErrorCode::BUSY,
        ErrorCode::OTHER,
    ]
    .contains(&code)
}

/// A server that has not noticed the lost connection yet still holds its
/// name: that passes once it does.
fn is_name_still_held(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Transport(TransportError::Refused {
            code: ErrorCode::NAME_TAKEN,
            ..
        })
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(code: ErrorCode) -> ClientError {
        ClientError::Disconnected(CloseReason::PeerError {
            code,
            message: "x".into(),
        })
    }

    #[test]
    fn only_losses_that_may_pass_are_tried_again() {
        assert!(worth_reconnecting(&closed(ErrorCode::TOO_SLOW)));
        assert!(worth_reconnecting(&closed(ErrorCode::SHUTTING_DOWN)));
        assert!(worth_reconnecting(&ClientError::Disconnected(
            CloseReason::PeerClosed
        )));
        assert!(worth_reconnecting(&ClientError::Service(
            ServiceError::Connection(TransportError::Closed(CloseReason::Io("reset".into())))
        )));
        assert!(worth_reconnecting(&ClientError::Service(
            ServiceError::NoAnswer { secs: 30 }
        )));
        // Kicked or banned, a wrong token, a hash that did not match:
        // connecting again would not help.
        assert!(!worth_reconnecting(&closed(ErrorCode::BANNED)));
        assert!(!worth_reconnecting(&ClientError::Transport(
            TransportError::Refused {
                code: ErrorCode::BAD_TOKEN,
                reason: "wrong access token".into(),
            }
        )));
        assert!(!worth_reconnecting(&ClientError::Service(
            ServiceError::Refused {
                code: ErrorCode::HASH_MISMATCH,
                name: "a".into(),
                reason: "b".into(),
            }
        )));
        assert!(!worth_reconnecting(&ClientError::Disconnected(
            CloseReason::Local("closed".into())
        )));
    }

    #[test]
    fn progress_counts_past_the_best_attempt_by_a_step() {
        let mut quiet = crate::Quiet;
        let mut best = HashMap::new();
        let mut attempt = |resumed: u64, done: &[u64]| {
            let mut watch = Watch {
                inner: &mut quiet,
                best: &mut best,
                file: String::new(),
                moved: false,
            };
            watch.start("a", 10 << 20, resumed);
            for &d in done {
                watch.advance(d);
            }
            watch.moved
        };
        // The first attempt starts somewhere: that is not progress yet.
        assert!(!attempt(40, &[41]), "a byte is not progress");
        assert!(attempt(40, &[40 + PROGRESS_STEP]));
        // Cut off before its first acknowledgement, but resumed further
        // on than ever: progress.
        assert!(attempt(1 << 20, &[]));
        assert!(!attempt(1 << 20, &[(1 << 20) + 1]), "dripping");
        assert!(!attempt(0, &[PROGRESS_STEP]), "behind the best");
    }
}
